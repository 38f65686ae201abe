"""A scikit-learn classifier built on torchclf's core: pipelines, grid search, calibration.

:class:`NeuralNetClassifier` follows scikit-learn's contract: ``__init__`` only stores its flat
parameters, ``fit`` validates them and the data, learned attributes end in ``_`` and ``fit``
returns ``self``. Training, tasks and model files are torchclf's own, so a fitted estimator's
``classifier_`` is an ordinary :class:`torchclf.Classifier` that ``torchclf predict`` can serve.

Like :func:`torchclf.fit`, it does its own preprocessing and keeps it in the model file. A NumPy
array (or an all-numeric, complete DataFrame) is standardized; a DataFrame with text, boolean or
category columns, or with missing values, is read as a table, as HistGradientBoostingClassifier
reads one: numeric columns imputed and standardized, the others one-hot encoded. So a saved
estimator predicts from the same raw rows it was fitted on, with nothing to re-apply.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_array, check_consistent_length
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from torchclf.config import MODEL_CONSTRAINTS, THRESHOLD, TRAIN_CONSTRAINTS
from torchclf.constraints import Constraint, Options, problem
from torchclf.data.frames import as_pandas
from torchclf.errors import ConfigError, TrainingDiverged, TrainingError

# scikit-learn's flat names -> the parameter each one is, declared once in torchclf.config; so
# the estimator checks its values against the same constraints, with the same message, as fit.
SKLEARN_NAMES = {
    "dropout": "dropout",
    "learning_rate": "lr",
    "weight_decay": "weight_decay",
    "batch_size": "batch_size",
    "max_epochs": "epochs",
    "validation_fraction": "validation_fraction",
    "n_iter_no_change": "patience",
    "tol": "min_delta",
    "activation": "activation",
    "init": "init",
    "ensemble": "ensemble",
    "optimizer": "optimizer",
    "dtype": "dtype",
}
# the estimator's other parameters that fit takes as they are, or under another name
_PASSED_AS = {
    "hidden_layer_sizes": "hidden",
    "batch_norm": "batch_norm",
    "class_weight": "class_weight",
    "threshold": "threshold",
    "device": "device",
}
_DECLARED = {**MODEL_CONSTRAINTS, **TRAIN_CONSTRAINTS}
_OWN: dict[str, Constraint] = {  # the estimator's own: a task's threshold, scikit-learn's "auto"
    "threshold": THRESHOLD,
    "early_stopping": Options(("auto", True, False)),
}


AUTO_EARLY_STOPPING_ROWS = 10_000  # early_stopping="auto" is on above this many rows


class NeuralNetClassifier(ClassifierMixin, BaseEstimator):
    """A PyTorch MLP classifier with scikit-learn's interface.

    Binary and multiclass targets are any labels; a 2-D 0/1 indicator ``y`` is multilabel, and
    ``predict_proba`` then returns one independent probability per label.

    Args:
        hidden_layer_sizes: hidden layer widths, or "auto" (two layers of ``2 * (inputs +
            outputs)`` units, clamped to [10, 128]).
        activation: "relu", "leaky_relu", "sigmoid", "tanh", "gelu" or "identity".
        dropout: dropout probability after each hidden layer.
        batch_norm: batch normalisation after each hidden linear layer.
        init: initial weights: "torch" (nn.Linear's), "xavier" (Glorot uniform, as
            MLPClassifier) or "kaiming" (He uniform).
        ensemble: networks trained at once whose probabilities are averaged (one model,
            early-stopped as a whole). 1 here, where ``fit``'s is "auto" (8): scikit-learn's
            checks compare weighted rows with repeated ones, and weighted rows train one
            network.
        optimizer: "adam", "adamw", "sgd" or "rmsprop".
        learning_rate: the optimizer's learning rate (scikit-learn's ``learning_rate_init``).
        weight_decay: L2 penalty: 0.003, what ``fit``'s "auto" is below 10,000 rows (chosen
            on torchclf's real-table suite).
        batch_size: rows per step; None trains full batch up to 4096 rows, else 256.
        max_epochs: passes over the training rows: a number, as scikit-learn's ``max_iter``
            (where ``fit`` sizes its budget to the data). Full-batch epochs take one step each,
            so 500 of them are about as many steps as MLPClassifier's 200 epochs of 200 rows.
        early_stopping: "auto", True or False, as in HistGradientBoostingClassifier. When on,
            ``validation_fraction`` of the rows is held out (stratified), the weights of the
            epoch with the lowest validation loss are kept, and training stops when that loss
            has not improved by ``tol`` for ``n_iter_no_change`` epochs. "auto" turns it on when
            the training data has more than 10,000 rows.
        validation_fraction: share of the rows held out when early stopping.
        n_iter_no_change: patience of early stopping, in epochs.
        tol: smallest validation-loss improvement that counts.
        class_weight: None, "balanced" or ``{label: weight}``.
        threshold: binary or multilabel decision threshold.
        device: "auto", "cpu", "cuda", "cuda:N" or "mps".
        dtype: "float64" (scikit-learn's precision: weighted and repeated rows give the same
            model to 1e-7) or "float32" (PyTorch's usual precision, faster on accelerators).
        random_state: seed of initialisation, splits and shuffling; None draws one from NumPy.
        verbose: print progress every tenth of the epochs.
        warm_start: a new ``fit`` continues from the last weights (and optimizer state) for
            ``max_epochs`` more epochs, instead of starting over (without early stopping, as
            ``partial_fit``).
        categorical_features: names of DataFrame columns of numbers to one-hot encode as
            categories (text, boolean and category columns always are).
    """

    def __init__(
        self,
        hidden_layer_sizes: Sequence[int] | str = "auto",
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
        init: str = "torch",
        ensemble: int = 1,
        optimizer: str = "adam",
        learning_rate: float = 0.003,
        weight_decay: float = 0.003,
        batch_size: int | None = None,
        max_epochs: int = 500,
        early_stopping: bool | str = "auto",
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        class_weight: str | dict[Any, float] | None = None,
        threshold: float = 0.5,
        device: str = "auto",
        dtype: str = "float64",
        random_state: int | np.random.RandomState | None = None,
        verbose: bool = False,
        warm_start: bool = False,
        categorical_features: Sequence[str] | None = None,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.dropout = dropout
        self.batch_norm = batch_norm
        self.init = init
        self.ensemble = ensemble
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.class_weight = class_weight
        self.threshold = threshold
        self.device = device
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.categorical_features = categorical_features

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> NeuralNetClassifier:
        """Train on features ``X`` ``(n, d)`` and targets ``y`` (labels, or an indicator matrix).

        ``sample_weight`` weighs each row's loss (and the feature scaling's statistics).
        """
        X, y = as_pandas(X), as_pandas(y)  # polars and pyarrow tables as pandas ones
        if self.warm_start and hasattr(self, "classifier_"):
            return self._train_more(X, y, sample_weight, self.max_epochs)
        return self._fit_new(X, y, sample_weight, epochs=self.max_epochs, classes=None)

    def partial_fit(
        self, X: Any, y: Any, classes: Any = None, sample_weight: Any = None
    ) -> NeuralNetClassifier:
        """One epoch on a chunk of rows; ``classes`` (every label) is needed on the first call.

        The first call also fits the feature scaling, on that chunk.
        """
        X, y = as_pandas(X), as_pandas(y)
        if hasattr(self, "classifier_"):
            return self._train_more(X, y, sample_weight, 1)
        if classes is None and np.ndim(y) == 1:
            raise ValueError("classes must be passed on the first call to partial_fit")
        return self._fit_new(X, y, sample_weight, epochs=1, classes=classes)

    def _validate_params(self) -> None:
        """Check every parameter against its declaration; report all problems in one error."""
        constraints = {flat: _DECLARED[name] for flat, name in SKLEARN_NAMES.items()} | _OWN
        # numbers first, then choices: the configs' order
        ordered = sorted(constraints.items(), key=lambda item: isinstance(item[1], Options))
        problems = [
            message
            for name, constraint in ordered
            if (message := problem(name, getattr(self, name), constraint)) is not None
        ]
        if problems:
            raise ConfigError("; ".join(problems))

    def _fit_new(
        self, X: Any, y: Any, sample_weight: Any, *, epochs: int, classes: Any
    ) -> NeuralNetClassifier:
        from torchclf.training.fitting import fit

        self._validate_params()
        categorical = tuple(self.categorical_features or ())
        self._table = _is_table(X) or (bool(categorical) and hasattr(X, "columns"))
        X, y = self._validate(X, y, reset=True)
        self._check_targets(y)
        multilabel = type_of_target(y) == "multilabel-indicator"
        # scikit-learn's "auto" (HistGradientBoostingClassifier): on above 10,000 rows
        self.do_early_stopping_ = (
            len(y) > AUTO_EARLY_STOPPING_ROWS
            if self.early_stopping == "auto"
            else bool(self.early_stopping)
        )
        hidden = self.hidden_layer_sizes
        # each parameter under fit's name, then the values worked out here in its place
        keywords = {
            name: getattr(self, flat) for flat, name in {**SKLEARN_NAMES, **_PASSED_AS}.items()
        } | {
            "hidden": hidden if isinstance(hidden, str) else tuple(hidden),
            "epochs": epochs,  # max_epochs, or partial_fit's one
            "early_stopping": self.do_early_stopping_,
            "validation_fraction": self.validation_fraction if self.do_early_stopping_ else 0.0,
            "seed": self._seed(),
            "verbose": bool(self.verbose),
        }
        with _advice_in_estimator_names():
            self.classifier_ = fit(
                X,
                y,
                **keywords,
                task="multilabel" if multilabel else "auto",
                classes=None if multilabel else classes,
                sample_weight=None if sample_weight is None else np.asarray(sample_weight, float),
                feature_names=None if self._table else getattr(self, "feature_names_in_", None),
                categorical=categorical,
            )
        self.classes_ = (
            np.arange(y.shape[1]) if multilabel else np.asarray(self.classifier_.classes)
        )
        self._record_history()
        return self

    def _train_more(self, X: Any, y: Any, sample_weight: Any, epochs: int) -> NeuralNetClassifier:
        from torchclf.training.continued import train_more

        X, y = self._validate(X, y, reset=False)
        with _advice_in_estimator_names():
            train_more(  # on with the optimizer as training left it (classifier_.optimizer)
                self.classifier_,
                X,
                y,
                epochs=epochs,
                sample_weight=None if sample_weight is None else np.asarray(sample_weight, float),
            )
        self._record_history()
        return self

    def _validate(self, X: Any, y: Any, *, reset: bool) -> tuple[Any, np.ndarray]:
        """scikit-learn's checks of ``X`` and ``y``; a table keeps its columns as they are."""
        if not self._table:
            return validate_data(
                self, X, y, reset=reset, multi_output=True, dtype=np.float64, y_numeric=False
            )
        # The table's columns are checked (names, count) here and encoded by torchclf's
        # TableEncoder, which names any bad column itself.
        validate_data(self, X, reset=reset, skip_check_array=True)
        y = check_array(y, ensure_2d=False, dtype=None, ensure_all_finite=False)
        check_consistent_length(X, y)
        return X, y

    def _record_history(self) -> None:
        history = self.classifier_.history
        self.n_iter_ = len(history)
        self.loss_curve_ = history.column("train_loss")
        validated = bool(history.rows) and "val_loss" in history.rows[0]
        # with early stopping: each epoch's validation loss, and the epoch whose weights were kept
        self.validation_loss_curve_ = history.column("val_loss") if validated else None
        self.best_epoch_ = history.best_epoch

    def _check_targets(self, y: np.ndarray) -> None:
        if y.ndim == 2 and y.shape[1] == 1:
            y = y.ravel()
        check_classification_targets(y)

    def _seed(self) -> int:
        state = self.random_state
        if state is None or isinstance(state, np.random.RandomState):
            generator = state if state is not None else np.random.mtrand._rand
            return int(generator.randint(0, 2**31 - 1))
        return int(state)

    def _features(self, X: Any) -> Any:
        check_is_fitted(self, "classifier_")
        X = as_pandas(X)
        if self._table:
            validate_data(self, X, reset=False, skip_check_array=True)
            return X
        return validate_data(self, X, reset=False, dtype=np.float64)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(n, n_classes)`` (two columns for binary), or per-label ones."""
        import torch

        # From float64 logits: float32 sigmoids round to exactly 1.0 beyond a logit of ~17, which
        # would tie rows that decision_function still ranks apart.
        features = self._features(X)  # checks that the estimator is fitted first
        logits = torch.from_numpy(self.classifier_.decision_function(features)).double()
        return self.classifier_.task.probabilities(logits).numpy()

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """The logarithm of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def decision_function(self, X: Any) -> np.ndarray:
        """Logits: ``(n,)`` for binary, ``(n, n_classes)`` or ``(n, n_labels)`` otherwise."""
        features = self._features(X)  # checks that the estimator is fitted first
        logits = self.classifier_.decision_function(features)
        return self.classifier_.task.decision_values(logits)

    def predict(self, X: Any) -> np.ndarray:
        """Labels ``(n,)``, or a ``(n, n_labels)`` 0/1 matrix for multilabel."""
        features = self._features(X)
        return self.classifier_.predict(features)

    def save(self, path: str) -> Any:
        """Write the fitted model as a torchclf ``.safetensors`` file (see ``torchclf.load``)."""
        check_is_fitted(self, "classifier_")
        return self.classifier_.save(path)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.classifier_tags.multi_label = True
        tags.non_deterministic = False
        return tags


def _is_table(X: Any) -> bool:
    """A DataFrame that needs torchclf's table preprocessing: a column not of numbers, or a gap."""
    if not (hasattr(X, "columns") and hasattr(X, "dtypes") and hasattr(X, "isna")):
        return False
    # pandas' extension dtypes (nullable ints, category, string) all have a NumPy-style kind
    numbers = all(getattr(dtype, "kind", "O") in "iuf" for dtype in X.dtypes)
    return not numbers or bool(X.isna().to_numpy().any())


@contextmanager
def _advice_in_estimator_names() -> Iterator[None]:
    """A diverged run's advice in the estimator's names: learning_rate, not fit's lr."""
    try:
        yield
    except TrainingDiverged as error:
        raise TrainingError(error.advice(lr="learning_rate={}", grad_clip=None)) from None


__all__ = ["NeuralNetClassifier"]
