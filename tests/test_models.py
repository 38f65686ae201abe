import re

import numpy as np
import pytest
import torch
from torch import nn

from torchclf import MLP, ConfigError, ModelConfig, build_model
from torchclf.nn.models import count_parameters


def test_linear_baseline_is_one_linear_layer():
    model = MLP(ModelConfig(in_features=2, out_features=1, hidden=()))
    assert [type(m) for m in model.layers] == [nn.Linear]
    assert count_parameters(model) == 3


def test_hidden_blocks_with_batch_norm_and_dropout():
    model = MLP(
        ModelConfig(
            in_features=4,
            out_features=3,
            hidden=(16, 8),
            activation="tanh",
            dropout=0.2,
            batch_norm=True,
        )
    )
    kinds = [type(m).__name__ for m in model.layers]
    assert kinds == [
        "Linear",
        "BatchNorm1d",
        "Tanh",
        "Dropout",
        "Linear",
        "BatchNorm1d",
        "Tanh",
        "Dropout",
        "Linear",
    ]
    assert model(torch.zeros(5, 4)).shape == (5, 3)
    # 4*16+16 + 2*16 + 16*8+8 + 2*8 + 8*3+3
    assert count_parameters(model) == 80 + 32 + 136 + 16 + 27


def test_initialisation_is_the_tutorials_under_the_same_seed():
    # The lesson: torch.manual_seed(42), then nn.Linear(2, 10), nn.Linear(10, 10), nn.Linear(10, 1).
    torch.manual_seed(42)
    reference = [nn.Linear(2, 10), nn.Linear(10, 10), nn.Linear(10, 1)]
    model = build_model(ModelConfig(in_features=2, out_features=1, hidden=(10, 10)), seed=42)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    for ours, theirs in zip(linears, reference, strict=True):
        assert torch.equal(ours.weight, theirs.weight) and torch.equal(ours.bias, theirs.bias)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_xavier_and_kaiming_draw_within_their_bounds_with_zero_biases(activation):
    config = ModelConfig(in_features=30, out_features=3, hidden=(200, 100), activation=activation)
    default = build_model(config, seed=0)
    gains = {"relu": 2**0.5, "tanh": 5 / 3}
    for init in ("xavier", "kaiming"):
        model = build_model(ModelConfig(**{**config.to_dict(), "init": init}), seed=0)
        linears = [m for m in model.layers if isinstance(m, nn.Linear)]
        for index, linear in enumerate(linears):
            fan_out, fan_in = linear.weight.shape
            if init == "xavier":
                bound = (6 / (fan_in + fan_out)) ** 0.5
            else:  # He uniform: the activation's gain on hidden layers, 1 on the output layer
                gain = gains[activation] if index < len(linears) - 1 else 1.0
                bound = gain * (3 / fan_in) ** 0.5
            weight = linear.weight.detach()
            # uniform on [-bound, bound]: nothing outside, and it reaches close to both ends
            assert weight.abs().max() <= bound
            assert weight.abs().max() > 0.95 * bound
            assert torch.count_nonzero(linear.bias) == 0
        reference = [m for m in default.layers if isinstance(m, nn.Linear)]
        assert not torch.equal(linears[0].weight, reference[0].weight)
        again = build_model(ModelConfig(**{**config.to_dict(), "init": init}), seed=0)
        pairs = zip(model.parameters(), again.parameters(), strict=True)
        assert all(torch.equal(p, q) for p, q in pairs)


def test_unknown_init_is_a_config_error():
    with pytest.raises(
        ConfigError,
        match=r"The 'init' parameter must be one of \['torch', 'xavier', 'kaiming'\]\. "
        r"Got 'xavir' instead\. Did you mean 'xavier'\?",
    ):
        ModelConfig(in_features=1, out_features=1, init="xavir")


def test_build_model_is_reproducible_and_leaves_the_global_rng_alone():
    config = ModelConfig(in_features=3, out_features=2, hidden=(5,))
    torch.manual_seed(0)
    expected_next = torch.rand(1)
    torch.manual_seed(0)
    a, b, c = build_model(config, 1), build_model(config, 1), build_model(config, 2)
    assert torch.rand(1).item() == expected_next.item()
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(a.layers[0].weight, c.layers[0].weight)


def test_invalid_configs_report_every_problem_at_once():
    message = (
        "The 'in_features' parameter must be an int in the range [1, inf). Got 0 instead.; "
        "The 'dropout' parameter must be a float in the range [0.0, 1.0). Got 1.5 instead."
    )
    with pytest.raises(ConfigError, match=re.escape(message)):
        ModelConfig(in_features=0, out_features=1, dropout=1.5)
    with pytest.raises(
        ConfigError,
        match=r"The 'activation' parameter must be one of .*Got 'rleu' instead\. Did you mean 'relu'\?",
    ):
        ModelConfig(in_features=1, out_features=1, activation="rleu")


def test_hidden_must_be_a_sequence():
    message = (
        "The 'hidden' parameter must be a sequence of layer sizes such as (64, 64), or () for the "
        "linear model. Got 10 instead; for one layer write (10,)."
    )
    with pytest.raises(ConfigError, match=re.escape(message)):
        ModelConfig(in_features=2, out_features=1, hidden=10)


def test_config_round_trips_through_dict():
    config = ModelConfig(in_features=3, out_features=2, hidden=(4, 5), dropout=0.1)
    assert ModelConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match=r"Unknown ModelConfig keys \['width'\]"):
        ModelConfig.from_dict({**config.to_dict(), "width": 3})


@pytest.mark.parametrize(
    "options",
    [
        {"activation": "relu"},
        {"activation": "gelu", "dropout": 0.3},
        {"activation": "tanh", "batch_norm": True},
        {"activation": "sigmoid", "activation_impl": "scratch"},
        {"hidden": ()},
    ],
)
def test_batched_prediction_equals_the_module_forward(options):
    from torchclf.nn.models import predict_logits

    config = ModelConfig(in_features=5, out_features=3, **{"hidden": (16, 8), **options})
    model = build_model(config, seed=0)
    if config.batch_norm:  # running statistics other than the initial ones
        model.train()
        model(torch.randn(64, 5) * 3 + 1)
    features = np.random.default_rng(0).normal(size=(103, 5)).astype(np.float32)
    logits = predict_logits(model, features, torch.device("cpu"), batch_rows=16)  # 6 full + 7
    model.eval()
    with torch.no_grad():
        expected = model(torch.from_numpy(features))
    torch.testing.assert_close(logits, expected)
    assert not model.training

    # standardizing and finishing batch by batch equals doing each on the whole array
    mean, scale = np.float32([1, 2, 3, 4, 5]), np.float32([2, 1, 0.5, 3, 1])
    raw = features * scale + mean
    before = raw.copy()
    probabilities = predict_logits(
        model,
        raw,
        torch.device("cpu"),
        batch_rows=16,
        standardize=(mean, scale),
        finish=lambda z: torch.softmax(z, dim=1),
    )
    whole = predict_logits(model, (raw - mean) / scale, torch.device("cpu"), batch_rows=16)
    assert torch.equal(probabilities, torch.softmax(whole, dim=1))
    assert np.array_equal(raw, before)  # the caller's rows are left as they were


@pytest.mark.parametrize(
    ("hidden", "dtype", "device", "rows"),
    [
        ((256, 256), torch.float32, "cpu", 512),  # 512 rows x 256 x 4 bytes: 512 KiB
        ((256, 256), torch.float64, "cpu", 256),  # twice the bytes a value: half the rows
        ((64, 32), torch.float32, "cpu", 2048),
        ((8,), torch.float32, "cpu", 8192),  # capped: little left to gain
        ((4096,), torch.float32, "cpu", 256),  # floored: per-batch overheads
        ((256, 256), torch.float32, "cuda", 2048),
    ],
)
def test_prediction_batches_keep_the_widest_activations_in_cache(hidden, dtype, device, rows):
    from torchclf.nn.models import predict_batch_rows

    config = ModelConfig(in_features=2, out_features=4, hidden=hidden)
    assert predict_batch_rows(config, torch.device(device), dtype) == rows


def test_predictions_do_not_depend_on_the_batch_size():
    from torchclf.nn.models import predict_logits

    model = build_model(ModelConfig(in_features=32, out_features=4, hidden=(256, 256)), seed=0)
    features = np.random.default_rng(1).normal(size=(3000, 32)).astype(np.float32)
    logits = [predict_logits(model, features, torch.device("cpu"), rows) for rows in (512, 2048)]
    assert torch.equal(logits[0], logits[1])
