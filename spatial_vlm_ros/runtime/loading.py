"""Offline-first, safe loading of Hugging Face models: by hub id or local directory, safetensors only.

* A local directory is used as it is (it must hold ``config.json`` and ``*.safetensors`` weights).
* A hub id is resolved from the local Hugging Face cache only (``local_files_only``) unless downloads are
  allowed (``offline=False`` and ``HF_HUB_OFFLINE`` unset); ``spatial_vlm fetch-models`` fills the cache on a
  machine with internet.
* Pickle checkpoints (``pytorch_model.bin``, ``*.pt``) are never loaded: ``use_safetensors=True``.

A model that cannot be found raises ``MissingModelError`` whose message names the model and the command
that fetches it, so a node's startup error tells the user what to run.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

from spatial_vlm_ros.core.errors import InputError

log = logging.getLogger(__name__)


class MissingModelError(InputError):
    """A model directory or hub id that is not available locally (or is not a loadable safetensors model)."""


def is_offline(offline: bool | None = None) -> bool:
    """``offline`` if given, else True unless ``HF_HUB_OFFLINE`` is set to 0/false (offline-first)."""
    if offline is not None:
        return bool(offline)
    return os.environ.get("HF_HUB_OFFLINE", "1").strip().lower() not in ("0", "false", "no")


def fetch_hint(model: str, part: str | None = None) -> str:
    """The command that downloads ``model`` into the local cache (run on a machine with internet)."""
    flag = f" --part {part}" if part else ""
    return f"spatial_vlm fetch-models{flag} --model {model}"


def check_local_model_dir(path: Path, model: str, part: str | None = None) -> Path:
    """Raise ``MissingModelError`` unless ``path`` holds a config and safetensors weights."""
    if not path.is_dir():
        raise MissingModelError(f"model directory {path} does not exist; fetch it with `{fetch_hint(model, part)}`"
                                " or point the parameter at a local model directory")
    if not (path / "config.json").is_file():
        raise MissingModelError(f"model directory {path} has no config.json: not a Hugging Face model directory")
    if not any(path.glob("*.safetensors")):
        pickles = [p.name for p in path.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt")]
        extra = f" (found pickle checkpoints {pickles}, which are never loaded)" if pickles else ""
        raise MissingModelError(f"model directory {path} has no *.safetensors weights{extra}")
    return path


def resolve_model(model: str, part: str | None = None, offline: bool | None = None) -> str:
    """A loadable reference for ``model``: a checked local directory (as str) or the hub id.

    Raises ``MissingModelError`` for a missing/corrupt local directory, or for a hub id that is not in the
    local cache while offline.
    """
    if not model or not str(model).strip():
        raise MissingModelError(f"no model configured{' for the ' + part if part else ''}")
    model = str(model).strip()
    path = Path(model).expanduser()
    if path.exists() or model.startswith(("/", ".", "~")):
        return str(check_local_model_dir(path, model, part))
    if is_offline(offline):
        try:
            from huggingface_hub import snapshot_download
            local = snapshot_download(model, local_files_only=True, allow_patterns=["*.json", "*.safetensors",
                                                                                    "*.txt", "*.model"])
        except Exception as err:  # noqa: BLE001 - hub raises several types; all mean "not cached"
            raise MissingModelError(f"model {model!r} is not in the local Hugging Face cache and downloads are "
                                    f"off; fetch it with `{fetch_hint(model, part)}` ({type(err).__name__})") from None
        return str(check_local_model_dir(Path(local), model, part))
    return model


def from_pretrained(cls, model: str, part: str | None = None, offline: bool | None = None, **kwargs):
    """``cls.from_pretrained`` (a transformers Auto class or processor) on the resolved model, safetensors
    only, ``local_files_only`` when offline. Load errors become ``MissingModelError`` with the model named."""
    ref = resolve_model(model, part, offline)
    local = is_offline(offline) or Path(ref).is_dir()
    is_processor = "Processor" in cls.__name__ or "Tokenizer" in cls.__name__
    if not is_processor:
        kwargs.setdefault("use_safetensors", True)
    try:
        return cls.from_pretrained(ref, local_files_only=local, **kwargs)
    except (OSError, ValueError, KeyError) as err:
        first = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
        raise MissingModelError(f"could not load {cls.__name__} from {model!r}: {first}") from err
