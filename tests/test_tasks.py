import re

import numpy as np
import pytest
import torch
from torch import nn

from torchclf import BinaryTask, ConfigError, DataError, MulticlassTask, MultilabelTask, infer_task
from torchclf.tasks import task_from_dict


@pytest.mark.parametrize(
    ("y", "expected", "classes"),
    [
        pytest.param([0, 1, 1, 0], BinaryTask, [0, 1], id="int-binary"),
        pytest.param(["cat", "dog", "cat"], BinaryTask, ["cat", "dog"], id="str-binary"),
        pytest.param([True, False, True], BinaryTask, [False, True], id="bool-binary"),
        pytest.param([3, 1, 2, 1], MulticlassTask, [1, 2, 3], id="int-multiclass"),
        pytest.param(["b", "c", "a"], MulticlassTask, ["a", "b", "c"], id="str-multiclass"),
        pytest.param([[1, 0, 1], [0, 1, 0]], MultilabelTask, ["0", "1", "2"], id="indicator"),
        pytest.param([["x", "y"], [], ["z"]], MultilabelTask, ["x", "y", "z"], id="label-lists"),
    ],
)
def test_task_is_inferred_from_targets(y, expected, classes):
    task = infer_task(y)
    assert type(task) is expected
    assert task.classes.tolist() == classes


@pytest.mark.parametrize(
    "y", [["cat", "dog", "dog"], [True, False, False], [10, 20, 30, 20], np.array([-1, 1, 1])]
)
def test_labels_round_trip_through_encode_and_decode(y):
    task = infer_task(y)
    encoded = task.encode(y)
    codes = encoded[:, 0].long() if isinstance(task, BinaryTask) else encoded
    decoded = task.decode(codes)
    assert decoded.tolist() == list(np.asarray(y).tolist())
    assert decoded.dtype.kind == np.asarray(y).dtype.kind


def test_encodings_are_what_the_losses_expect():
    assert infer_task([0, 1, 1]).encode([0, 1, 1]).shape == (3, 1)  # BCE on (n, 1) logits
    encoded = infer_task([0, 1, 2]).encode([2, 0])
    assert encoded.dtype == torch.int64 and encoded.tolist() == [2, 0]
    ml = infer_task([["a"], ["b", "a"]])
    assert ml.encode([["b"], ["a", "b"], []]).tolist() == [[0, 1], [1, 1], [0, 0]]


def test_forced_tasks():
    assert isinstance(infer_task([0, 1, 0], "multiclass"), MulticlassTask)
    with pytest.raises(
        DataError,
        match=re.escape(
            "task='binary' needs exactly two classes, but y has 3: [0, 1, 2]; use task='multiclass' (or 'auto')"
        ),
    ):
        infer_task([0, 1, 2], "binary")
    with pytest.raises(
        ConfigError,
        match=re.escape(
            "The 'task' parameter must be one of ['auto', 'binary', 'multiclass', 'multilabel']. Got 'multi' instead."
        ),
    ):
        infer_task([0, 1], "multi")
    with pytest.raises(
        DataError, match=re.escape("y looks multilabel (shape (2, 2)), but task='binary'")
    ):
        infer_task([[0, 1], [1, 0]], "binary")


@pytest.mark.parametrize(
    ("y", "message"),
    [
        pytest.param(
            [1, 1, 1],
            "y has only one class (1); a classifier needs at least two classes",
            id="one-class",
        ),
        pytest.param([], "y is empty: at least two labelled rows are needed", id="empty"),
        pytest.param(
            [1.0, np.nan, 0.0],
            "y has 1 missing values (rows [1]...); drop those rows or fill them",
            id="nan",
        ),
        pytest.param(
            ["a", None, "b"],
            "y has 1 missing values (rows [1]...); drop those rows or fill them",
            id="none",
        ),
        pytest.param(
            [[0, 2], [1, 0]],
            "a multilabel indicator y may hold only 0 and 1 (or booleans); found [0, 1, 2]",
            id="bad-indicator",
        ),
    ],
)
def test_bad_targets_are_rejected(y, message):
    with pytest.raises(DataError, match=re.escape(message)):
        infer_task(y)


def test_unknown_labels_at_encode_time():
    task = infer_task(["a", "b"])
    with pytest.raises(
        DataError,
        match=re.escape(
            "y holds labels ['c'] that the classifier does not know; its classes are ['a', 'b']"
        ),
    ):
        task.encode(["a", "c"])


def test_binary_probabilities_have_two_columns_and_follow_the_threshold():
    logits = torch.tensor([[-2.0], [0.0], [0.5], [30.0]])
    task = BinaryTask([0, 1])
    probs = task.probabilities(logits)
    assert probs.shape == (4, 2)
    torch.testing.assert_close(probs.sum(1), torch.ones(4))
    torch.testing.assert_close(probs[:, 1], torch.sigmoid(logits[:, 0]))
    assert task.decide(probs).tolist() == [0, 1, 1, 1]  # p >= 0.5
    assert BinaryTask([0, 1], threshold=0.7).decide(probs).tolist() == [0, 0, 0, 1]


def test_multiclass_decision_is_argmax_of_probabilities():
    logits = torch.randn(50, 4, generator=torch.Generator().manual_seed(0))
    task = MulticlassTask(["a", "b", "c", "d"])
    probs = task.probabilities(logits)
    torch.testing.assert_close(probs.sum(1), torch.ones(50))
    assert torch.equal(task.decide(probs), probs.argmax(1))
    assert task.n_correct(logits, probs.argmax(1)).item() == 50


def test_multilabel_rows_need_not_sum_to_one_and_thresholds_are_per_label():
    task = MultilabelTask(["x", "y"], threshold=[0.5, 0.9])
    probs = task.probabilities(torch.tensor([[3.0, 3.0], [-3.0, 1.0]]))
    assert not torch.allclose(probs.sum(1), torch.ones(2))
    assert task.decide(probs).tolist() == [[1, 1], [0, 0]]  # sigmoid(1) = 0.73 < 0.9


def test_balanced_class_weights():
    binary = BinaryTask([0, 1])
    targets = torch.tensor([[0.0]] * 30 + [[1.0]] * 10)
    loss = binary.loss_fn(targets, "balanced", 0.0)
    assert isinstance(loss, nn.BCEWithLogitsLoss) and loss.pos_weight.tolist() == [3.0]
    multi = MulticlassTask([0, 1, 2])
    loss = multi.loss_fn(torch.tensor([0] * 6 + [1] * 3 + [2] * 3), "balanced", 0.1)
    # n / (K * count): 12 / (3 * 6), 12 / (3 * 3), 12 / (3 * 3)
    torch.testing.assert_close(loss.weight, torch.tensor([2 / 3, 4 / 3, 4 / 3]))
    assert loss.label_smoothing == 0.1
    ml = MultilabelTask(["a", "b"])
    loss = ml.loss_fn(
        torch.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0], [0.0, 0.0]]), "balanced", 0.0
    )
    assert loss.pos_weight.tolist() == [1.0, 3.0]


def test_class_weight_dict_and_errors():
    loss = MulticlassTask(["a", "b", "c"]).loss_fn(torch.tensor([0, 1, 2]), {"b": 5.0}, 0.0)
    assert loss.weight.tolist() == [1.0, 5.0, 1.0]
    with pytest.raises(
        ConfigError,
        match=re.escape(
            "class_weight names labels ['z'] that are not among the classes ['a', 'b', 'c']"
        ),
    ):
        MulticlassTask(["a", "b", "c"]).loss_fn(torch.tensor([0]), {"z": 2.0}, 0.0)
    with pytest.raises(
        ConfigError, match="label_smoothing applies to multiclass tasks only; this one is binary"
    ):
        BinaryTask([0, 1]).loss_fn(torch.zeros(2, 1), None, 0.1)


def test_thresholds_are_validated():
    with pytest.raises(
        ConfigError,
        match=re.escape("The 'threshold' parameter must be in (0, 1). Got 1.5 instead."),
    ):
        BinaryTask([0, 1], threshold=1.5)


@pytest.mark.parametrize(
    "task",
    [
        BinaryTask(["no", "yes"], 0.3),
        MulticlassTask([1, 2, 5]),
        MultilabelTask(["a", "b"], [0.2, 0.6]),
    ],
    ids=["binary", "multiclass", "multilabel"],
)
def test_tasks_round_trip_through_dicts(task):
    rebuilt = task_from_dict(task.to_dict())
    assert type(rebuilt) is type(task) and rebuilt.to_dict() == task.to_dict()
    assert rebuilt.classes.dtype.kind == task.classes.dtype.kind
