"""PyTorch vs ONNX Runtime: prefill latency, decode tokens/s and peak memory of real-size VLMs.

The models have the dimensions of published checkpoints and RANDOM weights (speed does not depend on the
weights; nothing is downloaded, so the outputs are meaningless). Each is built from the tiny model of its
family (:mod:`spatial_vlm_ros.vlm.tiny_models`: byte-level tokenizer, special tokens, processor) with the
text and vision configs replaced by the published numbers (:data:`MODELS`), saved with safetensors to a
temporary directory and exported with the package's exporter (:func:`~spatial_vlm_ros.vlm.onnx_export.export_model`).

- ``smolvlm2-256m`` (default): ``HuggingFaceTB/SmolVLM2-256M-Video-Instruct``. Text (SmolLM2-135M layout)
  from the config.json of its base model ``HuggingFaceTB/SmolVLM-256M-Instruct`` (huggingface.co/Mattimax/
  DATA-AI_Smol256M-Instruct/blob/main/config.json, a copy): Llama 30 x 576, 9 heads / 3 KV heads, head 64,
  MLP 1536, 8192 positions, scale factor 4; vocabulary 49280 (eos 49279 in the SmolVLM2 generation_config.json).
  Vision: SigLIP-B/16 at 512 px (the model card's 93 M encoder: 12 x 768, 12 heads, MLP 3072). Processor
  (SmolVLM2 preprocessor_config.json / processor_config.json): longest edge 2048 px, 512 px tiles, 64 image
  tokens per tile, so a 640 x 480 frame is 4 x 3 tiles + a global tile = 832 image tokens.
- ``qwen2.5-vl-3b``: ``Qwen/Qwen2.5-VL-3B-Instruct`` config.json (huggingface.co/dahwinsingularity/vllm2/
  blob/main/config.json, a copy): Qwen2 36 x 2048, 16 heads / 2 KV heads, MLP 11008, vocabulary 151936,
  M-RoPE sections 16/24/24, rope theta 1e6, tied embeddings; vision 1280 wide, out 2048, patch 14, and the
  transformers defaults the config leaves out (32 blocks, 16 heads, MLP 3420, 112 px windows, full attention
  in blocks 7/15/23/31). A 640 x 480 frame becomes 644 x 476 px = 391 image tokens.

Per backend, each in its own process (so peak memory does not mix):

- prefill: vision encoder + embedding + decoder over the whole prompt (batch 1, one image), p50/p95 over
  ``--prefill-runs`` after one warm-up, processor excluded (both backends are fed the same processor output);
- decode: ``--decode-steps`` greedy tokens through the backend's own generate loop (transformers
  ``generate``, :meth:`OnnxEngine.generate <spatial_vlm_ros.vlm.onnx_engine.OnnxEngine.generate>`), EOS
  ignored; per-token interval -> tokens/s;
- peak RSS: ``ru_maxrss`` of the process, and its growth from just before the model was loaded.

The prompt is tokenised by the tiny byte-level tokenizer (one token per character: more text tokens than
the real tokenizer gives, few next to the image tokens). Memory: every step runs in a child process whose
RSS is polled; one whose weights alone would not fit (``--max-rss-gb``, less when the machine has less
available) is not started, one that grows past the limit is stopped, and its cell says "does not fit".
The ONNX export loads the model in float32 before casting to the export dtype.

    scripts/ros_env.sh python benchmarks/bench_vlm.py [--model smolvlm2-256m|qwen2.5-vl-3b] [--threads 1]
        [--prefill-runs 3] [--decode-steps 32] [--device cpu|cuda] [--max-rss-gb 18]

``--device cuda``: PyTorch on CUDA and onnxruntime on TensorRT -> CUDA (:mod:`spatial_vlm_ros.runtime.providers`),
float16 on both; a backend without a usable GPU says so in its cell instead of falling back to the CPU.
Measured tables: docs/vlm_speed.md.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
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

#: Real-size configs (see the module doc for the sources). ``family``/``builder``: the tiny builder whose
#: tokenizer and processor geometry are kept; ``text``/``vision``/``top``: fields replaced in its config;
#: ``processor``: processor attributes replaced; ``dtype``: (PyTorch, ONNX export) dtypes on the CPU.
MODELS = {
    "smolvlm2-256m": {
        "name": "SmolVLM2-256M-Video-Instruct",
        "family": "smolvlm",
        "builder": {"tile_size": 512, "patch_size": 16, "longest_edge": 2048},
        "text": {"vocab_size": 49280, "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                 "num_attention_heads": 9, "num_key_value_heads": 3, "head_dim": 64,
                 "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "initializer_range": 0.041666666666666664,
                 "rope_parameters": {"rope_type": "default", "rope_theta": 100000.0}},
        "vision": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                   "num_attention_heads": 12, "image_size": 512, "patch_size": 16, "initializer_range": 0.02},
        "top": {"scale_factor": 4, "tie_word_embeddings": False, "initializer_range": 0.02},
        "processor": {"image_seq_len": 64},
        "dtype": ("float32", "float32"),
    },
    "qwen2.5-vl-3b": {
        "name": "Qwen2.5-VL-3B-Instruct",
        "family": "qwen2_5_vl",
        "builder": {"max_image_tokens": 16384},
        "text": {"vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36,
                 "num_attention_heads": 16, "num_key_value_heads": 2, "head_dim": 128,
                 "max_position_embeddings": 128000, "rms_norm_eps": 1e-6, "initializer_range": 0.02,
                 "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [16, 24, 24]}},
        "vision": {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16,
                   "out_hidden_size": 2048, "patch_size": 14, "window_size": 112,
                   "fullatt_block_indexes": [7, 15, 23, 31], "initializer_range": 0.02},
        "top": {"tie_word_embeddings": True, "initializer_range": 0.02},
        "processor": {},
        "dtype": ("bfloat16", "float16"),
    },
}
GPU_DTYPE = "float16"
QUESTION = "Is the red mug to the left of the blue bowl, and how far apart are they? Answer briefly."
BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}
GB = 1024 ** 3


# -- measurements (run inside the workers) -------------------------------------------------------------------
def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _percentiles(samples_s) -> dict:
    a = np.asarray(samples_s) * 1e3
    return {"p50": float(np.percentile(a, 50)), "p95": float(np.percentile(a, 95)),
            "p99": float(np.percentile(a, 99)), "mean": float(a.mean()), "n": int(a.size)}


def _memory(rss0_kb: int) -> dict:
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss          # KiB on Linux
    return {"peak_rss_mb": peak_kb / 1024, "model_growth_mb": (peak_kb - rss0_kb) / 1024}


def _image(size: str) -> np.ndarray:
    width, height = (int(v) for v in size.lower().split("x"))
    return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _timed(fn, runs: int, sync=lambda: None) -> list[float]:
    """Seconds of ``runs`` calls of ``fn`` after one warm-up call."""
    fn()
    sync()
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        sync()
        samples.append(time.perf_counter() - t)
    return samples


def _intervals(stamps: list[float]) -> list[float]:
    """Per-token seconds from the times each token became available (the first one ends the prefill)."""
    return list(np.diff(stamps))


def build_model(spec: dict, out: str) -> dict:
    """Save the real-size random model of ``spec`` (safetensors, PyTorch dtype) with its processor to ``out``."""
    import torch

    config, model_cls, processor, generation_config = _real_size_config(spec)
    torch.manual_seed(0)
    model = model_cls._from_config(config, dtype=getattr(torch, spec["dtype"][0])).eval()
    model.generation_config = generation_config
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return {"params_m": sum(p.numel() for p in model.parameters()) / 1e6}


def _real_size_config(spec: dict):
    """``(config, model class, processor, generation config)``: the tiny model's, with the published
    dimensions."""
    from spatial_vlm_ros.vlm.tiny_models import TINY_BUILDERS

    tiny, processor = TINY_BUILDERS[spec["family"]](**spec["builder"])
    data = tiny.config.to_dict()
    text = {k: v for k, v in data["text_config"].items() if k != "layer_types"}     # per layer: recomputed
    data.update(spec["top"], text_config={**text, **spec["text"]},
                vision_config={**data["vision_config"], **spec["vision"]})
    for name, value in spec["processor"].items():
        setattr(processor, name, value)
    return type(tiny.config).from_dict(data), type(tiny), processor, tiny.generation_config


def parameter_count(spec: dict) -> int:
    """Parameters of the real-size model, counted on the meta device (no memory)."""
    import torch

    config, model_cls, _, _ = _real_size_config(spec)
    with torch.device("meta"):
        return sum(p.numel() for p in model_cls._from_config(config).parameters())


def export(model_dir: str, out: str, dtype: str) -> dict:
    """Export ``model_dir`` to ``out`` in ``dtype``; time and peak RSS."""
    from spatial_vlm_ros.vlm.onnx_export import ExportRecipe, export_model

    t = time.perf_counter()
    export_model(ExportRecipe(model=model_dir, output=out, dtype=dtype))
    return {"export_s": time.perf_counter() - t, **_memory(0)}


def run_torch(model_dir: str, device: str, dtype: str, threads: int, prefill_runs: int, decode_steps: int,
              image_size: str) -> dict:
    import torch
    from transformers import AutoModelForImageTextToText
    from transformers.generation.streamers import BaseStreamer

    from spatial_vlm_ros.vlm.engine import chat_messages, load_processor, to_pil

    if device.startswith("cuda") and not torch.cuda.is_available():
        return {"error": "does not run: PyTorch sees no CUDA device"}
    torch.set_num_threads(threads)
    processor = load_processor(model_dir)
    rss0 = _status_kb("VmRSS")
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=getattr(torch, dtype),
                                                        use_safetensors=True).to(device).eval()
    prompt = processor.apply_chat_template(chat_messages(QUESTION, True), add_generation_prompt=True,
                                           tokenize=False)
    batch = processor(text=[prompt], images=[to_pil(_image(image_size))], return_tensors="pt", padding=True)
    inputs = {k: v.to(device, model.dtype) if v.is_floating_point() else v.to(device) for k, v in batch.items()}
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    class TokenClock(BaseStreamer):
        """Time at which generate hands over each token (the prompt first)."""

        def __init__(self):
            self.stamps: list[float] = []

        def put(self, value):
            value.tolist()                                          # waits for the device
            self.stamps.append(time.perf_counter())

        def end(self):
            pass

    with torch.inference_mode():
        prefill_s = _timed(lambda: model(**inputs, use_cache=True), prefill_runs, sync)
        clock = TokenClock()
        model.generate(**inputs, max_new_tokens=decode_steps, min_new_tokens=decode_steps, do_sample=False,
                       streamer=clock)
    return {"backend": f"PyTorch {dtype}", "prompt_tokens": int(inputs["input_ids"].shape[1]),
            "prefill": _percentiles(prefill_s), "decode_step": _percentiles(_intervals(clock.stamps[1:])),
            **_memory(rss0)}


def run_onnx(export_dir: str, device: str, threads: int, prefill_runs: int, decode_steps: int,
             image_size: str) -> dict:
    from spatial_vlm_ros.vlm.engine import GenerationOptions, VLMRequest
    from spatial_vlm_ros.vlm.onnx_engine import open_onnx_engine

    rss0 = _status_kb("VmRSS")
    engine = open_onnx_engine(export_dir, device=device, threads=threads)
    if device != "cpu" and not engine.on_gpu:
        return {"error": "does not run: no GPU provider opened (" + "; ".join(engine.fallbacks) + ")"}
    request = VLMRequest(QUESTION, _image(image_size))
    inputs, _ = engine._request_inputs([request], GenerationOptions())

    def prefill():
        ids, mask, embeds, positions = engine._prefill_inputs(inputs, with_image=True)
        return engine.decode_step(embeds, mask, positions, engine._empty_past(1))

    prefill_s = _timed(prefill, prefill_runs)
    stamps, decode_step = [], engine.decode_step

    def timed_step(*args):
        out = decode_step(*args)
        stamps.append(time.perf_counter())
        return out

    engine.decode_step = timed_step
    engine.meta["eos_token_ids"] = []                               # decode all the steps
    engine.generate([request], GenerationOptions(max_new_tokens=decode_steps))
    return {"backend": f"onnxruntime {engine.meta['dtype']}", "provider": engine.provider,
            "prompt_tokens": int(np.asarray(inputs["input_ids"]).shape[1]), "prefill": _percentiles(prefill_s),
            "decode_step": _percentiles(_intervals(stamps)), **_memory(rss0)}


def _worker(args) -> None:
    job = json.loads(args.job)
    kind = job.pop("kind")
    fn = {"build": build_model, "export": export, "torch": run_torch, "onnx": run_onnx}[kind]
    print("RESULT " + json.dumps(fn(**job)), flush=True)


# -- orchestration ------------------------------------------------------------------------------------------
def available_gb() -> float:
    """MemAvailable of this machine, GiB."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024 ** 2
    return 0.0


class Budget:
    """The RSS a child may reach, GiB: ``--max-rss-gb``, or less when the machine has less available (1 GiB
    kept free)."""

    def __init__(self, max_gb: float):
        self.max_gb = max_gb

    def limit_gb(self) -> float:
        return min(self.max_gb, available_gb() - 1.0)

    def refuse(self, need_gb: float, what: str) -> str | None:
        """Why a step needing at least ``need_gb`` (its weights) is not started, or None."""
        limit = self.limit_gb()
        if need_gb > limit:
            return f"does not fit: {what} needs at least {need_gb:.1f} GB, the limit is {limit:.1f} GB"
        return None


def run_child(job: dict, budget: Budget, poll_s: float = 0.5) -> dict:
    """Run ``job`` in a worker process, stopping it if its RSS passes the budget; its result, or
    ``{"error": ...}``."""
    limit_kb = budget.limit_gb() * 1024 ** 2
    proc = subprocess.Popen([sys.executable, __file__, "--job", json.dumps(job)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    status, t0 = Path(f"/proc/{proc.pid}/status"), time.perf_counter()
    while proc.poll() is None:
        try:
            rss = next(int(line.split()[1]) for line in status.read_text().splitlines() if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            rss = 0
        if rss > limit_kb:
            proc.kill()
            proc.communicate()
            return {"error": f"does not fit: {job['kind']} passed {limit_kb / 1024 ** 2:.1f} GB RSS after "
                             f"{time.perf_counter() - t0:.0f} s and was stopped"}
        time.sleep(poll_s)
    out, err = proc.communicate()
    result = next((line[7:] for line in out.splitlines() if line.startswith("RESULT ")), None)
    if proc.returncode != 0 or result is None:
        last = (err.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        return {"error": f"failed: {job['kind']}: {last[:300]}"}
    return json.loads(result)


def guarded(job: dict, budget: Budget, need_gb: float, what: str) -> dict:
    """:func:`run_child` of ``job`` unless ``what`` needs at least ``need_gb`` (its weights) over the budget."""
    refusal = budget.refuse(need_gb, what)
    return {"error": refusal} if refusal else run_child(job, budget)


def _cell(result: dict, fmt) -> str:
    return result["error"] if "error" in result else fmt(result)


def print_table(title: str, results: dict) -> None:
    pt, ox = results["torch"], results["onnx"]
    print(title)
    names = [r.get("backend", name) for name, r in (("PyTorch", pt), ("onnxruntime", ox))]
    print(f"| | {names[0]} | {names[1]} | ORT/PT |\n|---|---|---|---|")
    both = "error" not in pt and "error" not in ox
    for key, label in (("prefill", "prefill ms"), ("decode_step", "decode ms/token")):
        cells = [_cell(r, lambda r, key=key: "p50 {p50:.0f}, p95 {p95:.0f} (n={n})".format(**r[key]))
                 for r in (pt, ox)]
        ratio = f"{ox[key]['p50'] / pt[key]['p50']:.2f}" if both else "-"
        print(f"| {label} | {cells[0]} | {cells[1]} | {ratio} |")
    tps = [None if "error" in r else 1e3 / r["decode_step"]["mean"] for r in (pt, ox)]
    cells = [_cell(r, lambda r, t=t: f"{t:.2f}") for r, t in zip((pt, ox), tps)]
    print(f"| decode tokens/s (mean) | {cells[0]} | {cells[1]} | {f'{tps[1] / tps[0]:.2f}' if both else '-'} |")
    for key, label in (("peak_rss_mb", "peak RSS MB"), ("model_growth_mb", "RSS growth from load MB")):
        cells = [_cell(r, lambda r, key=key: f"{r[key]:.0f}") for r in (pt, ox)]
        print(f"| {label} | {cells[0]} | {cells[1]} | {f'{ox[key] / pt[key]:.2f}' if both else '-'} |")


def gpu_missing() -> str | None:
    """Why neither backend could run on a GPU here, or None when at least one can."""
    import onnxruntime as ort
    import torch

    from spatial_vlm_ros.runtime.providers import GPU_PROVIDERS

    if torch.cuda.is_available() or GPU_PROVIDERS & set(ort.get_available_providers()):
        return None
    return "PyTorch sees no CUDA device and onnxruntime has no TensorRT/CUDA provider"


def benchmark(args) -> int:
    spec = MODELS[args.model]
    budget = Budget(args.max_rss_gb)
    gpu = args.device != "cpu"
    if gpu and (reason := gpu_missing()):
        print(f"does not run on {args.device}: {reason}")
        return 1
    torch_dtype, onnx_dtype = (GPU_DTYPE, GPU_DTYPE) if gpu else spec["dtype"]
    params = parameter_count(spec)
    weights_gb = {dtype: params * size / GB for dtype, size in BYTES.items()}
    load0 = os.getloadavg()[0]
    print(f"{spec['name']}-sized, random weights (speed only), {params / 1e6:.0f} M params; "
          f"{args.threads} threads, device {args.device}; {available_gb():.1f} GB available, "
          f"limit {budget.limit_gb():.1f} GB RSS per process; load average {load0:.2f} on {os.cpu_count()} cores",
          flush=True)
    common = {"device": args.device, "threads": args.threads, "prefill_runs": args.prefill_runs,
              "decode_steps": args.decode_steps, "image_size": args.image_size}
    results = {}
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        model_dir, export_dir = str(Path(tmp) / "model"), str(Path(tmp) / "onnx")
        t = time.perf_counter()
        built = guarded({"kind": "build", "spec": spec, "out": model_dir}, budget,
                        weights_gb[spec["dtype"][0]], f"building the {spec['dtype'][0]} model")
        if "error" in built:
            print(built["error"])
            return 1
        print(f"built and saved in {time.perf_counter() - t:.0f} s", flush=True)
        results["torch"] = guarded({"kind": "torch", "model_dir": model_dir, "dtype": torch_dtype, **common},
                                   budget, weights_gb[torch_dtype], f"PyTorch {torch_dtype} (its weights)")
        print("PyTorch done", flush=True)
        exported = guarded({"kind": "export", "model_dir": model_dir, "out": export_dir,
                            "dtype": onnx_dtype}, budget, weights_gb["float32"],
                           "the ONNX export (it loads the model in float32)")
        if "error" in exported:
            results["onnx"] = exported
        else:
            print(f"exported ({onnx_dtype}) in {exported['export_s']:.0f} s, peak RSS "
                  f"{exported['peak_rss_mb'] / 1024:.1f} GB", flush=True)
            results["onnx"] = guarded({"kind": "onnx", "export_dir": export_dir, **common}, budget,
                                      weights_gb[onnx_dtype], f"onnxruntime {onnx_dtype} (its weights)")
    prompt = next((r["prompt_tokens"] for r in results.values() if "prompt_tokens" in r), "?")
    provider = results["onnx"].get("provider", "-")
    print_table(f"\n{spec['name']}-sized (random weights), {prompt} prompt tokens ({args.image_size} image), "
                f"batch 1, {args.threads} threads, onnxruntime provider {provider}; load average "
                f"{load0:.2f} at start, {os.getloadavg()[0]:.2f} at end", results)
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "params": params, "args": vars(args),
                                               "results": results, "export": exported}, indent=2))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="smolvlm2-256m")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--threads", type=int, default=1,
                        help="intra-op threads per backend (more than 1 slows PyTorch down on a loaded machine)")
    parser.add_argument("--prefill-runs", type=int, default=3)
    parser.add_argument("--decode-steps", type=int, default=32)
    parser.add_argument("--image-size", default="640x480", help="WxH of the (random) input image, px")
    parser.add_argument("--max-rss-gb", type=float, default=18.0, help="RSS limit of each child process")
    parser.add_argument("--tmp", default=None, help="directory for the model and export (needs free disk)")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--job", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        _worker(args)
        return 0
    return benchmark(args)


if __name__ == "__main__":
    raise SystemExit(main())
