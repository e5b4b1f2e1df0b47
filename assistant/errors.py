"""Errors a user can fix: the CLI prints their message (what was wrong, what to do) and exits non-zero."""


class UserError(Exception):
    """A mistake or missing piece the user can fix; never shown as a traceback."""

    exit_code = 2
