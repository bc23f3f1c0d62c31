"""inrkit: efficient implicit neural representations.

Fit coordinate networks to images, volumes and shapes, make them small (pruning,
AIRe), make them bytes (SINR), fit many related signals fast (Meta-INR), and mesh
them for ParaView (PruningAMR).
"""
from inrkit import _program  # noqa: F401  (Ctrl-C while the inrkit command starts: one line)
from inrkit.errors import InrkitError, InvalidFileError, InvalidInputError

__version__ = "0.1.0"
__all__ = ["InrkitError", "InvalidFileError", "InvalidInputError", "__version__"]
