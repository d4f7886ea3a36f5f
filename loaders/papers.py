"""Papers: JSON lines (SciFact/BEIR ``_id, title, text`` and similar), BibTeX and PDF.

The lead's linking step looks for proposal and award numbers in a paper's
title, abstract, ``funding`` and full text, so each loader works to fill
``funding`` with the acknowledgement or funding statement it can find.  A DOI,
lower-cased (DOIs are case-insensitive), is the id wherever there is one, so
one paper from a bibliography and from its PDF is one row.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from datasette_scisearch.hookspecs import hookimpl
from datasette_scisearch.ingest.loader import LoaderError, RecordError, RecordLoader
from datasette_scisearch.ingest.records import converted, json_records

# Our field -> the names it goes by in JSON-lines exports, first match wins.
JSON_ALIASES = {
    "id": ("id", "_id", "paper_id", "doi"),
    "title": ("title",),
    "abstract": ("abstract", "text", "summary"),
    "authors": ("authors", "author"),
    "year": ("year",),
    "published": ("published", "date", "publication_date"),
    "doi": ("doi",),
    "venue": ("venue", "journal", "booktitle"),
    "funding": ("funding", "acknowledgements", "acknowledgments", "note"),
    "full_text": ("full_text", "body"),
}
BIBTEX_FUNDING_FIELDS = ("funding", "acknowledgement", "acknowledgements", "acknowledgment", "note")
FULL_TEXT_MAX_CHARS = 1_000_000
ABSTRACT_FALLBACK_CHARS = 1500
SECTION_MAX_CHARS = 4000
_DOI = re.compile(r"\b10\.\d{4,9}/[^\s\"<>]+", re.IGNORECASE)
# Headings that end an abstract or acknowledgement in text extracted from a PDF,
# which keeps line breaks but loses the blank lines between paragraphs.
_HEADING = re.compile(
    r"^\s*(?:\d+(?:\.\d+)*\.?\s+|[IVX]+\.\s+)?(?:introduction|keywords?|key words|index terms|background|results"
    r"|methods|materials and methods|experimental|discussion|conclusions?|references|bibliography"
    r"|author contributions|competing interests|conflicts? of interest|data availability|supplementary"
    r"|appendix|funding|acknowledge?ments?)\b",
    re.IGNORECASE | re.MULTILINE,
)
_ABSTRACT_HEADING = re.compile(r"^\s*abstract\b[\s.:\u2014\u2013-]*", re.IGNORECASE | re.MULTILINE)
_ACKNOWLEDGEMENT_HEADING = re.compile(
    r"^\s*(?:\d+\.?\s+)?(?:acknowledge?ments?|funding)\b[\s.:\u2014\u2013-]*", re.IGNORECASE | re.MULTILINE
)


class PaperRecordsLoader(RecordLoader):
    name = "papers_json"
    kind = "papers"
    description = "papers as JSON lines or a JSON array (SciFact/BEIR corpus.jsonl and similar)"
    suffixes = frozenset({".jsonl", ".ndjson", ".json"})

    def read(self, path: Path, options: dict[str, Any]) -> Iterator[dict | RecordError]:
        aliases = {**JSON_ALIASES, **{field: (column,) for field, column in (options.get("columns") or {}).items()}}
        yield from converted(json_records(path), lambda line, raw: json_paper(line, raw, aliases))


def json_paper(line: int, raw: dict, aliases: dict[str, tuple[str, ...]]) -> dict:
    row: dict[str, Any] = {"_line": line}
    found: dict[str, str] = {}
    for field, names in aliases.items():
        name = next((name for name in names if raw.get(name) not in (None, "", [])), None)
        if name is not None:
            row[field] = raw[name]
            found[field] = name
    if "id" not in row:
        looked_for = ", ".join(aliases["id"])
        raise LoaderError(f"has no id (looked for {looked_for}): add one or map it with the columns option")
    if "doi" in row:
        row["doi"] = normal_doi(str(row["doi"]))
        if found["id"] == found["doi"]:
            row["id"] = row["doi"]
    row["year"] = _year(row.get("year"))
    row["details"] = {key: value for key, value in raw.items() if key not in found.values()}
    return row


class BibtexLoader(RecordLoader):
    name = "papers_bibtex"
    kind = "papers"
    description = "papers from a BibTeX bibliography"
    suffixes = frozenset({".bib", ".bibtex"})

    def read(self, path: Path, options: dict[str, Any]) -> Iterator[dict | RecordError]:
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            raise LoaderError(f"'{path.name}' is not UTF-8 text: save it as UTF-8") from None
        import bibtexparser  # here, not at registration: every command registers the loaders
        from bibtexparser.middlewares import LatexDecodingMiddleware, MonthIntMiddleware, SeparateCoAuthors

        with _quiet(logging.getLogger("bibtexparser")):
            library = bibtexparser.parse_string(
                text, append_middleware=[LatexDecodingMiddleware(), MonthIntMiddleware(), SeparateCoAuthors()]
            )
        # bibtexparser counts lines from 0; report entries and broken blocks in file order.
        blocks = [(block.start_line + 1, False, block) for block in library.failed_blocks]
        blocks += [(entry.start_line + 1, True, entry) for entry in library.entries]
        for line, is_entry, block in sorted(blocks, key=lambda item: item[0]):
            if not is_entry:
                yield RecordError(line, _failed_block_message(block))
                continue
            try:
                yield bibtex_paper(line, block)
            except LoaderError as error:
                yield RecordError(line, str(error))


@contextlib.contextmanager
def _quiet(logger: logging.Logger):
    """bibtexparser logs each broken block to stderr; we report them as ingest errors instead."""
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def bibtex_paper(line: int, entry) -> dict:
    fields = {key.lower(): field.value for key, field in entry.fields_dict.items()}
    doi = normal_doi(str(fields.pop("doi"))) if fields.get("doi") else None
    year = _year(fields.pop("year", None))
    month = fields.pop("month", None)
    funding = [str(fields.pop(name)) for name in BIBTEX_FUNDING_FIELDS if fields.get(name)]
    authors = fields.pop("author", None)
    return {
        "_line": line,
        "id": doi or entry.key,
        "title": _unbrace(fields.pop("title", None)),
        "abstract": _unbrace(fields.pop("abstract", None)),
        "authors": [_unbrace(name) for name in authors] if isinstance(authors, list) else _unbrace(authors),
        "year": year,
        "published": f"{year:04d}-{month:02d}" if year and isinstance(month, int) else None,
        "doi": doi,
        "venue": _unbrace(fields.pop("journal", None) or fields.pop("booktitle", None)),
        "funding": "\n".join(funding) or None,
        "details": {"citation_key": entry.key, "entry_type": entry.entry_type, **fields},
    }


def _failed_block_message(block) -> str:
    from bibtexparser.model import DuplicateBlockKeyBlock

    if isinstance(block, DuplicateBlockKeyBlock):
        return f"repeats the citation key {block.key!r} of an earlier entry: give each entry its own key"
    error = block.error
    reason = " ".join(str(getattr(error, "abort_reason", None) or error).split())
    first_line = next(iter((block.raw or "").strip().splitlines()), "")
    return f"is not a valid BibTeX entry ({first_line[:60]!r}): {reason}; check its braces and commas"


class PdfLoader(RecordLoader):
    name = "papers_pdf"
    kind = "papers"
    description = "papers as PDF files (text extracted with pypdf; scanned PDFs need OCR first)"
    suffixes = frozenset({".pdf"})

    def read(self, path: Path, options: dict[str, Any]) -> Iterator[dict | RecordError]:
        try:
            pages, metadata, page_count = _pdf_text(path)
        except LoaderError as error:
            yield RecordError(0, str(error))
            return
        full_text = "\n".join(pages)
        if not full_text.strip():
            yield RecordError(
                0,
                f"'{path.name}' has no extractable text (a scanned PDF?): run OCR on it "
                "(for example ocrmypdf) and load the result",
            )
            return
        title = _metadata_title(metadata) or _first_line(full_text)
        # The paper's own DOI is printed on its first page; later pages cite other papers' DOIs.
        doi = _find_doi(pages[0]) or _find_doi(" ".join(str(value) for value in metadata.values()))
        yield {
            "_line": 0,
            "id": doi or "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()[:16],
            "title": title,
            "abstract": section_after(_ABSTRACT_HEADING, full_text) or _collapse(full_text[:ABSTRACT_FALLBACK_CHARS]),
            "authors": str(metadata.get("/Author") or "").strip() or None,
            "doi": doi,
            "funding": section_after(_ACKNOWLEDGEMENT_HEADING, full_text),
            "full_text": full_text,
            "details": {
                "file": path.name,
                "pages": page_count,
                **{key.lstrip("/").lower(): str(value) for key, value in metadata.items()},
            },
        }


def _pdf_text(path: Path) -> tuple[list[str], dict, int]:
    """Text of each page (until FULL_TEXT_MAX_CHARS), the document information and the page count."""
    from pypdf import PdfReader

    encrypted = LoaderError(f"'{path.name}' is encrypted: save a copy without a password and load that")
    try:
        reader = PdfReader(path)
        if reader.is_encrypted:
            # Many PDFs are encrypted with an empty password just to set permissions; those read fine.
            try:
                if not reader.decrypt(""):
                    raise encrypted
            except LoaderError:
                raise
            except Exception:  # pypdf needs the cryptography package for AES; without it, the same advice
                raise encrypted from None
        pages, length = [], 0
        for page in reader.pages:
            text = page.extract_text() or ""
            pages.append(text[: FULL_TEXT_MAX_CHARS - length])
            length += len(pages[-1])
            if length >= FULL_TEXT_MAX_CHARS:
                break
        return pages or [""], dict(reader.metadata or {}), len(reader.pages)
    except LoaderError:
        raise
    except Exception as error:  # pypdf raises many exception types on damaged files
        raise LoaderError(
            f"'{path.name}' is not a readable PDF ({type(error).__name__}: {error}): "
            "check that the file is complete, or re-export it"
        ) from None


def section_after(heading: re.Pattern, text: str) -> str | None:
    """The paragraph after a heading such as 'Abstract', up to the next heading or blank line."""
    match = heading.search(text)
    if match is None:
        return None
    rest = text[match.end() :]
    ends = [m.start() for m in (_HEADING.search(rest), re.search(r"\n\s*\n", rest)) if m and m.start() > 0]
    section = _collapse(rest[: min(ends + [SECTION_MAX_CHARS])])
    return section or None


def _collapse(text: str) -> str:
    """One paragraph: words hyphenated across lines rejoined, whitespace runs made single spaces."""
    text = re.sub(r"(\w)-\n(\w)", r"\1\2", text)
    return " ".join(text.split())


def _metadata_title(metadata: dict) -> str | None:
    title = str(metadata.get("/Title") or "").strip()
    title = re.sub(r"^Microsoft Word - ", "", title)  # Word's PDF export names the .docx, not the paper
    return title if title and title.lower() not in ("untitled", "title") and not title.endswith(".docx") else None


def _first_line(text: str) -> str | None:
    return next((line.strip() for line in text.splitlines() if line.strip()), None)


def _find_doi(text: str) -> str | None:
    match = _DOI.search(text)
    return normal_doi(match.group(0)) if match else None


def normal_doi(doi: str) -> str | None:
    """'https://doi.org/10.1038/NMAT1234.' -> '10.1038/nmat1234' (DOIs are case-insensitive)."""
    doi = re.sub(r"^(?:https?://(?:dx\.)?doi\.org/|doi:\s*)", "", doi.strip(), flags=re.IGNORECASE)
    doi = doi.rstrip(".,;)]}")
    return doi.lower() or None


def _year(value: Any) -> int | None:
    if value in (None, ""):
        return None
    match = re.search(r"\b(1[6-9]|20)\d\d\b", str(value))
    if match is None:
        raise LoaderError(f"year {value!r} is not a year: write it like 2017")
    return int(match.group(0))


def _unbrace(value: Any) -> str | None:
    """BibTeX protects capitals with braces ({STEM}); a search index wants the plain words."""
    if value is None:
        return None
    return " ".join(str(value).replace("{", "").replace("}", "").split()) or None


@hookimpl
def register_loaders(register):
    register(PaperRecordsLoader())
    register(BibtexLoader())
    register(PdfLoader())
