"""A training run on disk: the run folder and its self-contained HTML report.

``write_run`` lays out::

    model.safetensors      the classifier
    history.csv            one row per epoch
    metrics.json           test metrics, overall and per class, and the confusion matrix
    test_predictions.csv   the test rows' predicted labels and probabilities
    loss_curves.png, decision_boundary.png (2 features), confusion_matrix.png, roc_pr.png,
    reliability.png
    report.html            all of the above at a glance, pictures embedded

The folder is assembled under a temporary name and renamed into place at the end, so an
interrupted run never leaves a half-written folder. While ``torchclf train`` trains, the folder
holds ``checkpoints/`` instead (:func:`start_run`): ``train.json`` (the command and the options
it began with) and the checkpoint files (:mod:`torchclf.training.checkpoints`). Such a folder
is an unfinished run, which ``torchclf train --resume`` finishes (:func:`unfinished_run`,
:func:`resume_point`) and the finished run replaces whole.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import os
import warnings
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torchclf.errors import ConfigError, TorchclfWarning
from torchclf.files import CHECKPOINT_FOLDER, RUN_FILE, atomic_directory, atomic_file

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from torchclf.classifier import Classifier
    from torchclf.data.splits import Split
    from torchclf.evaluation.inspection import Explanation
    from torchclf.evaluation.metrics import Evaluation

PICTURES = {
    "loss_curves.png": "Loss and accuracy per epoch",
    "decision_boundary.png": "Decision boundary (train | test)",
    "confusion_matrix.png": "Confusion matrix (test)",
    "roc_pr.png": "ROC and precision-recall curves (test)",
    "reliability.png": "Reliability: stated probability against how often it came true (test)",
}
# a binary task whose rarer class has under this share of the test rows is imbalanced: its
# report shows that class's F1 at 0.5 and at the threshold chosen for its F1 on held-out rows
IMBALANCED_SHARE = 0.3


def start_run(
    folder: str | os.PathLike[str],
    command: str,
    options: dict[str, Any],
    *,
    overwrite: bool = False,
) -> Path:
    """Make ``folder`` an unfinished run: ``checkpoints/train.json`` and nothing else yet."""
    with atomic_directory(folder, overwrite=overwrite) as staging:
        document = {"command": command, "options": options}
        (staging / CHECKPOINT_FOLDER).mkdir()
        text = json.dumps(document, indent=1, default=str)  # a Path option as its text
        (staging / CHECKPOINT_FOLDER / RUN_FILE).write_text(text)
    return Path(folder)


def unfinished_run(folder: str | os.PathLike[str]) -> tuple[str, dict[str, Any]]:
    """The command and the options an unfinished run (:func:`start_run`) began with.

    Raises:
        ConfigError: when ``folder`` is a finished run, or no run at all.
    """
    folder = Path(folder)
    if (folder / "model.safetensors").is_file():
        raise ConfigError(
            f"'{folder}' is a finished run (it has its model.safetensors): nothing to resume"
        )
    try:
        document = json.loads((folder / CHECKPOINT_FOLDER / RUN_FILE).read_text())
        return document["command"], document["options"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(
            f"'{folder}' is not a run folder that torchclf train can resume: it has no "
            f"readable {CHECKPOINT_FOLDER}/{RUN_FILE} ({error})"
        ) from error


def resumed_epoch(folder: str | os.PathLike[str]) -> int | None:
    """The epoch a run resumed from ``folder`` goes on at, or None (no readable checkpoint)."""
    from torchclf.errors import CheckpointError
    from torchclf.training.checkpoints import latest_checkpoint, read_checkpoint

    newest = latest_checkpoint(Path(folder) / CHECKPOINT_FOLDER)
    try:
        return None if newest is None else int(read_checkpoint(newest, tensors=False)[1]["epoch"])
    except CheckpointError:
        return None


def resume_point(folder: str | os.PathLike[str]) -> Path | None:
    """``folder``'s checkpoints folder if it holds a checkpoint to go on from, else None."""
    from torchclf.training.checkpoints import latest_checkpoint

    checkpoints = Path(folder) / CHECKPOINT_FOLDER
    return checkpoints if latest_checkpoint(checkpoints) is not None else None


def threshold_rows(classifier: Classifier, X_test: Any, y_test: Any) -> list[list[Any]]:
    """An imbalanced binary task's rarer class: test scores at 0.5 and at its F1 threshold.

    The class and the threshold were chosen on the held-out rows when training
    (:func:`torchclf.training.thresholds.rare_class_threshold`, in the training summary); the
    test rows only report them. Empty for other tasks and for balanced ones.
    """
    from sklearn.metrics import precision_recall_fscore_support

    summary = classifier.training_summary
    if "rare_class_f1_threshold" not in summary:
        return []
    chosen = summary["rare_class_f1_threshold"]
    rare = list(map(str, classifier.task.class_names)).index(summary["rare_class"])
    truth = classifier.task.encode(y_test)[:, 0].numpy() > 0.5  # (n,) classes[1]
    truth = truth if rare == 1 else ~truth
    if truth.mean() >= IMBALANCED_SHARE:
        return []
    positive = classifier.predict_proba(X_test)[:, rare]  # (n,) P(the rarer class)
    rows = []
    for name, threshold in (("0.5", 0.5), (f"{chosen:.4f}, chosen for F1 on validation", chosen)):
        precision, recall, f1, _ = precision_recall_fscore_support(
            truth, positive >= threshold, average="binary", zero_division=0.0
        )
        rows.append([name, float(precision), float(recall), float(f1)])
    return rows


def run_figures(
    classifier: Classifier, split: Split, evaluation: Evaluation
) -> tuple[dict[str, Callable[[], Figure]], dict[str, str]]:
    """The run's pictures by file name, each as a function that draws it, and why any is left out.

    The decision boundary is drawn only where it means something (two numeric features, one
    class per point); otherwise the second dictionary says why.
    """
    from torchclf.evaluation import plots

    figures: dict[str, Callable[[], Figure]] = {
        "loss_curves.png": lambda: plots.plot_history(classifier.history, classifier.task.loss_name)
    }
    left_out: dict[str, str] = {}
    refusal = plots.decision_boundary_refusal(classifier)
    if refusal is None:
        figures["decision_boundary.png"] = lambda: plots.plot_decision_boundary(
            classifier,
            [("Train", split.X_train, split.y_train), ("Test", split.X_test, split.y_test)],
        )
    else:
        left_out["decision_boundary.png"] = f"No decision boundary: {refusal}."
    figures["confusion_matrix.png"] = lambda: plots.plot_confusion_matrix(evaluation)
    figures["roc_pr.png"] = lambda: plots.plot_roc_pr(classifier, split.X_test, split.y_test)
    figures["reliability.png"] = lambda: plots.plot_reliability(
        classifier, split.X_test, split.y_test
    )
    return figures, left_out


def write_run(
    folder: str | os.PathLike[str],
    classifier: Classifier,
    split: Split,
    evaluation: Evaluation,
    *,
    command: str,
    data_summary: dict[str, Any],
    overwrite: bool = False,
) -> Path:
    """Write the complete run folder (atomically) and return its path.

    A picture that fails to draw is left out with a warning and a line in the report: a trained
    model is never lost to a picture.
    """
    from torchclf.evaluation.predictions import prediction_frame, row_ids

    folder = Path(folder)
    with atomic_directory(folder, overwrite=overwrite) as staging:
        classifier.save(staging / "model.safetensors")
        write_history(staging / "history.csv", classifier)
        (staging / "metrics.json").write_text(json.dumps(evaluation.to_dict(), indent=2) + "\n")
        ids = row_ids(split.X_test, split.test_rows)
        prediction_frame(classifier, split.X_test, ids=ids, y=split.y_test).to_csv(
            staging / "test_predictions.csv", index=False
        )
        figures, left_out = run_figures(classifier, split, evaluation)
        data = _data_name(data_summary) or folder.name
        title = f"{data}: test {test_scores(evaluation, ('accuracy', 'log_loss'))}"
        left_out.update(save_pictures(staging, figures, title))
        page = render_report(
            title=f"torchclf run {folder.name}",
            command=command,
            data_summary=data_summary,
            classifier=classifier,
            evaluation=evaluation,
            pictures={name: staging / name for name in PICTURES if (staging / name).exists()},
            left_out=left_out,
            thresholds=threshold_rows(classifier, split.X_test, split.y_test),
        )
        (staging / "report.html").write_text(page, encoding="utf-8")
    return folder


def save_pictures(
    folder: Path, figures: dict[str, Callable[[], Figure]], title: str | None = None
) -> dict[str, str]:
    """Draw and save each picture into ``folder``; return why any could not be drawn.

    ``title`` heads every picture (which data, how the model scored), so that one read on its
    own still says so. A picture that fails is left out with a warning: the model, metrics and
    predictions around it are worth more than the picture.
    """
    failed = {}
    for name, draw in figures.items():
        try:
            figure = draw()
            if title is not None:
                figure.suptitle(title, fontsize="medium")
            with atomic_file(folder / name) as temporary:  # whole, or not there
                figure.savefig(temporary, format=Path(name).suffix[1:])
        except Exception as error:  # any failure at all: the rest of the folder matters more
            (folder / name).unlink(missing_ok=True)
            reason = f"{type(error).__name__}: {error}"
            failed[name] = f"{PICTURES.get(name, name)}: not drawn ({reason})."
            warnings.warn(
                f"{name} could not be drawn ({reason}); the folder is written without it",
                TorchclfWarning,
                stacklevel=2,
            )
    return failed


EXPLANATION_PICTURES = {
    "importance.png": "Permutation importance of each column (bars: mean; lines: one standard "
    "deviation over the repeats)",
    "dependence.png": "Partial dependence of the most important columns (thick: the mean over "
    "the training rows; thin: single rows)",
}
_SECTION = ("<!-- torchclf explanation -->", "<!-- /torchclf explanation -->")


def write_explanation(folder: str | os.PathLike[str], explanation: Explanation) -> list[Path]:
    """Write an explanation into a run folder; return the files written.

    ``importance.csv`` (a row per column, most important first: the importance, its standard
    deviation, each repeat), ``importance.png`` and ``dependence.png``; and in ``report.html``,
    when the folder has one, the section "What drives the predictions" (a new explanation
    replaces the last). Each file is written whole or not at all.
    """
    from torchclf.evaluation import plots

    folder = Path(folder)
    importance = explanation.importance
    with atomic_file(folder / "importance.csv") as temporary:
        importance.to_frame().to_csv(temporary, index=False)
    written = [folder / "importance.csv"]
    figures: dict[str, Callable[[], Figure]] = {
        "importance.png": lambda: plots.plot_importance(importance)
    }
    if explanation.dependences:
        figures["dependence.png"] = lambda: plots.plot_dependence(explanation.dependences)
    left_out = save_pictures(folder, figures)
    written += [folder / name for name in figures if name not in left_out]
    report = folder / "report.html"
    if report.is_file():
        page = report.read_text(encoding="utf-8")
        start, end = page.find(_SECTION[0]), page.find(_SECTION[1])
        if start >= 0 and end > start:  # an earlier explanation: replaced
            page = page[:start] + page[end + len(_SECTION[1]) :]
        section = _explanation_section(explanation, written, left_out)
        at = page.find("<h2>Pictures</h2>")
        at = at if at >= 0 else page.rfind("</body>")
        with atomic_file(report) as temporary:
            temporary.write_text(page[:at] + section + page[at:], encoding="utf-8")
        written.append(report)
    return written


def _explanation_section(
    explanation: Explanation, files: list[Path], left_out: dict[str, str]
) -> str:
    """The report's "What drives the predictions": the table, the pictures, what is left out."""
    importance = explanation.importance
    loss = (
        "growth of the log loss"
        if importance.metric == "log_loss"
        else "drop in " + (importance.metric)
    )
    rows = [
        [importance.columns[i], importance.mean[i], importance.std[i]] for i in importance.ranking()
    ]
    parts = [
        _SECTION[0],
        "<h2>What drives the predictions</h2>",
        f"<p>Permutation importance on {html.escape(explanation.rows)}: the {loss} when one "
        f"column's values are shuffled among the rows ({importance.importances.shape[1]} "
        "repeats; a categorical column's slots and a numeric column's indicator and bins are "
        "one column).</p>",
        _table(rows, ["column", "importance", "std"]),
    ]
    parts += [f"<p>{html.escape(sentence)}</p>" for sentence in left_out.values()]
    for path in files:
        if path.suffix == ".png":
            encoded = base64.b64encode(path.read_bytes()).decode("ascii")
            caption = html.escape(EXPLANATION_PICTURES.get(path.name, path.name))
            parts.append(
                f"<figure><img alt='{caption}' src='data:image/png;base64,{encoded}'>"
                f"<figcaption>{caption}</figcaption></figure>"
            )
    return "".join([*parts, _SECTION[1]])


def write_history(path: Path, classifier: Classifier) -> None:
    """``history.csv``: one row per epoch, the epoch as a whole number."""
    rows = classifier.history.rows
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["epoch"])
        writer.writeheader()
        for row in rows:
            writer.writerow({k: int(v) if k == "epoch" else v for k, v in row.items()})


def readable(value: Any) -> str:
    """A setting's value as a person writes it: yes / no, 0.003, "a, b"; None is ""."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(readable(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {readable(v)}" for k, v in value.items())
    return str(value)


def _table(rows: list[list[Any]], header: list[str], *, digits: int = 4) -> str:
    """An HTML table with a header; numbers right-aligned, ``digits`` decimals for floats."""

    def cell(value: Any, tag: str) -> str:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        text = f"{value:.{digits}f}" if isinstance(value, float) else readable(value)
        return f"<{tag}{' class=num' if number else ''}>{html.escape(text)}</{tag}>"

    head = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"
    body = "".join("<tr>" + "".join(cell(v, "td") for v in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


# settings that mean nothing in a run unless this holds of its settings; left out otherwise
APPLIES_WHEN: dict[str, Callable[[dict[str, Any]], bool]] = {
    "momentum": lambda c: c["optimizer"] in ("sgd", "rmsprop"),
    "patience": lambda c: bool(c["early_stopping"]),
    "min_delta": lambda c: bool(c["early_stopping"]),
    "validation_fraction": lambda c: not c["cross_fit"],  # cross-fitting validates on folds
    "lr_schedule": lambda c: c["lr_schedule"] != "none",
    "label_smoothing": lambda c: c["label_smoothing"] > 0,
    "compile": lambda c: bool(c["compile"]),
    "log_every": lambda c: False,  # how progress was shown, not what was trained
    "device": lambda c: False,  # the summary says the device actually used
}


def _settings(config: dict[str, Any]) -> list[list[Any]]:
    """The training settings that apply to this run, as a person writes them."""
    rows = []
    for key, value in config.items():
        if value is None or not APPLIES_WHEN.get(key, lambda c: True)(config):
            continue
        rows.append([key.replace("_", " "), readable(value)])
    if config.get("batch_size") is None:
        rows.append(["batch size", "full batch"])
    return rows


def _summary(
    classifier: Classifier, evaluation: Evaluation, data_summary: dict[str, Any]
) -> list[list[Any]]:
    """What a reader takes in at once: data, task, model, test scores, time, device, versions."""
    import platform

    import torch

    from torchclf.version import __version__

    config = classifier.model_config
    sizes = "-".join(str(s) for s in (config.in_features, *config.hidden, config.out_features))
    model = f"MLP {sizes}, {config.activation}" if config.hidden else f"linear {sizes}"
    if config.ensemble > 1:
        model = f"{config.ensemble} × {model}, probabilities averaged"
    if config.linear_weight > 0:
        model += f", logistic regression blended in at {config.linear_weight:.2f}"
    rows_of_data = data_summary.get("rows", "")
    data = _data_name(data_summary)
    headline = test_scores(evaluation, ("accuracy", "f1_macro", "roc_auc", "log_loss"))
    history = classifier.history
    seconds = history.rows[-1].get("time") if history.rows else None
    trained = f"{len(history.rows)} epochs" + (f" in {seconds:.2f} s" if seconds else "")
    return [
        ["data", f"{data}, {rows_of_data} rows" if rows_of_data != "" else data],
        ["task", f"{classifier.task.name}: {', '.join(classifier.task.class_names)}"],
        ["model", model],
        ["test", headline],
        ["trained", trained],
        ["device", str(classifier.device)],
        [
            "versions",
            f"torchclf {__version__}, torch {torch.__version__}, "
            f"Python {platform.python_version()}",
        ],
    ]


def _data_name(data_summary: dict[str, Any]) -> str:
    """The run's data as its summary names it: a built-in dataset or a file; "" if neither."""
    return str(data_summary.get("dataset") or data_summary.get("file") or "")


def test_scores(evaluation: Evaluation, names: Sequence[str]) -> str:
    """``"accuracy 0.9950, log loss 0.0123"``: the scores ``names`` that are defined here."""
    scores = evaluation.scores
    return ", ".join(
        f"{name.replace('_', ' ')} {scores[name]:.4f}"
        for name in names
        if name in scores and scores[name] == scores[name]  # NaN: not defined on these rows
    )


def render_report(
    *,
    title: str,
    command: str,
    data_summary: dict[str, Any],
    classifier: Classifier,
    evaluation: Evaluation,
    pictures: dict[str, Path],
    left_out: dict[str, str] | None = None,
    thresholds: list[list[Any]] | None = None,
) -> str:
    """One self-contained HTML page: a summary, command, data, model, metrics and pictures.

    ``left_out`` maps a picture's file name to the sentence that says why it is missing;
    ``thresholds`` are :func:`threshold_rows`.
    """
    from torchclf.nn.models import count_parameters

    config = classifier.train_config.to_dict() if classifier.train_config else {}
    summary = classifier.training_summary
    model_rows: list[list[Any]] = [
        ["architecture", classifier.architecture.replace("\n", " ")],
        ["parameters", f"{count_parameters(classifier.model):,}"],
        # fitted after training on the held-out rows (calibration, the blend)
        ["temperature", f"{classifier.model_config.temperature:.4g}"],
        ["logistic regression share", f"{classifier.model_config.linear_weight:.4g}"],
        *_settings(config),
        # what training did, beside what it was asked (the config's epochs are a budget)
        ["epochs trained", str(summary.get("epochs", len(classifier.history.rows)))],
        *([["best epoch", str(summary["best_epoch"])]] if summary.get("best_epoch") else []),
        ["stopped early", readable(bool(summary.get("stopped_early")))],
    ]
    per_class = [
        [name, row["precision"], row["recall"], row["f1"], int(row["support"])]
        for name, row in evaluation.per_class.items()
    ]
    sections = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p class=muted>{datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}</p>",
        "<h2>Summary</h2>"
        + _table(_summary(classifier, evaluation, data_summary), ["item", "value"]),
        f"<h2>Command</h2><pre>{html.escape(command)}</pre>",
        "<h2>Data</h2>"
        + _table([[k, readable(v)] for k, v in data_summary.items()], ["item", "value"]),
        "<h2>Model</h2>" + _table(model_rows, ["setting", "value"]),
        "<h2>Test metrics</h2>"
        + _table([[k, v] for k, v in evaluation.scores.items()], ["metric", "value"]),
        _table(per_class, ["class", "precision", "recall", "f1", "support"]),
    ]
    if thresholds:
        rare = repr(str(summary["rare_class"]))
        sections += [
            f"<h3>Imbalanced classes: the rarer, {html.escape(rare)}, at 0.5 and at the "
            "threshold chosen for its F1 on the validation rows</h3>",
            _table(thresholds, ["threshold", "precision", "recall", "f1"]),
        ]
    sections += [
        "<h2>Pictures</h2>",
    ]
    for sentence in (left_out or {}).values():
        sections.append(f"<p>{html.escape(sentence)}</p>")
    for name, path in pictures.items():
        encoded = base64.b64encode(path.read_bytes()).decode("ascii")
        caption = html.escape(PICTURES.get(name, name))
        sections.append(
            f"<figure><img alt='{caption}' src='data:image/png;base64,{encoded}'>"
            f"<figcaption>{caption}</figcaption></figure>"
        )
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        # a table wider than a narrow screen scrolls inside itself, not the page
        "table{border-collapse:collapse;margin:.5em 0 1em;display:block;max-width:100%;"
        "overflow-x:auto}td,th{border:1px solid #ccc;"
        "padding:.25em .6em;text-align:left;vertical-align:top}th{background:#f4f4f4}"
        "td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}"
        "pre{background:#f4f4f4;padding:.6em;white-space:pre-wrap;overflow-wrap:anywhere}"
        "img{max-width:100%}.muted{color:#777}"
    )
    return (
        "<!doctype html><html lang=en><head><meta charset='utf-8'>"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>{''.join(sections)}</body></html>\n"
    )


__all__ = [
    "CHECKPOINT_FOLDER",
    "EXPLANATION_PICTURES",
    "RUN_FILE",
    "readable",
    "render_report",
    "resume_point",
    "resumed_epoch",
    "run_figures",
    "save_pictures",
    "start_run",
    "test_scores",
    "unfinished_run",
    "write_explanation",
    "write_history",
    "write_run",
]
