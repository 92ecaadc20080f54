"""Accuracy of ``depth_source`` sensor / fuse / model on simulated scenes, with a SIMULATED depth model.

No depth-model weights can be used here, so the "model" depth is synthetic: the true depth times an unknown
per-frame scale (uniform in [0.8, 1.25], a monocular model's scale error) times a smooth relative error
field (``--model-error`` one-sigma, correlation ~40 px). This measures the fusion and the pipeline around
it, not a real network's accuracy.

Scenes: rendered once with perfect depth (``sim.dataset.generate_scenes(noise=False)``, cached under
``out/accuracy/``); per frame the sensor depth is that depth through the simulator's stereo noise
(``sim.sensor_noise.StereoNoise``: noise, edge drop-outs, shadows, blobs) with a further ``--drop`` fraction
of the pixels removed at random (a holey/sparse sensor). Each mode runs the node's pipeline configuration
(``config/perception.yaml`` via ``ros.parameters``; ground-truth masks, ``detector: external``) and is scored
by ``accuracy_offline``'s evaluation (every ground-truth object; missed objects count wrong):

* ``sensor`` - the holey sensor depth alone;
* ``fuse``   - the holey sensor depth, holes filled with the model depth scale-aligned to it;
* ``model``  - the model depth alone (its scale error uncorrected: what an RGB-only camera gets).

    .venv/bin/python benchmarks/accuracy_depth_sources.py --scenes 8 --drop 0.9
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import accuracy_offline as A  # noqa: E402

from spatial_vlm_ros.pipeline import FramePipeline  # noqa: E402
from spatial_vlm_ros.sim import dataset as D  # noqa: E402
from spatial_vlm_ros.sim.sensor_noise import StereoNoise  # noqa: E402


def ensure_perfect(cache: Path, seed: int, n_scenes: int) -> Path:
    path = cache / f"perfect_seed{seed}_n{n_scenes}_f1"
    if not (path / "dataset.json").is_file():
        print(f"rendering {n_scenes} scenes (perfect depth), seed {seed} -> {path}", flush=True)
        D.generate_scenes(path, n_scenes=n_scenes, frames_per_scene=1, noise=False, seed=seed)
    return path


def smooth_field(shape, sigma: float, rng, corr_px: float = 40.0) -> np.ndarray:
    """Zero-mean smooth random field with one-sigma ``sigma`` (relative)."""
    f = cv2.GaussianBlur(rng.normal(size=shape).astype(np.float32), (0, 0), corr_px)
    return sigma * f / max(float(f.std()), 1e-9)


def simulate(records, drop: float, model_error: float, seed: int, object_holes: float = 0.0):
    """The records with the holey sensor depth, and per frame (keyed by the color image's bytes) the
    simulated model depth (metres) and its true scale error."""
    rng = np.random.default_rng(seed)
    noise = StereoNoise()
    out, fits, scales = [], {}, {}
    for record in records:
        frames = []
        for f in record.frames:
            true = f.depth_mm.astype(np.float32) / 1000.0
            true[f.depth_mm == 0] = np.nan
            fx = float(f.camera_info["k"][0])
            sensor = noise.apply_depth(true, f.rgb, fx, rng)
            sensor[rng.random(sensor.shape) < drop] = np.nan
            for i in f.ids:                                  # dark / shiny / transparent: no depth at all
                if rng.random() < object_holes:
                    sensor[f.mask == i] = np.nan
            scale = float(np.exp(rng.uniform(np.log(0.8), np.log(1.25))))
            model = np.nan_to_num(true, nan=0.0) * scale * (1.0 + smooth_field(true.shape, model_error, rng))
            fits[f.rgb.tobytes()] = model.astype(np.float32)
            scales[f.rgb.tobytes()] = scale
            frames.append(replace(f, depth_mm=D.depth_to_mm(sensor)))
        out.append(replace(record, frames=frames))
    return out, fits, scales


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=301)
    ap.add_argument("--scenes", type=int, default=8)
    ap.add_argument("--drop", type=float, default=0.9, help="fraction of sensor pixels removed at random")
    ap.add_argument("--model-error", type=float, default=0.03, help="1-sigma smooth relative model error")
    ap.add_argument("--object-holes", type=float, default=0.0,
                    help="probability that an object has no sensor depth at all (dark, shiny, transparent)")
    ap.add_argument("--local-sigma", type=float, default=None, metavar="PX",
                    help="fuse: depth_fusion.local_sigma_px (default: the parameter file's)")
    ap.add_argument("--modes", nargs="+", default=["sensor", "fuse", "model"])
    ap.add_argument("--cache", type=Path, default=ROOT / "out" / "accuracy")
    ap.add_argument("--params", type=Path, default=ROOT / "config" / "perception.yaml")
    args = ap.parse_args(argv)
    path = ensure_perfect(args.cache, args.seed, args.scenes)
    records, model_depth, scales = simulate(D.load_dataset(path), args.drop, args.model_error, args.seed,
                                            args.object_holes)
    valid = np.mean([np.count_nonzero(f.depth_mm) / f.depth_mm.size for r in records for f in r.frames])
    print(f"{args.scenes} scenes, sensor pixels valid after noise and --drop {args.drop}: {100 * valid:.1f} %; "
          f"objects without depth: p = {args.object_holes}; model error: scale in [0.8, 1.25] x smooth "
          f"{100 * args.model_error:.0f} % relative field")

    A_iter = D.iter_dataset
    D.iter_dataset = lambda _path: iter(records)            # evaluate_dataset reads the simulated frames
    fits = []
    for mode in args.modes:
        overrides = {"depth_source": mode, "detector": "external"}
        if args.local_sigma is not None:
            overrides["depth_fusion.local_sigma_px"] = float(args.local_sigma)
        config = A.build_config(args.params, overrides)

        def factory(cfg, mode=mode):
            pipe = FramePipeline(cfg, depth_predictor=None if mode == "sensor"
                                 else (lambda rgb: model_depth[rgb.tobytes()]))
            if mode == "fuse":                               # record every frame's alignment
                process = pipe.process

                def tracked(frame):
                    result = process(frame)
                    fits.append((pipe.last_depth_fit, scales[frame.rgb.tobytes()]))
                    return result
                pipe.process = tracked
            return pipe
        A.FramePipeline = factory
        t = time.monotonic()
        recs, ms = A.evaluate_dataset(path, config)
        A.print_report(recs, f"depth_source {mode} ({len(recs)} queries, {time.monotonic() - t:.1f} s, "
                             f"p50 {np.percentile(ms, 50):.0f} ms/frame)")
    D.iter_dataset = A_iter
    if fits:
        scale_err = [abs(fit.scale * truth - 1.0) for fit, truth in fits]
        print(f"\nfuse alignments: {len(fits)} frames; |scale error| p50 {100 * np.median(scale_err):.2f} %, "
              f"max {100 * np.max(scale_err):.2f} %; inlier fraction p50 "
              f"{np.median([fit.inlier_fraction for fit, _ in fits]):.3f}; RMS relative residual p50 "
              f"{np.median([fit.rms_residual for fit, _ in fits]):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
