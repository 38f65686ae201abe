"""``torchclf.improve``, the public name of :mod:`torchclf.training.improve`: the same module."""

import sys

from torchclf.training import improve as _module
from torchclf.training.improve import *  # noqa: F403  (the names type checkers see)

sys.modules[__name__] = _module
