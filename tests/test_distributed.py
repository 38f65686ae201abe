"""Data-parallel training: two CPU processes (gloo) give the model one process gives.

The processes are started by PyTorch's own launcher (``python -m torch.distributed.run``, i.e.
torchrun) and meet at a free port of 127.0.0.1; each run is bounded in time. Every case runs in
float64, where two processes and one differ only by the order of a few additions.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import make_classification
from typer.testing import CliRunner

import torchclf
from torchclf.cli import app

LAUNCH_SECONDS = 300  # the whole launched script: its processes start, train every case, end

# fit's keywords per case; every case: float64, a fixed seed
CASES: dict[str, dict[str, Any]] = {
    # the autograd loop, mini-batches, stopped early on validation rows
    "autograd": dict(engine="autograd", batch_size=64, epochs=60, patience=3, lr=0.01),
    # the hand-written engine, an ensemble of 3 trained side by side, stopped early
    "engine": dict(engine="stacked", ensemble=3, batch_size=64, epochs=60, patience=3, lr=0.01),
    # fit's defaults: 8 cross-fitted networks on full batches, the blend and the temperature
    "defaults": dict(epochs=40),
    # sample weights: each step's gradient is the weighted mean over both processes' rows
    "weighted": dict(engine="autograd", batch_size=50, epochs=8, weighted=True),
}
# a stream of 5 row groups (4 x 90 rows, 40): the processes' shares differ in rows and batches
STREAM = dict(epochs=8, batch_size=32, hidden=[16], lr=0.01, validation_fraction=0.1, patience=2)
ROW_GROUP_ROWS = 90
RESUME = dict(engine="stacked", batch_size=64, epochs=10, early_stopping=False)
CRASH_AFTER = 4  # the resume cases' runs fail after this epoch (its checkpoint written)

SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import numpy as np
    import torch
    import torch.distributed as dist
    import torchclf

    folder = Path(sys.argv[1])
    group = torchclf.distributed.init_from_environment("cpu")
    rank = group.rank
    data = np.load(folder / "data.npz")
    X, y, weight = data["X"], data["y"], data["weight"]

    def save(name, classifier):
        torch.save(
            {
                "state": classifier.model.state_dict(),
                "rows": classifier.history.rows,
                "stopped_early": classifier.history.stopped_early,
                "proba": classifier.predict_proba(X),
            },
            folder / f"{name}-{rank}.pt",
        )

    class Crash(Exception):
        pass

    def crash(row):
        if row["epoch"] == CRASH_AFTER:
            raise Crash

    for name, keywords in json.loads((folder / "cases.json").read_text()).items():
        weighted = keywords.pop("weighted", False)
        classifier = torchclf.fit(
            X, y, dtype="float64", sample_weight=weight if weighted else None, **keywords
        )
        save(name, classifier)
    stream = json.loads((folder / "stream.json").read_text())
    save("stream", torchclf.fit_parquet(folder / "rows.parquet", "label", dtype="float64", **stream))
    resume = json.loads((folder / "resume.json").read_text())
    try:  # written by these processes, resumed by one
        torchclf.fit(X, y, dtype="float64", checkpoint_dir=folder / "by-two",
                     checkpoint_every=1, on_epoch=crash, **resume)
    except Crash:
        pass
    # written by one process, resumed by these
    save("resumed", torchclf.fit(X, y, dtype="float64", resume_from=folder / "by-one", **resume))
    torchclf.distributed.close()
    """
).replace("CRASH_AFTER", str(CRASH_AFTER))


def run_bounded(command: list[str]) -> subprocess.CompletedProcess[str]:
    """``command`` run to its end within :data:`LAUNCH_SECONDS`, one thread a process."""
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=LAUNCH_SECONDS,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """400 rows of 8 features, 3 classes; weights 0.5-2."""
    X, y = make_classification(400, 8, n_informative=5, n_classes=3, random_state=0)
    weight = np.random.default_rng(0).uniform(0.5, 2.0, len(y))
    return X, y, weight


class Crash(Exception):
    pass


def crash(row: dict[str, float]) -> None:
    if row["epoch"] == CRASH_AFTER:
        raise Crash


@pytest.fixture(scope="module")
def launched(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run every case on two processes (torchrun, gloo); the folder of their results."""
    folder = tmp_path_factory.mktemp("distributed")
    X, y, weight = data()
    np.savez(folder / "data.npz", X=X, y=y, weight=weight)
    (folder / "cases.json").write_text(json.dumps(CASES))
    (folder / "resume.json").write_text(json.dumps(RESUME))
    (folder / "stream.json").write_text(json.dumps(STREAM))
    table(X, y).to_parquet(folder / "rows.parquet", row_group_size=ROW_GROUP_ROWS)
    (folder / "script.py").write_text(SCRIPT)
    with pytest.raises(Crash):  # a checkpoint of one process, for the two to resume
        torchclf.fit(
            X, y, dtype="float64", checkpoint_dir=folder / "by-one", checkpoint_every=1,
            on_epoch=crash, **RESUME,
        )  # fmt: skip
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc-per-node=2",
        "--master-addr=127.0.0.1", f"--master-port={free_port()}", str(folder / "script.py"),
        str(folder),
    ]  # fmt: skip
    done = run_bounded(command)
    assert done.returncode == 0, done.stderr[-3000:]
    return folder


def table(X: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    """The rows as a table: columns f0.. and a text label."""
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    frame["label"] = np.array(["a", "b", "c"])[y]
    return frame


def one_process(case: dict[str, Any]) -> torchclf.Classifier:
    X, y, weight = data()
    keywords = dict(case)
    weighted = keywords.pop("weighted", False)
    return torchclf.fit(
        X, y, dtype="float64", sample_weight=weight if weighted else None, **keywords
    )


def assert_same_model(result: dict[str, Any], expected: torchclf.Classifier) -> None:
    """Weights and probabilities within float64 round-off; the same epochs and history."""
    state = expected.model.state_dict()
    assert state.keys() == result["state"].keys()
    for name, tensor in state.items():
        torch.testing.assert_close(result["state"][name], tensor, rtol=0, atol=1e-10, msg=name)
    np.testing.assert_allclose(result["proba"], expected.predict_proba(data()[0]), atol=1e-10)
    rows = expected.history.rows
    assert [r["epoch"] for r in result["rows"]] == [r["epoch"] for r in rows]
    for got, want in zip(result["rows"], rows, strict=True):
        for column in ("train_loss", "val_loss", "train_accuracy", "val_accuracy"):
            if column in want:
                assert got[column] == pytest.approx(want[column], abs=1e-10)


@pytest.mark.parametrize("name", list(CASES))
def test_two_processes_train_the_model_one_process_trains(launched: Path, name: str) -> None:
    results = [torch.load(launched / f"{name}-{rank}.pt", weights_only=False) for rank in (0, 1)]
    for name_, tensor in results[0]["state"].items():  # the processes hold one model
        assert torch.equal(tensor, results[1]["state"][name_]), name_
    assert_same_model(results[0], one_process(CASES[name]))


@pytest.mark.parametrize("name", ["autograd", "engine"])
def test_early_stopping_ends_both_processes_at_the_same_epoch(launched: Path, name: str) -> None:
    results = [torch.load(launched / f"{name}-{rank}.pt", weights_only=False) for rank in (0, 1)]
    assert results[0]["stopped_early"] and results[1]["stopped_early"]
    last = [r["rows"][-1]["epoch"] for r in results]
    assert last[0] == last[1] < CASES[name]["epochs"]


def test_a_checkpoint_of_two_processes_resumes_on_one_and_of_one_on_two(launched: Path) -> None:
    X, y, _ = data()
    uninterrupted = torchclf.fit(X, y, dtype="float64", **RESUME)
    written = sorted((launched / "by-two").glob("checkpoint-*.safetensors"))
    assert written, "rank 0 wrote the two processes' checkpoints"
    resumed = torchclf.fit(X, y, dtype="float64", resume_from=launched / "by-two", **RESUME)
    for name, tensor in uninterrupted.model.state_dict().items():
        torch.testing.assert_close(
            resumed.model.state_dict()[name], tensor, rtol=0, atol=1e-10, msg=name
        )
    on_two = torch.load(launched / "resumed-0.pt", weights_only=False)
    assert_same_model(on_two, uninterrupted)


def test_a_stream_shares_its_row_groups_between_two_processes(launched: Path) -> None:
    results = [torch.load(launched / f"stream-{rank}.pt", weights_only=False) for rank in (0, 1)]
    for name, tensor in results[0]["state"].items():  # one model, one history
        assert torch.equal(tensor, results[1]["state"][name]), name
    untimed = [[{k: v for k, v in r.items() if k != "time"} for r in x["rows"]] for x in results]
    assert untimed[0] == untimed[1]
    assert all(np.isfinite(row["train_loss"]) for row in results[0]["rows"])
    X, y, _ = data()
    alone = torchclf.fit_parquet(launched / "rows.parquet", "label", dtype="float64", **STREAM)
    accuracy = [
        float((np.argmax(probabilities, axis=1) == y).mean())
        for probabilities in (results[0]["proba"], alone.predict_proba(X))
    ]
    assert accuracy[0] > 0.7 and accuracy[0] >= accuracy[1] - 0.05, accuracy


def test_torchclf_train_nproc_runs_the_command_on_two_processes(tmp_path: Path) -> None:
    X, y, _ = data()
    rows = table(X, y)
    rows.to_csv(tmp_path / "t.csv", index=False)
    options = [
        "--data", str(tmp_path / "t.csv"), "--target", "label", "--batch-size", "64",
        "--epochs", "6", "--out", str(tmp_path / "runs"), "--quiet",
    ]  # fmt: skip
    command = [sys.executable, "-m", "torchclf", "train", *options]
    two = run_bounded([*command, "--name", "two", "--nproc", "2"])
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.strip().splitlines() == [f"run folder: {tmp_path / 'runs' / 'two'}"]
    one = CliRunner().invoke(app, ["train", *options, "--name", "one"])
    assert one.exit_code == 0, one.output
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["one", "two"]
    assert (tmp_path / "runs" / "two" / "report.html").is_file()
    models = [
        torchclf.load(tmp_path / "runs" / name / "model.safetensors") for name in ("one", "two")
    ]
    features = rows.drop(columns="label")
    np.testing.assert_allclose(
        models[1].predict_proba(features), models[0].predict_proba(features), atol=1e-5
    )
    # bad input: each process refuses it; one line, exit code 2, no folder
    bad = run_bounded([*command, "--name", "bad", "--nproc", "2", "--lr", "-1"])
    assert bad.returncode == 2
    assert "Traceback" not in bad.stdout + bad.stderr
    assert "'lr' parameter" in bad.stdout + bad.stderr
    assert not (tmp_path / "runs" / "bad").exists()


def test_torchclf_stream_nproc_streams_on_two_processes(tmp_path: Path) -> None:
    X, y, _ = data()
    table(X, y).to_parquet(tmp_path / "rows.parquet", row_group_size=ROW_GROUP_ROWS)
    command = [
        sys.executable, "-m", "torchclf", "stream", "--data", str(tmp_path / "rows.parquet"),
        "--target", "label", "--epochs", "2", "--out", str(tmp_path / "runs"), "--name", "s",
        "--nproc", "2",
    ]  # fmt: skip
    done = run_bounded(command)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 3 and lines[-1] == f"run folder: {tmp_path / 'runs' / 's'}", lines
    assert lines[0].startswith("Epoch:    1") and lines[1].startswith("Epoch:    2")
    assert torchclf.load(tmp_path / "runs" / "s" / "model.safetensors").predict(X[:5]).shape == (5,)


def test_commands_that_do_not_share_their_work_refuse_torchrun(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun sets it in each process it starts
    result = CliRunner().invoke(app, ["sweep", "--data", "circles"])
    assert result.exit_code == 2
    assert "'torchclf sweep' runs as one process" in result.output
