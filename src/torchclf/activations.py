"""``torchclf.activations``, the public name of :mod:`torchclf.nn.activations`: the same module."""

import sys

from torchclf.nn import activations as _module
from torchclf.nn.activations import *  # noqa: F403  (the names type checkers see)

sys.modules[__name__] = _module
