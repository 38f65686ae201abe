"""``fit``: from features and targets to a trained :class:`~torchclf.Classifier`.

It validates the inputs once, infers the task, builds the configs, splits off the validation
rows, fits the preprocessing on the training rows only, moves everything to the device as tensors
and hands them to the training loop.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from torchclf import distributed, engine
from torchclf.classifier import Classifier
from torchclf.config import (
    MODEL_CONSTRAINTS,
    TRAIN_CONSTRAINTS,
    ModelConfig,
    TrainConfig,
    config_from,
)
from torchclf.constraints import check_all
from torchclf.data.arrays import as_features, check_feature_names, check_sample_weight, take_rows
from torchclf.data.frames import as_pandas
from torchclf.data.labelled import Labelled, to_labelled
from torchclf.data.splits import fold_indices, holdout_indices
from torchclf.devices import intra_op_threads, resolve_device, rng_devices, training_threads
from torchclf.encoders import ArrayEncoder, Encoder, TableEncoder
from torchclf.engine import LazyOptimizer
from torchclf.errors import ConfigError, DataError, TrainingInterrupted
from torchclf.nn.models import build_model
from torchclf.nn.starting_point import auto_hidden, start_at_prior
from torchclf.tasks import Task, infer_task
from torchclf.training.blend import blend_in_logistic
from torchclf.training.calibration import fit_temperature, set_temperature
from torchclf.training.checkpoints import (
    KEEP,
    Checkpoints,
    LoopState,
    jsonable,
    load_optimizer_state,
    open_checkpoints,
    optimizer_state,
)
from torchclf.training.history import History
from torchclf.training.loop import ProgressPrinter, make_optimizer, train_model, training_batches
from torchclf.training.schedule import plan_training, resolve_weight_decay
from torchclf.training.thresholds import (
    check_threshold_rule,
    rare_class_threshold,
    tuned_threshold,
)
from torchclf.training.tracking import TensorBoardLog


def fit(
    X: Any,
    y: Any,
    *,
    task: str = "auto",
    hidden: Sequence[int] | str = "auto",
    activation: str = "relu",
    activation_impl: str = "torch",
    dropout: float = 0.0,
    batch_norm: bool = False,
    init: str = "torch",
    ensemble: int | str = "auto",
    cross_fit: bool | str = "auto",
    blend_linear: bool | str = "auto",
    calibrate: bool = True,
    prior_bias: bool = True,
    optimizer: str = "adam",
    lr: float = 0.003,
    momentum: float = 0.0,
    weight_decay: float | str = "auto",
    epochs: int | str = "auto",
    batch_size: int | None = None,
    lr_schedule: str = "none",
    grad_clip: float | None = None,
    early_stopping: bool | str = "auto",
    validation_fraction: float | str = "auto",
    patience: int | str = "auto",
    min_delta: float = 0.0,
    class_weight: str | dict[str, float] | None = None,
    label_smoothing: float = 0.0,
    threshold: float | str | Sequence[float] = 0.5,
    positive_class: Any = None,
    label_names: Sequence[str] | None = None,
    feature_names: Sequence[str] | None = None,
    categorical: Sequence[str] = (),
    standardize: bool = True,
    scaling: str = "standard",
    numeric_embedding: str = "auto",
    categorical_embedding: str = "auto",
    eval_set: tuple[Any, Any] | None = None,
    sample_weight: Any = None,
    classes: Sequence[Any] | None = None,
    dtype: str = "float32",
    engine: str = "auto",
    threads: int | str = "auto",
    compile: bool = False,
    seed: int = 42,
    device: str = "auto",
    verbose: bool = False,
    log_every: int | None = None,
    log: Callable[[str], None] | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    checkpoint_every: int | str = "auto",
    keep_checkpoints: int = KEEP,
    resume_from: str | os.PathLike[str] | None = None,
    tensorboard: str | os.PathLike[str] | None = None,
) -> Classifier:
    """Train a classifier on features ``X`` and targets ``y``.

    The task comes from ``y`` unless given: two classes -> binary, more -> multiclass, a 2-D 0/1
    matrix or a sequence of label lists -> multilabel. Labels may be ints, strings or booleans.

    Args:
        X: features ``(n, d)``: a numeric NumPy array, list or tensor; or a pandas DataFrame of
            numeric, text and boolean columns, with missing values allowed (see
            :class:`torchclf.encoders.TableEncoder`).
        y: targets: labels ``(n,)``, an indicator matrix ``(n, L)`` or label lists.
        task: "auto", "binary", "multiclass" or "multilabel".
        hidden: hidden layer sizes; ``()`` is the linear baseline; "auto" is two layers of
            width ``2 * (inputs + outputs)`` clamped to [10, 128] (the tutorial's 10-10 on
            two-feature binary data, 128-128 on digits); inputs are the encoded features
            without piecewise-linear bins.
        activation: "relu", "leaky_relu", "sigmoid", "tanh", "gelu" or "identity".
        activation_impl: "torch" (torch.nn's) or "scratch" (torchclf.activations').
        dropout: dropout probability after each hidden activation.
        batch_norm: BatchNorm1d after each hidden linear layer.
        init: the Linear layers' initial weights: "torch" (nn.Linear's own), "xavier" (Glorot
            uniform, scikit-learn's scheme; often faster to learn for wide ReLU nets) or
            "kaiming" (He uniform); the last two start the biases at zero.
        ensemble: train this many networks of the architecture at once (each from its own
            initial weights, on the same batches) and average their probabilities: one model
            and one file. Averaging lowers log loss most where a single network is unsure or
            over-confident. "auto" is 8 where the hand-written engine trains them side by
            side, else 1 (see :func:`resolve_ensemble`).
        cross_fit: with an ``ensemble`` of K, cut the training rows into K folds (stratified):
            member k trains on every fold but the k-th, which validates it and chooses its
            best epoch. Every training row then both trains and validates, and the epochs are
            chosen on all of them rather than on a small holdout; ``validation_fraction`` is
            1/K. Needs the hand-written engine (no dropout, batch norm or schedule). "auto"
            cross-fits an ensemble that early-stops with "auto" validation on 20 rows or more;
            False makes one holdout for the whole ensemble, which then stops as a whole.
        blend_linear: also fit as many logistic regressions (one ``nn.Linear`` each, on the
            same rows and folds, as scikit-learn's ``LogisticRegression()``) and mix their
            probabilities with the networks' at the share that minimises the held-out rows'
            log loss (a share under 1% drops them; see :mod:`torchclf.training.blend`): where a
            linear model is the right one, the blend leans on it. "auto" blends into a
            cross-fitted ensemble; True wherever rows are held out.
        calibrate: after training (and blending), fit one temperature that divides the
            logits, minimising the log loss of the validation rows (or, cross-fitted, of each
            training row as its held-out members predict it), and keep it in the model
            (``temperature`` in its config; see :mod:`torchclf.training.calibration`). Without
            held-out rows nothing is fitted.
        prior_bias: start the output layer's bias at the training rows' class log-odds (see
            :meth:`Task.prior_logits`), so the first prediction is the base rate; False keeps
            the initialisation's own bias (the tutorial's exact numbers need that).
        optimizer: "adam", "adamw", "sgd" or "rmsprop".
        lr: learning rate.
        momentum: momentum for sgd and rmsprop.
        weight_decay: L2 penalty (decoupled for adamw); "auto" is 0.003, which tempers
            over-confident probabilities, and 0.0003 from 10,000 training rows on (both chosen
            on the real-table suite, ``benchmarks/real_tables.py``).
        epochs: the most passes over the training rows (fewer when early stopping ends
            training); "auto" is 1000 for data that trains full batch and about 30,000 steps
            (at most 200 epochs) in mini-batches (see :func:`resolve_schedule`).
        batch_size: rows per step; None trains full batch up to 4096 rows, else 256 rows.
        lr_schedule: "none", "cosine", "step" or "plateau".
        grad_clip: maximum global gradient norm, or None.
        early_stopping: keep the weights of the epoch with the lowest validation loss, and stop
            when it has not improved for ``patience`` epochs. "auto" (the default) does so
            whenever there are validation rows, which "auto" ``validation_fraction`` holds out.
        validation_fraction: share of the training rows held out (stratified) for validation:
            every choice (the best epoch, a threshold rule) is made on them, never on
            ``eval_set``. "auto" holds out 20% (at most 10,000 rows) when early stopping or a
            threshold rule needs them, none otherwise, and none from fewer than 20 rows (then
            the whole epoch budget is trained).
        patience: epochs without improvement before early stopping; "auto" is a tenth of a
            full-batch budget (100 of 1000), 10 epochs in mini-batches.
        min_delta: smallest validation-loss decrease that counts as an improvement.
        class_weight: None, "balanced" or ``{label: weight}``.
        label_smoothing: label smoothing for multiclass cross-entropy.
        threshold: decision threshold for binary (one value) or multilabel (one or one per label);
            for binary also "f1" (the threshold that maximises F1 on the validation rows) or
            "recall:0.9" (the highest threshold whose validation recall reaches 0.9). Either rule
            needs ``validation_fraction``; the chosen threshold is saved with the model.
        positive_class: a binary task's positive class, whose probability ``predict_proba``'s
            second column, the threshold, ROC and PR curves and F1 are about (a label, or its
            text, such as "1"); default: the last label in sorted order.
        label_names: multilabel label names for an indicator-matrix ``y``.
        feature_names: names of the columns of ``X`` (a DataFrame's column names are used when
            this is not given); saved with the model and checked against DataFrames at predict.
        categorical: DataFrame columns to one-hot encode even though they hold numbers (text and
            boolean columns always are).
        standardize: scale features with mean and standard deviation of the training rows.
        scaling: how a DataFrame's numeric columns are scaled: "standard" (mean and standard
            deviation) or "robust" (median and interquartile range, then squashed smoothly
            into (-3, 3), as RealMLP does: heavy tails and outliers stretch nothing).
        numeric_embedding: "piecewise_linear" also gives the network each numeric column with
            more than 8 distinct values as 8 piecewise-linear bins at the training quantiles
            (Gorishniy et al., 2022): 0 below a bin, 1 above it, linear inside. "auto" does so
            for a DataFrame where the training rows are at least 20 per added feature (on the
            real-table suite that halves credit_card's log loss and lowers the larger tables',
            where tables with fewer rows a feature lose); an array, never; "none", never. A
            blend's logistic regressions use the plain columns alone.
        categorical_embedding: "learned" gives every categorical column of a DataFrame to
            the network as one code per row, which it looks up in a learned table of 8-number
            vectors (RealMLP's embeddings of categories), instead of one-hot; "auto" does so
            for the columns with more than 50 categories seen at least twice, which one-hot
            would lump together (so these keep up to 10,000); "none", never. A blend's
            logistic regressions leave such columns out.
        sample_weight: ``(n,)`` non-negative weights of the rows: the training loss is their
            weighted mean and the standardization uses weighted statistics (a weight of 2 counts
            a row twice). Validation and test losses stay unweighted.
        classes: every class label, when ``y`` may not show them all (the first of several
            chunks trained with :func:`train_more`); single-label tasks only.
        dtype: "float32" (fast, the default) or "float64": features, weights and arithmetic in
            double precision, e.g. for results that must match to 1e-7.
        engine: "auto" trains with torchclf's hand-written engine, full batch or mini-batches
            (:mod:`torchclf.engine`, several times faster on small data) whenever the
            configuration allows it, else with the autograd loop; "autograd" always uses the
            loop; "stacked" insists on the engine and says why when it cannot. Both give the same
            model (float round-off aside).
        compile: ``torch.compile`` the model for the autograd loop, for long runs; the first
            step compiles, and its time is ``history.compile_seconds``. On small data the
            hand-written engine (not compiled) is usually faster.
        threads: torch's intra-op threads while training, restored afterwards. "auto" uses one
            thread for data that trains full batch (at most 4096 rows), whose operations are too
            short to share (a second thread only spin-waits: tens of times slower on a busy
            2-core machine), and leaves torch's setting alone for larger data.
        eval_set: ``(X_test, y_test)`` evaluated after every epoch and recorded in the history as
            ``test_loss``/``test_accuracy``; never used to choose anything.
        seed: seeds initialisation, validation split, shuffling and dropout.
        device: "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", "cuda:N" or "mps".
        verbose: print a progress line every ``log_every`` epochs.
        log_every: progress interval in epochs (default: ten lines per run).
        log: receives the progress lines instead of ``print`` (implies ``verbose``).
        on_epoch: called with each epoch's history row, e.g. to drive a progress bar.
        checkpoint_dir: write the whole training state into this folder as it trains
            (:mod:`torchclf.training.checkpoints`: weights, optimizer, early stopping, best
            weights, generators, history; safetensors and JSON), so that ``resume_from`` can go
            on from it. While it trains, Ctrl-C writes a checkpoint and raises
            :class:`~torchclf.TrainingInterrupted`.
        checkpoint_every: how often: "auto" (every 60 seconds), a number of epochs, or a time
            such as "30s" or "5m"; and once training is done.
        keep_checkpoints: how many of the newest checkpoints to keep.
        resume_from: a folder of checkpoints (or a run folder holding one): go on from its
            newest checkpoint, which must come from the same data and settings (a difference is
            refused by name); the model is bit for bit the one an uninterrupted run gives on the
            same machine. Checkpoints go on into it unless ``checkpoint_dir`` says otherwise.

        tensorboard: write the run as TensorBoard event files into this folder
            (:mod:`torchclf.training.tracking`): each epoch's losses, accuracies and learning
            rate, the settings, and once trained ``eval_set``'s metrics and PR curves.

    Returns:
        The trained :class:`Classifier`; ``classifier.history`` holds the per-epoch record.

    Launched as several processes (``torchrun``) that have made their process group
    (``torch.distributed.init_process_group``, or
    :func:`torchclf.distributed.init_from_environment`), ``fit`` trains data-parallel
    (:mod:`torchclf.distributed`): every process gives it the same data and keywords, takes its
    share of each batch (``batch_size`` is the global batch), and returns the same model; rank 0
    alone prints, writes checkpoints and TensorBoard files.
    """
    given = dict(locals())  # the keywords as called: the configs copy theirs by name
    X = as_pandas(X)  # polars and pyarrow tables as pandas ones
    if eval_set is not None:
        eval_set = (as_pandas(eval_set[0]), eval_set[1])
    rule = threshold if isinstance(threshold, str) else None
    fitted_task = infer_task(
        y if classes is None else np.asarray(classes),
        task,
        threshold=0.5 if isinstance(threshold, str) else threshold,
        label_names=label_names,
        positive_class=positive_class,
    )
    targets = fitted_task.encode(y)
    is_frame = hasattr(X, "columns") and hasattr(X, "iloc")
    if is_frame:
        n_rows = len(X)
    else:
        X, frame_names = as_features(X, dtype=np.float64 if dtype == "float64" else np.float32)
        n_rows = len(X)
        feature_names = check_feature_names(feature_names, X.shape[1]) or frame_names
    if len(targets) != n_rows:
        raise DataError(f"X has {n_rows} rows but y has {len(targets)}; they must match")
    weights = check_sample_weight(sample_weight, n_rows)
    # read before the configs are built, which check everything else
    early = (
        ("ensemble", ensemble, MODEL_CONSTRAINTS["ensemble"]),
        ("cross_fit", cross_fit, TRAIN_CONSTRAINTS["cross_fit"]),
        ("blend_linear", blend_linear, TRAIN_CONSTRAINTS["blend_linear"]),
    )
    check_all([(name, value, rule) for name, value, rule in early if value != "auto"])
    plan = plan_training(n_rows, given)
    schedule, ensemble, cross_fit = plan.schedule, plan.ensemble, plan.cross_fit
    validation_fraction = schedule.validation_fraction
    train_config = config_from(
        TrainConfig,
        given,
        weight_decay=resolve_weight_decay(weight_decay, n_rows),
        epochs=schedule.epochs,
        early_stopping=schedule.early_stopping,
        validation_fraction=validation_fraction,
        patience=schedule.patience,
        cross_fit=cross_fit,
        blend_linear=plan.blend_linear,
    )
    if rule is not None:
        check_threshold_rule(rule, fitted_task, validation_fraction)
    torch_device = distributed.local_device(resolve_device(device))
    # several processes started by torchrun, with their group made: each trains on its share
    group = distributed.current(torch_device)
    is_main = group is None or group.is_main

    every_row = np.arange(n_rows)

    def rows(index: np.ndarray) -> Any:
        return X if index is every_row else take_rows(X, index)  # no copy of all the rows

    train_rows, validation_rows, folds = every_row, None, None
    if cross_fit:  # (K, n): True where member k trains on the row
        fold_of_row = torch.from_numpy(fold_indices(targets.numpy(), ensemble, seed))
        folds = fold_of_row[None, :] != torch.arange(ensemble)[:, None]
    elif validation_fraction > 0:
        train_rows, validation_rows = holdout_indices(targets.numpy(), validation_fraction, seed)
    train_targets = targets if train_rows is every_row else targets[train_rows]

    encoder: Encoder
    preprocessing: dict[str, Any] = dict(
        standardize=standardize, scaling=scaling, numeric_embedding=numeric_embedding, dtype=dtype
    )
    if is_frame:
        encoder = TableEncoder.fit(
            rows(train_rows),
            categorical=categorical,
            categorical_embedding=categorical_embedding,
            **preprocessing,
        )
    else:
        encoder = ArrayEncoder.fit(
            rows(train_rows),
            names=feature_names,
            sample_weight=None if weights is None else weights[train_rows],
            **preprocessing,
        )
    # (features,): not piecewise bins nor category codes
    plain = torch.from_numpy(~encoder.embedded_columns())

    torch_dtype = getattr(torch, dtype)

    def prepare(X_rows: Any, y_rows: Tensor, warn: bool = True) -> Labelled:
        encoded = encoder.transform(X_rows, warn=warn)
        return to_labelled(encoded, y_rows, torch_device, torch_dtype)

    train = to_labelled(
        encoder.transform(rows(train_rows), warn=False),
        train_targets,
        torch_device,
        torch_dtype,
        None if weights is None else weights[train_rows],
    )
    validation = None
    if validation_rows is not None:
        validation = prepare(rows(validation_rows), targets[validation_rows])
    test = None
    if eval_set is not None:
        test = prepare(eval_set[0], fitted_task.encode(eval_set[1]))

    if isinstance(hidden, str) and hidden == "auto":
        # sized to the table's plain features and its codes' vectors: the piecewise bins
        # refine them, and would otherwise widen (and slow) every layer
        vectors = len(encoder.category_counts()) * ModelConfig.embedding_dim
        hidden = auto_hidden(int(plain.sum()) + vectors, fitted_task.n_outputs)
    model_config = config_from(
        ModelConfig,
        given,
        in_features=encoder.n_outputs,
        out_features=fitted_task.n_outputs,
        category_counts=encoder.category_counts(),
        hidden=hidden,  # ModelConfig checks and converts it
        ensemble=ensemble,
    )
    checkpoints = open_checkpoints(
        checkpoint_dir,
        resume_from,
        {k: v for k, v in given.items() if k not in _NOT_SETTINGS},
        [*_tensors(train), *_tensors(validation), *_tensors(test), folds],
        checkpoint_every,
        keep_checkpoints,
        group,
    )
    model = build_model(model_config, seed, link=fitted_task.link)
    if prior_bias:
        train_weights = None if weights is None else torch.from_numpy(weights[train_rows])
        start_at_prior(model, fitted_task, train_targets, train_weights)
    model = model.to(device=torch_device, dtype=torch_dtype)
    loss_fn = fitted_task.loss_fn(train_targets, class_weight, label_smoothing)
    loss_fn = loss_fn.to(device=torch_device, dtype=torch_dtype)
    callbacks = [c for c in (on_epoch,) if c is not None]
    if (verbose or log is not None) and is_main:  # the processes' histories are one
        callbacks.append(ProgressPrinter(schedule.epochs, log_every, log or print))
    board = None
    if tensorboard is not None and is_main:
        settings = {k: v for k, v in given.items() if k not in _NOT_SETTINGS}
        board = TensorBoardLog(tensorboard, jsonable(settings))
        callbacks.append(board)

    def on_epoch_end(row: dict[str, float]) -> None:
        for callback in callbacks:
            callback(row)

    with (
        torch.random.fork_rng(devices=rng_devices(torch_device)),
        intra_op_threads(training_threads(threads, len(train_rows))),
    ):
        torch.manual_seed(seed)  # dropout draws from the global generator
        # the optimizer the network trains with (or, on the engine, is given its last state):
        # a warm start goes on with it
        network_optimizer = LazyOptimizer(model, functools.partial(make_optimizer, train_config))
        trained = model
        if checkpoints is None:
            history = _train(
                model, fitted_task, loss_fn, train, train_config, validation, test, on_epoch_end,
                folds, optimizer=network_optimizer, group=group,
            )  # fmt: skip
        else:
            checkpoints.restore_random_state()
            history = _train_with_checkpoints(
                checkpoints,
                model,
                network_optimizer,
                lambda every: _train(
                    model, fitted_task, loss_fn, train, train_config, validation, test,
                    on_epoch_end, folds, every, network_optimizer, group,
                ),
            )  # fmt: skip
        # rows no member trained on: the validation rows, or (cross-fitted) each row's own fold
        held_out = train if folds is not None else validation
        if plan.blend_linear and model_config.hidden and held_out is not None:
            model = blend_in_logistic(
                model, fitted_task, loss_fn, train, held_out, folds, columns=plain
            )
    if calibrate and held_out is not None:
        set_temperature(model, fit_temperature(model, fitted_task, held_out, folds))
    if rule is not None and held_out is not None:
        fitted_task = fitted_task.with_threshold(
            tuned_threshold(model, fitted_task, held_out, rule, folds=folds)
        )
    summary = history.to_dict()
    if fitted_task.tunes_threshold and held_out is not None:
        # reported, not applied: the report shows the rarer class's test F1 at 0.5 and at this
        summary |= rare_class_threshold(model, fitted_task, held_out, folds=folds)
    classifier = Classifier(
        model,
        fitted_task,
        encoder,
        train_config=train_config,
        history=history,
        training_summary=summary,
    )
    if model is trained and folds is None:  # not blended, nor cross-fitted
        classifier.optimizer = network_optimizer  # made when a warm start asks
    if board is not None:
        metrics: dict[str, Any] = {}
        curves: list[tuple[str, np.ndarray, np.ndarray]] = []
        if eval_set is not None:  # reported, as the history's test columns are
            probabilities = classifier.predict_proba(eval_set[0])
            metrics = classifier.evaluate(eval_set[0], eval_set[1]).to_dict()["scores"]
            encoded = fitted_task.encode(eval_set[1]).numpy()
            curves = fitted_task.one_vs_rest(encoded, probabilities)
        board.finish(metrics, curves)
    return classifier


# fit's keywords that are not settings a resumed run must repeat: the data, and what it shows
_NOT_SETTINGS = frozenset(
    {"X", "y", "eval_set", "sample_weight", "verbose", "log_every", "log", "on_epoch"}
    | {"checkpoint_dir", "checkpoint_every", "keep_checkpoints", "resume_from", "tensorboard"}
)


def _tensors(rows: Labelled | None) -> list[Tensor | None]:
    return [None] if rows is None else [rows.X, rows.y, rows.weight]


def _train_with_checkpoints(
    checkpoints: Checkpoints,
    model: torch.nn.Module,
    optimizer: LazyOptimizer,
    train_network: Callable[[Checkpoints], History],
) -> History:
    """:func:`_train` writing checkpoints, and a last one once the network is trained.

    A run resumed from that last one takes its weights and history and trains no more. Ctrl-C
    while it trains writes a checkpoint and raises :class:`~torchclf.TrainingInterrupted`.
    """
    with checkpoints.catching_interrupts():
        if checkpoints.resumed_stage == "trained":
            assert checkpoints.resumed is not None  # a stage is read with its state
            model.load_state_dict(checkpoints.resumed.sub("model"))
            _resume_optimizer(optimizer, checkpoints.resumed)
            history = History.from_dict(checkpoints.history)
        else:
            history = train_network(checkpoints)
            trained = LoopState()
            trained.put("model", model.state_dict())
            _keep_optimizer(optimizer, trained)  # for a warm start after it
            checkpoints.track(history)
            checkpoints.save(trained, len(history), stage="trained")
    if checkpoints.interrupt_requested:  # Ctrl-C came after the last safe point: the
        raise TrainingInterrupted(len(history), checkpoints.folder)  # model is saved
    return history


def _keep_optimizer(optimizer: LazyOptimizer, state: LoopState) -> None:
    """Put the network's optimizer into ``state``: made, or the engine's moments to make it."""
    if optimizer.made is not None:
        optimizer_state(optimizer.made, state, "optimizer")
    elif optimizer.moments is not None:  # not made for the checkpoint's sake (a second's import)
        state.put("engine_moments", optimizer.moments)
        state.values["engine_steps"] = optimizer.steps


def _resume_optimizer(optimizer: LazyOptimizer, state: LoopState) -> None:
    """The inverse of :func:`_keep_optimizer`."""
    if "optimizer" in state.values:
        load_optimizer_state(optimizer.get(), state, "optimizer")
    elif "engine_steps" in state.values:
        optimizer.moments = state.sub("engine_moments")
        optimizer.steps = state.values["engine_steps"]


def _train(
    model: torch.nn.Module,
    task: Task,
    loss_fn: torch.nn.Module,
    train: Labelled,
    config: TrainConfig,
    validation: Labelled | None,
    test: Labelled | None,
    on_epoch: Callable[[dict[str, float]], None],
    folds: Tensor | None = None,
    checkpoints: Checkpoints | None = None,
    optimizer: LazyOptimizer | None = None,
    group: distributed.Group | None = None,
) -> History:
    """Train on the hand-written engine where it applies, else on the autograd loop.

    The one place the engine is chosen. Both cut the same batches and give the same model
    (``tests/test_engines.py``); ``config.engine`` forces one. A cross-fitted ensemble
    (``folds``) trains on the engine only: :func:`plan_training` refused any other.
    ``optimizer`` (of ``model``'s parameters) trains it, or (the engine) takes its last state.
    ``group``: the processes training together (each loop reduces its gradients over them).
    """
    batches = training_batches(model, len(train.X), config, train.X.device, group)
    if config.engine != "autograd" and not config.compile:
        why_not = engine.refusal(model, train, config)
        if why_not is None:
            return engine.train_single(
                model, task, train, config, validation, test, on_epoch, batches, folds,
                checkpoints, optimizer, group,
            )  # fmt: skip
        if config.engine == "stacked":
            raise ConfigError(
                f"engine='stacked' cannot train this run: {why_not}. Use engine='auto' (or "
                "'autograd')"
            )
    assert folds is None, "plan_training lets only the engine cross-fit"
    return train_model(
        model,
        task,
        loss_fn,
        train,
        config,
        validation=validation,
        test=test,
        on_epoch=on_epoch,
        batches=batches,
        checkpoints=checkpoints,
        optimizer=None if optimizer is None else optimizer.get(),
        group=group,
    )


__all__ = ["fit"]
