import json
import pickle
import re
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

import torchclf
from torchclf import DataError, ModelFileError, datasets
from torchclf.checkpoint import FORMAT_VERSION
from torchclf.errors import TorchclfWarning


@pytest.fixture(scope="module")
def blobs_split():
    data = datasets.load("blobs", n_samples=300)
    return torchclf.train_test_split(data.X, data.labels, test_size=0.2, seed=0)


@pytest.fixture(scope="module")
def blobs_clf(blobs_split):
    return torchclf.fit(
        blobs_split.X_train,
        blobs_split.y_train,
        hidden=(16, 16),
        epochs=60,
        batch_norm=True,
        dropout=0.1,
    )


def test_predictions_are_in_the_users_labels(blobs_clf, blobs_split):
    predictions = blobs_clf.predict(blobs_split.X_test)
    assert predictions.dtype.kind == "U" and set(predictions) <= {
        "blob_0",
        "blob_1",
        "blob_2",
        "blob_3",
    }
    probs = blobs_clf.predict_proba(blobs_split.X_test)
    assert probs.shape == (60, 4) and np.allclose(probs.sum(1), 1, atol=1e-6)
    assert np.array_equal(blobs_clf.classes[probs.argmax(1)], predictions)  # argmax == predict
    assert blobs_clf.decision_function(blobs_split.X_test).shape == (60, 4)
    assert blobs_clf.evaluate(blobs_split.X_test, blobs_split.y_test)["accuracy"] >= 0.9


def test_save_load_predict_is_bit_identical(tmp_path, blobs_clf, blobs_split):
    path = blobs_clf.save(tmp_path / "sub" / "model.safetensors")
    loaded = torchclf.load(path)
    assert np.array_equal(
        loaded.predict_proba(blobs_split.X_test), blobs_clf.predict_proba(blobs_split.X_test)
    )
    assert np.array_equal(loaded.predict(blobs_split.X_test), blobs_clf.predict(blobs_split.X_test))
    assert loaded.model_config == blobs_clf.model_config
    assert loaded.train_config == blobs_clf.train_config
    assert loaded.training_summary["epochs"] == 60
    assert [p.name for p in path.parent.iterdir()] == ["model.safetensors"]  # no temporary left


def test_init_is_saved_with_the_model_and_older_files_read_as_torch(tmp_path, blobs_split):
    X, y = blobs_split.X_train, blobs_split.y_train
    xavier = torchclf.fit(X, y, hidden=(8,), epochs=5, init="xavier", seed=0)
    default = torchclf.fit(X, y, hidden=(8,), epochs=5, seed=0)
    assert not np.array_equal(xavier.predict_proba(X), default.predict_proba(X))
    loaded = torchclf.load(xavier.save(tmp_path / "model.safetensors"))
    assert loaded.model_config.init == "xavier"
    written_before_init = {k: v for k, v in default.model_config.to_dict().items() if k != "init"}
    assert torchclf.ModelConfig.from_dict(written_before_init) == default.model_config


@pytest.mark.parametrize(
    ("y", "task"),
    [
        pytest.param([True, False] * 20, "binary", id="bool-binary"),
        pytest.param(["no", "yes"] * 20, "binary", id="str-binary"),
        pytest.param(np.array([[1, 0, 1], [0, 1, 1]] * 20), "multilabel", id="multilabel"),
    ],
)
def test_every_task_round_trips(tmp_path, y, task):
    X = np.random.default_rng(0).normal(size=(40, 3))
    clf = torchclf.fit(X, y, hidden=(4,), epochs=5, threshold=0.4)
    loaded = torchclf.load(clf.save(tmp_path / "m.safetensors"))
    assert loaded.task.name == task and loaded.task.to_dict() == clf.task.to_dict()
    assert np.array_equal(loaded.predict(X), clf.predict(X))
    assert loaded.predict(X).dtype == clf.predict(X).dtype


def test_feature_names_travel_and_columns_are_matched_by_name(tmp_path):
    frame = pd.DataFrame({"a": np.arange(40.0), "b": np.sin(np.arange(40.0))})
    clf = torchclf.fit(frame, np.arange(40) % 2, hidden=(4,), epochs=5)
    loaded = torchclf.load(clf.save(tmp_path / "m.safetensors"))
    assert loaded.feature_names == ["a", "b"]
    assert np.array_equal(loaded.predict_proba(frame[["b", "a"]]), clf.predict_proba(frame))
    with pytest.warns(
        TorchclfWarning, match=re.escape("ignoring 1 columns the model does not use: ['extra']")
    ):
        assert np.array_equal(loaded.predict(frame.assign(extra=1.0)), clf.predict(frame))
    with pytest.raises(
        DataError,
        match=re.escape(
            "the data lacks the feature columns ['b'] that the model was trained on (it has ['a', 'c'])"
        ),
    ):
        loaded.predict(frame.rename(columns={"b": "c"}))


def test_feature_names_can_be_given_for_arrays(tmp_path):
    X = np.random.default_rng(0).normal(size=(30, 2))
    clf = torchclf.fit(X, np.arange(30) % 2, hidden=(4,), epochs=2, feature_names=["age", "bmi"])
    assert torchclf.load(clf.save(tmp_path / "m.safetensors")).feature_names == ["age", "bmi"]
    with pytest.raises(
        DataError,
        match=re.escape("feature_names has 1 names but X has 2 columns; give one name per column"),
    ):
        torchclf.fit(X, np.arange(30) % 2, feature_names=["age"])


def test_wrong_feature_count_and_unknown_labels(blobs_clf):
    with pytest.raises(
        DataError, match=re.escape("X has 3 features, but the classifier was trained on 2")
    ):
        blobs_clf.predict(np.zeros((2, 3)))
    with pytest.raises(
        DataError, match=re.escape("y holds labels ['blob_9'] that the classifier does not know")
    ):
        blobs_clf.evaluate(np.zeros((1, 2)), ["blob_9"])


def test_foreign_safetensors_file(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(2)}, path, metadata={"format": "pt"})
    message = f"'{path}' is a safetensors file but not a torchclf model: its metadata has no 'torchclf' entry"
    with pytest.raises(ModelFileError, match=re.escape(message)):
        torchclf.load(path)


def test_truncated_and_garbage_files(tmp_path, blobs_clf):
    good = blobs_clf.save(tmp_path / "good.safetensors").read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good[: len(good) - 50])
    with pytest.raises(
        ModelFileError,
        match=re.escape(
            f"'{truncated}' is not a readable safetensors file, so not a torchclf model (it may be truncated or corrupt)"
        ),
    ):
        torchclf.load(truncated)
    garbage = tmp_path / "notes.txt"
    garbage.write_text("hello, I am not a model")
    with pytest.raises(ModelFileError, match="is not a readable safetensors file"):
        torchclf.load(garbage)
    with pytest.raises(
        ModelFileError,
        match=re.escape(f"model file '{tmp_path / 'missing.safetensors'}' does not exist"),
    ):
        torchclf.load(tmp_path / "missing.safetensors")


def _rewrite_metadata(source, target, change):
    from safetensors import safe_open

    with safe_open(str(source), "pt") as handle:
        meta = json.loads(handle.metadata()["torchclf"])
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    change(meta, tensors)
    save_file(tensors, target, metadata={"torchclf": json.dumps(meta)})


def test_newer_format_version_is_refused(tmp_path, blobs_clf):
    source = blobs_clf.save(tmp_path / "m.safetensors")
    newer = tmp_path / "newer.safetensors"
    _rewrite_metadata(source, newer, lambda meta, _: meta.update(format_version=FORMAT_VERSION + 1))
    message = (
        f"'{newer}' was written by a newer torchclf (format version {FORMAT_VERSION + 1}; this "
        f"torchclf reads up to {FORMAT_VERSION}): upgrade with 'pip install -U torchclf'"
    )
    with pytest.raises(ModelFileError, match=re.escape(message)):
        torchclf.load(newer)


def test_tensors_must_match_the_architecture(tmp_path, blobs_clf):
    source = blobs_clf.save(tmp_path / "m.safetensors")
    broken = tmp_path / "broken.safetensors"
    _rewrite_metadata(source, broken, lambda _, tensors: tensors.pop("model.layers.0.weight"))
    with pytest.raises(
        ModelFileError,
        match=re.escape(
            "does not match its own architecture: missing tensors ['layers.0.weight'], unexpected tensors []"
        ),
    ):
        torchclf.load(broken)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # unpickling would create the marker file


def test_loading_never_executes_code_from_a_file(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.safetensors"
    evil.write_bytes(pickle.dumps(_Payload(str(marker))))
    with pytest.raises(ModelFileError):
        torchclf.load(evil)
    torch_pickle = tmp_path / "evil.pt"
    torch.save({"x": _Payload(str(marker))}, torch_pickle)
    with pytest.raises(ModelFileError):
        torchclf.load(torch_pickle)
    assert not marker.exists()


def _fit_moons_weights():
    split_data = datasets.load("moons", n_samples=200)
    clf = torchclf.fit(
        split_data.X, split_data.y, hidden=(8, 8), epochs=30, batch_size=32, dropout=0.2, seed=7
    )
    return torch.cat([p.detach().reshape(-1) for p in clf.model.parameters()])


def test_same_seed_same_model_in_one_process():
    assert torch.equal(_fit_moons_weights(), _fit_moons_weights())


def test_same_seed_same_model_across_processes(tmp_path):
    script = textwrap.dedent(
        """
        import sys, torch
        torch.set_num_threads(1)
        sys.path.insert(0, sys.argv[1])
        from test_classifier import _fit_moons_weights
        torch.save(_fit_moons_weights(), sys.argv[2])
        """
    )
    out = tmp_path / "weights.pt"
    tests_dir = str(__import__("pathlib").Path(__file__).parent)
    subprocess.run(
        [sys.executable, "-c", script, tests_dir, str(out)],
        check=True,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )
    assert torch.equal(torch.load(out), _fit_moons_weights())


def test_different_seeds_give_different_models():
    data = datasets.load("moons", n_samples=100)
    a = torchclf.fit(data.X, data.y, hidden=(4,), epochs=2, seed=1)
    b = torchclf.fit(data.X, data.y, hidden=(4,), epochs=2, seed=2)
    assert not torch.equal(next(a.model.parameters()), next(b.model.parameters()))


def test_repr_summarises_the_classifier(blobs_clf):
    # (2*16 + 16) + (16*16 + 16) + (16*4 + 4) weights and biases + 2 * (16 + 16) batch-norm scales
    assert repr(blobs_clf) == (
        "Classifier(task='multiclass', classes=['blob_0', 'blob_1', 'blob_2', 'blob_3'], "
        "features=2, hidden=16-16, activation='relu', parameters=452)"
    )


def _rewritten(tmp_path, classifier, change_config=None, change_tensors=None):
    """The classifier's model file with its config or tensors changed: a crafted file."""
    from torchclf.checkpoint import read_model_file, write_model_file

    tensors, document = read_model_file(classifier.save(tmp_path / "good.safetensors"))
    metadata = {k: v for k, v in document.items() if not k.startswith("format")}
    if change_config is not None:
        metadata["model_config"] = {**metadata["model_config"], **change_config}
    if change_tensors is not None:
        tensors = change_tensors(tensors)
    return write_model_file(tmp_path / "crafted.safetensors", tensors, metadata)


def test_a_file_whose_config_declares_a_huge_network_is_refused_before_building_it(
    tmp_path, blobs_clf
):
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # 10^6 x 10^6 weights would be 4 TB: refused from the shapes alone, nothing allocated
    huge = _rewritten(tmp_path, blobs_clf, change_config={"hidden": [10**6, 10**6]})
    with pytest.raises(ModelFileError, match="holds tensors whose shapes its own config does not"):
        torchclf.load(huge)
    codes = _rewritten(tmp_path, blobs_clf, change_config={"category_counts": [10**9]})
    with pytest.raises(ModelFileError, match="missing tensors"):
        torchclf.load(codes)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB
    name = next(k for k in blobs_clf.model.state_dict() if k.endswith("weight"))

    def transposed(tensors):
        return {**tensors, f"model.{name}": tensors[f"model.{name}"].T.contiguous()}

    wrong = _rewritten(tmp_path, blobs_clf, change_tensors=transposed)
    shape = tuple(blobs_clf.model.state_dict()[name].shape)
    with pytest.raises(ModelFileError, match=re.escape(f"{name} {shape[::-1]}, not {shape}")):
        torchclf.load(wrong)


def test_whatever_bytes_a_model_file_holds_loading_raises_a_torchclf_error_or_loads(
    tmp_path, blobs_clf
):
    import random

    good = blobs_clf.save(tmp_path / "good.safetensors").read_bytes()
    header = int.from_bytes(good[:8], "little") + 8  # the JSON header: shapes, offsets, config
    rng = random.Random(0)
    path = tmp_path / "flipped.safetensors"
    outcomes = set()
    for _ in range(150):
        data = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(header)] = rng.randrange(256)
        path.write_bytes(bytes(data))
        try:
            torchclf.load(path)
            outcomes.add("loaded")
        except torchclf.TorchclfError:
            outcomes.add("refused")
    assert "refused" in outcomes  # and nothing else escaped: no crash, no other exception
