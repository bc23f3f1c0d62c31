"""User-facing errors. The CLI prints them as one line and exits with code 2."""


class InrkitError(Exception):
    """Base class of every error a user can cause (bad input, bad file)."""


class InvalidInputError(InrkitError, ValueError):
    """A bad argument or bad data: NaN values, an empty image, wrong dimensions."""


class InvalidFileError(InrkitError, ValueError):
    """A file that is missing, truncated, altered or of an unsupported format."""
