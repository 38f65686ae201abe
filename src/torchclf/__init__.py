"""torchclf: neural-network classification with PyTorch.

Binary, multi-class and multi-label classifiers on feature data, from arrays to a trained,
evaluated and safely saved model in a few lines::

    import torchclf
    data = torchclf.datasets.load("circles")
    split = torchclf.train_test_split(data.X, data.y, test_size=0.2, seed=42)
    clf = torchclf.fit(split.X_train, split.y_train, hidden=(10, 10), epochs=500)
    print(clf.evaluate(split.X_test, split.y_test))
    clf.save("circles.safetensors")
    clf = torchclf.load("circles.safetensors")
"""

from torchclf import activations, datasets
from torchclf.classifier import Classifier, load
from torchclf.config import ModelConfig, TrainConfig
from torchclf.data import Split, resolve_device, train_test_split
from torchclf.errors import (
    ConfigError,
    DataError,
    ModelFileError,
    TorchclfError,
    TrainingError,
)
from torchclf.fitting import fit
from torchclf.metrics import Evaluation
from torchclf.models import MLP, build_model
from torchclf.tasks import BinaryTask, MulticlassTask, MultilabelTask, Task, infer_task
from torchclf.training import History

__version__ = "0.1.0"

__all__ = [
    "MLP",
    "BinaryTask",
    "Classifier",
    "ConfigError",
    "DataError",
    "Evaluation",
    "History",
    "ModelConfig",
    "ModelFileError",
    "MulticlassTask",
    "MultilabelTask",
    "Split",
    "Task",
    "TorchclfError",
    "TrainConfig",
    "TrainingError",
    "__version__",
    "activations",
    "build_model",
    "datasets",
    "fit",
    "infer_task",
    "load",
    "resolve_device",
    "train_test_split",
]
