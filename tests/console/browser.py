"""Browser tests of the console: `billing api` as its own process, driven by Playwright in
Debian's Chromium (CHROMIUM_PATH, /usr/bin/chromium; Playwright downloads no browser of its
own, nothing is downloaded); every browser test module launches it from here.

    with live_console() as url, chromium() as browser:
        page = signed_in(browser, url, key)

Screenshots go to tests/console/screenshots/ (git-ignored)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.processes import api_server

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
# A module of browser tests marks itself with this.
needs_chromium = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists(),
    reason="needs Debian's chromium package (.ci/run installs it)",
)


@contextmanager
def live_console(env: dict[str, str] | None = None) -> Iterator[str]:
    """The API (and so the console) in its own process on the test database; its base URL."""
    with api_server(env) as url:
        yield url


@contextmanager
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def signed_in(browser: Any, url: str, key: str) -> Any:
    """A page signed in with `key` through the sign-in form."""
    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="en-GB")
    page.goto(f"{url}/console/login")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda address: "/console/login" not in address)
    return page


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
