"""Reference posteriors by MCMC: the No-U-Turn sampler (pyro) for simulators with a likelihood.

Targets p(theta | x_o) ∝ p(theta) p(x_o | theta), potential energy U(theta) = -log p(theta) - log p(x_o | theta),
using the simulator's ``prior.log_prob`` and ``log_likelihood(theta, x)`` (present for ``arm`` with ``noise_std > 0``
and for ``gaussian-mixture``). Several chains start from independent prior draws; split R-hat and the effective
sample size (pyro.ops.stats) are reported per observation and parameter in ``sample_stats``, so a chain stuck in one
mode of a multimodal posterior shows up as R-hat >> 1.

Randomness: pyro's samplers draw from torch's global RNG and accept no generator. To keep the library free of global
seeding, each chain runs inside ``torch.random.fork_rng()`` seeded from the caller's generator, so results are
reproducible from that generator and the caller's global RNG state is restored afterwards.

References:
    Hoffman & Gelman, *The No-U-Turn Sampler*, JMLR 2014; Bingham et al., *Pyro*, JMLR 2019;
    Vehtari et al., *Rank-normalization, folding, and localization: an improved R-hat*, Bayesian Analysis 2021.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from pyro.infer.mcmc import MCMC, NUTS
from pyro.ops.stats import effective_sample_size, split_gelman_rubin
from tqdm.auto import tqdm

import simulators
from inference.estimator_dir import EstimatorFiles, save_estimator
from inference.methods import register_method
from simulators import Simulator, check_theta, validate_observation


@dataclass(frozen=True)
class NUTSOptions:
    """Options of the NUTS reference sampler.

    Attributes:
        chains: independent chains per observation (run one after another), each started from a prior draw.
        warmup: warm-up (adaptation) steps per chain.
        target_accept: target acceptance probability of the step-size adaptation.
        max_tree_depth: maximum tree depth (2^depth leapfrog steps at most per draw).
    """

    chains: int = 2
    warmup: int = 300
    target_accept: float = 0.8
    max_tree_depth: int = 8

    def __post_init__(self) -> None:
        if self.chains < 1 or self.warmup < 0 or self.max_tree_depth < 1:
            raise ValueError(
                f"NUTS needs chains >= 1, warmup >= 0, max_tree_depth >= 1; got {self.chains}, {self.warmup}, "
                f"{self.max_tree_depth}"
            )
        if not 0 < self.target_accept < 1:
            raise ValueError(f"NUTS target_accept must be in (0, 1), got {self.target_accept}")


class NUTSReference:
    """NUTS posterior sampling for a simulator with a likelihood (not amortized: each query runs the chains).

    Arguments:
        simulator: a simulator with ``log_likelihood(theta, x)``.
        options: :class:`NUTSOptions`.
        budget: recorded only (NUTS runs no simulations).
        progress: show a progress bar over the NUTS steps (warm-up and sampling, every chain and observation).

    Example:
        >>> import torch, simulators, inference
        >>> gm = simulators.get("gaussian-mixture", labels="all")
        >>> est = inference.fit(gm, method="nuts", budget=None, options={"warmup": 50}, progress=False)
        >>> x_o = torch.nn.functional.one_hot(torch.tensor(2), 8).float()
        >>> est.posterior(x_o).sample(40, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([40, 2])

    References:
        Hoffman & Gelman, JMLR 2014.
    """

    method = "nuts"

    def __init__(
        self, simulator: Simulator, options: NUTSOptions, budget: int | None = None, *, progress: bool = True
    ) -> None:
        if not hasattr(simulator, "log_likelihood"):
            raise ValueError(
                f"method 'nuts' needs a simulator with a likelihood; {simulator.name!r} with options "
                f"{getattr(simulator, 'options', {})} has none (for the arm use --sim-option noise_std=0.01)"
            )
        self.simulator = simulator
        self.options = options
        self.budget = budget
        self.progress = progress

    def posterior(self, x_o: torch.Tensor) -> NUTSPosterior:
        """The NUTS posterior for observations ``x_o`` of shape ``(*batch, *obs_shape)``."""
        return NUTSPosterior(self, validate_observation(self.simulator, x_o)[0])

    def save(self, directory: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write ``estimator.json`` (NUTS has no weights)."""
        return save_estimator(
            directory,
            self,
            overwrite=overwrite,
        )


class NUTSPosterior:
    """NUTS draws for a batch of observations; ``n`` draws = ``chains`` chains of ``n / chains`` draws."""

    has_log_prob = False

    def __init__(self, estimator: NUTSReference, x_o: torch.Tensor) -> None:
        self.estimator = estimator
        self.x_o = x_o
        self.n_chains = estimator.options.chains

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` samples per observation, shape ``(n, *batch, D)``, chain-major."""
        return self.sample_with_stats(n, generator=generator)[0]

    def log_prob(self, theta: torch.Tensor) -> torch.Tensor:
        raise ValueError("NUTS gives samples only (has_log_prob is False); use sample()")

    def sample_with_stats(
        self, n: int, *, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Run the chains for every observation.

        Returns:
            ``theta`` of shape ``(n, *batch, D)`` (chain-major) and a dict with ``r_hat`` and ``ess`` of shape
            ``(*batch, D)`` (split R-hat, effective sample size over all chains) and ``divergences`` ``(*batch)``.

        Raises:
            ValueError: if ``n`` is not a positive multiple of the number of chains.
        """
        est, opts = self.estimator, self.estimator.options
        sim = est.simulator
        chains = opts.chains
        if not isinstance(n, int) or n < chains or n % chains:
            raise ValueError(f"n={n!r} must be a positive multiple of the {chains} NUTS chains")
        per_chain = n // chains
        obs_shape = tuple(sim.obs_shape)
        batch = self.x_o.shape[: self.x_o.ndim - len(obs_shape)]
        flat = self.x_o.reshape(-1, *obs_shape)
        dim = len(sim.param_names)
        out, r_hat, ess, div = [], [], [], []
        steps = opts.warmup + per_chain
        bar = tqdm(total=flat.shape[0] * chains * steps, desc="NUTS", unit="step", disable=not est.progress)
        for i, x in enumerate(flat):
            samples, n_div = [], 0
            for c in range(chains):
                if flat.shape[0] > 1:
                    bar.set_postfix_str(f"observation {i + 1}/{flat.shape[0]}, chain {c + 1}/{chains}", refresh=False)
                else:
                    bar.set_postfix_str(f"chain {c + 1}/{chains}", refresh=False)
                init = check_theta(simulators.sample_prior(sim.prior, 1, generator=generator)[0], dim)
                seed = int(torch.randint(0, 2**62, (), generator=generator))
                s, d = _run_chain(sim, x, init, per_chain, opts, seed, tick=lambda: bar.update(1))
                samples.append(s)
                n_div += d
            s = torch.stack(samples)  # (chains, per_chain, D)
            out.append(s.reshape(n, dim))
            r_hat.append(split_gelman_rubin(s) if per_chain >= 4 else torch.full((dim,), float("nan")))
            ess.append(effective_sample_size(s) if per_chain >= 4 else torch.full((dim,), float("nan")))
            div.append(n_div)
        bar.close()
        theta = torch.stack(out, 1).reshape(n, *batch, dim).to(self.x_o)
        stats = {
            "r_hat": torch.stack(r_hat).reshape(*batch, dim),
            "ess": torch.stack(ess).reshape(*batch, dim),
            "divergences": torch.tensor(div).reshape(batch),
        }
        return theta, stats


def _run_chain(
    sim: Simulator,
    x: torch.Tensor,
    init: torch.Tensor,
    n: int,
    opts: NUTSOptions,
    seed: int,
    tick: Callable[[], None] = lambda: None,
) -> tuple[torch.Tensor, int]:
    """One NUTS chain for one observation; returns draws (n, D) and the number of divergent transitions.

    ``tick`` is called after every warm-up and sampling step (the progress bar counts steps, not chains).

    The chain runs in float64: likelihoods built from softmax responsibilities (the gaussian mixture) underflow to
    log 0 in float32 a few mode widths away from the data, which breaks the step-size search.
    """
    init = init.to(torch.float64)
    x = x.to(init)

    def potential(params: dict[str, torch.Tensor]) -> torch.Tensor:
        theta = params["theta"]
        if not torch.isfinite(theta).all():  # an exploding trajectory: infinite energy, counted as divergent
            return theta.sum() * 0 + float("inf")
        return -(sim.prior.log_prob(theta) + sim.log_likelihood(theta, x))

    kernel = NUTS(
        potential_fn=potential,
        target_accept_prob=opts.target_accept,
        max_tree_depth=opts.max_tree_depth,
        adapt_mass_matrix=True,
    )
    # Divergences from the kernel's record (post-warm-up divergent steps), read while sampling: MCMC.diagnostics()
    # would also compute a one-chain R-hat, which fails for fewer than 4 draws.
    record = {"divergences": 0}

    def hook(kern, _params, stage, _i) -> None:
        tick()
        if stage == "Sample":
            record["divergences"] = len(kern.diagnostics()["divergences"])

    with torch.random.fork_rng(devices=[]):  # pyro uses the global RNG: seed a fork, restore the caller's state
        torch.manual_seed(seed)
        mcmc = MCMC(
            kernel,
            num_samples=n,
            warmup_steps=opts.warmup,
            initial_params={"theta": init},
            disable_progbar=True,
            hook_fn=hook,
        )
        mcmc.run()
    draws = mcmc.get_samples()["theta"].detach().to(torch.float32)
    return draws, int(record["divergences"])


def fit_nuts(
    simulator: Simulator,
    *,
    budget: int | None,
    options: NUTSOptions,
    generator: torch.Generator | None = None,
    progress: bool = True,
) -> NUTSReference:
    """ "Fit" NUTS: check that the simulator has a likelihood; nothing is trained."""
    return NUTSReference(simulator, options, budget, progress=progress)


def load_nuts(files: EstimatorFiles) -> NUTSReference:
    """Rebuild a saved :class:`NUTSReference`."""
    return NUTSReference(files.simulator, files.options, files.budget)


register_method("nuts", fit_nuts, load_nuts, NUTSOptions)
