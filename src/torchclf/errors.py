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


class TorchclfWarning(UserWarning):
    """Something worth knowing that does not stop the work, e.g. unseen categories at predict."""
