"""datasette-scisearch: make a user facility's instrument data findable.

The package is the core of the suite: catalog schema, plugin manager, ingest,
context linking, the Datasette hooks and the ``scisearch`` command.  Loaders and
taggers are plugins; nothing here names a built-in one.
"""

__version__ = "0.1.0"
