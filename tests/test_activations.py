import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from torchclf import activations as A
from torchclf.config import ModelConfig
from torchclf.nn.models import build_model

# A wide range (the issue's -1e4..1e4), a dense grid where the functions bend, and edge values.
WIDE = torch.cat(
    [
        torch.linspace(-1e4, 1e4, 20_001),
        torch.linspace(-30, 30, 60_001),
        torch.tensor([0.0, -0.0, 1e-8, -1e-8, 1e-30, 88.8, -88.8, 3e38, -3e38]),
    ]
)

PAIRS = [
    pytest.param(A.relu, torch.relu, id="relu"),
    pytest.param(A.leaky_relu, F.leaky_relu, id="leaky_relu"),
    pytest.param(lambda x: A.leaky_relu(x, 0.2), lambda x: F.leaky_relu(x, 0.2), id="leaky_0.2"),
    pytest.param(A.sigmoid, torch.sigmoid, id="sigmoid"),
    pytest.param(A.tanh, torch.tanh, id="tanh"),
    pytest.param(A.gelu, F.gelu, id="gelu"),
    pytest.param(
        lambda x: A.gelu(x, "tanh"), lambda x: F.gelu(x, approximate="tanh"), id="gelu_tanh"
    ),
    pytest.param(
        lambda x: A.softmax(x.view(-1, 4)), lambda x: torch.softmax(x.view(-1, 4), -1), id="softmax"
    ),
]


def _inputs() -> torch.Tensor:
    x = WIDE[: WIDE.numel() // 4 * 4].clone()
    return x[torch.randperm(x.numel(), generator=torch.Generator().manual_seed(0))]


@pytest.mark.parametrize(("ours", "theirs"), PAIRS)
def test_values_match_torch_to_float32_precision(ours, theirs):
    x = _inputs()
    x = x[x.abs() < 1e5]  # gelu_tanh cubes its input: beyond ~1e12 torch's own formula overflows
    x = x[: x.numel() // 4 * 4]
    torch.testing.assert_close(ours(x), theirs(x))


@pytest.mark.parametrize(("ours", "theirs"), PAIRS)
def test_gradients_match_torch(ours, theirs):
    x = torch.linspace(-30, 30, 6001)[:6000].requires_grad_()  # includes exactly 0.0
    weights = torch.randn(6000, generator=torch.Generator().manual_seed(1))
    (grad_ours,) = torch.autograd.grad((ours(x).reshape(-1) * weights).sum(), x)
    (grad_theirs,) = torch.autograd.grad((theirs(x).reshape(-1) * weights).sum(), x)
    torch.testing.assert_close(grad_ours, grad_theirs)


@pytest.mark.parametrize(("ours", "theirs"), PAIRS)
def test_no_nan_or_inf_from_minus_to_plus_1e4(ours, theirs):
    x = torch.linspace(-1e4, 1e4, 200_004).requires_grad_()
    y = ours(x)
    (grad,) = torch.autograd.grad(y.sum(), x)
    assert torch.isfinite(y).all()
    assert torch.isfinite(grad).all()


def test_textbook_tanh_gives_nan_where_ours_does_not():
    # The tutorial's from-scratch tanh: (e^x - e^-x) / (e^x + e^-x) overflows to inf / inf.
    x = torch.tensor([100.0, -100.0, 1e4])
    textbook = (torch.exp(x) - torch.exp(-x)) / (torch.exp(x) + torch.exp(-x))
    assert torch.isnan(textbook).any()
    assert torch.equal(A.tanh(x), torch.tensor([1.0, -1.0, 1.0]))


def test_small_inputs_keep_relative_precision():
    x = torch.tensor([1e-8, -1e-7, 1e-20])
    torch.testing.assert_close(A.tanh(x), x, rtol=1e-6, atol=0)
    assert A.sigmoid(torch.tensor(-100.0)).item() == pytest.approx(math.exp(-100), rel=1e-5)


def test_softmax_rows_sum_to_one_and_dim_is_respected():
    x = torch.randn(5, 3, 4, generator=torch.Generator().manual_seed(2)) * 1e4
    for dim in (0, 1, 2):
        probs = A.softmax(x, dim=dim)
        torch.testing.assert_close(probs.sum(dim=dim), torch.ones_like(probs.sum(dim=dim)))
        torch.testing.assert_close(probs, torch.softmax(x, dim=dim))


@pytest.mark.parametrize(
    ("module", "reference"),
    [
        (A.ReLU(), nn.ReLU()),
        (A.LeakyReLU(0.1), nn.LeakyReLU(0.1)),
        (A.Sigmoid(), nn.Sigmoid()),
        (A.Tanh(), nn.Tanh()),
        (A.GELU(), nn.GELU()),
        (A.GELU("tanh"), nn.GELU("tanh")),
        (A.Softmax(dim=1), nn.Softmax(dim=1)),
    ],
    ids=lambda m: repr(m),
)
def test_modules_match_torch_modules(module, reference):
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(3)) * 10
    torch.testing.assert_close(module(x), reference(x))


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(ValueError, match="approximate must be 'none' or 'tanh', got 'fast'"):
        A.gelu(torch.zeros(1), "fast")


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "sigmoid", "tanh", "gelu"])
def test_scratch_activations_work_inside_models_by_name(name):
    config = dict(in_features=3, out_features=2, hidden=(8, 8), activation=name)
    ours = build_model(ModelConfig(**config, activation_impl="scratch"), seed=0)
    theirs = build_model(ModelConfig(**config, activation_impl="torch"), seed=0)
    assert any(type(m).__module__ == "torchclf.nn.activations" for m in ours.modules())
    x = torch.randn(16, 3, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(ours(x), theirs(x))
