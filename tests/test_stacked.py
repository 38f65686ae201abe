import numpy as np
import pytest
import torch

import torchclf
from torchclf.config import ModelConfig
from torchclf.data.splits import split_indices
from torchclf.engine import Hyper, StackedMLP, StackedOptimizer
from torchclf.nn.models import build_model
from torchclf.tasks import infer_task
from torchclf.tasks import stacked_targets as Targets
from torchclf.training.sweep import Member, train_members

RNG = np.random.default_rng(0)
TARGETS = {
    "binary": RNG.integers(0, 2, 30),
    "multiclass": RNG.integers(0, 3, 30),
    "multilabel": RNG.integers(0, 2, (30, 4)),
}


@pytest.mark.parametrize("task_name", list(TARGETS))
@pytest.mark.parametrize(
    "activation", ["relu", "leaky_relu", "sigmoid", "tanh", "gelu", "identity"]
)
def test_hand_written_gradients_equal_autograd(task_name, activation):
    y = TARGETS[task_name]
    task = infer_task(y)
    targets = task.encode(y)
    targets = targets.double() if targets.is_floating_point() else targets
    config = ModelConfig(
        in_features=3, out_features=task.n_outputs, hidden=(5, 4), activation=activation
    )
    models = [build_model(config, seed).double() for seed in range(3)]
    X = torch.randn(30, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    # both signs at the kinks: relu's and leaky_relu's derivative at exactly 0 must match too
    X[0] = 0.0
    net = StackedMLP.from_states(
        (3, 5, 4, task.n_outputs), activation, [m.state_dict() for m in models]
    )
    forward = net.forward(X.T.contiguous())
    losses, correct, dlogits = Targets(task, targets, torch.float64).loss_and_correct(
        forward.logits
    )
    grads = net.backward(forward, dlogits)

    for i, logits in enumerate(_assert_equal_autograd(models, task, X, targets, grads, losses)):
        assert int(correct[i]) == int(task.n_correct(logits, targets))


def _assert_equal_autograd(models, task, X, targets, grads, losses):
    """Each member's stacked gradients ``grads[i]`` and loss ``losses[i]`` are autograd's.

    Returns each model's own logits of ``X``, for further checks.
    """
    loss_fn = task.loss_fn(targets, None, 0.0).double()
    every_logits = []
    for i, model in enumerate(models):
        logits = model(X)
        loss = loss_fn(logits, targets)
        expected = torch.autograd.grad(loss, list(model.parameters()))
        torch.testing.assert_close(grads[i], torch.cat([g.reshape(-1) for g in expected]))
        torch.testing.assert_close(losses[i], loss.detach())
        every_logits.append(logits.detach())
    return every_logits


@pytest.mark.parametrize("task_name", ["binary", "multiclass"])
def test_category_tables_gradients_equal_autograd(task_name):
    # two code columns after two plain ones; rows repeat codes, so gradients add up per row
    y = TARGETS[task_name]
    task = infer_task(y)
    targets = task.encode(y)
    targets = targets.double() if targets.is_floating_point() else targets
    config = ModelConfig(
        in_features=4,
        out_features=task.n_outputs,
        hidden=(5,),
        category_counts=(3, 7),
        embedding_dim=2,
    )
    models = [build_model(config, seed).double() for seed in range(3)]
    generator = torch.Generator().manual_seed(4)
    X = torch.randn(30, 4, dtype=torch.float64, generator=generator)
    X[:, 2] = torch.randint(0, 3, (30,), generator=generator)
    X[:, 3] = torch.randint(0, 6, (30,), generator=generator)  # code 6 is never met: grad 0
    net = StackedMLP.from_config(config, [m.state_dict() for m in models])
    assert net.sizes == (2 + 2 * 2, 5, task.n_outputs)
    stacked = Targets(task, targets, torch.float64)
    # 30 training rows, then 10 evaluation rows that take no part in the gradient
    forward = net.forward(torch.cat([X, X[:10]]).T.contiguous(), train_rows=30)
    losses, _, dlogits = stacked.loss_and_correct(forward.logits[..., :30])
    grads = net.backward(forward, dlogits)
    member_logits = net.member_logits(X.T.expand(3, 4, 30))

    for i, logits in enumerate(_assert_equal_autograd(models, task, X, targets, grads, losses)):
        torch.testing.assert_close(member_logits[i].T, logits)
    assert bool((net.tables[1][:, 6] != 0).all())  # the unmet code's vector
    assert bool((grads.view(3, -1)[:, 6 + 12 : 6 + 14] == 0).all())  # ... takes no gradient


@pytest.mark.parametrize("activation", ["relu", "tanh", "gelu"])
def test_dropout_gradients_equal_autograd_with_the_same_masks(activation):
    y = TARGETS["multiclass"]
    task = infer_task(y)
    targets = task.encode(y)
    config = ModelConfig(in_features=3, out_features=3, hidden=(6, 5), activation=activation)
    models = [build_model(config, seed).double() for seed in range(3)]
    X = torch.randn(30, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    net = StackedMLP.from_states((3, 6, 5, 3), activation, [m.state_dict() for m in models])
    net.use_dropout([0.0, 0.3, 0.6], seed=0)
    # 30 training rows, then 10 evaluation rows that dropout must leave alone
    features = torch.cat([X, X[:10]]).T.contiguous()
    forward = net.forward(features, train_rows=30)
    evaluated = forward.logits[..., 30:].clone()
    _, _, dlogits = Targets(task, targets, torch.float64).loss_and_correct(forward.logits[..., :30])
    grads = net.backward(forward, dlogits)
    # the next forward reuses the buffers, so it comes after the backward
    torch.testing.assert_close(evaluated, net.forward(features).logits[..., 30:])

    activate = {"relu": torch.relu, "tanh": torch.tanh, "gelu": torch.nn.functional.gelu}
    assert bool((forward.masks[0][0] == 1).all())  # rate 0: nothing dropped
    for i, model in enumerate(models):
        params = [p.detach().clone().requires_grad_() for p in model.parameters()]
        h = X
        for layer in range(2):
            h = activate[activation](h @ params[2 * layer].T + params[2 * layer + 1])
            h = h * forward.masks[layer][i].T  # (30, width)
        loss = torch.nn.functional.cross_entropy(h @ params[4].T + params[5], targets)
        expected = torch.autograd.grad(loss, params)
        torch.testing.assert_close(grads[i], torch.cat([g.reshape(-1) for g in expected]))


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_the_backward_follows_the_features_a_forward_met(activation):
    # the backward reuses its views of the features and activations while they stay the same
    # tensors: a new tensor, or new values in the same one, must give that data's gradients
    config = ModelConfig(in_features=3, out_features=3, hidden=(6, 5), activation=activation)
    states = [build_model(config, seed).double().state_dict() for seed in range(2)]
    task = infer_task(TARGETS["multiclass"])
    targets = Targets(task, task.encode(TARGETS["multiclass"]), torch.float64)
    generator = torch.Generator().manual_seed(3)
    first, second = (torch.randn(3, 30, dtype=torch.float64, generator=generator) for _ in "12")

    def gradients(net: StackedMLP, X: torch.Tensor) -> torch.Tensor:
        forward = net.forward(X)
        return net.backward(forward, targets.gradient(forward.logits)).clone()

    def fresh(X: torch.Tensor) -> torch.Tensor:
        return gradients(StackedMLP.from_config(config, states), X)

    net = StackedMLP.from_config(config, states)
    buffer = first.clone()
    torch.testing.assert_close(gradients(net, buffer), fresh(first), rtol=0, atol=0)
    buffer.copy_(second)  # the same tensor, new rows: a gathered batch
    torch.testing.assert_close(gradients(net, buffer), fresh(second), rtol=0, atol=0)
    torch.testing.assert_close(gradients(net, first), fresh(first), rtol=0, atol=0)
    assert not torch.equal(fresh(first), fresh(second))


@pytest.mark.parametrize("task_name", list(TARGETS))
def test_a_subset_of_targets_is_the_rows_own_targets(task_name):
    task = infer_task(TARGETS[task_name])
    encoded = task.encode(TARGETS[task_name])
    targets = Targets(task, encoded, torch.float32)
    rows = torch.tensor([4, 0, 17, 4, 29])
    logits = torch.randn(2, task.n_outputs, len(rows), generator=torch.Generator().manual_seed(0))
    for subset, alone in (
        (targets.subset(rows), Targets(task, encoded[rows], torch.float32)),
        (targets.subset(slice(3, 8)), Targets(task, encoded[3:8], torch.float32)),
    ):
        assert subset.rows == alone.rows == 5
        for got, expected in zip(
            subset.loss_and_correct(logits), alone.loss_and_correct(logits), strict=True
        ):
            torch.testing.assert_close(got, expected, rtol=0, atol=0)
        torch.testing.assert_close(subset.gradient(logits), alone.gradient(logits), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("optimizer", "options"),
    [
        ("adam", {"lr": 0.01}),
        ("adam", {"lr": 0.02, "weight_decay": 0.1}),
        ("adamw", {"lr": 0.01, "weight_decay": 0.05}),
        ("sgd", {"lr": 0.1}),
        ("sgd", {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01}),
    ],
)
def test_the_stacked_optimizer_steps_as_torch_optim(optimizer, options):
    generator = torch.Generator().manual_seed(0)
    start = torch.randn(1, 12, dtype=torch.float64, generator=generator)
    grads = [torch.randn(1, 12, dtype=torch.float64, generator=generator) for _ in range(5)]
    # a second member with other settings shares the stack: it must not disturb the first
    hypers = [Hyper(optimizer, **options), Hyper("adam", lr=0.5, weight_decay=0.3)]
    stacked = torch.cat([start, start])
    stepper = StackedOptimizer(hypers, stacked)
    reference = start[0].clone().requires_grad_()
    torch_optimizer = {
        "adam": torch.optim.Adam,
        "adamw": torch.optim.AdamW,
        "sgd": torch.optim.SGD,
    }[optimizer]([reference], **options)
    for step, grad in enumerate(grads, start=1):
        stepper.step(stacked, torch.cat([grad, grad]), step)
        reference.grad = grad[0].clone()
        torch_optimizer.step()
    torch.testing.assert_close(stacked[0], reference.detach(), rtol=0, atol=1e-15)
    assert not torch.allclose(stacked[1], stacked[0])


def test_members_stop_early_as_fit_does():
    data = torchclf.datasets.load("moons", n_samples=300, noise=0.3)
    fraction, patience = 0.25, 5
    members = [Member(hidden=(16,), lr=lr, epochs=300, seed=7) for lr in (0.05, 0.003)]
    train_rows, val_rows = split_indices(
        len(data.y), fraction, stratify=data.y.reshape(-1, 1), seed=7
    )
    trained = train_members(
        data.X[train_rows],
        data.y[train_rows],
        members,
        validation=(data.X[val_rows], data.y[val_rows]),
        early_stopping=True,
        patience=patience,
        dtype="float64",
    )
    stopped_at = []
    for member, classifier in zip(members, trained, strict=True):
        alone = torchclf.fit(
            data.X,
            data.y,
            ensemble=1,
            calibrate=False,  # a sweep's members are not calibrated
            hidden=member.hidden,
            lr=member.lr,
            epochs=member.epochs,
            seed=member.seed,
            early_stopping=True,
            validation_fraction=fraction,
            patience=patience,
            dtype="float64",
        )
        assert len(classifier.history) == len(alone.history)
        assert classifier.history.best_epoch == alone.history.best_epoch
        assert classifier.history.stopped_early == alone.history.stopped_early
        np.testing.assert_allclose(
            classifier.history.column("val_loss"), alone.history.column("val_loss"), rtol=1e-9
        )
        torch.testing.assert_close(
            classifier.predict_proba(data.X), alone.predict_proba(data.X), rtol=0, atol=1e-9
        )
        stopped_at.append(len(classifier.history))
    # the fast learner stops long before the slow one: each member stops on its own
    assert stopped_at[0] < stopped_at[1]
    assert trained[0].history.stopped_early
