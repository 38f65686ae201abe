"""What drives a classifier's predictions: importance, dependence, per-row attributions.

A column's permutation importance is how much a metric worsens when the column's values are
shuffled among the rows, breaking its link to the target while keeping its distribution
(Breiman, 2001; scikit-learn's ``sklearn.inspection.permutation_importance``). torchclf takes
each *original* column as one: a numeric column with its missing-value indicator and its
piecewise-linear bins, a categorical column with its one-hot slots or its learned vector.

Fast because of where the shuffle happens. The rows are encoded once, and each network's first
layer is computed once: shuffling one column changes only that column's inputs to the first
layer, so its pre-activations move by ``(Z[shuffled, g] - Z[:, g]) @ W[:, g].T`` for the
column's few inputs ``g`` (a rank-``|g|`` update, not a full first layer), and only the layers
after it run again, every repeat of a column at once. scikit-learn's function, given the same
estimator, re-encodes the table and runs the whole network for each column and repeat.

The shuffles are scikit-learn's: for a ``random_state``, one seed drawn as it draws it, and for
each column the same sequence of in-place shuffles of the row order, so the importances equal
``sklearn.inspection.permutation_importance`` on :class:`~torchclf.NeuralNetClassifier` with
the same scorer, repeats and seed (``tests/test_inspection.py``).

Partial dependence sets a column to each value of a grid in every row through the same
first-layer update (each row's curve is its ICE; their mean, the partial dependence). Integrated
gradients (captum's) split one row's logit among the columns along a straight path, in the
encoded space, from a baseline row (the training medians and most frequent categories).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from torchclf.data.splits import holdout_indices
from torchclf.errors import ConfigError, DataError
from torchclf.evaluation.metrics import SCORES
from torchclf.nn.activations import in_place_activation
from torchclf.nn.models import (
    Ensemble,
    members_of,
    predict_batch_rows,
    run_linears,
    uses_own_forward,
)

CHUNK_ROWS = 1 << 18  # rows of shuffled copies taken through the network at once
GRID_POINTS = 20  # the most values a numeric column's partial dependence is drawn at
PERCENTILES = (0.05, 0.95)  # ... quantiles of its values between these
IG_BATCH_ROWS = 8192  # rows of path points through the network at once (captum's batches)


@dataclass
class Importance:
    """Permutation importances of a classifier's original columns.

    ``importances`` ``(columns, repeats)``: the metric's worsening for each shuffle (the
    baseline score minus the shuffled one, scores higher-is-better: for log loss, the
    shuffled loss minus the baseline's); ``mean`` and ``std`` over the repeats.
    """

    columns: list[str]
    importances: np.ndarray
    baseline: float  # the metric on the data as given (log loss: the loss itself)
    metric: str
    rows: int

    @property
    def mean(self) -> np.ndarray:
        return self.importances.mean(axis=1)

    @property
    def std(self) -> np.ndarray:
        return self.importances.std(axis=1)

    def ranking(self) -> list[int]:
        """Column indices from the most important to the least."""
        return [int(i) for i in np.argsort(-self.mean, kind="stable")]

    def to_frame(self) -> Any:
        """A table: one row per column, most important first: mean, std, each repeat."""
        import pandas as pd

        order = self.ranking()
        frame = pd.DataFrame(
            {
                "column": [self.columns[i] for i in order],
                "importance": self.mean[order],
                "std": self.std[order],
            }
        )
        for repeat in range(self.importances.shape[1]):
            frame[f"repeat_{repeat + 1}"] = self.importances[order, repeat]
        return frame


def permutation_importance(
    classifier: Any,
    X: Any,
    y: Any,
    *,
    metric: str = "log_loss",
    n_repeats: int = 5,
    random_state: int | np.random.RandomState | None = 0,
) -> Importance:
    """Each original column's permutation importance for ``classifier`` on ``X``, ``y``.

    Args:
        classifier: a trained :class:`~torchclf.Classifier`.
        X: rows as the classifier takes them (a DataFrame or an array).
        y: their true labels.
        metric: "log_loss" (scikit-learn's "neg_log_loss"), "accuracy", "roc_auc" (binary; one
            class against the rest, macro, for multiclass: "roc_auc_ovr"; macro over labels
            for multilabel) or "f1" (binary: the positive class's; else macro).
        n_repeats: shuffles of each column.
        random_state: the shuffles' seed, as scikit-learn takes it.

    Raises:
        ConfigError: for an unknown metric or a repeat count below 1.
        DataError: when ``X`` and ``y`` differ in rows.
    """
    if metric not in SCORES:
        raise ConfigError(
            f"The 'metric' parameter must be one of {list(SCORES)}. Got {metric!r} instead."
        )
    if isinstance(n_repeats, bool) or not isinstance(n_repeats, int) or n_repeats < 1:
        raise ConfigError(f"n_repeats must be a whole number >= 1, got {n_repeats!r}")
    task, model = classifier.task, classifier.model
    targets = task.encode(y)
    weight = next(model.parameters())
    with torch.inference_mode():
        encoded = torch.from_numpy(classifier.encoder.transform(X))
        encoded = encoded.to(weight.device, weight.dtype)  # (n, features)
        if len(encoded) != len(targets):
            raise DataError(f"X has {len(encoded)} rows but y has {len(targets)}; they must match")

        def score(probabilities: Tensor) -> float:
            return float(task.score(metric, probabilities.cpu(), targets))

        model.eval()
        network = _FirstLayers(model, task, encoded)
        baseline = score(network.probabilities())
        orders = _shuffles(len(encoded), n_repeats, random_state)  # (repeats, n)
        groups = classifier.encoder.column_features()
        importances = np.empty((len(groups), n_repeats))
        for index, (_, features) in enumerate(groups):
            done = 0
            step = max(1, CHUNK_ROWS // len(encoded))  # repeats a chunk holds
            while done < n_repeats:
                chunk = orders[done : done + step].to(weight.device)
                probabilities = network.shuffled_probabilities(features, chunk)  # (r, n, K)
                for offset, one in enumerate(probabilities):
                    importances[index, done + offset] = baseline - score(one)
                done += len(chunk)
    if metric == "log_loss":  # a loss: reported as itself, its importance as its growth
        baseline = -baseline
    return Importance([name for name, _ in groups], importances, baseline, metric, len(encoded))


class _FirstLayers:
    """A model's probabilities with one column's inputs changed, from first layers computed once.

    Shuffled among the rows (permutation importance) or set to a value (partial dependence).

    For each member: ``inputs`` ``(n, network_inputs)`` (the codes' vectors in place) and
    ``first`` ``(n, width)``, its first Linear layer's output on them. The layers after it run
    on blocks of about ``batch_rows`` rows (every repeat of a block's rows at once), which keep
    their activations in the cache, as prediction does (:func:`predict_logits`).
    """

    def __init__(self, model: torch.nn.Module, task: Any, encoded: Tensor) -> None:
        self.model, self.task = model, task
        self.members = members_of(model)
        config = self.members[0].config
        self.batch_rows = predict_batch_rows(config, encoded.device, encoded.dtype)
        self.inputs = [member.first_layer_inputs(encoded) for member in self.members]
        self.first = [  # (n, width) each
            member.first_layer(inputs)
            for member, inputs in zip(self.members, self.inputs, strict=True)
        ]
        self.own_forward = uses_own_forward(config)
        self.activate = in_place_activation(config.activation)
        self.linears = [
            [m for m in member.layers if isinstance(m, torch.nn.Linear)] for member in self.members
        ]
        # each hidden layer after the first: its own reused buffer (a layer reads the last's)
        self.buffers = {
            len(linears): [
                encoded.new_empty(self.batch_rows, layer.out_features) for layer in linears[1:-1]
            ]
            for linears in self.linears
        }

    def _after_first_layer(self, index: int, hidden: Tensor) -> Tensor:
        """Member ``index``'s logits ``(rows, out)`` from its first layer's output ``hidden``.

        ``hidden`` is the caller's to lose: the activation is applied to it in place.
        """
        member, linears = self.members[index], self.linears[index]
        if self.own_forward or len(linears) == 1:  # (a linear member: the first is the last)
            return member.after_first_layer(hidden)
        h = self.activate(hidden)
        out = hidden.new_empty(len(hidden), linears[-1].out_features)
        buffers = self.buffers[len(linears)]  # (the networks share them: one at a time)
        return member.tempered(run_linears(linears[1:], h, buffers, self.activate, out))

    def _probabilities(self, member_logits: list[Tensor]) -> Tensor:
        if isinstance(self.model, Ensemble):
            logits = self.model.combine(torch.stack(member_logits))
        else:
            logits = member_logits[0]
        return self.task.probabilities(logits)

    def probabilities(self) -> Tensor:
        """The model's probabilities ``(n, K)`` on the rows as given."""
        n = len(self.first[0])
        blocks = []
        for start in range(0, n, self.batch_rows):
            rows = slice(start, start + self.batch_rows)
            # (copies: the activation is applied in place)
            every = [
                self._after_first_layer(i, first[rows].clone())
                for i, first in enumerate(self.first)
            ]
            blocks.append(self._probabilities(every))
        return torch.cat(blocks)

    def shuffled_probabilities(self, features: Sequence[int], orders: Tensor) -> Tensor:
        """Probabilities ``(r, n, K)``, ``features`` taken from the rows ``orders`` ``(r, n)``."""
        return self.replaced_probabilities(
            features, len(orders), lambda index, own, rows: own[orders[:, rows]]
        )

    def replaced_probabilities(
        self,
        features: Sequence[int],
        copies: int,
        replacement: Callable[[int, Tensor, slice], Tensor],
    ) -> Tensor:
        """Probabilities ``(copies, n, K)`` with the first-layer inputs of ``features`` replaced.

        ``replacement(member, own, rows)``: member ``member``'s new inputs ``(copies, b, g)``
        for the rows ``rows``, given its inputs as they are, ``own`` ``(n, g)``.
        """
        n = len(self.first[0])
        # each member's columns of the first layer's input, and their weights (width, g)
        parts = []
        for member, inputs in zip(self.members, self.inputs, strict=True):
            columns = torch.tensor(member.first_layer_columns(features), device=inputs.device)
            weight = member.first_layer.weight.index_select(1, columns)
            parts.append((inputs.index_select(1, columns), weight.T.contiguous()))
        block = max(1, self.batch_rows // copies)
        result: Tensor | None = None
        for start in range(0, n, block):
            rows = slice(start, min(start + block, n))
            every = []
            for index, (own, weight_t) in enumerate(parts):
                moved = replacement(index, own, rows) - own[rows]  # (copies, b, g)
                hidden = torch.matmul(moved, weight_t).add_(self.first[index][rows])  # (c, b, w)
                every.append(self._after_first_layer(index, hidden.flatten(0, 1)))
            probabilities = self._probabilities(every)  # (copies * b, K)
            if result is None:
                result = probabilities.new_empty(copies, n, probabilities.shape[1])
            result[:, rows] = probabilities.reshape(copies, -1, probabilities.shape[1])
        assert result is not None  # n >= 1 row
        return result

    def first_layer_inputs_of(self, encoded: Tensor, features: Sequence[int]) -> list[Tensor]:
        """Each member's first-layer inputs of ``features`` for the rows ``encoded``."""
        return [
            member.first_layer_inputs(encoded).index_select(
                1, torch.tensor(member.first_layer_columns(features), device=encoded.device)
            )
            for member in self.members
        ]


@dataclass
class Dependence:
    """How a classifier's probabilities follow one column: partial dependence and ICE.

    ``values``: the column's grid (numbers, or categories); ``outputs``: the classes (labels,
    for multilabel) the probabilities are of; ``individual`` ``(rows, values, outputs)``: each
    row's probabilities with the column set to each value (its ICE curves); ``average``
    ``(values, outputs)``: their mean over the rows, the partial dependence.
    """

    column: str
    values: list[Any]
    categorical: bool
    outputs: list[str]
    individual: np.ndarray

    @property
    def average(self) -> np.ndarray:
        return self.individual.mean(axis=0)


def partial_dependence(
    classifier: Any,
    X: Any,
    column: str | int,
    *,
    values: Sequence[Any] | None = None,
    grid_points: int = GRID_POINTS,
    percentiles: tuple[float, float] = PERCENTILES,
) -> Dependence:
    """The probabilities of ``classifier`` with ``column`` set to each value, for every row.

    Args:
        classifier: a trained :class:`~torchclf.Classifier`.
        X: the rows to average over (a DataFrame or an array), e.g. the training rows.
        column: a column's name, or its position.
        values: the values to set; default: a categorical column's categories found in ``X``
            (sorted), a numeric column's distinct values when there are at most
            ``grid_points``, else ``grid_points`` quantiles of its values between
            ``percentiles`` (repeats dropped).
        grid_points: the most grid values a numeric column gets.
        percentiles: the quantiles the grid of a numeric column spans.

    Raises:
        DataError: when ``column`` is not one of the classifier's columns.
    """
    return _partial_dependences(classifier, X, [column], values, grid_points, percentiles)[0]


def _partial_dependences(
    classifier: Any,
    X: Any,
    columns: Sequence[str | int],
    values: Sequence[Any] | None,
    grid_points: int,
    percentiles: tuple[float, float],
) -> list[Dependence]:
    """:func:`partial_dependence` of each of ``columns`` (``values``: for each, when given).

    The rows are encoded, and each network's first layer computed, once for all the columns.
    """
    import pandas as pd

    groups = classifier.encoder.column_features()
    names = [name for name, _ in groups]
    kinds = classifier.encoder.kinds() if hasattr(classifier.encoder, "kinds") else {}
    frame = X if hasattr(X, "iloc") else pd.DataFrame(np.asarray(X), columns=names)
    weight = next(classifier.model.parameters())
    dependences = []
    with torch.inference_mode():
        encoded = torch.from_numpy(classifier.encoder.transform(X))
        encoded = encoded.to(weight.device, weight.dtype)
        classifier.model.eval()
        network = _FirstLayers(classifier.model, classifier.task, encoded)
        for column in columns:
            name = _column_name(names, column)
            categorical = name in kinds.get("categorical", [])
            grid = list(values) if values is not None else None
            if grid is None:
                grid = _grid(frame[name], categorical, grid_points, percentiles)
            # the grid's rows: the first row, with the column set to each value in turn
            grid_rows = frame.iloc[[0] * len(grid)].copy()
            grid_rows[name] = np.asarray(grid, dtype=object if categorical else np.float64)
            if not hasattr(X, "iloc"):
                grid_rows = grid_rows.to_numpy(dtype=np.float64)
            at_values = torch.from_numpy(classifier.encoder.transform(grid_rows, warn=False))
            at_values = at_values.to(weight.device, weight.dtype)  # (values, features)
            features = groups[names.index(name)][1]
            grid_inputs = network.first_layer_inputs_of(at_values, features)  # (values, g) each
            probabilities = network.replaced_probabilities(
                features, len(grid), _set_to(grid_inputs)
            )  # (values, n, K)
            individual = probabilities.permute(1, 0, 2).cpu().numpy()
            outputs = list(classifier.task.class_names)
            dependences.append(Dependence(name, grid, categorical, outputs, individual))
    return dependences


def _column_name(names: list[str], column: str | int) -> str:
    """The name of ``column``: a name, or a position among ``names``.

    Raises:
        DataError: when it is neither.
    """
    if isinstance(column, int) and not isinstance(column, bool) and 0 <= column < len(names):
        return names[column]
    if not isinstance(column, str) or column not in names:
        raise DataError(
            f"column {column!r} is not one of the model's columns {names} (a name, or a "
            f"position 0..{len(names) - 1})"
        )
    return column


def _set_to(grid_inputs: list[Tensor]) -> Callable[[int, Tensor, slice], Tensor]:
    """Each member's inputs set to each grid value: ``(values, rows, g)`` for the rows."""

    def replacement(member: int, own: Tensor, rows: slice) -> Tensor:
        return grid_inputs[member][:, None, :].expand(-1, rows.stop - rows.start, -1)

    return replacement


def _grid(
    raw: Any, categorical: bool, grid_points: int, percentiles: tuple[float, float]
) -> list[Any]:
    """A column's default grid: its categories, or its distinct values or quantiles."""
    present = raw.dropna()
    if categorical:
        return sorted(present.unique(), key=str)
    numbers = present.to_numpy(dtype=np.float64)
    distinct = np.unique(numbers)
    if len(distinct) <= grid_points:
        return list(distinct)
    levels = np.linspace(percentiles[0], percentiles[1], grid_points)
    return list(np.unique(np.quantile(numbers, levels)))


@dataclass
class Explanation:
    """What drives a classifier's predictions.

    Each column's importance, and how the probabilities follow the most important columns
    (``dependences``, the most important first).
    """

    importance: Importance
    dependences: list[Dependence]
    rows: str  # which rows the importance was taken on, in words


def explain(
    classifier: Any,
    X: Any,
    y: Any,
    *,
    background: Any = None,
    rows: str = "the rows given",
    metric: str = "log_loss",
    n_repeats: int = 5,
    top: int = 4,
    random_state: int | np.random.RandomState | None = 0,
) -> Explanation:
    """Permutation importance on ``X``, ``y``, and the top columns' partial dependence.

    :func:`permutation_importance` of every column, then :func:`partial_dependence` of the
    ``top`` most important over ``background`` (the training rows; default ``X``). ``rows``
    says in words which rows ``X`` holds (the report says it).
    """
    importance = permutation_importance(
        classifier, X, y, metric=metric, n_repeats=n_repeats, random_state=random_state
    )
    over = X if background is None else background
    chosen = [importance.columns[i] for i in importance.ranking()[: max(0, top)]]
    dependences = _partial_dependences(classifier, over, chosen, None, GRID_POINTS, PERCENTILES)
    return Explanation(importance, dependences, rows)


@dataclass
class Attributions:
    """Each row's prediction split among the original columns (integrated gradients).

    ``values`` ``(rows, columns)``: each column's share of the explained logit's move from the
    baseline row to the row; ``explained`` names each row's explained output (the positive
    class, the predicted class, or the most probable label); ``output`` and
    ``baseline_output`` ``(rows,)`` are that logit at the row and at the baseline, and
    ``delta`` ``(rows,)`` the integral's error: ``values.sum(1) - (output - baseline_output)``.
    """

    columns: list[str]
    values: np.ndarray
    explained: list[str]
    output: np.ndarray
    baseline_output: np.ndarray
    delta: np.ndarray

    def strongest(self, k: int) -> list[list[tuple[str, float]]]:
        """Each row's ``k`` columns of the largest contribution (by size), signed."""
        order = np.argsort(-np.abs(self.values), axis=1, kind="stable")[:, :k]
        return [
            [(self.columns[j], float(self.values[i, j])) for j in row]
            for i, row in enumerate(order)
        ]


def integrated_gradients(
    classifier: Any, X: Any, *, baseline: Any = None, n_steps: int = 64
) -> Attributions:
    """Integrated gradients of each row's explained logit, summed to the original columns.

    The path runs in the encoded space (after the preprocessing, which the gradients take
    into account through each column's encoded features: scaled value, indicator, bins,
    one-hot slots, and a learned vector's one-hot), from ``baseline`` (default: the training
    medians and most frequent categories, :meth:`Encoder.baseline`; one raw row) to each row,
    ``n_steps`` Gauss-Legendre points. By completeness the values of a row sum to its logit
    less the baseline's, up to ``delta``. Needs captum (``pip install torchclf[explain]``).

    Raises:
        ConfigError: when captum is not installed.
    """
    try:
        from captum.attr import IntegratedGradients
    except ImportError as error:
        raise ConfigError(
            "integrated gradients need captum, PyTorch's attribution library: pip install "
            "'torchclf[explain]' (or pip install captum)"
        ) from error
    encoder, model, task = classifier.encoder, classifier.model, classifier.task
    baseline = encoder.baseline() if baseline is None else baseline
    weight = next(model.parameters())
    model.eval()
    with torch.no_grad():
        encoded = torch.from_numpy(encoder.transform(X)).to(weight.device, weight.dtype)
        at_baseline = torch.from_numpy(encoder.transform(baseline, warn=False))
        at_baseline = at_baseline.to(weight.device, weight.dtype)[:1]
        paths = _OneHotCodes(model, encoded.shape[1])
        inputs, start = paths.expand(encoded), paths.expand(at_baseline)
        logits = paths(inputs)  # (n, outputs)
        targets = _explained_outputs(task, logits)  # (n,)
    attributions, delta = IntegratedGradients(paths).attribute(
        inputs,
        baselines=start,
        target=targets,
        n_steps=n_steps,
        internal_batch_size=IG_BATCH_ROWS,
        return_convergence_delta=True,
    )
    groups = encoder.column_features()
    values = torch.stack(
        [attributions[:, paths.expanded_columns(features)].sum(dim=1) for _, features in groups],
        dim=1,
    )
    with torch.no_grad():
        output = logits.gather(1, targets[:, None])[:, 0]
        baseline_output = paths(start)[0, targets]
    names = _output_names(task, logits.shape[1])
    return Attributions(
        [name for name, _ in groups],
        values.detach().double().cpu().numpy(),
        [names[int(t)] for t in targets],
        output.double().cpu().numpy(),
        baseline_output.double().cpu().numpy(),
        delta.detach().double().cpu().numpy(),
    )


class _OneHotCodes(torch.nn.Module):
    """The model on encoded rows whose category codes are one-hot: differentiable everywhere.

    A learned vector is its table's row for the code: the one-hot ``(rows, slots)`` times the
    table, so a path between two categories is a path between their vectors, and a gradient
    reaches the category.
    """

    def __init__(self, model: torch.nn.Module, features: int) -> None:
        super().__init__()
        self.model = model
        self.members = members_of(model)
        counts = self.members[0].config.category_counts
        self.plain = features - len(counts)
        self.counts = list(counts)

    def expand(self, encoded: Tensor) -> Tensor:
        """Encoded rows ``(n, features)`` with each code as its one-hot: ``(n, plain + slots)``."""
        codes = encoded[:, self.plain :].long()
        hot = [
            torch.nn.functional.one_hot(codes[:, j], count).to(encoded.dtype)
            for j, count in enumerate(self.counts)
        ]
        return torch.cat([encoded[:, : self.plain], *hot], dim=1)

    def expanded_columns(self, features: Sequence[int]) -> list[int]:
        """The expanded columns of encoded ``features`` (a code: its one-hot slots)."""
        columns: list[int] = []
        for feature in features:
            if feature < self.plain:
                columns.append(feature)
            else:
                code = feature - self.plain
                start = self.plain + sum(self.counts[:code])
                columns.extend(range(start, start + self.counts[code]))
        return columns

    def forward(self, expanded: Tensor) -> Tensor:
        every = []
        for member in self.members:
            inputs, offset = [expanded[:, : self.plain]], self.plain
            tables = [] if member.embeddings is None else list(member.embeddings.tables)
            for index, count in enumerate(self.counts):
                hot = expanded[:, offset : offset + count]  # (n, count)
                offset += count
                if tables:  # its vector
                    table = tables[index]
                    assert isinstance(table, torch.nn.Embedding)  # (count, dim)
                    inputs.append(hot @ table.weight)
                else:  # a member that takes the code as a number (a blend's linear member)
                    codes = torch.arange(count, dtype=hot.dtype, device=hot.device)
                    inputs.append((hot @ codes)[:, None])
            every.append(member.after_first_layer(member.first_layer(torch.cat(inputs, dim=1))))
        if isinstance(self.model, Ensemble):
            return self.model.combine(torch.stack(every))
        return every[0]


def _explained_outputs(task: Any, logits: Tensor) -> Tensor:
    """Each row's explained output: the one logit (binary), else the most probable one."""
    if logits.shape[1] == 1:
        return torch.zeros(len(logits), dtype=torch.long, device=logits.device)
    return task.probabilities(logits).argmax(dim=1)


def _output_names(task: Any, outputs: int) -> list[str]:
    """The name of each logit: the positive class (binary), each class or label."""
    names = list(task.class_names)
    return names[-1:] if outputs == 1 else names


def held_out_rows(classifier: Any, y_train: Any) -> np.ndarray | None:
    """The positions in ``y_train`` (``fit``'s training rows) that ``fit`` held out.

    The validation rows its early stopping, temperature and blend were chosen on, drawn again
    as ``fit`` drew them (its validation share and seed, stratified by the targets); rows the
    networks never trained on. None when it held out none, or cross-fitted its networks (each
    row then trained all but one of them).
    """
    config = classifier.train_config
    if config is None or config.cross_fit or not config.validation_fraction:
        return None
    targets = classifier.task.encode(y_train).numpy()
    return holdout_indices(targets, config.validation_fraction, config.seed)[1]


def _shuffles(rows: int, repeats: int, random_state: int | np.random.RandomState | None) -> Tensor:
    """The row orders ``(repeats, rows)`` of scikit-learn's shuffles for ``random_state``.

    It draws one seed, then for each column, with a generator of that seed, shuffles an index
    array in place ``repeats`` times, and each time takes the column (as the last repeat left
    it) in that order: repeat ``r``'s rows are the composition of the first ``r`` orders. The
    same for every column.
    """
    from sklearn.utils import check_random_state

    seed = check_random_state(random_state).randint(np.iinfo(np.int32).max + 1)
    generator = np.random.RandomState(seed)
    shuffling, taken = np.arange(rows), np.arange(rows)
    orders = np.empty((repeats, rows), dtype=np.int64)
    for repeat in range(repeats):
        generator.shuffle(shuffling)
        taken = taken[shuffling]  # the shuffled column, shuffled again
        orders[repeat] = taken
    return torch.from_numpy(orders)


__all__ = [
    "Attributions",
    "Dependence",
    "Explanation",
    "Importance",
    "explain",
    "held_out_rows",
    "integrated_gradients",
    "partial_dependence",
    "permutation_importance",
]
