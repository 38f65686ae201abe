import dataclasses

import pandas as pd
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import torchclf
from torchclf import datasets
from torchclf.cli import app
from torchclf.training.improve import best_variant, improve, single_changes, variants_table
from torchclf.training.sweep import Member


@pytest.fixture(scope="module")
def circles_variants():
    data = datasets.load("circles", n_samples=400)
    split = torchclf.train_test_split(data.X, data.labels, test_size=0.25, seed=0)
    baseline = Member(hidden=(10, 10), activation="identity", epochs=250)
    return improve(split.X_train, split.y_train, baseline, eval_set=(split.X_test, split.y_test))


def test_the_non_linearity_is_what_learns_circles(circles_variants):
    by_change = {v.change: v for v in circles_variants}
    assert 0.4 <= by_change["baseline"].test_accuracy <= 0.6
    for change in ("more layers", "more hidden units", "more epochs", "higher learning rate"):
        assert by_change[change].test_accuracy <= 0.65  # still a straight line
    assert by_change["activation relu"].test_accuracy >= 0.99
    rows = variants_table(circles_variants)
    assert rows[0]["change"] == "baseline" and rows[0]["vs_baseline"] == 0
    relu = next(r for r in rows if r["change"] == "activation relu")
    # compared on the validation rows: the test rows are only reported
    assert relu["vs_baseline"] == pytest.approx(relu["val_accuracy"] - rows[0]["val_accuracy"])


def test_every_technique_of_the_lesson_is_tried():
    baseline = Member(hidden=(8,), activation="relu", optimizer="adam", lr=0.01, epochs=100)
    changes = dict(single_changes(baseline))
    assert changes["more layers"].hidden == (8, 8)
    assert changes["more hidden units"].hidden == (32,)
    assert changes["more epochs"].epochs == 200
    assert changes["higher learning rate"].lr == pytest.approx(0.1)
    assert changes["lower learning rate"].lr == pytest.approx(0.001)
    assert {"activation tanh", "activation identity", "optimizer sgd"} <= set(changes)


def test_combinations_merge_the_helpful_changes_without_conflicts():
    data = datasets.load("moons", noise=0.2, n_samples=400)
    split = torchclf.train_test_split(data.X, data.labels, test_size=0.25, seed=0)
    baseline = Member(hidden=(4,), activation="relu", epochs=150)
    variants = improve(
        split.X_train, split.y_train, baseline, eval_set=(split.X_test, split.y_test)
    )
    singles = {v.change: v.member for v in variants if " + " not in v.change}
    combos = [v for v in variants if " + " in v.change]
    for combo in combos:
        parts = combo.change.split(" + ")
        expected = baseline
        for part in parts:
            changed = {
                f.name: getattr(singles[part], f.name)
                for f in dataclasses.fields(Member)
                if getattr(singles[part], f.name) != getattr(baseline, f.name)
            }
            expected = dataclasses.replace(expected, **changed)
        assert combo.member == expected
        activations = [p for p in parts if p.startswith("activation")]
        assert len(activations) <= 1  # two changes of one field are never combined


def test_the_best_changes_are_stacked_together_round_by_round(circles_variants):
    # the README's example: only the activations help alone, and they change one field; the
    # best of them is still combined with every other change, and the best pair with the rest
    by_change = {v.change: v for v in circles_variants}
    pairs = [v for v in circles_variants if v.change.count(" + ") == 1]
    assert len(pairs) == 6  # the best activation with each change of another field
    first = pairs[0].change.split(" + ")[0]
    assert first.startswith("activation") and all(v.change.startswith(first) for v in pairs)
    best_pair = max(pairs, key=lambda v: (v.val_accuracy, -v.val_loss))
    triples = [v for v in circles_variants if v.change.count(" + ") == 2]
    if triples:  # a second round only when a pair beat the best single change
        assert all(v.change.startswith(best_pair.change + " + ") for v in triples)
        assert (best_pair.val_accuracy, -best_pair.val_loss) > (
            by_change[first].val_accuracy,
            -by_change[first].val_loss,
        )
    best = best_variant(circles_variants)
    assert (best.val_accuracy, -best.val_loss) == max(
        (v.val_accuracy, -v.val_loss) for v in circles_variants
    )


def test_improve_command_writes_its_table_and_pictures(tmp_path):
    result = CliRunner().invoke(
        app, ["improve", "--epochs", "300", "--out", str(tmp_path)], prog_name="torchclf"
    )
    assert result.exit_code == 0, result.output
    folder = tmp_path / "improve-circles"
    table = pd.read_csv(folder / "improve.csv")
    relu = table[table["change"] == "activation relu"].iloc[0]
    base = table[table["change"] == "baseline"].iloc[0]
    assert base["test_accuracy"] <= 0.6 and relu["test_accuracy"] >= 0.99
    for picture in ("improve.png", "boundaries.png"):
        with Image.open(folder / picture) as image:
            assert image.size[0] >= 600
    assert "activation relu" in result.stdout and f"results: {folder}" in result.stdout
    assert "compared on val acc, test only reported" in result.stdout


def test_sweep_command_ranks_members_and_saves_the_best(tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "sweep",
            "--data",
            "moons",
            "--hidden",
            "4,16",
            "--layers",
            "0,1",
            "--lr",
            "0.01,0.1",
            "--epochs",
            "120",
            "--out",
            str(tmp_path),
        ],
        prog_name="torchclf",
    )
    assert result.exit_code == 0, result.output
    folder = tmp_path / "sweep-moons"
    table = pd.read_csv(folder / "sweep.csv")
    assert len(table) == 6  # depth 0 is the same linear model whatever the width: 2 + 4 members
    # ranked on the validation rows (20% of the training rows by default), not on the test rows
    assert list(table["val_accuracy"]) == sorted(table["val_accuracy"], reverse=True)
    histories = pd.read_csv(folder / "histories.csv")
    assert len(histories) == table["epochs"].sum() and set(histories["member"]) == set(range(6))
    best = torchclf.load(folder)  # a run folder is accepted too
    assert best.model_config.hidden != ()  # the linear model cannot win on moons
    predicted = runner.invoke(app, ["predict", str(folder)])
    assert predicted.exit_code == 0 and predicted.stdout.startswith("row,true,prediction,")


def test_sweep_ranks_on_validation_rows_and_stops_members_early(tmp_path):
    arguments = ["sweep", "--data", "spirals", "--hidden", "8,32", "--layers", "1"]
    arguments += ["--lr", "0.003,0.3", "--epochs", "400", "--validation-size", "0.25"]
    arguments += ["--early-stopping", "--patience", "10", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, arguments, prog_name="torchclf")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "sweep-spirals" / "sweep.csv")
    assert list(table["val_accuracy"]) == sorted(table["val_accuracy"], reverse=True)
    assert table["epochs"].min() < 400  # the lr 0.3 members overfit and stop on their own
    assert table["epochs"].max() == 400


def test_sweep_ranks_on_validation_rows_only(tmp_path):
    result = CliRunner().invoke(
        app, ["sweep", "--validation-size", "0", "--out", str(tmp_path)], prog_name="torchclf"
    )
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: Invalid value for '--validation-size': expected a share in (0, 0.9], got 0.0: "
        "members are ranked on validation rows, never on the test rows (see 'torchclf sweep "
        "--help')\n"
    )


def test_sweep_grids_over_epoch_counts(tmp_path):
    arguments = ["sweep", "--data", "moons", "--hidden", "8", "--layers", "1"]
    arguments += [
        "--lr",
        "0.01",
        "--epochs",
        "20,60",
        "--no-early-stopping",
        "--out",
        str(tmp_path),
    ]
    result = CliRunner().invoke(app, arguments, prog_name="torchclf")
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "sweep-moons" / "sweep.csv")
    assert sorted(table["max_epochs"]) == [20, 60] and sorted(table["epochs"]) == [20, 60]
    histories = pd.read_csv(tmp_path / "sweep-moons" / "histories.csv")
    assert len(histories) == 80


def test_sweep_trains_members_on_shared_mini_batches(tmp_path):
    arguments = ["sweep", "--data", "moons", "--hidden", "8", "--layers", "1", "--lr", "0.01,0.1"]
    arguments += ["--epochs", "5", "--batch-size", "100", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, arguments, prog_name="torchclf")
    assert result.exit_code == 0, result.output
    best = torchclf.load(tmp_path / "sweep-moons")
    assert best.train_config.batch_size == 100
    bad_arguments = [*arguments, "--batch-size", "0", "--name", "bad"]  # the last value counts
    bad = CliRunner().invoke(app, bad_arguments, prog_name="torchclf")
    assert bad.exit_code == 2
    assert "The 'batch_size' parameter must be an int in the range [1, inf). Got 0 instead." in (
        bad.output
    )
    assert not (tmp_path / "bad").exists()


def test_the_test_rows_never_influence_improve():
    data = datasets.load("moons", noise=0.2, n_samples=300)
    split = torchclf.train_test_split(data.X, data.labels, test_size=0.25, seed=0)
    baseline = Member(hidden=(4,), activation="identity", epochs=100)
    flipped = {"0": "1", "1": "0"}
    other_test = (split.X_test * -3 + 1, [flipped.get(str(v), v) for v in split.y_test])
    runs = [
        improve(split.X_train, split.y_train, baseline, eval_set=eval_set)
        for eval_set in ((split.X_test, split.y_test), other_test)
    ]
    assert [v.change for v in runs[0]] == [v.change for v in runs[1]]
    for a, b in zip(*runs, strict=True):
        for p, q in zip(
            a.classifier.model.parameters(), b.classifier.model.parameters(), strict=True
        ):
            assert torch.equal(p, q)
    assert [v.test_accuracy for v in runs[0]] != [v.test_accuracy for v in runs[1]]


def test_the_test_rows_never_influence_sweep(tmp_path):
    """A file's split is stratified by its labels, so only the test rows' features change."""
    import numpy as np

    from torchclf.data.sources import DataSource

    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(240, 2)), columns=["a", "b"])
    frame["label"] = np.where(frame["a"] * frame["b"] + rng.normal(0, 0.3, 240) > 0, "x", "y")
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=False)
    test_lines = DataSource(name=str(path), target=("label",), seed=42).split().X_test.index
    outputs = []
    for run in ("first", "second"):
        arguments = ["sweep", "--data", str(path), "--target", "label", "--hidden", "4,16", "--layers", "1",
                     "--lr", "0.01,0.1", "--epochs", "80", "--out", str(tmp_path), "--name", run]  # fmt: skip
        assert CliRunner().invoke(app, arguments).exit_code == 0
        table = pd.read_csv(tmp_path / run / "sweep.csv")
        outputs.append(
            (
                table.drop(columns=[c for c in table if c.startswith("test_")]),
                (tmp_path / run / "model.safetensors").read_bytes(),
            )
        )
        frame.loc[test_lines - 2, ["a", "b"]] = rng.normal(size=(len(test_lines), 2)) * 10
        frame.to_csv(path, index=False)
    pd.testing.assert_frame_equal(outputs[0][0], outputs[1][0])
    assert outputs[0][1] == outputs[1][1]
