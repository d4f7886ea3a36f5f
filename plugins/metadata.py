"""The ``metadata`` tagger: what the instrument wrote down, in the words people search with.

The loaders already normalised the numbers (``voltage_kv``, ``magnification``,
``pixel_size_nm`` …) into columns; this tagger turns a row's columns and raw
metadata into tags: the mode (TEM, STEM, SEM, EELS, EDS, diffraction), the
voltage ("300 kV"), the magnification and its band, the detector under one
spelling (BM-Ceta -> Ceta), the instrument, the kind of data and a pixel-size
band.  The instrument said so, so scores are 0.95–1.0; a tag the tagger infers
(a HAADF image is STEM whatever mode the file recorded) scores a little less,
and its evidence says why.  No pixels are read.

Options (metadata.yml, ``taggers: metadata:``): ``sem_instruments``, names of
the facility's scanning electron microscopes beyond the ones recognised here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from datasette_scisearch.hookspecs import hookimpl
from datasette_scisearch.ingest.normalize import magnification_label, number
from datasette_scisearch.tagging.items import file_metadata
from datasette_scisearch.tagging.tagger import Item, Tag, Tagger, TaggerUnavailable, tags_only

from .filenames import Shorthand
from .helpers import em_vocabulary as vocab

SAID = 1.0  # the file says so in as many words
DERIVED = 0.95  # a band or spelling of what the file says, or what follows from it without doubt
INFERRED = 0.9  # follows from the file by a rule a microscopist would apply
TYPED = 0.85  # a sample name someone typed into the acquisition software: still shorthand

KIND_TAGS = {
    "image": "image",
    "diffraction": "diffraction pattern",
    "spectrum": "spectrum",
    "spectrum image": "spectrum image",
    "stack": "stack",
    "4D": "4D",
}
# Magnification and pixel size mean something only where the data has real-space pixels.
SPATIAL_KINDS = frozenset({"image", "stack", "spectrum image", "4D"})
MODE_SPELLING = {
    "tem": "TEM",
    "stem": "STEM",
    "sem": "SEM",
    "eels": "EELS",
    "eds": "EDS",
    "edx": "EDS",
    "xeds": "EDS",
    "eftem": "EFTEM",
    "diffraction": "diffraction",
}
# Scanning electron microscopes by the names their software reports (FEI/Thermo, Zeiss, JEOL, Hitachi, Tescan).
SEM_NAMES = re.compile(
    r"\b(helios|gemini|sigma|merlin|supra|auriga|crossbeam|quanta|nova ?nano\w*|scios|apreo|verios|teneo|prisma"
    r"|axia|magellan|inspect|phenom|regulus|mira|maia|lyra|vega|clara|amber|solaris|evo)\b|\bjsm-|\bsu\d{4}\b",
    re.IGNORECASE,
)
PIXEL_BANDS_NM = [(0.01, "pixel < 0.01 nm"), (0.1, "pixel 0.01–0.1 nm"), (1, "pixel 0.1–1 nm"), (10, "pixel 1–10 nm"),
                  (100, "pixel 10–100 nm"), (1000, "pixel 100–1000 nm")]  # fmt: skip
# Sampling at 0.05 nm or finer resolves 0.1 nm (Nyquist): atomic columns in any crystal.
ATOMIC_SAMPLING_NM = 0.05


class MetadataTagger(Tagger):
    name = "metadata"
    version = "2"  # 2: tags name their category
    description = "Mode, voltage, magnification, detector, instrument, kind and pixel size from the file's metadata"
    applies_to = frozenset({"file"})
    batch_size = 512
    tag_category = "technique"  # modes and spectroscopies; the rest name their own below

    def __init__(self):
        self.sem_instruments: set[str] = set()
        self.shorthand = Shorthand()

    def load(self, options, device="cpu"):
        names = (options or {}).get("sem_instruments") or []
        if not isinstance(names, list):
            raise TaggerUnavailable("taggers: metadata: sem_instruments: must be a list of instrument names")
        self.sem_instruments = {str(name).lower() for name in names}

    def tag_batch(self, items):
        return tags_only(items, self.tag_item)

    def tag_item(self, item: Item) -> list[Tag]:
        row, metadata = item.row, file_metadata(item.row)
        found: dict[str, Tag] = {}
        for tag in self._tags_of(row, metadata):
            if tag.text not in found or found[tag.text].score < tag.score:
                found[tag.text] = tag
        return list(found.values())

    def _tags_of(self, row: dict, metadata: dict) -> Iterator[Tag]:
        kind = row.get("kind")
        if kind in KIND_TAGS:
            yield Tag(KIND_TAGS[kind], SAID, f"kind = {kind}", "kind")
        yield from _instrument(row)
        detector = vocab.canonical_detector(row.get("detector"))
        yield from _detector(row, detector)
        yield from self._modes(row, metadata, detector)
        yield from _numbers(row)
        yield from _eds_elements(metadata)
        yield from self._sample_name(metadata)

    def _is_sem(self, row: dict) -> str | None:
        """The name that shows the instrument is a scanning electron microscope, if it is one."""
        for name in (row.get("instrument"), row.get("instrument_reported")):
            if name and (str(name).lower() in self.sem_instruments or SEM_NAMES.search(str(name))):
                return str(name)
        return None

    def _modes(self, row: dict, metadata: dict, detector: vocab.Detector | None) -> Iterator[Tag]:
        written = str(row.get("mode") or "").strip()
        mode = MODE_SPELLING.get(written.lower(), written) or None
        kind = row.get("kind")
        sem = self._is_sem(row)
        if detector is not None and detector.mode == "STEM" and not sem:
            if mode != "STEM":
                # RosettaSciIO files a Bruker HAADF image under 'TEM', the kind of instrument: an annular detector
                # only ever records a scanned probe.
                yield Tag("STEM", DERIVED, f"detector = {row['detector']}, an annular STEM detector")
                mode = None if mode == "TEM" else mode
        if mode:
            yield Tag(mode, SAID, f"mode = {written}")
        if sem and mode != "SEM":
            yield Tag("SEM", DERIVED, f"instrument {sem} is a scanning electron microscope")
        if kind == "diffraction":
            yield Tag("diffraction", SAID, "kind = diffraction")
        if kind == "4D" and mode == "STEM":
            yield Tag("4D-STEM", DERIVED, "kind = 4D, mode = STEM")
        yield from _spectroscopy(row, metadata, detector)
        if kind == "spectrum image" and not sem and mode != "STEM":
            yield Tag("STEM", INFERRED, "kind = spectrum image: a spectrum image is recorded by scanning the probe")
        if _text(_get(metadata, "Optics", "EFTEMOn")).lower() == "true":
            yield Tag("EFTEM", SAID, "metadata Optics.EFTEMOn = true")

    def _sample_name(self, metadata: dict) -> Iterator[Tag]:
        """Berkeley EMD and Bruker files keep the sample's name as someone typed it: 'STO laser cut'."""
        for path in (("sample", "sample name"), ("metadata", "Sample", "name")):
            name = _text(_get(metadata, *path))
            for tag in self.shorthand.decode(name) if name else ():
                yield Tag(tag.text, TYPED, f"sample name '{name}': {tag.evidence}", tag.category)


def _instrument(row: dict) -> Iterator[Tag]:
    instrument, reported = row.get("instrument"), row.get("instrument_reported")
    if instrument:
        said = f" (the file says '{reported}')" if reported and reported != instrument else ""
        yield Tag(str(instrument), SAID, f"instrument = {instrument}{said}", "instrument")
    elif reported:
        yield Tag(str(reported), DERIVED, f"instrument_reported = {reported}", "instrument")


def _detector(row: dict, detector: vocab.Detector | None) -> Iterator[Tag]:
    written = str(row.get("detector") or "").strip()
    if not written:
        return
    if detector is None:
        yield Tag(written, SAID, f"detector = {written}", "instrument")
        return
    yield Tag(detector.name, SAID, f"detector = {written}", "instrument")
    for also in detector.also:
        yield Tag(also, DERIVED, f"detector = {written}", "instrument")


def _spectroscopy(row: dict, metadata: dict, detector: vocab.Detector | None) -> Iterator[Tag]:
    """EELS or EDS from what the file says its signal is, its detector, or a Gatan spectrum's energy axis."""
    dm_signal = _text(metadata.get("Meta Data Signal"))
    if dm_signal.upper() in ("EELS", "EDS", "EDX", "X-RAY"):
        yield Tag("EELS" if dm_signal.upper() == "EELS" else "EDS", SAID, f"metadata Meta Data Signal = {dm_signal}")
    signal_type = _text(_get(metadata, "metadata", "Signal", "signal_type"))
    if signal_type.upper().startswith(("EDS", "EELS")):
        mode = "EELS" if signal_type.upper().startswith("EELS") else "EDS"
        yield Tag(mode, SAID, f"metadata Signal.signal_type = {signal_type}")
    if detector is not None and detector.mode == "EDS":
        yield Tag("EDS", DERIVED, f"detector = {row['detector']}, an X-ray detector")
    if str(row.get("dataset_name") or "").upper() in ("EDX", "EDS"):
        yield Tag("EDS", DERIVED, f"dataset_name = {row['dataset_name']}")
    if (
        row.get("format") in ("dm3", "dm4")
        and row.get("kind") in ("spectrum", "spectrum image")
        and not dm_signal
        and str(row.get("mode") or "").upper() not in ("EDS", "EELS")
    ):
        for key, unit in metadata.items():
            if key.startswith("Calibrations Dimension") and key.endswith("Units") and _text(unit) == "eV":
                # Gatan's software records spectra from its own energy-loss spectrometers.
                yield Tag("EELS", INFERRED, f"a Gatan spectrum with an energy axis ({key} = eV)")
                break


def _numbers(row: dict) -> Iterator[Tag]:
    kind = row.get("kind")
    voltage = number(row.get("voltage_kv"))
    if voltage and voltage > 0:
        yield Tag(f"{round(voltage, 1):g} kV", SAID, f"voltage_kv = {voltage:g}", "setting")
    magnification = number(row.get("magnification"))
    if magnification and magnification > 0 and kind in SPATIAL_KINDS:
        evidence = f"magnification = {magnification:.0f}"
        yield Tag(magnification_label(magnification), SAID, evidence, "setting")
        yield Tag(vocab.magnification_band(magnification), DERIVED, evidence, "setting")
    pixel = number(row.get("pixel_size_nm"))
    if pixel and pixel > 0 and kind in SPATIAL_KINDS:
        evidence = f"pixel_size_nm = {pixel:g}"
        band = next((band for limit, band in PIXEL_BANDS_NM if pixel < limit), "pixel ≥ 1 µm")
        yield Tag(band, DERIVED, evidence, "setting")
        if pixel <= ATOMIC_SAMPLING_NM and (row.get("mode") or magnification):  # a microscope's image, not a test array
            yield Tag("atomic resolution", INFERRED, evidence + ": fine enough to resolve atomic columns", "feature")
    camera_length = number(row.get("camera_length_mm"))
    if camera_length and camera_length > 0 and (kind in ("diffraction", "4D") or row.get("mode") == "STEM"):
        # The camera length sets a diffraction pattern's scale and a STEM detector's collection angles; in TEM
        # imaging the software writes it too but it means nothing there.
        yield Tag(f"{round(camera_length, 1):g} mm", SAID, f"camera_length_mm = {camera_length:g}", "setting")


def _eds_elements(metadata: dict) -> Iterator[Tag]:
    """The elements an EDS map was set up for (Bruker and other RosettaSciIO formats keep the list)."""
    elements = _get(metadata, "metadata", "Sample", "elements")
    if not isinstance(elements, list):
        return
    for symbol in elements:
        if isinstance(symbol, str) and symbol in vocab.ELEMENTS:
            yield Tag(symbol, INFERRED, "metadata Sample.elements", "material")
            yield Tag(vocab.ELEMENTS[symbol], INFERRED, f"metadata Sample.elements: {symbol}", "material")


def _get(metadata: dict, *keys):
    value = metadata
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _text(value) -> str:
    return value.strip() if isinstance(value, str) else ""


@hookimpl
def register_taggers(register):
    register(MetadataTagger())
