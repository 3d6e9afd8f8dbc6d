"""``python -m pyro_vaes ...`` runs the ``pyro-vaes`` command (also under ``torchrun``)."""

import sys

from pyro_vaes.cli import main

sys.exit(main())
