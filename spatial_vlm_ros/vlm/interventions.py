"""The "Beyond Semantics" interventions (arXiv 2503.17349), applied without retraining.

VLMs treat vision tokens like a bag of words partly because the vision tokens that enter the language model
have far larger L2 norms than text-token embeddings. Two options, both off by default:

``vision_norm = "text_mean"``
    Every vision token leaving the projector (the vectors that replace the image placeholder tokens) is
    rescaled to the mean L2 norm of the language model's text-embedding rows (special tokens excluded).
    Directions are kept; text tokens are untouched.
``vision_layer = k``
    Vision features are taken from layer ``k`` of the vision tower instead of the family's default layer:
    ``k`` indexes the tower's hidden states (0 = patch embeddings, ``i`` = output of block ``i``, negative
    counts from the end as in Python). The projector (and, where the family has one, the tower's final
    norm) then maps these features as usual.

Families (``model.config.model_type``): llava (the feature layer is LLaVA's own ``vision_feature_layer``;
the projector is ``multi_modal_projector``), qwen2_vl / qwen2_5_vl (the tower's ``blocks`` are cut after
block ``k``; the projector is the patch ``merger``), idefics3 / smolvlm (encoder ``layers`` cut; projector
``connector``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spatial_vlm_ros.core.errors import InputError

VISION_NORM_MODES = ("off", "text_mean")


@dataclass(frozen=True)
class InterventionConfig:
    """Which interventions an engine applies (see the module doc)."""

    vision_norm: str = "off"
    vision_layer: int | None = None

    def validate(self) -> None:
        if self.vision_norm not in VISION_NORM_MODES:
            raise InputError(f"vision_norm must be one of {VISION_NORM_MODES}, got {self.vision_norm!r}")
        if self.vision_layer is not None and not isinstance(self.vision_layer, (int, np.integer)):
            raise InputError("vision_layer must be an integer or None")

    @property
    def active(self) -> bool:
        return self.vision_norm != "off" or self.vision_layer is not None


@dataclass(frozen=True)
class NormStats:
    """Mean and standard deviation of the L2 norms of a set of embedding vectors."""

    mean: float
    std: float


def text_norm_stats(embedding_weight, exclude_ids=()) -> NormStats:
    """Norm statistics of the text-embedding rows ``(vocab, hidden)`` (torch tensor or array).

    ``exclude_ids`` (e.g. the tokenizer's special and image-placeholder ids) are left out.
    """
    w = embedding_weight.detach().float().cpu().numpy() if hasattr(embedding_weight, "detach") \
        else np.asarray(embedding_weight, dtype=np.float32)
    keep = np.ones(w.shape[0], dtype=bool)
    ids = [i for i in exclude_ids if 0 <= int(i) < w.shape[0]]
    keep[ids] = False
    norms = np.linalg.norm(w[keep].astype(np.float64), axis=1)
    return NormStats(mean=float(norms.mean()), std=float(norms.std()))


def rescale_to_norm(tokens, target_norm: float):
    """Scale each vector on the last axis to L2 norm ``target_norm`` (numpy array or torch tensor).

    Computed in float32 at least and returned in the input dtype; zero vectors stay zero.
    """
    if isinstance(tokens, np.ndarray):
        t = tokens.astype(np.promote_types(tokens.dtype, np.float32))
        norms = np.linalg.norm(t, axis=-1, keepdims=True)
        return (t * (target_norm / np.maximum(norms, 1e-12))).astype(tokens.dtype)
    import torch

    t = tokens.to(torch.promote_types(tokens.dtype, torch.float32))
    norms = torch.linalg.vector_norm(t, dim=-1, keepdim=True).clamp_min(1e-12)
    return (t * (target_norm / norms)).to(tokens.dtype)


def resolve_layer(layer: int, n_blocks: int) -> int:
    """Hidden-state index ``layer`` (negative from the end) -> number of blocks to run, in [0, n_blocks]."""
    k = layer + n_blocks + 1 if layer < 0 else layer
    if not 0 <= k <= n_blocks:
        raise InputError(f"vision_layer {layer} is outside the vision tower's {n_blocks} blocks "
                         f"(valid: {-n_blocks - 1}..{n_blocks})")
    return k


@dataclass(frozen=True)
class _Family:
    projector: str        # attribute path of the module whose output enters the language model
    blocks: str | None    # attribute path of the vision tower's block list (None: use the config field)


_FAMILIES = {
    "llava": _Family("model.multi_modal_projector", None),
    "qwen2_vl": _Family("model.visual.merger", "model.visual.blocks"),
    "qwen2_5_vl": _Family("model.visual.merger", "model.visual.blocks"),
    "idefics3": _Family("model.connector", "model.vision_model.encoder.layers"),
    "smolvlm": _Family("model.connector", "model.vision_model.encoder.layers"),
}
SUPPORTED_FAMILIES = tuple(_FAMILIES)


def _get(obj, path: str):
    for name in path.split("."):
        obj = getattr(obj, name)
    return obj


def _set(obj, path: str, value) -> None:
    head, _, last = path.rpartition(".")
    setattr(_get(obj, head) if head else obj, last, value)


def llava_vision_blocks(model) -> int:
    """Number of blocks of a LLaVA model's vision tower."""
    return int(model.config.vision_config.num_hidden_layers)


def apply_interventions(model, config: InterventionConfig, exclude_ids=()) -> dict:
    """Apply ``config`` to a loaded Hugging Face VLM in place; returns what was done (for logs).

    ``exclude_ids``: token ids left out of the text-norm statistics (special tokens). Raises InputError for
    a family without support or an out-of-range layer.
    """
    config.validate()
    done: dict = {}
    if not config.active:
        return done
    family_name = getattr(model.config, "model_type", "")
    family = _FAMILIES.get(family_name)
    if family is None:
        raise InputError(f"interventions are not supported for model type {family_name!r}; "
                         f"supported: {', '.join(SUPPORTED_FAMILIES)}")
    if config.vision_layer is not None:
        if family.blocks is None:   # llava: native vision_feature_layer
            k = resolve_layer(int(config.vision_layer), llava_vision_blocks(model))
            model.config.vision_feature_layer = k
            model.model.config.vision_feature_layer = k
        else:
            import torch

            blocks = _get(model, family.blocks)
            k = resolve_layer(int(config.vision_layer), len(blocks))
            _set(model, family.blocks, torch.nn.ModuleList(list(blocks)[:k]))
        done["vision_layer"] = k
    if config.vision_norm == "text_mean":
        stats = text_norm_stats(model.get_input_embeddings().weight, exclude_ids)
        projector = _get(model, family.projector)
        projector.register_forward_hook(lambda _m, _i, out: rescale_to_norm(out, stats.mean))
        done["vision_norm"] = stats
    return done
