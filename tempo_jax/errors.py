"""The one base class of errors a user can fix (a path, a setting, a file's contents).

The CLI prints such an error as a single line — its message already names the thing, where
it is and what to do — and keeps the traceback for ``-v``. Every module's own error type
(``DataError``, ``ConfigError``, ``CheckpointError`` …) derives from it, next to the builtin
it has always been (``ValueError``, ``RuntimeError``) so existing ``except`` clauses still hold.
"""

from __future__ import annotations


class UserError(Exception):
    """An error caused by input the user controls; its message is complete without a traceback."""
