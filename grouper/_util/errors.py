"""Errors shared by every layer. ``InputError`` is the caller's fault (exit 2); a
``CorruptInputError`` is a broken file (exit 1)."""

__all__ = ["CorruptInputError", "InputError", "first_line"]


class InputError(ValueError):
    """Input that cannot be grouped at all (missing or repeated column, wrong column type)."""


class CorruptInputError(ValueError):
    """Arrow data whose buffers contradict themselves: offsets out of order or outside their
    buffer, a dictionary index out of range, invalid UTF-8 where text is parsed. Raised before
    anything reads outside an array (a crafted IPC file, a buggy C-stream producer); not an
    ``InputError``: the file is broken, not the way it was called (``drg`` exits 1)."""


def first_line(exc: BaseException) -> str:
    """An exception's message as one line (its first), or its type's name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
