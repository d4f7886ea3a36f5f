"""The JSON API under /-/scisearch: search, items and similar items."""

ROUTES: list = []
