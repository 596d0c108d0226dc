"""``python -m vqvae_lib.evaluate --checkpoint runs/<preset>/checkpoints/best.pt --split test``"""

import sys

from .score import main

sys.exit(main())
