"""Per-frame cost of ``spatial_vlm_ros.pipeline.FramePipeline.process`` on one CPU core (issue 8's target: a 640x480
frame with 10 objects, external masks, in <= 5 ms p95): decode, gravity (support plane), lift, memory.

Frames: one analytic tabletop scene (``sim.analytic``) seen by a static camera, rendered ``--renders`` times
with independent D435-like depth noise and edge holes, masks spilling 2 px over object edges, uint16
millimetre depth (``16UC1``) and the simulator's instance-id image as the external segmentation, cycled over
``--frames`` iterations at 30 Hz stamps through one pipeline (so the memory tracks N objects; default
``PipelineConfig``; ``--node-params`` for ``config/perception.yaml`` as the node reads it). The process is
pinned to one core, BLAS/OpenMP/OpenCV run single-threaded. Per step: wall time and this thread's CPU time
(CPU time leaves out what a shared machine gave to other processes). Usage:

    .venv/bin/python benchmarks/bench_pipeline.py [--frames 300] [--objects 10] [--cpu N]
"""
from __future__ import annotations

import argparse  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from single_core import pin_to_one_core  # noqa: I001 - first: single-threaded BLAS before numpy loads

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from spatial_vlm_ros.core.depth import encode_depth_mm  # noqa: E402
from spatial_vlm_ros.core.frame import Frame, Segmentation  # noqa: E402
from spatial_vlm_ros.core.noise import DepthNoiseModel  # noqa: E402
from spatial_vlm_ros.pipeline import FramePipeline, PipelineConfig  # noqa: E402
from spatial_vlm_ros.sim.analytic import CameraPose, random_tabletop, render  # noqa: E402

TARGET_MS = 5.0
STEPS = ("decode", "gravity", "lift", "memory", "total")


def make_frames(n_objects: int, n_frames: int, seed: int, width: int, height: int):
    """(rgb, depth uint16 mm, camera, mask ids, ids, labels) per rendered frame: one scene (a static camera
    streaming), ``n_frames`` renders of it with independent depth noise and edge holes."""
    from spatial_vlm_ros.sim.analytic import default_camera
    camera = default_camera(width, height)
    objects = random_tabletop(n_objects, seed=seed, area=(0.8, 0.55), gap_m=0.03)
    frames = []
    for i in range(n_frames):
        f = render(objects, CameraPose(), camera=camera, noise=DepthNoiseModel(), edge_holes=0.3,
                   mask_dilate_px=2, seed=seed + i)
        frames.append((f.rgb, encode_depth_mm(f.depth), f.camera, f.mask, list(f.ids), list(f.labels)))
    return frames


def pipeline_config(node_params: bool) -> PipelineConfig:
    if not node_params:
        return PipelineConfig()
    from spatial_vlm_ros.ros.parameters import NODE_NAME, load_parameter_file, validate_values
    from spatial_vlm_ros.ros.parameters import pipeline_config as from_values
    raw = load_parameter_file(ROOT / "config" / "perception.yaml", NODE_NAME)
    raw["detector"] = "external"
    return from_values(validate_values(raw))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--objects", type=int, default=10)
    ap.add_argument("--renders", type=int, default=5, help="noise renders of the scene cycled through")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cpu", type=int, default=None, help="core to pin to (default: the last allowed)")
    ap.add_argument("--node-params", action="store_true", help="config/perception.yaml, not PipelineConfig()")
    args = ap.parse_args()
    where = pin_to_one_core(args.cpu, last=True)
    frames = make_frames(args.objects, args.renders, args.seed, args.width, args.height)
    pipeline = FramePipeline(pipeline_config(args.node_params))

    wall = {s: [] for s in STEPS}
    cpu = {s: [] for s in STEPS}
    lifted = []
    for k in range(args.frames + args.warmup):
        rgb, depth, camera, mask, ids, labels = frames[k % len(frames)]
        frame = Frame(rgb=rgb, depth=depth, depth_encoding="16UC1", camera=camera, stamp=k / 30.0,
                      segmentation=Segmentation(mask, ids, labels, [1.0] * len(ids)))
        c0, t0 = time.thread_time(), time.perf_counter()
        result = pipeline.process(frame)
        t_wall, t_cpu = 1e3 * (time.perf_counter() - t0), 1e3 * (time.thread_time() - c0)
        if k < args.warmup:
            continue
        steps_cpu = getattr(result, "cpu_ms", None) or {}
        for s in STEPS:
            wall[s].append(t_wall if s == "total" else result.timings_ms[s])
            cpu[s].append(t_cpu if s == "total" else steps_cpu.get(s, np.nan))
        lifted.append(len(result.observations))

    print(f"bench_pipeline: {args.frames} frames, {args.width}x{args.height}, {args.objects} objects/frame "
          f"(lifted {np.mean(lifted):.1f} on average), external masks, single thread, {where}")
    if hasattr(os, "getloadavg"):
        print(f"load average during the run: {os.getloadavg()[0]:.2f} (wall times include waiting for the CPU)")
    print(f"{'step':<10}{'clock':<6}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'mean ms':>9}")
    for s in STEPS:
        for clock, values in (("wall", wall[s]), ("cpu", cpu[s])):
            v = np.asarray(values, float)
            if np.all(np.isnan(v)):
                continue
            p50, p95, p99 = np.nanpercentile(v, [50, 95, 99])
            print(f"{s:<10}{clock:<6}{p50:9.2f}{p95:9.2f}{p99:9.2f}{np.nanmean(v):9.2f}")
    for clock, values in (("wall", wall["total"]), ("cpu", cpu["total"])):
        p95 = float(np.percentile(values, 95))
        print(f"total p95 ({clock}) / target {TARGET_MS:.0f} ms = {p95 / TARGET_MS:.2f} "
              f"({'meets' if p95 <= TARGET_MS else 'MISSES'} the target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
