"""Signing in fills ``people``: an account id not yet anyone's becomes a person (people.py's
``fill_from_sign_in``), so staff can join it to the person it is, and a user log that books the instrument under
that account puts them on its team at once.

A sign-in is seen where it happens, whichever plugin does it: a response that sets Datasette's ``ds_actor``
cookie (datasette-auth-passwords' ``/-/login``, or any other that signs actors in the standard way), read with
Datasette's own signature check.  An actor that comes with each request instead (a password in an Authorization
header) is filled at its first request to a scisearch route that asks who may see what (web/base.py's
``hidden_proposals``); both through web/base.py's ``fill_people``.
"""

from __future__ import annotations

from http.cookies import CookieError, SimpleCookie

from itsdangerous import BadSignature

from .base import fill_people

ACTOR_COOKIE = "ds_actor"


def asgi_wrapper(datasette):
    """Watch responses for a sign-in (a ``ds_actor`` cookie set) and fill ``people`` from its actor."""

    def wrap(app):
        async def watched(scope, receive, send):
            if scope.get("type") != "http" or scope.get("method") != "POST":
                return await app(scope, receive, send)

            async def watching(message):
                if message.get("type") == "http.response.start":
                    actor = signed_in_actor(datasette, message.get("headers") or [])
                    if actor is not None:
                        await fill_people(datasette, actor)
                await send(message)

            return await app(scope, receive, watching)

        return watched

    return wrap


def signed_in_actor(datasette, headers) -> dict | None:
    """The actor a response signs in (the ``ds_actor`` cookie it sets, its signature checked), if any."""
    for name, value in headers:
        if name.lower() != b"set-cookie" or ACTOR_COOKIE.encode() not in value:
            continue
        cookie = SimpleCookie()
        try:
            cookie.load(value.decode("latin-1"))
            signed = datasette.unsign(cookie[ACTOR_COOKIE].value, "actor")
        except (CookieError, KeyError, BadSignature, UnicodeDecodeError):  # a cookie cleared, or forged
            continue
        actor = signed.get("a") if isinstance(signed, dict) else None
        if isinstance(actor, dict) and actor.get("id") not in (None, ""):
            return actor
    return None
