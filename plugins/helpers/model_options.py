"""Reading the model taggers' options from metadata.yml, with messages a person can act on."""

from __future__ import annotations

from typing import Any

from datasette_scisearch.tagging.tagger import TaggerUnavailable


def number_option(options: dict[str, Any], tagger: str, key: str, default: float, low: float, high: float) -> float:
    """``options[key]`` as a number between ``low`` and ``high`` (``default`` when absent)."""
    value = options.get(key, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not low <= number <= high:  # NaN fails here too
        raise TaggerUnavailable(
            f"'{key}' under taggers: {tagger}: must be a number from {low:g} to {high:g}, not {value!r}"
        )
    return number


def count_option(options: dict[str, Any], tagger: str, key: str, default: int, low: int = 1, high: int = 10_000) -> int:
    """``options[key]`` as a whole number between ``low`` and ``high``."""
    number = number_option(options, tagger, key, default, low, high)
    if number != int(number):
        raise TaggerUnavailable(f"'{key}' under taggers: {tagger}: must be a whole number, not {options.get(key)!r}")
    return int(number)
