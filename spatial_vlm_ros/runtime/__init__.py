"""Learned-model plumbing shared by perception and the VLM: offline-first loading (HF id or local directory,
safetensors only), device and dtype choice, onnxruntime sessions. ROS-free; imports torch/transformers/
onnxruntime lazily so that the geometric core never pays for them."""
