"""Tiny randomly initialised vision-language models built from ``transformers`` configs.

They exist so that tests and benchmarks can run the real loading, generation, export and onnxruntime code
without downloading anything. Their weights are random: their answers are meaningless text, but every
number they produce comes from a real forward pass (nothing here fakes an output).

Each builder returns a ``(model, processor)`` pair; :func:`save_tiny_model` writes both to a directory in
the same layout as a Hugging Face checkpoint (``config.json``, ``model.safetensors``, processor and
tokenizer files), which the engines then load like any local model path.

The tokenizer is byte-level (256 byte tokens plus a few special tokens, no merges), so it encodes any text
offline. The chat template is ChatML-like.
"""
from __future__ import annotations

from pathlib import Path

import torch

from spatial_vlm_ros.core.errors import InputError

#: ChatML-like template shared by the tiny processors; images are placed before the text of a turn.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}{{ image_placeholder }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_COMMON_SPECIALS = ["<pad>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def byte_level_tokenizer(extra_special_tokens: list[str], image_placeholder: str):
    """A ``PreTrainedTokenizerFast`` over raw bytes plus ``_COMMON_SPECIALS`` and ``extra_special_tokens``.

    ``image_placeholder`` is the text the chat template writes for an image part.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    byte_to_unicode = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(byte_to_unicode))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    specials = _COMMON_SPECIALS + list(extra_special_tokens)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<|im_end|>", bos_token=None, unk_token=None,
        additional_special_tokens=specials[2:],
    )
    fast.add_special_tokens({"pad_token": "<pad>", "additional_special_tokens": specials[1:]})
    fast.chat_template = CHAT_TEMPLATE.replace("{{ image_placeholder }}", image_placeholder)
    fast.padding_side = "left"
    return fast


def _seeded(seed: int):
    torch.manual_seed(seed)


def tiny_llava(seed: int = 0, hidden_size: int = 64, num_layers: int = 2, vision_layers: int = 3,
               image_size: int = 32, patch_size: int = 8, vocab_pad: int = 0, initializer_range: float = 0.2,
               vision_feature_layer: int = -1, intermediate_size: int | None = None,
               num_attention_heads: int = 4, num_key_value_heads: int = 2, variant: str = "clip_llama"):
    """A LLaVA model (vision tower + 2-layer MLP projector + decoder) with random weights.

    ``variant``: "clip_llama" (LLaVA-1.5 layout: CLIP tower with a CLS token, Llama decoder) or
    "siglip_qwen2" (llava-interleave / LLaVA-OneVision-like: SigLIP tower without CLS, Qwen2 decoder).
    ``image_size``/``patch_size`` (pixels) give ``(image_size // patch_size) ** 2`` image tokens per image.
    A large ``initializer_range`` spreads the logits so that greedy decoding is not decided by rounding.
    """
    from transformers import (CLIPImageProcessorPil, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor, Qwen2Config,
                              SiglipImageProcessorPil, SiglipVisionConfig)

    if variant not in ("clip_llama", "siglip_qwen2"):
        raise InputError(f"unknown tiny LLaVA variant {variant!r}")
    siglip = variant == "siglip_qwen2"

    tokenizer = byte_level_tokenizer(["<image>"], image_placeholder="<image>")
    vocab_size = len(tokenizer) + vocab_pad
    inter = intermediate_size or 2 * hidden_size
    vision_kwargs = dict(hidden_size=hidden_size, intermediate_size=inter, num_hidden_layers=vision_layers,
                         num_attention_heads=num_attention_heads, image_size=image_size, patch_size=patch_size)
    vision = SiglipVisionConfig(**vision_kwargs) if siglip else \
        CLIPVisionConfig(**vision_kwargs, projection_dim=hidden_size, initializer_range=initializer_range)
    text = (Qwen2Config if siglip else LlamaConfig)(
        vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=inter,
        num_hidden_layers=num_layers, num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads, max_position_embeddings=4096,
        initializer_range=initializer_range, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=None, tie_word_embeddings=False,
    )
    config = LlavaConfig(
        vision_config=vision, text_config=text, image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=vision_feature_layer,
        vision_feature_select_strategy="full" if siglip else "default", projector_hidden_act="gelu",
    )
    config.initializer_range = initializer_range
    _seeded(seed)
    model = LlavaForConditionalGeneration(config).eval()
    if siglip:
        image_processor = SiglipImageProcessorPil(size={"height": image_size, "width": image_size})
    else:
        image_processor = CLIPImageProcessorPil(
            size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size})
    processor = LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=patch_size,
        vision_feature_select_strategy=config.vision_feature_select_strategy,
        num_additional_image_tokens=0 if siglip else 1, chat_template=tokenizer.chat_template,
    )
    _set_generation_defaults(model, tokenizer)
    return model, processor


def tiny_qwen2_vl(seed: int = 0, hidden_size: int = 64, num_layers: int = 2, vision_layers: int = 3,
                  image_size: int = 56, initializer_range: float = 0.2):
    """A Qwen2-VL model (ViT with 2x2 patch merger + Qwen2 decoder with M-RoPE) with random weights.

    Returns ``(model, tokenizer)``: ``Qwen2VLProcessor`` needs a video processor, which needs torchvision
    (not a dependency here), so callers build ``pixel_values``/``image_grid_thw`` with
    :func:`qwen2_vl_pixel_inputs`. Each image of ``image_size`` x ``image_size`` pixels (a multiple of 28 =
    patch 14 x merge 2) gives ``(image_size // 28) ** 2`` image tokens.
    """
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    if image_size % 28:
        raise InputError("tiny_qwen2_vl: image_size must be a multiple of 28 pixels")
    specials = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    tokenizer = byte_level_tokenizer(specials, image_placeholder="<|vision_start|><|image_pad|><|vision_end|>")
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in specials}
    heads = 4
    head_dim = hidden_size // heads
    rope_t = head_dim // 2 // 4
    text = dict(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers, num_attention_heads=heads, num_key_value_heads=2,
        max_position_embeddings=4096, initializer_range=initializer_range,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                         "mrope_section": [rope_t, (head_dim // 2 - rope_t) // 2,
                                           head_dim // 2 - rope_t - (head_dim // 2 - rope_t) // 2]},
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=None,
        tie_word_embeddings=False,
    )
    vision = dict(depth=vision_layers, embed_dim=hidden_size, hidden_size=hidden_size, num_heads=heads,
                  mlp_ratio=2, patch_size=14, spatial_merge_size=2, temporal_patch_size=2, in_channels=3,
                  initializer_range=initializer_range)
    config = Qwen2VLConfig(
        text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    config.initializer_range = initializer_range
    _seeded(seed)
    model = Qwen2VLForConditionalGeneration(config).eval()
    _set_generation_defaults(model, tokenizer)
    return model, tokenizer


def qwen2_vl_pixel_inputs(model, images, seed: int = 0):
    """Random-image inputs for :func:`tiny_qwen2_vl`: ``(pixel_values, image_grid_thw, tokens_per_image)``.

    ``images`` is the number of square images, each ``grid`` x ``grid`` patches where ``grid`` is taken from
    the model's default ``image_size`` of 56 px (4 x 4 patches of 14 px, 2 x 2 merged -> 4 tokens).
    """
    vc = model.config.vision_config
    grid = 4
    gen = torch.Generator().manual_seed(seed)
    patch_dim = vc.in_channels * vc.temporal_patch_size * vc.patch_size ** 2
    pixel_values = torch.randn(images * grid * grid, patch_dim, generator=gen)
    grid_thw = torch.tensor([[1, grid, grid]] * images)
    return pixel_values, grid_thw, grid * grid // vc.spatial_merge_size ** 2


TINY_BUILDERS = {"llava": tiny_llava}   # families with a processor that needs no extra dependency


def _set_generation_defaults(model, tokenizer) -> None:
    gen = model.generation_config
    gen.do_sample = False
    gen.eos_token_id = tokenizer.eos_token_id
    gen.pad_token_id = tokenizer.pad_token_id
    gen.bos_token_id = None


def save_tiny_model(directory: str | Path, family: str = "llava", **kwargs) -> Path:
    """Build a tiny ``family`` model and write it (safetensors) with its processor to ``directory``."""
    if family not in TINY_BUILDERS:
        raise InputError(f"unknown tiny model family {family!r}; known: {sorted(TINY_BUILDERS)}")
    model, processor = TINY_BUILDERS[family](**kwargs)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory, safe_serialization=True)
    processor.save_pretrained(directory)
    return directory
