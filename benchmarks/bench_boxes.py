"""Speed of the ``boxes`` detector's depth box segmenter: ms per 640x480 frame with 10 boxes.

Analytic tabletop scene (``sim.analytic``, depth noise and edge holes) with its ground-truth boxes; the
median and 90th percentile of ``repeats`` runs after one warm-up (``perception.box_segmenter.benchmark_segmenter``).

    scripts/ros_env.sh python benchmarks/bench_boxes.py [--boxes 10] [--repeats 50] [--seeds 0 1 2]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from spatial_vlm_ros.perception.box_segmenter import benchmark_segmenter  # noqa: E402


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
