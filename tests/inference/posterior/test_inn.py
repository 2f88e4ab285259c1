"""Inverse INN: padding layout, gradient blocking, training, posterior shapes, save/load, bad input."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest
import torch

import inference
import simulators
from inference.posterior.inn import (
    INNLoss,
    InverseINN,
    fit_inn,
    inn_loss,
    label_logits,
    mmd_loss,
    ramp,
    x_weight_sigma_at,
)
from simulators.arm import Arm
from zoo.training import TrainingDiverged

TINY = {"blocks": 2, "hidden": 16, "layers": 1, "batch_size": 64, "val_every": 0}


def _opts(**kw):
    """INN options from flat keys (training settings are nested in ``train``, loss settings in ``loss``)."""
    return inference.make_options("inn", kw)


def _randomize(module: torch.nn.Module, seed: int = 0, std: float = 0.2) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.flow.parameters():
            p.normal_(0.0, std, generator=g)


def test_default_dimensions_and_padding_layout():
    gm = simulators.get("gaussian-mixture")
    est = fit_inn(gm, options=_opts(steps=1, **TINY), generator=torch.Generator().manual_seed(0), progress=False)
    m = est.model
    # x is 2-D and y an 8-D one-hot label: z gets the full width of x (thesis table B.2: 2 / 8 / 2)
    assert (m.dim_theta, m.dim_x, m.dim_z, m.dim_total) == (2, 8, 2, 10)
    assert (m.pad_theta, m.pad_out) == (8, 0)
    arm = fit_inn(Arm(), options=_opts(steps=1, **TINY), progress=False).model
    assert (arm.dim_theta, arm.dim_x, arm.dim_z, arm.dim_total, arm.pad_theta, arm.pad_out) == (4, 2, 2, 4, 0, 0)


def test_padded_network_is_exactly_invertible_and_splits_into_z_pad_y():
    m = InverseINN(2, 8, 2, 16, blocks=3, hidden=16).double()
    _randomize(m)
    assert (m.pad_theta, m.pad_out) == (14, 6)
    x_in = torch.randn(32, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    out = m(x_in)
    z, pad, y = m.split(out)
    assert z.shape == (32, 2) and pad.shape == (32, 6) and y.shape == (32, 8)
    assert torch.allclose(m.inverse(out), x_in, atol=1e-4, rtol=0)  # STYLE: invertibility 1e-4 in float64


def test_bad_dimensions_are_rejected():
    with pytest.raises(ValueError, match="dim_total"):
        InverseINN(4, 2, 2, 3)
    with pytest.raises(ValueError, match="dim_total"):
        fit_inn(Arm(), options=_opts(steps=1, dim_total=3, **TINY), progress=False)


def test_latent_loss_does_not_send_gradient_into_the_y_output():
    class Spy(InverseINN):
        def forward(self, x_in):
            out = super().forward(x_in)
            out.retain_grad()
            self.out = out
            return out

    m = Spy(4, 2, 2, 4, blocks=2, hidden=16)
    _randomize(m)
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(100, 4, generator=g), torch.randn(100, 2, generator=g)
    only_z = INNLoss(weight_y=0.0, weight_x=0.0, weight_rec=0.0, weight_pad=0.0, weight_z=1.0)
    inn_loss(m, x, y, only_z, generator=g)["loss"].backward()
    z, _, y_out = m.split(m.out.grad)
    assert torch.count_nonzero(y_out) == 0  # blocked exactly
    assert torch.count_nonzero(z) > 0
    m.out = None
    with_y = INNLoss(weight_y=1.0, weight_x=0.0, weight_rec=0.0, weight_pad=0.0, weight_z=0.0)
    inn_loss(m, x, y, with_y, generator=g)["loss"].backward()
    assert torch.count_nonzero(m.split(m.out.grad)[2]) > 0


def test_loss_terms_padding_and_reconstruction():
    m = InverseINN(2, 8, 2, 16, blocks=2, hidden=16)
    _randomize(m)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(50, 2, generator=g)
    y = torch.nn.functional.one_hot(torch.randint(0, 8, (50,), generator=g), 8).float()
    terms = inn_loss(m, x, y, INNLoss(), x_factor=0.5, generator=g)
    assert set(terms) == {"loss", "y", "z", "x", "rec", "pad", "resim"}
    assert terms["resim"] == 0  # off by default
    assert all(torch.isfinite(v) and v >= 0 for v in terms.values())
    o = INNLoss()
    weighted = o.weight_y * terms["y"] + o.weight_pad * terms["pad"] + o.weight_z * terms["z"]
    weighted = weighted + 0.5 * o.weight_x * terms["x"] + o.weight_rec * terms["rec"]
    assert torch.allclose(terms["loss"], weighted, rtol=1e-5)
    assert terms["pad"] > 0 and terms["rec"] > 0
    # without padding there is no pad term and no reconstruction pass
    arm = InverseINN(4, 2, 2, 4, blocks=2, hidden=16)
    t = inn_loss(arm, torch.randn(50, 4, generator=g), torch.randn(50, 2, generator=g), o, generator=g)
    assert t["pad"] == 0 and t["rec"] == 0


def test_ramp_follows_the_reference_schedule():
    assert ramp(0, 100) == pytest.approx(2 * 0.002)
    assert ramp(100, 100) == 1.0
    values = [ramp(s, 100) for s in range(101)]
    assert all(a <= b for a, b in zip(values, values[1:]))


def test_tiny_training_lowers_the_loss():
    opts = _opts(steps=150, lr=1e-2, x_ramp=False, **TINY)
    before = fit_inn(
        Arm(), options=_opts(steps=1, lr=1e-2, **TINY), generator=torch.Generator().manual_seed(4), progress=False
    )
    after = inference.fit(
        Arm(), method="inn", budget=None, options=opts, generator=torch.Generator().manual_seed(4), progress=False
    )
    g = torch.Generator().manual_seed(40)
    theta = simulators.sample_prior(Arm().prior, 500, generator=g)
    x, y = after.model.standardize(theta, Arm().simulate(theta))
    with torch.no_grad():
        l0 = inn_loss(before.model, x, y, opts.loss, generator=torch.Generator().manual_seed(41))
        l1 = inn_loss(after.model, x, y, opts.loss, generator=torch.Generator().manual_seed(41))
    assert l1["loss"] < 0.7 * l0["loss"]
    assert l1["y"] < l0["y"]


def test_fixed_table_when_the_budget_is_small_and_budget_validation():
    opts = _opts(steps=20, **TINY)
    est = fit_inn(Arm(), budget=300, options=opts, generator=torch.Generator().manual_seed(5), progress=False)
    assert est.budget == 300
    with pytest.raises(ValueError, match="at least one batch"):
        fit_inn(Arm(), budget=10, options=opts, progress=False)


def test_training_is_deterministic_under_a_generator():
    opts = _opts(steps=5, **TINY)
    a = fit_inn(Arm(), options=opts, generator=torch.Generator().manual_seed(6), progress=False).model
    b = fit_inn(Arm(), options=opts, generator=torch.Generator().manual_seed(6), progress=False).model
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.fixture(scope="module")
def arm_estimator():
    opts = _opts(steps=10, **TINY)
    return fit_inn(Arm(), options=opts, generator=torch.Generator().manual_seed(7), progress=False)


def test_posterior_shapes_sample_dimension_first(arm_estimator):
    g = torch.Generator().manual_seed(8)
    assert arm_estimator.posterior(torch.tensor([0.5, 1.5])).sample(7, generator=g).shape == (7, 4)
    assert arm_estimator.posterior(torch.zeros(3, 2)).sample(7, generator=g).shape == (7, 3, 4)
    assert arm_estimator.posterior(torch.zeros(2, 3, 2)).sample(5, generator=g).shape == (5, 2, 3, 4)
    p = arm_estimator.posterior(torch.zeros(3, 2, dtype=torch.float64))
    assert p.sample(2, generator=g).dtype == torch.float64 and not p.has_log_prob


def test_bad_observations_get_one_line_errors(arm_estimator):
    for bad in (torch.zeros(3), torch.zeros(4, 3), torch.tensor([0.1, float("nan")])):
        with pytest.raises(ValueError) as e:
            arm_estimator.posterior(bad)
        assert "\n" not in str(e.value)


def test_save_load_round_trip_gives_identical_samples(arm_estimator, tmp_path):
    path = arm_estimator.save(tmp_path / "inn")
    header = json.loads((path / "estimator.json").read_text())
    assert header["method"] == "inn" and header["version"] == 1
    assert header["config"]["network"]["dim_z"] == 2
    loaded = inference.load(path)
    assert loaded.options == arm_estimator.options
    x_o = torch.tensor([[0.3, 1.7], [-0.4, 1.2]])
    a = arm_estimator.posterior(x_o).sample(100, generator=torch.Generator().manual_seed(9))
    b = loaded.posterior(x_o).sample(100, generator=torch.Generator().manual_seed(9))
    assert torch.equal(a, b)
    with pytest.raises(FileExistsError):
        arm_estimator.save(path)


def test_corrupt_weights_are_a_one_line_error(arm_estimator, tmp_path):
    path = arm_estimator.save(tmp_path / "inn")
    header = json.loads((path / "estimator.json").read_text())
    header["config"]["network"]["hidden"] = 17  # a plausible width that the weights do not have
    (path / "estimator.json").write_text(json.dumps(header))
    with pytest.raises(ValueError, match="valid inverse INN|weights do not match the config"):
        inference.load(path)
    header["config"]["network"]["blocks"] = 10**6  # a crafted size: refused from the header, before any building
    (path / "estimator.json").write_text(json.dumps(header))
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="blocks = 1000000 is larger than anything its weights hold"):
        inference.load(path)
    assert time.perf_counter() - t0 < 2


class _BrokenArm(Arm):
    """An arm whose simulations turn to NaN after a few calls (fault injection for the divergence path)."""

    def __init__(self, good_calls: int) -> None:
        super().__init__()
        self.calls, self.good_calls = 0, good_calls

    def simulate(self, theta, *, generator=None):
        self.calls += 1
        x = super().simulate(theta, generator=generator)
        return x if self.calls <= self.good_calls else torch.full_like(x, float("nan"))


def test_a_diverging_run_stops_with_a_clear_message_and_keeps_the_last_good_weights(tmp_path):
    opts = _opts(steps=50, checkpoint_dir=str(tmp_path / "ckpt"), **TINY)
    with pytest.raises(TrainingDiverged, match="step"):
        fit_inn(_BrokenArm(good_calls=25), options=opts, generator=torch.Generator().manual_seed(10), progress=False)
    from safetensors.torch import load_file

    weights = load_file(str(tmp_path / "ckpt" / "checkpoint.safetensors"))
    assert weights and all(torch.isfinite(w).all() for w in weights.values())


# -- cross-entropy option for label-valued y ---------------------------------------------------------------------


def test_label_logits_are_centred_log_probabilities_of_the_smoothed_label():
    y = torch.nn.functional.one_hot(torch.tensor([0, 3, 7]), 8).double()
    u = label_logits(y, 0.05)
    smoothed = 0.95 * y + 0.05 / 8
    assert torch.allclose(torch.softmax(u, -1), smoothed, atol=1e-12, rtol=0)  # exact identity
    assert torch.allclose(u.mean(-1), torch.zeros(3, dtype=torch.float64), atol=1e-12, rtol=0)


def test_cross_entropy_term_is_the_kl_plus_the_shift_penalty_and_zero_at_the_optimum():
    m = InverseINN(2, 8, 2, 16, blocks=2, hidden=16, labels=True, label_smoothing=0.05)
    _randomize(m)
    g = torch.Generator().manual_seed(11)
    label = torch.nn.functional.one_hot(torch.randint(0, 8, (40,), generator=g), 8).float()
    x, y = m.standardize(torch.randn(40, 2, generator=g), label)
    o = INNLoss(y_loss="cross_entropy")
    terms = inn_loss(m, x, y, o, generator=torch.Generator().manual_seed(12))
    with torch.no_grad():
        x_in = torch.cat(
            (x, o.noise_pad * torch.randn(40, m.pad_theta, generator=torch.Generator().manual_seed(12))), -1
        )
        out_y = m.split(m(x_in))[2]
    p = 0.95 * label + 0.05 / 8
    kl = (p * (p.log() - torch.log_softmax(out_y, -1))).sum(-1)
    expected = (kl + out_y.mean(-1) ** 2).mean()
    assert torch.allclose(terms["y"], expected, rtol=1e-5)  # same formula, float32 rounding
    # at f_y(x) = u(y) the KL and the shift penalty vanish: feed the target itself as the output
    kl0 = (p * (p.log() - torch.log_softmax(y, -1))).sum(-1) + y.mean(-1) ** 2
    assert kl0.abs().max() < 1e-5


def test_cross_entropy_training_on_labels_fits_the_labels_and_checks_observations(tmp_path):
    gm = simulators.get("gaussian-mixture", labels="some")
    opts = _opts(steps=150, lr=3e-3, y_loss="cross_entropy", standardize=False, **TINY)
    before = fit_inn(
        gm,
        options=replace(opts, train=replace(opts.train, steps=1)),
        generator=torch.Generator().manual_seed(13),
        progress=False,
    )
    est = fit_inn(gm, options=opts, generator=torch.Generator().manual_seed(13), progress=False)
    assert est.model.labels and est.model.config()["labels"] is True
    g = torch.Generator().manual_seed(14)
    theta = simulators.sample_prior(gm.prior, 500, generator=g)
    x, y = est.model.standardize(theta, gm.simulate(theta, generator=g))
    with torch.no_grad():
        l0 = inn_loss(before.model, x, y, opts.loss, generator=torch.Generator().manual_seed(15))["y"]
        l1 = inn_loss(est.model, x, y, opts.loss, generator=torch.Generator().manual_seed(15))["y"]
    assert l1 < 0.5 * l0
    # observations must be probability vectors; the check survives save / load
    loaded = inference.load(est.save(tmp_path / "gm"))
    assert loaded.model.labels
    for model in (est, loaded):
        with pytest.raises(ValueError, match="probability vector"):
            model.posterior(torch.full((8,), 0.5))
        assert model.posterior(torch.nn.functional.one_hot(torch.tensor(2), 8).float()).sample(5).shape == (5, 2)
    with pytest.raises(ValueError, match="probability vector"):
        fit_inn(Arm(), options=_opts(steps=1, y_loss="cross_entropy", **TINY), progress=False)
    with pytest.raises(ValueError, match="y_loss"):
        INNLoss(y_loss="hinge")


# -- observation-distance weighting of L_x and its decay ---------------------------------------------------------


def test_x_weight_sigma_decays_geometrically_from_start_to_end():
    o = INNLoss(x_weight_sigma=0.5, x_weight_sigma_end=0.05)
    assert x_weight_sigma_at(0, 100, o) == pytest.approx(0.5)
    assert x_weight_sigma_at(50, 100, o) == pytest.approx((0.5 * 0.05) ** 0.5)  # geometric midpoint
    assert x_weight_sigma_at(100, 100, o) == pytest.approx(0.05)
    values = [x_weight_sigma_at(s, 100, o) for s in range(101)]
    assert all(a > b for a, b in zip(values, values[1:]))
    assert x_weight_sigma_at(70, 100, INNLoss(x_weight_sigma=0.5)) == 0.5  # no end: constant
    for bad in ({"x_weight_sigma_end": 0.1}, {"x_weight_sigma": 0.5, "x_weight_sigma_end": 0.0}):
        with pytest.raises(ValueError, match="x_weight_sigma_end"):
            INNLoss(**bad)


def test_weighted_x_loss_uses_the_scheduled_sigma():
    m = InverseINN(4, 2, 2, 4, blocks=2, hidden=16)
    _randomize(m)
    g = torch.Generator().manual_seed(16)
    x, y = torch.randn(60, 4, generator=g), torch.randn(60, 2, generator=g)
    o = INNLoss(x_weight_sigma=1.0, x_weight_sigma_end=0.1)

    def lx(sigma):
        return inn_loss(m, x, y, o, x_weight_sigma=sigma, generator=torch.Generator().manual_seed(17))["x"]

    # recompute the weighted MMD by hand with the same noise draws
    gen = torch.Generator().manual_seed(17)
    y_noisy = y + o.noise_y * torch.randn(y.shape, generator=gen)
    z = torch.randn(60, 2, generator=gen)
    with torch.no_grad():
        x_gen = m.inverse(torch.cat((z, y_noisy), -1))
    w = torch.exp(-0.5 * torch.cdist(y_noisy, y_noisy) ** 2 / 0.1**2)
    assert torch.allclose(lx(0.1), mmd_loss(x, x_gen, o.kernel_x, weights=w), rtol=1e-4, atol=1e-6)
    assert torch.allclose(lx(None), lx(1.0))  # None: the option's start value
    assert not torch.allclose(lx(0.1), lx(1.0))
    fit_inn(Arm(), options=_opts(steps=3, x_weight_sigma=1.0, x_weight_sigma_end=0.1, **TINY), progress=False)


# -- forward fit on re-simulated draws ----------------------------------------------------------------------------


def test_resimulation_term_is_the_forward_fit_on_the_backward_draws():
    arm = Arm()
    m = InverseINN(4, 2, 2, 4, blocks=2, hidden=16)
    _randomize(m, std=0.1)
    g = torch.Generator().manual_seed(18)
    theta = simulators.sample_prior(arm.prior, 80, generator=g)
    m.set_standardization(theta, arm.simulate(theta))
    x, y = m.standardize(theta, arm.simulate(theta))

    def resimulate(xs):
        return m.standardize(None, arm.simulate(xs * m.theta_std + m.theta_mean))[1]

    o = INNLoss(weight_resim=2.0, resim_max=1e6)  # every draw counts
    terms = inn_loss(m, x, y, o, resimulate=resimulate, generator=torch.Generator().manual_seed(19))
    # the same draws by hand: the generator order of inn_loss is y noise, z, (no pad), then the backward pass
    gen = torch.Generator().manual_seed(19)
    y_noisy = y + o.noise_y * torch.randn(y.shape, generator=gen)
    z = torch.randn(80, 2, generator=gen)
    with torch.no_grad():
        x_draw = m.inverse(torch.cat((z, y_noisy), -1))
        err2 = ((m(x_draw)[:, 2:] - resimulate(x_draw)) ** 2).sum(-1)
    expected = err2.mean()
    assert torch.allclose(terms["resim"], expected, rtol=1e-4)
    # resim_max leaves out the draws that land far from their fiber (their terms count as 0)
    middle = err2.sort().values[39:41]
    cut = float(middle.mean().sqrt())  # halfway between two draws, so that rounding cannot move one across
    near = inn_loss(
        m, x, y, replace(o, resim_max=cut), resimulate=resimulate, generator=torch.Generator().manual_seed(19)
    )
    assert torch.allclose(near["resim"], (err2 * (err2 <= cut**2)).sum() / 80, rtol=1e-4)
    without = inn_loss(
        m, x, y, replace(o, weight_resim=0.0), resimulate=resimulate, generator=torch.Generator().manual_seed(19)
    )
    assert torch.allclose(terms["loss"] - without["loss"], 2.0 * expected, rtol=1e-4, atol=1e-5)
    # when the simulator is the network's own forward model f_y the term vanishes (its optimum is f_y = s)
    exact = inn_loss(m, x, y, o, resimulate=lambda xs: m(xs)[:, 2:], generator=torch.Generator().manual_seed(19))
    assert exact["resim"] < 1e-10


def test_resimulation_needs_fresh_simulations():
    with pytest.raises(ValueError, match="weight_resim"):
        fit_inn(Arm(), budget=300, options=_opts(steps=20, weight_resim=1.0, **TINY), progress=False)
    est = fit_inn(Arm(), options=_opts(steps=3, weight_resim=1.0, **TINY), progress=False)
    assert est.history["train"][-1]["resim"] > 0


def test_a_directory_saved_with_the_thesis_names_still_loads(arm_estimator, tmp_path):
    """Estimators saved before the INN used theta / x names (dim_x = parameters, dim_y = observations) load as is."""
    from safetensors.torch import load_file, save_file

    path = arm_estimator.save(tmp_path / "inn")
    header = json.loads((path / "estimator.json").read_text())
    net = header["config"]["network"]
    net["dim_x"], net["dim_y"] = net.pop("dim_theta"), net.pop("dim_x")
    (path / "estimator.json").write_text(json.dumps(header))
    old = {"theta_mean": "x_mean", "theta_std": "x_std", "x_mean": "y_mean", "x_std": "y_std"}
    tensors = load_file(str(path / "weights.safetensors"))
    save_file({old.get(k, k): v for k, v in tensors.items()}, str(path / "weights.safetensors"))
    loaded = inference.load(path)
    x_o = torch.tensor([[0.3, 1.7]])
    a = arm_estimator.posterior(x_o).sample(50, generator=torch.Generator().manual_seed(9))
    b = loaded.posterior(x_o).sample(50, generator=torch.Generator().manual_seed(9))
    assert torch.equal(a, b)
