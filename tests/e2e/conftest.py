"""Browser fixtures: real servers over the shared sample index, and headless Chromium.

Playwright never downloads a browser here; it drives the system Chromium.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import REPO, ServerProcess, cli_env

SCREENSHOTS = REPO / "test-output" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}

@pytest.fixture(scope="session")
def browser_server(served) -> str:
    """Base URL of the shared real server over the indexed sample data."""
    return served


@pytest.fixture(scope="session")
def empty_server(tmp_path_factory) -> str:
    """Base URL of a real server over a data dir that was never indexed."""
    root = tmp_path_factory.mktemp("browser-empty")
    server = ServerProcess(root / "data")
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def fake_llm():
    """A real OpenAI-compatible HTTP server (tests/searchd/fake_openai.py) playing a scripted answer."""
    from tests.searchd.fake_openai import FakeOpenAI

    server = FakeOpenAI().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def llm_server(demo_index, fake_llm) -> str:
    """Base URL of a real server over the sample data with LLM answers on (answered by fake_llm)."""
    from tests.searchd.fake_openai import MODEL

    server = ServerProcess(demo_index, env=cli_env(SEARCHD_LLM_BASE_URL=fake_llm.base_url,
                                                   SEARCHD_LLM_MODEL=MODEL, SEARCHD_LLM_TIMEOUT="20"))
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def chromium():
    """Module-scoped: Playwright's sync API keeps an event loop running in this thread
    while the browser is open, which would break asyncio.run() in later test modules."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: install Debian's chromium package to run the browser tests"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@contextmanager
def open_page(browser, viewport: dict, locale: str = "en-US"):
    """A fresh context and page; fails the test if the page threw an uncaught error."""
    context = browser.new_context(viewport=viewport, device_scale_factor=1, locale=locale,
                                  timezone_id="UTC", reduced_motion="reduce")
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture
def desktop_page(chromium):
    with open_page(chromium, DESKTOP) as page:
        yield page


@pytest.fixture
def phone_page(chromium):
    with open_page(chromium, PHONE) as page:
        yield page


@pytest.fixture(scope="session")
def screenshot():
    """screenshot(page, name): saves test-output/screenshots/NAME.png for a person to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def save(page, name: str, full_page: bool = False) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page, animations="disabled")
        return path

    return save
