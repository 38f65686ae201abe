"""torchclf: neural-network classification with PyTorch.

Binary, multi-class and multi-label classifiers on feature data, from arrays to a trained,
evaluated and safely saved model in a few lines::

    import torchclf
    data = torchclf.datasets.load("circles")
    split = torchclf.train_test_split(data.X, data.labels, test_size=0.2, seed=42)
    clf = torchclf.fit(split.X_train, split.y_train, hidden=(10, 10), epochs=500)
    print(clf.evaluate(split.X_test, split.y_test))
    clf.save("circles.safetensors")
    clf = torchclf.load("circles.safetensors")

Names are imported on first use (PEP 562), so ``import torchclf`` (and the CLI's ``--help``) does
not pay for importing torch until something needs it.
"""

# private names only: the namespace holds the public API (plus the submodules Python adds)
import importlib as _importlib
import typing as _typing

from torchclf.version import __version__

# public name -> the module that defines it
_EXPORTS = {
    "MLP": "torchclf.nn.models",
    "build_model": "torchclf.nn.models",
    "BinaryTask": "torchclf.tasks",
    "MulticlassTask": "torchclf.tasks",
    "MultilabelTask": "torchclf.tasks",
    "Task": "torchclf.tasks",
    "infer_task": "torchclf.tasks",
    "Classifier": "torchclf.classifier",
    "load": "torchclf.classifier",
    "fit": "torchclf.training.fitting",
    "fit_parquet": "torchclf.training.streaming",
    "ModelConfig": "torchclf.config",
    "TrainConfig": "torchclf.config",
    "CheckpointInterval": "torchclf.config",
    "PARAMETER_HELP": "torchclf.config",
    "Split": "torchclf.data.splits",
    "resolve_device": "torchclf.devices",
    "train_test_split": "torchclf.data.splits",
    "TorchclfError": "torchclf.errors",
    "ConfigError": "torchclf.errors",
    "DataError": "torchclf.errors",
    "ModelFileError": "torchclf.errors",
    "TrainingError": "torchclf.errors",
    "TrainingDiverged": "torchclf.errors",
    "TrainingInterrupted": "torchclf.errors",
    "CheckpointError": "torchclf.errors",
    "TorchclfWarning": "torchclf.errors",
    "Evaluation": "torchclf.evaluation.metrics",
    "History": "torchclf.training.history",
    "NeuralNetClassifier": "torchclf.estimator",
    "DataSource": "torchclf.data.sources",
    "atomic_directory": "torchclf.files",
    "atomic_file": "torchclf.files",
    "Schedule": "torchclf.training.schedule",
    "Plan": "torchclf.training.schedule",
    "plan_training": "torchclf.training.schedule",
    "resolve_schedule": "torchclf.training.schedule",
    "Ensemble": "torchclf.nn.models",
    "OnnxModel": "torchclf.serving.export",
    "create_app": "torchclf.serving.server",
    "serve": "torchclf.serving.server",
    "log_to_mlflow": "torchclf.training.tracking",
    "Importance": "torchclf.evaluation.inspection",
    "Dependence": "torchclf.evaluation.inspection",
    "Explanation": "torchclf.evaluation.inspection",
    "explain": "torchclf.evaluation.inspection",
    "held_out_rows": "torchclf.evaluation.inspection",
    "integrated_gradients": "torchclf.evaluation.inspection",
    "Attributions": "torchclf.evaluation.inspection",
    "partial_dependence": "torchclf.evaluation.inspection",
    "permutation_importance": "torchclf.evaluation.inspection",
    "ExportError": "torchclf.serving.export",
    "read_table": "torchclf.data.tabular",
    "is_table_path": "torchclf.data.frames",
    "prediction_frame": "torchclf.evaluation.predictions",
    "row_ids": "torchclf.evaluation.predictions",
    "write_table": "torchclf.evaluation.predictions",
    "count_parameters": "torchclf.nn.models",
    "read_model_file": "torchclf.checkpoint",
    "format_progress": "torchclf.training.loop",
}
# public submodules: each file stands for the module in its folder (torchclf/datasets.py...)
_SUBMODULES = ("activations", "datasets", "distributed", "improve", "plots", "report", "sweep")

__all__ = [
    "MLP",
    "PARAMETER_HELP",
    "Attributions",
    "BinaryTask",
    "CheckpointError",
    "CheckpointInterval",
    "Classifier",
    "ConfigError",
    "DataError",
    "DataSource",
    "Dependence",
    "Ensemble",
    "Evaluation",
    "Explanation",
    "ExportError",
    "History",
    "Importance",
    "ModelConfig",
    "ModelFileError",
    "MulticlassTask",
    "MultilabelTask",
    "NeuralNetClassifier",
    "OnnxModel",
    "Plan",
    "Schedule",
    "Split",
    "Task",
    "TorchclfError",
    "TorchclfWarning",
    "TrainConfig",
    "TrainingDiverged",
    "TrainingError",
    "TrainingInterrupted",
    "__version__",
    "activations",
    "atomic_directory",
    "atomic_file",
    "build_model",
    "count_parameters",
    "create_app",
    "datasets",
    "distributed",
    "explain",
    "fit",
    "fit_parquet",
    "format_progress",
    "held_out_rows",
    "improve",
    "infer_task",
    "integrated_gradients",
    "is_table_path",
    "load",
    "log_to_mlflow",
    "partial_dependence",
    "permutation_importance",
    "plan_training",
    "plots",
    "prediction_frame",
    "read_model_file",
    "read_table",
    "report",
    "resolve_device",
    "resolve_schedule",
    "row_ids",
    "serve",
    "sweep",
    "train_test_split",
    "write_table",
]


def __getattr__(name: str) -> _typing.Any:
    if name in _EXPORTS:
        value = getattr(_importlib.import_module(_EXPORTS[name]), name)
    elif name in _SUBMODULES:
        value = _importlib.import_module(f"torchclf.{name}")
    else:
        raise AttributeError(f"module 'torchclf' has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])


if _typing.TYPE_CHECKING:  # what static type checkers and IDEs see
    from torchclf import activations, datasets, distributed, improve, plots, report, sweep
    from torchclf.checkpoint import read_model_file
    from torchclf.classifier import Classifier, load
    from torchclf.config import PARAMETER_HELP, CheckpointInterval, ModelConfig, TrainConfig
    from torchclf.data.frames import is_table_path
    from torchclf.data.sources import DataSource
    from torchclf.data.splits import Split, train_test_split
    from torchclf.data.tabular import read_table
    from torchclf.devices import resolve_device
    from torchclf.errors import (
        CheckpointError,
        ConfigError,
        DataError,
        ModelFileError,
        TorchclfError,
        TorchclfWarning,
        TrainingDiverged,
        TrainingError,
        TrainingInterrupted,
    )
    from torchclf.estimator import NeuralNetClassifier
    from torchclf.evaluation.inspection import (
        Attributions,
        Dependence,
        Explanation,
        Importance,
        explain,
        held_out_rows,
        integrated_gradients,
        partial_dependence,
        permutation_importance,
    )
    from torchclf.evaluation.metrics import Evaluation
    from torchclf.evaluation.predictions import prediction_frame, row_ids, write_table
    from torchclf.files import atomic_directory, atomic_file
    from torchclf.nn.models import MLP, Ensemble, build_model, count_parameters
    from torchclf.serving.export import ExportError, OnnxModel
    from torchclf.serving.server import create_app, serve
    from torchclf.tasks import BinaryTask, MulticlassTask, MultilabelTask, Task, infer_task
    from torchclf.training.fitting import fit
    from torchclf.training.history import History
    from torchclf.training.loop import format_progress
    from torchclf.training.schedule import Plan, Schedule, plan_training, resolve_schedule
    from torchclf.training.streaming import fit_parquet
    from torchclf.training.tracking import log_to_mlflow
