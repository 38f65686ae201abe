"""ONNX export: the model file's preprocessing, network, link and decision as one ONNX graph.

The graph's inputs are the raw columns. A table's columns come one by one, each ``(batch, 1)``
and named as the model file names them: numbers as float32 (NaN where a value is missing),
categories as strings, written as torchclf writes them (3, 3.0 and "3" are all "3"; a missing
value is ``"__missing__"``). A model fitted on an array takes one input, ``features``
``(batch, d)`` float32. The outputs are ``probabilities`` ``(batch, classes)`` (one column per
label for multilabel) and ``label``: each row's class name, or for multilabel ``(batch, labels)``
0/1.

The numeric preprocessing (imputation, scaling and smooth clipping, missing-value indicators,
piecewise-linear bins), one-hot slots and category codes, the network (an ensemble's averaging
and the temperature included), the link and the decision are one torch module,
:class:`RawToDecision`, exported by ``torch.onnx.export(..., dynamo=True)`` with a dynamic batch
dimension. Strings become each category's slot through ONNX-ML ``LabelEncoder`` nodes put in
front of it (an unseen category: the "other" slot, as in torchclf), and the decision's index its
class name through one behind it. Class and feature names go into the model's metadata.

Nothing is written unchecked: ONNX Runtime runs the graph on rows of the encoder's own and on
random ones, and a graph whose probabilities differ from torchclf's by more than
:data:`TOLERANCE`, or whose labels differ, is refused with the difference, never saved.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from torchclf.encoders import ArrayEncoder, Encoder, TableEncoder
from torchclf.encoders.base import select_columns
from torchclf.encoders.tables import (
    CategoricalColumn,
    NumericColumn,
    _as_numbers,
    _category_strings,
)
from torchclf.errors import ConfigError, TorchclfError, TorchclfWarning
from torchclf.files import atomic_file
from torchclf.tasks import Task
from torchclf.version import __version__

ONNX_ML = "ai.onnx.ml"  # the domain of LabelEncoder
TOLERANCE = 1e-5  # the largest difference of a probability from torchclf's that an export keeps
FEATURES = "features"  # the one input of a model fitted on an array
RUN_ROWS = 65_536  # rows per ONNX Runtime call when predicting: bounded memory


class ExportError(TorchclfError, ValueError):
    """A model ONNX cannot express yet, or an export that would not predict as torchclf does."""


def _needs(package: str) -> Any:
    try:
        return __import__(package)
    except ImportError as error:
        raise ConfigError(
            f"ONNX export and the ONNX engine need the package '{package}': "
            "pip install 'torchclf[onnx]'"
        ) from error


class RawToDecision(nn.Module):
    """Raw numeric columns and category slots to probabilities and decisions, in torch ops.

    ``forward`` takes one tensor per input, in the encoder's column order: a numeric column's
    values ``(n, 1)`` (NaN: missing), a categorical column's slots ``(n, 1)`` int64; or, for an
    array's encoder, the features ``(n, d)``. It returns the probabilities ``(n, K)`` and the
    decisions: class indices ``(n,)``, or ``(n, L)`` 0/1 for multilabel.
    """

    def __init__(self, model: nn.Module, task: Task, encoder: Encoder) -> None:
        super().__init__()
        self.model, self.task, self.encoder = model.eval(), task, encoder
        self.dtype = next(model.parameters()).dtype

    def forward(self, *inputs: Tensor) -> tuple[Tensor, Tensor]:
        features = self._encoded(inputs)  # (n, the network's inputs)
        logits = self.model(features)
        probabilities = self.task.probabilities(logits)
        return probabilities, self.task.decide(probabilities)

    def _encoded(self, inputs: Sequence[Tensor]) -> Tensor:
        encoder, dtype = self.encoder, self.dtype
        if isinstance(encoder, ArrayEncoder):
            raw = inputs[0].to(dtype)  # (n, d)
            scaled = (raw - torch.as_tensor(encoder.mean, dtype=dtype)) / torch.as_tensor(
                encoder.scale, dtype=dtype
            )
            blocks = [_clipped(scaled, encoder.clip)]
            blocks += [_piecewise(raw[:, j], e, dtype) for j, e in enumerate(encoder.edges) if e]
            return torch.cat(blocks, dim=1)
        assert isinstance(encoder, TableEncoder)  # export_onnx refused any other
        blocks, codes = [], []
        for column, values in zip(encoder.columns, inputs, strict=True):
            if isinstance(column, NumericColumn):
                blocks += _numeric(column, values.to(dtype), dtype)
            elif column.embedded:  # the slot itself, looked up by the network; codes go last
                codes.append(values.to(dtype))
            else:  # one-hot over the slots, the "other" slot last
                blocks.append((values == torch.arange(column.slots)).to(dtype))
        return torch.cat(blocks + codes, dim=1)


def _numeric(column: NumericColumn, values: Tensor, dtype: torch.dtype) -> list[Tensor]:
    """A table's numeric column ``(n, 1)`` as the encoder gives it: value, indicator, bins."""
    missing = torch.isnan(values)
    filled = torch.where(missing, torch.tensor(column.median, dtype=dtype), values)
    blocks = [_clipped((filled - column.mean) / column.scale, column.clip)]
    if column.indicator:
        blocks.append(missing.to(dtype))
    if column.edges:
        blocks.append(_piecewise(filled[:, 0], column.edges, dtype))
    return blocks


def _clipped(scaled: Tensor, bound: float) -> Tensor:
    """The encoders' smooth clip ``z / sqrt(1 + (z / bound)^2)``, or ``z`` without a bound."""
    return scaled / torch.sqrt(1 + (scaled / bound) ** 2) if bound > 0 else scaled


def _piecewise(values: Tensor, edges: Sequence[float], dtype: torch.dtype) -> Tensor:
    """``(n,)`` values as ``(n, bins)`` piecewise-linear features, as the encoders make them."""
    bounds = torch.tensor(edges, dtype=dtype)
    low, high = bounds[:-1], bounds[1:]  # (b,)
    features = (values[:, None] - low) / (high - low)  # (n, b)
    features = torch.cat([features[:, :1], features[:, 1:].clamp_min(0)], dim=1)  # open left
    return torch.cat([features[:, :-1].clamp_max(1), features[:, -1:]], dim=1)  # open right


def feature_fields(encoder: Encoder) -> list[tuple[str, str]]:
    """Each raw column's name and kind ("numeric" or "categorical"), in the model's order.

    An array's unnamed columns are x0, x1, ... as the datasets name them.
    """
    if isinstance(encoder, TableEncoder):
        return [
            (c.name, "numeric" if isinstance(c, NumericColumn) else "categorical")
            for c in encoder.columns
        ]
    names = encoder.input_names or [f"x{i}" for i in range(encoder.n_inputs)]
    return [(name, "numeric") for name in names]


def input_names(encoder: Encoder) -> list[str]:
    """The graph's inputs: a table's column names, or ``features``."""
    if isinstance(encoder, TableEncoder):
        return encoder.input_names
    return [FEATURES]


def onnx_inputs(encoder: Encoder, X: Any) -> dict[str, np.ndarray]:
    """Rows as the exported graph takes them, checked as torchclf checks them.

    Raises:
        DataError: for missing columns or values that are not numbers where numbers belong.
    """
    if isinstance(encoder, ArrayEncoder):
        return {FEATURES: np.ascontiguousarray(encoder.validate(X), dtype=np.float32)}
    assert isinstance(encoder, TableEncoder)
    frame = select_columns(X, encoder.input_names, warn=False)
    inputs = {}
    for column in encoder.columns:
        series = frame[column.name]
        if isinstance(column, NumericColumn):
            numbers = _as_numbers(series, column.name, reason="was numeric in training")
            inputs[column.name] = numbers.to_numpy(dtype=np.float32)[:, None]
        else:
            inputs[column.name] = _category_strings(series)[:, None]
    return inputs


def export_onnx(
    model: nn.Module,
    task: Task,
    encoder: Encoder,
    path: str | os.PathLike[str],
    reference: Callable[[Any], np.ndarray],
    metadata: dict[str, Any],
) -> Path:
    """Export to ``path`` (atomically) and check the graph against ``reference`` first.

    ``reference`` gives torchclf's probabilities of rows (``Classifier.predict_proba``);
    ``metadata`` goes into the ONNX model's properties as JSON, with the raw columns' names and
    kinds as ``features``.

    Raises:
        ConfigError: without the onnx extra.
        ExportError: for a model the exporter cannot express, or one it would export wrong.
    """
    onnx = _needs("onnx")
    _needs("onnxscript")
    if not isinstance(encoder, ArrayEncoder | TableEncoder):
        raise ExportError(f"a model with a {type(encoder).__name__} cannot be exported yet")
    module = RawToDecision(model, task, encoder).eval()
    sample = _check_rows(encoder)
    example = _as_module_inputs(encoder, onnx_inputs(encoder, sample))
    names = input_names(encoder)
    torch_names = [
        f"{n}.slot" if isinstance(c, CategoricalColumn) else n
        for n, c in zip(names, getattr(encoder, "columns", [None]), strict=True)
    ]
    batch = torch.export.Dim("batch", min=1)
    with torch.no_grad():  # label sets (multilabel) decide (n, L) 0/1, classes an index each
        label_sets = module(*example)[1].dim() == 2
    try:
        with _quiet_exporter():
            program = torch.onnx.export(
                module,
                tuple(example),
                dynamo=True,
                input_names=torch_names,
                output_names=["probabilities", "label" if label_sets else "label_index"],
                dynamic_shapes=(tuple({0: batch} for _ in example),),
                verbose=False,
            )
    except Exception as error:  # the exporter's own failures, of every kind
        raise ExportError(f"the ONNX exporter cannot express this model: {error}") from error
    if program is None:  # the exporter returns a program unless asked to write the file
        raise ExportError("the ONNX exporter returned no program")
    proto = program.model_proto
    _strings_in(proto, encoder)
    if not label_sets:
        _names_out(proto, list(task.class_names))
    features = [{"name": n, "kind": k} for n, k in feature_fields(encoder)]
    properties = {**metadata, "features": features}
    onnx.helper.set_model_props(proto, {key: json.dumps(v) for key, v in properties.items()})
    proto.producer_name, proto.producer_version = "torchclf", __version__
    onnx.checker.check_model(proto)
    _check_against(proto, encoder, task, sample, reference)
    path = Path(path)
    with atomic_file(path) as temporary:
        onnx.save(proto, str(temporary))
    return path


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter's notes to its own developers (deprecations, optional packages) unshown."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        logger.setLevel(level)


def _as_module_inputs(encoder: Encoder, inputs: dict[str, np.ndarray]) -> list[Tensor]:
    """The graph's inputs as the torch module takes them: slots for categories."""
    if isinstance(encoder, ArrayEncoder):
        return [torch.from_numpy(inputs[FEATURES])]
    tensors = []
    for column in encoder.columns:  # type: ignore[attr-defined]
        values = inputs[column.name]
        if isinstance(column, CategoricalColumn):
            position = {c: i for i, c in enumerate(column.categories)}
            slots = [position.get(s, len(column.categories)) for s in values[:, 0]]
            tensors.append(torch.tensor(slots, dtype=torch.int64)[:, None])
        else:
            tensors.append(torch.from_numpy(values))
    return tensors


def _strings_in(proto: Any, encoder: Encoder) -> None:
    """Put a LabelEncoder in front of each categorical column: its string, to its slot."""
    from onnx import TensorProto, helper

    if not isinstance(encoder, TableEncoder):
        return
    graph = proto.graph
    by_name = {value.name: value for value in graph.input}
    batch_dim = graph.input[0].type.tensor_type.shape.dim[0]
    inputs, nodes = [], []
    for column in encoder.columns:
        if isinstance(column, NumericColumn):
            inputs.append(by_name[column.name])
            continue
        string_input = helper.make_tensor_value_info(column.name, TensorProto.STRING, [None, 1])
        string_input.type.tensor_type.shape.dim[0].CopyFrom(batch_dim)
        inputs.append(string_input)
        nodes.append(
            helper.make_node(
                "LabelEncoder",
                [column.name],
                [f"{column.name}.slot"],
                name=f"slot of {column.name}",
                domain=ONNX_ML,
                keys_strings=list(column.categories),
                values_int64s=list(range(len(column.categories))),
                default_int64=len(column.categories),  # the "other" slot
            )
        )
    del graph.input[:]
    graph.input.extend(inputs)
    for node in reversed(nodes):
        graph.node.insert(0, node)
    _use_onnx_ml(proto)


def _names_out(proto: Any, class_names: list[str]) -> None:
    """Turn the decision's class index into its class name with a LabelEncoder."""
    from onnx import TensorProto, helper

    graph = proto.graph
    index = next(o for o in graph.output if o.name == "label_index")
    label = helper.make_tensor_value_info("label", TensorProto.STRING, [None])
    label.type.tensor_type.shape.dim[0].CopyFrom(index.type.tensor_type.shape.dim[0])
    graph.node.append(
        helper.make_node(
            "LabelEncoder",
            ["label_index"],
            ["label"],
            name="class name",
            domain=ONNX_ML,
            keys_int64s=list(range(len(class_names))),
            values_strings=[str(name) for name in class_names],
            default_string="",
        )
    )
    graph.output.remove(index)
    graph.output.append(label)
    _use_onnx_ml(proto)


def _use_onnx_ml(proto: Any) -> None:
    from onnx import helper

    if not any(opset.domain == ONNX_ML for opset in proto.opset_import):
        proto.opset_import.append(helper.make_opsetid(ONNX_ML, 2))


def _check_rows(encoder: Encoder, rows: int = 64, seed: int = 0) -> Any:
    """Rows to check an export on: the encoder's probe rows, then random ones around them."""
    import pandas as pd

    probe = encoder.probe()
    rng = np.random.default_rng(seed)
    if isinstance(encoder, ArrayEncoder):
        spread = rng.normal(size=(rows, encoder.n_inputs)) * encoder.scale + encoder.mean
        return np.vstack([probe[:1], spread]).astype(np.float32)
    assert isinstance(encoder, TableEncoder)
    columns: dict[str, Any] = {}
    for column in encoder.columns:
        if isinstance(column, NumericColumn):
            values = rng.normal(size=rows) * column.scale + column.mean
            values[rng.random(rows) < 0.1] = np.nan
            columns[column.name] = values
        else:
            choices = [*column.categories, "never seen", None]
            columns[column.name] = [choices[i] for i in rng.integers(0, len(choices), rows)]
    return pd.concat([probe, pd.DataFrame(columns)], ignore_index=True)


def _check_against(
    proto: Any, encoder: Encoder, task: Task, rows: Any, reference: Callable[[Any], np.ndarray]
) -> None:
    """Refuse the graph unless it predicts ``rows`` as torchclf does."""
    try:
        session = _session(proto.SerializeToString())
        probabilities, labels = session.run(["probabilities", "label"], onnx_inputs(encoder, rows))
    except ConfigError:
        raise
    except Exception as error:  # ONNX Runtime's own: an operator it lacks for this type, say
        raise ExportError(
            f"ONNX Runtime cannot run the exported graph, so it was not written: {error}"
        ) from error
    with warnings.catch_warnings():  # the check's own rows hold unseen categories
        warnings.simplefilter("ignore", TorchclfWarning)
        expected = reference(rows)
    difference = float(np.abs(probabilities - expected).max())
    decided = task.decide(torch.from_numpy(expected)).numpy()  # (n,) indices or (n, L) 0/1
    if decided.ndim == 1:  # class indices, which the graph names
        decided = np.asarray([str(name) for name in task.class_names], dtype=object)[decided]
    if difference > TOLERANCE or not np.array_equal(np.asarray(labels), decided):
        raise ExportError(
            f"the exported graph does not predict as torchclf does (probabilities differ by up "
            f"to {difference:.2g}), so it was not written"
        )


def _session(model: bytes | str) -> Any:
    ort = _needs("onnxruntime")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


class OnnxModel:
    """An exported graph under ONNX Runtime, with the inputs torchclf makes of rows."""

    def __init__(self, path: str | os.PathLike[str], encoder: Encoder) -> None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(
                f"ONNX file '{path}' does not exist; write it with 'torchclf export MODEL'"
            )
        try:
            self.session = _session(str(path))
        except ConfigError:
            raise
        except Exception as error:  # onnxruntime's own, for a file it cannot read
            raise ConfigError(
                f"'{path}' is not an ONNX model ONNX Runtime can run: {error}"
            ) from error
        self.encoder, self.path = encoder, path
        expected = input_names(encoder)
        found = [i.name for i in self.session.get_inputs()]
        if found != expected:
            raise ConfigError(
                f"'{path}' takes the inputs {found}, not this model's {expected}: export it from "
                "this model again"
            )

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probabilities ``(n, K)`` of ``X``'s rows, :data:`RUN_ROWS` rows per call."""
        inputs = onnx_inputs(self.encoder, X)
        n_rows = len(next(iter(inputs.values())))
        parts = [
            self.session.run(
                ["probabilities"], {k: v[start : start + RUN_ROWS] for k, v in inputs.items()}
            )[0]
            for start in range(0, n_rows, RUN_ROWS)
        ]
        return np.concatenate(parts) if parts else np.empty((0, 0), dtype=np.float32)


__all__ = [
    "FEATURES",
    "TOLERANCE",
    "ExportError",
    "OnnxModel",
    "RawToDecision",
    "export_onnx",
    "feature_fields",
    "input_names",
    "onnx_inputs",
]
