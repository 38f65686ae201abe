"""What a parameter may hold, and the one way torchclf says a value is not allowed.

A constraint answers two questions about a value: is it allowed (:meth:`Constraint.accepts`),
and how to say what is allowed (:meth:`Constraint.describe`). Every message about a bad
parameter value is built by :func:`problem`, scikit-learn's template::

    The 'lr' parameter must be a float in the range (0.0, inf). Got -1 instead.

and every "Did you mean" by :func:`did_you_mean`. :mod:`torchclf.config` declares each
parameter's constraint once; the configs, the estimator and the command line check against it.
"""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from torchclf.errors import ConfigError


def did_you_mean(value: object, choices: Iterable[str]) -> str:
    """``" Did you mean 'x'?"`` for the closest of ``choices`` to ``value``, or ``""``."""
    close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


class Constraint:
    """What one parameter may hold. Subclasses define ``accepts`` and ``describe``."""

    def accepts(self, value: Any) -> bool:
        """True when ``value`` is allowed."""
        raise NotImplementedError

    def describe(self) -> str:
        """What is allowed, as the middle of the template: "one of [...]", "an int in ..."."""
        raise NotImplementedError

    def hint(self, value: Any) -> str:
        """What ends the message about ``value``: nothing, or a suggestion."""
        return ""


@dataclass(frozen=True)
class Interval(Constraint):
    """An int (``kind=int``) or a float between ``low`` and ``high``.

    ``closed`` says which ends belong to it: "both", "left", "right" or "neither".
    """

    kind: type
    low: float
    high: float = math.inf
    closed: str = "both"

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool):
            return False
        if self.kind is int and not isinstance(value, numbers.Integral):
            return False
        if not isinstance(value, numbers.Real):
            return False
        number = float(value)
        low_ok = number >= self.low if self.closed in ("both", "left") else number > self.low
        high_ok = number <= self.high if self.closed in ("both", "right") else number < self.high
        return bool(low_ok and high_ok)

    def describe(self) -> str:
        kind = "an int" if self.kind is int else "a float"
        left = "[" if self.closed in ("both", "left") else "("
        right = "]" if self.closed in ("both", "right") and self.high != math.inf else ")"
        return f"{kind} in the range {left}{self.low}, {self.high}{right}"


@dataclass(frozen=True)
class Options(Constraint):
    """One of a few values (strings, mostly); a near miss gets a "Did you mean"."""

    choices: tuple[Any, ...]

    def accepts(self, value: Any) -> bool:
        try:
            return value in self.choices
        except TypeError:  # an unhashable or incomparable value is not one of them
            return False

    def describe(self) -> str:
        return f"one of {list(self.choices)}"

    def hint(self, value: Any) -> str:
        return did_you_mean(value, self.choices)


@dataclass(frozen=True)
class NoneOr(Constraint):
    """None, or what ``other`` allows."""

    other: Constraint

    def accepts(self, value: Any) -> bool:
        return value is None or self.other.accepts(value)

    def describe(self) -> str:
        return self.other.describe()  # None is the default, not something to suggest


def problem(name: str, value: Any, constraint: Constraint) -> str | None:
    """The one message about ``value`` of parameter ``name``, or None when it is allowed."""
    if constraint.accepts(value):
        return None
    return (
        f"The '{name}' parameter must be {constraint.describe()}. Got {value!r} instead."
        f"{constraint.hint(value)}"
    )


def check_all(values: Iterable[tuple[str, Any, Constraint]]) -> None:
    """Raise one :class:`ConfigError` naming every ``(name, value, constraint)`` not allowed."""
    problems = [p for name, value, c in values if (p := problem(name, value, c)) is not None]
    if problems:
        raise ConfigError(" ".join(problems))


__all__ = [
    "Constraint",
    "Interval",
    "NoneOr",
    "Options",
    "check_all",
    "did_you_mean",
    "problem",
]
