"""Browser fixtures: sample_data indexed once, a real `searchd serve`, and headless Chromium.

These fixtures are named apart from the shared ones in tests/conftest.py (`demo_index`,
`served`) so either can stand in for the other: `browser_server` is a base URL just like
`served`. Playwright never downloads a browser here; it drives the system Chromium.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_data"
DEMO_CLIP = SAMPLE / "models" / "demo-clip"
SCREENSHOTS = REPO / "test-output" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}

# Only for working on the page before the demo CLIP exists: a stand-in CLIP (`local-dir:/path`).
# Rankings from it are meaningless, so the tests skip their image-ranking checks under it.
CLIP_OVERRIDE_ENV = "SEARCHD_E2E_CLIP_MODEL"


def _cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEARCHD_")}
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                "TOKENIZERS_PARALLELISM": "false", "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD": "1"})
    return env


def _model_args() -> list[str]:
    override = os.environ.get(CLIP_OVERRIDE_ENV)
    if override:
        return ["--models", "demo", "--clip-model", override]
    if not (DEMO_CLIP / "open_clip_config.json").exists():
        pytest.fail(f"the demo CLIP model is missing from {DEMO_CLIP}; "
                    f"train it with `python -m indexer.encoders.demo_train`")
    return ["--models", "demo"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server:
    """`searchd serve` in a subprocess on a free port, healthy before it is handed out."""

    def __init__(self, data_dir: Path, log_dir: Path, env: dict[str, str] | None = None):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"serve-{self.port}.log"
        self.log = open(self.log_path, "w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "searchd", "serve", "--data-dir", str(data_dir), "--port", str(self.port),
             *_model_args()], env={**_cli_env(), **(env or {})}, stdout=self.log, stderr=subprocess.STDOUT, cwd=REPO)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise AssertionError(f"searchd serve exited {self.proc.returncode}:\n{self.log.read()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise AssertionError("searchd serve did not become healthy within 180 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture(scope="session")
def real_clip() -> bool:
    """False while a stand-in CLIP is used: image rankings then mean nothing."""
    return not os.environ.get(CLIP_OVERRIDE_ENV)


@pytest.fixture(scope="session")
def browser_index(tmp_path_factory) -> Path:
    """sample_data/ indexed once through the CLI with the demo models."""
    data_dir = tmp_path_factory.mktemp("browser-index") / "data"
    proc = subprocess.run([sys.executable, "-m", "searchd", "index", str(SAMPLE), "--data-dir", str(data_dir),
                           *_model_args()], capture_output=True, text=True, env=_cli_env(), cwd=REPO, timeout=600)
    if proc.returncode != 0:
        raise AssertionError(f"searchd index exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return data_dir


@pytest.fixture(scope="session")
def browser_server(browser_index) -> str:
    """Base URL of a real server over the indexed sample data."""
    server = _Server(browser_index, browser_index.parent)
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def empty_server(tmp_path_factory) -> str:
    """Base URL of a real server over a data dir that was never indexed."""
    root = tmp_path_factory.mktemp("browser-empty")
    server = _Server(root / "data", root)
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
def llm_server(browser_index, fake_llm) -> str:
    """Base URL of a real server over the sample data with LLM answers on (answered by fake_llm)."""
    from tests.searchd.fake_openai import MODEL

    server = _Server(browser_index, browser_index.parent,
                     env={"SEARCHD_LLM_BASE_URL": fake_llm.base_url, "SEARCHD_LLM_MODEL": MODEL,
                          "SEARCHD_LLM_TIMEOUT": "20"})
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def chromium():
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


def _page(browser, viewport: dict):
    context = browser.new_context(viewport=viewport, device_scale_factor=1, locale="en-US",
                                  timezone_id="UTC", reduced_motion="reduce")
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    return context, page, errors


@pytest.fixture
def desktop_page(chromium):
    context, page, errors = _page(chromium, DESKTOP)
    yield page
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture
def phone_page(chromium):
    context, page, errors = _page(chromium, PHONE)
    yield page
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture(scope="session")
def screenshot():
    """screenshot(page, name): saves test-output/screenshots/NAME.png for a person to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def save(page, name: str, full_page: bool = False) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page, animations="disabled")
        return path

    return save
