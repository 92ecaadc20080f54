"""The data engine on Ray Data: frame specs -> render / read (``map_batches``) -> lift (``map_batches``) ->
synthesise (``flat_map``) -> parquet (``write_parquet``).

Frame specs are integers (a scene index of the simulator with the spec's seed, a frame of a bag); rendering
happens inside the first stage, so simulated scenes are drawn where they are used. Each worker process keeps
one ``FrameSource`` (the pyrender renderer, a bag's frames) and one ``Lifter`` (its ``FramePipeline``) per
configuration. Frames and lifted scenes travel between stages as pickled bytes. Rows are the same as the
local engine's: every template draw is seeded per frame (``frames.frame_seed``), whatever the split.

By default an embedded local Ray is started with ``workers`` CPUs, no dashboard, quiet logs and usage stats
off; ``address`` connects to an existing cluster instead (the package must be importable there). Ray's own
gRPC servers (GCS, raylet, workers) cannot be confined to loopback through ``ray.init`` in this Ray version (it
resolves 127.0.0.1 to the node's address): docs/synthesis.md says what listens. Ray is imported only here, only
when this engine runs.
"""
from __future__ import annotations

import hashlib
import os
import pickle
from collections import Counter
from pathlib import Path

from spatial_vlm_ros.core.errors import InputError

from .frames import FrameSource, SourceSpec
from .lift import LiftConfig, Lifter
from .templates import SynthesisConfig, synthesize

_WORKER_OBJECTS: dict[tuple[type, str], object] = {}   # per worker process: (class, config key) -> instance
ROOT = Path(__file__).resolve().parents[2]


def _key(obj) -> str:
    return hashlib.sha1(pickle.dumps(obj)).hexdigest()


def _per_worker(cls, config):
    """The worker process's one ``cls(config)`` for this configuration (built on first use)."""
    key = (cls, _key(config))
    if key not in _WORKER_OBJECTS:
        _WORKER_OBJECTS[key] = cls(config)
    return _WORKER_OBJECTS[key]


def render_batch(batch, spec: SourceSpec):
    """Stage 1 (pyarrow batch of frame-spec ``id``s) -> ``index`` and pickled ``FrameInput`` (``frame``)."""
    import pyarrow as pa
    source = _per_worker(FrameSource, spec)
    index, frames = [], []
    for i in batch.column("id").to_pylist():
        for frame in source.frames(int(i)):
            index.append(frame.frame_index)
            frames.append(pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL))
    return pa.table({"index": pa.array(index, pa.int64()), "frame": pa.array(frames, pa.binary())})


def lift_batch(batch, config: LiftConfig):
    """Stage 2: pickled frames -> ``skipped`` reason ("" if lifted) and pickled ``LiftedFrame`` (``lifted``)."""
    import pyarrow as pa
    lifter = _per_worker(Lifter, config)
    skipped, lifted = [], []
    for blob in batch.column("frame").to_pylist():
        out = lifter.lift(pickle.loads(blob))
        skipped.append(out.skipped)
        lifted.append(pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL))
    return pa.table({"index": batch.column("index"), "skipped": pa.array(skipped, pa.string()),
                     "lifted": pa.array(lifted, pa.binary())})


def synthesize_row(row: dict, config: SynthesisConfig, seed: int) -> list[dict]:
    """Stage 3 (``flat_map``): one lifted frame -> its QA rows."""
    if row["skipped"]:
        return []
    return synthesize(pickle.loads(row["lifted"]), config, seed)


def conform_batch(batch):
    """Rows in the dataset's exact schema (with the ``datasets`` features metadata) before the parquet write."""
    from .writer import conform, hf_schema
    return conform(batch).cast(hf_schema())


def init_ray(workers: int, address: str | None = None) -> bool:
    """Start (or join) Ray; True when this call started it (the caller shuts it down)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        raise InputError("engine 'ray' needs the ray[data] package (pip install 'ray[data]')") from None
    if ray.is_initialized():
        return False
    import logging
    common = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
                  configure_logging=True)
    if address:
        try:
            ray.init(address=address, **common)
        except Exception as err:  # noqa: BLE001 - ray raises ConnectionError, RuntimeError, ...
            raise InputError(f"cannot connect to the Ray cluster at {address}: {err}") from None
        return True
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    ray.init(num_cpus=int(workers), object_store_memory=_store_bytes(),
             runtime_env={"env_vars": {"PYTHONPATH": path, "RAY_USAGE_STATS_ENABLED": "0"}}, **common)
    return True


def _store_bytes() -> int:
    """Object store size: a quarter of /dev/shm (at least 128 MiB, at most 2 GiB)."""
    try:
        st = os.statvfs("/dev/shm")
        free = st.f_bavail * st.f_frsize
    except OSError:
        free = 1 << 30
    return int(min(max(free // 4, 128 << 20), 2 << 30))


def _quiet_data_context() -> None:
    import logging

    import ray.data
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    for name in ("print_on_execution_start", "verbose_stats_logs", "enable_operator_progress_bars"):
        if hasattr(ctx, name):
            setattr(ctx, name, False)


def run_ray(spec: SourceSpec, n_scenes: int | None, seed: int, synthesis: SynthesisConfig, lift: LiftConfig,
            workers: int = 1, address: str | None = None, parquet_dir: str | Path | None = None,
            batch_size: int = 8, shutdown: bool = True) -> tuple[list, dict]:
    """(pyarrow tables of the rows, run statistics) from the Ray Data pipeline. With ``parquet_dir`` the rows
    are written there by Ray (``write_parquet``) and read back; without, they are collected from the blocks."""
    import pyarrow.parquet as pq

    with FrameSource(spec) as probe:
        n = probe.count(n_scenes)        # bags: fails here for an empty or unreadable bag
    started = init_ray(workers, address)
    try:
        import ray.data
        _quiet_data_context()
        blocks = max(1, min(n, 4 * int(workers)))
        ds = ray.data.range(n, override_num_blocks=blocks)
        ds = ds.map_batches(render_batch, batch_format="pyarrow", batch_size=batch_size,
                            fn_kwargs={"spec": spec}, num_cpus=1)
        lifted = ds.map_batches(lift_batch, batch_format="pyarrow", batch_size=batch_size,
                                fn_kwargs={"config": lift}, num_cpus=1).materialize()
        reasons = Counter(r for r in lifted.select_columns(["skipped"]).to_pandas()["skipped"] if r)
        frames = lifted.count()
        rows = lifted.flat_map(synthesize_row, fn_kwargs={"config": synthesis, "seed": int(seed)}, num_cpus=1)
        rows = rows.map_batches(conform_batch, batch_format="pyarrow", batch_size=None)
        if parquet_dir is not None:
            rows.write_parquet(str(parquet_dir))
            files = sorted(Path(parquet_dir).glob("*.parquet"))
            tables = [pq.read_table(f) for f in files]
        else:
            tables = [ray.get(ref) for ref in rows.to_arrow_refs()]
    except InputError:
        raise
    except Exception as err:  # noqa: BLE001 - a stage's InputError arrives wrapped in a Ray error
        cause = _input_error(err)
        if cause is not None:
            raise cause from None
        raise
    finally:
        if started and shutdown:
            import ray
            ray.shutdown()
    return tables, {"frames": frames, "skipped": reasons, "stage_seconds": {}}


def _input_error(err: BaseException) -> InputError | None:
    """The ``InputError`` a Ray task raised, if ``err`` wraps one."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, InputError):
            return InputError(str(err))
        cause = getattr(err, "cause", None)
        if isinstance(cause, InputError):
            return InputError(str(cause))
        err = err.__cause__ or err.__context__
    return None
