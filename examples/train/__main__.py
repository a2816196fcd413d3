"""``python -m examples.train``: see :mod:`examples.train`."""

from examples.train.cli import main

main()
