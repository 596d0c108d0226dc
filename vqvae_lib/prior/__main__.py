"""``python -m vqvae_lib.prior train|sample|score ...`` (see :mod:`vqvae_lib.prior.cli`)."""

import sys

from .cli import main

sys.exit(main())
