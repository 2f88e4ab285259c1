"""Distilling an FMPE teacher into the cINN: the student learns the teacher's map and the exact posterior; bad
teachers are refused in one line before any training."""

import math

import pytest
import torch

import inference
import simulators
from inference.posterior.cinn.distill import aligned_noise

SMALL = {"hidden": 32, "blocks": 2, "summary_dim": 8, "summary_hidden": 32, "val_every": 100}


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    sim = simulators.get("gaussian-linear", dim=2)
    opts = {"hidden": 64, "blocks": 2, "summary_dim": 8, "summary_hidden": 32, "steps": 1500, "val_every": 250}
    est = inference.fit(
        sim, method="fmpe", budget=4000, options=opts, generator=torch.Generator().manual_seed(0), progress=False
    )
    return est.save(tmp_path_factory.mktemp("teacher") / "fmpe")


@pytest.fixture(scope="module")
def student(teacher_dir):
    sim = simulators.get("gaussian-linear", dim=2)
    opts = {**SMALL, "teacher": str(teacher_dir), "teacher_draws": 4, "steps": 800, "restarts": 1}
    return inference.fit(
        sim, method="cinn", budget=4000, options=opts, generator=torch.Generator().manual_seed(1), progress=False
    )


def test_the_student_learns_the_teachers_map(teacher_dir, student):
    teacher = inference.load(teacher_dir)
    x = torch.tensor([[0.3, -0.2], [-0.5, 0.1]])
    h_t, h_s = teacher.model.summarize(x), student.model.summarize(x)
    z = torch.randn(500, 2, 2, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        u = teacher.model.solve(z, teacher.model.condition_terms(h_t), 0.0, 1.0, "euler", 32, 0, 0)
        want = teacher.model.to_theta(u)
        got = student.model.to_theta(student.model.flow.sample_inverse(aligned_noise(student.model, z), h_s))
    assert float((got - want).abs().median()) < 0.015  # posterior sd 0.22; measured 0.0035
    assert student.info["best_val_loss"] is not None


def test_the_student_draws_the_exact_posterior(student):
    x_o = torch.tensor([[0.3, -0.2], [-0.5, 0.1]])
    draws = student.posterior(x_o).sample(4000, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(draws.mean(0), x_o / 2, atol=0.03, rtol=0)  # measured 0.0057
    torch.testing.assert_close(draws.std(0), torch.full((2, 2), math.sqrt(0.05)), atol=0, rtol=0.06)  # measured 2.7%


def test_the_student_saves_and_loads_without_its_teacher(student, tmp_path):
    loaded = inference.load(student.save(tmp_path / "student"))
    assert loaded.options.teacher == student.options.teacher
    x_o = torch.tensor([0.3, -0.2])
    g = torch.Generator
    torch.testing.assert_close(
        loaded.posterior(x_o).sample(5, generator=g().manual_seed(0)),
        student.posterior(x_o).sample(5, generator=g().manual_seed(0)),
    )


def test_bad_teachers_are_refused_before_training(teacher_dir, tmp_path):
    lin2 = simulators.get("gaussian-linear", dim=2)
    cinn = inference.fit(lin2, method="cinn", budget=1000, options={**SMALL, "steps": 2, "restarts": 1}, progress=False)
    cases = [
        (lin2, str(cinn.save(tmp_path / "cinn")), 1000, "is a 'cinn' estimator; the teacher must be an 'fmpe' one"),
        (simulators.get("gaussian-linear", dim=3), str(teacher_dir), 1000, "was trained for gaussian-linear"),
        (simulators.get("arm", noise_std=0.1, n_obs=3), str(teacher_dir), 1000, "not sets"),
        (lin2, str(teacher_dir), None, "fixed budget"),
        (lin2, str(tmp_path / "missing"), 1000, "does not exist"),
    ]
    for sim, teacher, budget, match in cases:
        with pytest.raises((ValueError, FileNotFoundError), match=match):
            inference.fit(sim, method="cinn", budget=budget, options={"teacher": teacher}, progress=False)


def test_aligning_the_noise_is_what_lets_the_regression_learn(teacher_dir):
    """Without aligned noise the couplings would first have to undo the student's permutations: where they swap the two
    coordinates, the regression stalls near the variance of the draws (the student ignores the noise); aligned, it
    learns the map."""
    from inference.posterior.cinn.distill import distillation_loss, teacher_pairs
    from inference.posterior.cinn.method import _fresh_model

    sim = simulators.get("gaussian-linear", dim=2)
    g = torch.Generator().manual_seed(0)
    theta = simulators.sample_prior(sim.prior, 2000, generator=g)
    x = sim.simulate(theta, generator=g)
    opts = inference.make_options("cinn", {**SMALL, "blocks": 6})
    seed = next(  # a student whose permutations swap the two coordinates overall
        s
        for s in range(50)
        if not torch.equal(
            aligned_noise(_fresh_model(sim, opts, torch.Generator().manual_seed(s)), torch.eye(2)), torch.eye(2)
        )
    )
    final = {}
    for aligned in (True, False):
        model = _fresh_model(sim, opts, torch.Generator().manual_seed(seed))
        model.set_standardization(theta, x)
        pairs = teacher_pairs(inference.load(teacher_dir), model, x, 2, 16, g, False)
        opt = torch.optim.Adam(model.parameters(), 1e-3)
        for _ in range(300):
            j = torch.randint(0, len(pairs.index), (256,), generator=g)
            xb, zb, ub = x[pairs.index[j]], pairs.z[j], pairs.u[j]
            if aligned:
                loss = distillation_loss(model, xb, zb, ub)["distill"]
            else:
                raw, _ = model.flow.inverse(zb, model.summarize(xb))  # the raw latent regressed onto u directly
                loss = (raw - ub).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        final[aligned] = float(loss)
    assert final[True] < 0.01 < 0.1 < final[False]


def test_the_pull_moves_draws_to_the_exact_denoised_estimate(teacher_dir, student):
    """The pull's gradient step is the teacher's denoiser: on a Gaussian posterior N(m, s^2 I) it matches the exact
    E[theta_1 | theta_t] of the OT path at t = 1 - pull_time, computed in the teacher's standardized units."""
    from inference.posterior.cinn.distill import teacher_pull

    teacher, sm = inference.load(teacher_dir), student.model
    tm, t = teacher.model, 0.8
    x = torch.tensor([0.3, -0.2]).expand(400, 2)
    m, s2 = (x / 2 - tm.theta_mean) / tm.theta_std, 0.05 / tm.theta_std**2  # the posterior, teacher's units
    g = torch.Generator().manual_seed(4)
    u = t * (m + s2.sqrt() * torch.randn(400, 2, generator=g)) + (1 - t) * torch.randn(400, 2, generator=g)
    theta = u * tm.theta_std + tm.theta_mean  # draws of the path at t, where the teacher was trained
    pred = ((theta - sm.theta_mean) / sm.theta_std).requires_grad_()
    teacher_pull(sm, teacher, x, pred, 1 - t).backward()
    moved = theta - pred.grad * pred.numel() / 2 * sm.theta_std  # the draw plus the step its gradient takes
    exact = (m + t * s2 / (t**2 * s2 + (1 - t) ** 2) * (u - t * m)) * tm.theta_std + tm.theta_mean
    error, step = (moved - exact).norm(dim=-1).median(), (theta - exact).norm(dim=-1).median()
    assert float(error) < 0.1 * float(step)  # measured 0.061: the teacher's field is a 1500-step fit, not exact
