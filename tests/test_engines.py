"""The hand-written full-batch engine against the autograd loop: the same model."""

import re

import numpy as np
import pytest
import torch

import torchclf
from torchclf import ConfigError, datasets


def _fit(X, y, **options):
    """fit, one network unless the case says otherwise: these tests check the engine's sums."""
    return torchclf.fit(X, y, **{"ensemble": 1, **options})


def _weights(classifier):
    return torch.cat([p.detach().reshape(-1) for p in classifier.model.parameters()])


def _data(task):
    if task == "binary":
        data = datasets.load("moons", n_samples=160, noise=0.25)
    elif task == "multiclass":
        data = datasets.load("blobs", n_samples=160, n_classes=3)
    else:
        data = datasets.load("multilabel", n_samples=160)
    return torchclf.train_test_split(data.X, data.labels, test_size=0.25, seed=0)


CASES = [
    ("binary", {"optimizer": "adam", "lr": 0.01, "hidden": (8, 8)}),
    ("binary", {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 1e-3}),
    ("multiclass", {"optimizer": "adamw", "lr": 0.02, "weight_decay": 0.05, "activation": "tanh"}),
    ("multiclass", {"optimizer": "adam", "hidden": (), "lr": 0.05}),
    ("multilabel", {"optimizer": "adam", "lr": 0.01, "activation": "gelu"}),
    (
        "binary",
        {"lr": 0.05, "early_stopping": True, "validation_fraction": 0.25, "patience": 5},
    ),
    # mini-batches: one step per batch, the same shuffled batches as the autograd loop
    ("binary", {"batch_size": 32, "optimizer": "adam", "lr": 0.01}),
    ("multiclass", {"batch_size": 50, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9}),
    ("multilabel", {"batch_size": 16, "optimizer": "adamw", "weight_decay": 0.01}),
    (
        "multiclass",
        {"batch_size": 24, "early_stopping": True, "validation_fraction": 0.25, "patience": 3},
    ),
    # ensembles: each member its own gradient, the ensemble's metrics and one stopping epoch
    (
        "binary",
        {"ensemble": 3, "lr": 0.05, "early_stopping": True, "validation_fraction": 0.25},
    ),
    (
        "multiclass",
        {"ensemble": 2, "batch_size": 24, "cross_fit": False, "patience": 3},
    ),
    ("multilabel", {"ensemble": 3, "lr": 0.01, "validation_fraction": 0.25}),
]


@pytest.mark.parametrize(("task", "options"), CASES)
def test_the_stacked_engine_trains_the_same_model_as_autograd(task, options):
    split = _data(task)
    common = dict(epochs=60, dtype="float64", eval_set=(split.X_test, split.y_test), **options)
    fast = _fit(split.X_train, split.y_train, engine="stacked", **common)
    plain = _fit(split.X_train, split.y_train, engine="autograd", **common)
    torch.testing.assert_close(_weights(fast), _weights(plain), rtol=0, atol=1e-10)
    assert len(fast.history) == len(plain.history)
    assert fast.history.best_epoch == plain.history.best_epoch
    assert fast.history.stopped_early == plain.history.stopped_early
    for column in plain.history.rows[0]:
        if column == "time":
            continue
        if column.endswith("accuracy") or column in ("epoch", "lr"):
            assert fast.history.column(column) == plain.history.column(column), column
        else:
            np.testing.assert_allclose(
                fast.history.column(column), plain.history.column(column), rtol=1e-9
            )


def test_batches_cut_across_the_gathered_chunks_train_as_autograd(monkeypatch):
    from torchclf.engine import BatchFeatures

    # chunks of 70 rows (2 float64 features) against batches of 32 of the 120 training rows:
    # the second batch comes from inside a chunk, the third straddles one's end and refills it
    monkeypatch.setattr(BatchFeatures, "CHUNK_BYTES", 70 * 2 * 8)
    split = _data("binary")
    common = dict(epochs=5, dtype="float64", batch_size=32, lr=0.01)
    fast = _fit(split.X_train, split.y_train, engine="stacked", **common)
    plain = _fit(split.X_train, split.y_train, engine="autograd", **common)
    torch.testing.assert_close(_weights(fast), _weights(plain), rtol=0, atol=1e-10)
    np.testing.assert_allclose(
        fast.history.column("train_loss"), plain.history.column("train_loss"), rtol=1e-9
    )


def test_early_stopping_really_stops_on_the_stacked_engine():
    split = _data("binary")
    fast = _fit(
        split.X_train,
        split.y_train,
        lr=0.2,
        epochs=500,
        early_stopping=True,
        validation_fraction=0.25,
        patience=5,
        engine="stacked",
    )
    assert fast.history.stopped_early and len(fast.history) < 500
    assert len(fast.history) == fast.history.best_epoch + 5


def test_auto_uses_the_stacked_engine_only_where_it_applies():
    split = _data("binary")
    for options in ({"batch_norm": True}, {"dropout": 0.2}, {"lr_schedule": "cosine"}):
        auto = _fit(split.X_train, split.y_train, epochs=5, engine="auto", **options)
        plain = _fit(split.X_train, split.y_train, epochs=5, engine="autograd", **options)
        assert torch.equal(_weights(auto), _weights(plain))


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"batch_norm": True}, "batch norm"),
        ({"lr_schedule": "step"}, "a learning-rate schedule"),
        ({"optimizer": "rmsprop"}, "the rmsprop optimizer"),
        ({"class_weight": "balanced"}, "class weights"),
    ],
)
def test_insisting_on_the_stacked_engine_says_why_it_cannot(options, reason):
    split = _data("binary")
    message = f"engine='stacked' cannot train this run: {reason}. Use engine='auto' (or 'autograd')"
    with pytest.raises(ConfigError, match=re.escape(message)):
        _fit(split.X_train, split.y_train, epochs=2, engine="stacked", **options)


def test_progress_on_the_stacked_engine_comes_every_epoch():
    split = _data("binary")
    rows = []
    _fit(split.X_train, split.y_train, epochs=120, engine="stacked", on_epoch=rows.append)
    assert [row["epoch"] for row in rows] == [float(e) for e in range(1, 121)]
    # divergence on both engines: tests/test_training.py::test_diverging_loss_stops_with_a_clear_error


def test_compile_wraps_the_autograd_loop_and_reports_its_first_step(monkeypatch):
    split = _data("binary")
    compiled = []

    def fake_compile(module):  # records the call; the real one takes tens of seconds cold
        compiled.append(module)
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    common = dict(epochs=5, dtype="float64", seed=3)
    with_compile = _fit(split.X_train, split.y_train, compile=True, **common)
    plain = _fit(split.X_train, split.y_train, engine="autograd", **common)
    assert len(compiled) == 1 and compiled[0] is with_compile.model
    assert with_compile.history.compile_seconds is not None
    assert plain.history.compile_seconds is None
    torch.testing.assert_close(_weights(with_compile), _weights(plain), rtol=0, atol=0)
    with pytest.raises(ConfigError, match=re.escape("compile=True compiles the autograd loop")):
        _fit(split.X_train, split.y_train, compile=True, engine="stacked")


def test_cli_compile_flag_reports_the_compile_time(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from torchclf.cli import app

    monkeypatch.setattr(torch, "compile", lambda module: module)
    arguments = ["train", "--data", "moons", "--epochs", "3", "--compile", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, arguments, prog_name="torchclf")
    assert result.exit_code == 0, result.output
    assert re.search(
        r"torch\.compile: the first step took \d+\.\d s \(compiling included\)", result.output
    )


def test_mini_batch_progress_arrives_after_every_epoch(monkeypatch):
    from torchclf.engine import loops as stacked_training

    split = _data("binary")
    seen_at_flush = []  # how many rows the callback had received at each read of the device
    rows = []
    original = stacked_training._Records.flush

    def counting_flush(self, on_flush, last_epochs):
        original(self, on_flush, last_epochs)
        seen_at_flush.append(len(rows))

    monkeypatch.setattr(stacked_training._Records, "flush", counting_flush)
    _fit(split.X_train, split.y_train, epochs=4, batch_size=16, on_epoch=rows.append)
    assert [row["epoch"] for row in rows] == [1.0, 2.0, 3.0, 4.0]
    assert seen_at_flush == [1, 2, 3, 4]  # one row per epoch, as soon as the epoch ends


@pytest.mark.parametrize(("task", "options"), CASES[:5] + CASES[6:9])
def test_the_stacked_engine_matches_autograd_in_float32_too(task, options):
    # float32 sums in another order than autograd's: the weights drift apart by round-off,
    # about 1e-6 per epoch here, so 60 epochs stay within 1e-4
    split = _data(task)
    common = dict(epochs=60, dtype="float32", **options)
    fast = _fit(split.X_train, split.y_train, engine="stacked", **common)
    plain = _fit(split.X_train, split.y_train, engine="autograd", **common)
    torch.testing.assert_close(_weights(fast), _weights(plain), rtol=0, atol=1e-4)


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_the_op_by_op_optimizer_step_equals_the_fused_kernel_and_autograd(monkeypatch, optimizer):
    from torchclf.engine import optimizer as stacked_optimizer

    split = _data("multiclass")
    # no validation rows: the one member then always trains, which is when the kernel runs
    common = dict(epochs=40, dtype="float64", optimizer=optimizer, weight_decay=0.01, lr=0.02,
                  validation_fraction=0.0)  # fmt: skip
    fused = _fit(split.X_train, split.y_train, engine="stacked", **common)
    calls = []

    def refuse(*args, **kwargs):
        calls.append(1)
        return False  # as on a torch without the kernel: the caller steps op by op

    monkeypatch.setattr(stacked_optimizer, "_fused_adam", refuse)
    by_hand = _fit(split.X_train, split.y_train, engine="stacked", **common)
    plain = _fit(split.X_train, split.y_train, engine="autograd", **common)
    assert len(calls) == 40  # the op-by-op path really ran, once a step
    torch.testing.assert_close(_weights(by_hand), _weights(fused), rtol=0, atol=1e-10)
    torch.testing.assert_close(_weights(by_hand), _weights(plain), rtol=0, atol=1e-10)


@pytest.mark.parametrize("options", [{}, {"ensemble": 2, "batch_size": 32}])
def test_learned_category_vectors_train_the_same_on_both_engines(options):
    import pandas as pd

    rng = np.random.default_rng(0)
    shops = rng.choice([f"s{i}" for i in range(12)], 160)
    kinds = rng.choice(list("xyz"), 160)
    X = pd.DataFrame({"a": rng.normal(size=160), "shop": shops, "kind": kinds})
    y = ((X["a"] > 0) ^ X["shop"].isin(["s1", "s2", "s3"])).astype(int).to_numpy()
    common = dict(
        epochs=30,
        dtype="float64",
        categorical_embedding="learned",
        cross_fit=False,
        blend_linear=False,
        **options,
    )
    fast = _fit(X, y, engine="stacked", **common)
    plain = _fit(X, y, engine="autograd", **common)
    assert fast.model_config.category_counts == (13, 4)  # 12 shops and 3 kinds, + OTHER each
    torch.testing.assert_close(_weights(fast), _weights(plain), rtol=0, atol=1e-10)
    np.testing.assert_allclose(
        fast.history.column("train_loss"), plain.history.column("train_loss"), rtol=1e-9
    )
