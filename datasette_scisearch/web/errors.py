"""The web layer's one error handler: any ScisearchError becomes its kind's status code, as a page or as JSON.

Routes raise (``PageError``, ``ApiError``, ``ValidationError``, or whatever the library raised: a
``QueryError``, an expert's ``Conflict``); Datasette's ``handle_exception`` hook (web/__init__.py) and the
routes that answer errors themselves both end here, so an error looks the same wherever it happens.
"""

from __future__ import annotations

from datasette.utils.asgi import Response

from ..errors import FORBIDDEN, GONE, NOT_FOUND, ScisearchError

HEADINGS = {FORBIDDEN: "Not allowed", NOT_FOUND: "Not found", GONE: "No longer there"}


def wants_json(request) -> bool:
    """A JSON client: it asks for JSON, sends JSON, or calls a .json URL."""
    accept = request.headers.get("accept", "")
    content_type = request.headers.get("content-type", "")
    return "application/json" in accept or content_type.startswith("application/json") or request.path.endswith(".json")


def error_json(error: ScisearchError) -> Response:
    body = {"ok": False, "error": error.message, "status": error.status}
    if error.fix:
        body["fix"] = error.fix
    return Response.json(body, status=error.status)


async def error_page(datasette, request, error: ScisearchError, page: str = "error", heading: str | None = None):
    html = await datasette.render_template(
        "scisearch_error.html",
        {
            "scisearch_page": page,
            "error": error.message,
            "fix": error.fix,
            "status": error.status,
            "heading": HEADINGS.get(error.kind, heading or "This request was not answered"),
        },
        request=request,
        view_name="scisearch",
    )
    return Response.html(html, status=error.status)


async def error_response(datasette, request, error: ScisearchError, page: str = "error", heading: str | None = None):
    """JSON for a JSON client, a page for a browser; the status code from the error's kind."""
    if wants_json(request):
        return error_json(error)
    return await error_page(datasette, request, error, page, heading)


def answers_errors(handler):
    """Wrap a route so that any ScisearchError it raises is answered here (JSON routes need nothing else)."""

    async def wrapped(request, datasette):
        try:
            return await handler(request, datasette)
        except ScisearchError as error:
            return await error_response(datasette, request, error)

    wrapped.__name__ = handler.__name__
    return wrapped
