"""`python -m lossnet ...` (and `torchrun ... -m lossnet train-style ...`): the command line."""
import sys

from .cli import main

sys.exit(main())
