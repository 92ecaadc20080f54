"""PyTorch vs ONNX Runtime on the CPU: prefill latency, decode tokens/s and peak memory of one VLM.

The model is a SMALL RANDOMLY INITIALISED LLaVA with realistic-ish dimensions (built from a transformers
config, nothing downloaded): CLIP vision tower 4 x 512 at 224 px / patch 14 (256 image tokens), Llama
decoder 4 layers x 512, 8 heads / 4 KV heads, MLP 1408, vocabulary padded to 32000 (~60 M parameters).
Its outputs are meaningless; its compute shape is that of a (much smaller) real VLM.

- prefill: vision encoder + token embedding + decoder over the whole prompt (batch 1, ~300 tokens),
  timed without pre-processing (the Hugging Face processor is shared by both backends);
- decode: one token per step with the KV cache (greedy), per-step latency -> tokens/s;
- peak memory: each backend runs in its own process; reported are the process's peak RSS (VmHWM) and the
  growth from just before the model was loaded to that peak.

    scripts/ros_env.sh python benchmarks/bench_vlm.py [--threads 1] [--prefill-runs 20] [--decode-steps 64]

The load average is printed: on a shared machine, other processes inflate (mostly PyTorch's) latencies.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SMALL = dict(hidden_size=512, num_layers=4, vision_layers=4, image_size=224, patch_size=14,
             intermediate_size=1408, num_attention_heads=8, num_key_value_heads=4, initializer_range=0.02)
QUESTION = "Is the red mug to the left of the blue bowl, and how far apart are they? Answer briefly."


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _percentiles(samples_s) -> dict:
    a = np.asarray(samples_s) * 1e3
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)),
            "p99": float(np.percentile(a, 99)), "mean": float(a.mean()), "n": int(a.size)}


def _image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)


def run_torch(model_dir: str, threads: int, prefill_runs: int, decode_steps: int) -> dict:
    import torch

    from spatial_vlm_ros.vlm.engine import VLMRequest
    from spatial_vlm_ros.vlm.transformers_engine import TransformersEngine

    torch.set_num_threads(threads)
    rss0 = _status_kb("VmRSS")
    engine = TransformersEngine(model_dir, device="cpu", dtype="float32")
    model = engine.model
    request = VLMRequest(QUESTION, _image())
    inputs = engine._inputs([engine.prompt(request)], [request.image], "left")

    def prefill():
        with torch.inference_mode():
            return model(**inputs, use_cache=True)
    for _ in range(2):
        prefill()
    prefill_s = []
    for _ in range(prefill_runs):
        t = time.perf_counter()
        out = prefill()
        prefill_s.append(time.perf_counter() - t)
    step_s = []
    with torch.inference_mode():
        past, mask = out.past_key_values, inputs["attention_mask"]
        token = out.logits[:, -1].argmax(-1, keepdim=True)
        position = mask.sum(-1, keepdim=True)
        for _ in range(decode_steps):
            mask = torch.cat([mask, torch.ones_like(token)], dim=1)
            t = time.perf_counter()
            o = model(input_ids=token, attention_mask=mask, position_ids=position, past_key_values=past,
                      use_cache=True)
            token = o.logits[:, -1].argmax(-1, keepdim=True)
            step_s.append(time.perf_counter() - t)
            past, position = o.past_key_values, position + 1
    return {"backend": "pytorch", "prompt_tokens": int(inputs["input_ids"].shape[1]),
            "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
            "prefill": _percentiles(prefill_s), "decode_step": _percentiles(step_s[2:]),
            "peak_rss_mb": _status_kb("VmHWM") / 1024, "model_growth_mb": (_status_kb("VmHWM") - rss0) / 1024}


def run_onnx(export_dir: str, threads: int, prefill_runs: int, decode_steps: int) -> dict:
    from spatial_vlm_ros.vlm.engine import VLMRequest
    from spatial_vlm_ros.vlm.onnx_engine import OnnxEngine

    rss0 = _status_kb("VmRSS")
    engine = OnnxEngine(export_dir, device="cpu", threads=threads)
    request = VLMRequest(QUESTION, _image())
    inputs = engine._inputs([engine.prompt(request)], [request.image], "left")
    ids = np.asarray(inputs["input_ids"], dtype=np.int64)
    mask = np.asarray(inputs["attention_mask"], dtype=np.int64)
    pixels = np.asarray(inputs["pixel_values"])
    positions = np.cumsum(mask, axis=1) - 1

    def prefill():
        embeds = engine.embeddings(ids, pixels)
        return engine.decode_step(embeds, mask, positions, engine._empty_past(1))
    for _ in range(2):
        prefill()
    prefill_s = []
    for _ in range(prefill_runs):
        t = time.perf_counter()
        logits, past = prefill()
        prefill_s.append(time.perf_counter() - t)
    step_s = []
    token = logits[:, -1].argmax(-1)
    m, position = mask, positions[:, -1:] + 1
    for _ in range(decode_steps):
        m = np.concatenate([m, np.ones((1, 1), np.int64)], axis=1)
        t = time.perf_counter()
        embeds = engine.embed.run(None, {"input_ids": token[:, None].astype(np.int64)})[0]
        logits, past = engine.decode_step(embeds, m, position, past)
        token = logits[:, -1].argmax(-1)
        step_s.append(time.perf_counter() - t)
        position = position + 1
    return {"backend": "onnxruntime", "provider": engine.provider, "prompt_tokens": int(ids.shape[1]),
            "prefill": _percentiles(prefill_s), "decode_step": _percentiles(step_s[2:]),
            "peak_rss_mb": _status_kb("VmHWM") / 1024, "model_growth_mb": (_status_kb("VmHWM") - rss0) / 1024}


def _worker(args) -> None:
    fn = run_torch if args.worker == "torch" else run_onnx
    print("RESULT " + json.dumps(fn(args.path, args.threads, args.prefill_runs, args.decode_steps)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads per backend (1 is robust on a loaded 2-core machine)")
    parser.add_argument("--prefill-runs", type=int, default=20)
    parser.add_argument("--decode-steps", type=int, default=64)
    parser.add_argument("--worker", choices=["torch", "onnx"], help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args)
        return 0

    from spatial_vlm_ros.vlm.onnx_export import ExportRecipe, export_model
    from spatial_vlm_ros.vlm.tiny_models import save_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = save_tiny_model(Path(tmp) / "small_llava", "llava", vocab_pad=32000 - 264, **SMALL)
        t = time.perf_counter()
        export_dir = export_model(ExportRecipe(model=str(model_dir), output=str(Path(tmp) / "onnx")))
        export_s = time.perf_counter() - t
        results = []
        for worker, path in (("torch", model_dir), ("onnx", export_dir)):
            cmd = [sys.executable, __file__, "--worker", worker, "--path", str(path), "--threads",
                   str(args.threads), "--prefill-runs", str(args.prefill_runs), "--decode-steps",
                   str(args.decode_steps)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            results.append(json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:]))
    pt, ox = results
    print(f"small random LLaVA ({pt['params_m']:.1f} M params, random weights: speed only), "
          f"{pt['prompt_tokens']} prompt tokens, batch 1, fp32, {args.threads} CPU threads; "
          f"ONNX export took {export_s:.1f} s; onnxruntime provider {ox['provider']}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'':<24}{'PyTorch':>32}{'ONNX Runtime':>32}{'ORT/PT':>9}")
    for key, label in (("prefill", "prefill ms"), ("decode_step", "decode step ms")):
        a, b = pt[key], ox[key]
        cells = ["p50 {p50:.1f} p95 {p95:.1f} p99 {p99:.1f}".format(**r) for r in (a, b)]
        print(f"{label:<24}{cells[0]:>32}{cells[1]:>32}{b['p50'] / a['p50']:>9.2f}")
    tps = [1e3 / r["decode_step"]["mean"] for r in (pt, ox)]
    print(f"{'decode tokens/s (mean)':<24}{tps[0]:>32.1f}{tps[1]:>32.1f}{tps[1] / tps[0]:>9.2f}")
    for key, label in (("peak_rss_mb", "peak RSS MB"), ("model_growth_mb", "RSS growth at load MB")):
        print(f"{label:<24}{pt[key]:>32.0f}{ox[key]:>32.0f}{ox[key] / pt[key]:>9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
