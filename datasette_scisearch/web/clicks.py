"""The search log: what a search showed, in order, and the click beacon."""

ROUTES: list = []
