"""The LoRA fine-tuning run's configuration: a YAML file of four sections, checked strictly.

Unknown keys, wrong types and out-of-range values raise :class:`InputError` naming the key, so a typo never
silently falls back to a default. See ``config/lora.yaml`` for a commented example and
``docs/fine_tuning.md`` for the meaning of each setting.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spatial_vlm_ros.core.errors import InputError

#: Language-model linear layers LoRA adapts by default (leaf module names), per ``config.model_type``:
#: attention and MLP projections of Llama/Qwen2/Mistral-style decoders, which every listed family uses.
LLAMA_STYLE_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DEFAULT_TARGETS = {family: LLAMA_STYLE_TARGETS for family in (
    "llava", "llava_next", "llava_onevision", "qwen2_vl", "qwen2_5_vl", "qwen3_vl", "idefics3", "smolvlm",
    "paligemma", "gemma3", "mistral3", "internvl", "mllama", "aya_vision")}
DEFAULT_TARGETS.update(phi3_v=("qkv_proj", "o_proj", "gate_up_proj", "down_proj"),
                       phi4_multimodal=("qkv_proj", "o_proj", "gate_up_proj", "down_proj"))

DEVICES = ("auto", "cpu", "cuda")
TRAIN_DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class DataConfig:
    """Where the rows come from and how they are split.

    ``train``: dataset directories (``save_to_disk`` layout, the issue-11 schema), concatenated.
    ``eval``: separate evaluation directories; when empty the eval rows are split off ``train`` by
    ``split_column``/``eval_values`` (rows whose column value is listed, e.g. ``source``) if set, else by
    ``eval_fraction`` of the ``sample_id`` hash. ``max_train_rows``/``max_eval_rows``: caps (0 = all) taken
    after the split, in dataset order.
    """

    train: list[str] = field(default_factory=list)
    eval: list[str] = field(default_factory=list)
    eval_fraction: float = 0.05
    split_column: str = ""
    eval_values: list[str] = field(default_factory=list)
    max_train_rows: int = 0
    max_eval_rows: int = 256
    max_length: int = 0                      # tokens per row incl. image tokens; 0 = no limit


@dataclass
class AdapterConfig:
    """The LoRA adapters (``peft.LoraConfig``).

    ``target_modules``: leaf names of the language-model linear layers to adapt; empty = the family default
    (:data:`DEFAULT_TARGETS`). ``train_vision``: also adapt every linear layer of the vision tower (frozen
    otherwise). ``modules_to_save``: module names trained in full and saved with the adapter (e.g.
    ``multi_modal_projector`` for LLaVA).
    """

    r: int = 16
    alpha: float = 32.0
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=list)
    train_vision: bool = False
    modules_to_save: list[str] = field(default_factory=list)


@dataclass
class TrainConfig:
    """The optimisation: AdamW with linear warm-up then linear decay to zero at the last step.

    ``max_steps`` > 0 fixes the number of optimizer steps (else ``epochs`` passes over the train rows).
    A step is ``grad_accum`` micro-batches of ``batch_size`` rows; the loss is the mean over all answer tokens
    of the step. ``eval_every``/``save_every``/``log_every`` count optimizer steps (0 = only at the end).
    ``eval_generate_rows`` eval rows are answered by greedy decoding for the exact-match score.
    ``device``: auto (CUDA when present) | cpu | cuda | cuda:N. ``dtype``: auto (bfloat16 on CUDA where
    supported, float16 on other CUDA devices, float32 on the CPU) | float32 | bfloat16 | float16 (with loss
    scaling); adapters are kept in float32.
    """

    lr: float = 2e-4
    weight_decay: float = 0.0
    epochs: float = 1.0
    max_steps: int = 0
    batch_size: int = 4
    grad_accum: int = 1
    warmup_steps: int = 0
    max_grad_norm: float = 1.0
    eval_every: int = 100
    eval_generate_rows: int = 16
    max_new_tokens: int = 32
    save_every: int = 200
    keep_checkpoints: int = 2
    log_every: int = 10
    seed: int = 0
    device: str = "auto"
    dtype: str = "auto"
    gradient_checkpointing: bool = False


@dataclass
class RunConfig:
    """A whole run: the base ``model`` (hub id or local safetensors directory; hub ids resolve from the
    local cache unless ``allow_download``), the ``output_dir`` (adapter, checkpoints, ``log.jsonl``) and the
    sections."""

    model: str = ""
    output_dir: str = ""
    allow_download: bool = False
    data: DataConfig = field(default_factory=DataConfig)
    lora: AdapterConfig = field(default_factory=AdapterConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_SECTIONS = {"data": DataConfig, "lora": AdapterConfig, "train": TrainConfig}


def _as_bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"{where} must be true or false, got {value!r}")
    return value


def _as_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{where} must be an integer, got {value!r}")
    return value


def _as_float(value: Any, where: str) -> float:
    if isinstance(value, str):              # YAML 1.1 reads 2e-4 (no decimal point) as a string
        try:
            return float(value)
        except ValueError:
            raise InputError(f"{where} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{where} must be a number, got {value!r}")
    return float(value)


def _as_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (str, int, float)):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) for v in value):
        raise InputError(f"{where} must be a list of strings, got {value!r}")
    return [str(v) for v in value]


def _as_str(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InputError(f"{where} must be a string, got {value!r}")
    return value


#: Checkers by the type of a field's default (bool before int: a bool is an int in Python).
_CHECKERS = ((bool, _as_bool), (int, _as_int), (float, _as_float), (list, _as_list), (str, _as_str))


def _coerce(value: Any, default: Any, where: str):
    """``value`` checked against the type of the field's ``default`` (ints accepted for floats, a string for
    a list of strings)."""
    checker = next(fn for kind, fn in _CHECKERS if isinstance(default, kind))
    return checker(value, where)


def _section(cls, values: Any, name: str):
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise InputError(f"config section {name!r} must be a mapping, got {type(values).__name__}")
    defaults = cls()
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise InputError(f"unknown key(s) in config section {name!r}: {', '.join(map(str, unknown))}; "
                         f"known: {', '.join(sorted(known))}")
    return cls(**{k: _coerce(v, getattr(defaults, k), f"{name}.{k}") for k, v in values.items()})


def config_from_dict(values: dict, base_dir: str | Path | None = None) -> RunConfig:
    """A checked :class:`RunConfig` from a parsed YAML mapping. Relative data/output paths are taken
    relative to ``base_dir`` (the config file's folder) when given. Raises InputError on any problem."""
    if not isinstance(values, dict):
        raise InputError(f"a LoRA config must be a mapping of sections, got {type(values).__name__}")
    top = {"model", "output_dir", "allow_download", *_SECTIONS}
    unknown = sorted(set(values) - top)
    if unknown:
        raise InputError(f"unknown key(s) in the LoRA config: {', '.join(map(str, unknown))}; "
                         f"known: {', '.join(sorted(top))}")
    defaults = RunConfig()
    scalars = {k: _coerce(values[k], getattr(defaults, k), k) for k in ("model", "output_dir", "allow_download")
               if k in values}
    cfg = RunConfig(**scalars, **{name: _section(cls, values.get(name), name) for name, cls in _SECTIONS.items()})
    if base_dir is not None:
        cfg = _relative_to(cfg, Path(base_dir))
    validate(cfg)
    return cfg


def _relative_to(cfg: RunConfig, base: Path) -> RunConfig:
    def fix(p: str) -> str:
        path = Path(p).expanduser()
        return os.path.normpath(path if path.is_absolute() else base / path)

    cfg.data.train = [fix(p) for p in cfg.data.train]
    cfg.data.eval = [fix(p) for p in cfg.data.eval]
    if cfg.output_dir:
        cfg.output_dir = fix(cfg.output_dir)
    if cfg.model.startswith(("./", "../")):
        cfg.model = fix(cfg.model)
    return cfg


def load_config(path: str | Path, overrides: dict | None = None) -> RunConfig:
    """Read and check a YAML run config. ``overrides``: ``{"train.max_steps": 10, ...}`` applied before
    checking. Relative paths in the file are relative to the file's folder."""
    import yaml

    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"LoRA config file {path} does not exist")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise InputError(f"LoRA config {path} is not valid YAML: {str(err).splitlines()[0]}") from None
    for key, value in (overrides or {}).items():
        section, _, name = key.rpartition(".")
        target = values.setdefault(section, {}) if section else values
        if not isinstance(target, dict):
            raise InputError(f"config section {section!r} must be a mapping")
        target[name] = value
    return config_from_dict(values, base_dir=path.parent)


def validate(cfg: RunConfig) -> None:
    """Raise InputError unless ``cfg`` describes a runnable fine-tuning (data directories exist, numbers in
    range)."""
    if not cfg.model.strip():
        raise InputError("no base model configured: set 'model' to a hub id or a local model directory")
    if not cfg.output_dir.strip():
        raise InputError("no output_dir configured")
    if not cfg.data.train:
        raise InputError("no training data: set data.train to one or more dataset directories")
    for d in cfg.data.train + cfg.data.eval:
        if not Path(d).is_dir():
            raise InputError(f"dataset directory {d} does not exist")
    d, a, t = cfg.data, cfg.lora, cfg.train
    checks = [
        (0.0 <= d.eval_fraction < 1.0, f"data.eval_fraction must be in [0, 1), got {d.eval_fraction}"),
        (d.max_train_rows >= 0 and d.max_eval_rows >= 0, "data.max_train_rows and max_eval_rows must be >= 0"),
        (d.max_length >= 0, f"data.max_length must be >= 0, got {d.max_length}"),
        (not d.eval_values or d.split_column, "data.eval_values needs data.split_column"),
        (a.r >= 1, f"lora.r must be >= 1, got {a.r}"),
        (a.alpha > 0, f"lora.alpha must be > 0, got {a.alpha}"),
        (0.0 <= a.dropout < 1.0, f"lora.dropout must be in [0, 1), got {a.dropout}"),
        (t.lr > 0, f"train.lr must be > 0, got {t.lr}"),
        (t.weight_decay >= 0, f"train.weight_decay must be >= 0, got {t.weight_decay}"),
        (t.max_steps > 0 or t.epochs > 0, "set train.max_steps > 0 or train.epochs > 0"),
        (t.max_steps >= 0, f"train.max_steps must be >= 0, got {t.max_steps}"),
        (t.batch_size >= 1, f"train.batch_size must be >= 1, got {t.batch_size}"),
        (t.grad_accum >= 1, f"train.grad_accum must be >= 1, got {t.grad_accum}"),
        (t.warmup_steps >= 0, f"train.warmup_steps must be >= 0, got {t.warmup_steps}"),
        (t.max_grad_norm >= 0, f"train.max_grad_norm must be >= 0 (0 = no clipping), got {t.max_grad_norm}"),
        (min(t.eval_every, t.save_every, t.log_every) >= 0, "train.eval_every/save_every/log_every must be >= 0"),
        (t.eval_generate_rows >= 0, "train.eval_generate_rows must be >= 0"),
        (t.max_new_tokens >= 1, f"train.max_new_tokens must be >= 1, got {t.max_new_tokens}"),
        (t.keep_checkpoints >= 1, f"train.keep_checkpoints must be >= 1, got {t.keep_checkpoints}"),
        (t.device in DEVICES or t.device.startswith("cuda:"),
         f"train.device must be one of {', '.join(DEVICES)} or cuda:N, got {t.device!r}"),
        (t.dtype in TRAIN_DTYPES, f"train.dtype must be one of {', '.join(TRAIN_DTYPES)}, got {t.dtype!r}"),
    ]
    for ok, message in checks:
        if not ok:
            raise InputError(message)
