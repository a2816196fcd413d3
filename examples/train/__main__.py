"""``python -m examples.train``: see `examples.train`."""

from examples.train.cli import main

main()
