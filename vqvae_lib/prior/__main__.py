"""``python -m vqvae_lib.prior train|sample ...``"""

import sys

from .fit import main

sys.exit(main())
