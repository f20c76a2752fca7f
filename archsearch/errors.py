"""The one base class for bad user input: the CLI prints these without a traceback and exits with 2."""


class UserError(Exception):
    """Invalid input from the user (a file, an argument, a URL): the message says what and what is allowed."""


def first_line(err: BaseException | str, limit: int | None = None) -> str:
    """How a one-line report names a failure: the first line of its message (for an error SQLAlchemy wraps, the
    database driver's own, `err.orig`), or the exception's type when the message is empty; a stored error's text,
    its first line. Cut to `limit` characters, the last an ellipsis."""
    if isinstance(err, str):
        text, fallback = err.strip(), ""
    else:
        orig = getattr(err, "orig", None) or err
        text, fallback = str(orig).strip(), type(orig).__name__
    line = text.splitlines()[0] if text else fallback
    return line if limit is None or len(line) <= limit else line[: limit - 1] + "…"
