"""The conditional INN: invertibility, log-determinants, sampling paths, save/load, set-valued observations, errors.

Trained models here are tiny (a few hundred steps on CPU); the accuracy claims of the issue (calibration, re-simulation
error, C2ST) are measured by benchmarks/vs_sbi.py and the slow test at the bottom.
"""

import json
import math

import pytest
import torch

import inference
import simulators
import zoo.estimators as zoo_estimators
from inference.networks.conditional_flow import build_flow
from inference.posterior.cinn import CINNOptions, ConditionalINN

TINY = {
    **{"blocks": 2, "hidden": 32, "summary_dim": 8, "summary_hidden": 32, "batch_size": 256, "val_every": 100},
    "restarts": 1,
}


@pytest.fixture(scope="module")
def arm_estimator():
    return inference.fit(
        simulators.get("arm"),
        method="cinn",
        budget=3000,
        options={**TINY, "steps": 200},
        generator=torch.Generator().manual_seed(0),
        progress=False,
    )


@pytest.fixture(scope="module")
def set_estimator():
    sim = simulators.get("arm", noise_std=0.3, n_obs="1-16")
    return inference.fit(
        sim,
        method="cinn",
        budget=4000,
        options={**TINY, "steps": 600, "lr": 3e-3},
        generator=torch.Generator().manual_seed(0),
        progress=False,
    )


def _perturbed_flow(coupling, actnorm, generator, dim=4):
    # built inside a seeded fork of the global RNG: the layers' default init draws from the global generator, so the
    # network would otherwise depend on test order (the float32 round-off bound below failed for 10 of 800 global
    # states)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        flow = build_flow(dim, cond_dim=3, coupling=coupling, blocks=3, hidden=16, actnorm=actnorm).double()
    with torch.no_grad():  # leave the identity initialization, so the test sees a non-trivial map
        for p in flow.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    return flow


@pytest.mark.parametrize("coupling, actnorm", [("affine", False), ("affine", True), ("spline", False)])
def test_flow_is_invertible_and_log_det_matches_autograd(coupling, actnorm, generator):
    flow = _perturbed_flow(coupling, actnorm, generator)
    x = torch.randn(6, 4, generator=generator, dtype=torch.float64)
    c = torch.randn(6, 3, generator=generator, dtype=torch.float64)
    z, log_det = flow(x, c)
    x_back, log_det_inv = flow.inverse(z, c)
    # exact identities in float64 (tolerance basis: STYLE.md, invertibility 1e-4, log-det 1e-3; float64 is tighter)
    assert torch.allclose(x_back, x, atol=1e-8)
    assert torch.allclose(log_det_inv, -log_det, atol=1e-8)
    for i in range(3):
        jac = torch.autograd.functional.jacobian(lambda v, i=i: flow(v[None], c[i : i + 1])[0][0], x[i])
        assert torch.allclose(torch.linalg.slogdet(jac).logabsdet, log_det[i], atol=1e-6)


# dim 4: the block halves (2) enter the first layer as rank-1 updates; dim 12: halves of 6 take the matmul path;
# affine flows with and without ActNorm take the transposed (by-rows) path without gradients
@pytest.mark.parametrize(
    "coupling, dim, actnorm", [("affine", 4, False), ("affine", 4, True), ("affine", 12, True), ("spline", 4, True)]
)
def test_shared_condition_sampling_path_equals_the_plain_inverse(coupling, dim, actnorm, generator):
    flow = _perturbed_flow(coupling, actnorm, generator, dim)
    z = torch.randn(5, 7, dim, generator=generator, dtype=torch.float64)
    c = torch.randn(7, 3, generator=generator, dtype=torch.float64)
    plain, _ = flow.inverse(z, c.expand(5, 7, 3))
    with torch.no_grad():  # the sampling path: transposed, fused and in-place steps
        assert torch.allclose(flow.sample_inverse(z, c), plain, atol=1e-10)
    fast = flow.sample_inverse(z, c)  # with gradients (the fiber model trains through its samples)
    assert torch.allclose(fast, plain, atol=1e-10)
    fast.square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in flow.parameters() if p.requires_grad)
    assert sum(float(p.grad.abs().sum()) for p in flow.parameters() if p.grad is not None) > 0
    # float32 on the CPU takes oneDNN's fused linear + ReLU. The perturbed flow amplifies round-off (outputs reach
    # O(1e3)), so the basis is the plain float32 inverse's own error against float64: the fast path's error must be
    # of the same order (at most 4x; measured 0.6-1.1x)
    with torch.no_grad():
        exact = flow.inverse(z, c.expand(5, 7, 3))[0]
        f32 = flow.float()
        plain = f32.inverse(z.float(), c.float().expand(5, 7, 3))[0].double()
        fast = f32.sample_inverse(z.float(), c.float()).double()
    scale = exact.abs().clamp_min(1.0)
    assert ((fast - exact).abs() / scale).max() <= 4 * ((plain - exact).abs() / scale).max() + 1e-6


def test_log_prob_and_sample_agree_on_the_change_of_variables(generator):
    # log q(theta | x) of a draw equals log N(z) - log|det d theta / d z| computed along the sampling path
    m = ConditionalINN(4, (2,), summary="mlp", summary_dim=8, flow={"blocks": 2, "hidden": 16}).double()
    with torch.no_grad():
        for p in m.flow.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
        m.theta_std.copy_(torch.tensor([0.5, 2.0, 1.0, 0.25]))
    x = torch.randn(3, 2, generator=generator, dtype=torch.float64)
    h = m.summarize(x)
    z = torch.randn(4, 3, 4, generator=generator, dtype=torch.float64)
    u, log_det_inv = m.flow.inverse(z, h.expand(4, 3, h.shape[-1]))
    theta = u * m.theta_std + m.theta_mean
    expected = -0.5 * z.square().sum(-1) - 2 * math.log(2 * math.pi) - log_det_inv - m.theta_std.log().sum()
    assert torch.allclose(m.log_prob(theta, x.expand(4, 3, 2)), expected, atol=1e-8)


def test_registered_and_batched_shapes(arm_estimator, generator):
    assert "cinn" in inference.methods()
    x = simulators.get("arm").simulate(torch.zeros(2, 3, 4))
    post = arm_estimator.posterior(x)
    s = post.sample(5, generator=generator)
    assert s.shape == (5, 2, 3, 4)
    assert post.log_prob(s).shape == (5, 2, 3)
    assert torch.isfinite(post.log_prob(s)).all()


def test_posterior_is_per_observation(arm_estimator):
    # batched sampling must equal sampling each observation alone with the same latent draws
    x = simulators.get("arm").simulate(torch.randn(3, 4, generator=torch.Generator().manual_seed(1)) * 0.3)
    joint = arm_estimator.posterior(x).sample(4, generator=torch.Generator().manual_seed(2))
    z = torch.randn((4, 3, 4), generator=torch.Generator().manual_seed(2))
    m = arm_estimator.model
    for i in range(3):
        h = m.summarize(x[i : i + 1])
        alone = m.flow.sample_inverse(z[:, i : i + 1], h) * m.theta_std + m.theta_mean
        assert torch.allclose(joint[:, i], alone[:, 0], atol=1e-5)


def test_threaded_sampling_equals_single_threaded_sampling(arm_estimator):
    # with several torch threads the chunks run on Python threads, each op on one thread: same ops, same draws
    x = simulators.get("arm").simulate(torch.randn(4096, 4, generator=torch.Generator().manual_seed(3)) * 0.3)
    post = arm_estimator.posterior(x)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        alone = post.sample(20, generator=torch.Generator().manual_seed(4))  # 3 chunks of 8 draws x 4096
        torch.set_num_threads(2)
        threaded = post.sample(20, generator=torch.Generator().manual_seed(4))
        assert torch.get_num_threads() == 2  # restored after the threaded passes
    finally:
        torch.set_num_threads(before)
    assert torch.equal(threaded, alone)


def test_training_lowers_the_validation_loss(arm_estimator):
    # a standard normal latent with the identity flow scores 0.5 log(2 pi e) ~ 1.42 nats per dimension
    assert arm_estimator.info["best_val_loss"] < 0.5 * math.log(2 * math.pi * math.e) - 0.3


def test_save_load_gives_identical_samples(arm_estimator, tmp_path):
    path = arm_estimator.save(tmp_path / "est")
    loaded = inference.load(path)
    x = simulators.get("arm").simulate(torch.zeros(2, 4))
    a = arm_estimator.posterior(x).sample(50, generator=torch.Generator().manual_seed(3))
    b = loaded.posterior(x).sample(50, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert torch.equal(arm_estimator.misspecification(x).distance, loaded.misspecification(x).distance)
    with pytest.raises(FileExistsError):
        arm_estimator.save(path)


def test_fit_is_deterministic_under_a_fixed_generator():
    def fit():
        return inference.fit(
            simulators.get("gaussian-mixture"),
            method="cinn",
            budget=1000,
            options={**TINY, "steps": 20, "val_every": 10},
            generator=torch.Generator().manual_seed(7),
            progress=False,
        )

    a, b = fit(), fit()
    for (k, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(va, vb), k


def test_set_posterior_narrows_as_the_set_grows(set_estimator, generator):
    """The end points re-simulated from posterior draws spread like the exact posterior: ~noise / sqrt(K).

    For the exact posterior the spread falls from ~0.33 (K = 1) to ~0.10 (K = 16). The tiny model trained for 600
    steps only gets part of the way (measured: 0.25 -> 0.15), so we claim the direction with a margin: the spread at
    K = 16 is below 3/4 of the spread at K = 1 (each spread averages 200 sets x 100 draws).
    """
    sim = set_estimator.simulator
    theta = torch.tensor([[0.1, 0.2, -0.3, 0.4]])
    spread = {}
    for k in (1, 16):
        x = sim.simulate(theta.expand(200, 4), n_obs=k, generator=generator)  # 200 observed sets
        draws = set_estimator.posterior(x).sample(100, generator=generator)
        spread[k] = (sim.forward(draws) - sim.forward(draws).mean(0)).square().sum(-1).mean().sqrt()
    assert spread[16] < 0.75 * spread[1], spread


def test_set_summary_ignores_the_order_of_the_set(set_estimator, generator):
    x = set_estimator.simulator.simulate(torch.zeros(3, 4), n_obs=9, generator=generator)
    perm = torch.randperm(9, generator=generator)
    h = set_estimator.model.summarize(x)
    assert torch.allclose(h, set_estimator.model.summarize(x[:, perm]), atol=1e-5)


def test_reference_posterior_of_a_set_uses_the_set_mean(generator):
    """Exact: the arm's set posterior equals the single-observation posterior at the mean with noise / sqrt(K).

    Checked through the re-simulated spread: for K = 25 and noise 0.3 the end points of the reference draws spread
    around the set mean with per-axis std 0.3 / 5 = 0.06 (4000 draws: 4 MC standard errors ~ 4.5%).
    """
    sim = simulators.get("arm", noise_std=0.3, n_obs=25)
    x = sim.simulate(torch.tensor([0.0, 0.2, 0.1, -0.1], dtype=torch.float64), generator=generator)
    draws = sim.reference_posterior(x, 4000, generator=generator, proposals=400_000)
    y = sim.forward(draws)
    # the prior curvature shrinks the spread slightly below the likelihood width: only the upper side is tight
    assert ((y.mean(0) - x.mean(0)).abs() < 4 * 0.06 / math.sqrt(4000) * 10).all()
    assert (y.std(0) < 0.06 * 1.045).all() and (y.std(0) > 0.06 * 0.7).all(), y.std(0)


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.zeros(5, 3), r"shape \(\*, K, 2\)"),
        (torch.zeros(0, 2), "empty set"),
        (torch.tensor([[0.0, float("nan")]]), "NaN"),
    ],
)
def test_bad_set_observations_give_one_line_errors(set_estimator, bad, match):
    with pytest.raises(ValueError, match=match) as info:
        set_estimator.posterior(bad)
    assert "\n" not in str(info.value)


def test_bad_single_observation(arm_estimator):
    with pytest.raises(ValueError, match=r"shape \(\*, 2\)"):
        arm_estimator.posterior(torch.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        arm_estimator.posterior(torch.tensor([float("nan"), 1.0]))


def test_corrupt_or_mismatched_weights_name_the_file(arm_estimator, tmp_path):
    path = arm_estimator.save(tmp_path / "est")
    (path / "weights.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="weights.safetensors.*corrupt"):
        inference.load(path)
    path = arm_estimator.save(tmp_path / "est2")
    cfg = json.loads((path / "estimator.json").read_text())
    cfg["config"]["model"]["flow"]["hidden"] = 48
    (path / "estimator.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="weights.safetensors does not match.*retrain|weights do not match the config"):
        inference.load(path)


def test_restarts_keep_the_network_with_the_best_held_out_calibration():
    from inference.posterior.cinn.method import _held_out_calibration, fit_cinn

    sim = simulators.get("arm")
    gen = torch.Generator().manual_seed(3)
    theta = simulators.sample_prior(sim.prior, 3000, generator=gen)
    table = (theta, sim.simulate(theta))
    opts = inference.make_options("cinn", {**TINY, "steps": 60, "val_every": 30, "restarts": 3})
    est = fit_cinn(sim, budget=None, options=opts, generator=gen, progress=False, simulations=table)
    errors = est.info["restart_calibration_errors"]
    assert len(errors) == 3 and len(set(errors)) == 3  # three different networks
    assert est.info["restart_kept"] == errors.index(min(errors))
    # the kept network is the one scored min(errors): re-scoring it on its validation rows (the table's last 256)
    # with the recorded latent seed gives the same number (rounded to 5 decimals in info)
    val = (theta[-256:], table[1][-256:])
    seed = est.info["restart_calibration_seed"]
    assert est.info["restart_criterion"] == "parameters"  # the default: the mean of the per-parameter errors
    again = _held_out_calibration(est.model, *val, 1, seed, "parameters")
    assert again == pytest.approx(min(errors), abs=1e-5)
    # the pooled criterion scores the same draws with the inlier fractions pooled over parameters: another number
    pooled = _held_out_calibration(est.model, *val, 1, seed, "pooled")
    assert pooled != pytest.approx(again, abs=1e-4)
    with pytest.raises(ValueError, match="restart_criterion must be one of 'parameters', 'pooled'"):
        inference.fit(sim, method="cinn", budget=3000, options={"restart_criterion": "best"}, progress=False)
    with pytest.raises(ValueError, match="restarts must be an integer >= 1"):
        inference.fit(sim, method="cinn", budget=3000, options={"restarts": 0}, progress=False)


def test_unknown_coupling_and_tiny_budget():
    sim = simulators.get("arm")
    with pytest.raises(ValueError, match="coupling must be"):
        inference.fit(sim, method="cinn", budget=5000, options={"coupling": "glow"}, progress=False)
    with pytest.raises(ValueError, match="budget 300 is too small"):
        inference.fit(sim, method="cinn", budget=300, options=CINNOptions(), progress=False)


# -- the shipped estimators (zoo/estimators/) --------------------------------------------------------------------


@pytest.mark.parametrize("name", zoo_estimators.names())
def test_shipped_estimators_load_by_name(name):
    import zoo.estimators

    entry = zoo.estimators.get(name)
    est = inference.load(name)
    assert est.simulator.name == entry.simulator and est.budget == entry.budget
    x = est.simulator.simulate(simulators.sample_prior(est.simulator.prior, 3, generator=torch.Generator()))
    assert est.posterior(x).sample(10).shape == (10, 3, len(est.simulator.param_names))
    default = zoo.estimators.default_for(entry.simulator, est.simulator.options)
    assert default == entry if entry.default else default is not None and default.name != name


def test_one_default_per_simulator_and_options():
    import zoo.estimators

    defaults = [e for e in map(zoo.estimators.get, zoo.estimators.names()) if e.default]
    keys = [(e.simulator, sorted(e.simulator_options.items(), key=str)) for e in defaults]
    assert all(keys.count(k) == 1 for k in keys)


def test_missing_shipped_files_say_retrain(monkeypatch, tmp_path):
    import zoo.estimators

    monkeypatch.setattr(zoo.estimators, "ROOT", tmp_path)
    with pytest.raises(FileNotFoundError, match="arm-cinn.*--retrain"):
        inference.load("arm-cinn")


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_shipped_weights_name_the_file_and_say_retrain(monkeypatch, tmp_path, damage):
    import shutil

    import zoo.estimators

    shutil.copytree(zoo.estimators.get("arm-cinn").directory, tmp_path / "arm-cinn")
    weights = tmp_path / "arm-cinn" / "weights.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"\x00not a safetensors file" * 10)
    monkeypatch.setattr(zoo.estimators, "ROOT", tmp_path)
    with pytest.raises(ValueError, match="arm-cinn.*weights.safetensors.*--retrain") as info:
        inference.load("arm-cinn")
    assert "\n" not in str(info.value)


@pytest.mark.slow
def test_shipped_arm_estimator_matches_the_thesis_inn():
    """Issue 6 acceptance: calibration error <= 1.0% and mean re-simulation error <= 0.0139 (thesis table 4.1).

    1000 test cases x 1000 draws, as in the issue's sbi table (calibration error: 4 MC standard errors of an inlier
    fraction over 4000 pooled marginal intervals ~ 3%, but the median over 100 levels averages most of that out).
    """
    from inference.evaluation import diagnostics

    est = inference.load("arm-cinn")
    arm = est.simulator
    g = torch.Generator().manual_seed(2024)
    theta = simulators.sample_prior(arm.prior, 1000, generator=g)
    x = arm.simulate(theta)
    draws = est.posterior(x).sample(1000, generator=g)
    assert diagnostics.calibration_error(draws, theta).error <= 0.010
    assert diagnostics.resimulation_error(arm.simulate(draws.double()), x.double()).mean() <= 0.0139


@pytest.mark.slow
def test_shipped_gaussian_mixture_estimator_c2st_per_label():
    """Issue 6 acceptance: C2ST <= 0.6 against the exact posterior for every label (2000 draws each)."""
    from inference.evaluation import diagnostics

    est = inference.load("gaussian-mixture-cinn")
    gm = est.simulator
    g = torch.Generator().manual_seed(0)
    for label in range(gm.n_labels):
        x = torch.nn.functional.one_hot(torch.tensor(label), 8).float()
        q = est.posterior(x).sample(2000, generator=g)
        ref = gm.reference_posterior(x, 2000, generator=g)
        assert diagnostics.c2st(q.numpy(), ref.numpy()) <= 0.6, label


def test_tissue_sets_train_a_deepset_cinn():
    """Tissue with K spectra of the same tissue: the cINN gets a DeepSet summary and takes any K in range."""
    from inference.networks.summary import DeepSet

    sim = simulators.get("tissue", n_obs="1-4")
    opts = inference.make_options("cinn", {"steps": 5, "blocks": 2, "hidden": 16, "batch_size": 64, "restarts": 1})
    est = inference.fit(sim, method="cinn", budget=400, options=opts, generator=torch.Generator().manual_seed(0))
    assert isinstance(est.model.summary, DeepSet)
    theta = simulators.sample_prior(sim.prior, 2, generator=torch.Generator().manual_seed(1))
    for k in (1, 4):
        x = sim.simulate(theta, n_obs=k, generator=torch.Generator().manual_seed(2))
        assert est.posterior(x).sample(3).shape == (3, 2, 13)


def test_default_width_scales_with_the_budget():
    from inference.posterior.cinn.options import SMALL_BUDGET, with_budget_defaults

    opts = inference.make_options("cinn", {})
    assert opts.hidden is None
    assert with_budget_defaults(opts, 10_000).hidden == 48 and with_budget_defaults(opts, SMALL_BUDGET).hidden == 32
    assert with_budget_defaults(opts, None).hidden == 32  # online: simulations without end
    online = inference.make_options("cinn", {"online": True})
    assert with_budget_defaults(online, 10_000).hidden == 32
    assert with_budget_defaults(inference.make_options("cinn", {"hidden": 16}), 10_000).hidden == 16
    est = inference.fit(
        simulators.get("arm"), method="cinn", budget=2000, options={"blocks": 2, "steps": 5, "restarts": 1},
        progress=False,
    )  # fmt: skip
    assert est.options.hidden == 48 and est.model.architecture["flow"]["hidden"] == 48
