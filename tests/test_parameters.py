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
    ("estimator", "weight_decay"): "a number, as scikit-learn's alpha (fit's auto: 0.003 below "
    "10,000 rows, where the estimator's checks run)",
}
# A sweep member's own default where fit's is "auto", and why.
MEMBER_DIFFERENCES = {"weight_decay": "a grid's members share one number (fit's auto: 0.003)"}


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
    if name in MEMBER_DIFFERENCES:
        assert member[name] != _fit_defaults()[name]
    else:
        assert member[name] == _fit_defaults()[name]


# Where a command or fit_parquet deliberately differs from fit's default, and why.
FACE_DIFFERENCES = {
    ("fit_parquet", "batch_size"): "a stream always trains in mini-batches (fit: full batch "
    "up to 4,096 rows)",
    ("stream", "batch_size"): "fit_parquet's mini-batches",
    ("predict", "threshold"): "unset keeps the threshold saved in the model file",
    ("improve", "hidden"): "the lesson's baseline, model_0's 2-10-10-1 shape",
    ("improve", "activation"): "the lesson's baseline is linear; improving adds the ReLU",
    ("improve", "epochs"): "the lesson's 1000 epochs, the same for every variant",
    ("sweep", "hidden"): "a grid: comma-separated widths",
    ("sweep", "lr"): "a grid: comma-separated learning rates",
    ("sweep", "epochs"): "a grid's members all train the same 1000-epoch budget",
    ("sweep", "early_stopping"): "members are ranked on validation rows at their best epoch",
    ("sweep", "weight_decay"): "a grid: comma-separated weight decays",
    ("fit_parquet", "weight_decay"): "0.003: the large-table decay was measured on tables in "
    "memory, not yet on streams",
}
# Options whose unset value (None, "none") hands fit its own default ("auto", (), 0.5, None).
UNSET_IS_FITS = {
    ("train", name)
    for name in (
        "categorical",
        "cross_fit",
        "blend_linear",
        "class_weight",
        "threshold",
        "early_stopping",
    )
}


def _faces():
    """Every command's options, and fit_parquet's keywords, that fit also takes: their defaults."""
    import inspect

    import typer.main

    fit = _fit_defaults()
    faces = {}
    for command_name, command in typer.main.get_command(app).commands.items():
        for p in command.params:
            if p.param_type_name == "option" and p.name in fit:
                faces[(command_name, p.name)] = p.default
    for name, p in inspect.signature(torchclf.fit_parquet).parameters.items():
        if name in fit:
            faces[("fit_parquet", name)] = p.default
    return faces


def _same(value, fits):
    if value == fits or str(value) == str(fits):
        return True
    try:  # an option parsed from text: "0" is fit's 0.0
        return float(value) == float(fits)
    except (TypeError, ValueError):
        return False


@pytest.mark.parametrize(("face", "name"), sorted(_faces()))
def test_every_face_has_fits_defaults_but_where_stated(face, name):
    value, fits = _faces()[(face, name)], _fit_defaults()[name]
    if (face, name) in FACE_DIFFERENCES:
        assert not _same(value, fits)  # a stated difference that no longer is one: drop it
    elif (face, name) in UNSET_IS_FITS:
        assert value in (None, "none")
    else:
        assert _same(value, fits)


def test_the_faces_share_many_parameters_with_fit():
    faces = _faces()
    assert len([key for key in faces if key[0] == "train"]) >= 20
    assert len([key for key in faces if key[0] == "fit_parquet"]) >= 15


@pytest.mark.parametrize(
    "name", ["lr", "weight_decay", "momentum", "epochs", "patience", "optimizer"]
)
def test_fit_parquet_reports_a_bad_value_as_the_declaration_does(tmp_path, name):
    import pandas as pd

    path = tmp_path / "rows.parquet"
    pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "label": y}).to_parquet(path)
    value = _bad(DECLARED[name])
    with pytest.raises(torchclf.ConfigError) as raised:
        torchclf.fit_parquet(path, "label", **{name: value})
    assert str(raised.value) == _config_message(name, value)


def test_every_declared_parameter_has_one_line_of_help():
    from torchclf.config import PARAMETER_HELP

    assert set(PARAMETER_HELP) == set(DECLARED)
    assert all(text.endswith(".") and "\n" not in text for text in PARAMETER_HELP.values())


def test_the_train_commands_options_say_what_the_declaration_says():
    import typer.main

    from torchclf.config import PARAMETER_HELP

    command = typer.main.get_command(app).commands["train"]
    helps = {p.name: p.help for p in command.params if p.param_type_name == "option"}
    auto_aware = {"epochs", "patience", "ensemble", "cross_fit", "blend_linear", "weight_decay"}
    declared = sorted(set(helps) & set(PARAMETER_HELP) - auto_aware)
    assert len(declared) >= 9
    assert {n: helps[n] for n in declared} == {n: PARAMETER_HELP[n] for n in declared}


def test_train_hands_fit_every_option_named_as_its_keywords(tmp_path, monkeypatch):
    """An option named as one of fit's keywords reaches fit with no line of its own."""
    import functools
    import inspect

    import typer.main

    real_fit, seen = torchclf.fit, {}

    @functools.wraps(real_fit)  # keeps fit's signature, which the command reads
    def recording_fit(*args, **keywords):
        seen.update(keywords)
        return real_fit(*args, **keywords)

    monkeypatch.setattr(torchclf, "fit", recording_fit)
    given = {"lr": 0.02, "weight_decay": 0.01, "momentum": 0.5, "seed": 3, "optimizer": "sgd"}
    options = [item for name, v in given.items() for item in (f"--{name.replace('_', '-')}", v)]
    result = CliRunner().invoke(
        app, ["train", *map(str, options), "--epochs", "2", "--out", str(tmp_path), "-q"]
    )
    assert result.exit_code == 0, result.output
    assert {name: seen[name] for name in given} == given
    command = typer.main.get_command(app).commands["train"]
    fit_names = set(inspect.signature(real_fit).parameters)
    named_as_fits = {p.name for p in command.params if p.name in fit_names}
    # unset, these keep fit's own default (None is fit's default for these)
    unset = {name for _, name in UNSET_IS_FITS} | {
        "batch_size",
        "grad_clip",
        "log_every",
        "positive_class",
        "tensorboard",
    }
    assert named_as_fits - unset <= set(seen)


def test_auto_weight_decay_is_a_tenth_from_ten_thousand_training_rows():
    from torchclf.training.schedule import LARGE_TABLE_ROWS

    rng = np.random.default_rng(0)
    big = rng.normal(size=(LARGE_TABLE_ROWS, 2))
    labels = (big[:, 0] > 0).astype(int)
    quick = dict(epochs=1, ensemble=1, hidden=(4,))
    below = torchclf.fit(big[:-1], labels[:-1], **quick)
    assert below.train_config.weight_decay == 0.003
    assert torchclf.fit(big, labels, **quick).train_config.weight_decay == 0.0003
    given = torchclf.fit(big, labels, weight_decay=0.01, **quick)
    assert given.train_config.weight_decay == 0.01
    with pytest.raises(torchclf.ConfigError, match="must be 'auto' or a float in the range"):
        torchclf.fit(big, labels, weight_decay="bogus", **quick)
    result = CliRunner().invoke(app, ["train", "--weight-decay", "lots", "--epochs", "1"])
    assert result.exit_code == 2
    assert "expected auto or a number such as 0.001, got 'lots'" in result.stderr
