"""The columns of every synthesized row (docs/synthesis.md, the issue-11 contract) as a ``datasets.Features``.

A row is a plain dict with exactly ``COLUMNS``; ``image`` is ``{"bytes": <PNG>, "path": None}`` (the
``datasets.Image`` storage). Lengths are metres; NaN where a column does not apply.
"""
from __future__ import annotations

import math
from functools import lru_cache

from spatial_vlm_ros.core.errors import InputError

KINDS = ("yes_no", "choice", "metric", "describe")

#: column -> datasets value type ("image" and "list" are handled in ``features``)
COLUMNS: dict[str, str] = {
    "sample_id": "string",
    "image": "image",
    "question": "string",
    "answer": "string",
    "kind": "string",
    "template": "string",
    "relation": "string",
    "quantity": "string",
    "value_m": "float64",
    "sigma_m": "float64",
    "margin_m": "float64",
    "confidence": "float64",
    "objects": "list",
    "labels": "list",
    "source": "string",
    "frame_index": "int64",
    "stamp_ns": "int64",
    "seed": "int64",
    "truth_answer": "string",
}


@lru_cache(maxsize=1)
def _features():
    import datasets

    out = {}
    for name, kind in COLUMNS.items():
        if kind == "image":
            out[name] = datasets.Image()
        elif kind == "list":
            out[name] = datasets.Sequence(datasets.Value("string"))
        else:
            out[name] = datasets.Value(kind)
    return datasets.Features(out)


def features():
    """The ``datasets.Features`` of a synthesized dataset (a fresh copy: callers may change it)."""
    return _features().copy()


@lru_cache(maxsize=1)
def arrow_schema():
    """The pyarrow schema of ``features()`` (image = struct<bytes: binary, path: string>)."""
    return _features().arrow_schema


def check_row(row: dict) -> None:
    """Raise ``InputError`` unless ``row`` has exactly the schema's columns with values of the right kinds."""
    missing, extra = set(COLUMNS) - set(row), set(row) - set(COLUMNS)
    if missing or extra:
        raise InputError(f"row columns differ from the schema: missing {sorted(missing)}, extra {sorted(extra)}")
    if row["kind"] not in KINDS:
        raise InputError(f"row kind {row['kind']!r} is not one of {KINDS}")
    for name in ("value_m", "sigma_m", "margin_m", "confidence"):
        if not isinstance(row[name], float):
            raise InputError(f"row column {name} must be a float, got {type(row[name]).__name__}")
    if row["kind"] == "metric" and not math.isfinite(row["value_m"]):
        raise InputError("a metric row needs a finite value_m")


def __getattr__(name: str):        # FEATURES without importing datasets at module import
    if name == "FEATURES":
        return features()
    raise AttributeError(name)
