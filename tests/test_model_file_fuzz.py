"""Model files that cannot hurt: whatever a .safetensors file holds, loading it gives a model
that predicts, or a torchclf error. Never a crash, a hang, a huge allocation or another exception.

Hypothesis mutates a real model file (a table with numeric, categorical and learned-vector
columns, an ensemble, a temperature): its header bytes, its metadata JSON (values of every type,
huge and negative numbers, missing keys, other versions), its tensors' shapes and types, and the
tensor data (cut short, extended).
"""

import json
import struct
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save

import torchclf

FUZZ = settings(
    max_examples=int(__import__("os").environ.get("FUZZ_EXAMPLES", "600")),
    deadline=None,  # a load builds a model: its first call is slower than the rest
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,  # the same cases on every run
)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    rows = 240
    X = pd.DataFrame(
        {
            "age": rng.normal(50, 10, rows),
            "dose": np.where(rng.random(rows) < 0.1, np.nan, rng.gamma(2, 2, rows)),
            "city": rng.choice(["a", "b", "c"], rows),
            "shop": [f"s{i}" for i in rng.integers(0, 60, rows)],
        }
    )
    y = np.where(X.age + 5 * (X.city == "a") > 52, "sick", "well")
    classifier = torchclf.fit(X, y, ensemble=2, epochs=5, categorical_embedding="learned")
    path = classifier.save(tmp_path_factory.mktemp("model") / "model.safetensors")
    return path.read_bytes(), X.head(3)


def _header(data: bytes) -> tuple[dict, bytes]:
    """The safetensors JSON header and the tensor bytes after it."""
    size = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8 : 8 + size]), data[8 + size :]


def _file(header: dict, body: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + body


def _loads_or_refuses(path: Path, rows: pd.DataFrame) -> str:
    """Load the file: a model must then predict (or refuse the rows) with a torchclf error."""
    try:
        classifier = torchclf.load(path)
    except torchclf.TorchclfError:
        return "refused"
    try:
        with warnings.catch_warnings():  # a mutated category list makes the rows' unseen
            warnings.simplefilter("ignore", torchclf.TorchclfWarning)
            probabilities = classifier.predict_proba(rows)
        assert probabilities.shape[0] == len(rows)
    except torchclf.TorchclfError:
        return "refused at predict"
    return "loaded"


@given(
    changes=st.lists(
        st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=12
    )
)
@FUZZ
def test_mutated_header_bytes(model_file, tmp_path, changes):
    data, rows = model_file
    header_end = 8 + struct.unpack("<Q", data[:8])[0]
    mutated = bytearray(data)
    for where, value in changes:
        mutated[int(where * header_end)] = value
    path = tmp_path / "m.safetensors"
    path.write_bytes(bytes(mutated))
    _loads_or_refuses(path, rows)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.sampled_from([0, -1, 10**9, 10**18, 2**63])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)


def _paths(value, prefix=()):
    """Every place in a JSON document: a key of a dict or an index of a list."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*prefix, key)
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*prefix, index)
            yield from _paths(item, (*prefix, index))


@given(data=st.data())
@FUZZ
def test_mutated_metadata_json(model_file, tmp_path, data):
    raw, rows = model_file
    header, body = _header(raw)
    document = json.loads(header["__metadata__"]["torchclf"])
    places = sorted(_paths(document), key=repr)
    for _ in range(data.draw(st.integers(1, 3))):
        place = data.draw(st.sampled_from(places))
        parent = document
        try:
            for step in place[:-1]:
                parent = parent[step]
            if data.draw(st.booleans()) and isinstance(parent, dict):
                parent.pop(place[-1], None)  # a missing key
            else:
                parent[place[-1]] = data.draw(JSON_VALUES)  # a value of any type or size
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change removed the place
    header["__metadata__"]["torchclf"] = json.dumps(document)
    path = tmp_path / "m.safetensors"
    path.write_bytes(_file(header, body))
    _loads_or_refuses(path, rows)


@given(data=st.data())
@FUZZ
def test_tensors_of_other_shapes_and_types(model_file, tmp_path, data):
    raw, rows = model_file
    header, _ = _header(raw)
    from safetensors.torch import load

    tensors = load(raw)
    for _ in range(data.draw(st.integers(1, 3))):
        name = data.draw(st.sampled_from(sorted(tensors)))
        dtype = data.draw(
            st.sampled_from(
                [torch.float32, torch.float64, torch.float16, torch.int64, torch.bool, torch.uint8]
            )
        )
        shape = data.draw(st.lists(st.integers(0, 6), max_size=3))
        if data.draw(st.booleans()):
            tensors.pop(name)
        else:
            tensors[name] = torch.zeros(shape, dtype=dtype)
    path = tmp_path / "m.safetensors"
    path.write_bytes(save(tensors, metadata=header["__metadata__"]))
    _loads_or_refuses(path, rows)


@given(cut=st.floats(0, 1), extra=st.binary(max_size=64), offsets=st.integers(-(2**40), 2**40))
@FUZZ
def test_tensor_data_cut_short_extended_or_misplaced(model_file, tmp_path, cut, extra, offsets):
    raw, rows = model_file
    path = tmp_path / "m.safetensors"
    header_end = 8 + struct.unpack("<Q", raw[:8])[0]
    path.write_bytes(raw[: header_end + int(cut * (len(raw) - header_end))])
    _loads_or_refuses(path, rows)
    path.write_bytes(raw + extra)
    _loads_or_refuses(path, rows)
    header, body = _header(raw)
    name = sorted(k for k in header if k != "__metadata__")[abs(offsets) % (len(header) - 1)]
    start, stop = header[name]["data_offsets"]
    header[name]["data_offsets"] = [start + offsets % 7, stop + offsets]  # anywhere, any size
    path.write_bytes(_file(header, body))
    _loads_or_refuses(path, rows)


def test_the_unchanged_file_loads(model_file, tmp_path):
    path = tmp_path / "m.safetensors"
    path.write_bytes(model_file[0])
    assert _loads_or_refuses(path, model_file[1]) == "loaded"
