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


def log_to_mlflow(
    folder: str | os.PathLike[str],
    run_name: str,
    params: dict[str, Any],
    history: list[dict[str, float]],
    metrics: dict[str, Any],
    artifacts: str | os.PathLike[str],
) -> str:
    """Log a finished run to the local MLflow tracking folder ``folder``; return its run id.

    The folder holds the tracking database (``mlflow.db``, SQLite) and the artifacts: the params
    (the run's settings), every epoch's metrics (``train_loss`` at step 1, 2, ...), the test
    metrics, and the files of ``artifacts`` (the run folder). Read it with
    ``mlflow.tracking.MlflowClient(f"sqlite:///{folder}/mlflow.db")`` or ``mlflow ui
    --backend-store-uri ...``.

    Raises:
        ConfigError: without the mlflow package.
    """
    try:
        import mlflow
        from mlflow.entities import Metric, Param
    except ImportError as error:
        raise ConfigError(
            "--mlflow needs the mlflow package: pip install 'torchclf[tracking]'"
        ) from error
    import logging
    from pathlib import Path

    folder = Path(folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    client = mlflow.tracking.MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    for name in ("mlflow", "alembic"):  # the store's first migration talks a lot
        logging.getLogger(name).setLevel(logging.WARNING)
    experiment = client.get_experiment_by_name("torchclf")
    experiment_id = (
        experiment.experiment_id
        if experiment is not None
        else client.create_experiment("torchclf", artifact_location=(folder / "artifacts").as_uri())
    )
    run = client.create_run(experiment_id, run_name=run_name)
    run_id = run.info.run_id
    values = [
        Metric(name, float(value), 0, int(row["epoch"]))
        for row in history
        for name, value in row.items()
        if name not in ("epoch", "time")
    ]
    values += [
        Metric(f"test_{name}", float(value), 0, 0)
        for name, value in metrics.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    ]
    texts = [Param(k, json.dumps(v, default=str)[:6000]) for k, v in params.items()]
    for start in range(0, len(texts), 90):  # MLflow's limits: 100 params, 1000 metrics a batch
        client.log_batch(run_id, params=texts[start : start + 90])
    for start in range(0, len(values), 900):
        client.log_batch(run_id, metrics=values[start : start + 900])
    client.log_artifacts(run_id, str(artifacts), artifact_path="run")
    client.set_terminated(run_id)
    return str(run_id)


__all__ = ["TensorBoardLog", "log_to_mlflow"]
