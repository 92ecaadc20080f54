"""Cost of the scene generator and the bag tools on this machine (p50/p95/p99 per frame, milliseconds).

Stages, per 640x480 frame (default size): rendering (color pass + depth/segmentation pass, pyrender on
Mesa/EGL), the stereo noise model, the ground truth (every relation and quantity of the package for every
object pair, from the true meshes), a whole generated frame; then writing the frames to an MCAP bag and
reading them back. Scenes hold 3-6 objects as ``generate_scenes`` draws them. Wall time and this thread's
CPU time are both printed (the machine is shared).

    scripts/ros_env.sh python benchmarks/bench_sim.py [--scenes 12] [--frames 3] [--width 640 --height 480]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from spatial_vlm_ros.bag.reader import BagReader  # noqa: E402
from spatial_vlm_ros.bag.writer import write_bag  # noqa: E402
from spatial_vlm_ros.sim.dataset import GeneratorConfig, render_scene  # noqa: E402
from spatial_vlm_ros.sim.ground_truth import GroundTruthConfig, frame_ground_truth  # noqa: E402
from spatial_vlm_ros.sim.renderer import Renderer  # noqa: E402
from spatial_vlm_ros.sim.scene_sampler import sample_scene  # noqa: E402
from spatial_vlm_ros.sim.sensor_noise import StereoNoise  # noqa: E402
from spatial_vlm_ros.sim.trajectory import sample_intrinsics, sample_viewpoint  # noqa: E402


class Timer:
    def __init__(self):
        self.wall: dict[str, list[float]] = {}
        self.cpu: dict[str, list[float]] = {}

    def __call__(self, name, fn, *args, **kwargs):
        c0, t0 = time.thread_time(), time.perf_counter()
        out = fn(*args, **kwargs)
        self.wall.setdefault(name, []).append((time.perf_counter() - t0) * 1e3)
        self.cpu.setdefault(name, []).append((time.thread_time() - c0) * 1e3)
        return out

    def report(self) -> None:
        print(f"{'stage':<34}{'n':>5}{'p50':>10}{'p95':>10}{'p99':>10}{'cpu p50':>10}   (ms)")
        for name, values in self.wall.items():
            p50, p95, p99 = np.percentile(values, [50, 95, 99])
            print(f"{name:<34}{len(values):>5}{p50:>10.1f}{p95:>10.1f}{p99:>10.1f}"
                  f"{np.percentile(self.cpu[name], 50):>10.1f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=12)
    ap.add_argument("--frames", type=int, default=3, help="frames per scene for the whole-frame timing")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    args = ap.parse_args()
    timer = Timer()
    noise = StereoNoise()
    cfg = GeneratorConfig(width=args.width, height=args.height, frames_per_scene=args.frames)
    records = []
    with Renderer(args.width, args.height) as renderer:
        rng = np.random.default_rng(0)
        warm = sample_scene(rng)
        intr = sample_intrinsics(rng, args.width, args.height)
        renderer.render(warm, intr, sample_viewpoint(rng, warm, intr).pose())     # shader compilation
        for i in range(args.scenes):
            rng = np.random.default_rng([1, i])
            scene = sample_scene(rng, f"scene_{i:04d}")
            intr = sample_intrinsics(rng, args.width, args.height)
            pose = sample_viewpoint(rng, scene, intr).pose()
            out = timer("render (color + depth/seg)", renderer.render, scene, intr, pose)
            timer("render, same scene again", renderer.render, scene, intr, pose)
            timer("stereo noise", noise.apply, out.depth, out.rgb, intr.fx, rng)
            gt_cfg = replace(GroundTruthConfig(), noise=noise.depth_model(intr.fx))
            timer(f"ground truth ({len(scene.objects)} objects)", frame_ground_truth, scene, intr, pose, out.mask,
                  0, 0, gt_cfg)
            c0, t0 = time.thread_time(), time.perf_counter()
            records.append(render_scene(i, 2, cfg, renderer))
            per = args.frames
            timer.wall.setdefault("whole generated frame", []).append((time.perf_counter() - t0) * 1e3 / per)
            timer.cpu.setdefault("whole generated frame", []).append((time.thread_time() - c0) * 1e3 / per)
    n_frames = sum(len(r.frames) for r in records)
    with tempfile.TemporaryDirectory() as tmp:
        bag = Path(tmp) / "bag"
        t0 = time.perf_counter()
        write_bag(records, bag)
        t_write = time.perf_counter() - t0
        size = sum(p.stat().st_size for p in bag.iterdir())
        t0 = time.perf_counter()
        with BagReader(bag) as reader:
            frames = reader.frames()
        t_read = time.perf_counter() - t0
    timer.report()
    print(f"bag write: {n_frames} frames, {size / 1e6:.1f} MB in {t_write:.2f} s ({size / 1e6 / t_write:.0f} MB/s, "
          f"{t_write / n_frames * 1e3:.1f} ms/frame); read + decode {len(frames)} frames in {t_read:.2f} s "
          f"({t_read / n_frames * 1e3:.1f} ms/frame)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
