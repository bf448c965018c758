"""Errors that are the user's to fix. The CLI prints them as one line on
stderr and exits with code 2; anything else is a bug and keeps its traceback."""


class RnnkitError(Exception):
    """An expected problem with the input, named with its fix."""


class ConfigError(RnnkitError, ValueError):
    """A setting has a value outside what it accepts."""


class DataError(RnnkitError):
    """A corpus or text cannot be used as given."""


class CheckpointError(RnnkitError):
    """A run folder is missing, corrupt or from an incompatible version."""


class TrainingError(RnnkitError):
    """Training cannot go on (for example, the loss became non-finite)."""
