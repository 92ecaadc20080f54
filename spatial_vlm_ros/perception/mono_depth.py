"""Monocular metric depth from one color image (``depth_source: model`` and ``fuse``): a transformers
``AutoModelForDepthEstimation`` (default Depth Anything V2 Metric Indoor Small, Apache-2.0; the Base and Large
variants are CC-BY-NC-4.0) run with PyTorch or onnxruntime.

Output: depth in metres along the optical axis (camera optical frame, z forward), float32, the size of the
input image (H, W). A relative model (``depth_estimation_type: relative``, DPT/MiDaS) predicts relative
inverse depth instead; ``MonoDepthModel.metric`` says which, and only ``fuse`` can use a relative model.

Pre-processing is numpy/OpenCV and follows the model's image-processor config (resize keeping the aspect
ratio to a multiple of the patch size, bicubic, rescale 1/255, ImageNet normalisation), so the ONNX path
needs neither torch nor transformers at run time. (transformers 5.23 would also give a PIL-backend
``DPTImageProcessorPil`` without torchvision; the OpenCV path is faster and is tested against it.)

The module follows the learned-part protocol of ``perception.learned_parts``; it imports torch, transformers
and onnxruntime lazily, so the geometric core and the parameter table can import ``DepthModelParams``.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from spatial_vlm_ros.core.errors import InputError

log = logging.getLogger(__name__)

PART = "depth"
DEFAULT_MODEL = "depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf"
BACKENDS = ("torch", "onnx")
ONNX_FILE = "model.onnx"
ONNX_META = "depth_onnx.json"        # pre-processing, image size and output kind of an exported graph
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_RELATIVE_MODEL_TYPES = ("dpt",)     # DPT/MiDaS heads predict relative inverse depth


@dataclass(frozen=True)
class DepthModelParams:
    """The depth model of ``depth_source: model | fuse`` (ROS parameters ``depth_model.*``)."""

    model: str = DEFAULT_MODEL       # HF id (from the local cache when offline) or local model directory
    device: str = "auto"             # auto (CUDA when available, else CPU) | cpu | cuda | cuda:N
    dtype: str = "auto"              # torch backend: auto (fp16 on CUDA, fp32 on CPU) | float32 | float16 | bfloat16
    backend: str = "torch"           # torch | onnx
    onnx_dir: str = ""               # backend onnx: directory written by `spatial_vlm export-onnx --part depth`
    input_size: int = 0              # network input side, px (multiple of the patch size); 0 = the processor's
    relative_error: float = 0.08     # 1-sigma relative error of the model's depth (widens the noise model)
    fp16: bool = True                # onnx backend: fp16 TensorRT engines
    trt_cache_dir: str = ""          # onnx backend: TensorRT engine cache ("" = <onnx_dir>/trt_cache)
    threads: int = 0                 # onnx backend: CPU intra-op threads (0 = onnxruntime's default)

    def validate(self) -> DepthModelParams:
        if self.backend not in BACKENDS:
            raise InputError(f"depth_model.backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if not 0.0 <= self.relative_error < 1.0:
            raise InputError(f"depth_model.relative_error must be in [0, 1), got {self.relative_error}")
        if self.input_size < 0:
            raise InputError(f"depth_model.input_size must be >= 0, got {self.input_size}")
        if self.backend == "onnx" and not self.onnx_dir.strip():
            raise InputError("depth_model.backend 'onnx' needs depth_model.onnx_dir; export the model with "
                             f"`spatial_vlm export-onnx --part depth --model {self.model} --out DIR`")
        return self


# ------------------------------------------------------------------------------------ pre-processing
@dataclass(frozen=True)
class Preprocessing:
    """The image processor's resize/normalise, in numpy/OpenCV (a DPT/Depth Anything processor config)."""

    height: int = 518                # target size; with keep_aspect_ratio the side scaled least is fitted
    width: int = 518
    keep_aspect_ratio: bool = True
    multiple: int = 14               # network input sides are multiples of this (the ViT patch size)
    bicubic: bool = True             # PIL resample 3 (bicubic) -> cv2.INTER_CUBIC, else bilinear
    rescale: float = 1.0 / 255.0
    mean: tuple[float, ...] = IMAGENET_MEAN     # per RGB channel, after rescale
    std: tuple[float, ...] = IMAGENET_STD

    @classmethod
    def from_processor(cls, proc, input_size: int = 0) -> Preprocessing:
        """From a transformers image processor (its attributes as in ``preprocessor_config.json``)."""
        size = getattr(proc, "size", None) or {}
        get = size.get if isinstance(size, dict) else (lambda k, d=None: getattr(size, k, d))
        h, w = get("height") or 518, get("width") or 518
        if input_size:
            h = w = int(input_size)
        return cls(height=int(h), width=int(w), keep_aspect_ratio=bool(getattr(proc, "keep_aspect_ratio", True)),
                   multiple=int(getattr(proc, "ensure_multiple_of", 14) or 1),
                   bicubic=int(getattr(proc, "resample", 3) or 3) == 3,
                   rescale=float(getattr(proc, "rescale_factor", 1 / 255)),
                   mean=tuple(float(v) for v in (getattr(proc, "image_mean", None) or IMAGENET_MEAN)),
                   std=tuple(float(v) for v in (getattr(proc, "image_std", None) or IMAGENET_STD)))

    def network_size(self, height: int, width: int) -> tuple[int, int]:
        """Network input (h, w) for an image of ``height`` x ``width`` px, as transformers' DPT resize."""
        sh, sw = self.height / height, self.width / width
        if self.keep_aspect_ratio:
            if abs(1 - sw) < abs(1 - sh):
                sh = sw
            else:
                sw = sh

        def constrain(v):
            x = round(v / self.multiple) * self.multiple
            return max(int(x), self.multiple)

        return constrain(sh * height), constrain(sw * width)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """(1, 3, h, w) float32 network input from an (H, W, 3) uint8 RGB image."""
        import cv2

        h, w = self.network_size(*rgb.shape[:2])
        interp = cv2.INTER_CUBIC if self.bicubic else cv2.INTER_LINEAR
        x = cv2.resize(rgb, (w, h), interpolation=interp).astype(np.float32) * np.float32(self.rescale)
        x -= np.asarray(self.mean, np.float32)
        x /= np.asarray(self.std, np.float32)
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def _check_rgb(rgb) -> np.ndarray:
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise InputError(f"depth model needs an HxWx3 uint8 RGB image, got {rgb.dtype} {rgb.shape}")
    if min(rgb.shape[:2]) < 2:
        raise InputError(f"color image {rgb.shape[1]}x{rgb.shape[0]} is too small for the depth model")
    return rgb


def _to_image_size(pred: np.ndarray, height: int, width: int) -> np.ndarray:
    """Network-resolution prediction -> (height, width) float32. Bilinear rather than bicubic (the HF
    post-processor's choice): it cannot overshoot below zero or ring at depth edges."""
    import cv2

    pred = np.asarray(pred, dtype=np.float32).reshape(pred.shape[-2:])
    if pred.shape != (height, width):
        pred = cv2.resize(pred, (width, height), interpolation=cv2.INTER_LINEAR)
    return pred


def predicts_metric(config) -> bool:
    """True when a transformers depth config's head predicts metric depth (metres), False for relative
    inverse depth (Depth Anything ``relative``, DPT/MiDaS)."""
    kind = getattr(config, "depth_estimation_type", None)
    if kind is not None:
        return kind == "metric"
    return getattr(config, "model_type", "") not in _RELATIVE_MODEL_TYPES


# ------------------------------------------------------------------------------------------- loading
def _load_torch(model: str, device: str = "cpu", dtype: str = "float32", input_size: int = 0):
    """(model, Preprocessing) on ``device``; offline-first, safetensors only."""
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    from spatial_vlm_ros.runtime.device import resolve_dtype
    from spatial_vlm_ros.runtime.loading import from_pretrained

    net = from_pretrained(AutoModelForDepthEstimation, model, part=PART, dtype=resolve_dtype(dtype, device))
    try:      # only the processor's settings are read; any failure (no config, a backend missing) -> defaults
        prep = Preprocessing.from_processor(from_pretrained(AutoImageProcessor, model, part=PART), input_size)
    except Exception as err:  # noqa: BLE001
        log.warning("depth model %s: no usable image-processor config (%s); using Depth Anything's "
                    "pre-processing", model, err)
        prep = Preprocessing(height=input_size or 518, width=input_size or 518)
    return net.to(device).eval(), prep


class _Wrapper:
    """``pixel_values -> predicted_depth`` module for ONNX export (built lazily: needs torch)."""

    @staticmethod
    def build(net):
        import torch

        class DepthWrapper(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.net = net

            def forward(self, pixel_values):
                return self.net(pixel_values=pixel_values).predicted_depth

        return DepthWrapper().eval()


class MonoDepthModel:
    """Depth from one RGB image. ``predict(rgb)`` -> (H, W) float32: metres for a metric model (``metric``),
    relative inverse depth otherwise. Built once (loading raises ``MissingModelError`` naming the fetch
    command); ``predict`` is not thread-safe."""

    def __init__(self, params: DepthModelParams | None = None):
        self.params = p = (params or DepthModelParams()).validate()
        self.backend = p.backend
        if p.backend == "torch":
            import torch

            from spatial_vlm_ros.runtime.device import resolve_device

            self._torch = torch
            self.device = resolve_device(p.device)
            self.net, self.prep = _load_torch(p.model, self.device, p.dtype, p.input_size)
            self.metric = predicts_metric(self.net.config)
            self.provider = f"torch:{self.device}"
            self._dtype = next(self.net.parameters()).dtype
            self._fixed_size: tuple[int, ...] | None = None
        else:
            self._open_onnx(Path(p.onnx_dir).expanduser())

    def _open_onnx(self, onnx_dir: Path) -> None:
        from spatial_vlm_ros.runtime.loading import MissingModelError
        from spatial_vlm_ros.runtime.providers import open_session

        path, meta_path = onnx_dir / ONNX_FILE, onnx_dir / ONNX_META
        if not path.is_file() or not meta_path.is_file():
            raise MissingModelError(f"depth ONNX directory {onnx_dir} has no {ONNX_FILE} and {ONNX_META}; export "
                                    f"it with `spatial_vlm export-onnx --part depth --model {self.params.model} "
                                    f"--out {onnx_dir}`")
        meta = json.loads(meta_path.read_text())
        self.prep = Preprocessing(**{**meta["preprocessing"], "mean": tuple(meta["preprocessing"]["mean"]),
                                     "std": tuple(meta["preprocessing"]["std"])})
        self.metric = bool(meta["metric"])
        self._fixed_size = tuple(meta["network_size"])
        self.session, self.provider, _ = open_session(
            path, device=self.params.device, fp16=self.params.fp16, threads=self.params.threads,
            cache_dir=self.params.trt_cache_dir or None)
        inp = self.session.get_inputs()[0]
        self._input_name = inp.name
        self._onnx_fp16 = "float16" in inp.type
        self.device = "onnx"

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        """Depth (metres; relative inverse depth for a relative model) of each pixel of ``rgb``."""
        rgb = _check_rgb(rgb)
        x = self.prep(rgb)
        if self._fixed_size is not None and tuple(x.shape[2:]) != self._fixed_size:
            (fh, fw), (h, w) = self._fixed_size, rgb.shape[:2]
            raise InputError(f"the depth ONNX graph was exported for a {fw}x{fh} network input but this {w}x{h} "
                             f"image needs {x.shape[3]}x{x.shape[2]}: re-export the depth model for {w}x{h} images")
        if self.backend == "torch":
            torch = self._torch
            with torch.inference_mode():
                t = torch.from_numpy(x).to(self.device, self._dtype)
                pred = self.net(pixel_values=t).predicted_depth[0].float().cpu().numpy()
        else:
            feed = x.astype(np.float16) if self._onnx_fp16 else x
            pred = self.session.run(None, {self._input_name: feed})[0][0].astype(np.float32)
        return _to_image_size(pred, *rgb.shape[:2])

    __call__ = predict


# ----------------------------------------------------------------------------- learned-part protocol
def tiny_config(seed: int = 0):
    """A tiny Depth Anything (DINOv2 backbone + DPT head) config; random weights: plumbing only."""
    from transformers import DepthAnythingConfig, Dinov2Config

    backbone = Dinov2Config(hidden_size=32, num_attention_heads=2, num_hidden_layers=4, intermediate_size=64,
                            image_size=56, patch_size=14, out_indices=[1, 2, 3, 4], reshape_hidden_states=False)
    # a wide initialiser, so that the random depth varies over the image (parity tests compare something)
    return DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32],
                               fusion_hidden_size=16, head_hidden_size=8, depth_estimation_type="metric",
                               max_depth=20, initializer_range=0.1)


def real_size_config():
    """Depth Anything V2 Metric Indoor Small at full size (24.8 M parameters): DINOv2 ViT-S/14 (384 wide,
    12 layers, 6 heads, features of layers 3/6/9/12), DPT head (neck 48/96/192/384, fusion 64, head 32),
    metric head with max depth 20 m; from the published hyper-parameters, no download."""
    from transformers import DepthAnythingConfig, Dinov2Config

    backbone = Dinov2Config(hidden_size=384, num_attention_heads=6, num_hidden_layers=12, mlp_ratio=4,
                            image_size=518, patch_size=14, out_indices=[3, 6, 9, 12], reshape_hidden_states=False)
    return DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=384,
                               neck_hidden_sizes=[48, 96, 192, 384], fusion_hidden_size=64, head_hidden_size=32,
                               depth_estimation_type="metric", max_depth=20)


def processor_for(size: int = 518):
    """The Depth Anything image processor (PIL backend: no torchvision) with a ``size`` px target."""
    from transformers.models.dpt.image_processing_pil_dpt import DPTImageProcessorPil

    return DPTImageProcessorPil(do_resize=True, size={"height": size, "width": size}, keep_aspect_ratio=True,
                                ensure_multiple_of=14, resample=3, do_rescale=True, rescale_factor=1 / 255,
                                do_normalize=True, image_mean=list(IMAGENET_MEAN), image_std=list(IMAGENET_STD),
                                do_pad=False)


def save_tiny_model(directory, seed: int = 0) -> Path:
    """A loadable tiny random Depth Anything directory (config, model.safetensors, preprocessor config with
    a 56 px input); plumbing only, its depth means nothing."""
    import torch
    from transformers import AutoModelForDepthEstimation

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    net = AutoModelForDepthEstimation.from_config(tiny_config(seed))
    net.save_pretrained(directory, safe_serialization=True)
    processor_for(56).save_pretrained(directory)
    return directory


def export_onnx(model: str, out_dir, fp16: bool = False, image_size: tuple[int, int] = (480, 640),
                input_size: int = 0) -> Path:
    """Export ``model`` (HF id or directory) to ``out_dir/model.onnx`` for color images of ``image_size``
    (height, width) px, with ``depth_onnx.json`` (pre-processing, network size, output kind).

    The graph has a fixed input size: DINOv2's position-embedding interpolation does not survive export with
    symbolic sizes, so a camera of another resolution needs its own export. ``fp16`` exports a float16 graph
    (for GPUs; TensorRT builds fp16 engines from either). Uses the TorchScript exporter (seconds; the dynamo
    exporter takes about a minute for the same static graph)."""
    import torch

    from spatial_vlm_ros.runtime.onnx_export import export_graph

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    net, prep = _load_torch(model, "cpu", "float32", input_size)
    if fp16:
        net = net.half()
    h, w = prep.network_size(*image_size)
    x = torch.zeros(1, 3, h, w, dtype=torch.float16 if fp16 else torch.float32)
    export_graph(_Wrapper.build(net), (x,), out_dir / ONNX_FILE, ["pixel_values"], ["predicted_depth"],
                 dynamic_axes={})
    meta = {"model": str(model), "image_size": list(image_size), "network_size": [h, w],
            "metric": predicts_metric(net.config), "fp16": bool(fp16), "preprocessing": asdict(prep)}
    (out_dir / ONNX_META).write_text(json.dumps(meta, indent=2))
    return out_dir


def check_onnx(model: str, onnx_dir, seed: int = 0) -> float:
    """Largest absolute difference (metres for a metric model) between the PyTorch (CPU, fp32) and the
    onnxruntime (CPU) depth of one smooth random image of the exported size."""
    import cv2

    meta = json.loads((Path(onnx_dir) / ONNX_META).read_text())
    h, w = meta["image_size"]
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.integers(0, 256, (max(h // 16, 2), max(w // 16, 2), 3), dtype=np.uint8), (w, h),
                     interpolation=cv2.INTER_LINEAR)
    size = meta["preprocessing"]["height"] if meta["preprocessing"]["height"] == meta["preprocessing"]["width"] else 0
    ref = MonoDepthModel(DepthModelParams(model=str(model), device="cpu", dtype="float32", input_size=size))
    onnx = MonoDepthModel(DepthModelParams(model=str(model), device="cpu", backend="onnx", onnx_dir=str(onnx_dir)))
    return float(np.max(np.abs(ref.predict(img) - onnx.predict(img))))
