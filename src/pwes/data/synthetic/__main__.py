"""``python -m pwes.data.synthetic PRESET --out DIR``."""

import sys

from pwes.data.synthetic.cli import main

sys.exit(main())
