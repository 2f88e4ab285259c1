"""Multispectral reflectance of three-layer colon tissue (Ardizzone thesis, section 4.2.3; Wirkert et al. 2016).

theta (13 parameters): oxygen saturation sO2, shared by all layers, and per layer l = 1, 2, 3 the blood volume
fraction v_hb_l, the reduced scattering amplitude a_mie_l at 500 nm (1/cm), the anisotropy g_l and the
thickness d_l (um). Prior (the colon configuration of Wirkert et al.)::

    sO2 ~ U(0, 1),  v_hb_l ~ U(0, 0.1),  a_mie_l ~ N(18.9, 10.2^2) truncated to a_mie > 0,  g_l ~ U(0.8, 0.95),
    d_1 ~ U(600, 1010) um,  d_2 ~ U(415, 847) um,  d_3 ~ U(395, 603) um

Fixed: scattering power b_mie = 1.286, refractive indices 1.36, 1.36, 1.38, ambient n = 1 above and below, no
Rayleigh term. Optical properties per wavelength come from :mod:`simulators.optics`; the diffuse reflectance of
the slab (specular reflection excluded) from the Monte Carlo core :func:`simulators.mcml.simulate`.

x (8 values): the camera bands 470, 480, 511, 560, 580, 600, 660, 700 nm, each the spectrum folded with a 10 nm
rectangular window. Only the 41 grid wavelengths (2 nm spacing) that these windows touch are simulated, not the
whole 450-720 nm grid: the bands are an exact linear function of those. Observation model of the thesis data
(both steps optional): multiplicative Gaussian noise x = r (1 + e / SNR), e ~ N(0, 1), clipped to [1e-5, 1]; then
L1-normalization across the bands. :meth:`Tissue.reflectance` returns the raw band reflectance.

``source="table"`` replaces the Monte Carlo by the shipped simulation table (noise-free, un-normalized band
reflectance of prior draws, made by ``zoo simulate``): the prior becomes the table's rows and ``simulate`` looks
the rows up and applies noise and normalization on the fly, so tissue inference runs offline in seconds.
"""

from __future__ import annotations

import math
from importlib.resources import as_file, files
from pathlib import Path

import torch
from torch.distributions import Distribution, constraints

from simulators import mcml, optics
from simulators.protocol import check_theta, expand_to_set, parse_set_size
from simulators.sampling import TableRows

N_LAYERS = (1.36, 1.36, 1.38)  # refractive indices of the three layers
N_AMBIENT = 1.0
A_MIE_MEAN, A_MIE_STD = 18.9, 10.2  # 1/cm, reduced scattering at 500 nm
THICKNESS_UM = ((600.0, 1010.0), (415.0, 847.0), (395.0, 603.0))
TABLES = {"train": "tissue_train.h5", "test": "tissue_test.h5"}

PARAM_NAMES = ("sO2",) + tuple(f"{p}_{l}" for l in (1, 2, 3) for p in ("v_hb", "a_mie", "g", "d"))
PARAM_UNITS = ("1",) + ("1", "1/cm", "1", "um") * 3
_LOW = [0.0] + [v for lo, _ in THICKNESS_UM for v in (0.0, 0.0, 0.8, lo)]
_HIGH = [1.0] + [v for _, hi in THICKNESS_UM for v in (0.1, math.inf, 0.95, hi)]


class TissuePrior(Distribution):
    """The 13-dimensional prior of the tissue parameters (independent components, see the module docstring).

    ``sample`` accepts an explicit ``generator``; a_mie is drawn from its truncated normal by inverse CDF.
    """

    arg_constraints: dict = {}
    has_rsample = False

    def __init__(self) -> None:
        self.low = torch.tensor(_LOW)
        self.high = torch.tensor(_HIGH)
        self._mie = torch.tensor([i for i, p in enumerate(PARAM_NAMES) if p.startswith("a_mie")])
        self._uni = torch.tensor([i for i, p in enumerate(PARAM_NAMES) if not p.startswith("a_mie")])
        # P(a_mie > 0) under the untruncated normal
        self._z0 = torch.tensor(-A_MIE_MEAN / A_MIE_STD)  # float32: the shipped tables were drawn with it
        self._mass = 1.0 - torch.special.ndtr(torch.tensor(-A_MIE_MEAN / A_MIE_STD, dtype=torch.float64))
        super().__init__(batch_shape=torch.Size(), event_shape=torch.Size([13]), validate_args=False)

    @property
    def support(self) -> constraints.Constraint:
        return constraints.independent(constraints.interval(self.low, self.high), 1)

    @property
    def mean(self) -> torch.Tensor:
        m = torch.where(torch.isinf(self.high), torch.zeros_like(self.low), (self.low + self.high) / 2)
        z0 = torch.tensor(-A_MIE_MEAN / A_MIE_STD, dtype=torch.float64)
        lam = torch.exp(-0.5 * z0**2) / math.sqrt(2 * math.pi) / (1 - torch.special.ndtr(z0))
        m[self._mie] = float(A_MIE_MEAN + A_MIE_STD * lam)  # mean of the truncated normal
        return m.float()

    def sample(self, sample_shape: torch.Size | tuple[int, ...] = torch.Size(), generator=None) -> torch.Tensor:
        """Draw parameters, shape (*sample_shape, 13)."""
        shape = torch.Size(sample_shape) + self.event_shape
        device = generator.device if generator is not None else self.low.device
        u = torch.rand(shape, generator=generator, dtype=torch.float64, device=device)
        low, high = self.low.to(u), self.high.to(u).nan_to_num(posinf=0.0)
        theta = low + (high - low) * u
        # truncated normal: u in (P(z < z0), 1) mapped through the normal quantile
        p0 = float(torch.special.ndtr(self._z0.double()))
        q = (p0 + (1.0 - p0) * u[..., self._mie.to(device)]).clamp(max=1 - 1e-12)
        theta[..., self._mie.to(device)] = A_MIE_MEAN + A_MIE_STD * torch.special.ndtri(q)
        return theta.float()

    def log_prob(self, theta: torch.Tensor) -> torch.Tensor:
        """Log density of ``theta`` (*, 13) -> (*); -inf outside the support."""
        low, high = self.low.to(theta), self.high.to(theta)
        inside = ((theta >= low) & (theta <= high)).all(-1) & (theta[..., self._mie.to(theta.device)] > 0).all(-1)
        # uniform components: -sum log(width); truncated normals: normal log density - log P(a_mie > 0)
        log_uniform = -sum(math.log(_HIGH[i] - _LOW[i]) for i in self._uni.tolist())
        log_norm = math.log(A_MIE_STD * math.sqrt(2 * math.pi)) + math.log(float(self._mass))
        z = (theta[..., self._mie.to(theta.device)] - A_MIE_MEAN) / A_MIE_STD
        lp = log_uniform + (-0.5 * z * z - log_norm).sum(-1)
        return torch.where(inside, lp, torch.full_like(lp, -math.inf))


class Tissue:
    """Three-layer tissue, Monte Carlo reflectance, 8-band camera (see the module docstring).

    Arguments:
        photons: photon packets per wavelength and tissue in the Monte Carlo (``source="live"``).
        snr: signal-to-noise ratio of the multiplicative Gaussian camera noise; ``None`` for no noise.
        normalize: L1-normalize the 8 bands of each observation.
        source: ``"table"`` (default: look up the shipped simulation table, fast and offline) or ``"live"``
            (Monte Carlo).
        split: which shipped table ``source="table"`` uses: ``"train"`` (15 000 rows) or ``"test"`` (2 000).
        table: path of another simulation table (raw band reflectance, ``snr=None, normalize=False``) to use
            instead of the shipped one.
        max_packets: photon packets simulated at once (bounds memory; tissues are processed in groups).
        n_obs: ``None`` (default: one spectrum per tissue, shape (*, 8)); an int K (a set of K spectra of the same
            tissue with independent camera noise, shape (*, K, 8)); or a range ``(lo, hi)`` / ``"lo-hi"`` of set
            sizes, so one amortized estimator serves any K in it. Needs camera noise (``snr``).

    Attributes:
        n_obs: present only for set-valued observations: the ``(lo, hi)`` range of set sizes.
        element_shape: present only for set-valued observations: the shape of one set element, ``(8,)``.

    Example:
        >>> import torch, simulators
        >>> sim = simulators.get("tissue", source="live", photons=200)
        >>> g = torch.Generator().manual_seed(0)
        >>> theta = simulators.sample_prior(sim.prior, 2, generator=g)
        >>> sim.simulate(theta, generator=g).shape
        torch.Size([2, 8])
    """

    name = "tissue"
    param_names = PARAM_NAMES
    param_units = PARAM_UNITS
    obs_shape = (8,)
    observation_names = tuple(f"R_{int(b)}nm" for b in optics.BANDS)
    chunk_size = 500  # rows per chunk of ``zoo simulate``: a few minutes of CPU per chunk

    def __init__(
        self,
        *,
        photons: int = 10_000,
        snr: float | None = 10.0,
        normalize: bool = True,
        source: str = "table",
        split: str = "train",
        table: str | None = None,
        max_packets: int = 2_000_000,
        n_obs: int | tuple[int, int] | str | None = None,
    ) -> None:
        if not isinstance(photons, int) or photons < 2:
            raise ValueError(f"photons must be an integer >= 2, got {photons!r}")
        if snr is not None and not (isinstance(snr, (int, float)) and math.isfinite(snr) and snr > 0):
            raise ValueError(f"snr must be a positive number or None (no noise), got {snr!r}")
        if source not in ("live", "table"):
            raise ValueError(f"source must be 'live' or 'table', got {source!r}")
        if split not in TABLES:
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if not isinstance(max_packets, int) or max_packets < 1:
            raise ValueError(f"max_packets must be a positive integer, got {max_packets!r}")
        self.photons = photons
        self.snr = None if snr is None else float(snr)
        self.normalize = bool(normalize)
        self.source = source
        self.max_packets = max_packets
        self.options = {"photons": photons, "snr": self.snr, "normalize": self.normalize, "source": source}
        full = optics.band_matrix()
        used = full.abs().sum(0) > 0
        self.wavelengths = torch.tensor(optics.GRID, dtype=torch.float64)[used]  # the 41 simulated wavelengths
        self.band_weights = full[:, used]  # (8, 41), rows sum to 1
        self.model_prior = TissuePrior()
        self.prior: Distribution = self.model_prior
        if n_obs is not None:
            lo, hi = parse_set_size(n_obs)
            if self.snr is None:
                raise ValueError("n_obs needs camera noise (snr): without noise the K spectra of a set are identical")
            self.n_obs = (lo, hi)
            self.element_shape = (8,)
            self.obs_shape = (hi, 8)
            self.options["n_obs"] = lo if lo == hi else [lo, hi]
        if source == "table":
            self.options.update(split=split, table=table)
            self._load_table(split, table)

    # -- physics ----------------------------------------------------------------------------------------------
    def optical_properties(self, theta: torch.Tensor, wavelengths: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-layer optical properties for :func:`simulators.mcml.simulate`.

        Arguments:
            theta: parameters, shape (*, 13).
            wavelengths: in nm, shape (W,).

        Returns:
            ``mu_a``, ``mu_s`` (1/cm), ``g``, ``n``, ``d`` (cm), each of shape (*, W, 3).
        """
        theta = check_theta(theta, 13)
        lam = wavelengths.to(theta)
        so2 = theta[..., 0]
        layers = theta[..., 1:].unflatten(-1, (3, 4))  # (*, 3, [v_hb, a_mie, g, d])
        v_hb, a_mie, g, d = layers.unbind(-1)
        mu_a = optics.absorption(so2[..., None], v_hb, lam)  # (*, 3, W)
        mu_s = optics.scattering(a_mie, g, lam)
        W = lam.shape[0]
        shape = (*theta.shape[:-1], W, 3)
        return {
            "mu_a": mu_a.transpose(-1, -2),
            "mu_s": mu_s.transpose(-1, -2),
            "g": g[..., None, :].expand(shape),
            "n": torch.tensor(N_LAYERS, dtype=theta.dtype, device=theta.device).expand(shape),
            "d": (d * 1e-4)[..., None, :].expand(shape),
        }

    def spectrum(
        self,
        theta: torch.Tensor,
        wavelengths: torch.Tensor,
        *,
        photons: int | None = None,
        generator: torch.Generator | None = None,
    ) -> mcml.MCMLResult:
        """Monte Carlo totals of the tissue at given wavelengths, one MCML problem per (tissue, wavelength).

        Arguments:
            theta: parameters, shape (*, 13).
            wavelengths: in nm, shape (W,).
            photons: packets per problem (default: the ``photons`` option).
            generator: source of randomness.

        Returns:
            an :class:`~simulators.mcml.MCMLResult` with tensors of shape (*, W); ``diffuse`` is the reflectance.
        """
        theta = check_theta(theta, 13)
        photons = photons or self.photons
        batch = theta.shape[:-1]
        flat = theta.reshape(-1, 13)
        W = wavelengths.shape[0]
        group = max(1, self.max_packets // (W * photons))
        parts = []
        for lo in range(0, flat.shape[0], group):
            props = self.optical_properties(flat[lo : lo + group], wavelengths)
            parts.append(
                mcml.simulate(**props, n_above=N_AMBIENT, n_below=N_AMBIENT, photons=photons, generator=generator)
            )
        fields = ("specular", "diffuse", "transmittance", "absorbed", "diffuse_se", "transmittance_se")
        fields += ("absorbed_se", "unfinished")
        cat = {f: torch.cat([getattr(p, f) for p in parts]).reshape(*batch, W) for f in fields}
        return mcml.MCMLResult(**cat, photons=photons, steps=sum(p.steps for p in parts))

    def reflectance(
        self,
        theta: torch.Tensor,
        *,
        generator: torch.Generator | None = None,
        return_se: bool = False,
        photons: int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Raw (noise-free, un-normalized) band reflectance by Monte Carlo, (*, 13) -> (*, 8).

        With ``return_se`` also the Monte-Carlo standard error of each band, (*, 8) (independent wavelengths:
        se_b = sqrt(sum_k W_bk^2 se_k^2)). ``photons``: packets per wavelength (default: the ``photons`` option).
        """
        res = self.spectrum(theta, self.wavelengths, generator=generator, photons=photons)
        weights = self.band_weights.to(res.diffuse)
        r = res.diffuse @ weights.T
        if return_se:
            return r, torch.sqrt(res.diffuse_se**2 @ (weights**2).T)
        return r

    def observe(self, r: torch.Tensor, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """The camera's observation model applied to raw band reflectance r (*, 8): noise, then normalization."""
        x = r
        if self.snr is not None:
            e = torch.randn(r.shape, generator=generator, device=r.device, dtype=r.dtype)
            x = (r * (1.0 + e / self.snr)).clamp(1e-5, 1.0)
        if self.normalize:
            x = x / x.sum(-1, keepdim=True)
        return x

    def simulate(
        self, theta: torch.Tensor, *, generator: torch.Generator | None = None, n_obs: int | None = None
    ) -> torch.Tensor:
        """Observations for parameters theta: (*, 13) -> (*, 8), or sets of K spectra, (*, K, 8).

        Arguments:
            theta: parameters, shape (*, 13).
            generator: source of the Monte Carlo and camera noise.
            n_obs: set size K of this call (set-valued simulators only; default: the top of the ``n_obs`` range).
                The K spectra share one reflectance (one tissue) and have independent camera noise.
        """
        theta = check_theta(theta, 13)
        if self.source == "table":
            r = self._table_or_live(theta, generator)
        else:
            r = self.reflectance(theta, generator=generator)
        return self.observe(expand_to_set(self, r, n_obs), generator=generator)

    def _table_or_live(self, theta: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Table rows from the table; other parameters (posterior draws being re-simulated) by the same Monte Carlo
        that made the table, at its photon count."""
        r, found = self._lookup(theta)
        if not found.all():
            flat = theta.reshape(-1, 13)
            live = self.reflectance(flat[~found], generator=generator, photons=self.table_photons)
            r = r.reshape(-1, 8).clone()
            r[~found] = live.to(r)
            r = r.reshape(*theta.shape[:-1], 8)
        return r

    # -- shipped table ----------------------------------------------------------------------------------------
    def _load_table(self, split: str, table: str | None) -> None:
        from simulators.table import read_table  # the table format lives with the lead's table module

        if table is None:
            with as_file(files("simulators.data").joinpath(TABLES[split])) as path:
                if not Path(path).exists():
                    raise FileNotFoundError(
                        f"the shipped tissue table {TABLES[split]} is missing from simulators/data; use "
                        "source='live', or regenerate it as described in docs/simulators/tissue.md"
                    )
                theta, r, attrs = read_table(path)
        else:
            theta, r, attrs = read_table(Path(table))
        opts = attrs.get("options", {})
        if attrs.get("simulator") != "tissue" or opts.get("snr") is not None or opts.get("normalize"):
            raise ValueError(
                f"table {table or TABLES[split]} must hold raw tissue reflectance (simulator tissue, snr=None, "
                f"normalize=False); found simulator {attrs.get('simulator')!r} with options {opts}"
            )
        order = torch.argsort(theta[:, 0])
        self.table_theta, self.table_reflectance, self.table_attrs = theta[order], r[order], attrs
        # float32 sO2 values can repeat among thousands of rows: the lookup checks every row sharing a key
        _, counts = torch.unique_consecutive(self.table_theta[:, 0], return_counts=True)
        self._max_repeat = int(counts.max())
        self.prior = TableRows(self.table_theta, self.model_prior)
        # parameters that are not table rows (posterior draws being re-simulated) are simulated live at the table's
        # photon count, 11 spectra/s on one CPU thread: re-simulation is capped at this many draws per call
        self.table_photons = int(opts.get("photons") or 128)
        self.resimulation_limit = 2000

    def lookup(self, theta: torch.Tensor) -> torch.Tensor:
        """Raw band reflectance of table rows, (*, 13) -> (*, 8); theta must be rows of the table.

        Raises:
            ValueError: if a parameter vector is not a row of the table.
        """
        r, found = self._lookup(theta)
        if not found.all():
            k = int((~found).nonzero()[0])
            raise ValueError(
                f"theta row {k} is not in the tissue table: with source='table' parameters must come from "
                "sim.prior (the table's rows); use source='live' to simulate new parameters"
            )
        return r

    def _lookup(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw band reflectance of the table rows among theta (*, 13) -> (*, 8) (0 elsewhere), and which were
        found, shape (prod(*),)."""
        flat = theta.reshape(-1, 13).to("cpu", torch.float32)
        keys = self.table_theta[:, 0].contiguous()
        first = torch.searchsorted(keys, flat[:, 0].contiguous())
        i = first.clamp(max=len(keys) - 1)
        found = torch.zeros(len(flat), dtype=torch.bool)
        for k in range(self._max_repeat):
            j = (first + k).clamp(max=len(keys) - 1)
            match = ~found & (self.table_theta[j] == flat).all(-1)
            i = torch.where(match, j, i)
            found |= match
        r = torch.where(found[:, None], self.table_reflectance[i], torch.zeros(()))
        return r.to(theta).reshape(*theta.shape[:-1], 8), found
