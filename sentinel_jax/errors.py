"""The one base class for bad input, so entry points can report it cleanly.

Every reader and validator raises a subclass of :class:`InputError` with one
message naming the file, line or key and what was expected. Experiment scripts
turn it into that message on stderr and exit status 2; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad input: a file, flag, key or value that is not what was expected."""
