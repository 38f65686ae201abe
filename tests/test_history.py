import math

import pytest
import torch

from torchclf.errors import TrainingDiverged
from torchclf.training.history import BestEpochs, EpochRecorder, History


def test_the_best_epoch_rule_worked_by_hand_for_two_members():
    # member 0 improves at epochs 1 and 2, then waits 2 epochs (2.5, 2.4) and stops at 4, so
    # its 1.0 at epoch 5 never counts; member 1 improves at 1 only (1.95 is not below
    # 2.0 - 0.1), waits 2 epochs and stops at 3
    losses = [(3.0, 2.0), (2.0, 1.95), (2.5, 2.5), (2.4, 0.5), (1.0, 0.1)]
    rule = BestEpochs(torch.zeros(2, dtype=torch.float64), patience=2, min_delta=0.1)
    live = torch.ones(2, dtype=torch.bool)
    improvements = []
    for epoch, pair in enumerate(losses, 1):
        improved, live = rule.update(torch.tensor(pair, dtype=torch.float64), live, epoch)
        improvements.append(improved.tolist())
    assert improvements == [[True, True], [True, False], [False, False], [False, False],
                            [False, False]]  # fmt: skip
    assert rule.best_epoch.tolist() == [2, 1] and rule.stop_epoch.tolist() == [4, 3]
    assert rule.best_loss.tolist() == [2.0, 2.0] and live.tolist() == [False, False]


def test_the_recorder_completes_checks_and_hands_on_each_row():
    seen = []
    history = History()
    recorder = EpochRecorder(history, seen.append)
    row = recorder.record(3, {"train_loss": 0.5, "train_accuracy": 0.75}, lr=0.01)
    assert list(row) == ["epoch", "train_loss", "train_accuracy", "lr", "time"]
    assert row["epoch"] == 3.0 and row["time"] >= 0 and history.rows == seen == [row]
    with pytest.raises(TrainingDiverged):
        recorder.record(4, {"train_loss": math.nan, "train_accuracy": 0.5}, lr=0.01)
    quiet = EpochRecorder(History(), timed=False, stop_on_divergence=False)
    kept = quiet.record(1, {"train_loss": math.inf, "train_accuracy": 0.5}, lr=0.1)
    assert "time" not in kept and kept["train_loss"] == math.inf
