"""Errors that are the user's to fix: bad input files, options or configs.

The CLI prints these as one line (``error: FILE: problem``) and exits with status 2; any
other exception is a bug in ``asr`` and shows its traceback, so that it can be reported.
"""


class UserError(ValueError):
    """A problem with what the user gave (a file, an option, a config); the message names it."""


class ConfigError(UserError):
    """An option or config value that is not allowed."""
