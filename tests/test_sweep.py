import dataclasses
import re

import numpy as np
import pytest
import torch

import torchclf
from torchclf import ConfigError, datasets
from torchclf.training.sweep import Member, train_members

# Different optimizers, learning rates, momentum, weight decay and epochs in one architecture
# group, plus a second group and the linear model.
MEMBERS = [
    Member(hidden=(10, 10), optimizer="adam", lr=0.01, epochs=60, seed=1),
    Member(hidden=(10, 10), optimizer="sgd", lr=0.1, momentum=0.9, epochs=40, seed=2),
    Member(hidden=(10, 10), optimizer="adamw", lr=0.003, weight_decay=0.01, epochs=60, seed=3),
    Member(
        hidden=(16,),
        activation="tanh",
        optimizer="adam",
        lr=0.02,
        weight_decay=1e-3,
        epochs=50,
        seed=4,
    ),
    Member(hidden=(), optimizer="sgd", lr=0.1, epochs=20, seed=5),
]


@pytest.fixture(scope="module")
def split():
    data = datasets.load("blobs", n_samples=240, n_classes=3)
    return torchclf.train_test_split(data.X, data.labels, test_size=0.25, seed=0)


def _alone(split, member, dtype, batch_size=None):
    return torchclf.fit(
        split.X_train,
        split.y_train,
        ensemble=1,  # a member is one network
        hidden=member.hidden,
        activation=member.activation,
        optimizer=member.optimizer,
        lr=member.lr,
        weight_decay=member.weight_decay,
        momentum=member.momentum,
        epochs=member.epochs,
        seed=member.seed,
        dtype=dtype,
        batch_size=batch_size,
        validation_fraction=0.0,  # the members train every row, as given
        engine="autograd",  # the oracle: torch's autograd and torch.optim, not the engine again
        eval_set=(split.X_test, split.y_test),
    )


def _weights(classifier):
    return torch.cat([p.detach().reshape(-1) for p in classifier.model.parameters()])


# float32 round-off grows with the epochs (the hand-written backward sums in another order than
# autograd), so float32 gets looser tolerances; float64 shows the arithmetic is the same.
@pytest.mark.parametrize(
    ("dtype", "tolerance", "loss_rtol"), [("float64", 1e-10, 1e-9), ("float32", 1e-4, 1e-4)]
)
def test_each_member_equals_the_same_configuration_trained_alone(
    split, dtype, tolerance, loss_rtol
):
    trained = train_members(
        split.X_train, split.y_train, MEMBERS, eval_set=(split.X_test, split.y_test), dtype=dtype
    )
    for member, classifier in zip(MEMBERS, trained, strict=True):
        alone = _alone(split, member, dtype)
        torch.testing.assert_close(_weights(classifier), _weights(alone), rtol=0, atol=tolerance)
        assert len(classifier.history) == member.epochs
        assert classifier.history.column("test_accuracy") == alone.history.column("test_accuracy")
        np.testing.assert_allclose(
            classifier.history.column("train_loss"),
            alone.history.column("train_loss"),
            rtol=loss_rtol,
        )


def test_mini_batch_members_equal_fit_when_their_seed_is_the_shuffle_seed(split):
    # 180 training rows in batches of 64: three steps an epoch, every member the same batches
    members = [dataclasses.replace(m, seed=7, epochs=min(m.epochs, 15)) for m in MEMBERS]
    validation = (split.X_test[:20], split.y_test[:20])
    trained = train_members(
        split.X_train,
        split.y_train,
        members,
        eval_set=(split.X_test, split.y_test),
        dtype="float64",
        batch_size=64,
        shuffle_seed=7,
    )
    for member, classifier in zip(members, trained, strict=True):
        alone = _alone(split, member, "float64", batch_size=64)
        torch.testing.assert_close(_weights(classifier), _weights(alone), rtol=0, atol=1e-10)
        assert classifier.history.column("test_accuracy") == alone.history.column("test_accuracy")
        np.testing.assert_allclose(
            classifier.history.column("train_loss"), alone.history.column("train_loss"), rtol=1e-9
        )
        assert classifier.train_config.batch_size == 64
    # another shuffle seed gives other batches, so other weights
    other = train_members(
        split.X_train, split.y_train, members[:1], dtype="float64", batch_size=64, shuffle_seed=8
    )
    assert not torch.allclose(_weights(other[0]), _weights(trained[0]))
    # early stopping on validation rows works batch by batch too
    stopped = train_members(
        split.X_train,
        split.y_train,
        [dataclasses.replace(members[0], epochs=400, lr=0.05)],
        validation=validation,
        early_stopping=True,
        patience=3,
        batch_size=64,
    )
    assert stopped[0].history.stopped_early and len(stopped[0].history) < 400


def test_members_are_ordinary_classifiers(split, tmp_path):
    classifier = train_members(split.X_train, split.y_train, MEMBERS[:1])[0]
    loaded = torchclf.load(classifier.save(tmp_path / "member.safetensors"))
    assert np.array_equal(
        loaded.predict_proba(split.X_test), classifier.predict_proba(split.X_test)
    )
    assert classifier.train_config.lr == 0.01 and classifier.model_config.hidden == (10, 10)


def test_bad_members_are_refused(split):
    with pytest.raises(ConfigError, match=re.escape("a sweep needs at least one member")):
        train_members(split.X_train, split.y_train, [])
    with pytest.raises(
        ConfigError,
        match=re.escape(
            "The 'optimizer' parameter must be one of ['adam', 'adamw', 'sgd']. Got 'rmsprop' instead."
        ),
    ):
        Member(optimizer="rmsprop")


def test_chunks_give_the_same_members(split):
    members = [
        Member(hidden=(8,), lr=lr, epochs=30, seed=seed) for lr in (0.01, 0.1) for seed in (0, 1, 2)
    ]
    whole = train_members(split.X_train, split.y_train, members, dtype="float64")
    chunked = train_members(split.X_train, split.y_train, members, dtype="float64", chunk_size=4)
    for a, b in zip(whole, chunked, strict=True):
        torch.testing.assert_close(_weights(a), _weights(b), rtol=0, atol=1e-12)


def test_dropout_members_share_a_group_and_are_reproducible(split):
    members = [
        Member(hidden=(12,), lr=0.01, epochs=40, seed=1),
        Member(hidden=(12,), lr=0.01, epochs=40, seed=1, dropout=0.3),
        Member(hidden=(12,), lr=0.01, epochs=40, seed=1, dropout=0.6),
    ]
    first = train_members(split.X_train, split.y_train, members, dtype="float64")
    again = train_members(split.X_train, split.y_train, members, dtype="float64")
    alone = _alone(split, members[0], "float64")
    # rate 0 keeps every unit: the member trains exactly as fit without dropout
    torch.testing.assert_close(_weights(first[0]), _weights(alone), rtol=0, atol=1e-10)
    for a, b in zip(first, again, strict=True):
        assert torch.equal(_weights(a), _weights(b))
    assert not torch.allclose(_weights(first[1]), _weights(first[0]))
    assert not torch.allclose(_weights(first[1]), _weights(first[2]))
    assert first[2].model_config.dropout == 0.6
    # dropout is training-only: the member predicts deterministically
    assert np.array_equal(
        first[2].predict_proba(split.X_test), first[2].predict_proba(split.X_test)
    )
