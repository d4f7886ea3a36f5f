"""OCR of burned-in text: the data bar and labels that exported microscope images carry (tesseract).

Only exported images can carry burned-in text: PNG, JPEG, TIFF and BMP (an FEI or Zeiss SEM TIFF has its data
bar under the image).  Raw instrument data (dm3, ser, emd, mrc …) never does, and is not wanted.

Each tesseract call is a subprocess of a few hundred milliseconds, so only the parts that hold text are read:

- the data bar: a band at the bottom whose rows are mostly one flat background level, found by scanning up from
  the last row; it is read alone, the text then dominating what tesseract sees;
- where there is no data bar, the strips along the bottom and top edges, where labels and scale bars are put
  (sparse-text mode); the whole picture only with ``whole_image: true``, since over a textured micrograph
  tesseract takes seconds and finds mostly noise.

Each pass is prepared the way tesseract reads best: small images upsampled (it wants letters about 20-30 px
high), light-on-dark text inverted to dark-on-light, and an Otsu-thresholded and a plain grey version both read,
keeping the one tesseract is more confident of.  Only words of good confidence are kept.  The values found —
scale bars, voltage, magnification, working distance — become tags (``ocr_text``); the recognised text is their
evidence.

Options (``taggers: ocr:`` in metadata.yml): ``tesseract_cmd`` (the binary, if not on PATH), ``languages``
(default "eng"), ``min_confidence`` (0-100, default 50), ``timeout_s`` per tesseract call (default 20),
``whole_image`` (default false).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lazy_loader
import numpy as np

from datasette_scisearch.hookspecs import hookimpl
from datasette_scisearch.ingest.loader import LoaderError
from datasette_scisearch.tagging.items import PixelsUnavailable
from datasette_scisearch.tagging.tagger import Item, ItemError, Result, Tag, Tagger, TaggerUnavailable

from .helpers.ocr_text import readings

# Loaded at first use, not when the plugin is registered: every 'scisearch' command registers the taggers.
pytesseract = lazy_loader.load("pytesseract")
Image = lazy_loader.load("PIL.Image", suppress_warning=True)
ImageOps = lazy_loader.load("PIL.ImageOps", suppress_warning=True)
filters = lazy_loader.load("skimage.filters", suppress_warning=True)

EXPORTED_FORMATS = frozenset({"png", "jpg", "jpeg", "tif", "tiff", "bmp"})
MAX_SIDE = 4096  # larger exports are shrunk: their text is still tens of pixels high
WHOLE_IMAGE_SIDE = 1600  # the sparse-text pass over a whole picture costs seconds beyond this
MIN_TEXT_BAND_PX = 48  # strips lower than this are upsampled so their letters reach tesseract's liking
MAX_EVIDENCE_CHARS = 1000
EDGE_STRIP = 0.12  # of the height: the strips along the bottom and top edges read where there is no data bar
INSTALL_HINT = (
    "tesseract is not installed: run 'apt-get install tesseract-ocr' (Debian/Ubuntu) or 'brew install tesseract' "
    "(macOS), or set 'tesseract_cmd:' under taggers: ocr: in metadata.yml to the tesseract binary"
)


class OcrTagger(Tagger):
    name = "ocr"
    version = "2"  # 2: tags name their category
    tag_category = "setting"  # what it reads are scale bars, voltages and magnifications burned into the image
    description = "burned-in text of exported images: scale bars, voltage, magnification (tesseract)"
    applies_to = frozenset({"file"})
    needs_pixels = True
    batch_size = 8

    def __init__(self) -> None:
        self.languages = "eng"
        self.min_confidence = 50.0
        self.timeout_s = 20.0
        self.whole_image = False

    def wants(self, item: Item) -> bool:
        return file_type(item.row) in EXPORTED_FORMATS

    def load(self, options: dict[str, Any], device: str = "cpu") -> None:
        if options.get("tesseract_cmd"):
            pytesseract.pytesseract.tesseract_cmd = str(options["tesseract_cmd"])
        try:
            pytesseract.get_tesseract_version()
        except (pytesseract.TesseractNotFoundError, pytesseract.TesseractError, OSError) as error:
            raise TaggerUnavailable(f"{INSTALL_HINT} ({error})") from None
        self.languages = str(options.get("languages", self.languages))
        missing = set(self.languages.split("+")) - set(pytesseract.get_languages(config=""))
        if missing:
            packages = " ".join(f"tesseract-ocr-{language}" for language in sorted(missing))
            raise TaggerUnavailable(
                f"tesseract has no language data for {', '.join(sorted(missing))}: run 'apt-get install {packages}', "
                "or change 'languages:' under taggers: ocr: in metadata.yml"
            )
        self.min_confidence = float(options.get("min_confidence", self.min_confidence))
        self.timeout_s = float(options.get("timeout_s", self.timeout_s))
        self.whole_image = bool(options.get("whole_image", self.whole_image))

    def tag_batch(self, items: list[Item]) -> Iterator[tuple[Item, Result | ItemError]]:
        for item in items:
            yield item, self.read_item(item)

    def read_item(self, item: Item) -> Result | ItemError:
        try:
            grey = grey_image(item)
        except (PixelsUnavailable, LoaderError, OSError, ValueError) as error:
            return ItemError(f"cannot read its pixels: {error}")
        if grey is None:
            return Result()
        try:
            passes = [self.read(band, sparse) for band, sparse in text_bands(grey, self.whole_image)]
        except RuntimeError as error:  # pytesseract's timeout
            return ItemError(f"tesseract gave up on this image ({error}); raise timeout_s under taggers: ocr:")
        lines = [line for words in passes for line in words]
        if not lines:
            return Result()
        text = " / ".join(" ".join(word for word, _ in line) for line in lines)[:MAX_EVIDENCE_CHARS]
        tags = []
        for line in lines:
            line_text = " ".join(word for word, _ in line)
            score = round(float(np.mean([c for _, c in line])) / 100, 3)
            tags += [Tag(value, score, f"recognised text: {text}") for value in readings(line_text)]
        unique = {tag.text: tag for tag in sorted(tags, key=lambda tag: tag.score)}  # best score of each value
        return Result(tags=list(unique.values()))

    def read(self, band: np.ndarray, sparse: bool) -> list[list[tuple[str, float]]]:
        """Lines of (word, confidence) tesseract reads with good confidence in one band of the image."""
        best: list[list[tuple[str, float]]] = []
        best_confidence = 0.0
        for prepared in prepared_versions(band, on_picture=sparse):
            lines = self._lines(prepared, sparse)
            words = [confidence for line in lines for _, confidence in line]
            if not words:
                break  # the thresholded version found no text: the grey one is not worth another subprocess
            confidence = float(np.mean(words)) * math.sqrt(len(words))
            if confidence > best_confidence:
                best, best_confidence = lines, confidence
        return best

    def _lines(self, image: Image.Image, sparse: bool) -> list[list[tuple[str, float]]]:
        data = pytesseract.image_to_data(
            image,
            lang=self.languages,
            config=f"--psm {11 if sparse else 6}",
            output_type=pytesseract.Output.DICT,
            timeout=self.timeout_s,
        )
        lines: dict[tuple, list[tuple[str, float]]] = {}
        for word, confidence, *place in zip(
            data["text"], data["conf"], data["block_num"], data["par_num"], data["line_num"]
        ):
            word, confidence = word.strip(), float(confidence)
            if confidence >= self.min_confidence and any(c.isalnum() for c in word):
                lines.setdefault(tuple(place), []).append((word, confidence))
        return list(lines.values())


def file_type(row: dict) -> str:
    """The file's type in lower case: the catalogued format, else the path's suffix."""
    return str(row.get("format") or Path(str(row.get("path") or "")).suffix.lstrip(".")).lower()


def grey_image(item: Item) -> np.ndarray | None:
    """The image as 8-bit grey at up to ``MAX_SIDE`` a side, or None when it is blank (one grey level).

    Exported images are opened as they are (an export is not an instrument format, and its burned-in text
    needs every pixel); anything else goes through the catalog's loader.
    """
    path = Path(str(item.row.get("path") or ""))
    pixels = None
    if file_type(item.row) in EXPORTED_FORMATS and path.is_file():
        try:
            with Image.open(path) as image:
                image.thumbnail((MAX_SIDE, MAX_SIDE))
                if image.mode in ("RGB", "RGBA", "P", "CMYK"):
                    pixels = _grey_with_coloured_labels_white(image.convert("RGB"))
                else:
                    pixels = np.asarray(image.convert("L") if image.mode in ("LA", "1") else image)
        except (OSError, Image.DecompressionBombError, ValueError):
            pixels = None  # a TIFF dialect Pillow cannot decode: the loader that catalogued it can
    if pixels is None:
        pixels = item.pixels(max_side=MAX_SIDE)
    pixels = np.asarray(pixels, dtype=np.float64)
    while pixels.ndim > 2:
        pixels = pixels[..., 0] if pixels.shape[-1] <= 4 else pixels[pixels.shape[0] // 2]
    if pixels.ndim != 2 or min(pixels.shape) < 8:
        return None
    finite = pixels[np.isfinite(pixels)]
    if finite.size == 0 or finite.min() == finite.max():
        return None
    low, high = finite.min(), finite.max()
    return np.round((np.nan_to_num(pixels, nan=low) - low) / (high - low) * 255).clip(0, 255).astype(np.uint8)


def _grey_with_coloured_labels_white(image: Image.Image) -> np.ndarray:
    """Grey levels, with coloured pixels made white where colour is rare: a micrograph is grey, and the
    yellow or green of a label drawn on it would otherwise turn into a mid grey the texture shares."""
    rgb = np.asarray(image, dtype=np.int16)
    grey = np.asarray(image.convert("L")).copy()
    coloured = (rgb.max(axis=2) - rgb.min(axis=2)) > 60
    if 0.0005 <= coloured.mean() <= 0.2:
        grey[coloured] = 255
    return grey


def text_bands(grey: np.ndarray, whole_image: bool = False) -> list[tuple[np.ndarray, bool]]:
    """The parts of the image to read, each with whether to read it as sparse text: the data bar where there
    is one; else the bottom and top strips, where labels and scale bars sit, and the whole picture only when
    asked (tesseract takes seconds over a textured micrograph, and finds mostly noise there)."""
    top = data_bar_top(grey)
    if top is not None:
        return [(grey[top:], False)]
    strip = max(8, int(grey.shape[0] * EDGE_STRIP))
    bands = [(grey[-strip:], True), (grey[:strip], True)]
    if whole_image:
        step = math.ceil(max(grey.shape) / WHOLE_IMAGE_SIDE)
        bands.append((np.asarray(Image.fromarray(grey).reduce(step)) if step > 1 else grey, True))
    return bands


def data_bar_top(grey: np.ndarray, flat: float = 0.6, level_tolerance: int = 12) -> int | None:
    """First row of a data bar along the bottom, or None.

    A data bar is a band of rows that are mostly one background level (its text and scale bar are sparse);
    scanning up from the last row, the bar ends where three rows in a row are not.
    """
    height = grey.shape[0]
    background = int(np.bincount(grey[-3:].ravel(), minlength=256).argmax())
    near_background = (np.abs(grey.astype(np.int16) - background) <= level_tolerance).mean(axis=1) >= flat
    top, misses = height, 0
    for row in range(height - 1, -1, -1):
        if near_background[row]:
            top, misses = row, 0
        else:
            misses += 1
            if misses == 3:
                break
    bar = height - top
    if bar < max(12, 0.02 * height) or bar > 0.35 * height:
        return None
    return top


def prepared_versions(band: np.ndarray, on_picture: bool) -> list[Image.Image]:
    """The band as tesseract likes it: dark text on a light background, upsampled if small, with a margin
    (tesseract misreads text that touches the edge).

    Text on a picture is drawn at the image's extreme level (pure white, or pure black), which texture seldom
    reaches: keeping only those pixels lifts a label out of the micrograph under it, where any threshold
    between levels would fuse it with the specimen.  A data bar's flat background is split from its text by
    Otsu's threshold; a plain grey version follows as a second opinion.
    """
    if band.shape[0] < MIN_TEXT_BAND_PX:
        scale = math.ceil(MIN_TEXT_BAND_PX / band.shape[0])
        band = np.asarray(Image.fromarray(band).resize((band.shape[1] * scale, band.shape[0] * scale), Image.LANCZOS))
    if on_picture:
        text = _annotation_pixels(band)
        versions = [] if text is None else [np.where(text, 0, 255).astype(np.uint8)]
    else:
        threshold = filters.threshold_otsu(band) if band.min() < band.max() else band.min()
        above = band > threshold
        light_on_dark = above.mean() < 0.5  # the text is the minority side of Otsu's split
        versions = [
            np.where(above != light_on_dark, 255, 0).astype(np.uint8),  # background white, text black
            255 - band if light_on_dark else band,
        ]
    return [ImageOps.expand(Image.fromarray(version), border=12, fill=255) for version in versions]


def _annotation_pixels(band: np.ndarray, levels: int = 6) -> np.ndarray | None:
    """Pixels at the white or black extreme, whichever is rare enough to be lettering (0.05-20 % of the band)."""
    for text in (band >= 255 - levels, band <= levels):
        if 0.0005 <= text.mean() <= 0.2:
            return text
    return None


@hookimpl
def register_taggers(register):
    register(OcrTagger())
