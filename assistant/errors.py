"""Errors a user can fix: the CLI prints their message (what was wrong, what to do) and exits non-zero."""


class UserError(Exception):
    """A mistake or missing piece the user can fix; never shown as a traceback."""

    exit_code = 2


def check_text(text: str, what: str) -> str:
    """`text` when it is valid Unicode; a UserError naming `what` when it holds bytes that were
    not UTF-8 (Python keeps them as lone surrogates in argv and in surrogateescape streams)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UserError(f"{what} is not valid UTF-8 text; give UTF-8 (or plain ASCII)") from None
    return text
