"""Family registries: tables ``model_type -> "module:attribute"`` whose modules are imported only when used.

The ONNX exporters, the ONNX engines and the processor loaders are picked this way, so a family's code (and
its heavy imports) loads only for that family, and a missing optional module is reported by name.
"""
from __future__ import annotations

import importlib
import importlib.util

from spatial_vlm_ros.core.errors import InputError


def _module(spec: str) -> str:
    return spec.split(":", 1)[0]


def load_attribute(spec: str):
    """The object ``spec`` names, ``"module:attribute"`` (the attribute may be dotted, e.g.
    ``"transformers:AutoProcessor.from_pretrained"``), imported now."""
    module, _, name = spec.partition(":")
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def available_families(registry: dict[str, str]) -> list[str]:
    """The families of ``registry`` whose module is installed (found without importing it)."""
    return sorted(family for family, spec in registry.items() if importlib.util.find_spec(_module(spec)) is not None)


def resolve_family(registry: dict[str, str], family: str, what: str):
    """The object ``registry[family]`` names, imported now. Raises InputError naming the available families
    when ``family`` is unknown or its module is not installed."""
    spec = registry.get(family)
    if spec is None or importlib.util.find_spec(_module(spec)) is None:
        missing = f" (its module {_module(spec)} is not installed)" if spec else ""
        raise InputError(f"{what} supports {', '.join(available_families(registry))}, not {family!r}{missing}")
    return load_attribute(spec)
