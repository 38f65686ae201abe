"""Atomic writes: a file or folder appears complete under its name, or not at all.

Each helper hands out a temporary path next to the target (same file system, so the final
``os.replace``/``os.rename`` is atomic) and moves it into place only when the block succeeds; on
any error the temporary is removed and the target is left as it was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from torchclf.errors import ConfigError

# a run folder's training state while it trains (torchclf.training.checkpoints): a folder that
# holds it and no model is a run still training, or interrupted
CHECKPOINT_FOLDER = "checkpoints"
RUN_FILE = "train.json"  # in it: the command and the options the run began with


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


@contextmanager
def atomic_file(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write; it replaces ``path`` when the block ends without error.

    Parent folders are created. The data is flushed to disk before the rename.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(descriptor)
    temporary = Path(name)
    try:
        yield temporary
        # mkstemp makes 0600, and a writer may have replaced the file (safetensors does): set
        # the mode a plain open() would give, under the umask, once the data is in
        temporary.chmod(0o666 & ~_umask())
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


@contextmanager
def atomic_directory(path: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder that becomes ``path`` when the block ends without error.

    Raises:
        ConfigError: if ``path`` exists and ``overwrite`` is false (checked before and after).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise ConfigError(f"'{path}' already exists; choose another name or allow overwriting")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    temporary.chmod(0o777 & ~_umask())  # mkdtemp makes 0700
    try:
        yield temporary
        if path.exists():
            if not overwrite:
                raise ConfigError(
                    f"'{path}' already exists; choose another name or allow overwriting"
                )
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / path.name)
            os.rename(temporary, path)
            shutil.rmtree(old)
        else:
            os.rename(temporary, path)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary)


__all__ = ["CHECKPOINT_FOLDER", "RUN_FILE", "atomic_directory", "atomic_file"]
