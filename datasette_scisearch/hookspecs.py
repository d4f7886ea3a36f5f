"""The whole plugin surface of datasette-scisearch.

A plugin is a module (found through the ``datasette_scisearch`` entry-point
group) that implements one or more of these hooks with ``@hookimpl``.
"""

from pluggy import HookimplMarker, HookspecMarker

hookspec = HookspecMarker("datasette_scisearch")
hookimpl = HookimplMarker("datasette_scisearch")


@hookspec
def register_loaders(register):
    """Call register(loader) for each FileLoader or RecordLoader this plugin provides."""


@hookspec
def register_taggers(register):
    """Call register(tagger) for each Tagger this plugin provides."""


@hookspec
def register_commands(cli):
    """Add click commands or groups to the ``scisearch`` command-line tool."""
