"""The one line between a mistake the user can fix and a bug.

A :class:`UserError` is something the person running riskstrat can put right (a bad option,
a missing file, settings that cannot be used, data too thin to train on); its message is a
sentence for them, and the command line prints it as one line and exits 2. Any other
exception is a bug and keeps its traceback. ``UserError`` is a ``ValueError`` so that code
catching ``ValueError`` around the older error classes keeps working.
"""

from __future__ import annotations


class UserError(ValueError):
    """A mistake the user can fix; the message says what and, where it can, how."""


class MissingInputError(UserError, FileNotFoundError):
    """An input the user named (a table, a finished run, an access file) is not there.

    Also a ``FileNotFoundError``, so callers that answer a missing file (the service's 404s)
    keep catching it."""
