"""``torchclf.report``, the public name of :mod:`torchclf.evaluation.report`: the same module."""

import sys

from torchclf.evaluation import report as _module
from torchclf.evaluation.report import *  # noqa: F403  (the names type checkers see)

sys.modules[__name__] = _module
