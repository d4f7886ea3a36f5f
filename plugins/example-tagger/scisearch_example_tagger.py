"""An example datasette-scisearch tagger: which files were taken after hours.

Facility staff want to know what ran at night and at the weekend: unattended
overnight acquisitions, sessions nobody booked, what the on-call person may be
asked about.  The catalog already holds each file's facility-local acquisition
time (``acquired_local``) and where that time came from
(``acquired_at_source``), so the tagger needs no model and no pixels: it reads
the row and says "night", "weekend" and "after hours".

Copy this file to start your own tagger; README.md says how to install it.
"""

from __future__ import annotations

import datetime as dt

from datasette_scisearch import ItemError, Result, Tag, Tagger, TaggerUnavailable, hookimpl


class AfterHoursTagger(Tagger):
    name = "after_hours"  # tags are stored with this name as their source
    version = "1"  # raise it when the rules change: the next `scisearch tag` re-tags every file
    description = "Files acquired at night or at the weekend, from the facility-local acquisition time"
    applies_to = frozenset({"file"})  # only files have an acquisition time
    needs_pixels = False  # reads the catalog row, never the data
    tag_category = "date"  # groups its tags with the dates on the item page and in the search filters

    def load(self, options, device="cpu"):
        """``options`` is this tagger's block in metadata.yml: ``taggers: after_hours: {night_starts: 20}``."""
        self.night_starts = options.get("night_starts", 20)
        self.night_ends = options.get("night_ends", 7)
        for hour in (self.night_starts, self.night_ends):
            if not isinstance(hour, int) or not 0 <= hour <= 23:
                raise TaggerUnavailable("taggers: after_hours: night_starts and night_ends must be hours, 0 to 23")

    def tag_batch(self, items):
        for item in items:
            yield item, self.tag_one(item.row)

    def tag_one(self, row: dict) -> Result | ItemError:
        text = row.get("acquired_local")
        if not text:
            return Result()  # no time known: nothing to say
        try:
            taken = dt.datetime.fromisoformat(text)
        except ValueError:
            return ItemError(f"acquired_local {text!r} is not an ISO 8601 time")  # shown to the user as is
        source = row.get("acquired_at_source") or "unknown source"
        # A time the instrument recorded is good evidence; a file's modification time (what the core falls
        # back on for formats that keep no time) changes when someone copies the file without -p.
        score = 0.9 if source.startswith("metadata") else 0.5
        evidence = f"acquired {taken:%A %H:%M} facility time ({source})"
        night = taken.hour >= self.night_starts or taken.hour < self.night_ends
        weekend = taken.weekday() >= 5
        tags = [Tag("night", score, evidence)] if night else []
        tags += [Tag("weekend", score, evidence)] if weekend else []
        tags += [Tag("after hours", score, evidence)] if night or weekend else []
        return Result(tags=tags)


@hookimpl
def register_taggers(register):
    register(AfterHoursTagger())
