"""OCR of burned-in text on real SEM images, through the catalog as the tagging pipeline sees them."""

from __future__ import annotations

import shutil

import numpy as np
import pytesseract
import pytest
from PIL import Image, ImageDraw, ImageFont
from scisearch_taggers.helpers.ocr_text import readings
from scisearch_taggers.ocr import OcrTagger

from datasette_scisearch.catalog import open_catalog
from datasette_scisearch.config import load_settings
from datasette_scisearch.ingest.files import load_files
from datasette_scisearch.tagging.items import iter_items
from datasette_scisearch.tagging.tagger import ItemError, Result, TaggerUnavailable

from .conftest import REPO, shared_data

needs_tesseract = pytest.mark.skipif(
    shutil.which("tesseract") is None, reason="tesseract is not installed (apt-get install tesseract-ocr)"
)
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
BOLD_FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


def font(path: str, size: int) -> ImageFont.FreeTypeFont:
    try:
        return ImageFont.truetype(path, size)
    except OSError:
        pytest.skip(f"font {path} is not installed (Debian package fonts-dejavu-core)")


def sem_image(name: str = "125nm_03_cropped.png") -> Image.Image:
    return Image.open(shared_data("sem_images", "nanowires_fullres", name)).convert("L")


def with_data_bar(image: Image.Image, text: str) -> Image.Image:
    """The image with an FEI-style data bar under it: white text and a scale bar on black."""
    width, height = image.size
    canvas = Image.new("L", (width, height + 64), 0)
    canvas.paste(image, (0, 0))
    draw = ImageDraw.Draw(canvas)
    draw.text((12, height + 20), text, fill=255, font=font(FONT, 22))
    draw.line((width - 200, height + 14, width - 20, height + 14), fill=255, width=4)
    return canvas


def with_label(image: Image.Image, text: str) -> Image.Image:
    """The image with a scale bar and its label burned into the picture's bottom-left corner."""
    labelled = image.copy()
    draw = ImageDraw.Draw(labelled)
    draw.line((30, labelled.height - 30, 230, labelled.height - 30), fill=255, width=6)
    draw.text((80, labelled.height - 75), text, fill=255, font=font(BOLD_FONT, 28))
    return labelled


def catalogued(tmp_path, image: Image.Image, name: str):
    """The saved image as the catalog gives it to taggers: loaded, then read back as an Item."""
    folder = tmp_path / "exports"
    folder.mkdir(exist_ok=True)
    image.save(folder / name)
    db = open_catalog(tmp_path / f"{name}.db")
    load_files(db, [folder / name], load_settings(REPO / "metadata.yml"), progress=False)
    [item] = list(iter_items(db, "file"))
    db.close()
    return item


@pytest.fixture(scope="module")
def tagger():
    if shutil.which("tesseract") is None:
        pytest.skip("tesseract is not installed (apt-get install tesseract-ocr)")
    tagger = OcrTagger()
    tagger.load({}, "cpu")
    return tagger


def ocr(tagger, item) -> Result | ItemError:
    [(_, outcome)] = list(tagger.tag_batch([item]))
    return outcome


def tag_texts(outcome: Result) -> set[str]:
    return {tag.text for tag in outcome.tags}


DATA_BAR = "HV 5.00 kV   WD 5.1 mm   Mag 8 000 x   200 nm"


@needs_tesseract
@pytest.mark.parametrize("name", ["with_bar.png", "with_bar.tif"])
def test_data_bar_of_an_sem_export_gives_scale_bar_voltage_and_magnification(tmp_path, tagger, name):
    item = catalogued(tmp_path, with_data_bar(sem_image(), DATA_BAR), name)
    assert tagger.wants(item)
    outcome = ocr(tagger, item)
    assert {"200 nm", "5 kV", "8000x"} <= tag_texts(outcome)


@needs_tesseract
def test_recognised_text_is_the_evidence(tmp_path, tagger):
    outcome = ocr(tagger, catalogued(tmp_path, with_data_bar(sem_image(), DATA_BAR), "with_bar.png"))
    evidence = next(tag.evidence for tag in outcome.tags if tag.text == "200 nm")
    assert "HV" in evidence and "Mag" in evidence and "200" in evidence
    assert all(0.5 <= tag.score <= 1 for tag in outcome.tags)


@needs_tesseract
def test_a_scale_bar_label_on_the_picture_itself_is_read(tmp_path, tagger):
    item = catalogued(tmp_path, with_label(sem_image("130nm_05_cropped.png"), "500 nm"), "labelled.png")
    assert "500 nm" in tag_texts(ocr(tagger, item))


@needs_tesseract
def test_a_coloured_label_on_a_grey_micrograph_is_read(tmp_path, tagger):
    image = sem_image("140nm_10_cropped.png").convert("RGB")
    draw = ImageDraw.Draw(image)
    yellow = (255, 220, 0)
    draw.line((image.width - 250, image.height - 30, image.width - 50, image.height - 30), fill=yellow, width=6)
    draw.text((image.width - 210, image.height - 75), "1 µm", fill=yellow, font=font(BOLD_FONT, 28))
    assert "1 µm" in tag_texts(ocr(tagger, catalogued(tmp_path, image, "yellow_label.png")))


@needs_tesseract
def test_an_sem_image_without_text_gives_no_tags(tmp_path, tagger):
    outcome = ocr(tagger, catalogued(tmp_path, sem_image(), "plain.png"))
    assert isinstance(outcome, Result) and outcome.tags == []


@needs_tesseract
def test_a_blank_image_gives_no_tags_and_no_error(tmp_path, tagger):
    blank = Image.fromarray(np.full((400, 600), 128, dtype=np.uint8))
    outcome = ocr(tagger, catalogued(tmp_path, blank, "blank.png"))
    assert isinstance(outcome, Result) and outcome.tags == []


def test_raw_instrument_data_is_not_wanted(tmp_path):
    em = shared_data("em")
    db = open_catalog(tmp_path / "catalog.db")
    load_files(
        db, [em / "16_STOimage_1.ser", em / "08_carbon.dm3"], load_settings(REPO / "metadata.yml"), progress=False
    )
    items = list(iter_items(db, "file"))
    assert len(items) == 2
    assert not any(OcrTagger().wants(item) for item in items)


def test_exported_images_are_wanted(tmp_path):
    item = catalogued(tmp_path, sem_image(), "plain.png")
    assert OcrTagger().wants(item)


def test_missing_tesseract_is_unavailable_with_the_install_command(tmp_path):
    before = pytesseract.pytesseract.tesseract_cmd
    pytesseract.pytesseract.tesseract_cmd = str(tmp_path / "no-such-tesseract")
    try:
        with pytest.raises(TaggerUnavailable, match=r"apt-get install tesseract-ocr"):
            OcrTagger().load({}, "cpu")
    finally:
        pytesseract.pytesseract.tesseract_cmd = before


def test_a_configured_tesseract_that_is_not_there_is_unavailable(tmp_path):
    before = pytesseract.pytesseract.tesseract_cmd
    try:
        with pytest.raises(TaggerUnavailable, match="tesseract is not installed"):
            OcrTagger().load({"tesseract_cmd": str(tmp_path / "bin" / "tesseract")}, "cpu")
    finally:
        pytesseract.pytesseract.tesseract_cmd = before


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("HV 5.00 kV WD5.1mm Mag 8 000 x 200 nm", ["WD 5.1 mm", "200 nm", "5 kV", "8000x"]),
        ("EHT = 20.00 kV  Mag = 8.00 K X  WD = 5.1 mm", ["WD 5.1 mm", "20 kV", "8000x"]),
        ("x8,000  5 um", ["5 µm", "8000x"]),
        ("HFW 10.4 \u03bcm", ["HFW 10.4 µm"]),
        ("1,5 nm", ["1.5 nm"]),
        ("Mag 8 000 x 200 nm", ["200 nm", "8000x"]),
        ("HV5.00kV Mag8000x 200nm", ["200 nm", "5 kV", "8000x"]),
        ("1pm", ["1 µm"]),
    ],
)
def test_values_in_recognised_text_are_normalised(text, expected):
    assert readings(text) == expected


@needs_tesseract
def test_a_language_without_tesseract_data_is_unavailable_with_the_package_to_install():
    with pytest.raises(TaggerUnavailable, match=r"apt-get install tesseract-ocr-xyz"):
        OcrTagger().load({"languages": "eng+xyz"}, "cpu")
