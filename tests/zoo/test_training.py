"""The shared training loop: non-finite steps are skipped up to a limit, then the run stops on the last good weights."""

from __future__ import annotations

import pytest
import torch

from zoo.training import TrainConfig, TrainingDiverged, train


def _regression(bad_steps: set[int], bad: str = "loss"):
    """A linear fit of y = 3 x whose loss (or gradient) is non-finite at ``bad_steps``."""
    model = torch.nn.Linear(1, 1)
    x = torch.linspace(-1, 1, 64).unsqueeze(-1)
    y = 3 * x

    def loss_fn(batch, step):
        loss = ((model(x) - y) ** 2).mean()
        if step in bad_steps:
            if bad == "loss":
                loss = loss * float("nan")
            elif bad == "huge":  # finite gradient entries of 1e25 whose float32 norm (1e50) overflows
                loss = loss + 1e25 * model.weight.sum()
            else:  # finite loss, infinite gradient: d/dw sqrt(w - w) at 0
                w = model.weight
                loss = loss + (w - w.detach()).sqrt().sum()
        return {"loss": loss}

    return model, loss_fn


def test_isolated_nonfinite_steps_are_skipped_and_the_run_still_converges():
    model, loss_fn = _regression({3, 7, 19})
    config = TrainConfig(steps=300, lr=0.05, schedule="constant", skip_nonfinite=1, val_every=10)
    val = lambda: float(loss_fn(None, -1)["loss"])  # noqa: E731
    history = train(model, loss_fn, lambda step: None, config=config, val_loss=val, progress=False)
    assert history.skipped_steps == 3
    assert history.val_steps == list(range(10, 301, 10))  # step 19 was skipped, its validation (20) still ran
    assert all(torch.isfinite(p).all() for p in model.parameters())
    # the fit converges regardless: y = 3 x is exactly representable and Adam at lr 0.05 gets there in 300 steps
    assert model.weight.item() == pytest.approx(3.0, abs=1e-2)


@pytest.mark.parametrize("bad", ["loss", "gradient"])
def test_more_nonfinite_steps_in_a_row_than_allowed_stop_the_run_on_finite_weights(bad):
    model, loss_fn = _regression({10, 11, 12}, bad)
    config = TrainConfig(steps=100, lr=0.05, skip_nonfinite=2)
    with pytest.raises(TrainingDiverged, match=r"at step 12 \(3 steps in a row\)"):
        train(model, loss_fn, lambda step: None, config=config, progress=False)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_by_default_the_first_nonfinite_gradient_stops_the_run_before_it_reaches_the_weights():
    model, loss_fn = _regression({5}, "gradient")
    with pytest.raises(TrainingDiverged, match="gradient became non-finite at step 5;"):
        train(model, loss_fn, lambda step: None, config=TrainConfig(steps=50), progress=False)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_a_gradient_norm_that_overflows_counts_as_nonfinite():
    # entries of 1e25: finite, but their float32 norm (1e50) is not; such runs were blowing up (see _clip_gradients)
    model, loss_fn = _regression({5, 9}, "huge")
    config = TrainConfig(steps=50, skip_nonfinite=1)
    history = train(model, loss_fn, lambda step: None, config=config, progress=False)
    assert history.skipped_steps == 2
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_checkpoints_never_write_through_planted_symlinks(tmp_path):
    """Links planted at every name a checkpoint used to be written through (the old fixed temporaries) and at the
    final names: the targets stay untouched, the checkpoint is written as plain files, and it resumes."""
    ckpt, victim = tmp_path / "ckpt", tmp_path / "victim.txt"
    ckpt.mkdir()
    victim.write_text("mine")
    old = ["checkpoint.safetensors", "optimizer.safetensors", "checkpoint.json", "best.safetensors"]
    for name in old + [f"{n}.partial" for n in old]:
        (ckpt / name).symlink_to(victim)
    model, loss_fn = _regression(set())
    config = TrainConfig(steps=20, lr=0.05, val_every=10, checkpoint_every=10)
    val = lambda: float(loss_fn(None, -1)["loss"])  # noqa: E731
    train(model, loss_fn, lambda step: None, config=config, val_loss=val, checkpoint_dir=ckpt, progress=False)
    assert victim.read_text() == "mine"
    assert (ckpt / "checkpoint.safetensors").is_file() and not (ckpt / "checkpoint.safetensors").is_symlink()
    assert not [p for p in ckpt.iterdir() if p.name.startswith(".")]  # no temporaries left
    resumed = TrainConfig(steps=30, lr=0.05, val_every=10, checkpoint_every=10, resume=True)
    steps_run = []
    counted = lambda batch, step: steps_run.append(step) or loss_fn(batch, step)  # noqa: E731
    train(model, counted, lambda step: None, config=resumed, val_loss=val, checkpoint_dir=ckpt, progress=False)
    assert steps_run == list(range(20, 30))  # went on from the checkpoint at step 20


def test_after_a_blow_up_the_kept_weights_are_the_last_that_gave_a_finite_loss_and_resume_trains_on(tmp_path):
    """lr = 1e30: the first update makes finite weights of ~1e30 whose loss overflows. The checkpoint keeps the
    weights before that update (not the blown-up ones), and resuming from it with a sane learning rate converges."""
    model, loss_fn = _regression(set())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ckpt = tmp_path / "ckpt"
    with pytest.raises(TrainingDiverged, match="step 1;"):
        train(
            model,
            loss_fn,
            lambda step: None,
            config=TrainConfig(steps=50, lr=1e30),
            checkpoint_dir=ckpt,
            progress=False,
        )
    from safetensors.torch import load_file

    saved = load_file(str(ckpt / "checkpoint.safetensors"))
    assert all(torch.equal(saved[f"model.{k}"], v) for k, v in before.items())  # the weights that gave step 0's loss
    resumed = TrainConfig(steps=300, lr=0.05, schedule="constant", resume=True)
    history = train(model, loss_fn, lambda step: None, config=resumed, checkpoint_dir=ckpt, progress=False)
    assert history.skipped_steps == 1 and model.weight.item() == pytest.approx(3.0, abs=1e-2)  # the one skip: before
