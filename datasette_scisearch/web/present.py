"""How the search and item pages show what the engine returns: values with units, cards, tags and links.

Everything here turns engine output (``Hit``, ``item_detail``) into plain
dicts for the Jinja templates; nothing reads the database.  The templates
escape every value; the one piece of HTML the engine hands over, a snippet
with ``<mark>`` around matched words, is let through for its marks only.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import urllib.parse
import zoneinfo
from dataclasses import asdict, is_dataclass

import markupsafe
from datasette.utils import tilde_encode

from ..ingest.normalize import magnification_label
from ..tagging.tagger import DEFAULT_TAG_CATEGORY, category_label, category_order
from . import dose, plots
from .base import frame_url, item_url, preview_url, search_url

TYPE_LABELS = {"file": "file", "proposal": "proposal", "paper": "paper", "session": "session"}
# Raw metadata beyond this is cut in the page (a file's can reach a megabyte); the JSON link has all of it.
METADATA_DISPLAY_CHARS = 100_000

# How the item page labels a row's columns, in the order it lists them; unlisted columns follow as they are.
COLUMN_LABELS = {
    "kind": "Kind",
    "instrument": "Instrument",
    "acquired_local": "Acquired",
    "acquired_at": "Acquired (UTC)",
    "acquired_at_source": "Time taken from",
    "mode": "Mode",
    "detector": "Detector",
    "voltage_kv": "Voltage",
    "magnification": "Magnification",
    "pixel_size_nm": "Pixel size",
    "camera_length_mm": "Camera length",
    "shape": "Shape",
    "dtype": "Data type",
    "format": "Format",
    "dataset_name": "Dataset",
    "instrument_reported": "Instrument (as reported)",
    "path": "Path",
    "size_bytes": "Size",
    "missing_since": "Gone from its folder since",
    "pi": "Principal investigator",
    "institution": "Institution",
    "division": "Division",
    "programs": "Programs",
    "start_date": "Start",
    "end_date": "End",
    "amount": "Amount",
    "authors": "Authors",
    "year": "Year",
    "published": "Published",
    "doi": "DOI",
    "venue": "Venue",
    "funding": "Funding",
    "user": "User",
    "start": "Start",
    "end": "End",
}
# Shown elsewhere on the item page (title, text, preview, context, raw metadata) or bookkeeping only.
COLUMNS_NOT_LISTED = frozenset(
    {
        "id",
        "title",
        "name",
        "abstract",
        "notes",
        "full_text",
        "metadata",
        "details",
        "search_text",
        "preview",
        "session_id",
        "proposal_id",
        "folder",
        "dataset",
        "sha256",
        "modified_at",
        "loader",
        "loaded_at",
        "source",
    }
)
# Times stored as ISO 8601 with an offset, shown in the facility's time zone (acquired_at stays in UTC).
LOCAL_TIME_COLUMNS = frozenset({"acquired_local", "start", "end", "missing_since"})
_MARK_TAG = re.compile(r"(</?mark>)")


# -- Values as a researcher reads them -------------------------------------------------------------------


def format_value(column: str, value, zone: zoneinfo.ZoneInfo | None = None) -> str:
    """A column's value with its unit: 300 kV, 2.5 Mx, 12 pm, 1.2 MB, 2021-09-20 11:00 PDT."""
    if value is None or value == "":
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if column == "voltage_kv":
            return f"{value:g} kV"
        if column == "magnification" and value > 0:
            return magnification_label(value) if value >= 1000 else f"{value:g}×"
        if column == "pixel_size_nm":
            if value >= 1000:
                return f"{value / 1000:.3g} µm"
            return f"{value * 1000:.3g} pm" if value < 0.1 else f"{value:.3g} nm"
        if column == "camera_length_mm":
            return f"{value:g} mm"
        if column == "size_bytes":
            return _format_bytes(value)
        if column == "amount":
            return f"${value:,.0f}"
    if isinstance(value, str) and column == "shape":
        return f"{value} px"
    if isinstance(value, str) and column in LOCAL_TIME_COLUMNS:
        return readable_time(value, zone)
    if isinstance(value, str) and column == "acquired_at":
        return readable_time(value, dt.UTC)
    return str(value)


def _moment(text, zone: dt.tzinfo | None) -> dt.datetime | None:
    """A stored ISO 8601 time in the facility's zone (a time stored without offset stays as written)."""
    try:
        moment = dt.datetime.fromisoformat(str(text))
    except ValueError:
        return None
    if moment.tzinfo is not None and zone is not None:
        moment = moment.astimezone(zone)
    return moment


def readable_time(text: str, zone: dt.tzinfo | None) -> str:
    """'2021-09-20T18:00:34+00:00' in the facility's zone, in ISO 8601 with its offset and the zone's name:
    '2021-09-20 11:00:34-07:00 (PDT)' (a space for the 'T', as RFC 3339 allows, so it reads as a date and a time)."""
    moment = _moment(text, zone)
    if moment is None:
        return str(text)
    shown = moment.isoformat(sep=" ", timespec="seconds" if moment.second else "minutes")
    name = moment.tzname()
    return f"{shown} ({name})" if name and moment.tzinfo is not None else shown


def local_date(text, zone: dt.tzinfo | None) -> str:
    """The ISO date (YYYY-MM-DD) of a stored time in the facility's zone; a bare date or year stays as it is."""
    if text in (None, ""):
        return ""
    moment = _moment(text, zone) if "T" in str(text) or ":" in str(text) else None
    return moment.date().isoformat() if moment is not None else str(text)[:10]


def time_element(text: str, zone: dt.tzinfo | None) -> markupsafe.Markup:
    """A stored time as ``<time datetime="…">`` with the readable form inside, for pages and screen readers."""
    moment = _moment(text, zone)
    machine = moment.isoformat(timespec="seconds") if moment is not None else str(text)
    return markupsafe.Markup('<time datetime="{}">{}</time>').format(machine, readable_time(text, zone))


def doi_link(doi: str) -> markupsafe.Markup | str:
    """A DOI as a link to its resolver; anything that is not a DOI stays text."""
    doi = doi.strip().removeprefix("https://doi.org/").removeprefix("doi:")
    if not re.fullmatch(r"10\.\d{4,9}/\S+", doi):
        return doi
    href = markupsafe.escape("https://doi.org/" + urllib.parse.quote(doi, safe="/:;()._-"))
    return markupsafe.Markup(f'<a href="{href}" rel="noopener">{markupsafe.escape(doi)}</a>')


def _format_bytes(size: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


def listed_columns(row: dict, zone=None) -> list[tuple[str, str, str]]:
    """(column, label, value) for the item page's definition list, labelled columns first."""
    ordered = [column for column in COLUMN_LABELS if column in row]
    ordered += [column for column in row if column not in COLUMN_LABELS]
    listed = []
    for column in ordered:
        if column in COLUMNS_NOT_LISTED:
            continue
        text = format_value(column, row.get(column), zone)
        label = COLUMN_LABELS.get(column, column.replace("_", " ").capitalize())
        if text and column == "doi":
            text = doi_link(text)
        if text and (column in LOCAL_TIME_COLUMNS or column == "acquired_at"):
            text = time_element(row[column], dt.UTC if column == "acquired_at" else zone)
        if text and column == "shape":
            text = shape_text(row.get("kind"), row.get("shape")) or text
        if text and column == "magnification" and (row.get(column) or 0) >= 1000:
            text = f"{text} ({row[column]:,.0f}×)"  # 2.5 Mx is 2,500,000×: both ways of writing it
        if column == "pixel_size_nm" and row.get("kind") == "4D":
            label = "Scan step"  # a 4D scan's pixel is a probe position
        if text:
            listed.append((column, label, text))
    return listed


def with_beam(columns: list[tuple], row: dict, metadata, item_type: str) -> list[tuple]:
    """A file's listed columns with its beam current, times and electron dose after its pixel size."""
    rows = dose.beam_rows(dose.beam_of(row, metadata)) if item_type == "file" else []
    if not rows:
        return columns
    at = next((i + 1 for i, (column, _, _) in enumerate(columns) if column == "pixel_size_nm"), len(columns))
    return columns[:at] + rows + columns[at:]


def shape_text(kind: str | None, shape: str | None) -> str | None:
    """A dataset's shape in what its axes count: '10 frames of 256×256 px', '24×24 px × 512 channels'."""
    sizes = [int(n) for n in re.findall(r"\d+", str(shape or ""))]
    if not sizes:
        return None

    def px(values: list[int]) -> str:
        return "×".join(str(n) for n in values) + " px"

    if kind == "spectrum" and len(sizes) == 1:
        return f"{sizes[0]:,} channels"
    if kind == "spectrum image" and len(sizes) >= 2:
        return f"{px(sizes[:-1])} × {sizes[-1]:,} channels"
    if kind == "stack" and len(sizes) == 3:
        return f"{sizes[0]:,} frames of {px(sizes[1:])}"
    if kind == "4D" and len(sizes) == 4:
        return f"{px(sizes[:2])} scan × {px(sizes[2:])} patterns"
    return None


def hit_facts(item_type: str, facts: dict, zone=None) -> list[str]:
    """The few facts a result shows under its title, most telling first."""
    facts = facts or {}
    if item_type == "file":
        # A diffraction pattern has a camera length where an image has a magnification.
        optics = "magnification" if facts.get("magnification") else "camera_length_mm"
        keys = ["kind", "instrument", "mode", "detector", "voltage_kv", optics, "pixel_size_nm"]
        parts = [format_value(key, facts.get(key)) for key in keys]
        parts.append(local_date(facts.get("acquired_local"), zone))
    elif item_type == "paper":
        parts = [facts.get("authors"), facts.get("venue"), facts.get("year"), facts.get("doi")]
    elif item_type == "proposal":
        parts = [facts.get("pi"), facts.get("institution"), str(facts.get("start_date") or "")[:10]]
    else:
        parts = [facts.get("instrument"), facts.get("user"), format_value("start", facts.get("start"), zone)]
    return [str(part) for part in parts if part not in (None, "")]


# The table view's columns, after the title and the item type: what a microscopist compares across files.
TABLE_COLUMNS = [
    ("instrument", "Instrument"),
    ("kind", "Kind"),
    ("voltage", "Voltage"),
    ("optics", "Magnification / camera length"),
    ("date", "Date"),
]


def table_cells(item_type: str, facts: dict, zone=None) -> dict:
    """One result's cells in the table view, each with its unit; empty where the item has no such value."""
    facts = facts or {}
    optics = format_value("magnification", facts.get("magnification")) or format_value(
        "camera_length_mm", facts.get("camera_length_mm")
    )
    date = facts.get("acquired_local") or facts.get("start") or facts.get("start_date") or facts.get("year")
    date = local_date(date, zone)
    return {
        "instrument": facts.get("instrument") or "",
        "kind": facts.get("kind") or "",
        "voltage": format_value("voltage_kv", facts.get("voltage_kv")),
        "optics": optics,
        "date": date,
    }


def safe_snippet(snippet: str | None) -> markupsafe.Markup:
    """The engine's snippet, trusted for its <mark> tags only: any other markup is shown as text.

    The engine escapes the text around its marks; escaping again whatever still
    looks like a tag keeps a document's own HTML out of the page even so.
    """
    parts = _MARK_TAG.split(snippet or "")
    return markupsafe.Markup("".join(part if _MARK_TAG.fullmatch(part) else _escape_tags(part) for part in parts))


def _escape_tags(text: str) -> str:
    return text.replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


# -- Results -----------------------------------------------------------------------------------------------


def hit_view(datasette, database: str, hit, zone=None, catalog: bool = False) -> dict:
    """What one result card or row shows, with its links; ``catalog`` labels it with its database's name
    (when several catalogs are searched as one)."""
    hit = asdict(hit) if is_dataclass(hit) else dict(hit)
    item_type, item_id = hit["item_type"], hit["item_id"]
    facts = hit.get("facts") or {}
    proposal = hit.get("proposal")
    return {
        **_card_fields(hit, zone),
        "url": item_url(datasette, database, item_type, item_id),
        "preview_url": preview_url(datasette, database, item_id) if facts.get("has_preview") else None,
        "proposal": (
            {**proposal, "url": item_url(datasette, database, "proposal", proposal["id"])}
            if proposal and proposal.get("id")
            else None
        ),
        "catalog": database if catalog else None,
    }


def remote_hit_view(hit, zone=None) -> dict:
    """A result from another facility (search/hub.py ``RemoteHit``): the same card, labelled with its facility,
    its links absolute on that facility (checked to stay there when its answer was read)."""
    data = hit.public_dict()
    facts = data.get("facts") or {}
    proposal = data.get("proposal")
    proposal_url = None
    if proposal and proposal.get("id") and data.get("database"):
        route = f"-/scisearch/item/{tilde_encode(data['database'])}/proposal/{tilde_encode(str(proposal['id']))}"
        proposal_url = urllib.parse.urljoin(hit.facility_url, route)
    return {
        **_card_fields(data, zone),
        "url": data.get("url") or hit.facility_url,  # a link that led off the facility was dropped
        "preview_url": data.get("preview_url") if facts.get("has_preview") else None,
        "proposal": {**proposal, "url": proposal_url} if proposal and proposal.get("id") else None,
        "catalog": hit.facility,
        "facility": hit.facility,
        "facility_url": hit.facility_url,
    }


def _card_fields(hit: dict, zone) -> dict:
    """What a card shows that does not depend on where the item is served."""
    item_type, item_id = hit["item_type"], hit["item_id"]
    facts = hit.get("facts") or {}
    return {
        "item_type": item_type,
        "type_label": TYPE_LABELS.get(item_type, item_type),
        "item_id": item_id,
        "title": hit.get("title") or f"{item_type} {item_id}",
        "kind": facts.get("kind"),
        "missing_since": format_value("missing_since", facts.get("missing_since"), zone) or None,
        "facts": hit_facts(item_type, facts, zone),
        "cells": table_cells(item_type, facts, zone),
        "snippet": safe_snippet(hit.get("snippet")),
        "why": list(hit.get("why") or []),
        "why_line": why_line(list(hit.get("why") or [])),
        "matched_tags": distinct_tags(hit.get("matched_tags") or []),
    }


# The engine's reasons (search/hits.py ``_why``) by their opening words, as the one-line summary says them.
_WHY_PHRASES = [
    ("title matches", "in the title"),
    ("text matches", "in the text"),
    ("its session or proposal mentions", "in its proposal or session"),
    ("similar meaning", "similar meaning"),
    ("looks like the words", "looks like the words"),
    ("often opened", "often opened for this search"),
]


def why_line(why: list[str]) -> str:
    """One line of what matched and where, in a researcher's words: tag names without the taggers that gave
    them, places without the matched words (the snippet marks those); the full reasons fold out below it."""
    tags, places = [], []
    for reason in why:
        if reason.startswith("tag "):
            name = re.sub(r" \([^()]*\)$", "", reason[4:])
            if name not in tags:
                tags.append(name)
            continue
        if reason.startswith("linked to proposal"):
            continue  # the card links its proposal already
        phrase = next((said for opening, said in _WHY_PHRASES if reason.startswith(opening)), None)
        if phrase is None:  # exact names and numbers read well as they are, less their filter in brackets
            phrase = re.sub(r" \([^()]*\)$", "", reason)
        if phrase not in places:
            places.append(phrase)
    parts = []
    if tags:
        parts.append(f"tag{'s' if len(tags) > 1 else ''} {', '.join(tags[:3])}{' …' if len(tags) > 3 else ''}")
    parts += places
    return ("Matched " + " · ".join(parts)) if parts else ""


def distinct_tags(tags: list[dict]) -> list[dict]:
    """One chip per tag text, however many taggers gave it: its best score and every source."""
    by_text: dict[str, dict] = {}
    for tag in tags:
        key = str(tag.get("tag") or "").casefold()
        if not key:
            continue
        seen = by_text.get(key)
        if seen is None:
            by_text[key] = {**tag, "sources": [tag.get("source") or "unknown"]}
            continue
        seen["sources"].append(tag.get("source") or "unknown")
        if (tag.get("score") or 0) > (seen.get("score") or 0):
            seen["score"] = tag.get("score")
    return list(by_text.values())


# A kind of file as a heading says what it holds: "Diffraction patterns (14)".
KIND_HEADINGS = {
    "image": "Images",
    "diffraction": "Diffraction patterns",
    "spectrum": "Spectra",
    "spectrum image": "Spectrum images",
    "line profile": "Line profiles",
    "stack": "Stacks and series",
    "4D": "4D scans",
}


def file_kinds_view(datasette, database: str, item_type: str, item_id, groups: list[dict] | None, zone=None) -> list:
    """A proposal's (session's, paper's) files in one group per kind, each with its count, its first files as
    cards and, where there are more, a search for all of that kind (a proposal's files are searchable by
    ``proposal:``)."""
    shown = []
    for group in groups or []:
        kind = group.get("kind")
        more = None
        if item_type == "proposal" and group["count"] > len(group["files"]):
            more = search_url(datasette, [("type", "file"), ("proposal", str(item_id)), ("kind", kind or "")])
        shown.append(
            {
                "kind": kind or "unknown",
                "heading": KIND_HEADINGS.get(kind or "", (kind or "Other files").capitalize()),
                "count": group["count"],
                "hits": [hit_view(datasette, database, file_as_hit(f), zone) for f in group["files"]],
                "more_url": more,
            }
        )
    return shown


def file_as_hit(file: dict) -> dict:
    """A proposal's or session's file from ``item_detail``, shaped as a hit so it shows as the same card."""
    facts = {key: value for key, value in file.items() if key not in ("id", "name")}
    return {"item_type": "file", "item_id": str(file["id"]), "title": file.get("name"), "facts": facts}


def segments(hits: list[dict]) -> list[dict]:
    """Runs of consecutive files become a grid of previews, runs of other items a list; rank order is kept."""
    grouped: list[dict] = []
    for hit in hits:
        layout = "grid" if hit["item_type"] == "file" else "list"
        if grouped and grouped[-1]["layout"] == layout:
            grouped[-1]["hits"].append(hit)
        else:
            grouped.append({"layout": layout, "hits": [hit]})
    return grouped


# -- The item page ---------------------------------------------------------------------------------------


def linked_view(datasette, database: str, item_type: str, record: dict | None, zone=None) -> dict | None:
    """A linked session, proposal or paper as a titled link with its facts and how it was linked."""
    if not record or record.get("id") in (None, ""):
        return None
    if item_type == "session":
        title = f"{record.get('instrument') or 'Instrument'} session of {record.get('user') or 'someone'}"
        start = format_value("start", record.get("start"), zone)
        end = format_value("end", record.get("end"), zone)
        # The same day twice reads badly: "2021-09-20 09:30 to 12:30-07:00 (PDT)".
        if start and end and start[:10] == end[:10]:
            end = end[11:]
            start = re.sub(r"[+-]\d\d:\d\d( \(.*\))?$|Z$", "", start)
        facts = [f"{start} to {end}" if end else start] if start else []
    else:
        title = record.get("title") or f"{item_type} {record['id']}"
        facts = hit_facts(item_type, record, zone)
    return {
        "item_id": record["id"],
        "title": title,
        "facts": facts,
        "url": item_url(datasette, database, item_type, record["id"]),
        "via": record.get("method"),
    }


def tags_view(tags: dict) -> list[dict]:
    """Tags grouped by what they say about the item (material, technique, instrument settings …, the categories
    taggers declare), highest score first in each group; each tag keeps the tagger or person that gave it."""
    groups: dict[str, list[dict]] = {}
    for source, entries in (tags or {}).items():
        for entry in entries:
            score = entry.get("score")
            percent = round(max(0.0, min(1.0, float(score))) * 100) if score is not None else None
            category = entry.get("category") or DEFAULT_TAG_CATEGORY
            groups.setdefault(category, []).append({**entry, "source": source, "percent": percent})
    return [
        {
            "category": category,
            "label": category_label(category),
            "tags": sorted(groups[category], key=lambda e: (-(e.get("score") or 0), str(e.get("tag")), e["source"])),
        }
        for category in sorted(groups, key=category_order)
    ]


# Kinds whose pixel size is a length in the specimen: a scale bar means something on them.
REAL_SPACE_KINDS = frozenset({"image", "stack", "spectrum-image", "series"})


def viewer_view(row: dict) -> dict:
    """What the item page's viewer needs: the file's kind and name, and for a real-space image its pixel size
    and its width in pixels (the last number of its shape), from which the scale bar is drawn on the preview."""
    kind = row.get("kind") or ""
    pixel_size = row.get("pixel_size_nm")
    columns = re.findall(r"\d+", str(row.get("shape") or ""))
    real_space = kind in REAL_SPACE_KINDS and isinstance(pixel_size, (int, float)) and pixel_size > 0 and columns
    return {
        "kind": kind,
        "name": row.get("name") or "",
        "pixel_size_nm": pixel_size if real_space else None,
        "columns": int(columns[-1]) if real_space else None,
    }


def spectrum_view(spectrum: dict | None) -> dict | None:
    """The spectrum's plot (inline SVG) and a line saying what it is."""
    if not spectrum or len(spectrum.get("x") or []) < 2:
        return None
    channels = spectrum.get("channels") or len(spectrum["x"])
    said = f"{channels:,} channels"
    if (spectrum.get("summed_over") or 1) > 1:
        said = f"the sum over {spectrum['summed_over']:,} scan positions, {said}"
    if len(spectrum["x"]) < channels:
        said += f" (each point the highest of {-(-channels // len(spectrum['x']))})"
    return {"svg": plots.spectrum_svg(spectrum), "said": said}


def frames_view(datasette, database: str, file_id, frames: list[dict] | None) -> dict | None:
    """The frames kept of a stack or 4D scan, each with its image URL, for the item page's slider."""
    if not frames or len(frames) < 2:
        return None
    shown = [{**frame, "url": frame_url(datasette, database, file_id, frame["frame"])} for frame in frames]
    total = frames[0].get("frames_total") or len(frames)
    return {"frames": shown, "total": total, "sampled": len(frames) < total}


def metadata_text(metadata) -> tuple[str, bool]:
    """Raw metadata pretty-printed for reading, and whether it had to be cut."""
    if metadata in (None, "", {}, []):
        return "", False
    if isinstance(metadata, str):
        try:
            metadata = json.loads(metadata)
        except ValueError:
            pass
    text = metadata if isinstance(metadata, str) else json.dumps(metadata, indent=2, ensure_ascii=False)
    if len(text) > METADATA_DISPLAY_CHARS:
        return text[:METADATA_DISPLAY_CHARS] + "\n…", True
    return text, False
