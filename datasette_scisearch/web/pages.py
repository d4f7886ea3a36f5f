"""The HTML pages under /-/scisearch: the search page and the item page."""

ROUTES: list = []
