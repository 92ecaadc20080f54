"""SpatialVLM's data engine: RGB-D frames (bags or the simulator) -> lifted metric scenes -> template spatial QA
-> a Hugging Face dataset on disk, in one process (``local``) or on Ray Data (``ray_pipeline``).

Entry point: :func:`spatial_vlm_ros.synthesis.local.synthesize_to_disk`; the CLI is ``spatial_vlm synthesize``.
ROS-free; Ray and ``datasets`` are imported only where they are used.
"""
