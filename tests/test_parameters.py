"""Each parameter is declared once (torchclf.config); every face checks it the same way."""

import numpy as np
import pytest
from typer.testing import CliRunner

import torchclf
from torchclf.cli import app
from torchclf.config import MODEL_CONSTRAINTS, TRAIN_CONSTRAINTS, ModelConfig, TrainConfig
from torchclf.constraints import Interval, NoneOr, Options
from torchclf.estimator import SKLEARN_NAMES, NeuralNetClassifier
from torchclf.training.sweep import Member

X = np.random.default_rng(0).normal(size=(40, 2))
y = (X[:, 0] > 0).astype(int)


def _bad(constraint):
    """A value the constraint refuses: just outside its lower end, or not one of its choices."""
    if isinstance(constraint, NoneOr):
        return _bad(constraint.other)
    if isinstance(constraint, Options):
        return "bogus"
    assert isinstance(constraint, Interval)
    return constraint.low - 1 if constraint.closed in ("both", "left") else constraint.low


def _config_message(name, value):
    with pytest.raises(torchclf.ConfigError) as raised:
        if name in MODEL_CONSTRAINTS:
            ModelConfig(in_features=2, out_features=1, **{name: value})
        else:
            TrainConfig(**{name: value})
    return str(raised.value)


DECLARED = {**MODEL_CONSTRAINTS, **TRAIN_CONSTRAINTS}
# set from the data, or fitted after training (the temperature, a blend's weight), not given to fit
FITTED = ("in_features", "out_features", "temperature", "linear_weight")
SHARED_WITH_FIT = [n for n in DECLARED if n not in FITTED]


@pytest.mark.parametrize("name", SHARED_WITH_FIT)
def test_fit_reports_a_bad_value_as_the_declaration_does(name):
    value = _bad(DECLARED[name])
    expected = _config_message(name, value)
    assert expected.startswith(f"The '{name}' parameter must be ")
    with pytest.raises(torchclf.ConfigError) as raised:
        torchclf.fit(X, y, **{"epochs": 1, **{name: value}})
    assert str(raised.value) == expected


@pytest.mark.parametrize(("flat", "name"), sorted(SKLEARN_NAMES.items()))
def test_the_estimator_reports_a_bad_value_as_the_declaration_does(flat, name):
    value = _bad(DECLARED[name])
    expected = _config_message(name, value).replace(f"'{name}'", f"'{flat}'")
    with pytest.raises(torchclf.ConfigError) as raised:
        NeuralNetClassifier(**{flat: value}).fit(X, y)
    assert str(raised.value) == expected


@pytest.mark.parametrize(
    "name", ["lr", "weight_decay", "momentum", "dropout", "epochs", "seed", "activation"]
)
def test_sweep_members_report_a_bad_value_as_the_declaration_does(name):
    value = _bad(DECLARED[name])
    with pytest.raises(torchclf.ConfigError) as raised:
        Member(**{name: value})
    assert str(raised.value) == _config_message(name, value)


@pytest.mark.parametrize(
    ("option", "name"),
    [
        ("--lr", "lr"),
        ("--epochs", "epochs"),
        ("--dropout", "dropout"),
        ("--optimizer", "optimizer"),
    ],
)
def test_the_command_line_reports_a_bad_value_as_the_declaration_does(tmp_path, option, name):
    value = _bad(DECLARED[name])
    result = CliRunner().invoke(app, ["train", option, str(value), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr == f"Error: {_config_message(name, value)}\n"


# Where a face deliberately differs from fit's default, and why (stated once, here and beside the
# face's own declaration).
DELIBERATE = {
    (
        "estimator",
        "max_epochs",
    ): "scikit-learn's idiom: a fixed max_iter, not a budget sized to data",
    ("estimator", "validation_fraction"): "HistGradientBoosting's 0.1, used when early stopping",
    ("estimator", "n_iter_no_change"): "scikit-learn's 10 epochs",
    ("estimator", "tol"): "MLPClassifier's 1e-4",
    ("estimator", "dtype"): "scikit-learn computes in float64",
    ("estimator", "ensemble"): "one network: scikit-learn's checks compare weighted rows with "
    "repeated ones, and sample weights train one network",
}


def _fit_defaults():
    import inspect

    return {k: p.default for k, p in inspect.signature(torchclf.fit).parameters.items()}


@pytest.mark.parametrize(("flat", "name"), sorted(SKLEARN_NAMES.items()))
def test_the_estimator_has_fits_defaults_but_where_stated(flat, name):
    import inspect

    ours = inspect.signature(NeuralNetClassifier).parameters[flat].default
    if ("estimator", flat) in DELIBERATE:
        assert ours != _fit_defaults()[name]  # a stated difference that no longer is one: drop it
    else:
        assert ours == _fit_defaults()[name]


@pytest.mark.parametrize(
    "name", ["activation", "optimizer", "lr", "weight_decay", "momentum", "dropout", "seed"]
)
def test_sweep_members_have_fits_defaults(name):
    import dataclasses

    member = {f.name: f.default for f in dataclasses.fields(Member)}
    assert member[name] == _fit_defaults()[name]


def test_the_train_command_has_fits_defaults():
    import typer.main

    command = typer.main.get_command(app).commands["train"]
    options = {p.name: p.default for p in command.params if p.param_type_name == "option"}
    fit = _fit_defaults()
    # options the command parses from text: their "none" is None where fit's is () or a rule;
    # --early-stopping/--no-early-stopping left unset is fit's "auto"
    parsed = {"task", "hidden", "threshold", "class_weight", "categorical", "early_stopping"}
    parsed |= {
        "ensemble",
        "cross_fit",
        "blend_linear",
    }  # auto-aware: 1 network on the lesson's datasets
    shared = sorted(set(options) & set(fit) - parsed)
    assert len(shared) >= 10
    differ = [n for n in shared if options[n] != fit[n] and str(options[n]) != str(fit[n])]
    assert differ == []


def test_every_declared_parameter_has_one_line_of_help():
    from torchclf.config import PARAMETER_HELP

    assert set(PARAMETER_HELP) == set(DECLARED)
    assert all(text.endswith(".") and "\n" not in text for text in PARAMETER_HELP.values())


def test_the_train_commands_options_say_what_the_declaration_says():
    import typer.main

    from torchclf.config import PARAMETER_HELP

    command = typer.main.get_command(app).commands["train"]
    helps = {p.name: p.help for p in command.params if p.param_type_name == "option"}
    auto_aware = {"epochs", "patience", "ensemble", "cross_fit", "blend_linear"}
    declared = sorted(set(helps) & set(PARAMETER_HELP) - auto_aware)
    assert len(declared) >= 9
    assert {n: helps[n] for n in declared} == {n: PARAMETER_HELP[n] for n in declared}
