"""User-facing errors: the CLI prints their message on stderr and exits non-zero, without a traceback."""


class ClirOtError(Exception):
    """A mistake in input, configuration or environment that the user can fix.

    The message must say what is wrong and how to fix it.
    """


class DataUnavailableError(ClirOtError):
    """Data that a command needs is not available on this machine (e.g. a MIRACL corpus offline)."""


class ExclusionError(ClirOtError):
    """An evaluation (excluded) language was found in data meant for training."""
