"""Checkpoints and resume: a run cut anywhere ends, resumed, in the very model an uncut run gives."""

import errno
import os
import random
import re
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import safetensors.torch
import torch
from typer.testing import CliRunner

import torchclf
from torchclf.cli import app
from torchclf.sweep import grid, train_members
from torchclf.training.checkpoints import Checkpoints, latest_checkpoint, read_checkpoint

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], prog_name="torchclf")


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6)).astype("float32")
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int) + (X[:, 3] > 0.8)  # three classes
    return X, y


class Crash(Exception):
    """Stands for the process dying: raised from the progress callback at a chosen epoch."""


def _fit(table, folder, crash_at=None, resume=False, **settings):
    def on_epoch(row):
        if row["epoch"] == crash_at:
            raise Crash

    return torchclf.fit(
        *table,
        seed=3,
        threads=1,
        checkpoint_dir=folder,
        resume_from=folder if resume else None,
        on_epoch=on_epoch,
        **settings,
    )


def _untimed(history):
    """A history's rows without the clock, which differs between two runs of the same model."""
    return [{k: v for k, v in row.items() if k != "time"} for row in history]


def _model_bytes(classifier, path):
    classifier.save(path)
    return Path(path).read_bytes()


# every loop: the autograd one (with dropout and a schedule, whose state and generator must come
# back), the engine full batch and in mini-batches, a cross-fitted ensemble whose members leave
# the stack as they stop; "0s" checkpoints between every two batches, so the last one before the
# crash is inside an epoch
LOOPS = {
    "autograd full batch": dict(engine="autograd", epochs=40, checkpoint_every=6),
    "autograd batches, dropout, cosine": dict(
        engine="autograd", epochs=8, batch_size=64, dropout=0.2, lr_schedule="cosine",
        checkpoint_every="0s",
    ),
    "engine full batch": dict(engine="stacked", epochs=200, checkpoint_every=7),
    "engine batches": dict(engine="stacked", epochs=8, batch_size=64, checkpoint_every="0s"),
    "cross-fitted ensemble, batches": dict(
        ensemble=4, epochs=20, batch_size=64, patience=3, checkpoint_every="0s"
    ),
    "cross-fitted ensemble, full batch": dict(
        ensemble=4, epochs=300, patience=15, checkpoint_every=3
    ),
}  # fmt: skip


@pytest.mark.parametrize("settings", LOOPS.values(), ids=LOOPS.keys())
def test_a_run_resumed_after_a_crash_is_bit_identical(table, tmp_path, settings):
    whole = _fit(table, tmp_path / "uncut", **settings)
    uncut = _model_bytes(whole, tmp_path / "uncut.st")
    crash_at = settings["epochs"] // 2 + 1
    with pytest.raises(Crash):
        _fit(table, tmp_path / "cut", crash_at=crash_at, **settings)
    _, document = read_checkpoint(latest_checkpoint(tmp_path / "cut"))
    assert document["stage"] == "training" and document["epoch"] <= crash_at
    resumed = _fit(table, tmp_path / "cut", resume=True, **settings)
    assert _model_bytes(resumed, tmp_path / "resumed.st") == uncut

    assert _untimed(resumed.history) == _untimed(whole.history)  # the epochs before it too


def test_a_mid_epoch_checkpoint_holds_the_position_and_the_generators(table, tmp_path):
    settings = LOOPS["autograd batches, dropout, cosine"]
    with pytest.raises(Crash):
        _fit(table, tmp_path, crash_at=3, **settings)
    tensors, document = read_checkpoint(latest_checkpoint(tmp_path))
    assert document["epoch"] == 3 and document["batch"] > 0  # inside epoch 3
    assert {"random.torch", "random.numpy", "sums.loss"} <= set(tensors)
    assert document["values"]["scheduler"]["last_epoch"] == 2
    assert len(document["history"]["rows"]) == 2
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == [
        p.name for p in sorted(tmp_path.glob("checkpoint-*"))[-2:]
    ]  # the last two kept


def test_resuming_with_other_settings_or_data_is_refused_by_name(table, tmp_path):
    settings = LOOPS["engine full batch"]
    with pytest.raises(Crash):
        _fit(table, tmp_path, crash_at=50, **settings)
    with pytest.raises(
        torchclf.ConfigError, match=r"lr was 0\.003 when the checkpoint .* now 0\.01"
    ):
        _fit(table, tmp_path, resume=True, **{**settings, "lr": 0.01})
    X, y = table
    with pytest.raises(torchclf.ConfigError, match="the data differ"):
        _fit((X[::-1].copy(), y[::-1].copy()), tmp_path, resume=True, **settings)
    with pytest.raises(torchclf.CheckpointError, match="holds no checkpoint"):
        _fit(table, tmp_path / "empty", resume=True, **settings)
    with pytest.raises(torchclf.ConfigError, match="checkpoint_every must be"):
        _fit(table, tmp_path / "other", **{**settings, "checkpoint_every": "soon"})


def test_an_unreadable_newest_checkpoint_falls_back_to_the_one_before(table, tmp_path):
    settings = LOOPS["engine full batch"]
    uncut = _model_bytes(_fit(table, tmp_path / "uncut", **settings), tmp_path / "uncut.st")
    with pytest.raises(Crash):
        _fit(table, tmp_path / "cut", crash_at=120, **settings)
    newest = latest_checkpoint(tmp_path / "cut")
    newest.write_bytes(newest.read_bytes()[:100])  # torn
    resumed = _fit(table, tmp_path / "cut", resume=True, **settings)
    assert _model_bytes(resumed, tmp_path / "resumed.st") == uncut


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EROFS], ids=["full disk", "read-only"])
def test_a_failed_write_is_one_error_and_keeps_the_previous_checkpoint(
    table, tmp_path, monkeypatch, error
):
    save_file, calls = safetensors.torch.save_file, []

    def failing(tensors, path, metadata=None):
        calls.append(path)
        if len(calls) == 3:  # half a file, then the disk says no
            save_file(tensors, path, metadata=metadata)
            Path(path).write_bytes(Path(path).read_bytes()[:200])
            raise OSError(error, os.strerror(error))
        save_file(tensors, path, metadata=metadata)

    monkeypatch.setattr(safetensors.torch, "save_file", failing)
    with pytest.raises(torchclf.CheckpointError, match=os.strerror(error)) as raised:
        _fit(table, tmp_path, **LOOPS["engine full batch"])
    assert "previous checkpoint is kept" in str(raised.value) and "\n" not in str(raised.value)
    # the two written before (KEEP), whole; nothing of the third
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint-000001.safetensors",
        "checkpoint-000002.safetensors",
    ]
    _, document = read_checkpoint(tmp_path / "checkpoint-000002.safetensors")
    assert document["epoch"] == 15  # after epoch 14, the second of every 7


@contextmanager
def _dying_after(monkeypatch, writes):
    """The block's run "dies" (raises Crash, which must come) right after its ``writes``-th
    checkpoint; checkpoints are written as usual again after the block."""
    save, count = Checkpoints.save, [0]

    def saving(self, *args, **kwargs):
        path = save(self, *args, **kwargs)
        count[0] += 1
        if count[0] == writes:
            raise Crash
        return path

    monkeypatch.setattr(Checkpoints, "save", saving)
    with pytest.raises(Crash):
        yield
    monkeypatch.setattr(Checkpoints, "save", save)


def test_a_crash_after_training_resumes_from_the_trained_network(table, tmp_path, monkeypatch):
    settings = dict(
        engine="stacked", ensemble=1, epochs=120, checkpoint_every="1h"
    )  # one, at the end
    whole = _fit(table, tmp_path / "uncut", **settings)
    with _dying_after(monkeypatch, 1):  # after the network, before calibration and the rest
        _fit(table, tmp_path / "cut", **settings)
    _, document = read_checkpoint(latest_checkpoint(tmp_path / "cut"))
    assert document["stage"] == "trained" and document["epoch"] == len(whole.history)
    resumed = _fit(table, tmp_path / "cut", resume=True, **settings)
    assert _model_bytes(resumed, tmp_path / "r.st") == _model_bytes(whole, tmp_path / "u.st")
    moments = [s["exp_avg_sq"] for s in resumed.optimizer.state_dict()["state"].values()]
    expected = [s["exp_avg_sq"] for s in whole.optimizer.state_dict()["state"].values()]
    assert all(torch.equal(a, b) for a, b in zip(moments, expected, strict=True)) and moments


def _weights(classifiers):
    return [
        b"".join(t.numpy().tobytes() for t in c.model.state_dict().values()) for c in classifiers
    ]


@pytest.mark.parametrize("writes", [2, 9, 23])
@pytest.mark.parametrize("batch_size", [None, 64], ids=["full batch", "batches"])
def test_a_sweep_resumed_after_a_crash_is_bit_identical(
    table, tmp_path, monkeypatch, writes, batch_size
):
    X, y = table
    members = grid([8, 16], [1, 2], lrs=[0.01, 0.03], dropouts=[0, 0.2], epochs=[24])  # 4 groups

    def sweep(folder, resume=False):
        return train_members(
            X[:300], y[:300], members, validation=(X[300:], y[300:]), early_stopping=True,
            patience=4, batch_size=batch_size, checkpoint_dir=folder, checkpoint_every=3,
            resume_from=folder if resume else None,
        )  # fmt: skip

    uncut = sweep(tmp_path / "uncut")
    with _dying_after(monkeypatch, writes):
        sweep(tmp_path / "cut")
    resumed = sweep(tmp_path / "cut", resume=True)
    assert _weights(resumed) == _weights(uncut)
    assert [c.history.rows for c in resumed] == [c.history.rows for c in uncut]


@pytest.mark.parametrize("writes", [3, 14, 30])
def test_a_stream_resumed_inside_an_epoch_is_bit_identical(tmp_path, monkeypatch, writes):
    frame = pd.DataFrame(np.random.default_rng(1).normal(size=(2400, 4)), columns=list("abcd"))
    frame["label"] = (frame.a + frame.b > 0).astype(int) + (frame.c > 1)
    frame.to_parquet(tmp_path / "rows.parquet", row_group_size=200)

    def stream(folder, resume=False):
        return torchclf.fit_parquet(
            tmp_path / "rows.parquet", "label", epochs=3, batch_size=64, shuffle_buffer_rows=500,
            validation_fraction=0.1, device="cpu", checkpoint_dir=folder, checkpoint_every="0s",
            resume_from=folder if resume else None,
        )  # fmt: skip

    uncut = stream(tmp_path / "uncut")
    with _dying_after(monkeypatch, writes):
        stream(tmp_path / "cut")
    tensors, document = read_checkpoint(latest_checkpoint(tmp_path / "cut"))
    assert document["batch"] > 0 and "kept_X" in tensors  # inside an epoch, the buffer kept
    resumed = stream(tmp_path / "cut", resume=True)
    assert _weights([resumed]) == _weights([uncut])
    assert _untimed(resumed.history) == _untimed(uncut.history)


def test_a_full_disk_stops_train_in_one_line_and_keeps_the_run_to_resume(tmp_path, monkeypatch):
    save_file, calls = safetensors.torch.save_file, []

    def filling(tensors, path, metadata=None):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        save_file(tensors, path, metadata=metadata)

    args = ["--data", "moons", "--epochs", "300", "--checkpoint-every", "50", "--threads", "1"]
    uncut = invoke("train", *args, "--out", tmp_path, "--name", "uncut", "--quiet")
    assert uncut.exit_code == 0, uncut.output
    monkeypatch.setattr(safetensors.torch, "save_file", filling)
    full = invoke("train", *args, "--out", tmp_path, "--name", "run", "--quiet")
    folder = tmp_path / "run"
    assert full.exit_code == 2 and full.stderr.count("\n") == 1
    assert full.stderr == (
        f"Error: cannot write a checkpoint into '{folder / 'checkpoints'}': No space left on "
        f"device (the previous checkpoint is kept); make room, then resume with: torchclf train "
        f"--resume {folder}\n"
    )
    assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == [
        "checkpoint-000001.safetensors", "checkpoint-000002.safetensors", "train.json",
    ]  # fmt: skip
    monkeypatch.setattr(safetensors.torch, "save_file", save_file)
    resumed = invoke("train", "--resume", folder, "--quiet")
    assert resumed.exit_code == 0, resumed.output
    model = "model.safetensors"
    assert (folder / model).read_bytes() == (tmp_path / "uncut" / model).read_bytes()


# ------------------------------------------------------------------ the command line, killed
PROGRAM = "import sys; from torchclf.cli import main; sys.argv[0] = 'torchclf'; main()"
# dies half-way through writing its third checkpoint, as a machine losing power would
DIES_IN_A_WRITE = """
import os, signal, safetensors.torch as st
save_file, count = st.save_file, [0]
def dying(tensors, path, metadata=None):
    count[0] += 1
    save_file(tensors, path, metadata=metadata)
    if count[0] == 3:
        data = open(path, "rb").read()
        open(path, "wb").write(data[: len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
st.save_file = dying
"""
RUNS = {  # at least a second of training after the first checkpoint, on this machine
    "engine full batch": ["--data", "circles", "--epochs", "4000", "--checkpoint-every", "100"],
    "engine batches": [
        "--data", "digits", "--batch-size", "64", "--epochs", "300", "--checkpoint-every", "0.02s"
    ],
    "autograd full batch (dropout)": [
        "--data", "moons", "--dropout", "0.1", "--epochs", "1500", "--checkpoint-every", "100"
    ],
    "autograd batches (dropout)": [
        "--data", "digits", "--batch-size", "64", "--dropout", "0.1", "--epochs", "40",
        "--checkpoint-every", "0.02s",
    ],
}  # fmt: skip
COMMON = ["--no-early-stopping", "--threads", "1", "--quiet"]


def _start(args, folder, prelude=""):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", prelude + PROGRAM, "train", *args, *COMMON]
    command += ["--out", folder.parent, "--name", folder.name]
    return subprocess.Popen(
        [str(c) for c in command], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def _after_checkpoint(process, folder, number, signum):
    """Send ``signum`` once checkpoint ``number`` is written; return the exit code and stderr."""
    deadline = time.monotonic() + 120  # a bound, never reached by a working run
    while process.poll() is None and time.monotonic() < deadline:
        newest = latest_checkpoint(folder / "checkpoints")
        if newest is not None and int(newest.stem.split("-")[1]) >= number:
            process.send_signal(signum)
            break
        time.sleep(0.002)  # polling the folder, not timing anything
    _, stderr = process.communicate(timeout=120)
    return process.returncode, stderr


@pytest.fixture(scope="module")
def uncut(tmp_path_factory):
    """Each run of RUNS trained in one go: its model file's bytes."""
    out = tmp_path_factory.mktemp("uncut")
    models = {}
    for index, (name, args) in enumerate(RUNS.items()):
        result = invoke("train", *args, *COMMON, "--out", out, "--name", index)
        assert result.exit_code == 0, result.output
        models[name] = (out / str(index) / "model.safetensors").read_bytes()
    return models


@pytest.mark.parametrize("seed", range(5))
def test_train_killed_at_a_random_moment_resumes_to_the_same_model_file(uncut, tmp_path, seed):
    rng = random.Random(seed)
    name = list(RUNS)[seed % len(RUNS)]
    prelude = DIES_IN_A_WRITE if seed == 4 else ""  # the fifth dies inside a checkpoint write
    folder = tmp_path / "run"
    process = _start(RUNS[name], folder, prelude)
    number = rng.randint(1, 4) if not prelude else sys.maxsize  # (that one kills itself)
    code, _ = _after_checkpoint(process, folder, number, signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert not (folder / "model.safetensors").exists()  # cut while it trained
    if prelude:  # its third checkpoint torn, under its temporary name only
        assert len(list((folder / "checkpoints").glob(".checkpoint-000003.safetensors.*.tmp"))) == 1
        assert latest_checkpoint(folder / "checkpoints").name == "checkpoint-000002.safetensors"
    refused = invoke("evaluate", folder)
    assert refused.exit_code == 2 and "unfinished run" in refused.stderr
    assert f"torchclf train --resume {folder}" in refused.stderr
    resumed = invoke("train", "--resume", folder, "--quiet")
    assert resumed.exit_code == 0, resumed.output
    assert (folder / "model.safetensors").read_bytes() == uncut[name]
    assert not (folder / "checkpoints").exists()  # the finished run replaced the folder


def test_ctrl_c_writes_a_checkpoint_says_so_in_one_line_and_exits_130(uncut, tmp_path):
    name = "engine batches"
    folder = tmp_path / "run"
    code, stderr = _after_checkpoint(_start(RUNS[name], folder), folder, 2, signal.SIGINT)
    assert code == 130
    lines = stderr.splitlines()
    assert len(lines) == 1
    assert re.fullmatch(
        rf"interrupted at epoch \d+; resume with: torchclf train --resume {folder}", lines[0]
    )
    epoch = int(lines[0].split()[3].rstrip(";"))
    _, document = read_checkpoint(latest_checkpoint(folder / "checkpoints"))
    assert document["epoch"] == epoch
    refused = invoke("predict", folder, "--data", "digits")
    assert refused.exit_code == 2 and "unfinished run" in refused.stderr
    other = invoke("train", "--resume", folder, "--epochs", "301")
    assert other.exit_code == 2
    assert "--epochs 301 differs from the run's 300" in other.stderr
    resumed = invoke("train", "--resume", folder, "--quiet")
    assert resumed.exit_code == 0, resumed.output
    assert (folder / "model.safetensors").read_bytes() == uncut[name]
    again = invoke("train", "--resume", folder)
    assert again.exit_code == 2 and "is a finished run" in again.stderr


OTHER_RUNS = {  # a sweep of 4 groups, and a stream: each killed, resumed, compared
    "sweep": [
        "--data", "moons", "--hidden", "8,16", "--layers", "1,2", "--lr", "0.01", "--epochs",
        "1500", "--checkpoint-every", "100", "--no-early-stopping", "--quiet",
    ],
    "stream": [
        "--target", "label", "--epochs", "12", "--batch-size", "32", "--shuffle-buffer-rows",
        "2000", "--checkpoint-every", "0.05s", "--device", "cpu", "--quiet",
    ],
}  # fmt: skip


@pytest.mark.parametrize("command", OTHER_RUNS)
def test_sweep_and_stream_killed_resume_to_the_same_files(tmp_path, command):
    args = OTHER_RUNS[command]
    if command == "stream":
        rows = pd.DataFrame(
            np.random.default_rng(1).normal(size=(20000, 8)), columns=list("abcdefgh")
        )
        rows["label"] = (rows.a + rows.b * rows.c > 0).astype(int)
        rows.astype({"label": int}).to_parquet(tmp_path / "rows.parquet", row_group_size=1000)
        args = ["--data", tmp_path / "rows.parquet", *args]
    whole = invoke(command, *args, "--out", tmp_path, "--name", "uncut")
    assert whole.exit_code == 0, whole.output
    folder = tmp_path / "run"
    command_line = [
        sys.executable,
        "-c",
        PROGRAM,
        command,
        *args,
        "--out",
        tmp_path,
        "--name",
        "run",
    ]
    process = subprocess.Popen(
        [str(c) for c in command_line], env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    code, _ = _after_checkpoint(
        process, folder, random.Random(command).randint(2, 5), signal.SIGKILL
    )
    assert code == -signal.SIGKILL and not (folder / "model.safetensors").exists()
    refused = invoke("info", folder)
    assert refused.exit_code == 2 and f"torchclf train --resume {folder}" not in refused.stderr
    assert f"torchclf {command} --resume {folder}" in refused.stderr
    resumed = invoke(command, "--resume", folder)
    assert resumed.exit_code == 0, resumed.output
    for name in ("model.safetensors", "sweep.csv", "histories.csv"):
        if (tmp_path / "uncut" / name).exists():
            assert (folder / name).read_bytes() == (tmp_path / "uncut" / name).read_bytes()
