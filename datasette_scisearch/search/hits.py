"""From ranked search-document ids to what a person sees: facts, snippets, tags, the proposal, why.

Also the small look-ups the engine makes around its rankings: items named
exactly by the query, items a filter allows, items by date for a query of
filters alone, and the facet counts of the current results.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter

import sqlite_utils

from ..ingest.normalize import magnification_label
from ..tagging.tagger import DEFAULT_TAG_CATEGORY
from . import fts
from .expressions import quoted
from .filters import ITEM_DAY, ITEM_TIME, JOINS, FilterSql, allowed
from .results import Hit

FACET_SIZE = 20
TAG_FACET_BREADTH = 5  # tags are read over this many facets' worth, to fill each category's own list
FACET_NAMES = ("item_type", "instrument", "kind", "mode", "detector", "tag", "year", "proposal")
_FILE_NAME = re.compile(r"[^\s/]+\.[A-Za-z0-9]{1,6}$|[^\s/]*_[^\s/]*$")
_SHA256_PREFIX = re.compile(r"[0-9a-fA-F]{12,64}")
_ALL_JOINS = " ".join(JOINS.values())


def _json_ids(rowids) -> str:
    return json.dumps([int(r) for r in rowids])


# -- Look-ups around the rankings ------------------------------------------------------------------------


def by_date(db: sqlite_utils.Database, filters: FilterSql, limit: int) -> list[int]:
    """A query of filters alone: the newest items first."""
    sql = f"""select si.id from {filters.from_sql("f", "se", "pr", "pa")} where {filters.where_sql()}
              order by {ITEM_TIME} desc, si.id desc limit ?"""
    return [row[0] for row in db.execute(sql, [*filters.params, limit])]


def count_by_type(db: sqlite_utils.Database, filters: FilterSql) -> dict[str, int]:
    sql = f"select si.item_type, count(*) from {filters.from_sql()} where {filters.where_sql()} group by si.item_type"
    return dict(db.execute(sql, filters.params).fetchall())


def exact_matches(db: sqlite_utils.Database, parsed, filters: FilterSql) -> list[tuple[int, str]]:
    """Items the query names exactly: an id, a sha256 (or its first 12+ hex digits), a file name."""
    wanted = []
    for text in [parsed.text.strip(), *parsed.exact_candidates]:
        text = text.strip().strip("\"'")
        if len(text) >= 3 and text not in wanted:
            wanted.append(text)
    found: list[tuple[str, str, str]] = []  # (item_type, item_id, reason)
    for text in wanted:
        for table, item_type in (("proposals", "proposal"), ("papers", "paper"), ("sessions", "session")):
            for (item_id,) in db.execute(f"select id from [{table}] where id in (?, ?)", [text, text.upper()]):
                found.append((item_type, str(item_id), f"exact {item_type} id"))
        if text.startswith("10.") and "/" in text:
            for (item_id,) in db.execute("select id from papers where lower(doi) = lower(?)", [text]):
                found.append(("paper", str(item_id), "exact DOI"))
        if _SHA256_PREFIX.fullmatch(text):
            prefix = text.lower()
            for (file_id,) in db.execute(
                "select id from files where sha256 >= ? and sha256 < ? limit 20", [prefix, prefix + "g"]
            ):
                found.append(("file", str(file_id), "exact sha256" if len(prefix) == 64 else f"sha256 starts {prefix}"))
        if _FILE_NAME.search(text):
            found += [("file", file_id, "exact file name") for file_id in _files_named(db, text)]
    if not found:
        return []
    rowids: dict[tuple[str, str], int] = {}
    for item_type, item_id, _ in found:
        row = db.execute(
            "select id from search_items where item_type = ? and item_id = ?", [item_type, item_id]
        ).fetchone()
        if row:
            rowids[(item_type, item_id)] = row[0]
    permitted = allowed(db, list(rowids.values()), filters) if not filters.is_empty else set(rowids.values())
    result, seen = [], set()
    for item_type, item_id, reason in found:
        rowid = rowids.get((item_type, item_id))
        if rowid is not None and rowid in permitted and rowid not in seen:
            seen.add(rowid)
            result.append((rowid, reason))
    return result


def _files_named(db: sqlite_utils.Database, name: str) -> list[str]:
    """Files whose name (or path) is exactly ``name``: full-text search on the title narrows, equality decides."""
    expression = "title : " + quoted(name)
    rows = db.execute(
        """select f.id from search_items_fts join search_items si on si.id = search_items_fts.rowid
           join files f on +si.item_type = 'file' and f.id = cast(si.item_id as integer)
           where search_items_fts match ? and (lower(f.name) = lower(?) or f.path = ?) limit 50""",
        [expression, name, name],
    ).fetchall()
    return [str(row[0]) for row in rows]


# -- Attributes and facets -----------------------------------------------------------------------------


def attributes(db: sqlite_utils.Database, rowids: list[int]) -> dict[int, dict]:
    """The item type and id of each document of the pool (the tabs and counts need no more), in one query."""
    if not rowids:
        return {}
    rows = db.execute(
        "select id, item_type, item_id from search_items where id in (select value from json_each(?))",
        [_json_ids(rowids)],
    )
    return {rowid: {"item_type": item_type, "item_id": item_id} for rowid, item_type, item_id in rows}


# What each facet counts of a document; counted by SQLite over the current tab's documents in one statement
# (read into Python row by row and counted there, the pool's attributes were a fifth of a query's time).
_FACET_VALUES = f"""
    select coalesce(f.instrument, se.instrument) as instrument, f.kind as kind, f.mode as mode,
           f.detector as detector,
           coalesce(f.proposal_id, se.proposal_id, case when si.item_type = 'proposal' then si.item_id end) as proposal,
           substr({ITEM_DAY}, 1, 4) as year
    from search_items si {_ALL_JOINS}
    where si.id in (select value from json_each(?))"""
_FACET_SQL = f"with tab as materialized ({_FACET_VALUES}) " + " union all ".join(
    f"select '{name}', {name}, count(*) from tab where coalesce({name}, '') != '' group by {name}"
    for name in ("instrument", "kind", "mode", "detector", "year", "proposal")
)


def facets(db: sqlite_utils.Database, rowids: list[int], counts: dict) -> dict:
    """Counts of each facet's values among the results of the current tab (item_type: among all)."""
    result: dict[str, list[dict]] = {
        "item_type": [{"value": k, "count": v} for k, v in sorted(counts.items(), key=lambda kv: -kv[1])]
    }
    values: dict[str, list[tuple]] = {
        name: [] for name in ("instrument", "kind", "mode", "detector", "year", "proposal")
    }
    if rowids:
        for name, value, count in db.execute(_FACET_SQL, [_json_ids(rowids)]):
            values[name].append((value, count))
    for name, found in values.items():
        found.sort(key=lambda value_count: (-value_count[1], value_count[0]))
        result[name] = [{"value": value, "count": count} for value, count in found[:FACET_SIZE]]
    result["tag"] = _tag_facet(db, rowids)
    _label_proposals(db, result["proposal"])
    return {name: result[name] for name in FACET_NAMES}


def _tag_facet(db: sqlite_utils.Database, rowids: list[int]) -> list[dict]:
    """The commonest tags of the results, each with its category, up to ``FACET_SIZE`` per category: pages group
    tags by category (materials apart from voltages), and one busy category must not crowd the others out."""
    if not rowids:
        return []
    rows = db.execute(
        """select t.tag, count(distinct si.id) as n from search_items si
           join tags t on t.item_type = si.item_type and t.item_id = si.item_id
           where si.id in (select value from json_each(?)) and coalesce(t.status, '') != 'rejected'
           group by t.tag order by n desc, t.tag limit ?""",
        [_json_ids(rowids), FACET_SIZE * TAG_FACET_BREADTH],
    ).fetchall()
    usual = usual_categories(db, [tag for tag, _ in rows])
    taken: Counter = Counter()
    entries = []
    for tag, n in rows:
        category = usual.get(tag, DEFAULT_TAG_CATEGORY)
        if taken[category] < FACET_SIZE:
            taken[category] += 1
            entries.append({"value": tag, "count": n, "category": category})
    return entries


# A tag's usual category, per catalog file, kept a while: counting it reads every row of the tag (50 ms a search
# at 100k items), and it changes only when a tagger declares another category for the same words.
CATEGORY_CACHE_SECONDS = 600.0
_MAX_CACHED_CATEGORIES = 50_000
_usual_category: dict[tuple[str, str], tuple[str, float]] = {}


def usual_categories(db: sqlite_utils.Database, tags: list[str]) -> dict[str, str]:
    """Each tag's category: the one its taggers give it most often over the catalog ('diffraction' from filenames
    and metadata alike is a technique), "other" when none says more (an expert's new word, an old tag).  Kept
    for ``CATEGORY_CACHE_SECONDS`` per catalog file, so a search reads only the tags it has not seen lately."""
    catalog = db.execute("select file from pragma_database_list where name = 'main'").fetchone()[0] or str(id(db))
    now = time.monotonic()
    found: dict[str, str] = {}
    for tag in tags:
        cached = _usual_category.get((catalog, tag))
        if cached is not None and cached[1] > now:
            found[tag] = cached[0]
    missing = [tag for tag in tags if tag not in found]
    if missing:
        if len(_usual_category) > _MAX_CACHED_CATEGORIES:
            _usual_category.clear()
        for tag in missing:
            found[tag] = DEFAULT_TAG_CATEGORY
        for tag, category, _ in db.execute(
            """select tag, category, count(*) as n from tags
               where tag in (select value from json_each(?)) and category is not null and category != ?
               group by tag, category order by tag, n desc, category""",
            [json.dumps(missing), DEFAULT_TAG_CATEGORY],
        ):
            if found[tag] == DEFAULT_TAG_CATEGORY:
                found[tag] = category
        for tag in missing:
            _usual_category[(catalog, tag)] = (found[tag], now + CATEGORY_CACHE_SECONDS)
    return found


def forget_usual_categories() -> None:
    """Empty the cache of tags' categories (after a tagger's categories change, and between tests)."""
    _usual_category.clear()


def _label_proposals(db: sqlite_utils.Database, entries: list[dict]) -> None:
    """A proposal facet value is its id; people read its title, which each entry gains as ``label``."""
    titles = dict(
        db.execute(
            "select id, title from proposals where id in (select value from json_each(?))",
            [json.dumps([entry["value"] for entry in entries])],
        ).fetchall()
    )
    for entry in entries:
        if titles.get(entry["value"]):
            entry["label"] = titles[entry["value"]]


# -- Hits ------------------------------------------------------------------------------------------------

_FACT_COLUMNS = {
    "file": (
        "files",
        "id, name, kind, instrument, mode, detector, voltage_kv, magnification, pixel_size_nm, camera_length_mm, "
        "acquired_local, shape, proposal_id, session_id, "
        "exists(select 1 from previews p where p.file_id = files.id) as has_preview",
    ),
    "paper": ("papers", "id, year, authors, venue, doi"),
    "proposal": ("proposals", "id, pi, institution, start_date"),
    "session": ("sessions", "id, instrument, user, start, proposal_id"),
}
_FACTS = {
    "file": (
        "kind",
        "instrument",
        "mode",
        "detector",
        "voltage_kv",
        "magnification",
        "pixel_size_nm",
        "camera_length_mm",
        "acquired_local",
        "shape",
        "has_preview",
        "missing_since",
    ),
    "paper": ("year", "authors", "venue", "doi"),
    "proposal": ("pi", "institution", "start_date"),
    "session": ("instrument", "user", "start"),
}
RANK_KEYS = {"fts": "fts", "text": "text_vector", "clip": "clip", "facility_image": "facility_image", "date": "date"}
_LABELS = {
    "text": "similar meaning",
    "clip": "looks like the words (CLIP image vectors)",
    "facility_image": "looks like the words (the facility's image model)",
}


def item_rows(db: sqlite_utils.Database, item_type: str, item_ids: list[str]) -> dict[str, dict]:
    if not item_ids:
        return {}
    table, columns = _FACT_COLUMNS[item_type]
    if item_type == "file" and _has_column(db, "files", "missing_since"):  # a catalog older than m015 has not
        columns += ", missing_since"
    # Files are keyed by an integer: compare as one, so the primary key finds them.
    wanted = "cast(value as integer)" if item_type == "file" else "value"
    cursor = db.execute(
        f"select {columns} from [{table}] where id in (select {wanted} from json_each(?))", [json.dumps(item_ids)]
    )
    names = [d[0] for d in cursor.description]
    return {str(row[0]): dict(zip(names, row)) for row in cursor}


def _has_column(db: sqlite_utils.Database, table: str, column: str) -> bool:
    return any(row[1] == column for row in db.execute(f"pragma table_info([{table}])"))


def linked_proposals(db: sqlite_utils.Database, items: dict[tuple[str, str], dict]) -> dict[tuple[str, str], dict]:
    """The proposal each item belongs to: a file's or session's own, the first one a paper acknowledges."""
    proposal_ids: dict[tuple[str, str], str] = {}
    for (item_type, item_id), row in items.items():
        if item_type in ("file", "session") and row.get("proposal_id"):
            proposal_ids[(item_type, item_id)] = row["proposal_id"]
    papers = [item_id for item_type, item_id in items if item_type == "paper"]
    if papers:
        for from_id, to_id in db.execute(
            """select from_id, min(to_id) from links where from_type = 'paper' and to_type = 'proposal'
               and from_id in (select value from json_each(?)) group by from_id""",
            [json.dumps(papers)],
        ):
            proposal_ids[("paper", from_id)] = to_id
    titles = dict(
        db.execute(
            "select id, title from proposals where id in (select value from json_each(?))",
            [json.dumps(sorted(set(proposal_ids.values())))],
        ).fetchall()
    )
    return {key: {"id": pid, "title": titles.get(pid)} for key, pid in proposal_ids.items()}


def item_tags(db: sqlite_utils.Database, keys: list[tuple[str, str]]) -> dict[tuple[str, str], list[dict]]:
    found: dict[tuple[str, str], list[dict]] = {key: [] for key in keys}
    by_type: dict[str, list[str]] = {}
    for item_type, item_id in keys:
        by_type.setdefault(item_type, []).append(item_id)
    for item_type, ids in by_type.items():
        for item_id, tag, score, source, status in db.execute(
            """select item_id, tag, score, source, status from tags where item_type = ?
               and item_id in (select value from json_each(?)) order by score desc, tag""",
            [item_type, json.dumps(ids)],
        ):
            found[(item_type, str(item_id))].append({"tag": tag, "source": source, "score": score, "status": status})
    return found


def hydrate(db, parsed, candidates, attributes: dict[int, dict], expression: str) -> list:
    """Hits for the candidates on this page, in order (``parsed`` is None for hits no query asked for)."""
    if not candidates:
        return []
    rowids = [c.rowid for c in candidates]
    documents = {
        row[0]: row
        for row in db.execute(
            "select id, item_type, item_id, title, body from search_items where id in (select value from json_each(?))",
            [_json_ids(rowids)],
        )
    }
    highlighted = fts.highlights(db, expression, rowids) if expression else {}
    keys = [(attributes[r]["item_type"], attributes[r]["item_id"]) for r in rowids]
    rows: dict[tuple[str, str], dict] = {}
    for item_type in {k[0] for k in keys}:
        ids = [item_id for kind, item_id in keys if kind == item_type]
        for item_id, row in item_rows(db, item_type, ids).items():
            rows[(item_type, item_id)] = row
    proposals = linked_proposals(db, rows)
    tags = item_tags(db, keys)
    text_filters = parsed.text_filters if parsed else []
    wanted_tags = {v.lower() for f in text_filters if f.field == "tag" and not f.negated for v in f.values}
    result = []
    for candidate, key in zip(candidates, keys):
        _, item_type, item_id, title, body = documents[candidate.rowid]
        row = rows.get(key, {})
        highlight = highlighted.get(candidate.rowid)
        matched = _matched_tags(tags.get(key, []), highlight, wanted_tags)
        proposal = proposals.get(key)
        result.append(
            Hit(
                item_type=item_type,
                item_id=item_id,
                rowid=candidate.rowid,
                title=title or item_id,
                snippet=highlight.snippet if highlight and highlight.snippet else fts.plain_snippet(body or title),
                score=round(candidate.score, 6),
                why=_why(candidate, highlight, matched, parsed, row, proposal),
                matched_tags=matched,
                proposal=proposal,
                facts={name: _fact(row, name) for name in _FACTS[item_type]},
                ranks={
                    "fts": candidate.ranks.get("fts"),
                    "text_vector": candidate.ranks.get("text"),
                    "clip": candidate.ranks.get("clip"),
                    **{RANK_KEYS.get(k, k): v for k, v in candidate.ranks.items() if k not in ("fts", "text", "clip")},
                },
                scores={stage: round(float(value), 6) for stage, value in candidate.scores.items()},
            )
        )
    return result


def _fact(row: dict, name: str):
    value = row.get(name)
    if name == "has_preview":
        return bool(value)
    return value


def _words(text: str) -> set[str]:
    return {w for w in re.split(r"[^\w]+", text.lower()) if w}


def _matched_tags(tags: list[dict], highlight, wanted: set[str]) -> list[dict]:
    words = {w.lower() for w in (highlight.matched.get("tags", []) if highlight else [])}
    matched = []
    for tag in tags:
        if tag["status"] == "rejected":
            continue
        if tag["tag"].lower() in wanted or (words and _words(tag["tag"]) & words):
            if not any(m["tag"] == tag["tag"] and m["source"] == tag["source"] for m in matched):
                matched.append(tag)
    return matched


def _quote_list(words: list[str], limit: int = 5) -> str:
    return ", ".join(f"'{w}'" for w in words[:limit]) + (" …" if len(words) > limit else "")


def _why(candidate, highlight, matched_tags, parsed, row: dict, proposal: dict | None) -> list[str]:
    why: list[str] = []
    if candidate.exact:
        why.append(candidate.exact)
    if highlight:
        if highlight.matched.get("title"):
            why.append(f"title matches {_quote_list(highlight.matched['title'])}")
        if highlight.matched.get("body"):
            why.append(f"text matches {_quote_list(highlight.matched['body'])}")
        if highlight.matched.get("context"):
            why.append(f"its session or proposal mentions {_quote_list(highlight.matched['context'])}")
    for tag in matched_tags[:5]:
        why.append(f"tag {tag['tag']} ({tag['source'] or 'unknown source'})")
    for space in _LABELS:
        if space in candidate.similarities:
            why.append(f"{_LABELS[space]} ({candidate.similarities[space]:.2f})")
    for number_filter in parsed.numbers if parsed else []:
        value = row.get(number_filter.column)
        if value is not None and not number_filter.negated:
            why.append(f"{_number_label(number_filter.column, value)} ({number_filter.source})")
    if proposal:
        why.append(f"linked to proposal {proposal['id']}")
    return why


def _number_label(column: str, value: float) -> str:
    if column == "voltage_kv":
        return f"voltage {value:g} kV"
    if column == "magnification":
        return f"magnification {magnification_label(value)}"
    if column == "pixel_size_nm":
        return f"pixel size {value:g} nm"
    return f"camera length {value:g} mm"


def without_hidden_proposals(shown: list, hidden: frozenset[str]) -> list:
    """Public hits (a paper) that name a proposal the reader may not see now lose it: its id and title, and the
    reasons that would quote it (periods.py)."""
    if not hidden:
        return shown
    for hit in shown:
        proposal = getattr(hit, "proposal", None)
        if proposal and proposal.get("id") in hidden:
            hit.proposal = None
            hit.why = [
                reason
                for reason in hit.why
                if proposal["id"] not in reason and not reason.startswith("its session or proposal mentions")
            ]
            # A snippet cut from the document's context quotes the proposal: none then, rather than its words.
            plain = re.sub(r"<[^>]+>", "", hit.snippet or "")
            if proposal["id"] in plain or (proposal.get("title") and proposal["title"] in plain):
                hit.snippet = ""
    return shown
