"""Built-in loaders of datasette-scisearch, installed as ``scisearch_loaders``.

Each module is a plugin registered through the ``datasette_scisearch`` entry
points in pyproject.toml, exactly as a third-party loader package would be.
"""
