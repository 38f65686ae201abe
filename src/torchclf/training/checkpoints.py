"""Checkpoints: the whole state of a training run, for a resumed run to end as an uninterrupted one.

A resumed run ends bit for bit where the uninterrupted one would. A checkpoint is one safetensors
file: the tensors (the loop's weights, optimizer moments,
early-stopping state, best weights; the torch generators) and, under the metadata key
``torchclf_checkpoint``, one JSON document with everything else (where the loop stands, the
history so far, the optimizer's and schedule's settings, the numpy and Python generators, the
run's settings and a fingerprint of its data). No pickle: reading one runs no code from it.

What is *not* in a checkpoint is what the run recomputes the same way from the same data and
settings before training (the split, the preprocessing, the initial weights): a resumed run
redoes it, compares the settings and the data's fingerprint with the checkpoint's, refusing any
difference by name, and hands each loop its own state (:attr:`Checkpoints.resumed`), from which
it goes on at the epoch and batch where the checkpoint was taken.

A loop asks :meth:`Checkpoints.due` at each safe point (after a batch, after an epoch) and, when
it says yes, hands :meth:`Checkpoints.save` its :class:`LoopState`. A checkpoint is due every
``every`` epochs or seconds, and at once after Ctrl-C (:meth:`Checkpoints.catching_interrupts`),
after which :meth:`save` raises :class:`~torchclf.errors.TrainingInterrupted`. Files are written
atomically (temporary file, fsync, rename) and only the last ``keep`` are kept; a failed write
(a full disk, a read-only folder) raises :class:`~torchclf.errors.CheckpointError` and leaves
the previous checkpoint as it was.

In a run of several processes (:mod:`torchclf.distributed`) a checkpoint is due only between
epochs, when rank 0's interval says so or any process had Ctrl-C (one collective an epoch); rank 0
writes it, and every process reads it to resume (across machines: from a folder they all see).
It is then the same for any number of processes; one written inside an epoch (by a run of one
process) resumes on one process only.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import signal
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import torch
from torch import Tensor

from torchclf.config import CheckpointInterval
from torchclf.distributed import Group
from torchclf.errors import CheckpointError, ConfigError, TrainingInterrupted
from torchclf.files import CHECKPOINT_FOLDER, atomic_file

METADATA_KEY = "torchclf_checkpoint"
FORMAT_VERSION = 1
KEEP = 2  # a second file to fall back on if the newest cannot be read
_NAME = re.compile(r"checkpoint-(\d{6,})\.safetensors")


@dataclass
class LoopState:
    """What a training loop needs to go on where it stopped: tensors, and JSON values."""

    tensors: dict[str, Tensor] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)

    def sub(self, prefix: str) -> dict[str, Tensor]:
        """The tensors named ``prefix.*``, without the prefix."""
        start = f"{prefix}."
        return {k[len(start) :]: v for k, v in self.tensors.items() if k.startswith(start)}

    def put(self, prefix: str, tensors: Mapping[str, Tensor]) -> None:
        """Add ``tensors`` as ``prefix.*``."""
        self.tensors.update({f"{prefix}.{k}": v for k, v in tensors.items()})


class Checkpoints:
    """Where and when a run writes its training state, and the state it resumed from.

    Args:
        folder: the folder the checkpoint files go into (created on the first write).
        settings: the run's settings as JSON values; a resumed run's must be equal.
        data: the fingerprint of the run's rows (:func:`fingerprint`); likewise.
        every: how often a checkpoint is due (:meth:`CheckpointInterval.parse`).
        keep: how many of the newest files to keep.
        group: the processes training together, when several (rank 0 writes).
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        settings: Mapping[str, Any],
        data: str,
        every: CheckpointInterval | str | int = "auto",
        keep: int = KEEP,
        group: Group | None = None,
    ) -> None:
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ConfigError(f"keep_checkpoints must be a whole number >= 1, got {keep!r}")
        self.folder = Path(folder)
        self.settings = json.loads(json.dumps(dict(settings)))  # as it will read back
        self.data = data
        self.every = (
            every if isinstance(every, CheckpointInterval) else CheckpointInterval.parse(every)
        )
        self.keep = keep
        self.group = group
        self.resumed: LoopState | None = None  # the loop's state (None: it starts afresh)
        self.resumed_stage: str | None = None  # "training" or "trained"
        # what a caller running several loops (a sweep) adds to each checkpoint, and read back
        self.context: LoopState | None = None
        self.resumed_context: LoopState | None = None
        self.history: dict[str, Any] = {}  # the resumed History, as JSON
        self._tracked: Any = None  # the History being written, saved with each checkpoint
        self.interrupt_requested = False
        self._random: tuple[dict[str, Any], dict[str, Tensor]] | None = None
        self._last_write = time.monotonic()
        self._number = max((n for n, _ in _files(self.folder)), default=0)

    # ----------------------------------------------------------------------------- saving
    def due(self, epoch: int | None = None) -> bool:
        """Whether to checkpoint now: after Ctrl-C, or when the interval is up.

        ``epoch``: the epoch just completed (for an interval in epochs); None between batches.
        Several processes agree between epochs (rank 0's interval, anyone's Ctrl-C) and never
        checkpoint between batches, where each holds only its share of the epoch.
        """
        if self.group is not None:
            if epoch is None:
                return False
            due = self.group.is_main and self._interval_up(epoch)
            interrupted, due = self.group.any(self.interrupt_requested, due)
            self.interrupt_requested = interrupted
            return interrupted or due
        return self.interrupt_requested or self._interval_up(epoch)

    def _interval_up(self, epoch: int | None) -> bool:
        if self.every.seconds is not None:
            return time.monotonic() - self._last_write >= self.every.seconds
        epochs = self.every.epochs
        return epoch is not None and epochs is not None and epoch % epochs == 0

    def save(self, state: LoopState, epoch: int, batch: int = 0, stage: str = "training") -> Path:
        """Write a checkpoint: ``state`` at ``epoch`` (the one in progress) after ``batch`` batches.

        Returns its file (rank 0 writes it, in a run of several processes). After Ctrl-C it then
        raises :class:`TrainingInterrupted`.

        Raises:
            CheckpointError: when the file cannot be written (the previous one is kept).
        """
        if self.group is None or self.group.is_main:
            path = self._write(state, epoch, batch, stage)
        else:  # every process holds the same state: rank 0 writes it, as this file
            path = self.folder / f"checkpoint-{self._number + 1:06d}.safetensors"
        self._last_write = time.monotonic()
        if self.interrupt_requested and stage == "training":
            raise TrainingInterrupted(epoch, self.folder)
        return path

    def _write(self, state: LoopState, epoch: int, batch: int, stage: str) -> Path:
        """Write ``state`` as the next checkpoint file, atomically; drop the oldest past keep."""
        from safetensors.torch import save_file

        tensors = dict(state.tensors)
        if self.context is not None:
            tensors |= {f"context.{k}": v for k, v in self.context.tensors.items()}
        rngs = _random_state(tensors)
        document = {
            "format_version": FORMAT_VERSION,
            "stage": stage,
            "epoch": epoch,
            "batch": batch,
            "processes": 1 if self.group is None else self.group.world_size,
            "settings": self.settings,
            "data": self.data,
            "values": state.values,
            "history": self._tracked.to_json() if self._tracked is not None else self.history,
            "random": rngs,
            "context": None if self.context is None else self.context.values,
        }
        # copies: tensors that share memory (a view of the weights) cannot be saved side by side
        contiguous = {k: t.detach().to("cpu", copy=True).contiguous() for k, t in tensors.items()}
        self._number += 1
        path = self.folder / f"checkpoint-{self._number:06d}.safetensors"
        try:
            with atomic_file(path) as temporary:
                save_file(contiguous, temporary, metadata={METADATA_KEY: json.dumps(document)})
        except OSError as error:
            self._number -= 1
            raise CheckpointError(
                f"cannot write a checkpoint into '{self.folder}': "
                f"{error.strerror or error} (the previous checkpoint is kept)"
            ) from error
        for _, old in _files(self.folder)[: -self.keep]:
            old.unlink(missing_ok=True)
        return path

    def track(self, history: Any) -> None:
        """Save ``history`` (a :class:`~torchclf.training.history.History`) with each checkpoint."""
        self._tracked = history

    @contextmanager
    def catching_interrupts(self) -> Iterator[None]:
        """While the block runs, the first Ctrl-C asks for a checkpoint and a stop.

        The loop writes it at its next safe point and raises :class:`TrainingInterrupted`; a
        second Ctrl-C interrupts at once, as usual. Outside the main thread (where Python
        delivers no signals) the block runs as it is.
        """
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def request(signum: int, frame: FrameType | None) -> None:
            if self.interrupt_requested:
                raise KeyboardInterrupt
            self.interrupt_requested = True

        previous = signal.signal(signal.SIGINT, request)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    # --------------------------------------------------------------------------- resuming
    def resume(self, source: str | os.PathLike[str] | None = None) -> None:
        """Load the newest readable checkpoint of ``source`` (default: :attr:`folder`).

        The loop's state goes into :attr:`resumed`, the caller's into :attr:`resumed_context`.

        :meth:`restore_random_state` then sets the generators as they were when it was written.

        Raises:
            CheckpointError: when the folder holds no readable checkpoint.
            ConfigError: when the run's settings or data differ from the checkpoint's (named).
        """
        folder = self.folder if source is None else Path(source)
        # a write cut short (the process killed in it) left its temporary file: never read
        for stale in folder.glob(".checkpoint-*.tmp"):
            stale.unlink(missing_ok=True)
        files = _files(folder)
        if not files:
            raise CheckpointError(f"'{folder}' holds no checkpoint to resume from")
        problems = []
        for _, path in reversed(files):
            try:
                tensors, document = read_checkpoint(path)
                break
            except CheckpointError as error:
                problems.append(str(error))
        else:
            raise CheckpointError("; ".join(problems))
        self._check_same_run(document, path)
        processes = 1 if self.group is None else self.group.world_size
        if document["batch"] and document.get("processes", 1) != processes:
            raise CheckpointError(
                f"'{path}' was written inside epoch {document['epoch']} by "
                f"{document.get('processes', 1)} process(es), whose shares of that epoch "
                f"{processes} processes cannot take over; resume it on "
                f"{document.get('processes', 1)}"
            )
        self._random = (document["random"], tensors)
        self.resumed = LoopState(
            {k: v for k, v in tensors.items() if not k.startswith(("random.", "context."))},
            document["values"],
        )
        if document.get("context") is not None:
            context = LoopState(tensors=tensors, values=document["context"])
            self.resumed_context = LoopState(context.sub("context"), document["context"])
        self.resumed.values |= {"epoch": document["epoch"], "batch": document["batch"]}
        self.resumed_stage = document["stage"]
        self.history = document["history"]

    def restore_random_state(self) -> None:
        """Set torch's, numpy's and Python's generators as the resumed checkpoint had them."""
        if self._random is not None:
            _set_random_state(*self._random)

    def _check_same_run(self, document: dict[str, Any], path: Path) -> None:
        saved = document["settings"]
        for name in sorted(set(saved) | set(self.settings)):
            if saved.get(name) != self.settings.get(name):
                raise ConfigError(
                    f"cannot resume from '{path}': {name} was {saved.get(name)!r} when the "
                    f"checkpoint was written, now {self.settings.get(name)!r}; resume with the "
                    "same settings"
                )
        if document["data"] != self.data:
            raise ConfigError(
                f"cannot resume from '{path}': the data differ from the rows the checkpoint was "
                "trained on (another file, or the file changed); resume with the same data"
            )


def open_checkpoints(
    checkpoint_dir: str | os.PathLike[str] | None,
    resume_from: str | os.PathLike[str] | None,
    settings: Mapping[str, Any],
    data: Sequence[Tensor | None],
    every: CheckpointInterval | str | int = "auto",
    keep: int = KEEP,
    group: Group | None = None,
) -> Checkpoints | None:
    """A run's checkpoints, resumed from ``resume_from``; None when neither folder is given.

    ``checkpoint_dir``: where they go (default: ``resume_from``); either may be a run folder
    holding ``checkpoints/``. ``settings``: the run's (:func:`jsonable` makes them JSON);
    ``data``: every tensor the run trains and is scored on, fingerprinted; ``group``: the
    processes training together, when several.
    """
    if checkpoint_dir is None and resume_from is None:
        return None

    def checkpoint_folder(path: str | os.PathLike[str]) -> Path:
        path = Path(path)
        return path / CHECKPOINT_FOLDER if (path / CHECKPOINT_FOLDER).is_dir() else path

    folder = checkpoint_folder(checkpoint_dir if checkpoint_dir is not None else resume_from)  # type: ignore[arg-type]
    checkpoints = Checkpoints(
        folder, jsonable(dict(settings)), fingerprint(data), every, keep, group
    )
    if resume_from is not None:
        checkpoints.resume(checkpoint_folder(resume_from))
    return checkpoints


def read_checkpoint(
    path: str | os.PathLike[str], *, tensors: bool = True
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The tensors and JSON document of one checkpoint file (no tensors read without ``tensors``).

    Raises:
        CheckpointError: if it is not a readable torchclf checkpoint.
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            header = handle.metadata() or {}
            read = {name: handle.get_tensor(name) for name in handle.keys()} if tensors else {}
        document = json.loads(header[METADATA_KEY])
        if document["format_version"] > FORMAT_VERSION:
            raise CheckpointError(f"'{path}' was written by a newer torchclf")
        for key in ("stage", "epoch", "batch", "settings", "data", "values", "history", "random"):
            document[key]
    except CheckpointError:
        raise
    except (SafetensorError, OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"'{path}' is not a readable torchclf checkpoint: {exc!r}") from exc
    return read, document


def latest_checkpoint(folder: str | os.PathLike[str]) -> Path | None:
    """The newest checkpoint file in ``folder``, or None."""
    files = _files(Path(folder))
    return files[-1][1] if files else None


def fingerprint(tensors: Sequence[Tensor | None]) -> str:
    """A SHA-256 of the tensors' shapes, dtypes and bytes: equal data, equal fingerprint."""
    digest = hashlib.sha256()
    for tensor in tensors:
        if tensor is None:
            digest.update(b"none;")
            continue
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{tuple(data.shape)}{data.dtype};".encode())
        digest.update(data.reshape(-1).view(torch.uint8).numpy().data)  # its memory, no copy
    return digest.hexdigest()


def jsonable(value: Any) -> Any:
    """``value`` as JSON values: tuples as lists, NumPy scalars as numbers, others as text."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


def optimizer_state(optimizer: torch.optim.Optimizer, into: LoopState, prefix: str) -> None:
    """Put a ``torch.optim`` optimizer's state dict into ``into``: tensors, and JSON the rest."""
    state = optimizer.state_dict()
    other: dict[str, dict[str, Any]] = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if isinstance(value, Tensor):
                into.tensors[f"{prefix}.{index}.{name}"] = value
            else:
                other.setdefault(str(index), {})[name] = value
    into.values[prefix] = {"param_groups": state["param_groups"], "other": other}


def load_optimizer_state(optimizer: torch.optim.Optimizer, saved: LoopState, prefix: str) -> None:
    """The inverse of :func:`optimizer_state`."""
    state: dict[int, dict[str, Any]] = {}
    for name, tensor in saved.sub(prefix).items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = tensor
    for index, values in saved.values[prefix]["other"].items():
        state.setdefault(int(index), {}).update(values)
    optimizer.load_state_dict(
        {"state": state, "param_groups": saved.values[prefix]["param_groups"]}
    )


def _files(folder: Path) -> list[tuple[int, Path]]:
    """The checkpoint files of ``folder``, oldest first, with their numbers."""
    if not folder.is_dir():
        return []
    found = [(int(m[1]), p) for p in folder.iterdir() if (m := _NAME.fullmatch(p.name))]
    return sorted(found)


def _random_state(tensors: dict[str, Tensor]) -> dict[str, Any]:
    """Add torch's generator states to ``tensors``; return numpy's and Python's as JSON."""
    tensors["random.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for index, cuda_state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"random.cuda.{index}"] = cuda_state
    kind, keys, position, has_gauss, gauss = np.random.get_state()  # noqa: NPY002  (the global one)
    tensors["random.numpy"] = torch.from_numpy(np.asarray(keys, dtype=np.int64))
    version, python_state, python_gauss = random.getstate()
    return {
        "numpy": [kind, int(position), int(has_gauss), float(gauss)],
        "python": [version, list(python_state), python_gauss],
    }


def _set_random_state(saved: dict[str, Any], tensors: dict[str, Tensor]) -> None:
    torch.set_rng_state(tensors["random.torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("random.cuda.")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    kind, position, has_gauss, gauss = saved["numpy"]
    keys = tensors["random.numpy"].numpy().astype(np.uint32)
    np.random.set_state((kind, keys, position, has_gauss, gauss))  # noqa: NPY002
    version, python_state, python_gauss = saved["python"]
    random.setstate((version, tuple(python_state), python_gauss))


__all__ = [
    "CHECKPOINT_FOLDER",
    "Checkpoints",
    "LoopState",
    "fingerprint",
    "latest_checkpoint",
    "load_optimizer_state",
    "open_checkpoints",
    "optimizer_state",
    "read_checkpoint",
]
