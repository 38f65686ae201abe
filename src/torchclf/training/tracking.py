"""Experiment tracking: a run's epochs, settings, test metrics and PR curves for TensorBoard.

``fit(..., tensorboard="tb")`` (``torchclf train --tensorboard tb``) writes TensorBoard event
files with PyTorch's own writer (``torch.utils.tensorboard``; ``pip install tensorboard``, or
``torchclf[tracking]``): every epoch's losses and accuracies (``train/loss``, ``val/accuracy``,
...) and learning rate (``lr``), the run's settings as a table (``config``), and once trained the
test rows' metrics (``test_metrics/...``) and one precision-recall curve per class or label
(``pr/<name>``). The CSV history stays the record; this is a view of it.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from torchclf.errors import ConfigError


class TensorBoardLog:
    """An ``on_epoch`` callback writing a run into ``folder`` as TensorBoard event files.

    Raises:
        ConfigError: without the tensorboard package.
    """

    def __init__(self, folder: str | os.PathLike[str], settings: dict[str, Any]) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise ConfigError(
                "tensorboard= (--tensorboard) needs the tensorboard package: "
                "pip install 'torchclf[tracking]'"
            ) from error
        self.writer = SummaryWriter(log_dir=str(folder))
        self.epoch = 0
        rows = "\n".join(f"| {k} | {json.dumps(v, default=str)} |" for k, v in settings.items())
        self.writer.add_text("config", "| setting | value |\n|---|---|\n" + rows)

    def __call__(self, row: dict[str, float]) -> None:
        """Write one epoch's row: ``train_loss`` as ``train/loss``, ``lr`` as itself."""
        self.epoch = int(row["epoch"])
        for name, value in row.items():
            if name not in ("epoch", "time"):
                self.writer.add_scalar(name.replace("_", "/", 1), value, self.epoch)

    def finish(
        self,
        metrics: dict[str, Any],
        curves: list[tuple[str, np.ndarray, np.ndarray]],
    ) -> None:
        """Write the test rows' ``metrics`` and PR ``curves`` ``(name, truth, score)``; close."""
        for name, value in metrics.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                self.writer.add_scalar(f"test_metrics/{name}", value, self.epoch)
        for name, truth, score in curves:
            self.writer.add_pr_curve(f"pr/{name}", truth, score, self.epoch)
        self.close()

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()


__all__ = ["TensorBoardLog"]
