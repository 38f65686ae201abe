"""The MLP classifier: features in, logits out.

The model knows nothing of losses, data or the loop (``docs/architecture.md``): ``forward(x)``
returns raw logits and the task decides what they mean. ``forward`` keeps no Python-side state,
so ``torch.func.functional_call`` / ``vmap`` can run stacked copies of it.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from torchclf.config import ModelConfig
from torchclf.errors import ConfigError
from torchclf.nn.activations import LEAKY_SLOPE, in_place_activation, make_activation
from torchclf.nn.losses import LINKS, mean_probability_logits


class CategoryEmbeddings(nn.Module):
    """The last ``len(counts)`` features are category codes; each looks up a learned vector.

    A column of ``C`` categories costs a ``(C, dim)`` table instead of ``C`` one-hot inputs, so
    high-cardinality columns keep their categories (RealMLP and TabM's embeddings of categories).
    The vectors start as ``nn.Embedding``'s, ``N(0, 1)``: the scale of a standardized feature.
    """

    def __init__(self, counts: tuple[int, ...], dim: int) -> None:
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(count, dim) for count in counts)

    def forward(self, x: Tensor) -> Tensor:
        """``(batch, plain + codes)`` -> ``(batch, plain + codes * dim)``: the codes' vectors."""
        plain = x.shape[1] - len(self.tables)
        codes = x[:, plain:].long()  # (batch, codes): whole numbers written as floats
        vectors = [table(codes[:, index]) for index, table in enumerate(self.tables)]
        return torch.cat([x[:, :plain], *vectors], dim=1)


class MLP(nn.Module):
    """A multi-layer perceptron built from a :class:`ModelConfig`.

    Each hidden block is ``Linear -> [BatchNorm1d] -> activation -> [Dropout]``, followed by one
    output ``Linear``. With ``hidden=()`` it is a single ``Linear``: the linear baseline.
    With ``config.category_counts``, :class:`CategoryEmbeddings` comes first (its tables are
    created, and drawn, before the layers).
    Layers are created input side first, so under ``torch.manual_seed(s)`` the initial weights are
    exactly those of the same ``nn.Linear`` stack written by hand. ``config.init`` "xavier" or
    "kaiming" then draws every Linear layer's weights again (see :func:`initialize_`).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings: CategoryEmbeddings | None = None
        if config.category_counts:
            self.embeddings = CategoryEmbeddings(config.category_counts, config.embedding_dim)
        layers: list[nn.Module] = []
        width = config.network_inputs
        for size in config.hidden:
            layers.append(nn.Linear(width, size))
            if config.batch_norm:
                layers.append(nn.BatchNorm1d(size))
            layers.append(make_activation(config.activation, config.activation_impl))
            if config.dropout > 0:
                layers.append(nn.Dropout(config.dropout))
            width = size
        layers.append(nn.Linear(width, config.out_features))
        self.layers = nn.Sequential(*layers)
        if config.init != "torch":
            initialize_(self, config.init)

    def forward(self, x: Tensor) -> Tensor:
        """Map features ``(batch, in_features)`` to logits ``(batch, out_features)``."""
        return self.tempered(self.layers(self.first_layer_inputs(x)))

    def first_layer_inputs(self, x: Tensor) -> Tensor:
        """Features ``(batch, in_features)`` as the first layer takes them ``(batch, inputs)``.

        The codes' vectors take the codes' place (``config.network_inputs`` columns).
        """
        return x if self.embeddings is None else self.embeddings(x)

    @property
    def first_layer(self) -> nn.Linear:
        """The first Linear layer (the output layer of the linear baseline)."""
        layer = self.layers[0]
        assert isinstance(layer, nn.Linear)  # every block begins with one
        return layer

    def after_first_layer(self, h: Tensor) -> Tensor:
        """The logits from the first Linear layer's output ``h`` ``(batch, width)``."""
        return self.tempered(self.layers[1:](h))

    def tempered(self, logits: Tensor) -> Tensor:
        """Logits divided by the calibrated temperature (see ``training.calibration``)."""
        return logits if self.config.temperature == 1.0 else logits / self.config.temperature

    def first_layer_columns(self, features: Sequence[int]) -> list[int]:
        """The first layer's inputs that the features ``features`` become (a code: its vector)."""
        plain = self.config.in_features - len(self.config.category_counts)
        dim = self.config.embedding_dim
        columns: list[int] = []
        for feature in features:
            if feature < plain:
                columns.append(feature)
            else:
                start = plain + (feature - plain) * dim
                columns.extend(range(start, start + dim))
        return columns


class Ensemble(nn.Module):
    """``config.ensemble`` MLPs of one architecture whose probabilities are averaged.

    ``forward`` returns logits like an MLP's, whose probabilities (through ``link``, the task's)
    are the mean of the members' (see :func:`~torchclf.nn.losses.mean_probability_logits`), so
    everything that reads logits (``predict_proba``, thresholds, pictures) sees one model.
    Training reads each member's own logits (:meth:`member_logits`): each member learns on its
    own, as if trained alone, and the ensemble is judged (and stopped) as a whole.

    A blend (``config.linear_weight`` w > 0, see :mod:`torchclf.training.blend`) has
    ``config.ensemble`` linear members after the networks: each network weighs ``(1 - w) / K``
    in the mean, each linear member ``w / K``.
    """

    def __init__(self, members: list[MLP], link: str, config: ModelConfig) -> None:
        super().__init__()
        if link not in LINKS:
            raise ConfigError(f"An ensemble's link must be one of {LINKS}; got {link!r}")
        networks, weight = config.ensemble, config.linear_weight
        if len(members) != networks * (2 if weight > 0 else 1):
            raise ConfigError(
                f"An ensemble of {networks} networks (linear weight {weight}) needs "
                f"{networks * (2 if weight > 0 else 1)} members; got {len(members)}"
            )
        self.members = nn.ModuleList(members)
        self.link = link
        self.config = config  # the networks' architecture; config.ensemble counts them
        # (M,): each member's weight in the mean; None is the plain mean (kept exact). A buffer,
        # so it moves with the model's device; not persistent: linear_weight is in the config
        shares = None
        if weight > 0:
            shares = [(1 - weight) / networks] * networks + [weight / networks] * networks
        self.member_weights: Tensor | None
        self.register_buffer(
            "member_weights",
            None if shares is None else torch.tensor(shares, dtype=torch.float64),
            persistent=False,
        )

    def member_logits(self, x: Tensor) -> Tensor:
        """Each member's logits ``(M, batch, out_features)``."""
        return torch.stack([member(x) for member in self.members])

    def combine(self, member_logits: Tensor) -> Tensor:
        """Members' logits ``(M, batch, out)`` -> the ensemble's ``(batch, out)``."""
        return mean_probability_logits(
            member_logits, self.link, class_dim=-1, weights=self.member_weights
        )

    def forward(self, x: Tensor) -> Tensor:
        """Map features ``(batch, in_features)`` to the ensemble's logits ``(batch, out)``."""
        return self.combine(self.member_logits(x))


def members_of(model: nn.Module) -> list[MLP]:
    """The networks a model is made of: an ensemble's members, or the model itself."""
    members = list(model.members) if isinstance(model, Ensemble) else [model]
    return members  # type: ignore[return-value]  # MLPs, or modules used as one


def architecture(model: nn.Module) -> str:
    """The layers' ``repr``, how many members share them, and a blend's linear members."""
    members = members_of(model)
    layers = repr(members[0].layers)
    if not isinstance(model, Ensemble):
        return layers
    networks = model.config.ensemble
    text = f"{networks} x {layers}"
    if model.config.linear_weight > 0:  # a blend: the linear members follow the networks
        weight = model.config.linear_weight
        text += f"\n+ {networks} x {members[-1].layers!r}, weight {weight:.2f}"
    return text


def linear_config(config: ModelConfig) -> ModelConfig:
    """The architecture of one linear member of a blend: one Linear on the same inputs.

    Category codes are inputs like any other to it (the blend fits them a weight of 0).
    """
    return dataclasses.replace(
        config,
        hidden=(),
        dropout=0.0,
        batch_norm=False,
        ensemble=1,
        linear_weight=0.0,
        category_counts=(),
    )


# nn.init's gain name for each activation; gelu takes relu's, as is usual
_KAIMING_GAIN = {
    "relu": "relu",
    "leaky_relu": "leaky_relu",
    "gelu": "relu",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
    "identity": "linear",
}


def initialize_(model: MLP, init: str) -> None:
    """Draw the Linear layers' weights again with ``init``, input side first; zero the biases.

    "xavier" is Glorot uniform, ``U(+-sqrt(6 / (fan_in + fan_out)))``: the scheme of
    scikit-learn's MLPClassifier, which lets wide ReLU nets learn faster in their first epochs
    than nn.Linear's ``U(+-1 / sqrt(fan_in))``. "kaiming" is He uniform with the gain of the
    layer's activation (linear for the output layer).
    """
    activation = model.config.activation
    nonlinearity = _KAIMING_GAIN[activation]
    linears = [module for module in model.layers if isinstance(module, nn.Linear)]
    with torch.no_grad():
        for index, linear in enumerate(linears):
            if init == "xavier":
                nn.init.xavier_uniform_(linear.weight)
            else:
                hidden = index < len(linears) - 1
                nn.init.kaiming_uniform_(
                    linear.weight,
                    a=LEAKY_SLOPE if activation == "leaky_relu" else 0.0,
                    nonlinearity=nonlinearity if hidden else "linear",  # type: ignore[arg-type]
                )
            linear.bias.zero_()


def build_model(config: ModelConfig, seed: int, link: str | None = None) -> MLP | Ensemble:
    """Build a model whose initial weights depend only on ``config`` and ``seed``.

    The global RNG is seeded inside a fork, so the caller's random state is left untouched, and
    the weights are created on the CPU so that they are the same whatever device trains them.
    An ensemble's member ``i`` starts as the single MLP of seed ``seed + i`` would (so member 0
    is the model ``ensemble=1`` gives); its ``link`` is the task's.
    """
    if config.ensemble == 1 and config.linear_weight == 0:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return MLP(config)
    networks = config.ensemble
    member = dataclasses.replace(config, ensemble=1, linear_weight=0.0)
    members = [build_model(member, seed + index) for index in range(networks)]
    if config.linear_weight > 0:  # a blend's linear members start from seeds after the networks'
        linear = linear_config(config)
        members += [build_model(linear, seed + networks + index) for index in range(networks)]
    return Ensemble(members, _link(link), config)  # type: ignore[arg-type]


def empty_model(config: ModelConfig, link: str | None = None) -> MLP | Ensemble:
    """A model of ``config``'s architecture, to load saved weights into."""
    if config.ensemble == 1 and config.linear_weight == 0:
        return MLP(config)
    member = dataclasses.replace(config, ensemble=1, linear_weight=0.0)
    members = [MLP(member) for _ in range(config.ensemble)]
    if config.linear_weight > 0:
        members += [MLP(linear_config(config)) for _ in range(config.ensemble)]
    return Ensemble(members, _link(link), config)


def _link(link: str | None) -> str:
    if link is None:
        raise ConfigError("An ensemble needs its task's link ('sigmoid' or 'softmax')")
    return link


PREDICT_CACHE_BYTES = 512 * 1024  # about a core's L2 cache: one batch's widest activations
PREDICT_ROWS_CPU = (256, 8192)  # fewest rows (per-batch overheads), most (little left to gain)
PREDICT_ROWS_OTHER = 2048  # on a GPU: not yet measured against other sizes


def predict_batch_rows(config: ModelConfig, device: torch.device, dtype: torch.dtype) -> int:
    """Rows per forward pass at prediction time on ``device``.

    On the CPU, as many rows as keep the widest layer's activations ``(rows, width)`` within
    :data:`PREDICT_CACHE_BYTES`, so that each layer reads its input from the cache: for 256-wide
    layers that is 512 rows, measured 1.1-1.2x faster than 2048 rows (whose activations spill to
    the shared cache); 64-wide layers get 2048 rows and 16-wide ones 8192, each near the fastest
    size measured. Only the speed depends on it: each row is computed on its own.
    """
    if device.type != "cpu":
        return PREDICT_ROWS_OTHER
    width = max(config.in_features, *config.hidden, config.out_features)
    rows = PREDICT_CACHE_BYTES // (width * dtype.itemsize)
    low, high = PREDICT_ROWS_CPU
    return min(max(rows, low), high)


@torch.inference_mode()
def predict_logits(
    model: MLP | Ensemble,
    features: np.ndarray,
    device: torch.device,
    batch_rows: int,
    *,
    standardize: tuple[np.ndarray, np.ndarray] | None = None,
    finish: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """Logits ``(n, out_features)`` for ``features``, ``batch_rows`` rows at a time.

    Batches small enough for their activations to stay in cache; each layer of the usual MLP
    (no batch norm) is one ``addmm`` into a reused buffer with the activation applied in place.
    Batch norm and from-scratch activations run the module's own forward instead. No autograd,
    no per-batch synchronisation. An ensemble runs each member on the batch, then combines
    their logits ``(K, b, out_features)`` (:meth:`Ensemble.combine`).

    Work on whole arrays is done batch by batch too, while the batch is in cache:
    ``standardize`` ``(mean, scale)``, each ``(in_features,)``, standardizes the raw ``features``
    on the way in (the caller's array is left as it is), and ``finish`` maps each batch's logits
    ``(b, out_features)`` to what is returned instead, such as probabilities ``(b, C)``.
    """
    model.eval()
    dtype = next(model.parameters()).dtype
    config = model.config
    out_features = config.out_features
    width = out_features if finish is None else finish(torch.zeros(1, out_features)).shape[1]
    result = torch.empty(len(features), width, dtype=dtype, device=device)
    members = members_of(model)
    linears = [[m for m in member.layers if isinstance(m, nn.Linear)] for member in members]
    buffers = [
        torch.empty(batch_rows, m.out_features, dtype=dtype, device=device) for m in linears[0]
    ]
    # (K, rows, out): each member's logits of the batch, for an ensemble to combine
    member_out = torch.empty(len(members), batch_rows, out_features, dtype=dtype, device=device)
    inputs = None
    if standardize is not None:
        mean, scale = (torch.from_numpy(values).to(device, dtype) for values in standardize)
        inputs = torch.empty(batch_rows, len(mean), dtype=dtype, device=device)
    with warnings.catch_warnings():
        # Only read: a read-only array (pandas 3's copy-on-write frames give them) needs no copy.
        warnings.filterwarnings("ignore", "The given NumPy array is not writable", UserWarning)
        rows_in = torch.from_numpy(features)
    own_forward = uses_own_forward(config)
    activate = in_place_activation(config.activation)  # looked up once, not per layer
    copy_ahead = device.type == "cuda"
    if copy_ahead:  # page-locked rows copy to the GPU asynchronously, overlapping the compute
        rows_in = rows_in.pin_memory()
    for start in range(0, len(features), batch_rows):
        batch = rows_in[start : start + batch_rows].to(device, non_blocking=copy_ahead)
        rows = len(batch)
        if inputs is not None:
            batch = torch.sub(batch, mean, out=inputs[:rows]).div_(scale)
        # one model's logits go straight into the result, unless finish has them first
        if isinstance(model, Ensemble):
            outputs = [member_out[index, :rows] for index in range(len(members))]
        else:
            outputs = [result[start : start + rows] if finish is None else buffers[-1][:rows]]
        for member, member_linears, logits in zip(members, linears, outputs, strict=True):
            if own_forward:
                logits.copy_(member(batch))
                continue
            run_linears(member_linears, batch, buffers, activate, logits)
            if config.temperature != 1.0:
                logits.div_(config.temperature)
        logits = outputs[0]
        if isinstance(model, Ensemble):
            logits = model.combine(member_out[:, :rows])
            if finish is None:
                result[start : start + rows] = logits
        if finish is not None:
            result[start : start + rows] = finish(logits)
    return result


def uses_own_forward(config: ModelConfig) -> bool:
    """Whether prediction runs the module's forward rather than :func:`run_linears`.

    Batch norm, from-scratch activations and category vectors need the module's own.
    """
    return config.batch_norm or config.activation_impl != "torch" or bool(config.category_counts)


def run_linears(
    linears: Sequence[nn.Linear],
    h: Tensor,
    buffers: Sequence[Tensor],
    activate: Callable[[Tensor], Tensor],
    out: Tensor,
) -> Tensor:
    """``h`` ``(rows, in)`` through ``linears`` with ``activate`` between them, into ``out``.

    Each hidden layer is one ``addmm`` into its reused buffer (``buffers[layer]``, at least
    ``rows`` long) with the activation in place; the last into ``out`` ``(rows, out)``.
    """
    rows = len(h)
    for layer, linear in enumerate(linears[:-1]):
        h = activate(torch.addmm(linear.bias, h, linear.weight.T, out=buffers[layer][:rows]))
    return torch.addmm(linears[-1].bias, h, linears[-1].weight.T, out=out)


def count_parameters(model: nn.Module) -> int:
    """The number of trainable scalars in ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


__all__ = [
    "MLP",
    "Ensemble",
    "architecture",
    "build_model",
    "count_parameters",
    "empty_model",
    "initialize_",
    "linear_config",
    "members_of",
    "predict_batch_rows",
    "predict_logits",
    "run_linears",
    "uses_own_forward",
]
