"""A linear model blended in: never worse than the linear baseline where it is the right model.

On a table whose classes a linear model separates as well as anything (a few smooth numeric
columns, a log-odds that is close to linear), a network pays a little for its freedom: on the
real-table suite, ISLR's Default gave the networks a log loss 0.001 above logistic regression's
on every split. So ``fit`` also fits ``K`` logistic regressions (one ``nn.Linear`` each, on the
same encoded features and folds as the ``K`` networks; :func:`fit_logistic`) and mixes the
probabilities,

    p = (1 - w) * mean(networks' p) + w * mean(linear models' p),

with the one weight ``w`` in ``[0, 1)`` that minimises the log loss of the held-out rows: each
training row as predicted by the network and the linear model that never trained on it (cross-
fitted), or the validation rows. The log loss of a mixture is convex in ``w``, so the minimum
is found to ``1e-4`` in a few dozen evaluations. Where the networks are better, ``w`` comes out
at or near 0 and the linear members are dropped; the model file holds ``w`` as
``ModelConfig.linear_weight`` and the linear members after the networks.
"""

from __future__ import annotations

import copy
import dataclasses

import torch
from scipy.optimize import minimize_scalar  # type: ignore[import-untyped]
from torch import Tensor

from torchclf.data.labelled import Labelled
from torchclf.errors import ConfigError
from torchclf.nn.losses import mean_probability_logits
from torchclf.nn.models import MLP, Ensemble, empty_model, linear_config, members_of
from torchclf.nn.starting_point import start_at_prior
from torchclf.tasks import Task
from torchclf.training.calibration import held_out_logits

# Below this share the linear members are dropped: they would move no probability by more than
# 1% of itself, and cost K more forward passes at every prediction.
MIN_LINEAR_WEIGHT = 0.01
MAX_LINEAR_WEIGHT = 0.99  # ModelConfig.linear_weight < 1: the networks always count


# scikit-learn LogisticRegression's default: mean loss + ||W||^2 / (2 C n), the bias unpenalised
L2_C = 1.0
# L-BFGS iterations at most, scikit-learn's max_iter: most tables converge in a few dozen; a blend
# needs the linear models near their optimum, not at it (diamonds, 20k rows and 5 classes, spent
# 18 s on 500 iterations, a third of its fit, for a share that came out 0)
LBFGS_ITERATIONS = 100
# Stop when the gradient of the members' mean losses is this small: torch's default stop on a
# loss change below 1e-9 leaves coefficients 1e-4 from scikit-learn's optimum
LBFGS_TOLERANCE = 1e-8


def fit_logistic(
    linear: MLP | Ensemble,
    loss_fn: torch.nn.Module,
    train: Labelled,
    folds: Tensor | None = None,
    columns: Tensor | None = None,
) -> None:
    """Fit ``linear``'s one-layer members as L2-penalised logistic regressions, in place.

    Member k fits the training rows of fold k (``folds`` ``(K, n)``, True where it trains), or
    without ``folds`` every member the same rows. As scikit-learn's ``LogisticRegression`` at
    its defaults (``C=1``, multinomial for multiclass, one sigmoid per label for multilabel),
    with its solver, L-BFGS; the K problems are independent, so their sum is minimised at once,
    in float64, from the members' starting biases (the class log-odds) and zero weights.
    ``columns`` ``(d,)`` bool, when given, are the only features used: the others are zeroed,
    so their weights see only the penalty and stay at 0.
    """
    members = members_of(linear)
    X = train.X.double()  # (n, d)
    if columns is not None:
        X = X * columns.to(X.device, X.dtype)
    fits = folds if folds is not None else torch.ones(1, len(X), dtype=torch.bool)
    rows = fits.to(X.device).double()  # (G, n): 1 where problem g fits the row
    if train.weight is not None:
        rows = rows * train.weight.double()[None]
    counts = rows.sum(dim=1)  # (G,)
    n_problems = len(rows)
    layers = [_output_layer(member) for member in members]
    weight = torch.zeros(n_problems, X.shape[1], layers[0].out_features, dtype=torch.float64)
    bias = torch.stack([layer.bias.detach().double().cpu() for layer in layers[:n_problems]])
    weight, bias = weight.to(X.device).requires_grad_(), bias.to(X.device).requires_grad_()
    per_row = copy.deepcopy(loss_fn).double()
    per_row.reduction = "none"  # type: ignore[assignment]  # torch's losses read it per call
    # 0/1 columns in float64 too: float32 targets make BCE's gradient float32-rounded, which
    # stalls L-BFGS's line search; class indices (multiclass) stay integers
    y = train.y.double() if train.y.is_floating_point() else train.y
    targets = y.repeat(n_problems, *([1] * (y.dim() - 1)))  # (G * n, ...)
    solver = torch.optim.LBFGS(
        [weight, bias],
        lr=1.0,
        max_iter=LBFGS_ITERATIONS,
        tolerance_grad=LBFGS_TOLERANCE,
        tolerance_change=1e-14,
        line_search_fn="strong_wolfe",
    )

    def objective() -> Tensor:
        solver.zero_grad()
        logits = torch.einsum("nd,gdo->gno", X, weight) + bias[:, None, :]  # (G, n, out)
        losses = per_row(logits.flatten(0, 1), targets).reshape(n_problems, len(X), -1)
        mean_loss = (losses.mean(dim=-1) * rows).sum(dim=1) / counts  # (G,)
        penalty = weight.pow(2).sum(dim=(1, 2)) / (2 * L2_C * counts)
        total = (mean_loss + penalty).sum()
        total.backward()
        return total

    solver.step(objective)
    with torch.no_grad():
        for index, layer in enumerate(layers):
            problem = index % n_problems  # without folds, every member gets the one fit
            layer.weight.copy_(weight[problem].T)
            layer.bias.copy_(bias[problem])


def _output_layer(member: MLP) -> torch.nn.Linear:
    """A linear member's one layer, ``weight`` ``(out, in)``."""
    layer = member.layers[-1]
    if len(member.layers) != 1 or not isinstance(layer, torch.nn.Linear):
        raise ConfigError(f"A blend's linear member is one nn.Linear; got {member.layers!r}")
    return layer


def _combined(model: MLP | Ensemble, rows: Labelled, folds: Tensor | None, link: str) -> Tensor:
    """The held-out rows' logits ``(n, out)`` of a whole model (its members averaged)."""
    logits, per_member = held_out_logits(model, rows, folds)
    if per_member:  # (K, n, out) on the validation rows
        weights = getattr(model, "member_weights", None)
        logits = mean_probability_logits(logits, link, class_dim=-1, weights=weights)
    return logits.double().cpu()


def fit_linear_weight(
    networks: MLP | Ensemble,
    linear: MLP | Ensemble,
    task: Task,
    rows: Labelled,
    folds: Tensor | None = None,
) -> float:
    """The linear models' share ``w`` that minimises the held-out rows' log loss (see above).

    ``rows`` are the validation rows, or with ``folds`` ``(K, n)`` the training rows of a
    cross-fitted pair of ensembles (member k of each held out the rows of fold k). Returns 0
    where the best share is below :data:`MIN_LINEAR_WEIGHT`.
    """
    both = torch.stack(
        [_combined(networks, rows, folds, task.link), _combined(linear, rows, folds, task.link)]
    )  # (2, n, out)
    targets = rows.y.cpu()
    loss_fn = task.loss_fn(targets, None, 0.0)

    def loss(weight: float) -> float:
        shares = torch.tensor([1.0 - weight, weight], dtype=torch.float64)
        return float(loss_fn(mean_probability_logits(both, task.link, -1, shares), targets))

    found = minimize_scalar(
        loss, bounds=(0.0, MAX_LINEAR_WEIGHT), method="bounded", options={"xatol": 1e-4}
    )
    weight = float(found.x)
    return weight if weight >= MIN_LINEAR_WEIGHT else 0.0


def blend_in_logistic(
    networks: MLP | Ensemble,
    task: Task,
    loss_fn: torch.nn.Module,
    train: Labelled,
    held_out: Labelled,
    folds: Tensor | None,
    columns: Tensor | None = None,
) -> MLP | Ensemble:
    """``networks`` blended with as many logistic regressions, or alone where w comes out 0.

    The logistic regressions fit ``train`` (each member its own folds' rows) from zero weights
    and the class log-odds, so no seed is involved; the share is chosen on ``held_out`` (the
    validation rows, or ``train`` itself when cross-fitted: see :func:`fit_linear_weight`).
    ``columns`` ``(in_features,)`` bool: the encoded features they may use (the others keep a
    weight of 0): the plain columns, not their piecewise-linear bins, so that they are the
    logistic regression a user would fit.
    """
    config = networks.config
    linear_members = dataclasses.replace(linear_config(config), ensemble=config.ensemble)
    linear = empty_model(linear_members, task.link)  # its weights are fitted from zero below
    start_at_prior(
        linear, task, train.y.cpu(), None if train.weight is None else train.weight.cpu()
    )
    linear = linear.to(device=train.X.device, dtype=train.X.dtype)
    fit_logistic(linear, loss_fn, train, folds, columns)
    weight = fit_linear_weight(networks, linear, task, held_out, folds)
    return blended(networks, linear, weight, task.link) if weight > 0 else networks


def blended(networks: MLP | Ensemble, linear: MLP | Ensemble, weight: float, link: str) -> Ensemble:
    """One model: the networks' members, then the linear ones, weighing ``weight`` together.

    ``linear`` has as many members as ``networks``, each a one-layer MLP on the same inputs.
    """
    config = dataclasses.replace(networks.config, linear_weight=weight)
    return Ensemble(members_of(networks) + members_of(linear), link, config)


__all__ = ["MIN_LINEAR_WEIGHT", "blend_in_logistic", "blended", "fit_linear_weight", "fit_logistic"]
