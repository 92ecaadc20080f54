"""Training spatial VLMs on synthesised spatial VQA: datasets -> model inputs, LoRA fine-tuning of open VLMs,
and the compact model trained here from scratch. ROS-free."""
