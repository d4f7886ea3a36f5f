"""What the facility image model learns from (learning/pretrain.py): each image's pixels, the labels its instrument
recorded, and a caption of what is known about it without looking at it.

A caption is made from the recorded labels, the shorthand of the file's name and folders decoded by the filenames
tagger's vocabulary, and the title of its proposal — as far as each can describe the picture (``picture_words``).
"""

from __future__ import annotations

import functools
import io
import re
from dataclasses import dataclass

import numpy as np
import sqlite_utils

IMAGE_SIZE = 64  # the model's input: previews are cropped square and resized to this
LABELS = ("mode", "kind", "detector", "magnification")
# Words a researcher uses for each magnification band (metadata_labels.MAGNIFICATION_BANDS).  Only the band above
# 1 Mx says what it shows (atomic columns): 100 kx-1 Mx holds nanoparticles as often as lattice fringes.
BAND_WORDS = {
    "magnification below 10 kx": "low magnification, overview",
    "magnification 10-100 kx": "medium magnification",
    "magnification 100 kx-1 Mx": "high magnification",
    "magnification above 1 Mx": "atomic resolution",
}


@dataclass
class ImageSet:
    ids: list[int]  # file ids
    pixels: np.ndarray  # (n, IMAGE_SIZE, IMAGE_SIZE) float32 in [0, 1]
    captions: list[str]
    labels: dict[str, list[str | None]]


def read_images(db: sqlite_utils.Database, file_ids: list[int] | None = None) -> ImageSet:
    """Every file with a preview (or those of ``file_ids``), its pixels, caption and recorded labels."""
    ids, pixels, captions = [], [], []
    labels: dict[str, list] = {label: [] for label in LABELS}
    for file_id, png, described, recorded in described_files(db, file_ids, with_png=True):
        square = square_pixels(png)
        if square is None:
            continue
        ids.append(file_id)
        pixels.append(square)
        captions.append(described)
        for label, value in zip(LABELS, recorded):
            labels[label].append(value or None)
    shape = (0, IMAGE_SIZE, IMAGE_SIZE)
    return ImageSet(ids, np.stack(pixels) if pixels else np.zeros(shape, np.float32), captions, labels)


def described_files(db: sqlite_utils.Database, file_ids, with_png: bool):
    """(file id, preview PNG or None, caption, recorded labels) of every file with a preview, in id order."""
    from .metadata_labels import _band

    png = "p.png" if with_png else "null"
    rows = db.execute(
        f"select f.id, f.path, f.name, f.kind, f.mode, f.detector, f.magnification, f.instrument, {png} "
        "from files f join previews p on p.file_id = f.id where p.png is not null order by f.id"
    ).fetchall()
    wanted = None if file_ids is None else {int(i) for i in file_ids}
    contexts = _linked_titles(db)
    for file_id, path, name, kind, mode, detector, magnification, instrument, image in rows:
        if wanted is not None and file_id not in wanted:
            continue
        band = _band(magnification)
        described = caption(path or name or "", kind, mode, detector, band, instrument, contexts.get(file_id))
        yield file_id, image, described, (mode, kind, detector, band)


def caption(path: str, kind, mode, detector, band, instrument, context: str | None = None) -> str:
    """A sentence of what is known about a file without looking at it: the recorded labels, the shorthand of its
    name and folders decoded (plugins' filename vocabulary when installed) as far as it describes the picture
    (``picture_words``), and its proposal's title."""
    parts = [" ".join(str(v) for v in (mode, detector, kind) if v)]
    if band:
        parts.append(f"{band}, {BAND_WORDS[band]}")
    parts.append(", ".join(_decoded_name(path, kind, band)))
    if instrument:
        parts.append(f"on {instrument}")
    if context:
        parts.append(_picture_context(context, kind, band))
    return "; ".join(part for part in parts if part)


# Kinds of data whose picture is the specimen in real space: only there can its shape be seen.
REAL_SPACE_KINDS = frozenset({"image", "stack"})


def picture_words(category: str | None, kind: str | None, band: str | None) -> bool:
    """Whether a word read from a file's name, of this vocabulary ``category``, describes the picture.

    A name says what the sample is whatever was done with it: a facility's 'Au_np' is gold nanoparticles in its
    HAADF images, its diffraction patterns and its spectra alike.  The sample's shape — the vocabulary's
    *feature* words (nanoparticles, nanowires, grain boundary …) — is in the picture only of a real-space image;
    a diffraction pattern or a spectrum of it shows none, and a caption that says so teaches the word for the
    wrong pictures.  Where the kind was not recorded the name is all there is, and it is kept.  Settings read
    from the name (300 kV, 480 mm, 160 kx) say how the file was taken; where a magnification band was recorded
    they add nothing about the picture but noise (the name's words for the scale can even disagree with it:
    '160 kx, medium magnification' beside the recorded 'high magnification'), and are left out; without one
    they are all a caption has about the scale, and are kept."""
    if category == "feature":
        return kind is None or kind in REAL_SPACE_KINDS
    if category == "setting":
        return band is None
    return True


def _decoded_name(path: str, kind: str | None = None, band: str | None = None) -> list[str]:
    tokens = [token for token in re.split(r"[/\\]", path)[-3:] if token]
    name = re.sub(r"\.[A-Za-z0-9]{1,5}$", "", tokens[-1]) if tokens else ""
    shorthand = _shorthand()
    words: list[str] = []
    for text in [*tokens[:-1], name]:
        if shorthand is not None:
            words += [tag.text for tag in shorthand.decode(text) if picture_words(tag.category, kind, band)]
        else:
            words += [t for t in re.split(r"[^A-Za-z0-9]+", text) if t and not t.isdigit()]
    return list(dict.fromkeys(words))


@functools.lru_cache(maxsize=256)
def _picture_context(context: str, kind: str | None, band: str | None) -> str:
    """A proposal's title as far as it can describe this file's picture: for a diffraction pattern or a spectrum,
    without the sample's shape ('… of supported gold nanoparticle catalysts' → '… of supported gold catalysts'),
    by the rule and the vocabulary of ``picture_words``."""
    shorthand = _shorthand()
    if shorthand is None or picture_words("feature", kind, band):
        return context
    # A tag names one piece that says it (its best reading), so a title saying it twice is read again.
    for _ in range(8):
        found = [tag.evidence for tag in shorthand.decode(context) if tag.category == "feature"]
        if not found:
            break
        for evidence in found:
            piece, _, token = evidence.partition(" in ")  # 'NPs in AuNPs': the piece inside a longer token
            if token:
                context = re.sub(rf"\b{re.escape(token)}\b", token.replace(piece, ""), context)
            else:
                context = re.sub(rf"\b{re.escape(piece)}\b\s*", "", context)
    return " ".join(context.split())


@functools.lru_cache(maxsize=1)
def _shorthand():
    """The filenames tagger's decoder of shorthand, when that plugin is installed (the core names no plugin's
    module: it is found among the registered taggers)."""
    from ..plugins import get_taggers

    tagger = next((t for t in get_taggers() if t.name == "filenames"), None)
    return getattr(tagger, "shorthand", None)


def _linked_titles(db) -> dict[int, str]:
    """File id -> the title of the proposal its session or link points at, where the catalog knows one."""
    if "proposals" not in db.table_names():
        return {}
    found = {}
    for file_id, title in db.execute(
        "select f.id, p.title from files f join proposals p on p.id = f.proposal_id where p.title is not null"
    ):
        found[file_id] = title
    return found


def square_pixels(png: bytes) -> np.ndarray | None:
    """A preview as IMAGE_SIZE x IMAGE_SIZE grey levels in [0, 1]: centre crop to a square, antialiased resize.
    Previews are already contrast-stretched (diffraction patterns on a log scale) by the loaders."""
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(png)).convert("L")
    except Exception:
        return None
    width, height = image.size
    side = min(width, height)
    if side < 2:
        return None
    left, top = (width - side) // 2, (height - side) // 2
    image = image.crop((left, top, left + side, top + side)).resize((IMAGE_SIZE, IMAGE_SIZE), Image.LANCZOS)
    return np.asarray(image, dtype=np.float32) / 255.0
