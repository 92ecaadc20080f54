"""ms per 640x480 frame of each learned perception part at its REAL architecture size, random weights (speed
does not depend on the weights), PyTorch vs onnxruntime in the same run; and the depth box segmenter
(``detector: boxes``) with 10 boxes.

    python benchmarks/bench_perception.py [--parts detector segmenter depth boxes] [--repeats 5]
                                          [--device cpu|cuda] [--no-onnx] [--json OUT]

Parts: ``detector`` (Grounding DINO tiny: Swin-T + BERT-base sizes, 900 queries; prompt of 3 phrases; the
whole ``detect_boxes`` call: processor, network, post-processing), ``segmenter`` (SAM 2.1 hiera-tiny, 1024 px
input, 10 boxes per frame), ``depth`` (Depth Anything V2 Metric Indoor Small, 518 px), ``boxes`` (weight-free).
The real-size models are built from ``real_size_config()`` and saved to a temporary directory; the
detector's tokenizer is the tiny character-level one (token ids stay inside BERT's vocabulary), so the text
encoder runs at full size on a prompt of realistic length. p50/p95 over ``--repeats`` after one warm-up.
With ``--device cuda`` PyTorch runs fp16 on the GPU and onnxruntime tries TensorRT -> CUDA -> CPU.
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

CLASSES = ("mug", "red bowl", "cereal box")
N_BOXES = 10


def _frame(seed: int = 0):
    from spatial_vlm_ros.core.noise import DepthNoiseModel
    from spatial_vlm_ros.sim.analytic import CameraPose, default_camera, random_tabletop, render
    from spatial_vlm_ros.sim.detections import detections_from_mask

    camera = default_camera(640, 480)
    frame = render(random_tabletop(N_BOXES, seed=seed), CameraPose(), camera, noise=DepthNoiseModel(),
                   edge_holes=0.3, seed=seed)
    return frame, detections_from_mask(frame.mask, frame.ids, frame.labels)


def real_size_dir(part: str, root: Path) -> Path:
    """A saved random-weight model directory of ``part`` at full size."""
    import torch

    torch.manual_seed(0)
    out = root / part
    if part == "detector":
        from transformers import GroundingDinoForObjectDetection, GroundingDinoImageProcessorPil, GroundingDinoProcessor

        from spatial_vlm_ros.perception import open_vocab

        GroundingDinoForObjectDetection(open_vocab.real_size_config()).eval().save_pretrained(out)
        GroundingDinoProcessor(image_processor=GroundingDinoImageProcessorPil(),        # 800 / 1333 px edges
                               tokenizer=open_vocab.tiny_tokenizer()).save_pretrained(out)
    elif part == "segmenter":
        from transformers import Sam2Model

        from spatial_vlm_ros.perception import sam2_segmenter

        Sam2Model(sam2_segmenter.real_size_config()).eval().save_pretrained(out)
        sam2_segmenter._write_preprocessor(out, 1024)
    elif part == "depth":
        from transformers import AutoModelForDepthEstimation

        from spatial_vlm_ros.perception import mono_depth

        AutoModelForDepthEstimation.from_config(mono_depth.real_size_config()).eval().save_pretrained(out)
        mono_depth.processor_for(518).save_pretrained(out)
    else:
        raise ValueError(part)
    return out


def runner(part: str, model_dir: Path, backend: str, onnx_dir: Path | None, device: str):
    """(callable frame -> result, provider) of one part and backend."""
    frame, boxes = _frame()
    if part == "detector":
        from spatial_vlm_ros.perception.open_vocab import OpenVocabParams, ZeroShotBoxDetector

        det = ZeroShotBoxDetector(OpenVocabParams(model=str(model_dir), classes=CLASSES, device=device,
                                                  backend=backend, onnx_dir=str(onnx_dir or "")))
        return (lambda: det.detect_boxes(frame.rgb)), det.provider
    if part == "segmenter":
        from spatial_vlm_ros.perception.sam2_segmenter import Sam2Params, Sam2Segmenter

        seg = Sam2Segmenter(Sam2Params(model=str(model_dir), device=device, backend=backend,
                                       onnx_dir=str(onnx_dir or "")))
        return (lambda: seg.segment(frame.rgb, frame.depth, frame.camera, frame.gravity, boxes)), seg.provider
    if part == "depth":
        from spatial_vlm_ros.perception.mono_depth import DepthModelParams, MonoDepthModel

        depth = MonoDepthModel(DepthModelParams(model=str(model_dir), device=device, backend=backend,
                                                onnx_dir=str(onnx_dir or "")))
        return (lambda: depth.predict(frame.rgb)), getattr(depth, "provider", backend)
    if part == "boxes":
        from spatial_vlm_ros.perception.box_segmenter import DepthBoxParams, DepthBoxSegmenter

        seg = DepthBoxSegmenter(DepthBoxParams())
        return (lambda: seg.segment(frame.rgb, frame.depth, frame.camera, frame.gravity, boxes)), "numpy/OpenCV"
    raise ValueError(part)


def time_ms(fn, repeats: int) -> tuple[float, float]:
    fn()                                          # warm-up (allocations, lazy initialisation, engines)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(1e3 * (time.perf_counter() - t))
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", nargs="+", default=["detector", "segmenter", "depth", "boxes"],
                   choices=["detector", "segmenter", "depth", "boxes"])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--no-onnx", action="store_true", help="PyTorch only")
    p.add_argument("--json", default=None, help="write the results here")
    a = p.parse_args(argv)
    import os

    import torch

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
          f"{torch.__version__} ({torch.get_num_threads()} threads), device {a.device}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_perception_") as tmp:
        root = Path(tmp)
        for part in a.parts:
            row = {"part": part}
            if part == "boxes":
                fn, provider = runner(part, root, "torch", None, a.device)
                row.update(torch_p50=None, torch_p95=None, onnx_p50=None, onnx_p95=None, provider=provider)
                row["p50"], row["p95"] = time_ms(fn, max(a.repeats, 10))
                rows.append(row)
                print(f"boxes ({N_BOXES} boxes): p50 {row['p50']:.1f} ms, p95 {row['p95']:.1f} ms")
                continue
            t = time.perf_counter()
            model_dir = real_size_dir(part, root)
            print(f"{part}: built and saved the real-size model in {time.perf_counter() - t:.0f} s")
            fn, _ = runner(part, model_dir, "torch", None, a.device)
            row["torch_p50"], row["torch_p95"] = time_ms(fn, a.repeats)
            del fn
            print(f"{part} torch: p50 {row['torch_p50']:.0f} ms, p95 {row['torch_p95']:.0f} ms")
            if not a.no_onnx:
                from spatial_vlm_ros.perception.learned_parts import part_module

                t = time.perf_counter()
                onnx_dir = part_module(part).export_onnx(str(model_dir), root / f"{part}_onnx")
                row["export_s"] = time.perf_counter() - t
                fn, row["provider"] = runner(part, model_dir, "onnx", onnx_dir, a.device)
                row["onnx_p50"], row["onnx_p95"] = time_ms(fn, a.repeats)
                del fn
                row["torch_over_onnx"] = row["torch_p50"] / row["onnx_p50"]
                print(f"{part} onnx ({row['provider']}): p50 {row['onnx_p50']:.0f} ms, p95 {row['onnx_p95']:.0f} "
                      f"ms; torch/onnx {row['torch_over_onnx']:.2f}x (export {row['export_s']:.0f} s)")
            rows.append(row)
    print("\n| part | torch p50 / p95 ms | onnxruntime p50 / p95 ms | torch / onnx |\n| --- | --- | --- | --- |")
    for r in rows:
        if r["part"] == "boxes":
            print(f"| boxes segmenter ({N_BOXES} boxes) | {r['p50']:.1f} / {r['p95']:.1f} (numpy/OpenCV) | | |")
            continue
        onnx = f"{r['onnx_p50']:.0f} / {r['onnx_p95']:.0f}" if r.get("onnx_p50") else "-"
        ratio = f"{r['torch_over_onnx']:.2f}" if r.get("torch_over_onnx") else "-"
        print(f"| {r['part']} | {r['torch_p50']:.0f} / {r['torch_p95']:.0f} | {onnx} | {ratio} |")
    if a.json:
        Path(a.json).write_text(json.dumps({"device": a.device, "repeats": a.repeats, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
