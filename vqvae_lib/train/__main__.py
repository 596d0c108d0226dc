"""``python -m vqvae_lib.train --preset cpu [--resume] [--<field> value ...]`` (also under torchrun)."""

import sys

from .cli import main

sys.exit(main())
