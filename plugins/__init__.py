"""The built-in taggers, installed as ``scisearch_taggers`` and registered through entry points like any plugin."""
