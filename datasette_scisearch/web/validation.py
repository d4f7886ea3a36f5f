"""Experts validating tags in the browser: accept, reject, edit, add; the queue page."""

ROUTES: list = []
