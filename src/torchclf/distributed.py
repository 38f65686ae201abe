"""Data-parallel training over ``torch.distributed``: the processes, and what they share.

torchclf trains data-parallel as ``DistributedDataParallel`` does. Every process reads the whole
table and makes the same split, preprocessing and initial weights (rank 0's are broadcast, to be
sure); each takes its share of every batch (:class:`~torchclf.data.batches.IndexBatches` with
``rank`` and ``world_size``: the shares of one step are together the batch one process would
take with the same global batch size); and before each optimizer step the gradients are summed
over the processes (one ``all_reduce`` of one flat tensor), each weighted by the rows behind it,
so every process takes the step one process would take on the whole batch and keeps the same
weights. The autograd loop reduces its parameters' ``.grad``; the hand-written engine, which has
no autograd for ``DistributedDataParallel`` to hook, its one ``(members, parameters)`` gradient.

What decides anything is agreed: each epoch's training metrics are summed over the processes;
the validation rows (at most 10,000) are scored whole by every process, and rank 0's value is the
one every process acts on (early stopping, the plateau schedule), so all stop at the same epoch;
checkpoints are due when rank 0 says, written by rank 0 alone, between epochs only, and any
process's Ctrl-C stops them all at the next epoch's end. A checkpoint holds no trace of the
number of processes, so one written by N processes resumes on M.

Processes are started by PyTorch's launcher, ``torchrun --nproc-per-node N -m torchclf train
...`` (or ``torchclf train --nproc N``, which runs it), across machines with torchrun's
``--nnodes`` and ``--rdzv-endpoint``; a script launched so calls
``torch.distributed.init_process_group`` (or :func:`init_from_environment`) before
:func:`torchclf.fit`, which then trains data-parallel on the default group. The backend is gloo
on the CPU and NCCL on CUDA, each process on ``cuda:LOCAL_RANK``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from torchclf.errors import ConfigError


@dataclass(frozen=True)
class Group:
    """The processes training one model together, as seen from one of them.

    ``device``: where this process's collectives run (the CPU for gloo, its GPU for NCCL).
    """

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and prints."""
        return self.rank == 0

    def sum_(self, tensor: Tensor) -> Tensor:
        """Sum ``tensor`` over the processes, in place, and return it."""
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def from_main_(self, tensor: Tensor) -> Tensor:
        """Overwrite ``tensor`` with rank 0's, in place, and return it."""
        dist.broadcast(tensor, src=0)
        return tensor

    def main_value(self, value: float) -> float:
        """Rank 0's ``value``, in float64 (a validation loss every process acts on)."""
        shared = torch.tensor([value], dtype=torch.float64, device=self.device)
        return float(self.from_main_(shared))

    def any(self, *flags: bool) -> list[bool]:
        """For each flag, whether it is set on any process (one collective for all)."""
        votes = torch.tensor([float(f) for f in flags], device=self.device)
        dist.all_reduce(votes, op=dist.ReduceOp.MAX)
        return [bool(v) for v in votes.tolist()]

    def gather(self, tensor: Tensor) -> Tensor:
        """Every process's ``tensor`` (equal shapes), joined along the last dimension by rank."""
        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=-1)

    def share(self, value: Any) -> Any:
        """Rank 0's ``value`` (any picklable object), on every process."""
        holder = [value]
        dist.broadcast_object_list(holder, src=0, device=self.device)
        return holder[0]

    def weighted_mean_(self, values: Tensor, mass: Tensor | float) -> Tensor:
        """The mean over the processes of each row of ``values``, weighted by ``mass``, in place.

        ``values`` ``(M, P)`` (or ``(P,)``): this process's means, e.g. each member's gradient
        averaged over its rows of the batch; ``mass`` ``(M,)`` (or a number): the rows (or
        weights) behind each mean. The result is ``sum(mass_r * values_r) / sum(mass_r)`` over
        the processes ``r``: the mean one process would take over all their rows; 0 where no
        process had any. One ``all_reduce`` carries both. Returns the summed ``mass`` ``(M,)``
        (0: no process had a row).
        """
        flat = values.reshape(-1, values.shape[-1]) if values.dim() > 1 else values[None]
        weight = torch.as_tensor(mass, dtype=flat.dtype, device=flat.device).expand(flat.shape[0])
        packed = torch.cat([flat * weight[:, None], weight[:, None]], dim=1)  # (M, P + 1)
        self.sum_(packed)
        total = packed[:, -1:]
        mean = packed[:, :-1] / total.clamp(min=torch.finfo(flat.dtype).tiny)
        values.copy_(mean.where(total > 0, 0.0).reshape(values.shape))
        return total[:, 0]

    def reduce_gradients(self, parameters: Sequence[nn.Parameter], mass: Tensor | float) -> None:
        """:meth:`weighted_mean_` of every parameter's ``.grad``, through one flat buffer."""
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
        flat = torch.cat([g.reshape(-1) for g in grads])
        self.weighted_mean_(flat, mass)
        offset = 0
        for parameter, grad in zip(parameters, grads, strict=True):
            size = grad.numel()
            parameter.grad = flat[offset : offset + size].view_as(grad)
            offset += size

    def broadcast_module(self, module: nn.Module, *, buffers_only: bool = False) -> None:
        """Give every process rank 0's weights (and buffers: batch norm's running statistics)."""
        with torch.no_grad():
            tensors = list(module.buffers()) if buffers_only else list(module.state_dict().values())
            for tensor in tensors:
                if tensor.is_floating_point() or not buffers_only:
                    self.from_main_(tensor)


def current(device: torch.device | None = None) -> Group | None:
    """The default process group as a :class:`Group`, or None outside a run of several processes.

    ``device``: the training device (collectives then run there with NCCL; gloo on the CPU).
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    nccl = dist.get_backend() == "nccl"
    where = device if nccl and device is not None else torch.device("cpu")
    if nccl and where.type != "cuda":
        where = torch.device("cuda", torch.cuda.current_device())
    return Group(dist.get_rank(), dist.get_world_size(), where)


def launched() -> bool:
    """Whether this process was started by torchrun as one of several (``WORLD_SIZE`` > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def local_device(device: torch.device) -> torch.device:
    """``device`` for this process: ``cuda`` becomes ``cuda:LOCAL_RANK`` in a launched run."""
    if device.type == "cuda" and device.index is None and launched():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def init_from_environment(device: str = "auto") -> Group | None:
    """Join the processes torchrun started (its environment variables say where), once.

    NCCL when this process trains on CUDA (``device`` "auto" on a machine with CUDA, or
    "cuda"), each process on ``cuda:LOCAL_RANK``; gloo otherwise. Returns None when this
    process was not launched as one of several.
    """
    if not launched():
        return None
    if not dist.is_initialized():
        wants_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
        if wants_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if wants_cuda else "gloo")
    return current(torch.device("cuda") if dist.get_backend() == "nccl" else None)


def close() -> None:
    """Leave the process group (at the end of a launched command)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def launch(nproc: int, arguments: Sequence[str]) -> int:
    """Run ``python <arguments>`` as ``nproc`` processes of this machine; the exit code.

    ``arguments``: ``["-m", "torchclf", "train", ...]``, or a script and its arguments.

    PyTorch's own launcher (``torch.distributed.launcher``, what ``torchrun`` runs) starts them,
    meeting at a free port of 127.0.0.1; one failing stops the others. Rank 0 writes to this
    terminal; the others' output is kept back, and when one of them fails first, its last line
    is shown. The exit code is that of the first process to fail (2 for bad input, 130 after
    Ctrl-C, which each process turns into a checkpoint at the end of its epoch), else 0.
    Across machines, call ``torchrun`` itself with ``--nnodes`` and ``--rdzv-endpoint``.
    """
    import logging
    import tempfile
    import uuid
    from pathlib import Path

    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs, Std
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise ConfigError(f"nproc must be a whole number >= 1, got {nproc!r}")
    # the launcher's own reports (a failure's, a Ctrl-C's) are said here, in one line
    elastic_logs = [logging.getLogger("torch.distributed.elastic")] + [
        logging.getLogger(name)
        for name in list(logging.root.manager.loggerDict)
        if name.startswith("torch.distributed.elastic.")
    ]
    levels = [log.level for log in elastic_logs]
    for log in elastic_logs:
        log.setLevel(logging.CRITICAL)
    threads = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = threads or "1"  # as torchrun does: one thread each
    try:
        with tempfile.TemporaryDirectory(prefix="torchclf-processes-") as logs:
            config = LaunchConfig(
                min_nodes=1,
                max_nodes=1,
                nproc_per_node=nproc,
                run_id=f"torchclf-{uuid.uuid4().hex[:8]}",
                rdzv_backend="c10d",
                rdzv_endpoint="127.0.0.1:0",  # a free port
                max_restarts=0,
                logs_specs=DefaultLogsSpecs(
                    log_dir=logs, redirects={rank: Std.ALL for rank in range(1, nproc)}
                ),
            )
            try:
                elastic_launch(config, sys.executable)(*arguments)
            except ChildFailedError as error:
                rank, failure = error.get_first_failure()
                if rank != 0:
                    said = sorted(Path(logs).glob(f"**/{rank}/stderr.log"))
                    lines = said[0].read_text(errors="replace").splitlines() if said else []
                    print(f"process {rank} of {nproc}: {lines[-1] if lines else 'no output'}")
                return failure.exitcode if failure.exitcode > 0 else 1
            except SignalException:  # Ctrl-C reached the processes too; they say where
                return 130
    finally:
        for log, level in zip(elastic_logs, levels, strict=True):
            log.setLevel(level)
        if threads is None:
            del os.environ["OMP_NUM_THREADS"]
    return 0


__all__ = [
    "Group",
    "close",
    "current",
    "init_from_environment",
    "launch",
    "launched",
    "local_device",
]
