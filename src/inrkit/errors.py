"""User-facing errors. The CLI prints them as one line and exits with code 2."""


class InrkitError(Exception):
    """Base class of every error a user can cause (bad input, bad file)."""


class InvalidInputError(InrkitError, ValueError):
    """A bad argument or bad data: NaN values, an empty image, wrong dimensions."""


class InvalidFileError(InrkitError, ValueError):
    """A file that is missing, truncated, altered or of an unsupported format."""


class InrkitWarning(UserWarning):
    """Something a user should know that does not stop the command (shown as ``inrkit: warning: ...``)."""


def warn(message: str, category: type[InrkitWarning] = InrkitWarning) -> None:
    """Issue an :class:`InrkitWarning` (or a subclass; no source line of ours in the message)."""
    import warnings

    warnings.warn_explicit(message, category, "inrkit", 0)
