"""``python -m pwes.synthetic PRESET --out DIR``."""

import sys

from pwes.synthetic.cli import main

sys.exit(main())
