"""The query language: what a researcher types, parsed into words and filters.

    SrTiO3 "grain boundary" -simulation tag:HAADF type:image instrument:"TEAM 0.5"
    voltage>=200kV mag:1M-20M pixel<0.05nm date:2021-03..2021-06 proposal:P-2021-0042
    gold OR silver nanoparticles 300 kV

Free words must all match (the engine falls back to "any of them" when none
has them all); several types are any of them (``type:paper,image`` is papers
and image files); ``OR`` between words makes them alternatives; ``"…"`` is a
phrase; ``-`` excludes a word, phrase or filter; ``word*`` is a prefix.
Numbers carry units and are converted to the catalog's (kV, ×, nm, mm), so
``voltage>=200000V`` and ``kv>=200`` mean the same.  A voltage or
magnification written in free text (``300 kV``, ``100kx``) filters files and
stays a phrase for proposals and papers, which mention it in prose.

Nothing a person types is an error of the full-text engine: FTS5 operators,
stray quotes, ``NEAR(``, ``*`` and column names are read as words.  What
cannot be honoured is reported in ``messages`` (an unknown unit, an unknown
filter) and left out; only a query that contradicts itself or is far too long
raises ``QueryError``.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
import re
from dataclasses import asdict, dataclass, field

from ..catalog import ITEM_TYPES
from ..errors import ScisearchError
from ..ingest.kinds import KINDS

MAX_QUERY_CHARS = 2000
MAX_TERMS = 64
# Equality on a measured number allows this much relative slack: 13.5 Mx is written 13500000 or 1.35e7.
EQUALITY_TOLERANCE = 0.01

# English words that carry no meaning for ranking: dropped from the full-text query (the embedding still
# sees them).  Kept short: "no", "not" and numbers carry meaning in science.
STOPWORDS = frozenset(
    """a an and are as at be been being but by can could did do does for from had has have how if in into is it
    its of on onto or our over so such than that the their them then there these they this those to was we were
    what when where which while who whom why will with within would you your""".split()
)


class QueryError(ScisearchError):
    """A query the engine cannot run; the message says what to change (→ HTTP 400)."""


# -- Numbers with units ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Quantity:
    """A measured field of a file: its catalog column, its unit and the units people write it in."""

    column: str
    unit: str
    units: dict[str, float]  # lower-cased unit -> factor to the catalog's unit
    label: str
    unit_names: str  # for messages


# Accelerating voltages are never millivolts, so 'mv' is read as megavolts, as 'M' in magnifications is mega.
VOLTAGE = Quantity("voltage_kv", "kV", {"kv": 1.0, "v": 1e-3, "mv": 1e3, "kev": 1.0}, "voltage", "V, kV, MV")
MAGNIFICATION = Quantity(
    "magnification",
    "×",
    {"x": 1.0, "": 1.0, "k": 1e3, "kx": 1e3, "m": 1e6, "mx": 1e6},
    "magnification",
    "x, kx, Mx (or k, M)",
)
PIXEL_SIZE = Quantity(
    "pixel_size_nm",
    "nm",
    {"nm": 1.0, "pm": 1e-3, "a": 0.1, "å": 0.1, "angstrom": 0.1, "um": 1e3, "µm": 1e3, "μm": 1e3, "mm": 1e6, "m": 1e9},
    "pixel size",
    "pm, Å, nm, µm, mm, m",
)
CAMERA_LENGTH = Quantity("camera_length_mm", "mm", {"mm": 1.0, "cm": 10.0, "m": 1e3}, "camera length", "mm, cm, m")

# Filter names people use for each quantity, with the unit a bare number is read in.
QUANTITY_FIELDS: dict[str, tuple[Quantity, str]] = {
    "voltage": (VOLTAGE, "kv"),
    "kv": (VOLTAGE, "kv"),
    "hv": (VOLTAGE, "kv"),
    "ht": (VOLTAGE, "kv"),
    "mag": (MAGNIFICATION, ""),
    "magnification": (MAGNIFICATION, ""),
    "pixel": (PIXEL_SIZE, "nm"),
    "pixelsize": (PIXEL_SIZE, "nm"),
    "pixel_size": (PIXEL_SIZE, "nm"),
    "px": (PIXEL_SIZE, "nm"),
    "cl": (CAMERA_LENGTH, "mm"),
    "camera": (CAMERA_LENGTH, "mm"),
    "camera_length": (CAMERA_LENGTH, "mm"),
}
TEXT_FIELDS = {
    "instrument": "instrument",
    "microscope": "instrument",
    "mode": "mode",
    "detector": "detector",
    "format": "format",
    "user": "user",
    "proposal": "proposal",
    "tag": "tag",
    # Which catalog, when several are searched as one (search/federation.py chooses them; the engine,
    # which sees one catalog at a time, has nothing to filter by it).
    "catalog": "catalog",
}
TYPE_FIELDS = {"type", "kind", "is"}
DATE_FIELDS = {"date", "acquired", "year", "after", "before", "since", "until"}
ALL_FIELDS = sorted({*QUANTITY_FIELDS, *TEXT_FIELDS, *TYPE_FIELDS, *DATE_FIELDS})

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_NUMBER_WITH_UNIT = re.compile(rf"^(?P<number>[+-]?{_NUMBER})\s*(?P<unit>[^\d\s.+-][^\s]*)?$")
# Voltages and magnifications that microscopists write in running text: "300 kV", "300kV", "100kx", "13.5 Mx".
_FREE_QUANTITY = re.compile(rf"^(?P<number>{_NUMBER})(?P<unit>kv|kev|kx|mx)$", re.IGNORECASE)
_FREE_UNITS = {"kv": VOLTAGE, "kev": VOLTAGE, "kx": MAGNIFICATION, "mx": MAGNIFICATION}


@dataclass
class NumberFilter:
    """``column`` between ``low`` and ``high`` (either may be open), in the catalog's unit."""

    column: str
    low: float | None
    high: float | None
    source: str
    negated: bool = False
    # From free text ("300 kV"): a filter for files, a phrase for the other item types.
    soft: bool = False
    phrase_alternatives: list[str] = field(default_factory=list)


@dataclass
class DateFilter:
    """Dates from ``start`` (inclusive) to ``end`` (exclusive), ISO ``YYYY-MM-DD``; either may be open."""

    start: str | None
    end: str | None
    source: str
    negated: bool = False


@dataclass
class TextFilter:
    """A field equal to one of ``values`` (case-insensitive): instrument, mode, detector, tag, proposal …"""

    field: str
    values: list[str]
    source: str
    negated: bool = False


@dataclass
class Term:
    """One thing full-text search looks for: a word, a phrase or a prefix."""

    text: str
    kind: str = "word"  # word, phrase, prefix


@dataclass
class ParsedQuery:
    text: str
    # Each clause is a list of alternatives (``a OR b``); every clause must match in "all words" mode.
    clauses: list[list[Term]] = field(default_factory=list)
    excluded: list[Term] = field(default_factory=list)
    item_types: set[str] = field(default_factory=set)
    excluded_item_types: set[str] = field(default_factory=set)
    kinds: set[str] = field(default_factory=set)
    excluded_kinds: set[str] = field(default_factory=set)
    text_filters: list[TextFilter] = field(default_factory=list)
    numbers: list[NumberFilter] = field(default_factory=list)
    dates: list[DateFilter] = field(default_factory=list)
    # is:missing (True) or -is:missing (False): files gone from their folders (files.missing_since), or the rest.
    missing: bool | None = None
    # The meaning of the query for vector search: its free words and phrases, without filters.
    semantic_text: str = ""
    # Tokens that may name one item exactly: an id, a sha256 (prefix), a file name.
    exact_candidates: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)

    @property
    def has_terms(self) -> bool:
        return bool(self.clauses)

    @property
    def has_filters(self) -> bool:
        return bool(
            self.item_types
            or self.excluded_item_types
            or self.kinds
            or self.excluded_kinds
            or self.text_filters
            or self.numbers
            or self.dates
            or self.excluded
            or self.missing is not None
        )

    @property
    def is_empty(self) -> bool:
        return not self.has_terms and not self.has_filters

    def filters_json(self) -> dict:
        """The filters as plain JSON, for the API and for showing what was understood."""
        return {
            "item_types": sorted(self.item_types),
            "excluded_item_types": sorted(self.excluded_item_types),
            "kinds": sorted(self.kinds),
            "excluded_kinds": sorted(self.excluded_kinds),
            "text": [asdict(f) for f in self.text_filters],
            "numbers": [{k: v for k, v in asdict(f).items() if k != "phrase_alternatives"} for f in self.numbers],
            "dates": [asdict(f) for f in self.dates],
            "missing": self.missing,
            "words": [[asdict(term) for term in clause] for clause in self.clauses],
            "excluded_words": [asdict(term) for term in self.excluded],
        }


# -- Tokenising ------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<negated>-(?=\S))?
    (?:
        (?P<field>[A-Za-z_]+)(?:(?P<op>:|=(?![=<>]))|\s*(?P<compare>>=|<=|=>|=<|!=|==|>|<)\s*)
        (?P<value>"[^"]*"?|[^\s"]*)
      | (?P<phrase>"[^"]*"?)
      | (?P<word>[^\s"]+)
    )
    """,
    re.VERBOSE,
)


@dataclass
class _Token:
    negated: bool
    field: str | None = None
    op: str | None = None
    value: str = ""
    phrase: str | None = None
    word: str | None = None
    raw: str = ""


def _tokens(text: str) -> list[_Token]:
    tokens = []
    for match in _TOKEN.finditer(text):
        negated = bool(match["negated"])
        raw = match.group(0)
        if match["field"] is not None:
            value = match["value"] or ""
            if value.startswith('"'):
                value = value[1:-1] if len(value) > 1 and value.endswith('"') else value[1:]
            op = match["op"] or match["compare"]
            tokens.append(_Token(negated, field=match["field"].lower(), op=op, value=value.strip(), raw=raw))
        elif match["phrase"] is not None:
            phrase = match["phrase"]
            phrase = phrase[1:-1] if len(phrase) > 1 and phrase.endswith('"') else phrase[1:]
            tokens.append(_Token(negated, phrase=phrase, raw=raw))
        else:
            tokens.append(_Token(negated, word=match["word"], raw=raw))
    return tokens


def without_filter(text: str, name: str) -> str:
    """The query with every ``name:`` filter (negated or not, under any of its names) left out, the rest as
    typed: a hub forwards a query without its ``catalog:`` filters, which chose among facilities here
    (search/hub.py)."""
    names = {alias for alias, field_name in TEXT_FIELDS.items() if field_name == name} | {name}
    return " ".join(token.raw for token in _tokens(text) if token.field not in names)


def _has_word_characters(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


# -- Parsing -------------------------------------------------------------------------------------


def parse_query(text: str) -> ParsedQuery:
    """Parse what a person typed; raises QueryError only for a query that cannot mean anything sensible."""
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise QueryError("the query must be text")
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(
            f"the query is {len(text):,} characters long; the limit is {MAX_QUERY_CHARS:,}: "
            f"search for the few words that matter"
        )
    text = text.replace("\x00", " ")
    query = ParsedQuery(text=text)
    semantic: list[str] = []
    tokens = _tokens(text)
    pending_or = False
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if token.field is not None:
            consumed = _field_token(query, token, tokens[index] if index < len(tokens) else None)
            if consumed == "not a field":
                _add_words(query, semantic, f"{token.field} {token.value}", token.negated, pending_or)
                pending_or = False
            elif consumed == "used next":
                index += 1
            continue
        if token.word is not None:
            word = token.word
            if word == "OR" and query.clauses and not token.negated:
                pending_or = True
                continue
            if word in ("AND", "NOT", "NEAR"):
                # FTS5 operators typed by a person: AND is what words mean anyway; NOT x is -x.
                if word == "NOT" and index < len(tokens) and tokens[index].word:
                    tokens[index].negated = True
                continue
            if word.startswith("NEAR("):
                word = word[len("NEAR(") :]
            following = tokens[index] if index < len(tokens) else None
            quantity = _free_quantity(word, following)
            if quantity is not None and not token.negated:
                number_filter, used_next = quantity
                query.numbers.append(number_filter)
                semantic.append(number_filter.source)
                index += int(used_next)
                pending_or = False
                continue
            _add_words(query, semantic, word, token.negated, pending_or)
            pending_or = False
            if not token.negated:
                query.exact_candidates.append(word)
            continue
        phrase = (token.phrase or "").strip()
        if not _has_word_characters(phrase):
            continue
        term = Term(phrase, "phrase")
        if token.negated:
            query.excluded.append(term)
        else:
            _add_clause(query, [term], pending_or)
            semantic.append(phrase)
            query.exact_candidates.append(phrase)
        pending_or = False
    if sum(len(clause) for clause in query.clauses) > MAX_TERMS:
        kept, count = [], 0
        for clause in query.clauses:
            if count + len(clause) > MAX_TERMS:
                break
            kept.append(clause)
            count += len(clause)
        query.clauses = kept
        query.messages.append(f"only the first {MAX_TERMS} words were searched for")
    _drop_stopwords(query)
    _check_contradictions(query)
    query.semantic_text = " ".join(semantic).strip()
    return query


def _add_clause(query: ParsedQuery, alternatives: list[Term], join_previous: bool) -> None:
    if join_previous and query.clauses:
        query.clauses[-1].extend(alternatives)
    else:
        query.clauses.append(alternatives)


def _add_words(query: ParsedQuery, semantic: list[str], text: str, negated: bool, join_previous: bool) -> None:
    """Free text: each run of word characters is a word; punctuation-only text is nothing to search for."""
    for piece in text.split():
        if not _has_word_characters(piece):
            continue
        kind = "word"
        if piece.endswith("*") and len(piece.rstrip("*")) >= 2 and _has_word_characters(piece.rstrip("*")):
            kind, piece = "prefix", piece.rstrip("*")
        term = Term(piece, kind)
        if negated:
            query.excluded.append(term)
        else:
            _add_clause(query, [term], join_previous)
            semantic.append(piece)
            join_previous = False


def _drop_stopwords(query: ParsedQuery) -> None:
    """Words such as 'the' and 'of' match nearly every document; they only cost time."""

    def meaningful(clause: list[Term]) -> bool:
        return any(term.kind != "word" or term.text.lower() not in STOPWORDS for term in clause)

    kept = [clause for clause in query.clauses if meaningful(clause)]
    if kept:  # a query of stopwords alone ("to be or not") is searched as typed
        query.clauses = kept


def _free_quantity(word: str, following: _Token | None) -> tuple[NumberFilter, bool] | None:
    """'300kV', '100kx' or '300' followed by 'kV': a voltage or magnification mentioned in free text."""
    match = _FREE_QUANTITY.match(word)
    used_next = False
    if match is None and following is not None and following.word and not following.negated:
        if re.fullmatch(_NUMBER, word) and following.word.lower() in _FREE_UNITS:
            match = _FREE_QUANTITY.match(word + following.word)
            used_next = True
    if match is None:
        return None
    quantity = _FREE_UNITS[match["unit"].lower()]
    value = float(match["number"]) * quantity.units[match["unit"].lower()]
    low, high = _around(value)
    number, unit = match["number"], match["unit"]
    number_filter = NumberFilter(
        column=quantity.column,
        low=low,
        high=high,
        source=f"{number} {unit}",
        soft=True,
        phrase_alternatives=[f"{number} {unit}", f"{number}{unit}"],
    )
    return number_filter, used_next


def _around(value: float) -> tuple[float, float]:
    slack = abs(value) * EQUALITY_TOLERANCE
    return value - slack, value + slack


def _field_token(query: ParsedQuery, token: _Token, following: _Token | None) -> str:
    """Apply one ``field op value`` token; returns 'used', 'used next' (it took the next token as its
    unit) or 'not a field' (the caller searches it as words)."""
    name, op, value = token.field or "", token.op or ":", token.value
    op = {"=>": ">=", "=<": "<=", "==": "=", "=": ":"}.get(op, op)
    if name in QUANTITY_FIELDS:
        quantity, default_unit = QUANTITY_FIELDS[name]
        used_next = False
        if value and following is not None and following.word and re.fullmatch(rf"[+-]?{_NUMBER}", value):
            if following.word.lower() in quantity.units:  # "voltage >= 200 kV"
                value, used_next = value + following.word, True
                token.raw = f"{token.raw} {following.word}"
        number_filter = _number_filter(query, quantity, default_unit, op, value, token)
        if number_filter is not None:
            query.numbers.append(number_filter)
        return "used next" if used_next else "used"
    if name in TYPE_FIELDS:
        if op != ":":
            query.messages.append(f"'{token.raw}': write type:VALUE, e.g. type:image")
            return "used"
        _type_filter(query, value, token)
        return "used"
    if name in DATE_FIELDS:
        date_filter = _date_filter(query, name, op, value, token)
        if date_filter is not None:
            query.dates.append(date_filter)
        return "used"
    if name in TEXT_FIELDS:
        if op not in (":", "!="):
            query.messages.append(f"'{token.raw}': {name} takes {name}:VALUE")
            return "used"
        values = [v.strip() for v in value.split(",") if v.strip()]
        if not values:
            query.messages.append(f"'{token.raw}' has no value and was ignored")
            return "used"
        query.text_filters.append(
            TextFilter(TEXT_FIELDS[name], values, token.raw.lstrip("-"), negated=token.negated or op == "!=")
        )
        return "used"
    if op == ":" and value and len(name) > 1 and not value.startswith("/"):
        query.messages.append(
            f"'{name}:' is not a filter, so '{name} {value}' was searched as words "
            f"(filters: {', '.join(f + ':' for f in ('type', 'tag', 'instrument', 'proposal', 'date', 'voltage'))} …)"
        )
    return "not a field"


def _type_filter(query: ParsedQuery, value: str, token: _Token) -> None:
    for raw in value.split(","):
        wanted = raw.strip().lower().replace("_", " ").replace("-", " ")
        if not wanted:
            continue
        item_type = wanted[:-1] if wanted.endswith("s") and wanted[:-1] in ITEM_TYPES else wanted
        kind = _KIND_ALIASES.get(wanted)
        if wanted == "missing":  # a file gone from its folder (its row kept): is:missing, or -is:missing for the rest
            query.missing = not token.negated
        elif item_type in ITEM_TYPES:
            (query.excluded_item_types if token.negated else query.item_types).add(item_type)
        elif kind is not None:
            (query.excluded_kinds if token.negated else query.kinds).add(kind)
        else:
            query.messages.append(
                f"unknown type '{raw.strip()}' was ignored: use one of {', '.join(ITEM_TYPES)}, "
                f"or a kind of file: {', '.join(KINDS)}, or 'missing' (files gone from their folders)"
            )


_KIND_ALIASES = {kind.lower(): kind for kind in KINDS}
_KIND_ALIASES.update(
    {
        kind.lower() + "s": kind
        for kind in KINDS
        if not kind.endswith("D")  # "images", "spectra" below, "stacks"; not "4ds"
    }
)
_KIND_ALIASES.update({"spectra": "spectrum", "si": "spectrum image", "spectrumimage": "spectrum image", "4d": "4D"})
_KIND_ALIASES.update({"lineprofile": "line profile", "line-profile": "line profile", "profile": "line profile"})


# -- Numbers -------------------------------------------------------------------------------------


def _read_number(quantity: Quantity, default_unit: str, text: str, token: _Token, query: ParsedQuery) -> float | None:
    match = re.match(rf"^(?P<number>[+-]?{_NUMBER})?\s*(?P<unit>.*)$", text.strip())
    number_text, unit = (match["number"], match["unit"]) if match else (None, text.strip())
    if unit and unit.lower() not in quantity.units:
        query.messages.append(
            f"unknown unit '{unit}' in '{token.raw}' was ignored ({quantity.label} takes {quantity.unit_names})"
        )
        return None
    if number_text is None:
        query.messages.append(f"'{token.raw}' has no number, so this {quantity.label} filter was ignored")
        return None
    value = float(number_text) * quantity.units[(unit or default_unit).lower()]
    if not math.isfinite(value):
        query.messages.append(f"'{token.raw}': the number is too large and was ignored")
        return None
    if value < 0:
        raise QueryError(f"'{token.raw}': a {quantity.label} cannot be negative")
    return value


def _number_filter(
    query: ParsedQuery, quantity: Quantity, default_unit: str, op: str, value: str, token: _Token
) -> NumberFilter | None:
    source = token.raw.lstrip("-")
    negated = token.negated or op == "!="
    if op in (":", "!="):
        low_text, high_text = _split_range(value)
        if high_text is not None:
            # A unit written once applies to both ends: mag:1-20M, voltage:80-300kV.
            high_unit = _NUMBER_WITH_UNIT.match(high_text.strip())
            low_match = _NUMBER_WITH_UNIT.match(low_text.strip())
            if high_unit and low_match and not low_match["unit"] and high_unit["unit"]:
                low_text = low_text + high_unit["unit"]
            low = _read_number(quantity, default_unit, low_text, token, query) if low_text.strip() else None
            high = _read_number(quantity, default_unit, high_text, token, query) if high_text.strip() else None
            if (low_text.strip() and low is None) or (high_text.strip() and high is None):
                return None
            if low is not None and high is not None and low > high:
                query.messages.append(f"'{source}': the range was read from the smaller to the larger number")
                low, high = high, low
            return NumberFilter(quantity.column, low, high, source, negated)
        number = _read_number(quantity, default_unit, value, token, query)
        if number is None:
            return None
        low, high = _around(number)
        return NumberFilter(quantity.column, low, high, source, negated)
    number = _read_number(quantity, default_unit, value, token, query)
    if number is None:
        return None
    # Open ranges are inclusive either way: measured numbers are never exactly on the boundary in a way
    # that makes > and >= differ for a person.
    low, high = (number, None) if op in (">", ">=") else (None, number)
    return NumberFilter(quantity.column, low, high, source, negated)


def _split_range(value: str) -> tuple[str, str | None]:
    if ".." in value:
        low, _, high = value.partition("..")
        return low, high
    # 1M-20M, 80-300kV; a leading minus is a sign, not a range.
    match = re.match(rf"^([+-]?{_NUMBER}\s*[^\d\s.+-]*)-(.+)$", value.strip())
    if match:
        return match[1], match[2]
    return value, None


# -- Dates ----------------------------------------------------------------------------------------

_DATE = re.compile(r"^(?P<year>\d{4})(?:-(?P<month>\d{1,2})(?:-(?P<day>\d{1,2}))?)?$")


def _date_interval(text: str) -> tuple[dt.date, dt.date] | None:
    """'2021' -> [2021-01-01, 2022-01-01); '2021-03' -> March; '2021-03-05' -> that day."""
    match = _DATE.match(text.strip())
    if match is None:
        return None
    year = int(match["year"])
    try:
        if match["day"]:
            start = dt.date(year, int(match["month"]), int(match["day"]))
            return start, start + dt.timedelta(days=1)
        if match["month"]:
            month = int(match["month"])
            start = dt.date(year, month, 1)
            return start, start + dt.timedelta(days=calendar.monthrange(year, month)[1])
        return dt.date(year, 1, 1), dt.date(year + 1, 1, 1)
    except (ValueError, OverflowError):
        return None


def _date_filter(query: ParsedQuery, name: str, op: str, value: str, token: _Token) -> DateFilter | None:
    source = token.raw.lstrip("-")
    negated = token.negated or op == "!="
    if name in ("after", "since", "before", "until"):
        if op not in (":", "="):
            query.messages.append(f"'{source}': write {name}:DATE, e.g. {name}:2021-06")
            return None
        op = {"after": ">", "since": ">=", "before": "<", "until": "<="}[name]
    if op in (":", "!="):
        if ".." in value or re.fullmatch(r"\d{4}-\d{4}", value.strip()):
            low_text, _, high_text = value.partition("..") if ".." in value else value.partition("-")
            low = _date_interval(low_text) if low_text.strip() else None
            high = _date_interval(high_text) if high_text.strip() else None
            if (low_text.strip() and low is None) or (high_text.strip() and high is None):
                return _bad_date(query, source)
            start, end = (low[0] if low else None), (high[1] if high else None)
            if start is None and end is None:
                query.messages.append(f"'{source}' names no date and was ignored")
                return None
            if start and end and start >= end:
                query.messages.append(f"'{source}': the dates were read from the earlier to the later one")
                start, end = (high[0] if high else None), (low[1] if low else None)
            return DateFilter(_iso(start), _iso(end), source, negated)
        interval = _date_interval(value)
        if interval is None:
            return _bad_date(query, source)
        return DateFilter(interval[0].isoformat(), interval[1].isoformat(), source, negated)
    interval = _date_interval(value)
    if interval is None:
        return _bad_date(query, source)
    start, end = interval
    bounds = {">": (end, None), ">=": (start, None), "<": (None, start), "<=": (None, end)}[op]
    return DateFilter(_iso(bounds[0]), _iso(bounds[1]), source, negated)


def _iso(day: dt.date | None) -> str | None:
    return None if day is None else day.isoformat()


def _bad_date(query: ParsedQuery, source: str) -> None:
    query.messages.append(f"'{source}' is not a date this understands (YYYY, YYYY-MM or YYYY-MM-DD) and was ignored")
    return None


# -- Contradictions -----------------------------------------------------------------------------------


def _check_contradictions(query: ParsedQuery) -> None:
    """Two filters that leave nothing are a mistake worth saying plainly, not an empty page."""
    by_column: dict[str, list[NumberFilter]] = {}
    for number_filter in query.numbers:
        if not number_filter.negated and not number_filter.soft:
            by_column.setdefault(number_filter.column, []).append(number_filter)
    for filters in by_column.values():
        lows = [f.low for f in filters if f.low is not None]
        highs = [f.high for f in filters if f.high is not None]
        if lows and highs and max(lows) > min(highs):
            raise QueryError(
                f"{' and '.join(repr(f.source) for f in filters)} exclude each other, so nothing can match: "
                f"widen one of them"
            )
    starts = [f.start for f in query.dates if f.start and not f.negated]
    ends = [f.end for f in query.dates if f.end and not f.negated]
    if starts and ends and max(starts) >= min(ends):
        raise QueryError(
            f"{' and '.join(repr(f.source) for f in query.dates)} exclude each other, so nothing can match"
        )
    both = query.item_types & query.excluded_item_types
    if query.item_types and not query.item_types - query.excluded_item_types:
        raise QueryError(f"type:{','.join(sorted(both))} is both asked for and excluded")
