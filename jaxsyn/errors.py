"""Errors jaxsyn raises on purpose.

Every message names the file (or config field), what was found and what was expected, so the CLI
can print it as one line. Anything else that escapes is a bug and keeps its traceback.
"""

from __future__ import annotations


class JaxsynError(Exception):
    """Base class: an error the user can fix from the message alone."""


class DataError(JaxsynError):
    """An input file or table is unreadable, malformed or inconsistent."""


class ConfigError(JaxsynError):
    """A config field, CLI flag or argument has a value we cannot use."""


class CheckpointError(JaxsynError):
    """A checkpoint is missing, corrupt or does not match the config."""
