"""Where a run's data came from, recorded so that its exact split can be rebuilt later.

``torchclf train`` stores a :class:`DataSource` in the model file; ``torchclf evaluate`` and
``torchclf predict`` rebuild the same test rows from it, so they reproduce the training run's
metrics and probabilities exactly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from torchclf.data import Split, train_test_split
from torchclf.datasets import ClassificationDataset, load


@dataclass(frozen=True)
class DataSource:
    """A built-in dataset by name, with its generator parameters, and how it was split."""

    name: str  # a built-in dataset, see torchclf.datasets.list_datasets()
    params: dict[str, Any] = field(default_factory=dict)  # the generator's keyword arguments
    test_size: float = 0.2  # share of the rows in the test split
    seed: int = 42  # the split's seed
    stratify: bool = True  # keep class proportions in both parts

    def load(self) -> ClassificationDataset:
        """The dataset itself."""
        return load(self.name, **self.params)

    def split(self, dataset: ClassificationDataset | None = None) -> Split:
        """The train/test split of the dataset's named labels, exactly as the run made it."""
        dataset = dataset if dataset is not None else self.load()
        return train_test_split(
            dataset.X, dataset.labels, self.test_size, stratify=self.stratify, seed=self.seed
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain values for the model file's metadata."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DataSource:
        """Inverse of :meth:`to_dict`."""
        return cls(**values)


__all__ = ["DataSource"]
