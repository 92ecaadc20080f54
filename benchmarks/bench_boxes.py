"""Speed of the ``boxes`` detector's depth box segmenter: ms per 640x480 frame with 10 boxes.

Analytic tabletop scene (``sim.analytic``, depth noise and edge holes) with its ground-truth boxes; the
median and 90th percentile of ``repeats`` runs after one warm-up (``benchmark_segmenter`` below).

    scripts/ros_env.sh python benchmarks/bench_boxes.py [--boxes 10] [--repeats 50] [--seeds 0 1 2]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spatial_vlm_ros.core.noise import DepthNoiseModel  # noqa: E402
from spatial_vlm_ros.perception.box_segmenter import DepthBoxSegmenter  # noqa: E402
from spatial_vlm_ros.sim.analytic import CameraPose, default_camera, random_tabletop, render  # noqa: E402
from spatial_vlm_ros.sim.detections import detections_from_mask  # noqa: E402


def benchmark_segmenter(n_boxes: int = 10, width: int = 640, height: int = 480, repeats: int = 20,
                        seed: int = 0) -> dict:
    """ms per frame of ``DepthBoxSegmenter`` on an analytic tabletop scene with ``n_boxes`` objects and their
    ground-truth boxes (``sim.analytic``): median and 90th percentile of the wall time over ``repeats`` runs
    after a warm-up, and the median CPU time of this process (steadier on a shared machine)."""

    camera = default_camera(width, height)
    frame = render(random_tabletop(n_boxes, seed=seed), CameraPose(), camera, noise=DepthNoiseModel(),
                   edge_holes=0.3, seed=seed)
    boxes = detections_from_mask(frame.mask, frame.ids, frame.labels)
    seg = DepthBoxSegmenter()
    seg.segment(frame.rgb, frame.depth, camera, frame.gravity, boxes)
    times, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        seg.segment(frame.rgb, frame.depth, camera, frame.gravity, boxes)
        times.append(1e3 * (time.perf_counter() - t))
        cpu.append(1e3 * (time.process_time() - c))
    return {"boxes": len(boxes), "width": width, "height": height, "ms_p50": float(np.median(times)),
            "ms_p90": float(np.percentile(times, 90)), "cpu_ms_p50": float(np.median(cpu)), "repeats": repeats}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--boxes", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args(argv)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    for seed in args.seeds:
        r = benchmark_segmenter(args.boxes, repeats=args.repeats, seed=seed)
        print(f"seed {seed}: {r['boxes']} boxes, {r['width']}x{r['height']}: p50 {r['ms_p50']:.1f} ms, "
              f"p90 {r['ms_p90']:.1f} ms, CPU time p50 {r['cpu_ms_p50']:.1f} ms ({r['repeats']} runs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
