"""Simulation chunks on a Dask cluster: the one place ``simulators/`` talks to Dask (``pip install 'zoo[scale]'``).

:func:`simulators.simulate_table` with ``client=`` sends each missing chunk ``i`` to a worker, which draws it with
the generator of ``(seed, i)`` exactly as one process would, on one torch thread, and returns the arrays; the caller
stays the only writer. The table is therefore bitwise the same for any number of workers, with or without a
cluster, and ``resume`` works as before. The simulator is sent to every worker once (cloudpickle bytes, scattered);
a simulator loaded from a user's file (``--simulator path/file.py:factory``) travels by value, since workers cannot
import it.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from simulators.sampling import chunk_generator, sample_prior


def simulate_chunk(simulator: Any, seed: int, i: int, rows: int, device: str = "cpu") -> tuple[int, Any, Any]:
    """Chunk ``i`` of a table: ``rows`` prior draws from the generator of ``(seed, i)`` and their simulations."""
    g = chunk_generator(seed, i, device)
    theta = sample_prior(simulator.prior, (rows,), generator=g).to(device)
    x = simulator.simulate(theta, generator=g)
    as_array = lambda t: t.detach().cpu().numpy().astype(np.float32)  # noqa: E731
    return i, as_array(theta), as_array(x)


@functools.lru_cache(maxsize=4)
def _unpickle(payload: bytes) -> Any:
    import cloudpickle

    return cloudpickle.loads(payload)


def _on_worker(payload: bytes, seed: int, i: int, rows: int, device: str) -> tuple[int, Any, Any]:
    torch.set_num_threads(1)  # one process per core: more threads would only compete
    return simulate_chunk(_unpickle(payload), seed, i, rows, device)


def map_chunks(
    client: Any, simulator: Any, seed: int, chunks: list[tuple[int, int]], device: str = "cpu"
) -> Iterator[tuple[int, Any, Any]]:
    """Simulate ``chunks`` (index, rows) on ``client``'s workers; yields ``(i, theta, x)`` as they finish, keeping at
    most two chunks per worker in flight (memory stays bounded for any table size)."""
    remote = client.scatter(_pickled(simulator), broadcast=True)
    yield from bounded(
        client, lambda chunk: client.submit(_on_worker, remote, seed, *chunk, str(device), pure=False), chunks
    )


def bounded(client: Any, submit: Any, items: Any) -> Iterator[Any]:
    """The results of ``submit(item)`` (a future) for ``items``, as they finish, with at most two items per worker in
    flight: memory stays bounded for any number of items."""
    try:
        from distributed import as_completed
    except ImportError as e:  # pragma: no cover - the extra is in the test environment
        raise ImportError("working on a cluster needs Dask: pip install 'zoo[scale]'") from e
    limit = 2 * max(1, len(client.scheduler_info().get("workers", {})))
    todo = iter(items)
    running = as_completed()

    def submit_next() -> None:
        item = next(todo, None)
        if item is not None:
            running.add(submit(item))

    for _ in range(limit):
        submit_next()
    for future in running:  # as_completed also yields the futures added while iterating
        result = future.result()
        future.release()
        submit_next()
        yield result


def _pickled(simulator: Any) -> bytes:
    """The simulator as cloudpickle bytes (unpickled once per worker). Modules zoo imported from a user's file have
    synthetic names the workers cannot import, so their code travels by value."""
    import cloudpickle

    for obj in (simulator, getattr(simulator, "fn", None)):
        name = getattr(obj, "__module__", None) or type(obj).__module__
        if name.startswith("zoo_user_simulator_") and name in sys.modules:
            cloudpickle.register_pickle_by_value(sys.modules[name])
    return cloudpickle.dumps(simulator)
