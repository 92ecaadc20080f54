"""Throughput of the data engine per stage: render (analytic scenes), lift (``FramePipeline``), synthesise
(templates, every answer decided by ``core.relations`` / ``core.quantities``) and write (Arrow -> parquet;
``datasets.save_to_disk`` timed apart), in one process and on Ray Data with 1 and 2 workers.

The issue's figure is QA pairs/s *from lifted scenes* (templates + writing, lifting excluded): the scenes are
rendered and lifted first, then synthesised and written (a) in this process (1 worker), (b) on an embedded local
Ray with ``--workers`` CPUs (``flat_map`` + ``write_parquet``, Ray already started and the lifted scenes already
in its object store; Ray's per-run scheduling is included). Wall-clock and this process's CPU time are both
printed: on a machine shared with other jobs the wall-clock figure is the pessimistic one. Ends with exactly::

    synthesis: <X> QA/s per core (1 worker), <Y> QA/s with 2 workers, speed-up <Y/X>

    .venv/bin/python benchmarks/bench_synthesis.py                        # 200 scenes 128x96, with truth
    .venv/bin/python benchmarks/bench_synthesis.py --no-truth --scenes 400   # bag-like: no ground truth
"""
from __future__ import annotations

import argparse
import pickle
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from spatial_vlm_ros.synthesis.frames import SourceSpec, render_analytic  # noqa: E402
from spatial_vlm_ros.synthesis.lift import Lifter  # noqa: E402
from spatial_vlm_ros.synthesis.templates import SynthesisConfig, synthesize  # noqa: E402
from spatial_vlm_ros.synthesis.writer import rows_to_table, write_dataset  # noqa: E402


class Clock:
    """Wall-clock and process CPU seconds of a block."""

    def __enter__(self):
        self.t, self.c = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.t, time.process_time() - self.c


def ray_run(lifted_ds, config, seed, out_dir, concurrency=None):
    """Seconds to synthesise and write (parquet) the lifted scenes of ``lifted_ds`` on Ray; rows written."""
    import pyarrow.parquet as pq

    from spatial_vlm_ros.synthesis.ray_pipeline import conform_batch, synthesize_row
    extra = {"concurrency": concurrency} if concurrency else {}
    t = time.perf_counter()
    rows = lifted_ds.flat_map(synthesize_row, fn_kwargs={"config": config, "seed": seed}, num_cpus=1, **extra)
    rows.map_batches(conform_batch, batch_format="pyarrow", batch_size=None).write_parquet(str(out_dir))
    seconds = time.perf_counter() - t
    return seconds, sum(pq.read_metadata(f).num_rows for f in Path(out_dir).glob("*.parquet"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenes", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--height", type=int, default=96)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--no-truth", action="store_true", help="no simulator truth (as for a bag): no truth_answer")
    args = p.parse_args(argv)
    spec = SourceSpec(seed=args.seed, width=args.width, height=args.height, truth=not args.no_truth)
    config = SynthesisConfig()
    n = args.scenes

    with Clock() as render:
        frames = [render_analytic(spec, i) for i in range(n)]
    lifter = Lifter()
    with Clock() as lift:
        lifted = [lifter.lift(f) for f in frames]
    with Clock() as synth:
        rows = [r for lf in lifted for r in synthesize(lf, config, args.seed)]
    import pyarrow.parquet as pq
    rows_to_table(rows[:1])                          # imports datasets / builds the schema outside the clock
    with tempfile.TemporaryDirectory() as tmp:
        with Clock() as write:
            pq.write_table(rows_to_table(rows), str(Path(tmp) / "rows.parquet"))
        with Clock() as hf:
            write_dataset([rows_to_table(rows)], Path(tmp) / "hf")
    qa = len(rows)
    print(f"{n} analytic scenes {args.width}x{args.height} (seed {args.seed}, truth {'off' if args.no_truth else 'on'})"
          f": {qa} QA, {qa / n:.0f} per scene")
    print(f"{'stage':34s} {'wall s':>8s} {'cpu s':>8s} {'scenes/s':>9s} {'QA/s':>9s} {'QA/cpu-s':>9s}")
    for name, c in (("render (analytic ray-cast)", render), ("lift (FramePipeline)", lift),
                    ("synthesise (templates + core)", synth), ("write (arrow + parquet)", write),
                    ("write (save_to_disk + parquet)", hf)):
        qa_s = f"{qa / c.wall:9.0f}" if "synth" in name or "write" in name else f"{'':9s}"
        qa_c = f"{qa / max(c.cpu, 1e-9):9.0f}" if "synth" in name or "write" in name else f"{'':9s}"
        print(f"{name:34s} {c.wall:8.2f} {c.cpu:8.2f} {n / c.wall:9.1f} {qa_s} {qa_c}")
    x = qa / (synth.wall + write.wall)
    x_cpu = qa / max(synth.cpu + write.cpu, 1e-9)
    print(f"from lifted scenes, 1 worker in process: {x:.0f} QA/s wall, {x_cpu:.0f} QA per CPU-second")

    import os
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    import ray.data

    from spatial_vlm_ros.synthesis.ray_pipeline import _quiet_data_context, init_ray
    init_ray(args.workers)
    try:
        _quiet_data_context()
        items = [{"skipped": lf.skipped, "lifted": pickle.dumps(lf, protocol=pickle.HIGHEST_PROTOCOL)}
                 for lf in lifted]
        ds = ray.data.from_items(items, override_num_blocks=4 * args.workers).materialize()
        with tempfile.TemporaryDirectory() as tmp:
            ray_run(ds.limit(8), config, args.seed, Path(tmp) / "warm")           # start the worker processes
            one, rows1 = ray_run(ds, config, args.seed, Path(tmp) / "one", concurrency=1)
            many, rows2 = ray_run(ds, config, args.seed, Path(tmp) / "many")
        assert rows1 == rows2 == qa, (rows1, rows2, qa)
    finally:
        ray.shutdown()
    y1, y = qa / one, qa / many
    print(f"from lifted scenes on Ray Data: 1 worker {y1:.0f} QA/s, {args.workers} workers {y:.0f} QA/s "
          f"(speed-up {y / y1:.2f} over Ray with 1 worker)")
    print(f"synthesis: {x:.0f} QA/s per core (1 worker), {y:.0f} QA/s with {args.workers} workers, "
          f"speed-up {y / x:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
