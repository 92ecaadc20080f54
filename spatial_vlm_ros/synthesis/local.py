"""The data engine in one process, and ``synthesize_to_disk``: the one call that turns a source into a dataset
on disk with either engine (``local`` here, ``ray`` in ``ray_pipeline``).

A frame the pipeline cannot lift (no depth, nothing liftable) or one without objects is skipped and counted by
reason in the manifest; a frame that cannot be decoded (a corrupt image, no CameraInfo) raises ``InputError``;
so does a run that yields no row at all. Nothing is renamed into place unless the run completed.
"""
from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from spatial_vlm_ros.core.errors import InputError

from .frames import FrameSource, SourceSpec, parse_source
from .lift import LiftConfig, Lifter
from .templates import SynthesisConfig, synthesize
from .writer import AtomicDatasetWriter, rows_to_table

ENGINES = ("local", "ray")
CHUNK_ROWS = 20_000


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))


def run_local(spec: SourceSpec, n_scenes: int | None, seed: int, synthesis: SynthesisConfig,
              lift: LiftConfig) -> tuple[list, dict]:
    """(pyarrow tables of the rows, run statistics) for ``n_scenes`` frame specs of ``spec`` in this process."""
    tables, rows = [], []
    skipped: Counter = Counter()
    frames = 0
    seconds = {"render": 0.0, "lift": 0.0, "synthesize": 0.0}
    lifter = Lifter(lift)
    with FrameSource(spec) as source:
        for index in range(source.count(n_scenes)):
            t0 = time.perf_counter()
            batch = source.frames(index)
            t1 = time.perf_counter()
            seconds["render"] += t1 - t0
            for frame in batch:
                frames += 1
                lifted = lifter.lift(frame)
                t2 = time.perf_counter()
                seconds["lift"] += t2 - t1
                if lifted.skipped:
                    skipped[lifted.skipped] += 1
                else:
                    rows.extend(synthesize(lifted, synthesis, seed))
                t1 = time.perf_counter()
                seconds["synthesize"] += t1 - t2
            if len(rows) >= CHUNK_ROWS:
                tables.append(rows_to_table(rows))
                rows = []
    if rows:
        tables.append(rows_to_table(rows))
    return tables, {"frames": frames, "skipped": skipped, "stage_seconds": seconds}


def _no_rows_message(stats: dict) -> str:
    reasons = "; ".join(f"{n} x {why}" for why, n in stats["skipped"].most_common(3))
    return (f"no QA rows were synthesized from {stats['frames']} frames"
            + (f" ({reasons})" if reasons else " (no frame had two nameable objects or an unambiguous relation)"))


def synthesize_to_disk(source: str | SourceSpec, n_scenes: int | None, seed: int, out: str | Path,
                       engine: str = "local", workers: int = 1, synthesis: SynthesisConfig | None = None,
                       lift: LiftConfig | None = None, address: str | None = None,
                       overwrite: bool = False, **source_options) -> dict:
    """Synthesize QA from ``n_scenes`` frame specs of ``source`` with template seed ``seed`` into ``out`` (a new
    directory; see ``writer``) and return the manifest.

    ``source``: a ``SourceSpec`` or ``analytic`` / ``sim`` / a bag or scene-set path (``source_options`` are
    then the spec's fields, e.g. ``width=128, height=96``; the simulator's scene seed is the spec's ``seed``,
    default ``seed``). ``n_scenes``: scenes of the simulator, frames of a bag (None: all). ``engine``:
    ``local`` (this process) or ``ray`` (Ray Data, ``workers`` CPUs of an embedded local Ray, or the cluster
    at ``address``). Raises ``InputError`` for bad input; nothing partial is left at ``out``.
    """
    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r} (known: {', '.join(ENGINES)})")
    if int(workers) < 1:
        raise InputError("workers must be >= 1")
    if isinstance(source, SourceSpec):
        if source_options:
            raise InputError("source options go into the SourceSpec when one is given")
        spec = source.validate()
    else:
        spec = parse_source(source, **{"seed": seed, **source_options})
    synthesis = (synthesis or SynthesisConfig()).validate()
    lift = lift or LiftConfig(detector=spec.detector)
    writer = AtomicDatasetWriter(out, overwrite)       # fails now if ``out`` exists
    t0 = time.perf_counter()
    try:
        if engine == "local":
            tables, stats = run_local(spec, n_scenes, seed, synthesis, lift)
            parquet = True
        else:
            from .ray_pipeline import run_ray
            tables, stats = run_ray(spec, n_scenes, seed, synthesis, lift, workers, address, writer.parquet_dir)
            parquet = False                              # Ray wrote the parquet shards itself
        if not any(t.num_rows for t in tables):
            raise InputError(_no_rows_message(stats))
        from spatial_vlm_ros import __version__
        manifest = {
            "format": "spatial_vlm_ros/synthesized_qa", "version": 1, "package_version": __version__,
            "engine": engine, "workers": int(workers), "seed": int(seed), "sources": [spec.name],
            "source_spec": _jsonable(asdict(spec)), "synthesis_config": _jsonable(asdict(synthesis)),
            "lift_config": _jsonable(asdict(lift)), "n_frame_specs": n_scenes,
            "frames": stats["frames"], "frames_skipped": sum(stats["skipped"].values()),
            "skipped_reasons": dict(stats["skipped"].most_common(20)),
            "stage_seconds": stats.get("stage_seconds", {}), "seconds": time.perf_counter() - t0,
        }
        return writer.commit(tables, manifest, parquet=parquet)
    except BaseException:
        writer.abort()
        raise
