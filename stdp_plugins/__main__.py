"""``python -m stdp_plugins``: the ``stdp-plugins`` command (:func:`stdp_plugins.cli.main`),
also what ``torchrun -m stdp_plugins train ...`` starts on every rank."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
