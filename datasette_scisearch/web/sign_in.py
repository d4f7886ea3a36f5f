"""Signing in fills ``people``: an account id not yet anyone's becomes a person (people.py's
``fill_from_sign_in``), so staff can join it to the person it is, and a user log that books the instrument under
that account puts them on its team at once.

A sign-in is seen where it happens, whichever plugin does it: a response that sets Datasette's ``ds_actor``
cookie (datasette-auth-passwords' ``/-/login``, or any other that signs actors in the standard way), read with
Datasette's own signature check.  An actor that comes with each request instead (a password in an Authorization
header) is filled at its first request to a scisearch route that asks who may see what (``fill_people``, from
web/base.py's ``hidden_proposals``).
"""

from __future__ import annotations

from http.cookies import CookieError, SimpleCookie

import sqlite_utils
from datasette.utils.sqlite import sqlite3
from itsdangerous import BadSignature

from .. import people
from ..errors import ScisearchError
from ..private import is_private_file
from .base import catalog_schema

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


async def fill_people(datasette, actor: dict, databases=None) -> None:
    """Make the actor a person in each catalog served from a file that can be written (every one, or those
    given); a catalog that cannot be written is left as it is, with a warning, and the sign-in goes on."""
    for name, db in list((databases or datasette.databases).items()):
        if not db.is_mutable or not db.path or is_private_file(db.path) or catalog_schema(datasette, name) is None:
            continue
        try:
            await db.execute_write_fn(lambda conn: people.fill_from_sign_in(sqlite_utils.Database(conn), actor))
        except (sqlite3.Error, ScisearchError, OSError) as error:
            print(f"warning: could not add the signed-in account {actor.get('id')!r} to the people of {name}: {error}")
