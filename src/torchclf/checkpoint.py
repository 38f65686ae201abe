"""Model files: safetensors tensors plus one JSON metadata entry. No pickle, ever.

A file holds the weights (``model.*``), the preprocessing state (``preprocessing.*``) and, under
the metadata key ``"torchclf"``, a JSON document with the format version, task, classes, feature
names and configs. Reading parses only the safetensors header and raw tensor bytes, so opening a
file cannot execute code from it. Writing is atomic: a temporary file in the same folder is
renamed over the target only once it is complete.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from torch import Tensor

from torchclf.errors import ModelFileError
from torchclf.files import CHECKPOINT_FOLDER, RUN_FILE, atomic_file

FORMAT_NAME = "torchclf"
FORMAT_VERSION = 1
METADATA_KEY = "torchclf"
MODEL_FILE = "model.safetensors"  # the model's name inside a run folder


def _run_command(folder: Path) -> str:
    """The command an unfinished run folder was begun by: "train", "sweep" or "stream"."""
    try:
        command = json.loads((folder / CHECKPOINT_FOLDER / RUN_FILE).read_text())["command"]
        return str(command).split()[1]
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return "train"


def write_model_file(
    path: str | os.PathLike[str], tensors: dict[str, Tensor], metadata: dict[str, Any]
) -> Path:
    """Write ``tensors`` and ``metadata`` to ``path`` atomically; parent folders are created."""
    from safetensors.torch import save_file

    path = Path(path)
    document = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **metadata}
    header = {METADATA_KEY: json.dumps(document, sort_keys=True)}
    contiguous = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
    with atomic_file(path) as temporary:
        save_file(contiguous, temporary, metadata=header)
    return path


def read_model_file(path: str | os.PathLike[str]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Read the tensors (on the CPU) and the metadata document of a torchclf model file.

    ``path`` may also be a run folder holding ``model.safetensors``.

    Raises:
        ModelFileError: if the file is missing, not a safetensors file, truncated, not a torchclf
            model, or written in a newer format than this torchclf reads.
    """
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE  # a run folder
    if not path.exists() and path.name == MODEL_FILE and (path.parent / CHECKPOINT_FOLDER).is_dir():
        raise ModelFileError(
            f"'{path.parent}' is an unfinished run: its training was interrupted (or is still "
            f"going on) and it has no model yet; finish it with "
            f"'torchclf {_run_command(path.parent)} --resume {path.parent}'"
        )
    if not path.is_file():
        raise ModelFileError(f"model file '{path}' does not exist (or is not a file)")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            header = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelFileError(
            f"'{path}' is not a readable safetensors file, so not a torchclf model "
            f"(it may be truncated or corrupt): {exc}"
        ) from exc
    if METADATA_KEY not in header:
        raise ModelFileError(
            f"'{path}' is a safetensors file but not a torchclf model: its metadata has no "
            f"'{METADATA_KEY}' entry"
        )
    try:
        document = json.loads(header[METADATA_KEY])
    except json.JSONDecodeError as exc:
        raise ModelFileError(
            f"'{path}' has corrupt torchclf metadata (invalid JSON: {exc})"
        ) from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
        raise ModelFileError(f"'{path}' has torchclf metadata of an unknown format")
    version = document.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise ModelFileError(f"'{path}' has an invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"'{path}' was written by a newer torchclf (format version {version}; this torchclf "
            f"reads up to {FORMAT_VERSION}): upgrade with 'pip install -U torchclf'"
        )
    return tensors, document


__all__ = ["FORMAT_VERSION", "read_model_file", "write_model_file"]
