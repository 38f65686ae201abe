"""``torchclf.plots``, the public name of :mod:`torchclf.evaluation.plots`: the same module."""

import sys

from torchclf.evaluation import plots as _module
from torchclf.evaluation.plots import *  # noqa: F403  (the names type checkers see)

sys.modules[__name__] = _module
