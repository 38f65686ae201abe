"""Where and with how many threads training runs: devices and torch's intra-op threads."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from torchclf.config import TrainConfig
from torchclf.errors import ConfigError


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn a device name into a ``torch.device``.

    ``"auto"`` picks CUDA, then Apple MPS, then the CPU. An explicit device that this machine does
    not have is a :class:`ConfigError` rather than a crash deep inside the first ``.to()``.
    """
    if isinstance(device, torch.device):
        name = str(device)
    else:
        name = str(device).strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(
            f"The 'device' parameter must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'. Got "
            f"{device!r} instead."
        ) from exc
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {device!r} was requested but CUDA is not available on this machine; "
                "use device='auto' or 'cpu'"
            )
        index = resolved.index or 0
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {device!r} was requested but this machine has "
                f"{torch.cuda.device_count()} CUDA device(s); use cuda:0 .. "
                f"cuda:{torch.cuda.device_count() - 1}"
            )
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(
            f"device {device!r} was requested but Apple MPS is not available; use 'auto' or 'cpu'"
        )
    elif resolved.type not in ("cpu", "cuda", "mps"):
        raise ConfigError(
            f"The 'device' parameter must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'. Got "
            f"{device!r} instead."
        )
    return resolved


def training_threads(requested: int | str, n_rows: int) -> int | None:
    """The intra-op thread count to train ``n_rows`` rows with (None: leave torch's alone).

    "auto": one thread for data small enough to train full batch, whose operations take
    microseconds and only lose from a second thread; torch's own choice for larger data.
    """
    if requested == "auto":
        return 1 if n_rows <= TrainConfig.FULL_BATCH_MAX else None
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
        raise ConfigError(
            f"The 'threads' parameter must be 'auto' or a positive int. Got {requested!r} instead."
        )
    return requested


@contextlib.contextmanager
def intra_op_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch threads (None: unchanged); restore them after."""
    if threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def rng_devices(device: torch.device) -> list[int]:
    """CUDA devices whose RNG state ``fork_rng`` must save and restore."""
    return [device.index or 0] if device.type == "cuda" else []


__all__ = ["intra_op_threads", "resolve_device", "rng_devices", "training_threads"]
