"""Writing a synthesized dataset atomically: Hugging Face ``save_to_disk`` layout, parquet shards and a manifest.

Layout of ``out``::

    data-00000-of-0000N.arrow, dataset_info.json, state.json    ``datasets.load_from_disk(out)``
    parquet/train-0000i-of-0000N.parquet                        the same rows for other readers
    manifest.json                                               counts, sources, seed, version, config

Rows are sorted by ``sample_id``, so the same rows give the same files whoever produced them. Everything is
written to a temporary sibling directory (``.<name>.partial-<id>``) that is renamed to ``out`` only at the
end: an interrupted run leaves no directory that looks complete.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from spatial_vlm_ros.core.errors import InputError

from .schema import arrow_schema, features

MANIFEST = "manifest.json"
PARQUET_DIR = "parquet"
ROWS_PER_SHARD = 20_000


def check_out_dir(out: str | Path, overwrite: bool = False) -> Path:
    """``out`` as a Path; ``InputError`` when it exists (and ``overwrite`` is off) or its parent is a file."""
    path = Path(out)
    if path.exists() and not overwrite:
        raise InputError(f"output directory {path} exists; choose a new one or pass --overwrite")
    if path.parent.exists() and not path.parent.is_dir():
        raise InputError(f"cannot create {path}: {path.parent} is not a directory")
    return path


def rows_to_table(rows: list[dict]):
    """A pyarrow table of ``rows`` (dicts with ``schema.COLUMNS``) in the dataset's schema."""
    import pyarrow as pa
    schema = arrow_schema()
    arrays = []
    for f in schema:
        if f.name == "image":                   # struct<bytes, path> built from its two children
            images = [r["image"] for r in rows]
            arrays.append(pa.StructArray.from_arrays(
                [pa.array([i["bytes"] for i in images], pa.binary()),
                 pa.array([i["path"] for i in images], pa.string())], fields=list(f.type)))
        else:
            arrays.append(pa.array([r[f.name] for r in rows], f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def conform(table):
    """``table`` with the dataset's column order and types (e.g. a Ray block whose lists came out as nulls)."""
    import pyarrow as pa
    schema = arrow_schema()
    missing = set(schema.names) - set(table.column_names)
    if missing:
        raise InputError(f"table lacks the columns {sorted(missing)}")
    arrays = []
    for f in schema:
        col = table.column(f.name)
        arrays.append(col if col.type == f.type else col.cast(f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def summarize(table) -> dict:
    """Counts of a sorted-or-not table: rows per kind / template / relation / quantity, frames, and the
    agreement of answers with the ground truth per kind (where a truth answer exists)."""
    cols = table.select(["kind", "template", "relation", "quantity", "answer", "truth_answer", "source",
                         "frame_index"]).to_pydict()
    from spatial_vlm_ros.vlm.answer_parsing import parse_length
    agree: dict[str, list[int]] = {}
    rel_errors = []
    values = table.column("value_m").to_pylist()
    for kind, answer, truth, value in zip(cols["kind"], cols["answer"], cols["truth_answer"], values):
        if truth:
            a = agree.setdefault(kind, [0, 0])
            a[0] += int(answer == truth)
            a[1] += 1
            if kind == "metric":
                said = parse_length(truth)
                if said:
                    rel_errors.append(abs(value - said) / said)
    return {
        "rows": table.num_rows,
        "kinds": dict(sorted(Counter(cols["kind"]).items())),
        "templates": dict(sorted(Counter(cols["template"]).items())),
        "relations": dict(sorted(Counter(r for r in cols["relation"] if r).items())),
        "quantities": dict(sorted(Counter(q for q in cols["quantity"] if q).items())),
        "frames_with_questions": len(set(zip(cols["source"], cols["frame_index"]))),
        "answer_matches_truth": {k: {"rows": n, "fraction": m / n} for k, (m, n) in sorted(agree.items())},
        "metric_vs_truth": ({"rows": len(rel_errors), "median_relative_error": float(np.median(rel_errors)),
                             "within_25_percent": float(np.mean(np.asarray(rel_errors) <= 0.25))}
                            if rel_errors else {}),
    }


def hf_schema():
    """``arrow_schema()`` with the ``datasets`` features in its metadata (what ``Dataset.to_parquet`` writes), so
    parquet readers such as ``datasets.load_dataset("parquet", ...)`` decode ``image`` as an image."""
    meta = {"huggingface": json.dumps({"info": {"features": features().to_dict()}})}
    return arrow_schema().with_metadata(meta)


class AtomicDatasetWriter:
    """Builds a dataset in a temporary sibling of ``out`` and renames it to ``out`` in ``commit`` (``abort``
    removes it). ``tmp / PARQUET_DIR`` may be filled by someone else (the Ray engine's distributed write)
    before ``commit(..., parquet=False)``."""

    def __init__(self, out: str | Path, overwrite: bool = False):
        self.out = check_out_dir(out, overwrite)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.out.parent / f".{self.out.name}.partial-{uuid.uuid4().hex[:8]}"
        self.tmp.mkdir()

    @property
    def parquet_dir(self) -> Path:
        return self.tmp / PARQUET_DIR

    def commit(self, tables: Iterable, manifest: dict | None = None, parquet: bool = True,
               rows_per_shard: int = ROWS_PER_SHARD) -> dict:
        """Write the rows of ``tables`` (pyarrow tables in or castable to the schema), sorted by ``sample_id``,
        and rename; returns the manifest. ``InputError`` when there are no rows (nothing is left behind)."""
        import datasets
        import pyarrow as pa

        quiet = not datasets.utils.are_progress_bars_disabled()
        if quiet:
            datasets.disable_progress_bars()
        try:
            parts = [conform(t) for t in tables if t is not None and t.num_rows]
            if not parts:
                raise InputError("no QA rows were synthesized; nothing written")
            table = pa.concat_tables(parts).sort_by("sample_id")
            ids = table.column("sample_id")
            if pa.compute.count_distinct(ids).as_py() != len(ids):
                raise InputError("duplicate sample_id values: the same question was synthesized twice")
            ds = datasets.Dataset(datasets.table.InMemoryTable(table),
                                  info=datasets.DatasetInfo(features=features()))
            n_shards = max(1, -(-table.num_rows // max(int(rows_per_shard), 1)))
            ds.save_to_disk(str(self.tmp), num_shards=n_shards)
            if parquet:
                self.parquet_dir.mkdir(exist_ok=True)
                for i in range(n_shards):
                    ds.shard(n_shards, i, contiguous=True).to_parquet(
                        str(self.parquet_dir / f"train-{i:05d}-of-{n_shards:05d}.parquet"))
            summary = {**(manifest or {}), **summarize(table), "shards": n_shards,
                       "layout": {"save_to_disk": ".", "parquet": PARQUET_DIR}}
            (self.tmp / MANIFEST).write_text(json.dumps(summary, indent=1, default=str))
            if self.out.exists():                 # overwrite: swap only once the new one is complete
                old = self.out.parent / f".{self.out.name}.old-{uuid.uuid4().hex[:8]}"
                os.replace(self.out, old)
                os.replace(self.tmp, self.out)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(self.tmp, self.out)
        except BaseException:
            self.abort()
            raise
        finally:
            if quiet:
                datasets.enable_progress_bars()
        return summary

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def write_dataset(tables: Iterable, out: str | Path, manifest: dict | None = None, overwrite: bool = False,
                  rows_per_shard: int = ROWS_PER_SHARD) -> dict:
    """Write the rows of ``tables`` to ``out`` atomically (see the module doc); returns the manifest written.
    ``InputError`` when there are no rows or ``out`` exists (unless ``overwrite``)."""
    return AtomicDatasetWriter(out, overwrite).commit(tables, manifest, rows_per_shard=rows_per_shard)


def read_manifest(out: str | Path) -> dict:
    """The manifest of a written dataset."""
    path = Path(out) / MANIFEST
    if not path.is_file():
        raise InputError(f"{out} is not a synthesized dataset (no {MANIFEST})")
    return json.loads(path.read_text())
