"""Settings: declared once, read from SEARCHD_* and flags, all documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexer.errors import BadRequestError
from searchd.settings import describe_settings, load_settings, settings_env

README = Path(__file__).resolve().parents[2] / "README.md"


def test_flags_override_environment_override_defaults(tmp_path):
    env = {"SEARCHD_DATA_DIR": str(tmp_path / "env"), "SEARCHD_BATCH_SIZE": "7", "SEARCHD_EXCLUDE": "*.tmp, */.cache/*"}
    s = load_settings({"batch_size": 3}, environ=env)
    assert s.batch_size == 3 and s.data_dir == tmp_path / "env"
    assert s.exclude == ("*.tmp", "*/.cache/*")
    assert load_settings({}, environ={}).host == "127.0.0.1"


@pytest.mark.parametrize("env", [{"SEARCHD_BATCH_SIZE": "many"}, {"SEARCHD_MODELS": "huge"},
                                 {"SEARCHD_OFFLINE": "perhaps"}, {"SEARCHD_BATCH_SIZE": "0"},
                                 {"SEARCHD_PROCESSES": "0"}])
def test_bad_values_are_clear_errors(env):
    with pytest.raises(BadRequestError):
        load_settings({}, environ=env)


def test_settings_survive_the_trip_through_the_environment(tmp_path):
    """`serve --processes N` hands its settings to the workers as SEARCHD_* variables."""
    s = load_settings({"data_dir": tmp_path, "exclude": ("*.tmp", "*/x/*"), "offline": True, "port": 8123,
                       "max_upload_mb": 2.5, "api_key": "k"}, environ={})
    assert load_settings({}, environ=settings_env(s)) == s


def test_every_setting_is_documented_in_the_readme():
    readme = README.read_text()
    missing = [d["env"] for d in describe_settings() if d["env"] not in readme]
    assert missing == [], f"README's configuration table lacks {missing}"


def test_secrets_are_marked():
    secrets = {d["name"] for d in describe_settings() if d["secret"]}
    assert {"api_key", "llm_api_key"} <= secrets
