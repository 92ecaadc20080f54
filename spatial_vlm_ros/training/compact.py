"""The compact spatial VLM: a small LLaVA (CLIP-style vision tower + 2-layer MLP projector + Llama decoder)
built from ``transformers`` configs, with a byte-level BPE tokenizer trained on the template text.

The tokenizer starts from the 256 byte symbols (any text encodes) and learns merges on the training
questions and answers, so the template vocabulary ("left", " cylinder", " centimeters") becomes single
tokens; digits are always split one by one (numbers are spelled digit by digit). Its chat template is the
ChatML-like one of :mod:`spatial_vlm_ros.vlm.tiny_models` with ``<image>`` as the image placeholder.

Images are resized (no crop) to ``image_size`` x ``image_size`` pixels; the tower cuts them into
``patch_size`` patches, giving ``(image_size // patch_size) ** 2`` image tokens (the CLS token is dropped,
LLaVA's "default" feature strategy).

:func:`save_compact` writes a normal transformers directory (``config.json``, ``model.safetensors``,
``generation_config.json``, processor, tokenizer and chat template) that
:class:`~spatial_vlm_ros.vlm.transformers_engine.TransformersEngine` and
:mod:`spatial_vlm_ros.vlm.onnx_export` (family llava) load unchanged.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from spatial_vlm_ros.core.errors import InputError

IMAGE_TOKEN = "<image>"
SPECIAL_TOKENS = ["<pad>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", IMAGE_TOKEN]


@dataclass(frozen=True)
class CompactConfig:
    """Architecture of the compact model (the ``model:`` section of a preset).

    ``image_size``/``patch_size`` in pixels; ``vocab_size`` is the BPE tokenizer's target size (bytes,
    specials and merges); the other fields are the transformers config fields of the same meaning.
    """

    image_size: int = 64
    patch_size: int = 8
    vision_hidden: int = 128
    vision_layers: int = 4
    vision_heads: int = 4
    vision_intermediate: int = 512
    hidden: int = 192
    layers: int = 4
    heads: int = 6
    kv_heads: int = 2
    intermediate: int = 512
    vocab_size: int = 768
    max_positions: int = 512
    initializer_range: float = 0.02
    vision_feature_layer: int = -1
    position_init: str = "sincos"
    question_first: bool = False

    @classmethod
    def from_dict(cls, data: dict | None) -> CompactConfig:
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"unknown compact model keys: {unknown}; known: {sorted(known)}")
        config = cls(**data)
        config.validate()
        return config

    def validate(self) -> None:
        ints = {f.name: getattr(self, f.name) for f in fields(self) if f.type in ("int", int)}
        for name, value in ints.items():
            if name != "vision_feature_layer" and (not isinstance(value, int) or value < 1):
                raise InputError(f"compact model {name} must be a positive integer, got {value!r}")
        if not isinstance(self.question_first, bool):
            raise InputError(f"question_first must be true or false, got {self.question_first!r}")
        if self.position_init not in ("sincos", "random"):
            raise InputError(f"position_init must be sincos or random, got {self.position_init!r}")
        if self.image_size % self.patch_size:
            raise InputError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if self.hidden % self.heads or self.heads % self.kv_heads:
            raise InputError(f"hidden {self.hidden} must divide into heads {self.heads}, "
                             f"and heads into kv_heads {self.kv_heads}")
        if self.vision_hidden % self.vision_heads:
            raise InputError(f"vision_hidden {self.vision_hidden} must divide into vision_heads {self.vision_heads}")
        if self.vocab_size < 256 + len(SPECIAL_TOKENS):
            raise InputError(f"vocab_size must be at least {256 + len(SPECIAL_TOKENS)} (bytes + specials)")

    @property
    def image_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    def to_dict(self) -> dict:
        return asdict(self)


#: The chat template with the user's text before the image (``CompactConfig.question_first``): the image
#: tokens come after the question, so in the causal decoder every image token can attend to the question's
#: object names ("the red box", "the blue cylinder") and mark itself as belonging to one of them.
QUESTION_FIRST_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}\n" + IMAGE_TOKEN
    + "{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def chat_template(question_first: bool = False) -> str:
    """The compact model's chat template: ChatML-like, the image placeholder ``<image>`` before the user's text
    (LLaVA's order) or, with ``question_first``, after it."""
    from spatial_vlm_ros.vlm.tiny_models import CHAT_TEMPLATE

    return QUESTION_FIRST_TEMPLATE if question_first else CHAT_TEMPLATE.replace("{{ image_placeholder }}",
                                                                                IMAGE_TOKEN)


def train_tokenizer(texts: Iterable[str], vocab_size: int):
    """A byte-level BPE ``PreTrainedTokenizerFast`` learned on ``texts`` (sorted unique, so the result does
    not depend on their order), with :data:`SPECIAL_TOKENS`, left padding and the default chat template
    (:func:`chat_template`; :func:`build_compact` sets the one its config asks for)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = sorted({t for t in texts if t})
    if not corpus:
        raise InputError("no text to train the tokenizer on")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, min_frequency=2,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<|im_end|>",
                                   bos_token=None, unk_token=None, additional_special_tokens=SPECIAL_TOKENS[1:])
    fast.chat_template = chat_template()
    fast.padding_side = "left"
    return fast


def build_processor(config: CompactConfig, tokenizer):
    """``LlavaProcessor``: PIL CLIP image processor resizing to ``image_size`` squared (no crop) + ``tokenizer``."""
    from transformers import CLIPImageProcessorPil, LlavaProcessor

    image_processor = CLIPImageProcessorPil(size={"height": config.image_size, "width": config.image_size},
                                            do_center_crop=False)
    return LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=config.patch_size,
                          vision_feature_select_strategy="default", num_additional_image_tokens=1,
                          chat_template=tokenizer.chat_template)


def build_compact(config: CompactConfig, tokenizer, seed: int = 0):
    """``(model, processor)``: a randomly initialised (``seed``) compact LLaVA for ``tokenizer``, in train mode."""
    import torch
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    config.validate()
    tokenizer.chat_template = chat_template(config.question_first)
    vision = CLIPVisionConfig(hidden_size=config.vision_hidden, intermediate_size=config.vision_intermediate,
                              num_hidden_layers=config.vision_layers, num_attention_heads=config.vision_heads,
                              image_size=config.image_size, patch_size=config.patch_size,
                              projection_dim=config.hidden, initializer_range=config.initializer_range)
    text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=config.hidden,
                       intermediate_size=config.intermediate, num_hidden_layers=config.layers,
                       num_attention_heads=config.heads, num_key_value_heads=config.kv_heads,
                       max_position_embeddings=config.max_positions, initializer_range=config.initializer_range,
                       pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                       bos_token_id=None, tie_word_embeddings=False)
    llava = LlavaConfig(vision_config=vision, text_config=text,
                        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
                        vision_feature_layer=config.vision_feature_layer,
                        vision_feature_select_strategy="default", projector_hidden_act="gelu")
    llava.initializer_range = config.initializer_range
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(llava)
    if config.position_init == "sincos":
        init_position_embedding(model, config)
    gen = model.generation_config
    gen.do_sample = False
    gen.eos_token_id = tokenizer.eos_token_id
    gen.pad_token_id = tokenizer.pad_token_id
    gen.bos_token_id = None
    gen.max_new_tokens = 24
    return model, build_processor(config, tokenizer)


def sincos_2d(grid: int, dim: int):
    """(grid * grid, dim) 2-D sine-cosine position table (MAE style: half the channels encode the row, half
    the column), rows in the tower's raster order."""
    import torch

    if dim % 4:
        raise InputError(f"vision_hidden {dim} must be a multiple of 4 for the sincos position init")
    quarter = dim // 4
    omega = 1.0 / (10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter))
    ys, xs = torch.meshgrid(torch.arange(grid, dtype=torch.float64), torch.arange(grid, dtype=torch.float64),
                            indexing="ij")
    parts = []
    for coord in (ys.reshape(-1), xs.reshape(-1)):
        angle = coord[:, None] * omega[None, :]
        parts += [torch.sin(angle), torch.cos(angle)]
    return torch.cat(parts, dim=1).float()


def init_position_embedding(model, config: CompactConfig, scale: float = 0.3) -> None:
    """Start the vision tower's (learned) position embeddings from a 2-D sine-cosine table of amplitude
    ``scale`` (CLS row zero) instead of N(0, 0.02): with the random init the position signal is about a tenth
    of the patch content after the tower's first layer norm, so where an object is -- all that left / right /
    in front / behind depend on -- starts out nearly invisible."""
    import torch

    emb = model.model.vision_tower.embeddings.position_embedding
    grid = config.image_size // config.patch_size
    table = torch.zeros_like(emb.weight)
    table[1:] = scale * sincos_2d(grid, config.vision_hidden)
    with torch.no_grad():
        emb.weight.copy_(table)


def count_parameters(model) -> dict[str, int]:
    """Parameter counts: ``vision`` (tower), ``projector``, ``language`` (decoder + head), ``total``."""
    vision = sum(p.numel() for p in model.model.vision_tower.parameters())
    projector = sum(p.numel() for p in model.model.multi_modal_projector.parameters())
    total = sum(p.numel() for p in model.parameters())
    return {"vision": vision, "projector": projector, "language": total - vision - projector, "total": total}


def save_compact(model, processor, out: str | Path) -> Path:
    """Write ``model`` (safetensors) and ``processor`` to ``out`` (a transformers directory)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    return out


def load_compact(directory: str | Path):
    """``(model, processor)`` from a directory written by :func:`save_compact` (eval mode, float32)."""
    import torch
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    directory = Path(directory)
    if not (directory / "config.json").is_file():
        raise InputError(f"{directory} is not a model directory (no config.json)")
    processor = AutoProcessor.from_pretrained(directory, local_files_only=True)
    model = LlavaForConditionalGeneration.from_pretrained(directory, dtype=torch.float32, use_safetensors=True,
                                                          local_files_only=True).eval()
    return model, processor


def random_like(directory: str | Path, seed: int = 0):
    """``(model, processor)``: the architecture and tokenizer of a saved compact model with fresh random
    weights (``seed``) -- the "untrained" baseline of the evaluation."""
    import torch
    from transformers import AutoConfig, AutoProcessor, LlavaForConditionalGeneration

    processor = AutoProcessor.from_pretrained(directory, local_files_only=True)
    config = AutoConfig.from_pretrained(directory, local_files_only=True)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = processor.tokenizer.eos_token_id
    model.generation_config.pad_token_id = processor.tokenizer.pad_token_id
    return model, processor
