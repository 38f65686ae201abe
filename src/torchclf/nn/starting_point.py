"""Where a model starts from its data: the auto width, and the output bias at the class prior."""

from __future__ import annotations

import torch
from torch import Tensor

from torchclf.nn.models import members_of
from torchclf.tasks import Task


def start_at_prior(
    model: torch.nn.Module, task: Task, targets: Tensor, weights: Tensor | None = None
) -> None:
    """Set the last linear layer's bias ``(n_outputs,)`` to the targets' class log-odds.

    Each member of an ensemble starts there.
    """
    prior = task.prior_logits(targets, weights)
    for member in members_of(model):
        set_output_bias(member, prior)


@torch.no_grad()
def set_output_bias(model: torch.nn.Module, bias: Tensor) -> None:
    """Copy ``bias`` ``(n_outputs,)`` into the model's last linear layer."""
    output = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    output.bias.copy_(bias)


def auto_hidden(n_inputs: int, n_outputs: int) -> tuple[int, int]:
    """Two hidden layers of width ``2 * (inputs + outputs)``, clamped to [10, 128].

    Wide enough for 64-pixel digits, and exactly the tutorial's 10-10 on its 2-feature data.
    """
    width = max(10, min(128, 2 * (n_inputs + n_outputs)))
    return (width, width)


__all__ = ["auto_hidden", "set_output_bias", "start_at_prior"]
