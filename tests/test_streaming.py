import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

import torchclf
from torchclf import ConfigError, DataError
from torchclf.data import parquet as streaming
from torchclf.data.parquet import ParquetSource, scan, shuffled_blocks
from torchclf.encoders import ArrayEncoder
from torchclf.tasks import infer_task


def _frame(rows=3000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 4)) * [1.0, 2.0, 0.5, 3.0] + [0.0, 1.0, -2.0, 5.0]
    label = (X[:, 0] > 0).astype(int) + (X[:, 1] > 1).astype(int)  # 3 classes
    frame = pd.DataFrame(X.astype(np.float32), columns=["a", "b", "c", "d"])
    return frame.assign(row_id=np.arange(rows, dtype=np.int64), label=label)


def _write_folder(tmp_path, frame, files=2, group_rows=400):
    folder = tmp_path / "data"
    folder.mkdir()
    for index, part in enumerate(np.array_split(np.arange(len(frame)), files)):
        table = pa.Table.from_pandas(frame.iloc[part], preserve_index=False)
        pq.write_table(table, folder / f"part-{index}.parquet", row_group_size=group_rows)
    return folder


def test_statistics_from_one_streaming_pass_equal_the_in_memory_ones(tmp_path):
    frame = _frame()
    source = ParquetSource.open(_write_folder(tmp_path, frame), "label", ["a", "b", "c", "d"])
    assert len(source.groups) == 8 and source.n_rows == 3000  # 2 files x 4 row groups
    statistics = scan(source)
    in_memory = ArrayEncoder.fit(frame[["a", "b", "c", "d"]].to_numpy())
    np.testing.assert_allclose(statistics.mean, in_memory.mean, rtol=1e-6)
    np.testing.assert_allclose(statistics.std, in_memory.scale, rtol=1e-6)
    assert statistics.classes.tolist() == [0, 1, 2] and statistics.dropped == 0


def test_a_row_group_becomes_rows_a_block_at_a_time(tmp_path, monkeypatch):
    monkeypatch.setattr(streaming, "STACK_ROWS", 7)  # blocks of 7 rows, the last one short
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "f64": rng.normal(size=50),
            "i64": rng.integers(-5, 5, 50),
            "flag": rng.random(50) > 0.5,
            "label": rng.integers(0, 2, 50),
        }
    )
    path = tmp_path / "mixed.parquet"
    frame.to_parquet(path, row_group_size=30)
    source = ParquetSource.open(path, "label")
    X, y, skipped = source.read(source.groups[1])
    expected = frame.iloc[30:][["f64", "i64", "flag"]].to_numpy(dtype=np.float32)
    assert X.dtype == np.float32 and skipped == 0
    np.testing.assert_array_equal(X, expected)
    np.testing.assert_array_equal(y, frame["label"].to_numpy()[30:])


def test_every_row_once_per_epoch_shuffled_across_row_groups(tmp_path):
    frame = _frame()
    source = ParquetSource.open(_write_folder(tmp_path, frame, group_rows=300), "label")
    encoder = ArrayEncoder(np.zeros(5), np.ones(5), list(source.features))
    task = infer_task(frame["label"].to_numpy())

    def epoch_ids(epoch, seed=0):
        blocks = [  # each block is a view of a buffer that the next one overwrites
            (X.clone(), y.clone())
            for X, y in shuffled_blocks(
                source,
                encoder,
                task,
                batch_size=64,
                shuffle_buffer_rows=500,
                seed=seed,
                epoch=epoch,
            )
        ]
        # every block but the last is whole batches; none is larger than buffer + a row group
        assert all(len(X) % 64 == 0 for X, _ in blocks[:-1])
        assert max(len(X) for X, _ in blocks) <= 500 + 300
        for X, y in blocks:  # the targets travel with their rows (label = (a > 0) + (b > 1))
            a, b = X[:, source.features.index("a")], X[:, source.features.index("b")]
            assert torch.equal(y, (a > 0).long() + (b > 1).long())
        return np.concatenate([X[:, source.features.index("row_id")] for X, _ in blocks])

    first, second = epoch_ids(1), epoch_ids(2)
    assert sorted(first.astype(int)) == list(range(3000))
    assert not np.array_equal(first, second)
    assert np.array_equal(first, epoch_ids(1))  # same seed and epoch, same order
    # rows from different row groups end up next to each other
    groups_of_first_batch = {int(i) // 300 for i in first[:64]}
    assert len(groups_of_first_batch) > 1


def test_fit_parquet_trains_a_model_that_predicts_raw_rows(tmp_path):
    frame = _frame(4000)
    folder = _write_folder(tmp_path, frame)
    features = ["a", "b", "c", "d"]
    classifier = torchclf.fit_parquet(
        folder, "label", features=features, hidden=(16,), epochs=20, lr=0.01, seed=0
    )
    assert len(classifier.history) == 20
    assert classifier.history.last["train_accuracy"] > 0.9
    # 20% of the rows held out (4000 rows: under 10,000), and the best validation epoch kept
    assert classifier.train_config.validation_fraction == 0.2
    losses = classifier.history.column("val_loss")
    assert classifier.history.best_epoch == 1 + int(np.argmin(losses))
    test = _frame(1000, seed=1)
    assert classifier.evaluate(test[features], test["label"])["accuracy"] > 0.9
    loaded = torchclf.load(classifier.save(tmp_path / "model.safetensors"))
    np.testing.assert_array_equal(
        loaded.predict(test[features]), classifier.predict(test[features])
    )
    again = torchclf.fit_parquet(
        folder, "label", features=features, hidden=(16,), epochs=20, lr=0.01, seed=0
    )
    np.testing.assert_array_equal(  # same seed, same data: the same model
        again.predict_proba(test[features]), classifier.predict_proba(test[features])
    )


def test_rows_without_a_target_are_skipped_and_counted(tmp_path):
    frame = _frame(1000).astype({"label": float})
    frame.loc[[3, 500, 999], "label"] = np.nan
    frame.loc[600:799, "label"] = np.nan  # a whole row group without targets
    path = tmp_path / "gaps.parquet"
    frame.to_parquet(path, row_group_size=200)
    statistics = scan(ParquetSource.open(path, "label"))
    assert statistics.dropped == 203 and statistics.rows == 797
    classifier = torchclf.fit_parquet(path, "label", hidden=(8,), epochs=2, seed=0)
    assert len(classifier.history) == 2


def test_bad_parquet_inputs_get_clear_errors(tmp_path):
    frame = _frame(200)
    path = tmp_path / "t.parquet"
    frame.assign(city="Oslo").to_parquet(path)
    with pytest.raises(DataError, match=re.escape("target column 'disease' is not in")):
        torchclf.fit_parquet(path, "disease")
    with pytest.raises(
        DataError,
        match=re.escape(
            "column 'city' is large_string: streaming training takes numeric columns only"
        ),
    ):
        torchclf.fit_parquet(path, "label")
    with pytest.raises(DataError, match=re.escape("does not exist: give a Parquet file")):
        torchclf.fit_parquet(tmp_path / "nope.parquet", "label")
    gaps = frame.copy()
    gaps.loc[7, "b"] = np.nan
    gaps.to_parquet(tmp_path / "nan.parquet")
    with pytest.raises(DataError, match=re.escape("column 'b' has missing values")):
        torchclf.fit_parquet(tmp_path / "nan.parquet", "label")
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(DataError, match="is not a readable Parquet file"):
        torchclf.fit_parquet(tmp_path / "junk.parquet", "label")
    with pytest.raises(ConfigError, match=re.escape("'shuffle_buffer_rows' parameter")):
        torchclf.fit_parquet(path, "label", features=["a"], shuffle_buffer_rows=10)


def test_stream_command_trains_evaluates_and_writes_a_run_folder(tmp_path):
    from typer.testing import CliRunner

    from torchclf.cli import app

    frame = _frame(3000)
    folder = _write_folder(tmp_path, frame)
    test_file = tmp_path / "test.csv"
    _frame(500, seed=1).to_csv(test_file, index=False)
    arguments = ["stream", "--data", str(folder), "--target", "label", "--features", "a,b,c,d"]
    arguments += ["--hidden", "16", "--epochs", "10", "--lr", "0.01", "--test-data", str(test_file)]
    result = CliRunner().invoke(app, [*arguments, "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "data"
    assert {p.name for p in run.iterdir()} == {"model.safetensors", "history.csv", "metrics.json"}
    history = pd.read_csv(run / "history.csv")
    assert history["epoch"].tolist() == list(range(1, 11)) and "val_loss" in history
    assert "metrics on" in result.output and result.output.rstrip().endswith(f"run folder: {run}")
    unseen = _frame(500, seed=2)
    loaded = torchclf.load(run)
    assert loaded.evaluate(unseen[["a", "b", "c", "d"]], unseen["label"])["accuracy"] > 0.85
    quiet = [*arguments[:-2], "--epochs", "1", "--out", str(tmp_path / "runs"), "--quiet"]
    said = CliRunner().invoke(app, quiet).stdout.splitlines()
    assert said == [f"run folder: {tmp_path / 'runs' / 'data-2'}"]  # --quiet: the folder alone
    wrong = CliRunner().invoke(app, ["stream", "--data", str(folder), "--target", "lable"])
    assert wrong.exit_code == 2
    assert "target column 'lable' is not in" in wrong.output
    assert "Did you mean 'label'?" in wrong.output


def test_read_ahead_keeps_order_raises_the_readers_error_and_stops_when_closed():
    import threading

    def readers():
        return [t for t in threading.enumerate() if t.name == "torchclf-parquet-reader"]

    assert list(streaming.read_ahead(range(10), lambda job: job * job)) == [
        j * j for j in range(10)
    ]

    def load(job):
        if job == 3:
            raise ValueError("row group 3 is corrupt")
        return job

    with pytest.raises(ValueError, match="row group 3 is corrupt"):
        list(streaming.read_ahead(range(10), load))

    loaded = streaming.read_ahead(range(1000), lambda job: job)
    assert next(loaded) == 0
    loaded.close()  # the reader may be waiting on a full queue: closing must still stop it
    assert not readers()


def test_validation_rows_are_held_out_of_every_pass_and_pick_the_best_epoch(tmp_path):
    from torchclf.data.parquet import Holdout

    frame = _frame(3000)
    frame["label"] = np.where(  # noisy labels: a wide net overfits, the validation loss rises
        np.random.default_rng(3).random(3000) < 0.3, 1 - frame["label"], frame["label"]
    )
    folder = _write_folder(tmp_path, frame)
    source = ParquetSource.open(folder, "label")
    holdout = Holdout(0.25, seed=0)
    statistics = scan(source, holdout)
    held = sum(int(holdout.mask(g, g[2]).sum()) for g in source.groups)
    assert len(statistics.y_val) == held and statistics.rows == 3000 - held
    assert 600 < held < 900
    classifier = torchclf.fit_parquet(
        folder, "label", hidden=(64, 64), lr=0.03, epochs=60, patience=5,
        validation_fraction=0.25, batch_size=64, seed=0,
    )  # fmt: skip
    history = classifier.history
    assert history.stopped_early and len(history) < 60
    assert history.best_epoch == 1 + int(np.argmin(history.column("val_loss")))
    assert len(history) == history.best_epoch + 5


def test_fit_parquet_equals_fit_on_the_same_rows(tmp_path):
    """One row group, one batch of every row: the stream's full-batch steps are fit's."""
    frame = _frame(600)
    path = tmp_path / "one.parquet"
    frame.to_parquet(path, row_group_size=600)
    features = ["a", "b", "c", "d"]
    common = dict(hidden=(8,), lr=0.01, epochs=30, seed=3, dtype="float64", validation_fraction=0.0)
    streamed = torchclf.fit_parquet(
        path, "label", features=features, batch_size=600, shuffle_buffer_rows=600, **common
    )
    in_memory = torchclf.fit(
        frame[features].to_numpy(), frame["label"].to_numpy(), engine="autograd",
        prior_bias=False,  # the stream starts from nn.Linear's own bias
        ensemble=1,  # and trains one network
        **common,
    )  # fmt: skip
    for a, b in zip(streamed.model.parameters(), in_memory.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-9)
    np.testing.assert_allclose(
        streamed.history.column("train_loss"), in_memory.history.column("train_loss"), rtol=1e-9
    )
