"""``torchclf.sweep``, the public name of :mod:`torchclf.training.sweep`: the same module."""

import sys

from torchclf.training import sweep as _module
from torchclf.training.sweep import *  # noqa: F403  (the names type checkers see)

sys.modules[__name__] = _module
