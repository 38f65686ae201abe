"""Temperature scaling: one number, fitted on rows the model never trained on, that tempers it.

A network early-stopped on its validation loss can still be a little over- or under-confident;
an ensemble's averaged probabilities are often a little timid. Dividing every member's logits by
one temperature ``T`` (``T > 1`` softens, ``T < 1`` sharpens) keeps each row's ranking of the
classes and moves its probabilities towards the frequencies seen. ``T`` minimises the log loss
of the validation rows, or, for a cross-fitted ensemble, of each training row as predicted by the
one member that never trained on it (out of fold). The model keeps it in its config
(``ModelConfig.temperature``), so it travels in the model file.
"""

from __future__ import annotations

import dataclasses
import math

import torch
from scipy.optimize import minimize_scalar  # type: ignore[import-untyped]
from torch import Tensor

from torchclf.data.labelled import Labelled
from torchclf.nn.losses import mean_probability_logits
from torchclf.nn.models import MLP, Ensemble, members_of
from torchclf.tasks import Task

# at most 4x sharper or softer: beyond, one more row could move the log loss a long way
LOG_T_BOUNDS = (math.log(0.25), math.log(4.0))
# A prior against sharpening: log T below 0 is taken as normal about 0 with this spread.
# Held-out rows that are all right would otherwise sharpen to the bound (the lesson's circles
# gave probabilities of 1e-8), and a few confident mistakes later cost the most; softening an
# over-confident model is never held back. The rows' evidence grows with their number, so the
# prior weighs 1/n against their mean loss.
LOG_T_PRIOR_SD = 0.5


@torch.inference_mode()
def held_out_logits(
    model: torch.nn.Module, rows: Labelled, folds: Tensor | None = None
) -> tuple[Tensor, bool]:
    """The logits of rows the model did not train on, and whether they are per member.

    Without ``folds``: each member's logits of the validation ``rows``, ``(M, n, out)``. With
    ``folds`` ``(K, n)`` (a cross-fitted ensemble; ``rows`` are its training rows): each row's
    logits from the one member that held it out, ``(n, out)``; in a blend
    (:mod:`torchclf.training.blend`), from that network and linear member together, at their
    weights.
    """
    model.eval()
    members = members_of(model)
    X = rows.X
    if folds is None:
        return torch.stack([member(X) for member in members]), True
    logits = torch.empty(len(X), members[0].config.out_features, dtype=X.dtype, device=X.device)
    weight = model.config.linear_weight if isinstance(model, Ensemble) else 0.0
    shares = torch.tensor([1.0 - weight, weight], dtype=torch.float64)
    n_folds = len(folds)
    for fold, trained_on in enumerate(folds):
        held_out = ~trained_on.to(X.device)
        X_held = X[held_out]
        # the fold's network, and in a blend its linear member (the members after the networks)
        group = members[fold::n_folds]
        if not isinstance(model, Ensemble) or len(group) == 1:
            logits[held_out] = group[0](X_held)
        else:
            fold_logits = torch.stack([member(X_held) for member in group])
            logits[held_out] = mean_probability_logits(fold_logits, model.link, -1, shares)
    return logits, False


def fit_temperature(
    model: MLP | Ensemble, task: Task, rows: Labelled, folds: Tensor | None = None
) -> float:
    """The temperature that minimises the log loss of the held-out rows (see the module).

    Its logarithm is the most probable under the held-out rows' likelihood and a half-normal
    prior against sharpening (:data:`LOG_T_PRIOR_SD`), within :data:`LOG_T_BOUNDS`.
    """
    logits, per_member = held_out_logits(model, rows, folds)
    logits, targets = logits.double().cpu(), rows.y.cpu()
    weights = getattr(model, "member_weights", None)
    loss_fn = task.loss_fn(targets, None, 0.0)

    def loss(log_t: float) -> float:
        scaled = logits / math.exp(log_t)
        if per_member:  # (M, n, out): the ensemble's averaged probabilities, as logits
            scaled = mean_probability_logits(scaled, task.link, class_dim=-1, weights=weights)
        prior = min(log_t, 0.0) ** 2 / (2 * LOG_T_PRIOR_SD**2 * len(targets))
        return float(loss_fn(scaled, targets)) + prior

    found = minimize_scalar(loss, bounds=LOG_T_BOUNDS, method="bounded", options={"xatol": 1e-4})
    return math.exp(float(found.x))


def set_temperature(model: MLP | Ensemble, temperature: float) -> None:
    """Divide the model's (each member's) logits by ``temperature`` from now on."""
    for module in (model, *members_of(model)):
        module.config = dataclasses.replace(module.config, temperature=temperature)


__all__ = ["fit_temperature", "held_out_logits", "set_temperature"]
