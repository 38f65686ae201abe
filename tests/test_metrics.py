import numpy as np
import pytest
import sklearn.metrics as skm
import torch

from torchclf import BinaryTask, MulticlassTask, MultilabelTask


def _normalised(probs):
    p = probs.double().numpy()
    return p / p.sum(1, keepdims=True)  # float32 rows sum to 1 only to ~1e-7


def _random_probs(n, k, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(n, k, generator=g) * 2, dim=1)


def test_binary_metrics_match_sklearn():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (300,), generator=g)
    logits = (y.float() * 2 - 1 + torch.randn(300, generator=g) * 1.5)[:, None]
    task = BinaryTask([0, 1], threshold=0.4)
    probs = task.probabilities(logits)
    result = task.evaluate(probs, y[:, None].float())
    y_np, p1 = y.numpy(), probs[:, 1].double().numpy()
    pred = (p1 >= 0.4).astype(int)
    assert result["accuracy"] == pytest.approx(skm.accuracy_score(y_np, pred))
    assert result["precision"] == pytest.approx(skm.precision_score(y_np, pred))
    assert result["recall"] == pytest.approx(skm.recall_score(y_np, pred))
    assert result["f1"] == pytest.approx(skm.f1_score(y_np, pred))
    assert result["f1_macro"] == pytest.approx(skm.f1_score(y_np, pred, average="macro"))
    assert result["precision_macro"] == pytest.approx(
        skm.precision_score(y_np, pred, average="macro")
    )
    assert result["recall_macro"] == pytest.approx(skm.recall_score(y_np, pred, average="macro"))
    assert result["roc_auc"] == pytest.approx(skm.roc_auc_score(y_np, p1), abs=1e-6)
    assert result["log_loss"] == pytest.approx(skm.log_loss(y_np, _normalised(probs)), rel=1e-5)
    assert np.array_equal(result.confusion_matrix, skm.confusion_matrix(y_np, pred))
    per_class_f1 = skm.f1_score(y_np, pred, average=None)
    assert [result.per_class[c]["f1"] for c in ("0", "1")] == pytest.approx(per_class_f1)
    assert [result.per_class[c]["support"] for c in ("0", "1")] == np.bincount(y_np).tolist()


def test_multiclass_metrics_match_sklearn():
    probs = _random_probs(400, 4, seed=1)
    y = torch.randint(0, 4, (400,), generator=torch.Generator().manual_seed(2))
    task = MulticlassTask(["a", "b", "c", "d"])
    result = task.evaluate(probs, y)
    y_np, p = y.numpy(), probs.double().numpy()
    pred = p.argmax(1)
    assert result["accuracy"] == pytest.approx(skm.accuracy_score(y_np, pred))
    for name, fn in (
        ("precision", skm.precision_score),
        ("recall", skm.recall_score),
        ("f1", skm.f1_score),
    ):
        assert result[f"{name}_macro"] == pytest.approx(fn(y_np, pred, average="macro"))
        per_class = fn(y_np, pred, average=None)
        assert [result.per_class[c][name] for c in "abcd"] == pytest.approx(per_class)
    assert result["f1_micro"] == pytest.approx(skm.f1_score(y_np, pred, average="micro"))
    assert result["roc_auc"] == pytest.approx(
        skm.roc_auc_score(y_np, p, multi_class="ovr"), abs=1e-6
    )
    assert result["log_loss"] == pytest.approx(skm.log_loss(y_np, _normalised(probs)), rel=1e-5)
    assert np.array_equal(result.confusion_matrix, skm.confusion_matrix(y_np, pred))


def test_macro_average_skips_classes_never_seen_like_sklearn():
    probs = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.8, 0.0], [0.7, 0.3, 0.0]])
    y = torch.tensor([0, 1, 1])
    result = MulticlassTask([0, 1, 2]).evaluate(probs, y)
    pred = probs.argmax(1).numpy()
    assert result["f1_macro"] == pytest.approx(skm.f1_score(y.numpy(), pred, average="macro"))
    assert np.isnan(result["roc_auc"])  # class 2 never occurs: ROC AUC is undefined
    assert result.to_dict()["scores"]["roc_auc"] is None


def test_multilabel_metrics_match_sklearn():
    g = torch.Generator().manual_seed(3)
    y = torch.randint(0, 2, (300, 3), generator=g)
    probs = torch.sigmoid((y.float() * 2 - 1) + torch.randn(300, 3, generator=g) * 1.2)
    task = MultilabelTask(["x", "y", "z"], threshold=[0.5, 0.3, 0.6])
    result = task.evaluate(probs, y.float())
    y_np, p = y.numpy(), probs.double().numpy()
    pred = (p >= np.array([0.5, 0.3, 0.6])).astype(int)
    assert result["accuracy"] == pytest.approx(skm.accuracy_score(y_np, pred))  # exact match
    assert result["exact_match"] == result["accuracy"]
    assert result["hamming_loss"] == pytest.approx(skm.hamming_loss(y_np, pred))
    for name, fn in (
        ("precision", skm.precision_score),
        ("recall", skm.recall_score),
        ("f1", skm.f1_score),
    ):
        for average in ("macro", "micro"):
            assert result[f"{name}_{average}"] == pytest.approx(fn(y_np, pred, average=average))
    assert [result.per_class[c]["f1"] for c in "xyz"] == pytest.approx(
        skm.f1_score(y_np, pred, average=None)
    )
    assert result["roc_auc"] == pytest.approx(skm.roc_auc_score(y_np, p, average="macro"), abs=1e-6)
    per_label_log_loss = np.mean([skm.log_loss(y_np[:, j], p[:, j]) for j in range(3)])
    assert result["log_loss"] == pytest.approx(per_label_log_loss, rel=1e-5)
    assert np.array_equal(result.confusion_matrix, skm.multilabel_confusion_matrix(y_np, pred))


def test_evaluation_prints_a_table_and_serialises():
    result = MulticlassTask(["a", "b"]).evaluate(_random_probs(20, 2, 4), torch.arange(20) % 2)
    text = str(result)
    assert "accuracy" in text and "precision  recall" in text and text.count("\n") >= 10
    data = result.to_dict()
    assert (
        data["task"] == "multiclass"
        and data["confusion_matrix"] == result.confusion_matrix.tolist()
    )


def test_the_expected_calibration_error_is_the_reliability_bins_gap():
    from torchclf.evaluation.metrics import expected_calibration_error, reliability_bins

    rng = np.random.default_rng(0)
    stated = rng.uniform(size=4000)
    calibrated = rng.uniform(size=4000) < stated  # comes true as often as it says
    overconfident = rng.uniform(size=4000) < 0.5 + (stated - 0.5) / 2  # says twice too much
    for came_true in (calibrated, overconfident):
        bins = reliability_bins(stated, came_true.astype(float))
        by_hand = np.nansum(
            bins["count"] / len(stated) * np.abs(bins["stated"] - bins["frequency"])
        )
        ece = expected_calibration_error(torch.tensor(stated), torch.tensor(came_true))
        assert ece == pytest.approx(by_hand, abs=1e-6)
    assert expected_calibration_error(torch.tensor(stated), torch.tensor(calibrated)) < 0.03
    assert expected_calibration_error(torch.tensor(stated), torch.tensor(overconfident)) > 0.1
