import io
import json
import re
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

import torchclf
from golden import assert_same_output
from torchclf.cli import app

runner = CliRunner()

RUN_FILES = {
    "model.safetensors",
    "history.csv",
    "metrics.json",
    "test_predictions.csv",
    "loss_curves.png",
    "decision_boundary.png",
    "confusion_matrix.png",
    "roc_pr.png",
    "reliability.png",
    "report.html",
}


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args], prog_name="torchclf")


@pytest.fixture(scope="module")
def main_run(tmp_path_factory):
    """`torchclf train` with its defaults: the README's main job."""
    out = tmp_path_factory.mktemp("runs")
    result = invoke("train", "--out", out)
    assert result.exit_code == 0, result.output
    return out / "circles", result


def test_train_defaults_reach_99_percent_and_write_every_file(main_run):
    folder, result = main_run
    assert {p.name for p in folder.iterdir()} == RUN_FILES
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["scores"]["accuracy"] >= 0.99
    assert metrics["task"] == "binary" and set(metrics["class_names"]) == {"inner", "outer"}
    history = pd.read_csv(folder / "history.csv")
    assert len(history) == 1000 and list(history["epoch"][:3]) == [1, 2, 3]
    assert {"train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr"} <= set(history)
    # chosen on validation rows carved from the training rows: the best epoch's weights kept
    assert {"val_loss", "val_accuracy"} <= set(history)
    config = torchclf.load(folder / "model.safetensors").train_config
    assert config.early_stopping and config.validation_fraction == 0.2
    summary = torchclf.load(folder / "model.safetensors").training_summary
    assert summary["best_epoch"] == int(history["epoch"][history["val_loss"].idxmin()])
    # The printed table: a row every 100 epochs, the final metrics, the folder.
    rows = [
        line.split()[0]
        for line in result.stdout.splitlines()
        if re.match(r"^\s+\d+\s+\d\.\d{5}", line)
    ]
    assert rows == ["1", "100", "200", "300", "400", "500", "600", "700", "800", "900", "1000"]
    assert "test metrics" in result.stdout and "per class" in result.stdout
    assert result.stdout.rstrip().endswith(f"run folder: {folder}")


@pytest.mark.parametrize("name", sorted(n for n in RUN_FILES if n.endswith(".png")))
def test_run_pictures_are_real_images_of_sensible_size(main_run, name):
    folder, _ = main_run
    with Image.open(folder / name) as image:
        image.verify()
    with Image.open(folder / name) as image:
        width, height = image.size
        assert image.format == "PNG"
        assert 350 <= width <= 2000 and 300 <= height <= 1200
        # not a blank canvas: a real plot has many distinct colours
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 50


def test_report_is_self_contained(main_run):
    folder, _ = main_run
    page = (folder / "report.html").read_text()
    assert page.count("src='data:image/png;base64,") == 5
    assert "torchclf train --data circles" in page and "--hidden auto" in page
    assert "<h2>Data</h2>" in page and "inner 500" in page
    assert "Sequential" in page and "<h2>Test metrics</h2>" in page
    assert "src='http" not in page and "href=" not in page


def test_evaluate_reproduces_the_runs_test_metrics_exactly(main_run, tmp_path):
    folder, _ = main_run
    result = invoke("evaluate", folder, "--out", tmp_path)
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "evaluation" / "metrics.json").read_text()) == json.loads(
        (folder / "metrics.json").read_text()
    )
    # a second evaluation is numbered, as runs are; a taken --name is refused
    again = invoke("evaluate", folder, "--out", tmp_path)
    assert again.exit_code == 0 and (tmp_path / "evaluation-2" / "metrics.json").is_file()
    taken = invoke("evaluate", folder, "--out", tmp_path, "--name", "evaluation")
    assert taken.exit_code == 2 and "already exists" in taken.stderr
    assert {p.name for p in (tmp_path / "evaluation").iterdir()} == {
        "metrics.json",
        "reliability.png",
        "confusion_matrix.png",
        "roc_pr.png",
        "decision_boundary.png",
    }
    assert "metrics on circles, test split (200 rows)" in result.stdout


def test_predict_reproduces_the_runs_probabilities_exactly(main_run, tmp_path):
    folder, _ = main_run
    result = invoke("predict", folder / "model.safetensors", "--output", tmp_path / "p.csv")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "p.csv").read_bytes() == (folder / "test_predictions.csv").read_bytes()
    stdout = invoke("predict", folder)
    assert stdout.stdout == (folder / "test_predictions.csv").read_text()
    assert invoke("predict", folder, "--output", tmp_path / "p.parquet").exit_code == 0
    frame = pd.read_parquet(tmp_path / "p.parquet")
    assert list(frame.columns) == ["row", "true", "prediction", "proba_inner", "proba_outer"]
    assert frame.equals(pd.read_csv(folder / "test_predictions.csv").astype(frame.dtypes))


def test_predict_threshold_override(main_run, tmp_path):
    folder, _ = main_run
    invoke(
        "predict",
        folder,
        "--split",
        "all",
        "--threshold",
        "0.999999",
        "--output",
        tmp_path / "t.csv",
    )
    frame = pd.read_csv(tmp_path / "t.csv")
    assert len(frame) == 1000
    expected = np.where(frame["proba_outer"] >= 0.999999, "outer", "inner")
    assert (frame["prediction"] == expected).all()


def test_info_describes_the_model(main_run):
    folder, _ = main_run
    result = invoke("info", folder)
    assert result.exit_code == 0
    for text in (
        "binary",
        "inner, outer",
        "2: x0, x1",
        "151",
        "adam lr 0.003, 1000 epochs, seed 42",
        "circles, test size 0.2, seed 42",
    ):
        assert text in result.stdout
    assert "init" not in result.stdout  # nn.Linear's own initialisation goes unmentioned


def test_train_with_another_init_says_so_in_info(tmp_path):
    trained = invoke("train", "--init", "kaiming", "--epochs", "5", "--out", tmp_path, "--quiet")
    assert trained.exit_code == 0, trained.output
    result = invoke("info", tmp_path / "circles")
    assert "adam lr 0.003, 5 epochs, seed 42, init kaiming" in result.stdout


def test_datasets_lists_every_builtin():
    result = invoke("datasets")
    assert result.exit_code == 0
    for name in torchclf.datasets.list_datasets():
        assert name in result.stdout
    assert "1797" in result.stdout and "multilabel" in result.stdout


def test_activations_plots_and_prints_the_differences(tmp_path):
    result = invoke("activations", "--out", tmp_path)
    assert result.exit_code == 0
    with Image.open(tmp_path / "activations.png") as image:
        assert image.size[0] >= 600
    names = ("relu", "leaky_relu", "sigmoid", "tanh", "gelu", "softmax")
    cells = [line.strip("│ ").split("│") for line in result.stdout.splitlines()]
    rows = {c[0].strip(): float(c[1]) for c in cells if len(c) == 2 and c[0].strip() in names}
    assert set(rows) == set(names)
    assert max(rows.values()) < 1e-5


def test_multiclass_run_and_a_run_without_decision_boundary(tmp_path):
    result = invoke("train", "--data", "blobs", "--epochs", "30", "--out", tmp_path, "--quiet")
    assert result.exit_code == 0
    assert result.stdout == f"run folder: {tmp_path / 'blobs'}\n"  # --quiet prints only this
    assert (tmp_path / "blobs" / "decision_boundary.png").exists()
    result = invoke("train", "--data", "iris", "--epochs", "30", "--out", tmp_path, "--quiet")
    assert result.exit_code == 0
    assert not (tmp_path / "iris" / "decision_boundary.png").exists()
    assert "No decision boundary" in (tmp_path / "iris" / "report.html").read_text()


def test_run_folders_are_numbered_and_never_overwritten_silently(tmp_path):
    for _ in range(2):
        assert invoke("train", "--epochs", "2", "--out", tmp_path, "-q").exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["circles", "circles-2"]
    before = (tmp_path / "circles" / "model.safetensors").read_bytes()
    result = invoke(
        "train", "--epochs", "3", "--out", tmp_path, "--name", "circles", "--overwrite", "-q"
    )
    assert result.exit_code == 0
    assert (tmp_path / "circles" / "model.safetensors").read_bytes() != before
    assert json.loads((tmp_path / "circles" / "metrics.json").read_text())["task"] == "binary"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["circles", "circles-2"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["train", "--data", "circle"],
            "Invalid value for '--data': expected a built-in dataset (circles, moons, blobs, spirals, xor, multilabel, iris, wine, breast_cancer, digits) or a .csv/.parquet file, got 'circle'; did you mean 'circles'? (see 'torchclf train --help')",
            id="unknown-dataset",
        ),
        pytest.param(
            ["train", "--epochs", "abc"],
            "Invalid value for '--epochs': expected auto or a number such as 300, got 'abc' (see 'torchclf train --help')",
            id="epochs-not-int",
        ),
        pytest.param(
            ["train", "--hidden", "10;10"],
            "Invalid value for '--hidden': expected comma-separated numbers such as 10,10 (or 'none' for the linear model), got '10;10' (see 'torchclf train --help')",
            id="hidden-syntax",
        ),
        pytest.param(
            ["train", "--hidden", "0,4"],
            "Invalid value for '--hidden': layer sizes must be at least 1, got '0,4' (see 'torchclf train --help')",
            id="hidden-zero",
        ),
        pytest.param(
            ["train", "--threads", "many"],
            "Invalid value for '--threads': expected auto or a positive whole number, got 'many' (see 'torchclf train --help')",
            id="threads",
        ),
        pytest.param(
            ["train", "--optimizer", "adm"],
            "The 'optimizer' parameter must be one of ['sgd', 'adam', 'adamw', 'rmsprop']. Got 'adm' instead. Did you mean 'adam'?",
            id="optimizer",
        ),
        pytest.param(
            ["train", "--activation", "swish"],
            "The 'activation' parameter must be one of ['relu', 'leaky_relu', 'sigmoid', 'tanh', 'gelu', 'identity']. Got 'swish' instead.",
            id="activation",
        ),
        pytest.param(
            ["train", "--init", "glorot"],
            "The 'init' parameter must be one of ['torch', 'xavier', 'kaiming']. Got 'glorot' instead.",
            id="init",
        ),
        pytest.param(
            ["train", "--lr", "-1"],
            "The 'lr' parameter must be a float in the range (0.0, inf). Got -1.0 instead.",
            id="negative-lr",
        ),
        pytest.param(
            ["train", "--test-size", "1.5"],
            "The 'test_size' parameter must be in (0, 1). Got 1.5 instead.",
            id="test-size",
        ),
        pytest.param(
            ["train", "--task", "multi"],
            "The 'task' parameter must be one of ['auto', 'binary', 'multiclass', 'multilabel']. Got 'multi' instead. Did you mean 'multilabel'?",
            id="task",
        ),
        pytest.param(
            ["train", "--task", "binary", "--data", "blobs"],
            "task='binary' needs exactly two classes, but y has 4: ['blob_0', 'blob_1', 'blob_2', 'blob_3']; use task='multiclass' (or 'auto')",
            id="binary-on-blobs",
        ),
        pytest.param(["train", "--bogus"], "No such option: --bogus", id="unknown-option"),
        pytest.param(
            ["train", "--dropout", "1"],
            "The 'dropout' parameter must be a float in the range [0.0, 1.0). Got 1.0 instead.",
            id="dropout",
        ),
        pytest.param(
            ["evaluate"],
            "Missing argument 'model'. (see 'torchclf evaluate --help')",
            id="missing-model",
        ),
        pytest.param(
            ["evaluate", "nowhere.safetensors"],
            "model file 'nowhere.safetensors' does not exist (or is not a file)",
            id="missing-file",
        ),
        pytest.param(
            ["datasets", "extra"],
            "Got unexpected extra argument(s) (extra) (see 'torchclf datasets --help')",
            id="extra-argument",
        ),
    ],
)
def test_bad_invocations_print_one_line_and_exit_2(tmp_path, args, message):
    result = invoke(*args, *(["--out", tmp_path / "runs"] if args[0] == "train" else []))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("Error: " + message)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_bad_model_files_and_options_on_a_saved_model(main_run, tmp_path):
    folder, _ = main_run
    not_a_model = tmp_path / "notes.safetensors"
    not_a_model.write_text("hello")
    cases = [
        (
            ["info", not_a_model],
            f"'{not_a_model}' is not a readable safetensors file, so not a torchclf model (it may be truncated or corrupt)",
        ),
        (
            ["evaluate", folder, "--data", "moons", "--split", "test"],
            "Invalid value for '--split': --split test needs the model's own training data ('circles'); for 'moons' use --split all",
        ),
        (
            ["evaluate", folder, "--split", "some"],
            "Invalid value for '--split': expected 'test' or 'all', got 'some'",
        ),
        (
            ["predict", folder, "--threshold", "abc"],
            "Invalid value for '--threshold': expected comma-separated numbers such as 0.5 or 0.3,0.6, got 'abc'",
        ),
        (
            ["predict", folder, "--threshold", "1.5"],
            "The 'threshold' parameter must be in (0, 1). Got 1.5 instead.",
        ),
        (
            ["predict", folder, "--output", tmp_path / "p.txt"],
            f"cannot write '{tmp_path / 'p.txt'}': expected a file name ending in .csv or .parquet, got '.txt'",
        ),
        (
            ["evaluate", folder, "--data", "iris"],
            "X has 4 features, but the classifier was trained on 2",
        ),
    ]
    for args, message in cases:
        result = invoke(*args)
        assert result.exit_code == 2, args
        assert result.stderr.startswith("Error: " + message), result.stderr
        assert result.stderr.count("\n") == 1
    assert not (tmp_path / "p.txt").exists()


def test_name_taken_is_refused_before_training(tmp_path):
    (tmp_path / "taken").mkdir()
    result = invoke("train", "--out", tmp_path, "--name", "taken")
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: Invalid value for '--name': run folder '{tmp_path / 'taken'}' already exists; "
        "choose another --name or pass --overwrite (see 'torchclf train --help')\n"
    )


@pytest.mark.parametrize(
    "command",
    ["train", "evaluate", "predict", "info", "datasets", "activations", "improve", "sweep"],
)
def test_every_command_has_complete_help_with_examples(command):
    result = invoke(command, "--help")
    assert result.exit_code == 0
    assert "Examples:" in result.stdout or "Example:" in result.stdout
    assert f"torchclf {command}" in result.stdout


def test_help_and_argument_errors_import_no_torch():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from torchclf.cli import app\n"
        "r1 = CliRunner().invoke(app, ['--help'])\n"
        "r2 = CliRunner().invoke(app, ['train', '--epochs', 'x'])\n"
        "r3 = CliRunner().invoke(app, ['--version'])\n"
        "r4 = CliRunner().invoke(app, [])\n"
        "r5 = CliRunner().invoke(app, ['sweep', '--data', 'circle'])\n"
        "r6 = CliRunner().invoke(app, ['predict', 'runs/x', '--data', 'moon'])\n"
        "assert r6.exit_code == 2 and \"did you mean 'moons'\" in r6.output, r6.output\n"
        "assert r5.exit_code == 2 and \"did you mean 'circles'\" in r5.output, r5.output\n"
        "assert r1.exit_code == 0 and r2.exit_code == 2, (r1.output, r2.output)\n"
        "assert r3.exit_code == 0 and r3.output.startswith('torchclf '), r3.output\n"
        "assert r4.exit_code == 0 and 'Commands:' in r4.output, r4.output\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'sklearn', 'matplotlib'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_python_dash_m_runs_the_cli():
    result = subprocess.run(
        [sys.executable, "-m", "torchclf", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0 and "train" in result.stdout and "predict" in result.stdout


def test_readme_shows_a_real_run(main_run):
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    start = readme.index("$ torchclf train\n") + len("$ torchclf train\n")
    shown = readme[start : readme.index("```", start)].rstrip("\n").splitlines()
    printed = main_run[1].stdout.rstrip("\n").splitlines()
    # every line but the run folder's path, which is tmp here
    assert_same_output("\n".join(printed[:-1]), "\n".join(shown[:-1]))
    assert shown[-1] == "run folder: runs/circles"


def test_readme_shows_real_predictions(main_run):
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    start = readme.index("$ head -3 preds.csv\n") + len("$ head -3 preds.csv\n")
    shown = readme[start : readme.index("```", start)].rstrip("\n")
    written = (main_run[0] / "test_predictions.csv").read_text().splitlines()[:3]
    assert_same_output("\n".join(written), shown)


@pytest.fixture(scope="module")
def patients_run(tmp_path_factory):
    from test_tabular import patients

    folder = tmp_path_factory.mktemp("tables")
    frame = patients()
    frame.to_csv(folder / "patients.csv", index=False)
    new = frame.drop(columns=["disease"]).head(4).copy()
    new.loc[0, "city"] = "Atlantis"
    new.loc[1, "cholesterol"] = None
    new.to_csv(folder / "new.csv", index=False)
    result = invoke(
        "train",
        "--data",
        folder / "patients.csv",
        "--target",
        "disease",
        "--drop",
        "stage,tags",
        "--epochs",
        "100",
        "--class-weight",
        "balanced",
        "--out",
        folder / "runs",
    )
    assert result.exit_code == 0, result.output
    return folder, result


def test_train_on_a_csv_reports_the_loader_and_the_columns(patients_run):
    folder, result = patients_run
    assert "patients.csv: 300 rows (4 without a target, dropped), 5 features" in result.stdout
    assert "left out as id-like: patient_id" in result.stdout
    assert "missing values: cholesterol 20, city 15" in result.stdout
    page = (folder / "runs" / "patients" / "report.html").read_text()
    assert "<td>numeric columns</td><td>age, cholesterol</td>" in page
    assert "<td>categorical columns</td><td>sex, smoker, city</td>" in page
    assert (
        json.loads((folder / "runs" / "patients" / "metrics.json").read_text())["scores"][
            "accuracy"
        ]
        > 0.8
    )


def test_predict_raw_rows_of_a_new_file_and_evaluate_the_run_again(patients_run, tmp_path):
    folder, _ = patients_run
    run = folder / "runs" / "patients"
    result = invoke("predict", run, "--data", folder / "new.csv", "--output", tmp_path / "p.csv")
    assert result.exit_code == 0, result.output
    assert (
        "Warning: ignoring 3 columns the model does not use: ['patient_id', 'stage', 'tags']"
        in result.stderr
    )
    assert (
        "Warning: column 'city': 1 values outside its training categories (e.g. ['Atlantis'])"
        in result.stderr
    )
    frame = pd.read_csv(tmp_path / "p.csv")
    assert list(frame.columns) == ["line", "prediction", "proba_no", "proba_yes"]
    assert frame["line"].tolist() == [2, 3, 4, 5]  # the file's lines, the header line 1
    # --id-column: a column of the file (an id, left out of the features) joins rows back
    raw = pd.read_csv(folder / "new.csv")
    by_id = invoke("predict", run, "--data", folder / "new.csv", "--id-column", "patient_id")
    assert by_id.exit_code == 0, by_id.output
    joined = pd.read_csv(io.StringIO(by_id.stdout))
    assert joined["patient_id"].tolist() == raw["patient_id"].tolist()
    own = pd.read_csv(io.StringIO(invoke("predict", run, "--id-column", "patient_id").stdout))
    written = pd.read_csv(run / "test_predictions.csv")
    patients = pd.read_csv(folder / "patients.csv")
    # the run's test rows, by their CSV lines (the header is line 1) and by their ids: the same
    assert own["patient_id"].tolist() == patients["patient_id"][written["line"] - 2].tolist()
    assert own["true"].tolist() == patients["disease"][written["line"] - 2].tolist()
    missing = invoke("predict", run, "--id-column", "patientid")
    assert missing.exit_code == 2 and "has no column 'patientid'" in missing.stderr
    invoke("evaluate", run, "--out", tmp_path, "--name", "eval")
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text()) == json.loads(
        (run / "metrics.json").read_text()
    )
    assert invoke("predict", run).stdout == (run / "test_predictions.csv").read_text()


def test_file_options_errors(patients_run):
    folder, _ = patients_run
    cases = [
        (
            ["--data", folder / "patients.csv", "--target", "diseas"],
            f"column 'diseas' is not in '{folder / 'patients.csv'}'; its columns are ['patient_id', 'age', 'cholesterol', 'sex', 'smoker', 'city', 'disease', 'stage', 'tags']. Did you mean 'disease'?",
        ),
        (
            ["--data", folder / "patients.csv"],
            f"name the target column of '{folder / 'patients.csv'}' (for example --target tags)",
        ),
        (
            ["--data", folder / "absent.csv", "--target", "y"],
            f"Invalid value for '--data': data file '{folder / 'absent.csv'}' does not exist (or is not a file) (see 'torchclf train --help')",
        ),
        (
            ["--data", "circles", "--target", "y"],
            "--target, --features and --drop apply to CSV and Parquet files; the built-in dataset 'circles' has its own target and features",
        ),
    ]
    for args, message in cases:
        result = invoke("train", *args, "--out", folder / "bad-runs")
        assert result.exit_code == 2, result.output
        assert result.stderr == f"Error: {message}\n"
    assert not (folder / "bad-runs").exists()


@pytest.mark.parametrize(
    ("suffix", "target", "drop", "task", "columns"),
    [
        pytest.param(
            ".parquet",
            "stage",
            "disease,tags",
            "multiclass",
            ["row", "true", "prediction", "proba_high", "proba_low", "proba_mid"],
            id="multiclass-parquet",
        ),
        pytest.param(
            ".csv",
            "tags",
            "disease,stage",
            "multilabel",
            ["line", "true", "prediction", "proba_heart", "proba_lung", "proba_none"],
            id="multilabel-csv",
        ),
    ],
)
def test_multiclass_and_multilabel_files_from_the_cli(
    tmp_path, suffix, target, drop, task, columns
):
    from test_tabular import patients

    path = tmp_path / f"patients{suffix}"
    frame = patients()
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path, index=False)
    result = invoke(
        "train",
        "--data",
        path,
        "--target",
        target,
        "--drop",
        drop,
        "--epochs",
        "60",
        "--out",
        tmp_path / "runs",
    )
    assert result.exit_code == 0, result.output
    assert "columns: numeric age, cholesterol; categorical sex, smoker, city" in result.stdout
    run = tmp_path / "runs" / "patients"
    assert json.loads((run / "metrics.json").read_text())["task"] == task
    assert list(pd.read_csv(run / "test_predictions.csv").columns) == columns
    raw = frame.drop(columns=[target]).head(3)
    raw.to_csv(tmp_path / "raw.csv", index=False)
    predicted = invoke("predict", run, "--data", tmp_path / "raw.csv")
    assert predicted.exit_code == 0 and len(predicted.stdout.splitlines()) == 4


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param(
            "inf",
            "column 'weight' holds inf at line 9 (1 of its values is infinite or beyond float32's "
            "±3.4e+38): fix or remove such values, or empty those cells to have them imputed",
            id="inf",
        ),
        pytest.param(
            "1e308",
            "column 'weight' holds 1e+308 at line 9 (1 of its values is infinite or beyond "
            "float32's ±3.4e+38): fix or remove such values, or empty those cells to have them "
            "imputed",
            id="float32-overflow",
        ),
    ],
)
def test_a_column_out_of_range_is_named_before_training(tmp_path, value, message):
    rows = ["size,weight,label"] + [f"{i % 7},{i * 2.5},{i % 2}" for i in range(40)]
    rows[8] = f"3,{value},1"  # line 9 of the file
    path = tmp_path / "table.csv"
    path.write_text("\n".join(rows) + "\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = invoke("train", "--data", path, "--target", "label", "--out", tmp_path / "runs")
    assert caught == []  # no overflow warnings from NumPy on the way
    assert result.exit_code == 2
    assert result.stderr == f"Error: {message}\n"
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("hidden", ["10,,10", "10,10,", ",10"])
def test_an_empty_layer_size_is_refused(tmp_path, hidden):
    result = invoke("train", "--hidden", hidden, "--out", tmp_path / "runs")
    assert result.exit_code == 2
    assert result.stderr == (
        f"Error: Invalid value for '--hidden': expected comma-separated numbers such as 10,10 (or "
        f"'none' for the linear model), got {hidden!r}, which has an empty item; remove the extra "
        "comma or fill in the number (see 'torchclf train --help')\n"
    )
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["train"], id="train"),
        pytest.param(["improve", "--epochs", "2"], id="improve"),
        pytest.param(["activations"], id="activations"),
    ],
)
def test_out_naming_a_file_is_refused_in_one_line(tmp_path, args):
    taken = tmp_path / "notes.txt"
    taken.write_text("mine")
    for out, inside in ((taken, ""), (taken / "runs", f" (inside '{taken}')")):
        result = invoke(*args, "--out", out)
        assert result.exit_code == 2, result.output
        assert result.stderr == (
            f"Error: Invalid value for '--out': expected a folder, got '{out}'{inside}, which is a "
            f"file; name a folder, new or existing (see 'torchclf {args[0]} --help')\n"
        )
    assert taken.read_text() == "mine" and sorted(tmp_path.iterdir()) == [taken]


def test_a_diverged_run_is_advised_in_the_commands_options(tmp_path):
    result = invoke(
        "train", "--data", "moons", "--optimizer", "sgd", "--lr", "1e6", "--hidden", "64,64",
        "--epochs", "50", "--out", tmp_path / "runs",
    )  # fmt: skip
    assert result.exit_code == 2
    assert re.fullmatch(
        r"Error: the training loss became (nan|inf) at epoch \d+ with --lr 1e\+06: training "
        r"diverged\. Lower the learning rate \(for example --lr 0\.003\) or clip the gradients "
        r"\(for example --grad-clip 1\)\n",
        result.stderr,
    ), result.stderr
    assert "lr=" not in result.stderr and "grad_clip" not in result.stderr
    assert not (tmp_path / "runs").exists()


def _size_color_csv(path):
    rng = np.random.default_rng(0)
    size = rng.normal(10, 3, 200).round(1)
    color = rng.choice(["red", "green", "blue"], 200)
    label = np.where(size + 4 * (color == "red") > 11, "big", "small")
    pd.DataFrame({"size": size, "color": color, "label": label}).to_csv(path, index=False)
    return path


def test_two_features_one_of_them_text_train_and_write_the_whole_run(tmp_path):
    path = _size_color_csv(tmp_path / "shapes.csv")
    result = invoke("train", "--data", path, "--target", "label", "--epochs", "50", "--quiet",
                    "--out", tmp_path / "runs")  # fmt: skip
    assert result.exit_code == 0, result.output
    folder = tmp_path / "runs" / "shapes"
    assert {p.name for p in folder.iterdir()} == RUN_FILES - {"decision_boundary.png"}
    page = (folder / "report.html").read_text()
    assert (
        "No decision boundary: it is drawn over 2 numeric features, and &#x27;color&#x27; is "
        "categorical." in page
    )
    assert page.count("src='data:image/png;base64,") == 4


def test_a_picture_that_fails_is_left_out_and_the_run_is_kept(tmp_path, monkeypatch):
    from torchclf import plots

    def broken(*args, **kwargs):
        raise ValueError("no room on the canvas")

    monkeypatch.setattr(plots, "plot_roc_pr", broken)
    result = invoke("train", "--epochs", "20", "--quiet", "--out", tmp_path / "runs")
    assert result.exit_code == 0, result.output
    folder = tmp_path / "runs" / "circles"
    assert {p.name for p in folder.iterdir()} == RUN_FILES - {"roc_pr.png"}
    assert result.stderr == (
        "Warning: roc_pr.png could not be drawn (ValueError: no room on the canvas); the "
        "folder is written without it\n"
    )
    page = (folder / "report.html").read_text()
    assert "ROC and precision-recall curves (test): not drawn (ValueError: no room on the " in page


def test_the_test_rows_never_influence_the_trained_model(tmp_path):
    """The split is stratified by the labels, so only the test rows' features can change here."""
    from torchclf.data.sources import DataSource

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(300, 3)), columns=["a", "b", "c"])
    frame["label"] = np.where(frame["a"] + rng.normal(0, 0.5, 300) > 0, "yes", "no")
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=False)
    source = DataSource(name=str(path), target=("label",), test_size=0.25, seed=42)
    test_lines = source.split().X_test.index  # line numbers in the file: row = line - 2
    files = []
    for run in ("first", "second"):
        args = ["train", "--data", path, "--target", "label", "--test-size", "0.25", "--epochs",
                "200", "--quiet", "--out", tmp_path / "runs", "--name", run]  # fmt: skip
        assert invoke(*args).exit_code == 0
        files.append((tmp_path / "runs" / run / "model.safetensors").read_bytes())
        frame.loc[test_lines - 2, ["a", "b", "c"]] = rng.normal(size=(len(test_lines), 3)) * 10
        frame.to_csv(path, index=False)
    assert files[0] == files[1]
    first = pd.read_csv(tmp_path / "runs" / "first" / "history.csv")
    second = pd.read_csv(tmp_path / "runs" / "second" / "history.csv")
    assert not first["test_loss"].equals(second["test_loss"])  # the test rows did change


@pytest.mark.parametrize(("rare", "common"), [("rare", "common"), ("alarm", "quiet")])
def test_an_imbalanced_binary_report_shows_f1_at_half_and_at_the_validation_threshold(
    tmp_path, rare, common
):
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 3))
    noisy = X[:, 0] + 0.5 * X[:, 1] + rng.normal(scale=0.8, size=600)
    frame = pd.DataFrame(X, columns=["a", "b", "c"]).assign(
        label=np.where(noisy > 1.6, rare, common)
    )
    path = tmp_path / "rare.csv"
    frame.to_csv(path, index=False)
    result = invoke("train", "--data", path, "--target", "label", "--out", tmp_path, "-q")
    assert result.exit_code == 0, result.output
    folder = tmp_path / "rare"
    classifier = torchclf.load(folder / "model.safetensors")
    assert classifier.training_summary["rare_class"] == rare
    chosen = classifier.training_summary["rare_class_f1_threshold"]
    assert 0.0 < chosen < 1.0 and classifier.task.threshold == 0.5  # reported, not applied
    source = torchclf.DataSource(name=str(path), target=("label",))  # train's split, seed 42
    split = source.split(source.load())
    positive = classifier.predict_proba(split.X_test)[:, list(classifier.classes).index(rare)]
    truth = np.asarray(split.y_test) == rare
    page = (folder / "report.html").read_text()
    assert f"Imbalanced classes: the rarer, &#x27;{rare}&#x27;, at 0.5 and at the threshold" in page
    for threshold in (0.5, chosen):
        f1 = f1_score(truth, positive >= threshold)
        assert f"<td class=num>{f1:.4f}</td>" in page
    assert f"<td>{chosen:.4f}, chosen for F1 on validation</td>" in page


def test_info_says_how_the_columns_were_encoded(tmp_path):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"income": rng.lognormal(3, 1, 1500), "age": rng.integers(18, 80, 1500)})
    frame = frame.assign(city=rng.choice(["a", "b", "c"], 1500))
    frame["label"] = np.where(frame["income"] > 30, "yes", "no")
    frame.to_csv(tmp_path / "incomes.csv", index=False)
    runs = tmp_path / "runs"
    trained = invoke(
        "train", "--data", tmp_path / "incomes.csv", "--target", "label", "--out", runs
    )
    assert trained.exit_code == 0, trained.output
    shown = invoke("info", runs / "incomes")
    described = " ".join(shown.stdout.replace("│", " ").split())  # the cell, wrapped by rich
    assert "2 numeric columns standardized, 2 of them also as piecewise-linear bins; 1" in described
    assert "categorical column one-hot" in described


def test_version_is_the_packages_and_quiet_commands_print_only_their_folder(tmp_path):
    version = invoke("--version")
    assert version.exit_code == 0 and version.stdout == f"torchclf {torchclf.__version__}\n"
    for command in ("sweep", "improve"):
        result = invoke(command, "--epochs", 5, "--out", tmp_path, "--quiet")
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        assert len(lines) == 1 and str(tmp_path) in lines[0], result.stdout


def test_the_positive_class_is_chosen_by_name(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 2))
    y = np.where(X[:, 0] > 0, "yes", "no")
    default = torchclf.fit(X, y, epochs=30, seed=0)
    chosen = torchclf.fit(X, y, epochs=30, seed=0, positive_class="no")
    assert list(default.classes) == ["no", "yes"] and list(chosen.classes) == ["yes", "no"]
    # the one logit is now P("no"): the second column, and each row's label unchanged
    proba = chosen.predict_proba(X)
    assert proba[:, 1][X[:, 0] < -1].min() > 0.5
    assert (chosen.predict(X) == y).mean() > 0.95
    loaded = torchclf.load(chosen.save(tmp_path / "m.safetensors"))
    assert list(loaded.classes) == ["yes", "no"]
    evaluation = loaded.evaluate(X, y)
    np.testing.assert_array_equal(
        evaluation.confusion_matrix, chosen.evaluate(X, y).confusion_matrix
    )
    from sklearn.metrics import f1_score, roc_auc_score

    assert evaluation.scores["f1"] == pytest.approx(f1_score(y, loaded.predict(X), pos_label="no"))
    assert evaluation.scores["roc_auc"] == pytest.approx(roc_auc_score(y == "no", proba[:, 1]))
    assert list(
        torchclf.fit(X, (X[:, 0] > 0).astype(int), epochs=5, positive_class="0").classes
    ) == [1, 0]
    with pytest.raises(torchclf.ConfigError, match=r"positive_class='maybe' is not one of"):
        torchclf.fit(X, y, epochs=5, positive_class="maybe")
    with pytest.raises(torchclf.ConfigError, match="applies to a binary task, but y has 3"):
        torchclf.fit(X, rng.integers(0, 3, 200), epochs=5, positive_class=1)
    frame = pd.DataFrame(X, columns=["a", "b"]).assign(label=y)
    frame.to_csv(tmp_path / "d.csv", index=False)
    result = invoke(
        "train",
        "--data",
        tmp_path / "d.csv",
        "--target",
        "label",
        "--positive-class",
        "no",
        "--epochs",
        20,
        "--out",
        tmp_path / "runs",
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    info = invoke("info", tmp_path / "runs" / "d")
    assert "yes, no" in info.stdout or "['yes', 'no']" in info.stdout, info.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["datasets"],
        ["improve", "--epochs", "30"],
        # every setting varies: the table leaves columns out, never cuts a figure
        [
            "sweep",
            "--epochs",
            "20",
            "--activation",
            "relu,tanh",
            "--optimizer",
            "adam,sgd",
            "--seeds",
            "0,1",
            "--dropout",
            "0,0.1",
            "--weight-decay",
            "0,0.01",
            "--hidden",
            "8,128",
        ],
    ],
    ids=["datasets", "improve", "sweep"],
)
def test_tables_read_whole_at_80_columns(tmp_path, monkeypatch, args):
    monkeypatch.setenv("COLUMNS", "80")
    out = [] if args[0] == "datasets" else ["--out", tmp_path]
    result = invoke(*args, *out)
    assert result.exit_code == 0, result.output
    table = [line for line in result.stdout.splitlines() if not line.startswith("results")]
    assert max(len(line) for line in table) <= 80 and "…" not in result.stdout
    if args[0] == "sweep":
        ranked = pd.read_csv(next(tmp_path.glob("sweep-*")) / "sweep.csv").head(10)
        for value in ranked["val_accuracy"]:
            assert f"{100 * value:.2f}%" in result.stdout  # each figure whole
        assert "ranked by val acc" in result.stdout and "val acc ▼" in result.stdout
        assert "left out at 80 columns:" in result.stdout
