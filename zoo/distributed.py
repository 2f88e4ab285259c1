"""Training across processes with ``torch.distributed`` (data parallel): what :func:`zoo.training.train` and the
methods need to stay in step.

Every rank holds the same weights (the same seed builds the same network; rank 0's are broadcast to be sure), draws
its own batches, and after each backward pass the gradients are averaged over the ranks in one all-reduce (the
arithmetic of ``DistributedDataParallel``, on one flat buffer), so each optimizer step sees the gradient of the
union of the ranks' batches. Decisions are taken together: a step is skipped on every rank if its loss is not finite
on any rank; validation runs on the same held-out data and identical weights everywhere, so early stopping and
restarts agree without messages. Only rank 0 writes checkpoints and results.

``zoo train --nproc N`` starts N processes on this machine (gloo, CPU); under ``torchrun`` the group comes from its
environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``; nccl on GPUs).
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

_ALONE = [False]  # inside alone(): this rank trains by itself (a restart of its own)


def active() -> bool:
    """Whether this process is one rank of a group of more than one (and not working alone)."""
    return torch.distributed.is_available() and torch.distributed.is_initialized() and size() > 1 and not _ALONE[0]


def rank() -> int:
    """This process's rank (0 outside a group, and inside :func:`alone`: it writes its own checkpoints)."""
    return torch.distributed.get_rank() if torch.distributed.is_initialized() and not _ALONE[0] else 0


def group_rank() -> int:
    """This process's rank in the group, also inside :func:`alone` (0 outside a group)."""
    return torch.distributed.get_rank() if torch.distributed.is_initialized() else 0


@contextlib.contextmanager
def alone() -> Iterator[None]:
    """Train without the group: no gradient averaging, and this rank writes its own checkpoints (independent
    restarts, one per rank)."""
    _ALONE[0] = True
    try:
        yield
    finally:
        _ALONE[0] = False


def size() -> int:
    """The number of ranks (1 outside a group)."""
    return torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1


def gather(value: Any) -> list[Any]:
    """``value`` of every rank, in rank order (``[value]`` outside a group)."""
    if not torch.distributed.is_initialized() or size() == 1:
        return [value]
    out: list[Any] = [None] * size()
    torch.distributed.all_gather_object(out, value)
    return out


def share(model: torch.nn.Module, history: Any, src: int) -> Any:
    """Rank ``src``'s weights into ``model`` on every rank; returns ``src``'s ``history``."""
    if not torch.distributed.is_initialized() or size() == 1:
        return history
    for t in [*model.parameters(), *model.buffers()]:
        torch.distributed.broadcast(t.data, src=src)
    box = [history]
    torch.distributed.broadcast_object_list(box, src=src)
    return box[0]


def rank_generator(generator: torch.Generator) -> torch.Generator:
    """A generator for this rank's batches, derived from one draw of ``generator`` (the same draw on every rank) and
    the rank; outside a group, ``generator`` itself (a one-process run is unchanged)."""
    if not active():
        return generator
    base = int(torch.randint(0, 2**31 - 1, (), generator=generator))
    state = np.random.SeedSequence([base, rank()]).generate_state(2, dtype=np.uint32)
    return torch.Generator(device=generator.device).manual_seed(int(state[0]) << 31 ^ int(state[1]))


def broadcast_parameters(model: torch.nn.Module) -> None:
    """Rank 0's weights (and buffers) on every rank."""
    if active():
        for t in [*model.parameters(), *model.buffers()]:
            torch.distributed.broadcast(t.data, src=0)


def all_finite(finite: bool, device: torch.device | str = "cpu") -> bool:
    """``finite`` on every rank (a step is taken by all ranks or by none)."""
    if not active():
        return finite
    flag = torch.tensor([1.0 if finite else 0.0], device=device)
    torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MIN)
    return bool(flag.item() == 1.0)


def average_gradients(params: list[torch.nn.Parameter]) -> None:
    """Replace each gradient by its mean over the ranks (one all-reduce of a flat buffer)."""
    if not active():
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    torch.distributed.all_reduce(flat)
    flat /= size()
    offset = 0
    for p, g in zip(params, grads, strict=True):
        n = g.numel()
        p.grad = flat[offset : offset + n].view_as(g).clone()
        offset += n


def free_port() -> int:
    """A free TCP port on 127.0.0.1 for the group's rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(nproc: int, fn: Callable[..., Any], *args: Any) -> None:
    """Run ``fn(*args)`` in ``nproc`` processes on this machine, joined in one gloo group (``zoo train --nproc``)."""
    import torch.multiprocessing as mp

    port = free_port()
    mp.spawn(_rank_main, args=(nproc, port, fn, args), nprocs=nproc, join=True)


def _rank_main(r: int, nproc: int, port: int, fn: Callable[..., Any], args: tuple) -> None:
    torch.set_num_threads(1)  # one process per core
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=r, world_size=nproc)
    try:
        fn(*args)
    finally:
        torch.distributed.destroy_process_group()


def from_environment() -> bool:
    """Join the group ``torchrun`` describes in the environment, if there is one of more than one process."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or torch.distributed.is_initialized():
        return False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    torch.distributed.init_process_group(backend)
    return True
