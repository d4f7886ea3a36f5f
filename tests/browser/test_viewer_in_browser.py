"""The item page's viewer in Chromium: a scale bar from the file's pixel size, zoom, levels, log and a PNG."""

from __future__ import annotations

import re

FILE_PAGE = "/-/scisearch/item/demo/file/22"  # a 512-pixel-wide HAADF image of 34.7 pm pixels
DIFFRACTION_PAGE = "/-/scisearch/item/demo/file/25"


def open_viewer(page, path: str = FILE_PAGE):
    page.goto(path)
    page.wait_for_selector(".scisearch-viewer-ready")
    return page.locator("[data-scisearch-viewer]")


def scale_bar(page) -> tuple[float, float]:
    """The scale bar's length in nm and in screen pixels."""
    length_nm = float(page.locator(".scisearch-scale-bar").get_attribute("data-length-nm"))
    return length_nm, page.locator(".scisearch-scale-line").bounding_box()["width"]


def test_the_scale_bar_matches_the_files_pixel_size(page):
    open_viewer(page)
    length_nm, width_px = scale_bar(page)
    shown = page.locator(".scisearch-viewer-canvas").bounding_box()["width"]
    nm_per_screen_pixel = 0.0347 * 512 / shown
    assert abs(width_px * nm_per_screen_pixel - length_nm) / length_nm < 0.05
    assert re.fullmatch(r"\d+(\.\d+)? (nm|pm|µm)", page.locator(".scisearch-scale-label").inner_text())


def test_zooming_in_enlarges_the_image_and_shortens_the_scale_bar(page):
    open_viewer(page)
    before_nm, _ = scale_bar(page)
    page.click("[data-zoom=in]")
    page.click("[data-zoom=in]")
    assert page.locator(".scisearch-zoom-value").inner_text() == "225%"
    after_nm, _ = scale_bar(page)
    assert after_nm < before_nm
    page.click("[data-zoom=reset]")
    assert page.locator(".scisearch-zoom-value").inner_text() == "100%"


def test_log_display_and_levels_change_the_pixels_shown(page):
    open_viewer(page)
    mean = "() => { const c = document.querySelector('.scisearch-viewer-canvas');"
    mean += " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
    mean += " let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i]; return s / (d.length / 4); }"
    plain = page.evaluate(mean)
    page.check("[name=log]")
    assert page.evaluate(mean) > plain
    page.uncheck("[name=log]")
    page.fill("[name=black]", "120")
    page.dispatch_event("[name=black]", "input")
    assert page.evaluate(mean) < plain


def test_a_diffraction_pattern_opens_in_log_display_without_a_scale_bar(page):
    open_viewer(page, DIFFRACTION_PAGE)
    assert page.is_checked("[name=log]")
    assert page.locator(".scisearch-scale-bar").count() == 0


def test_the_view_downloads_as_a_png(page):
    open_viewer(page)
    with page.expect_download() as download:
        page.click("[data-download]")
    path = download.value.path()
    assert download.value.suggested_filename == "Au_np_300kV_HAADF_003-view.png"
    with open(path, "rb") as png:
        assert png.read(8) == b"\x89PNG\r\n\x1a\n"
