"""The item page's spectrum plot, stack slider, tag groups and a proposal's files by kind, in Chromium."""

from __future__ import annotations

import re

from ..conftest import REPO

SCREENSHOTS = REPO / "build" / "screenshots"
SPECTRUM_PAGE = "/-/scisearch/item/demo/file/44"  # CeO2_cubes_EDS_300kV_013.msa: an EDS spectrum
SPECTRUM_IMAGE_PAGE = "/-/scisearch/item/demo/file/41"  # STO_EELS_SI_…hspy: 24×24 positions of EELS
STACK_PAGE = "/-/scisearch/item/demo/file/28"  # Au_np_insitu_300kV_series_007.emd: 10 frames
HAADF_PAGE = "/-/scisearch/item/demo/file/22"
PROPOSAL_PAGE = "/-/scisearch/item/demo/proposal/P-2021-0042"


def test_an_eds_spectrum_is_plotted_with_its_energy_in_kev(page):
    page.goto(SPECTRUM_PAGE)
    plot = page.locator("svg.scisearch-spectrum")
    assert plot.is_visible() and plot.bounding_box()["width"] > 300
    titles = plot.locator("text.axis-title").all_text_contents()
    assert titles == ["energy (keV)", "counts"]
    assert plot.locator("polyline").get_attribute("points").count(",") > 500


def test_a_spectrum_images_plot_is_its_spectrum_summed_over_the_scan(page):
    page.goto(SPECTRUM_IMAGE_PAGE)
    assert page.locator("svg.scisearch-spectrum text.axis-title").first.text_content() == "energy loss (eV)"
    assert "the sum over 576 scan positions" in page.locator(".scisearch-spectrum-plot figcaption").inner_text()


def test_the_stack_slider_steps_through_its_frames_from_the_keyboard(page):
    page.goto(STACK_PAGE)
    slider = page.locator("input[name=frame]")
    image = page.locator(".scisearch-frame-image")
    assert slider.is_visible() and not page.locator(".scisearch-frame-links").is_visible()
    first = image.get_attribute("src")
    slider.focus()
    page.keyboard.press("ArrowRight")
    label = page.locator(".scisearch-frame-label").inner_text()
    assert re.fullmatch(r"frame \d+ of 10", label) and label != "frame 1 of 10"
    assert image.get_attribute("src") != first
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "stack-slider-laptop.png"), full_page=True)


def test_without_javascript_each_frame_is_a_link(browser, server_url):
    context = browser.new_context(java_script_enabled=False, base_url=server_url)
    page = context.new_page()
    page.goto(STACK_PAGE)
    links = page.locator(".scisearch-frame-links a")
    assert links.count() == 8 and links.first.inner_text() == "frame 1 of 10"
    assert not page.locator("input[name=frame]").is_visible()
    context.close()


def test_the_file_pages_tags_are_grouped_as_a_microscopist_reads_them(page):
    page.goto(HAADF_PAGE)
    headings = page.locator(".scisearch-tag-group h3").all_text_contents()  # shown in capitals by CSS
    assert {"Material", "Features", "Technique", "Instrument settings"} <= set(headings)
    settings = page.locator(".scisearch-tag-group[data-category=setting] .scisearch-tag-text").all_text_contents()
    assert "300 kV" in settings and "gold" not in settings


def test_the_search_filters_list_tags_by_category(page):
    page.goto("/-/scisearch?q=gold+nanoparticles")
    groups = page.locator(".scisearch-facet[data-facet=tag] h2").all_text_contents()
    assert "Material" in groups and "Instrument settings" in groups
    material = page.locator(".scisearch-facet[data-facet=tag][data-category=material]")
    material.locator("a", has_text="gold").first.click()
    assert "tag=gold" in page.url


def test_a_proposal_lists_its_files_by_kind_with_counts(page):
    page.goto(PROPOSAL_PAGE)
    kinds = page.locator(".scisearch-file-kind > h3").all_text_contents()
    assert [re.sub(r"\s+", " ", kind).strip() for kind in kinds] == [
        "Diffraction patterns 3",
        "Images 3",
        "Stacks and series 2",
    ]
    page.click(".scisearch-file-kinds a:has-text('Stacks and series')")
    assert page.url.endswith("#files-stack")
