"""Pictures: training curves, decision boundaries, confusion matrices, ROC and PR curves.

Also the from-scratch activations drawn over torch's own.

Every function returns a ``matplotlib.figure.Figure`` built without pyplot, so nothing needs a
display and nothing touches global plotting state; save one with ``figure.savefig(path)``.
matplotlib is imported inside the functions: training and prediction never pay for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from torchclf.errors import DataError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from torchclf.classifier import Classifier
    from torchclf.evaluation.inspection import Dependence, Importance
    from torchclf.evaluation.metrics import Evaluation
    from torchclf.training.history import History

GRID_STEPS = 101  # the tutorial's decision-boundary grid: 101 x 101 points
PADDING = 0.1  # ... over the data's range, padded by 0.1 on each side
# ROC and precision-recall axes run this far past [0, 1], so a curve along an edge stays in view
UNIT_PADDING = 0.03
LOG_SCALE_SPAN = 100  # a loss that falls by more than this factor is drawn on a log scale
POINT_COLORS = "tab10"


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def plot_history(history: History, loss_name: str = "loss") -> Figure:
    """Loss and accuracy per epoch, for every split the history recorded.

    ``loss_name`` labels the loss axis; a loss that spans more than :data:`LOG_SCALE_SPAN`
    (a hundredfold) is drawn on a log scale, where its late epochs stay readable.
    """
    figure = _figure(10, 4)
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    epochs = history.column("epoch")
    for split, style in (("train", "-"), ("val", "--"), ("test", ":")):
        if history.rows and f"{split}_loss" in history.rows[0]:
            loss_axes.plot(epochs, history.column(f"{split}_loss"), style, label=split)
            accuracy = [100 * a for a in history.column(f"{split}_accuracy")]
            accuracy_axes.plot(epochs, accuracy, style, label=split)
    if history.best_epoch is not None:
        for axes in (loss_axes, accuracy_axes):
            axes.axvline(history.best_epoch, color="grey", lw=0.8, label="best epoch")
    losses = [
        value
        for split in ("train", "val", "test")
        if history.rows and f"{split}_loss" in history.rows[0]
        for value in history.column(f"{split}_loss")
        if value == value and value > 0  # NaN or 0 has no place on a log scale
    ]
    if losses and max(losses) > LOG_SCALE_SPAN * min(losses):
        loss_axes.set_yscale("log")
        loss_name += " (log scale)"
    loss_axes.set(title="Loss", xlabel="epoch", ylabel=loss_name)
    accuracy_axes.set(title="Accuracy", xlabel="epoch", ylabel="accuracy (%)")
    for axes in (loss_axes, accuracy_axes):
        axes.grid(alpha=0.3)
        axes.legend()
    return figure


def decision_boundary_refusal(classifier: Classifier) -> str | None:
    """Why no decision boundary can be drawn for ``classifier``, or None when one can.

    The picture is a plane of two numeric features coloured by the predicted class, so it needs
    a single-label classifier of exactly two numeric input columns.
    """
    if not classifier.task.single_label:
        return (
            f"it is drawn for one predicted class per point, and this classifier is "
            f"{classifier.task.name}"
        )
    if classifier.n_features != 2:
        return f"it is drawn over 2 features, and this classifier has {classifier.n_features}"
    kinds = getattr(classifier.encoder, "kinds", None)
    categorical = kinds()["categorical"] if kinds is not None else []
    if categorical:
        return (
            f"it is drawn over 2 numeric features, and {', '.join(map(repr, categorical))} "
            f"{'is' if len(categorical) == 1 else 'are'} categorical"
        )
    return None


def can_plot_decision_boundary(classifier: Classifier) -> bool:
    """Decision boundaries are drawn for single-label classifiers of two numeric features."""
    return decision_boundary_refusal(classifier) is None


def plot_decision_boundary(
    classifier: Classifier, panels: Sequence[tuple[str, np.ndarray, Any]]
) -> Figure:
    """The tutorial's decision-boundary picture, one panel per ``(title, X, y)``.

    Each panel colours a 101 x 101 grid over the range of all panels' points (padded by 0.1) by
    the predicted class, and draws the points on top in their true class' colour.
    """
    return plot_decision_boundaries([(title, classifier, X, y) for title, X, y in panels])


def plot_decision_boundaries(
    panels: Sequence[tuple[str, Classifier, np.ndarray, Any]], columns: int = 4
) -> Figure:
    """Decision boundaries of several classifiers of the same classes, one panel each.

    ``panels`` holds ``(title, classifier, X, y)``; at most ``columns`` panels share a row.
    """
    for _, classifier, _, _ in panels:
        refusal = decision_boundary_refusal(classifier)
        if refusal is not None:
            raise DataError(f"no decision boundary can be drawn: {refusal}")
    import matplotlib
    from matplotlib.colors import ListedColormap

    reference = panels[0][1]
    all_points = np.concatenate([np.asarray(X, dtype=np.float64) for _, _, X, _ in panels])
    # nan-aware: a table's numeric columns may have gaps, which are imputed, not drawn
    low, high = np.nanmin(all_points, axis=0) - PADDING, np.nanmax(all_points, axis=0) + PADDING
    xx, yy = np.meshgrid(
        np.linspace(low[0], high[0], GRID_STEPS), np.linspace(low[1], high[1], GRID_STEPS)
    )
    grid = np.c_[xx.ravel(), yy.ravel()]
    n_classes = len(reference.classes)
    # tab10's colours, one per class: a list of RGB tuples (matplotlib types them loosely)
    colors: list[Any] = list(matplotlib.colormaps[POINT_COLORS](np.arange(10)))  # (10, 4) RGBA
    palette = colors[:n_classes]
    colormap = ListedColormap(palette)
    levels = np.arange(n_classes + 1) - 0.5

    n_columns = min(columns, len(panels))
    n_rows = -(-len(panels) // n_columns)
    figure = _figure(6 * n_columns, 5.2 * n_rows)
    axes_grid = np.atleast_1d(figure.subplots(n_rows, n_columns)).ravel()
    names = reference.feature_names or ["x0", "x1"]  # as the built-in datasets name them
    for axes, (title, classifier, X, y) in zip(axes_grid, panels, strict=False):
        X = np.asarray(X, dtype=np.float64)
        grid_codes = _codes(classifier, classifier.predict(grid)).reshape(xx.shape)
        axes.contourf(xx, yy, grid_codes, levels=levels, cmap=colormap, alpha=0.35)
        axes.scatter(
            X[:, 0],
            X[:, 1],
            c=_codes(classifier, y),
            cmap=colormap,
            vmin=-0.5,
            vmax=n_classes - 0.5,
            s=14,
            edgecolors="black",
            linewidths=0.3,
        )
        axes.set(title=title, xlabel=names[0], ylabel=names[1])
        axes.set_xlim(low[0], high[0])
        axes.set_ylim(low[1], high[1])
    for axes in axes_grid[len(panels) :]:
        axes.set_axis_off()
    handles = [
        matplotlib.patches.Patch(color=palette[i], label=str(name))
        for i, name in enumerate(reference.task.class_names)
    ]
    figure.legend(handles=handles, loc="outside right center")
    return figure


def plot_variants(
    changes: Sequence[str],
    val_accuracy: Sequence[float],
    test_accuracy: Sequence[float] | None = None,
) -> Figure:
    """Validation (and test) accuracy per variant of an ``improve`` run, the baseline first.

    Variants are compared on the validation rows (the dashed line is the baseline's); the test
    rows' accuracy, when given, is drawn beside it as a thinner bar, for the record.
    """
    figure = _figure(10, 0.5 * len(changes) + 1.5)
    axes = figure.subplots()
    positions = np.arange(len(changes))[::-1].astype(float)
    height = 0.4 if test_accuracy is not None else 0.8
    axes.barh(
        positions + (height / 2 if test_accuracy is not None else 0.0),
        [100 * a for a in val_accuracy],
        height=height,
        color="tab:blue",
        label="validation (compared)",
    )
    if test_accuracy is not None:
        axes.barh(
            positions - height / 2,
            [100 * a for a in test_accuracy],
            height=height,
            color="tab:gray",
            label="test (reported)",
        )
        axes.legend(loc="lower right")
    axes.set_yticks(positions, list(changes))
    axes.axvline(100 * val_accuracy[0], color="tab:blue", lw=0.8, ls="--")
    axes.set(xlabel="accuracy (%)", title="Improving a model: each change, then the best stacked")
    axes.set_xlim(0, 100)
    axes.grid(axis="x", alpha=0.3)
    return figure


def _codes(classifier: Classifier, labels: Any) -> np.ndarray:
    """Single-label labels -> class codes ``(n,)`` in the classifier's output order."""
    return classifier.task.encode(labels).reshape(len(labels)).long().numpy()


def plot_confusion_matrix(evaluation: Evaluation) -> Figure:
    """Counts with rows true and columns predicted; one 2 x 2 matrix per label for multilabel."""
    matrices = evaluation.confusion_matrix
    if matrices.ndim == 2:
        titles, matrices = ["Confusion matrix"], matrices[None]
        tick_names = [list(evaluation.class_names)]
    else:
        titles = [f"label '{name}'" for name in evaluation.class_names]
        tick_names = [["no", "yes"]] * len(titles)
    size = max(4.0, 0.6 * matrices.shape[-1] + 2)
    figure = _figure(size * len(titles), size)
    for axes, title, matrix, ticks in zip(
        np.atleast_1d(figure.subplots(1, len(titles))), titles, matrices, tick_names, strict=True
    ):
        axes.imshow(matrix, cmap="Blues")
        threshold = matrix.max() / 2
        for (row, column), count in np.ndenumerate(matrix):
            color = "white" if count > threshold else "black"
            axes.text(column, row, str(count), ha="center", va="center", color=color)
        positions = np.arange(len(ticks))
        axes.set_xticks(positions, ticks, rotation=45 if len(ticks) > 4 else 0)
        axes.set_yticks(positions, ticks)
        axes.set(title=title, xlabel="predicted", ylabel="true")
    return figure


def plot_roc_pr(classifier: Classifier, X: Any, y: Any) -> Figure:
    """ROC and precision-recall curves: one for binary, one per class (one-vs-rest) otherwise."""
    from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

    probs = classifier.predict_proba(X)  # (n, K)
    targets = classifier.task.encode(y).numpy()
    curves = classifier.task.one_vs_rest(targets, probs)
    figure = _figure(10, 4.5)
    roc_axes, pr_axes = figure.subplots(1, 2)
    for name, truth, scores in curves:
        if truth.min() == truth.max():
            continue  # a class absent from (or alone in) y has no curve
        fpr, tpr, _ = roc_curve(truth, scores)
        precision, recall, _ = precision_recall_curve(truth, scores)
        (line,) = roc_axes.plot(fpr, tpr, label=f"{name} (AUC {auc(fpr, tpr):.3f})")
        ap = average_precision_score(truth, scores)
        pr_axes.plot(recall, precision, color=line.get_color(), label=f"{name} (AP {ap:.3f})")
        # what guessing scores: precision at the class's share of the rows, whatever the recall
        prevalence = float(truth.mean())
        pr_axes.axhline(
            prevalence, color=line.get_color(), lw=0.8, ls=":", label=f"chance ({prevalence:.2f})"
        )
    roc_axes.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="chance")
    roc_axes.set(title="ROC", xlabel="false positive rate", ylabel="true positive rate")
    pr_axes.set(title="Precision-recall", xlabel="recall", ylabel="precision")
    for axes in (roc_axes, pr_axes):
        axes.set_xlim(-UNIT_PADDING, 1 + UNIT_PADDING)
        axes.set_ylim(-UNIT_PADDING, 1 + UNIT_PADDING)
        axes.grid(alpha=0.3)
        axes.legend(loc="lower right" if axes is roc_axes else "lower left", fontsize="small")
    return figure


def plot_reliability(classifier: Classifier, X: Any, y: Any) -> Figure:
    """Stated probability against how often it came true, bin by bin, with the ECE.

    The task says what is stated (:meth:`Task.reliability_pairs`): the positive class's
    probability (binary), the top class's (multiclass), every label's (multilabel). Points on
    the diagonal are calibrated; below it the model is over-confident. Below, each bin's count.
    """
    from torchclf.evaluation.metrics import expected_calibration_error, reliability_bins

    probs = torch.from_numpy(classifier.predict_proba(X))
    stated, came_true = classifier.task.reliability_pairs(probs, classifier.task.encode(y))
    bins = reliability_bins(stated.double().numpy(), came_true.double().numpy())
    ece = expected_calibration_error(stated, came_true)
    figure = _figure(5.5, 6)
    curve_axes, count_axes = figure.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    curve_axes.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="calibrated")
    filled = bins["count"] > 0
    curve_axes.plot(
        bins["stated"][filled], bins["frequency"][filled], "o-", label=f"model (ECE {ece:.3f})"
    )
    curve_axes.set(title="Reliability", ylabel="how often it came true")
    curve_axes.set_ylim(-0.01, 1.01)
    curve_axes.grid(alpha=0.3)
    curve_axes.legend(loc="upper left", fontsize="small")
    edges = bins["edges"]
    count_axes.bar(edges[:-1], bins["count"], width=np.diff(edges), align="edge", alpha=0.6)
    count_axes.set(xlabel="stated probability", ylabel="predictions")
    count_axes.set_xlim(-0.01, 1.01)
    return figure


def plot_importance(importance: Importance, title: str | None = None) -> Figure:
    """Horizontal bars: each column's mean permutation importance, the most important on top.

    The error bars span one standard deviation over the repeats each way; a bar at or below 0
    is a column the model does without (shuffling it costs nothing, up to noise).
    """
    order = importance.ranking()[::-1]  # matplotlib draws the first bar at the bottom
    names = [importance.columns[i] for i in order]
    figure = _figure(7, 1.2 + 0.32 * len(names))
    axes = figure.subplots()
    axes.barh(
        names, importance.mean[order], xerr=importance.std[order], color="tab:blue", capsize=3
    )
    axes.axvline(0, color="grey", lw=0.8)
    metric = importance.metric
    what = "growth of the log loss" if metric == "log_loss" else f"drop in {metric}"
    axes.set(
        xlabel=f"{what} when the column is shuffled ({importance.importances.shape[1]} repeats)",
        title=title or f"Permutation importance on {importance.rows:,} rows",
    )
    axes.grid(axis="x", alpha=0.3)
    return figure


def plot_dependence(dependences: Sequence[Dependence]) -> Figure:
    """One panel per column: each output's probability as the column takes each value.

    The thick lines are the partial dependence (the mean over the rows; of the second class
    alone for two classes), the thin grey ones up to 50 rows' own curves (ICE) of the first
    line's output; a categorical column's categories are points joined for the eye.
    """
    columns = min(len(dependences), 2)
    rows = -(-len(dependences) // columns)
    figure = _figure(5.5 * columns, 3.6 * rows)
    panels = np.atleast_1d(figure.subplots(rows, columns, squeeze=False)).ravel()
    for axes, dependence in zip(panels, dependences, strict=False):
        positions = np.arange(len(dependence.values))
        x = positions if dependence.categorical else np.asarray(dependence.values, dtype=float)
        # two classes: the second's probability says it all (the first's is 1 minus it)
        shown = [1] if len(dependence.outputs) == 2 else range(len(dependence.outputs))
        curves = dependence.individual[:50, :, shown[0]]  # (rows, values): the first shown's
        axes.plot(x, curves.T, color="grey", lw=0.5, alpha=0.3)
        for index in shown:
            style = "o-" if dependence.categorical else "-"
            name = str(dependence.outputs[index])
            axes.plot(x, dependence.average[:, index], style, lw=2, label=name)
        if dependence.categorical:
            axes.set_xticks(positions, [str(v) for v in dependence.values], rotation=30)
        axes.set(xlabel=dependence.column, ylabel="probability", ylim=(-0.02, 1.02))
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small", title="mean of", title_fontsize="small")
    for axes in panels[len(dependences) :]:
        axes.set_visible(False)
    return figure


def activation_differences(low: float = -1e4, high: float = 1e4) -> dict[str, float]:
    """Largest absolute difference between each from-scratch activation and torch's own."""
    x = torch.linspace(low, high, 2_000_001)
    return {
        name: float((ours(x) - theirs(x)).abs().max()) for name, ours, theirs in _activation_pairs()
    }


def plot_activations() -> Figure:
    """The tutorial's section 7: each from-scratch activation drawn over torch's own."""
    x = torch.linspace(-10, 10, 401)
    pairs = _activation_pairs()
    figure = _figure(12, 7)
    for axes, (name, ours, theirs) in zip(figure.subplots(2, 3).ravel(), pairs, strict=True):
        axes.plot(x, theirs(x), lw=4, alpha=0.4, label="torch")
        axes.plot(x, ours(x), lw=1.2, color="black", label="torchclf (from scratch)")
        axes.set(title=name, xlabel="x")
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small")
    return figure


def _activation_pairs() -> list[tuple[str, Any, Any]]:
    import torch.nn.functional as F

    from torchclf.nn import activations as A

    def first_of_pair(function: Any) -> Any:
        # softmax over pairs (x, 0): its first column is sigmoid(x), comparable on one axis
        return lambda x: function(torch.stack([x, torch.zeros_like(x)], dim=1))[:, 0]

    return [
        ("relu", A.relu, torch.relu),
        ("leaky_relu", A.leaky_relu, F.leaky_relu),
        ("sigmoid", A.sigmoid, torch.sigmoid),
        ("tanh", A.tanh, torch.tanh),
        ("gelu", A.gelu, F.gelu),
        ("softmax", first_of_pair(A.softmax), first_of_pair(lambda z: torch.softmax(z, dim=1))),
    ]


__all__ = [
    "activation_differences",
    "can_plot_decision_boundary",
    "decision_boundary_refusal",
    "plot_activations",
    "plot_confusion_matrix",
    "plot_decision_boundaries",
    "plot_decision_boundary",
    "plot_history",
    "plot_reliability",
    "plot_roc_pr",
    "plot_variants",
]
