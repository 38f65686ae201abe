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

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from torchclf.version import __version__

# public name -> the module that defines it
_EXPORTS = {
    "MLP": "torchclf.models",
    "build_model": "torchclf.models",
    "BinaryTask": "torchclf.tasks",
    "MulticlassTask": "torchclf.tasks",
    "MultilabelTask": "torchclf.tasks",
    "Task": "torchclf.tasks",
    "infer_task": "torchclf.tasks",
    "Classifier": "torchclf.classifier",
    "load": "torchclf.classifier",
    "fit": "torchclf.fitting",
    "fit_parquet": "torchclf.streaming",
    "ModelConfig": "torchclf.config",
    "TrainConfig": "torchclf.config",
    "PARAMETER_HELP": "torchclf.config",
    "Split": "torchclf.data",
    "resolve_device": "torchclf.devices",
    "train_test_split": "torchclf.data",
    "TorchclfError": "torchclf.errors",
    "ConfigError": "torchclf.errors",
    "DataError": "torchclf.errors",
    "ModelFileError": "torchclf.errors",
    "TrainingError": "torchclf.errors",
    "TrainingDiverged": "torchclf.errors",
    "TorchclfWarning": "torchclf.errors",
    "Evaluation": "torchclf.metrics",
    "History": "torchclf.history",
    "NeuralNetClassifier": "torchclf.estimator",
    "DataSource": "torchclf.sources",
    "atomic_directory": "torchclf.files",
    "atomic_file": "torchclf.files",
    "Schedule": "torchclf.schedule",
    "Plan": "torchclf.schedule",
    "plan_training": "torchclf.schedule",
    "resolve_schedule": "torchclf.schedule",
    "Ensemble": "torchclf.models",
    "read_table": "torchclf.tabular",
    "is_table_path": "torchclf.tabular",
    "prediction_frame": "torchclf.predictions",
    "write_table": "torchclf.predictions",
    "count_parameters": "torchclf.models",
    "read_model_file": "torchclf.checkpoint",
    "format_progress": "torchclf.training",
}
_SUBMODULES = ("activations", "datasets", "improve", "plots", "report", "sweep")

__all__ = [
    "MLP",
    "PARAMETER_HELP",
    "BinaryTask",
    "Classifier",
    "ConfigError",
    "DataError",
    "DataSource",
    "Ensemble",
    "Evaluation",
    "History",
    "ModelConfig",
    "ModelFileError",
    "MulticlassTask",
    "MultilabelTask",
    "NeuralNetClassifier",
    "Plan",
    "Schedule",
    "Split",
    "Task",
    "TorchclfError",
    "TorchclfWarning",
    "TrainConfig",
    "TrainingDiverged",
    "TrainingError",
    "__version__",
    "activations",
    "atomic_directory",
    "atomic_file",
    "build_model",
    "count_parameters",
    "datasets",
    "fit",
    "fit_parquet",
    "format_progress",
    "improve",
    "infer_task",
    "is_table_path",
    "load",
    "plan_training",
    "plots",
    "prediction_frame",
    "read_model_file",
    "read_table",
    "report",
    "resolve_device",
    "resolve_schedule",
    "sweep",
    "train_test_split",
    "write_table",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"torchclf.{name}")
    else:
        raise AttributeError(f"module 'torchclf' has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # what static type checkers and IDEs see
    from torchclf import activations, datasets, improve, plots, report, sweep
    from torchclf.checkpoint import read_model_file
    from torchclf.classifier import Classifier, load
    from torchclf.config import PARAMETER_HELP, ModelConfig, TrainConfig
    from torchclf.data import Split, train_test_split
    from torchclf.devices import resolve_device
    from torchclf.errors import (
        ConfigError,
        DataError,
        ModelFileError,
        TorchclfError,
        TorchclfWarning,
        TrainingDiverged,
        TrainingError,
    )
    from torchclf.estimator import NeuralNetClassifier
    from torchclf.files import atomic_directory, atomic_file
    from torchclf.fitting import fit
    from torchclf.history import History
    from torchclf.metrics import Evaluation
    from torchclf.models import MLP, Ensemble, build_model, count_parameters
    from torchclf.predictions import prediction_frame, write_table
    from torchclf.schedule import Plan, Schedule, plan_training, resolve_schedule
    from torchclf.sources import DataSource
    from torchclf.streaming import fit_parquet
    from torchclf.tabular import is_table_path, read_table
    from torchclf.tasks import BinaryTask, MulticlassTask, MultilabelTask, Task, infer_task
    from torchclf.training import format_progress
