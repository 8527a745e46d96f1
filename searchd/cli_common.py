"""What every `searchd` command shares: its options, settings and error handling."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import click

from indexer.errors import (BadRequestError, IndexLockedError, ModelMismatchError, ModelUnavailableError,
                            NotIndexedError, SearchdError)
from searchd.settings import Settings, describe_settings, load_settings

#: exit codes, one per kind of failure
EXIT_CODES = {BadRequestError: 2, IndexLockedError: 3, ModelUnavailableError: 4, ModelMismatchError: 4,
              NotIndexedError: 5}


def fail(exc: SearchdError) -> None:
    code = next((c for cls, c in EXIT_CODES.items() if isinstance(exc, cls)), 1)
    click.secho(f"error: {exc}", fg="red", err=True)
    sys.exit(code)


def handle_errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except SearchdError as exc:
            fail(exc)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
    return wrapper


def setting_help(name: str) -> str:
    entry = next(d for d in describe_settings() if d["name"] == name)
    return f"{entry['help']} [env: {entry['env']}]"


def common_options(fn):
    """Options every command shares; each falls back to its SEARCHD_* variable."""
    options = [
        click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help=setting_help("data_dir")),
        click.option("--models", type=click.Choice(["default", "demo"]), help=setting_help("models")),
        click.option("--clip-model", help=setting_help("clip_model")),
        click.option("--text-model", help=setting_help("text_model")),
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), help=setting_help("device")),
        click.option("--offline/--online", default=None, help=setting_help("offline")),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def settings_from(**overrides) -> Settings:
    try:
        return load_settings({k: v for k, v in overrides.items() if v is not None})
    except SearchdError as exc:
        fail(exc)


def quiet_libraries() -> None:
    """Model libraries print progress bars and warnings of their own; keep output ours."""
    import logging
    import warnings

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="open_clip")
    for name in ("transformers", "sentence_transformers", "open_clip", "huggingface_hub", "root"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
    except Exception:
        pass
