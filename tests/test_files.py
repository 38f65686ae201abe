import os
import re
import stat

import numpy as np
import pytest

import torchclf
from torchclf import ConfigError
from torchclf.files import atomic_directory, atomic_file


def test_atomic_file_replaces_only_on_success(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with atomic_file(target) as temporary:
        temporary.write_text("first")
        assert not target.exists()  # nothing under the real name until the block ends
    assert target.read_text() == "first"
    with pytest.raises(RuntimeError), atomic_file(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "first"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]


def test_atomic_outputs_respect_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_file(tmp_path / "f") as temporary:
            temporary.write_text("x")
        with atomic_directory(tmp_path / "d"):
            pass
        # a writer that replaces the temporary file (safetensors' save_file does) too
        model = torchclf.fit(np.eye(4), [0, 1, 0, 1], epochs=1).save(tmp_path / "m.safetensors")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755
    assert stat.S_IMODE(model.stat().st_mode) == 0o644


def test_atomic_directory_leaves_nothing_behind_on_error(tmp_path):
    with pytest.raises(ValueError), atomic_directory(tmp_path / "run") as staging:
        (staging / "model.safetensors").write_text("partial")
        raise ValueError("plotting failed")
    assert list(tmp_path.iterdir()) == []


def test_atomic_directory_refuses_or_replaces_an_existing_folder(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "old.txt").write_text("old")
    message = f"'{tmp_path / 'run'}' already exists; choose another name or allow overwriting"
    with pytest.raises(ConfigError, match=re.escape(message)), atomic_directory(tmp_path / "run"):
        pass
    with atomic_directory(tmp_path / "run", overwrite=True) as staging:
        (staging / "new.txt").write_text("new")
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
