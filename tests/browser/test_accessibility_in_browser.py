"""The search and item pages pass axe-core's checks (labels, contrast, landmarks, names of controls) with no
serious or critical violation, at a laptop's width and a phone's.

axe-core 4.14.1 is vendored from the npm registry (``npm pack axe-core@4.14.1``) as tests/browser/vendor/axe.min.js
with its licence (MPL-2.0); it is injected into the page under test only, never served by the plugin.
"""

from __future__ import annotations

from pathlib import Path

import pytest

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
PAGES = {
    "search": "/-/scisearch",
    "results": "/-/scisearch?q=gold+nanoparticles",
    "file": "/-/scisearch/item/demo/file/22",
    "spectrum": "/-/scisearch/item/demo/file/44",
    "stack": "/-/scisearch/item/demo/file/28",
    "proposal": "/-/scisearch/item/demo/proposal/P-2021-0042",
}
SERIOUS = ("serious", "critical")


def serious_violations(page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
    return [
        f"{violation['id']} ({violation['impact']}): {violation['help']} — "
        + "; ".join(
            node["target"][0] if isinstance(node["target"][0], str) else str(node["target"])
            for node in violation["nodes"][:5]
        )
        for violation in found
        if violation["impact"] in SERIOUS
    ]


@pytest.mark.parametrize("width", [1280, 375], ids=["laptop", "phone"])
@pytest.mark.parametrize("name", list(PAGES))
def test_a_main_page_has_no_serious_accessibility_violation(page, name, width):
    page.set_viewport_size({"width": width, "height": 800})
    page.goto(PAGES[name])
    page.wait_for_load_state("load")
    assert serious_violations(page) == []
