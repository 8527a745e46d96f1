"""Shared fixtures: the demo models loaded once, sample data indexed once, a real server.

Nothing here touches the network: the hub is switched off for this process and
every subprocess it starts.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "sample_data"
DEMO_CLIP = SAMPLE / "models" / "demo-clip"
DEMO_TEXT = SAMPLE / "models" / "multilingual-e5-small"
COFFEE = SAMPLE / "images" / "photos" / "coffee.jpg"

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
               "TOKENIZERS_PARALLELISM": "false"}
os.environ.update(OFFLINE_ENV)


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEARCHD_")}
    env.update(OFFLINE_ENV)
    env["SEARCHD_MODELS"] = "demo"
    env.update(extra)
    return env


def run_cli(*args: str, data_dir: Path | None = None, env: dict | None = None, timeout: float = 600,
            check: bool = True) -> subprocess.CompletedProcess:
    """Run `searchd ARGS...` as a user would, in a subprocess."""
    cmd = [sys.executable, "-m", "searchd", *args]
    if data_dir is not None:
        cmd += ["--data-dir", str(data_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env or cli_env(), timeout=timeout, cwd=REPO)
    if check and proc.returncode != 0:
        raise AssertionError(f"searchd {' '.join(args)} exited {proc.returncode}\n"
                             f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """A real `searchd serve` on a free port."""

    def __init__(self, data_dir: Path, env: dict | None = None, extra_args: tuple[str, ...] = ()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(Path(data_dir).parent / f"serve-{self.port}.log", "w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "searchd", "serve", "--data-dir", str(data_dir), "--port", str(self.port),
             *extra_args], env=env or cli_env(), stdout=self.log, stderr=subprocess.STDOUT, cwd=REPO)
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
        raise AssertionError("searchd serve did not become healthy in time")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def require_demo_model() -> None:
    if not (DEMO_CLIP / "open_clip_config.json").exists():
        pytest.fail(f"the demo CLIP model is missing from {DEMO_CLIP}; "
                    f"train it with `python -m indexer.encoders.demo_train`")
    if not (DEMO_TEXT / "modules.json").exists():
        pytest.fail(f"the demo text model is missing from {DEMO_TEXT}; "
                    f"build it with `make sample_data/models/multilingual-e5-small`")


@pytest.fixture(scope="session")
def demo_encoders():
    """The demo CLIP and text encoders, loaded once per session through their real loaders."""
    require_demo_model()
    from indexer.encoders import load_encoders, preset_specs

    clip, text = load_encoders(*preset_specs("demo"), device="cpu", offline=True)
    clip.load()
    text.load()
    return clip, text


@pytest.fixture(scope="session")
def demo_index(tmp_path_factory) -> Path:
    """sample_data/ indexed once with the demo models through the CLI. Read-only: copy it to mutate."""
    require_demo_model()
    data_dir = tmp_path_factory.mktemp("demo-index") / "data"
    run_cli("index", str(SAMPLE), data_dir=data_dir)
    return data_dir


@pytest.fixture(scope="session")
def copies_index(tmp_path_factory) -> Path:
    """The sample images with one photo three times (the same bytes twice, and a copy
    resized and re-encoded), indexed once with the demo models."""
    from PIL import Image

    require_demo_model()
    root = tmp_path_factory.mktemp("copies")
    photos = root / "images"
    shutil.copytree(SAMPLE / "images", photos)
    shutil.copy(COFFEE, photos / "photos" / "coffee-copy.jpg")
    with Image.open(COFFEE) as im:
        small = im.convert("RGB").resize((im.width // 2, im.height // 2))
        small.save(photos / "photos" / "coffee-small.jpg", quality=80)
    run_cli("index", str(photos), data_dir=root / "data")
    return root / "data"


@pytest.fixture
def demo_index_copy(demo_index, tmp_path) -> Path:
    target = tmp_path / "data"
    shutil.copytree(demo_index, target, ignore=shutil.ignore_patterns("writer.lock"))
    return target


@pytest.fixture(scope="session")
def demo_engine(demo_index, demo_encoders):
    from indexer.datadir import DataDir
    from searchd.engine import SearchEngine

    clip, text = demo_encoders
    engine = SearchEngine(DataDir(demo_index), clip, text)
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def served(demo_index):
    """Base URL of a real `searchd serve` over the indexed sample data."""
    server = ServerProcess(demo_index)
    yield server.url
    server.stop()
