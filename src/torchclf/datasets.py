"""``torchclf.datasets``, the public name of :mod:`torchclf.data.datasets`: the same module."""

import sys

from torchclf.data import datasets as _module
from torchclf.data.datasets import *  # noqa: F403  (the names type checkers see)

sys.modules[__name__] = _module
