"""``python -m torchclf``: the same as the ``torchclf`` command."""

from torchclf.cli import main

main()
