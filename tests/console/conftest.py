"""The browser for the console's tests: Debian's Chromium, headless, driven by Playwright.

Without /usr/bin/chromium the browser tests skip here, saying so; CI installs it. Each test
gets a fresh browser context (no cookie survives from one test to the next), and saves its
screenshots under `artifacts/console/` at the project root.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
from playwright.sync_api import Browser, BrowserContext, sync_playwright

CHROMIUM: Final = Path("/usr/bin/chromium")
ARTIFACTS: Final = Path(__file__).resolve().parents[2] / "artifacts" / "console"


# Module scope, not session: while Playwright's sync API runs, its event loop counts as
# running in this thread, and every later test's asyncio.run() would refuse to start.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        message = f"the console's browser tests need Debian's chromium package ({CHROMIUM})"
        if os.environ.get("CI", "").lower() in {"true", "1"}:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(30_000)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    print(f"\nconsole screenshots in {ARTIFACTS}")
    return ARTIFACTS
