"""The simulator's stereo sensor under its former name: ``StereoNoise`` is ``depth_sensors.StereoDepth``.

The sensor models (``gaussian``, ``stereo``, ``tof``) live in ``sim.depth_sensors``, their shared artefacts in
``sim.sensor_effects``.
"""
from spatial_vlm_ros.sim.depth_sensors import StereoDepth as StereoNoise

__all__ = ["StereoNoise"]
