"""The training data of every trained method: one stream of simulations, a fixed table or fresh online batches.

The inverse INN, the cINN and the conditional fiber model all train on pairs drawn from a source (a simulator's
prior and ``simulate``, or a data set of images), either a fixed table drawn once (a simulation budget) or fresh
draws for every batch (online). :class:`SimulationStream` is that one piece: it draws through an explicit generator,
hands the training loop a batch per step, picks one set size per batch for set-valued simulators, and says how to
standardize. Each method keeps its own validation policy but takes its held-out rows from here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from simulators import Simulator, is_set_valued, sample_prior

Draw = Callable[[int, torch.Generator | None], tuple[torch.Tensor, ...]]
"""``draw(n, generator) -> tensors`` with n rows each, e.g. ``(theta (n, D), x (n, *obs_shape))``."""


def simulate(simulator: Simulator, n: int, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` prior draws and their simulations: theta (n, D), x (n, *obs_shape) in theta's dtype; no gradients."""
    theta = sample_prior(simulator.prior, n, generator=generator)
    with torch.no_grad():
        x = simulator.simulate(theta, generator=generator)
    return theta, x.to(theta.dtype)


def standardization(v: torch.Tensor, *, dims: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation over the leading ``dims`` dimensions of ``v``; a constant column keeps (0, 1).

    A column that does not vary in the training data (std < 1e-6) is left as it is rather than divided by ~0: an
    observation that differs there at inference time then stays finite.
    """
    flat = v.reshape(-1, *v.shape[dims:])
    mean, std = flat.mean(0), flat.std(0)
    const = std < 1e-6
    return torch.where(const, torch.zeros_like(mean), mean), torch.where(const, torch.ones_like(std), std)


class SimulationStream:
    """Training batches from a source: a fixed table drawn once, or fresh draws for every batch.

    Arguments:
        draw: the source, ``draw(n, generator) -> tensors`` (see :func:`simulate`, :meth:`from_simulator`).
        generator: the one source of randomness of the stream (draws, table rows, set sizes).
        batch_size: rows per batch.
        table: a fixed table ``(theta, x, ...)`` to draw batches from (rows with replacement); ``None``: online.
        set_sizes: ``(lo, hi)`` for set-valued observations: each batch takes one K uniform in ``[lo, hi]`` and keeps
            the first K elements of the sets in its second tensor (``(n, K_max, ...)`` -> ``(n, K, ...)``).
        transform: applied to every batch before it is returned (e.g. move to a device, standardize).

    Example:
        >>> import simulators
        >>> stream = SimulationStream.from_simulator(simulators.get("arm"), batch_size=4,
        ...                                          generator=torch.Generator().manual_seed(0))
        >>> [tuple(t.shape) for t in stream(0)]
        [(4, 4), (4, 2)]
    """

    def __init__(
        self,
        draw: Draw,
        *,
        generator: torch.Generator | None,
        batch_size: int,
        table: Sequence[torch.Tensor] | None = None,
        set_sizes: tuple[int, int] | None = None,
        transform: Callable[[tuple[torch.Tensor, ...]], tuple[torch.Tensor, ...]] | None = None,
    ) -> None:
        self.draw_fn, self.generator, self.batch_size = draw, generator, batch_size
        self.table = None if table is None else tuple(table)
        self.set_sizes, self.transform = set_sizes, transform

    @classmethod
    def from_simulator(cls, simulator: Simulator, **kwargs) -> SimulationStream:
        """A stream of ``(theta, x)`` pairs of ``simulator``; keyword arguments as for the constructor."""
        return cls(lambda n, g: simulate(simulator, n, g), **kwargs)

    @property
    def online(self) -> bool:
        """Whether every batch is a fresh draw (no fixed table)."""
        return self.table is None

    def draw(self, n: int) -> tuple[torch.Tensor, ...]:
        """``n`` fresh draws from the source (a validation set, a pilot for standardization, the table)."""
        return self.draw_fn(n, self.generator)

    def __call__(self, step: int) -> tuple[torch.Tensor, ...]:
        """The batch of training step ``step`` (the training loop's ``batches``)."""
        if self.table is None:
            batch = self.draw(self.batch_size)
        else:
            idx = torch.randint(0, len(self.table[0]), (self.batch_size,), generator=self.generator)
            batch = tuple(t[idx.to(t.device)] for t in self.table)
        if self.set_sizes is not None:  # one set size per batch; elements are i.i.d., so take the first K
            lo, hi = self.set_sizes
            k = int(torch.randint(lo, hi + 1, (), generator=self.generator))
            batch = (batch[0], batch[1][:, :k], *batch[2:])
        return batch if self.transform is None else self.transform(batch)


def holdout(table: Sequence[torch.Tensor], n_val: int) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """Split a table into its first rows (training) and its last ``n_val`` rows (held out)."""
    return tuple(t[:-n_val] for t in table), tuple(t[-n_val:] for t in table)


def training_split(
    simulator: Simulator,
    *,
    budget: int | None,
    online: bool,
    simulations: Sequence[torch.Tensor] | None,
    val_fraction: float,
    batch_size: int,
    generator: torch.Generator,
    pilot: int = 20_000,
) -> tuple[SimulationStream, tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
    """The training stream, training rows and held-out rows of an amortized method (the cINN's and FMPE's policy).

    ``max(256, val_fraction * budget)`` simulations are held out (4096 online): the last rows of a given table, else
    the first draws of the stream; then the training table is the rest of the table or ``budget - n_val`` fresh draws
    (online: ``pilot`` draws, only for standardization, and every batch is fresh). Set-valued simulators get one set
    size per batch.

    Raises:
        ValueError: the budget leaves fewer than ``batch_size`` training simulations.
    """
    set_valued = is_set_valued(simulator)
    stream = SimulationStream.from_simulator(
        simulator, generator=generator, batch_size=batch_size, set_sizes=simulator.n_obs if set_valued else None
    )
    n_val = max(256, int(val_fraction * budget)) if budget is not None else 4096
    if budget is not None and not online and budget - n_val < batch_size:
        raise ValueError(f"budget {budget} is too small: need at least batch_size + {n_val} validation simulations")
    if simulations is not None:
        train_rows, val_rows = holdout([t.to(simulations[0].dtype) for t in simulations], n_val)
    else:
        val_rows = stream.draw(n_val)
        train_rows = stream.draw(pilot if online else budget - n_val)
    if not online:
        stream.table = train_rows
    return stream, train_rows, val_rows
