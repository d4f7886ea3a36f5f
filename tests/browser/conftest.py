"""Browser tests: Debian's Chromium, headless, driven by Playwright, against a served demo catalog.

The demo facility is built once per session with ``scisearch demo --no-serve``
(files, user log, proposals, papers, linking and the installed taggers), then
served by ``datasette`` in a subprocess on a free port with the repository's
metadata.yml, as a researcher would run it.  Every test gets a fresh page at a
laptop's 1366x768.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ..conftest import REPO

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
LAPTOP_SCREEN = {"width": 1366, "height": 768}
WIDTHS = {"laptop": 1280, "phone": 375}  # the screens of sized_page
NOT_FOUND_PAGE = "/-/scisearch/item/demo/file/999999"  # the one page a test opens expecting a 404
SCREENSHOTS = REPO / "build" / "screenshots"  # full-page screenshots for a person to look at (ignored by git)
SERVER_START_SECONDS = 60
# A fresh server warms up in the background (web/warming.py: its query model and indexes, 25 s on two busy cores,
# over the 30 s a test gives a page); the fixture waits until its log says so, then the tests' searches are the
# server's first (the fixture used to search once itself, which hid a slow cold first search).
FIRST_SEARCH_SECONDS = 240


def pytest_collection_modifyitems(items):
    """Every browser test is slow (Chromium, a served demo facility) and still runs by default."""
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here):
            item.add_marker(pytest.mark.slow)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def playwright_api():
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's chromium (scripts/install-test-tools)")
    return pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install -e '.[test]'")


@pytest.fixture(scope="session")
def demo_catalog(playwright_api, demo_facility) -> Path:
    """``scisearch demo``'s catalog (tests/conftest.py), built once per run; each xdist worker serves its own
    copy."""
    return demo_facility


@contextlib.contextmanager
def serving(catalog: Path, log: Path, *options: str):
    """``datasette serve CATALOG`` with the repository's metadata.yml on a free port, as a researcher runs it:
    yields its base URL once it answers, and stops it afterwards."""
    port = _free_port()
    with open(log, "w") as output:
        server = subprocess.Popen(
            [sys.executable, "-m", "datasette", "serve", str(catalog), *options]
            + ["--metadata", str(REPO / "metadata.yml"), "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "SCISEARCH_WARM": "1"},
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(url, server, log)
        _wait_until_warmed_up(server, log)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.fixture(scope="session")
def server_url(demo_catalog):
    with serving(demo_catalog, demo_catalog.parent / "datasette.log") as url:
        yield url


def _wait_until_warmed_up(server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + FIRST_SEARCH_SECONDS
    while time.monotonic() < deadline:
        said = log.read_text(errors="replace")
        if "could not warm up" in said:
            pytest.fail(f"the server could not warm up:\n{said[-3000:]}")
        if "warmed up in" in said:
            return
        if server.poll() is not None:
            pytest.fail(f"datasette exited with status {server.returncode}:\n{said[-3000:]}")
        time.sleep(0.2)
    pytest.fail(f"the server did not warm up within {FIRST_SEARCH_SECONDS} s:\n{log.read_text()[-3000:]}")


def _wait_until_serving(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"datasette exited with status {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/-/versions.json", timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    pytest.fail(f"datasette did not answer within {SERVER_START_SECONDS} s:\n{log.read_text()[-3000:]}")


# Playwright's sync API keeps an event loop running while it is started, and pytest-asyncio cannot
# start its own inside one: the browser lives for one module, so the async tests after it still run.
@pytest.fixture(scope="module")
def browser(playwright_api):
    with playwright_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server_url):
    context = browser.new_context(viewport=LAPTOP_SCREEN, base_url=server_url)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"


@pytest.fixture(params=list(WIDTHS), ids=list(WIDTHS))
def sized_page(request, browser, server_url):
    """(screen name, width, a fresh page) at each of a laptop's and a phone's width; fails the test on any
    JavaScript error or console error."""
    width = WIDTHS[request.param]
    context = browser.new_context(viewport={"width": width, "height": 800}, base_url=server_url)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))

    def console(message):
        # The not-found page is itself a 404, which Chromium reports as a failed load of the page.
        if message.type == "error" and not message.location.get("url", "").endswith(NOT_FOUND_PAGE):
            errors.append(f"{message.text} ({message.location.get('url')})")

    tab.on("console", console)
    yield request.param, width, tab
    context.close()
    assert not errors, f"errors in the page: {errors}"
