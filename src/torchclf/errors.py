"""The torchclf exception hierarchy.

Every error torchclf raises on purpose is a :class:`TorchclfError`, so an application (or the CLI)
can catch them all in one place. The subclasses also derive from the matching built-in exception,
so code that expects a ``ValueError`` for bad input keeps working.
"""

from __future__ import annotations


class TorchclfError(Exception):
    """Base class of every error raised by torchclf."""


class ConfigError(TorchclfError, ValueError):
    """A parameter or configuration value is invalid."""


class DataError(TorchclfError, ValueError):
    """Features or targets are missing, malformed or inconsistent."""


class ModelFileError(TorchclfError):
    """A model file cannot be read: not a torchclf model, corrupt, or from a newer version."""


class TrainingError(TorchclfError, RuntimeError):
    """Training cannot continue, for example because the loss became NaN or infinite."""


class TrainingDiverged(TrainingError):
    """The training loss became NaN or infinite.

    The advice names the parameters to change, and each face of torchclf names them its own way
    (``lr=`` in Python, ``--lr`` on the command line, ``learning_rate=`` in the estimator), so the
    error keeps its facts and :meth:`advice` words them for the face that reports it.
    """

    def __init__(self, loss: float, epoch: int, lr: float, suggested_lr: float) -> None:
        self.loss, self.epoch, self.lr, self.suggested_lr = loss, epoch, lr, suggested_lr
        super().__init__(self.advice())

    def advice(self, lr: str = "lr={}", grad_clip: str | None = "grad_clip={}") -> str:
        """The message, with ``lr`` and ``grad_clip`` as templates of that face's parameters."""
        message = (
            f"the training loss became {self.loss} at epoch {self.epoch} with "
            f"{lr.format(f'{self.lr:g}')}: training diverged. Lower the learning rate (for "
            f"example {lr.format(f'{self.suggested_lr:g}')})"
        )
        if grad_clip is not None:
            message += f" or clip the gradients (for example {grad_clip.format(1)})"
        return message


class CheckpointError(TorchclfError, OSError):
    """A checkpoint cannot be written (a full disk, a read-only folder) or read."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped at Ctrl-C after writing a checkpoint it can be resumed from.

    A ``KeyboardInterrupt``, as the Ctrl-C it answers (so ``except Exception`` does not swallow
    it), that says where: ``epoch`` (the one in progress) and ``folder`` (the checkpoints).
    """

    def __init__(self, epoch: int, folder: object) -> None:
        self.epoch, self.folder = epoch, folder
        super().__init__(f"training interrupted at epoch {epoch}; a checkpoint is in '{folder}'")


class TorchclfWarning(UserWarning):
    """Something worth knowing that does not stop the work, e.g. unseen categories at predict."""
