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

from functools import partial
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
    from transformers import (
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        Qwen2Config,
        SiglipImageProcessorPil,
        SiglipVisionConfig,
    )

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


#: Qwen-VL families: (config class, model class) names in ``transformers``.
QWEN_VL_CLASSES = {
    "qwen2_vl": ("Qwen2VLConfig", "Qwen2VLForConditionalGeneration"),
    "qwen2_5_vl": ("Qwen2_5_VLConfig", "Qwen2_5_VLForConditionalGeneration"),
    "qwen3_vl": ("Qwen3VLConfig", "Qwen3VLForConditionalGeneration"),
}
_QWEN_SPECIALS = ["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]


def _qwen_vision_config(family: str, hidden_size: int, heads: int, layers: int, initializer_range: float) -> dict:
    """Vision-tower config of a tiny ``family`` model: patch 14 (Qwen3-VL: 16), 2 x 2 merge, output width
    ``hidden_size``. Qwen2.5-VL gets 56 px windows (2 x 2 merged tokens) with the last block full attention;
    Qwen3-VL a 4 x 4 learned position grid and deepstack features from blocks 0 and 1."""
    common = dict(depth=layers, num_heads=heads, spatial_merge_size=2, temporal_patch_size=2, in_channels=3,
                  initializer_range=initializer_range)
    if family == "qwen2_vl":
        return dict(common, embed_dim=hidden_size, hidden_size=hidden_size, mlp_ratio=2, patch_size=14)
    sized = dict(common, hidden_size=hidden_size, intermediate_size=2 * hidden_size, out_hidden_size=hidden_size)
    if family == "qwen2_5_vl":
        return dict(sized, patch_size=14, window_size=56, fullatt_block_indexes=[layers - 1])
    return dict(sized, patch_size=16, num_position_embeddings=16, deepstack_visual_indexes=[0, 1])


def tiny_qwen_vl(family: str = "qwen2_vl", seed: int = 0, hidden_size: int = 64, num_layers: int = 2,
                 vision_layers: int = 3, initializer_range: float = 0.2, max_image_tokens: int = 24):
    """A Qwen2-VL / Qwen2.5-VL / Qwen3-VL model (ViT with 2 x 2 patch merger + decoder with M-RoPE) with
    random weights, and its image-only processor
    (:func:`~spatial_vlm_ros.vlm.qwen_vl_processor.qwen_vl_processor`, PIL image processor, no torchvision).
    The processor resizes each image to a multiple of 28 px (Qwen3-VL: 32 px) with at most
    ``max_image_tokens`` image tokens (merged patches) and at least 4.
    """
    import transformers

    from spatial_vlm_ros.vlm.qwen_vl_processor import qwen_vl_processor

    if family not in QWEN_VL_CLASSES:
        raise InputError(f"unknown tiny Qwen-VL family {family!r}; known: {sorted(QWEN_VL_CLASSES)}")
    config_cls, model_cls = (getattr(transformers, name) for name in QWEN_VL_CLASSES[family])
    tokenizer = byte_level_tokenizer(_QWEN_SPECIALS,
                                     image_placeholder="<|vision_start|><|image_pad|><|vision_end|>")
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in _QWEN_SPECIALS}
    heads = 4
    head_dim = hidden_size // heads
    rope_t = head_dim // 2 // 4
    rope = {"rope_type": "default", "rope_theta": 10000.0,
            "mrope_section": [rope_t, (head_dim // 2 - rope_t) // 2,
                              head_dim // 2 - rope_t - (head_dim // 2 - rope_t) // 2]}
    if family == "qwen3_vl":
        rope = dict(rope, mrope_section=[head_dim // 4, head_dim // 8, head_dim // 8], mrope_interleaved=True)
    text = dict(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers, num_attention_heads=heads, num_key_value_heads=2, head_dim=head_dim,
        max_position_embeddings=4096, initializer_range=initializer_range, rope_parameters=rope,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=None,
        tie_word_embeddings=False,
    )
    vision = _qwen_vision_config(family, hidden_size, heads, vision_layers, initializer_range)
    config = config_cls(
        text_config=text, vision_config=vision, image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    config.initializer_range = initializer_range
    _seeded(seed)
    model = model_cls(config).eval()
    _set_generation_defaults(model, tokenizer)
    factor = vision["patch_size"] * 2
    processor = qwen_vl_processor(tokenizer, patch_size=vision["patch_size"], min_pixels=4 * factor ** 2,
                                  max_pixels=max_image_tokens * factor ** 2, chat_template=tokenizer.chat_template)
    return model, processor


def tiny_qwen2_vl(seed: int = 0, hidden_size: int = 64, num_layers: int = 2, vision_layers: int = 3,
                  initializer_range: float = 0.2):
    """The tiny Qwen2-VL of :func:`tiny_qwen_vl` as ``(model, tokenizer)``, for callers that build
    ``pixel_values``/``image_grid_thw`` themselves with :func:`qwen2_vl_pixel_inputs` (56 x 56 px images,
    4 image tokens each)."""
    model, processor = tiny_qwen_vl("qwen2_vl", seed=seed, hidden_size=hidden_size, num_layers=num_layers,
                                    vision_layers=vision_layers, initializer_range=initializer_range)
    return model, processor.tokenizer


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


TINY_BUILDERS = {"llava": tiny_llava,
                 **{family: partial(tiny_qwen_vl, family) for family in QWEN_VL_CLASSES}}


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


# -- Idefics3 / SmolVLM -------------------------------------------------------------------------------------
#: Special tokens of the Idefics3 / SmolVLM prompts: tile separators, the image placeholder, the global-image
#: tag and the ``<row_r_col_c>`` tile tags (up to 6 x 6 tiles).
IDEFICS3_SPECIALS = (["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"]
                     + [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)])


def tiny_idefics3(seed: int = 0, family: str = "idefics3", hidden_size: int = 64, num_layers: int = 2,
                  vision_hidden_size: int = 32, vision_layers: int = 2, tile_size: int = 32, patch_size: int = 8,
                  longest_edge: int = 64, initializer_range: float = 0.2):
    """An Idefics3 or SmolVLM (``family="smolvlm"``, the SmolVLM2 layout) model with random weights.

    SigLIP-style tower on square tiles of ``tile_size`` px, pixel-shuffle connector (scale 2), Llama
    decoder. The processor resizes the longest image edge to ``longest_edge`` px and splits it into
    ``tile_size`` tiles plus a global tile, so images of different aspect ratios give different tile counts
    (each tile ``(tile_size // patch_size) ** 2 / 4`` image tokens). The processor is ``Idefics3Processor``
    with the family's PIL image processor for both families (SmolVLM's own processor needs a torchvision
    video processor; see :func:`spatial_vlm_ros.vlm.engine.load_processor`).
    """
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessorPil,
        Idefics3Processor,
        LlamaConfig,
        SmolVLMConfig,
        SmolVLMForConditionalGeneration,
        SmolVLMImageProcessorPil,
    )

    classes = {"idefics3": (Idefics3Config, Idefics3ForConditionalGeneration, Idefics3ImageProcessorPil),
               "smolvlm": (SmolVLMConfig, SmolVLMForConditionalGeneration, SmolVLMImageProcessorPil)}
    if family not in classes:
        raise InputError(f"unknown tiny Idefics3 family {family!r}; known: {sorted(classes)}")
    config_cls, model_cls, image_processor_cls = classes[family]
    tokenizer = byte_level_tokenizer(IDEFICS3_SPECIALS, image_placeholder="<image>")
    scale = 2
    text = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=4096, initializer_range=initializer_range, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id, bos_token_id=None, tie_word_embeddings=False,
    )
    vision = dict(hidden_size=vision_hidden_size, intermediate_size=2 * vision_hidden_size,
                  num_hidden_layers=vision_layers, num_attention_heads=4, image_size=tile_size,
                  patch_size=patch_size, initializer_range=initializer_range)
    config = config_cls(vision_config=vision, text_config=text.to_dict(), scale_factor=scale,
                        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
                        pad_token_id=tokenizer.pad_token_id)
    config.initializer_range = initializer_range
    _seeded(seed)
    model = model_cls(config).eval()
    image_processor = image_processor_cls(size={"longest_edge": longest_edge},
                                          max_image_size={"longest_edge": tile_size})
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=tokenizer,
                                  image_seq_len=(tile_size // patch_size) ** 2 // scale ** 2,
                                  chat_template=tokenizer.chat_template)
    _set_generation_defaults(model, tokenizer)
    return model, processor


TINY_BUILDERS.update(idefics3=tiny_idefics3, smolvlm=partial(tiny_idefics3, family="smolvlm"))
