"""python -m inrkit: the inrkit command."""
import sys

from inrkit.cli import main

sys.exit(main())
