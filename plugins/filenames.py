"""The ``filenames`` tagger: what researchers' shorthand in file and folder names means.

``Au_np_300kV_HAADF_0012.dm4`` says gold nanoparticles, 300 kV, a HAADF STEM
image; ``16_STOimage_1.ser`` says SrTiO3.  The tagger cuts each name into
tokens (at _ - . and spaces, then at case and digit changes), reads each token
as a unit, a detector, an abbreviation, a word, an element or a chemical
formula, and reads the folder layout (``data/<instrument>/[<year>/]<user>/
<date or project>/``) for the year, date, user and proposal.

A name is a person's shorthand, not the instrument's word, so scores stay
between 0.6 and 0.8 and every tag's evidence is the token it came from.  The
classic trap is single-letter and word-like element symbols: 'In', 'As', 'I',
'B', 'C' or 'S' standing alone are not elements; inside a formula ('InAs',
'MoS2') or next to other elements ('Cu_In_Ga_Se') they are.

Facilities extend the vocabulary in metadata.yml::

    taggers:
      filenames:
        dictionary: {LNO: [LaNiO3, lanthanum nickelate], "Ti-6Al-4V": [titanium alloy]}
        ignore: [test, Micro]          # tokens never to tag
        instrument_folders: [titan]    # folder names of instruments, beyond the instrument's own name
        id_patterns: ['BAG-\\d{5}']    # proposal or project ids in paths (regular expressions)
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from datasette_scisearch.hookspecs import hookimpl
from datasette_scisearch.ingest.normalize import magnification_label
from datasette_scisearch.tagging.tagger import Item, Tag, Tagger, TaggerUnavailable, tags_only

from .helpers import em_vocabulary as vocab

# How much a kind of reading is worth: the facility's own dictionary most, a lone lower-case guess least.
SCORE = {
    "user": 0.8,
    "id": 0.8,
    "unit": 0.75,
    "abbreviation": 0.75,
    "detector": 0.75,
    "compound": 0.75,
    "element": 0.75,
    "formula": 0.7,
    "word": 0.7,
    "phrase": 0.7,
    "zone axis": 0.7,
    "folder": 0.7,
    "implied": 0.65,
    "lowercase": 0.65,
    "guess": 0.6,
}
# Extra weight a reading gets when choosing how to cut a token: 'AuNP' is Au + NP (gold nanoparticles), not the
# formula Au-N-P; 'AuCeO2' is Au + CeO2; 'PtCo' stays one alloy.
_CUT_BONUS = {"user": 3.0, "formula": 0.0, "element": 0.0, "ambiguous": -0.5, "ignored": 0.0}

_SEPARATORS = re.compile(r"[\s_\-+,;:=()\[\]{}#@&'~!$%^*|<>?\"\\/]+|\.(?!\d)|(?<!\d)\.")
_UNIT = re.compile(r"^(\d+(?:\.\d+)?)(kV|KV|kv|keV|eV|Mx|MX|kx|kX|Kx|KX|x|X|nm|um|µm|μm|pm|Å|mm|cm|m|mrad|°C|degC)$")
# '13,5Mx' is a decimal comma; '64,65,66' is a list.
_DECIMAL_COMMA = re.compile(r"(?<=\d),(?=\d+(?:kV|Mx|kx|nm|mm|µm|um|eV|keV)(?![A-Za-z]))")
_FORMULA_GROUP = re.compile(r"([A-Z][a-z]?)(\d+(?:\.\d+)?|[xyδ](?![a-z]))?")
_ZONE_AXIS = re.compile(r"^(.+?)([0-3]{3})$")
_YEAR = re.compile(r"^(19[89]\d|20\d\d)$")
_ISO_DATE = re.compile(r"(?<!\d)((?:19|20)\d\d)[-_.]?(0[1-9]|1[0-2])[-_.]?(0[1-9]|[12]\d|3[01])(?!\d)")
_SHORT_DATE = re.compile(r"^(\d\d)(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])(?=[_\-\s.]|$)")  # 230512_MoS2_…
_DEFAULT_ID_PATTERNS = [
    r"(?<![A-Za-z0-9])[A-Z]{1,4}-\d{4}-\d{3,5}(?![A-Za-z0-9])",  # P-2021-0042
    r"(?i)(?<![A-Za-z0-9])(?:proposal|prop|project|proj)[-_ ]?#?([A-Za-z]{0,3}\d{3,8})(?![0-9])",
]
_USER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9.]{1,31}$")
_GENERIC_FOLDERS = {
    "data", "raw", "rawdata", "users", "user", "home", "projects", "project", "export", "exports", "processed",
    "analysis", "session", "sessions", "images", "misc", "tmp", "temp", "scratch", "shared", "archive", "backup",
}  # fmt: skip
_LONGEST_CUT = 64  # longer tokens are read whole, not cut (random hashes, pasted text)


@dataclass(frozen=True)
class Meaning:
    """What one token means: its tags with their scores, and what kind of reading found it."""

    kind: str
    tags: tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class Reading:
    """A piece of a name and what it means; ``evidence`` is the piece as written ('STO in STOimage')."""

    evidence: str
    meaning: Meaning


def best_tags(readings: list[Reading]) -> list[Tag]:
    """One tag per text, with the best score any reading gave it."""
    found: dict[str, Tag] = {}
    for reading in readings:
        for text, score in reading.meaning.tags:
            if text not in found or found[text].score < score:
                category = vocab.category_of(text, reading.meaning.kind)
                found[text] = Tag(text, score, reading.evidence, category)
    return list(found.values())


def _meaning(kind: str, tags, score: float | None = None) -> Meaning:
    score = SCORE.get(kind, SCORE["guess"]) if score is None else score
    return Meaning(kind, tuple((tag, score) for tag in tags))


class Shorthand:
    """The decoder: the built-in vocabulary plus a facility's dictionary and ignore list."""

    def __init__(self, dictionary: dict[str, list[str]] | None = None, ignore: list[str] | None = None):
        self.dictionary: dict[str, list[str]] = {}
        self.ignored: set[str] = set()
        # (pattern, tags, kind) for shorthand written with separators inside; a facility's own come first.
        self.phrases: list[tuple[re.Pattern, list[str], str]] = []
        for token in ignore or []:
            if _SEPARATORS.search(token):
                self.phrases.append((_phrase_pattern(token, case_sensitive=False), [], "ignored"))
            else:
                self.ignored.add(token.lower())
        for token, tags in (dictionary or {}).items():
            if _SEPARATORS.search(token):
                self.phrases.append((_phrase_pattern(token, case_sensitive=False), tags, "user"))
            else:
                self.dictionary[token.lower()] = tags
        for words, tags, case_sensitive in vocab.PHRASES:
            self.phrases.append((_phrase_pattern(words, case_sensitive), tags, "phrase"))

    def decode(self, text: str) -> list[Tag]:
        """Tags for one file or folder name, best score per tag."""
        return best_tags(self.read(text))

    def read(self, text: str) -> list[Reading]:
        """Every piece of a name that means something, with what it means."""
        found = []
        text = _DECIMAL_COMMA.sub(".", text)
        for pattern, tags, kind in self.phrases:
            for match in pattern.finditer(text):
                found.append(Reading(match.group(0), _meaning(kind, tags)))
            text = pattern.sub(" ", text)
        chunks = [chunk for chunk in _SEPARATORS.split(text) if chunk]
        readings = [self._cut(chunk) for chunk in chunks]
        for chunk, spans in zip(chunks, _resolve_element_runs(readings)):
            found += [Reading(span if span == chunk else f"{span} in {chunk}", meaning) for span, meaning in spans]
        return found

    # -- cutting one token into readings

    def _cut(self, chunk: str) -> list[tuple[str, Meaning]]:
        """The best way to read a token as a sequence of known pieces (pieces nobody knows are left out)."""
        if len(chunk) > _LONGEST_CUT:
            meaning = self.recognise(chunk, whole=True)
            return [(chunk, meaning)] if meaning else []
        cuts = _cut_points(chunk)
        last = len(cuts) - 1
        # best[i]: (weight, -pieces, readings) for chunk[cuts[i]:]
        best: list[tuple[float, int, list]] = [(0.0, 0, [])] * len(cuts)
        for start in range(last - 1, -1, -1):
            options = [best[start + 1]]
            for end in range(start + 1, last + 1):
                span = chunk[cuts[start] : cuts[end]]
                meaning = self.recognise(span, whole=start == 0 and end == last)
                if meaning is not None:
                    weight, pieces, readings = best[end]
                    gain = len(span) + _CUT_BONUS.get(meaning.kind, 1.0)
                    if meaning.kind == "formula" and all(len(s) == 1 for s in _formula_symbols(span) or ()):
                        gain -= 0.5  # 'NW2' is nanowire 2 before it is N-W2
                    options.append((weight + gain, pieces - 1, [(span, meaning), *readings]))
            best[start] = max(options, key=lambda option: (option[0], option[1]))
        return best[0][2]

    def recognise(self, span: str, whole: bool) -> Meaning | None:
        """What a piece of a name means on its own, or None.  ``whole``: the piece is a whole token."""
        lower = span.lower()
        if lower in self.ignored:
            return Meaning("ignored", ())
        if lower in self.dictionary:
            return _meaning("user", self.dictionary[lower])
        unit = _read_unit(span, whole)
        if unit is not None:
            return unit
        if span in vocab.ABBREVIATIONS:
            return _meaning("abbreviation", vocab.ABBREVIATIONS[span])
        detector = _read_detector(span, whole)
        if detector is not None:
            return detector
        if whole and lower in vocab.WHOLE_TOKEN_SHORTHAND:
            return _meaning("lowercase", vocab.WHOLE_TOKEN_SHORTHAND[lower])
        if span in vocab.COMPOUNDS:
            return _meaning("compound", [span, *vocab.COMPOUNDS[span]])
        if whole or len(span) >= 4:
            if lower in vocab.WORDS:
                return _meaning("word", vocab.WORDS[lower])
            if lower in vocab.ELEMENT_BY_NAME:
                return _meaning("word", [lower, vocab.ELEMENT_BY_NAME[lower]])
        zone = self._read_zone_axis(span)
        if zone is not None:
            return zone
        return _read_element(span, whole) or _read_formula(span)

    def _read_zone_axis(self, span: str) -> Meaning | None:
        """'Si110': silicon seen down [110] (a three-digit Miller index glued to a material)."""
        match = _ZONE_AXIS.match(span)
        if not match or match.group(2) == "000":
            return None
        material = match.group(1)
        meaning = None
        if material in vocab.ABBREVIATIONS or material in vocab.COMPOUNDS:
            meaning = self.recognise(material, whole=False)
        elif material in vocab.ELEMENTS and material not in vocab.AMBIGUOUS_SYMBOLS and len(material) == 2:
            meaning = _read_element(material, whole=False)
        if meaning is None:
            return None
        axis = f"zone axis [{match.group(2)}]"
        return Meaning("zone axis", (*meaning.tags, (axis, SCORE["zone axis"])))


def _phrase_pattern(words: str, case_sensitive: bool) -> re.Pattern:
    """'in situ' also matches 'insitu', 'in_situ' and 'In-Situ'."""
    body = r"[\s_\-.]*".join(re.escape(word) for word in _SEPARATORS.split(words) if word)
    return re.compile(rf"(?<![A-Za-z0-9]){body}(?![a-z])", 0 if case_sensitive else re.IGNORECASE)


def _char_class(text: str, index: int) -> str:
    char = text[index]
    if char.isdigit() or (char == "." and 0 < index < len(text) - 1 and text[index - 1].isdigit()):
        return "digit"
    return "upper" if char.isupper() else "lower" if char.islower() else "other"


def _cut_points(chunk: str) -> list[int]:
    """Where a token may be cut: at changes between capitals, small letters and digits ('STOimage' -> STO|image),
    and before the last capital of a run that starts a word ('STOImage' -> STO|Image)."""
    classes = [_char_class(chunk, i) for i in range(len(chunk))]
    cuts = {0, len(chunk)}
    for i in range(1, len(chunk)):
        if classes[i] != classes[i - 1]:
            cuts.add(i)
        elif classes[i] == "upper" and i + 1 < len(chunk) and classes[i + 1] == "lower":
            cuts.add(i)
    return sorted(cuts)


def _read_unit(span: str, whole: bool) -> Meaning | None:
    match = _UNIT.match(span)
    if not match:
        return None
    value, unit = float(match.group(1)), match.group(2)
    folded = unit.lower()
    if value <= 0 or (folded in ("x", "m") and not whole):  # '1024x1024' is a size, 'Au5m' nothing
        return None
    if folded == "kv" or (folded == "kev" and value >= 10):  # '200keV' is the beam energy
        return _meaning("unit", [f"{value:g} kV"]) if value <= 3000 else None
    if folded in ("ev", "kev"):
        return _meaning("unit", [f"{value:g} {unit}"])
    if folded in ("mx", "kx", "x"):
        magnification = value * {"mx": 1e6, "kx": 1e3, "x": 1.0}[folded]
        if magnification < 20:  # '2x' is binning, not a magnification
            return None
        band = vocab.magnification_band(magnification)
        return Meaning("unit", ((magnification_label(magnification), SCORE["unit"]), (band, SCORE["implied"])))
    if folded in ("nm", "um", "µm", "μm", "pm", "å"):
        shown = {"um": "µm", "μm": "µm", "å": "Å"}.get(folded, folded)
        return _meaning("unit", [f"{value:g} {shown}"])
    if folded in ("mm", "cm", "m"):  # camera length; '1.5m' is 1500 mm, the same tag the metadata gives
        millimetres = value * {"mm": 1, "cm": 10, "m": 1000}[folded]
        if folded == "m" and value > 10:
            return None  # '30m' is minutes or metres of something else
        return _meaning("unit" if folded != "m" else "guess", [f"{millimetres:g} mm"])
    if folded == "mrad":
        return _meaning("unit", [f"{value:g} mrad"])
    return _meaning("unit", [f"{value:g} °C"])


def _read_detector(span: str, whole: bool) -> Meaning | None:
    detector = vocab.canonical_detector(span)
    if detector is None:
        return None
    # 'BF' and 'K2' as written, 'haadf' or 'ceta' as a whole token; 'bf' alone is too often 'before'.
    if not (span == detector.name or (span.isupper() and len(span) > 2) or (whole and len(span) > 2)):
        return None
    tags = [(detector.name, SCORE["detector"])] + [(also, SCORE["implied"]) for also in detector.also]
    if detector.mode:
        tags.append((detector.mode, SCORE["implied"]))
    return Meaning("detector", tuple(tags))


def _read_element(span: str, whole: bool) -> Meaning | None:
    if span in vocab.ELEMENTS and len(span) == 2:
        if span in vocab.AMBIGUOUS_SYMBOLS:
            return _meaning("ambiguous", [span, vocab.ELEMENTS[span]], SCORE["guess"])
        return _meaning("element", [span, vocab.ELEMENTS[span]])
    if whole and span in vocab.LOWERCASE_SYMBOLS:
        symbol = span.capitalize()
        return _meaning("lowercase", [symbol, vocab.ELEMENTS[symbol]])
    return None


def _formula_symbols(span: str) -> list[str] | None:
    """The element symbols of a formula written out in full ('La0.7Sr0.3MnO3'), or None if it is not one."""
    symbols, position = [], 0
    while position < len(span):
        match = _FORMULA_GROUP.match(span, position)
        if not match:
            return None
        symbol, count = match.group(1), match.group(2)
        if symbol not in vocab.ELEMENTS:
            if len(symbol) == 2 and symbol[0] in vocab.ELEMENTS and symbol[1] in "xyδ":
                symbol, count = symbol[0], symbol[1]  # 'Nx' in 'SiNx'
            else:
                return None
        if count and count[0].isdigit() and float(count) > 100:
            return None  # 'Si110' is a zone axis, not Si-110
        symbols.append(symbol)
        position = match.end()
    return symbols


def _read_formula(span: str) -> Meaning | None:
    symbols = _formula_symbols(span)
    # A formula names two elements at least, and has a count or a two-letter symbol: 'CBS' or 'SI' are not.
    if not symbols or len(set(symbols)) < 2 or not (re.search(r"\d", span) or any(len(s) == 2 for s in symbols)):
        return None
    if span in ("NaN", "NaNs"):  # not a number
        return None
    names = [vocab.ELEMENTS[s] for s in dict.fromkeys(symbols) if s not in vocab.COMMON_CONSTITUENTS]
    return Meaning("formula", ((span, SCORE["formula"]), *((name, SCORE["guess"]) for name in names)))


def _resolve_element_runs(readings: list[list[tuple[str, Meaning]]]) -> list[list[tuple[str, Meaning]]]:
    """Word-like symbols ('In', 'As') count as elements only among other elements ('Cu_In_Ga_Se')."""
    lone = [spans[0][1].kind if len(spans) == 1 else None for spans in readings]  # a token that is one symbol
    trusted = [False] * len(readings)
    start = 0
    while start < len(readings):
        end = start
        while end < len(readings) and lone[end] in ("element", "ambiguous"):
            end += 1
        if end - start >= 2 and "element" in lone[start:end]:
            trusted[start:end] = [True] * (end - start)
        start = max(end, start + 1)
    return [
        [(span, meaning) for span, meaning in spans if meaning.kind != "ambiguous" or trusted[index]]
        for index, spans in enumerate(readings)
    ]


# ------------------------------------------------------------------ folders


def _name_parts(path: str) -> tuple[list[str], str]:
    """The folders of a path and the file's name without its extension."""
    parts = [part for part in path.split("/") if part and part not in (".", "..")]
    if not parts:
        return [], ""
    name = parts[-1]
    stem, dot, suffix = name.rpartition(".")
    if dot and stem and suffix.isalnum() and len(suffix) <= 5 and not suffix.isdigit():
        name = stem
    return parts[:-1], name


def _folder_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _dates(text: str, score: float, evidence: str) -> tuple[list[Tag], str]:
    """Dates (and their years) in a name, and the name with them taken out."""
    tags = []
    for match in _ISO_DATE.finditer(text):
        date = _valid_date(*match.groups())
        if date:
            tags += [Tag(date, score, evidence, "date"), Tag(date[:4], score, evidence, "date")]
    return tags, _ISO_DATE.sub(" ", text)


def _valid_date(year: str, month: str, day: str) -> str | None:
    try:
        date = dt.date(int(year), int(month), int(day))
    except ValueError:
        return None
    return date.isoformat() if date.year <= dt.date.today().year + 1 else None


class FilenameTagger(Tagger):
    name = "filenames"
    version = "2"  # 2: tags name their category
    description = "Shorthand in file and folder names: materials, units, detectors, techniques, users, dates"
    applies_to = frozenset({"file"})
    batch_size = 512
    tag_category = "other"  # a facility's own words and people's folders; the vocabulary's tags say what they are

    def __init__(self):
        self.shorthand = Shorthand()
        self.instrument_folders: set[str] = set()
        self.id_patterns = [re.compile(p) for p in _DEFAULT_ID_PATTERNS]

    def load(self, options, device="cpu"):
        options = options or {}
        dictionary = _dictionary_option(options.get("dictionary") or {})
        ignore = options.get("ignore") or []
        folders = options.get("instrument_folders") or []
        for key, value in (("ignore", ignore), ("instrument_folders", folders)):
            if not isinstance(value, list):
                raise TaggerUnavailable(f"taggers: filenames: {key}: must be a list of names, e.g. [test, old]")
        patterns = options.get("id_patterns") or []
        try:
            self.id_patterns = [re.compile(p) for p in [*_DEFAULT_ID_PATTERNS, *patterns]]
        except (re.error, TypeError) as error:
            raise TaggerUnavailable(f"taggers: filenames: id_patterns: not a regular expression: {error}") from None
        self.shorthand = Shorthand(dictionary, [str(token) for token in ignore])
        self.instrument_folders = {_folder_key(str(name)) for name in folders}

    def tag_batch(self, items):
        return tags_only(items, self.tag_item)

    def tag_item(self, item: Item) -> list[Tag]:
        row = item.row
        path = str(row.get("path") or row.get("name") or "")
        folders, name = _name_parts(path)
        found: dict[str, Tag] = {}
        for tag in self._tags_of(folders, name, row):
            if tag.text not in found or found[tag.text].score < tag.score:
                found[tag.text] = tag
        return list(found.values())

    def _tags_of(self, folders: list[str], name: str, row: dict):
        start = self._instrument_folder(folders, row.get("instrument"))
        meaningful = folders[start + 1 :] if start is not None else folders[-3:]
        if start is not None:
            yield from self._user_folder(meaningful, folders[start])
        for pattern in self.id_patterns:
            for text in [*meaningful, name]:
                for match in pattern.finditer(text):
                    yield Tag(match.group(match.lastindex or 0), SCORE["id"], text, "record")
        for folder in meaningful:
            if _YEAR.match(folder):
                yield Tag(folder, SCORE["folder"], f"folder {folder}", "date")
                continue
            dates, rest = _dates(folder, SCORE["folder"], f"folder {folder}")
            yield from dates
            yield from self.shorthand.decode(rest)
        dates, rest = _dates(name, SCORE["guess"], name)
        yield from dates
        short = _SHORT_DATE.match(rest)
        if short:
            date = _valid_date(f"20{short.group(1)}", short.group(2), short.group(3))
            if date and int(short.group(1)) > 0:
                evidence = short.group(0)
                yield from (Tag(day, SCORE["guess"], evidence, "date") for day in (date, date[:4]))
                rest = rest[short.end() :]
        readings = _this_datasets_detector(self.shorthand.read(rest), row)
        yield from (tag for tag in best_tags(readings) if not _projector_mode_word(tag, row))

    def _instrument_folder(self, folders: list[str], instrument: str | None) -> int | None:
        """The index of the folder named after the file's instrument ('team05' for TEAM 0.5), if any."""
        names = set(self.instrument_folders)
        if instrument:
            names.add(_folder_key(instrument))
        for index in range(len(folders) - 1, -1, -1):
            if _folder_key(folders[index]) in names:
                return index
        return None

    def _user_folder(self, folders: list[str], instrument_folder: str):
        """The first folder after the instrument's (and its year) that reads as a person's login ('kyamada'),
        with the session's date or project folder below it."""
        for index, folder in enumerate(folders):
            if _YEAR.match(folder) or _ISO_DATE.search(folder):
                continue
            if (
                index < len(folders) - 1
                and _USER_NAME.match(folder)
                and folder.lower() not in _GENERIC_FOLDERS
                and not self.shorthand.decode(folder)
            ):
                yield Tag(folder, SCORE["folder"], f"folder {folder} after instrument folder {instrument_folder}")
            return


def _dictionary_option(dictionary) -> dict[str, list[str]]:
    """The facility's dictionary from metadata.yml, each token's tags as a list ('STO: SrTiO3' is one tag)."""
    usage = "taggers: filenames: dictionary: must map a token to a list of tags, e.g. {LNO: [LaNiO3, nickelate]}"
    if not isinstance(dictionary, dict):
        raise TaggerUnavailable(usage)
    cleaned = {}
    for token, tags in dictionary.items():
        tags = [tags] if isinstance(tags, str) else tags
        if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
            raise TaggerUnavailable(f"{usage}; {token!r} maps to {tags!r}")
        cleaned[str(token)] = tags
    return cleaned


def _this_datasets_detector(readings: list[Reading], row: dict) -> list[Reading]:
    """'STEM HAADF-DF4-DF2-BF …emd' names the detectors of all its datasets; each dataset's row is one of them."""
    named = {reading.meaning.tags[0][0] for reading in readings if reading.meaning.kind == "detector"}
    own = vocab.canonical_detector(row.get("detector"))
    if len(named) < 2 or own is None or own.name not in named:
        return readings
    return [r for r in readings if r.meaning.kind != "detector" or r.meaning.tags[0][0] == own.name]


def _projector_mode_word(tag: Tag, row: dict) -> bool:
    """Velox names STEM files '<mode> <detectors> Diffraction <probe>': there the word is the projector's mode."""
    return tag.text == "diffraction" and row.get("mode") == "STEM" and row.get("kind") in ("image", "stack")


@hookimpl
def register_taggers(register):
    register(FilenameTagger())
