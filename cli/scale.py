"""``--workers N`` / ``--scheduler ADDRESS``: a Dask client for the commands that fan work out (``zoo simulate``)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import click


def _address(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise click.BadParameter("is empty; give the scheduler's address, e.g. tcp://host:8786")
    return value


def cluster_options(f: Callable) -> Callable:
    """Add ``--workers`` and ``--scheduler`` to a command."""
    f = click.option(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        callback=_address,
        help="Use a running Dask cluster, e.g. tcp://host:8786 (dask-scheduler, dask-jobqueue, ...).",
    )(f)
    return click.option(
        "--workers",
        type=click.IntRange(1, 512),
        default=None,
        help="Start a local Dask cluster of N worker processes (one thread each).",
    )(f)


@contextlib.contextmanager
def dask_client(workers: int | None, scheduler: str | None) -> Iterator[Any]:
    """``None`` without ``--workers`` / ``--scheduler``, else a connected ``distributed.Client`` (closed after)."""
    if workers is None and scheduler is None:
        yield None
        return
    if workers is not None and scheduler is not None:
        raise click.UsageError("pass --workers N (a local cluster) or --scheduler ADDRESS (a running one), not both")
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise click.UsageError("--workers / --scheduler need Dask: pip install 'zoo[scale]'") from None
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="10s")
        except OSError as e:
            why = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise click.UsageError(f"cannot reach the Dask scheduler at {scheduler}: {why}") from None
        with client:
            yield client
        return
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    with cluster, Client(cluster) as client:
        yield client
