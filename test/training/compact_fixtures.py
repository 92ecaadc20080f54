"""Shared by the compact-VLM tests: a tiny ``CompactConfig`` (a few thousand parameters; its numbers are
never accuracy) and the offline settings the tests load transformers with."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

TINY_MODEL = dict(image_size=32, patch_size=8, vision_hidden=32, vision_layers=2, vision_heads=2,
                  vision_intermediate=64, hidden=48, layers=2, heads=4, kv_heads=2, intermediate=96,
                  vocab_size=300, max_positions=256)
