"""python -m inrkit: the inrkit command."""
import sys

from .cli import main

sys.exit(main())
