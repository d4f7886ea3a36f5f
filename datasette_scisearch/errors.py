"""One family of errors: every error the package raises is a ``ScisearchError``.

An error carries what went wrong (``message``), what a person can do about it (``fix``) and its ``kind``,
which is all the two front doors need: the ``scisearch`` command prints ``error: <message>`` and
``hint: <fix>`` and exits 1 (cli.py), the web layer answers with the kind's status code as a page or as JSON
(web/errors.py).  Each room keeps its own subclass (``CatalogError``, ``QueryError`` …) so a caller can catch
one room's errors, and nothing outside needs to know them by name.
"""

from __future__ import annotations

# The kinds, and the HTTP status each one is answered with.
BAD_INPUT = "bad input"
NOT_FOUND = "not found"
FORBIDDEN = "forbidden"
CONFLICT = "conflict"
GONE = "gone"  # was here and is no more, for good as far as anyone knows (a file deleted from its folder)
BUSY = "busy"  # busy or unavailable: try again later, or once something is installed
WRONG_METHOD = "wrong method"
TOO_LARGE = "too large"

STATUS_OF_KIND = {
    BAD_INPUT: 400,
    FORBIDDEN: 403,
    NOT_FOUND: 404,
    WRONG_METHOD: 405,
    CONFLICT: 409,
    GONE: 410,
    TOO_LARGE: 413,
    BUSY: 503,
}
KIND_OF_STATUS = {status: kind for kind, status in STATUS_OF_KIND.items()}


class ScisearchError(Exception):
    """Something a person can act on: ``message`` says what was wrong, ``fix`` (when known) what to do.

    ``kind`` is a class default that one error may override; ``status`` is accepted for the web layer's
    older ``Error(message, 404)`` spelling and becomes the kind it stands for.
    """

    kind: str = BAD_INPUT
    fix: str | None = None

    def __init__(
        self, message: str = "", status: int | None = None, *, fix: str | None = None, kind: str | None = None
    ):
        super().__init__(message)
        self.message = str(message)
        if fix is not None:
            self.fix = fix
        if status is not None:
            kind = KIND_OF_STATUS.get(status, kind)
        if kind is not None:
            if kind not in STATUS_OF_KIND:
                raise ValueError(f"unknown kind of error {kind!r}: use one of {', '.join(STATUS_OF_KIND)}")
            self.kind = kind

    @property
    def status(self) -> int:
        """The HTTP status code for this error's kind."""
        return STATUS_OF_KIND[self.kind]
