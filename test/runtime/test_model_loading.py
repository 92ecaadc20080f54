"""Offline-first, safetensors-only model resolution (runtime.loading): the errors a user sees at start-up."""
import json

import pytest

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.runtime.loading import (
    MissingModelError,
    check_local_model_dir,
    fetch_hint,
    is_offline,
    resolve_model,
)


def _model_dir(tmp_path, weights="model.safetensors", config=True):
    d = tmp_path / "model"
    d.mkdir()
    if config:
        (d / "config.json").write_text(json.dumps({"model_type": "bert"}))
    if weights:
        (d / weights).write_bytes(b"\0" * 8)
    return d


def test_local_directory_with_config_and_safetensors_resolves(tmp_path):
    d = _model_dir(tmp_path)
    assert resolve_model(str(d)) == str(d)


def test_missing_directory_names_the_fetch_command(tmp_path):
    with pytest.raises(MissingModelError) as err:
        resolve_model(str(tmp_path / "nope"), part="depth")
    assert "does not exist" in str(err.value)
    assert "spatial_vlm fetch-models --part depth" in str(err.value)


def test_directory_without_config_is_refused(tmp_path):
    d = _model_dir(tmp_path, config=False)
    with pytest.raises(MissingModelError, match="no config.json"):
        check_local_model_dir(d, str(d))


def test_pickle_only_weights_are_refused_and_named(tmp_path):
    d = _model_dir(tmp_path, weights="pytorch_model.bin")
    with pytest.raises(MissingModelError) as err:
        resolve_model(str(d))
    assert "pytorch_model.bin" in str(err.value) and "never loaded" in str(err.value)


def test_uncached_hub_id_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MissingModelError) as err:
        resolve_model("some-org/some-model-that-is-not-cached", part="detector")
    assert "not in the local Hugging Face cache" in str(err.value)
    assert fetch_hint("some-org/some-model-that-is-not-cached", "detector") in str(err.value)


def test_empty_model_name_is_refused():
    with pytest.raises(InputError, match="no model configured for the segmenter"):
        resolve_model("  ", part="segmenter")


def test_offline_is_the_default(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert is_offline() is True
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert is_offline() is False
    assert is_offline(True) is True
