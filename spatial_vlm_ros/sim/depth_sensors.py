"""Simulated depth sensors, selectable by name, applied to the renderer's perfect depth.

- ``gaussian``: per-pixel Gaussian depth noise with exactly the package's ``DepthNoiseModel`` sigma(z) and holes
  at depth edges: what the node's own noise model assumes.
- ``stereo``: an active-stereo camera (RealSense D4xx-like), the datasets' default: noise in the disparity
  domain ``d = f B / z`` (error ~ z^2), a correlated error field, a smooth disparity bias over the image,
  disparity quantised to a sub-pixel step, flying pixels mixed across depth edges, stereo shadows beside
  near edges, random and dark-surface dropouts.
- ``tof``: a continuous-wave time-of-flight camera (Azure Kinect / Kinect v2-like): range noise growing
  linearly with range plus a floor, flying pixels mixed across depth edges, a positive multipath range bias
  near concave creases, dropouts on dark (low IR reflectivity) surfaces, no shadows.

Every model is a frozen dataclass with ``apply_depth(depth_m, rgb, focal_px, rng)`` (float32 metres, NaN =
invalid), ``apply_rgb(rgb, rng)``, ``apply`` (both) and ``depth_model(focal_px)``, the ``DepthNoiseModel`` a
node would be configured with for it. ``for_scene(rng)`` fixes what stays constant for one physical unit over
a scene (the stereo bias field). Lengths in metres, disparities in pixels; the parameters and the published
facts behind them are in docs/sensor_models.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.noise import DepthNoiseModel
from spatial_vlm_ros.sim import sensor_effects as E


class _ColorCamera:
    """``apply_rgb``/``apply`` shared by the models (fields ``rgb_blur_sigma_px``, ``rgb_noise_levels``)."""

    def apply_rgb(self, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return E.noisy_rgb(rgb, self.rgb_blur_sigma_px, self.rgb_noise_levels, rng)

    def apply(self, depth_m: np.ndarray, rgb: np.ndarray, focal_px: float,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Noisy copies of (depth float32 metres with NaN = invalid, rgb uint8)."""
        return self.apply_depth(depth_m, rgb, focal_px, rng), self.apply_rgb(rgb, rng)

    def for_scene(self, rng: np.random.Generator):
        """This sensor as one unit for a whole scene (nothing to fix for this model)."""
        return self


def _valid(depth_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    z = np.asarray(depth_m, dtype=np.float64)
    if z.ndim != 2:
        raise InputError(f"depth must be a 2-D image, got shape {z.shape}")
    return z, np.isfinite(z) & (z > 0)


def _check_focal(focal_px: float) -> float:
    f = float(focal_px)
    if not np.isfinite(f) or f <= 0:
        raise InputError(f"focal length must be a positive number of pixels, got {focal_px!r}")
    return f


@dataclass(frozen=True)
class GaussianDepth(_ColorCamera):
    """Gaussian depth noise with ``model.sigma(z)`` per pixel and holes at depth edges, nothing else."""

    name: ClassVar[str] = "gaussian"
    model: DepthNoiseModel = field(default_factory=DepthNoiseModel)
    edge_threshold: float = 0.02             # relative depth jump between neighbours that makes an edge
    edge_drop_prob: float = 0.3              # edge pixels that lose their depth
    rgb_blur_sigma_px: float = 0.6
    rgb_noise_levels: float = 2.0            # std of color sensor noise, 8-bit levels

    def depth_model(self, focal_px: float) -> DepthNoiseModel:
        return self.model

    def apply_depth(self, depth_m: np.ndarray, rgb: np.ndarray | None, focal_px: float,
                    rng: np.random.Generator) -> np.ndarray:
        _check_focal(focal_px)
        z, valid = _valid(depth_m)
        out = z + rng.normal(0.0, 1.0, z.shape) * self.model.sigma(np.where(valid, z, 0.0))
        invalid = ~valid | (E.depth_edges(z, valid, self.edge_threshold)
                            & (rng.uniform(size=z.shape) < self.edge_drop_prob))
        out[invalid] = np.nan
        return out.astype(np.float32)


@dataclass(frozen=True)
class StereoDepth(_ColorCamera):
    """Active stereo (RealSense D4xx-like). Lengths in metres, disparities in pixels."""

    name: ClassVar[str] = "stereo"
    baseline_m: float = 0.05                 # D435: 50 mm
    disparity_sigma_px: float = 0.08         # independent per-pixel subpixel error (RMS)
    correlated_sigma_px: float = 0.04        # smooth error field (std), correlation length below
    correlation_px: float = 6.0
    disparity_step_px: float = 1.0 / 32.0    # sub-pixel resolution of the reported disparity; 0 = continuous
    bias_rms_px: float = 0.1                 # smooth disparity bias over the image (calibration-like), RMS
    bias_degree: int = 2                     # polynomial degree of that bias across the image
    bias_seed: int | None = None             # fixes the bias field (one unit); None: drawn per call
    edge_threshold: float = 0.03             # relative depth jump between neighbours that makes an edge
    edge_drop_prob: float = 0.35             # edge pixels that lose their depth
    flying_prob: float = 0.10                # edge pixels with a disparity mixed across the edge
    shadows: bool = True                     # stereo occlusion band left of foreground objects
    dropout_fraction: float = 0.01           # random invalid pixels (fraction of the image)
    dropout_blob_share: float = 0.4          # ... of which in small blobs (radius 1-4 px), the rest speckles
    dark_level: int = 25                     # luminance below which surfaces are hard to see
    dark_drop_prob: float = 0.4
    min_range_m: float = 0.17                # D435 minimum range at 640x480
    max_range_m: float = 6.0
    rgb_blur_sigma_px: float = 0.6
    rgb_noise_levels: float = 2.0            # std of color sensor noise, 8-bit levels

    def random_disparity_sigma_px(self) -> float:
        """One-sigma random disparity error of a reading: independent, correlated and quantisation parts."""
        q = self.disparity_step_px / np.sqrt(12.0)
        return float(np.sqrt(self.disparity_sigma_px ** 2 + self.correlated_sigma_px ** 2 + q ** 2))

    def depth_model(self, focal_px: float) -> DepthNoiseModel:
        """The package's ``sigma(z)`` for this sensor at focal length ``focal_px``: the random disparity error
        (not the bias field, which a plane-fit RMS specification leaves out)."""
        return DepthNoiseModel.from_stereo(_check_focal(focal_px), self.baseline_m,
                                           disparity_sigma_px=self.random_disparity_sigma_px(), sigma0=0.0005)

    def for_scene(self, rng: np.random.Generator) -> StereoDepth:
        """This camera as one unit for a whole scene: its bias field fixed (kept if already fixed)."""
        if self.bias_seed is not None or self.bias_rms_px <= 0:
            return self
        return replace(self, bias_seed=int(rng.integers(2 ** 31)))

    def bias_field(self, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
        """The disparity bias (pixels) over an image of ``shape``."""
        if self.bias_rms_px <= 0:
            return np.zeros(shape)
        src = rng if self.bias_seed is None else np.random.default_rng(self.bias_seed)
        return E.polynomial_field(shape, self.bias_degree, self.bias_rms_px, src)

    def apply_depth(self, depth_m: np.ndarray, rgb: np.ndarray | None, focal_px: float,
                    rng: np.random.Generator) -> np.ndarray:
        z, valid = _valid(depth_m)
        fb = _check_focal(focal_px) * self.baseline_m
        disp = np.where(valid, fb / np.where(valid, z, 1.0), 0.0)

        invalid = ~valid
        if self.shadows:
            invalid |= E.stereo_shadow(disp, valid)
        edges = E.depth_edges(z, valid, self.edge_threshold)
        u = rng.uniform(size=z.shape)
        invalid |= edges & (u < self.edge_drop_prob)
        flying = edges & (u >= self.edge_drop_prob) & (u < self.edge_drop_prob + self.flying_prob)
        disp = E.mix_across_edges(disp, valid, flying, rng)

        noise = rng.normal(0.0, self.disparity_sigma_px, z.shape)
        if self.correlated_sigma_px > 0:
            noise += E.correlated_field(z.shape, self.correlated_sigma_px, self.correlation_px, rng)
        disp = disp + noise + self.bias_field(z.shape, rng)
        if self.disparity_step_px > 0:
            disp = np.rint(disp / self.disparity_step_px) * self.disparity_step_px

        invalid |= E.random_dropouts(z.shape, self.dropout_fraction, self.dropout_blob_share, rng)
        invalid |= E.dark_dropouts(rgb, self.dark_level, self.dark_drop_prob, rng, z.shape)
        out = fb / np.where(disp > 1e-6, disp, np.nan)
        out[invalid | ~(out >= self.min_range_m) | (out > self.max_range_m)] = np.nan
        return out.astype(np.float32)


@dataclass(frozen=True)
class ToFDepth(_ColorCamera):
    """Continuous-wave time-of-flight (Azure Kinect / Kinect v2-like). Lengths in metres."""

    name: ClassVar[str] = "tof"
    sigma0_m: float = 0.001                  # range noise floor
    sigma_per_m: float = 0.0015              # range noise growth: sigma = sigma0 + sigma_per_m * range
    edge_threshold: float = 0.03             # relative depth jump between neighbours that makes an edge
    edge_drop_prob: float = 0.15             # edge pixels the depth engine invalidates
    flying_prob: float = 0.5                 # edge pixels whose range mixes both surfaces
    multipath_bias_m: float = 0.008          # positive range bias at a concave crease ...
    multipath_decay_m: float = 0.025         # ... decaying with the distance (on the surface) from it
    crease_angle_deg: float = 30.0           # normal turn that makes a concave crease
    dropout_fraction: float = 0.002          # random invalid pixels (fraction of the image)
    dropout_blob_share: float = 0.4
    dark_level: int = 40                     # luminance below which the IR return is weak ...
    dark_drop_prob: float = 0.6              # ... and the pixel is invalidated with this probability
    min_range_m: float = 0.25
    max_range_m: float = 5.0
    rgb_blur_sigma_px: float = 0.6
    rgb_noise_levels: float = 2.0            # std of color sensor noise, 8-bit levels
    fit_range_m: tuple[float, float] = (0.4, 2.5)   # ranges over which ``depth_model`` is fitted

    def sigma(self, range_m):
        """One-sigma random range error (metres) at ``range_m``."""
        return self.sigma0_m + self.sigma_per_m * np.asarray(range_m, dtype=np.float64)

    def depth_model(self, focal_px: float) -> DepthNoiseModel:
        """``sigma0 + k z^2`` fitted (least squares on the relative error) to this sensor's linear ``sigma(z)``
        over ``fit_range_m``: the package's model has no per-reading linear term (its ``rel`` is a correlated,
        model-depth term)."""
        _check_focal(focal_px)
        z = np.linspace(*self.fit_range_m, 50)
        s = self.sigma(z)
        a = np.stack([np.ones_like(z), z * z], axis=1) / s[:, None]
        (sigma0, k), *_ = np.linalg.lstsq(a, np.ones_like(z), rcond=None)
        return DepthNoiseModel(sigma0=float(max(sigma0, 0.0)), k=float(max(k, 0.0)))

    def multipath_bias(self, z: np.ndarray, valid: np.ndarray, focal_px: float) -> np.ndarray:
        """Positive range bias (metres) of every pixel from light bouncing off a nearby surface: largest at
        concave creases of the visible surface (``sensor_effects.concave_creases``), decaying exponentially
        with the distance from them measured on the surface (image distance x z / f)."""
        if self.multipath_bias_m <= 0:
            return np.zeros(z.shape)
        creases = E.concave_creases(z, valid, focal_px, self.crease_angle_deg, edge_threshold=self.edge_threshold)
        dist_m = E.distance_to(creases) * np.where(valid, z, 0.0) / focal_px
        return np.where(valid, self.multipath_bias_m * np.exp(-dist_m / self.multipath_decay_m), 0.0)

    def apply_depth(self, depth_m: np.ndarray, rgb: np.ndarray | None, focal_px: float,
                    rng: np.random.Generator) -> np.ndarray:
        f = _check_focal(focal_px)
        z, valid = _valid(depth_m)
        zz = np.where(valid, z, 1.0)
        p = E.back_project(zz, f)
        ray = np.linalg.norm(p, axis=-1) / zz                 # range / z along each pixel's ray
        rng_m = zz * ray
        rng_m = rng_m + self.multipath_bias(z, valid, f)

        edges = E.depth_edges(z, valid, self.edge_threshold)
        u = rng.uniform(size=z.shape)
        invalid = ~valid | (edges & (u < self.edge_drop_prob))
        flying = edges & (u >= self.edge_drop_prob) & (u < self.edge_drop_prob + self.flying_prob)
        rng_m = E.mix_across_edges(rng_m, valid, flying, rng)
        rng_m = rng_m + rng.normal(0.0, 1.0, z.shape) * self.sigma(rng_m)

        invalid |= E.random_dropouts(z.shape, self.dropout_fraction, self.dropout_blob_share, rng)
        invalid |= E.dark_dropouts(rgb, self.dark_level, self.dark_drop_prob, rng, z.shape)
        out = rng_m / ray
        out[invalid | ~(out >= self.min_range_m) | (out > self.max_range_m)] = np.nan
        return out.astype(np.float32)


DepthSensor = GaussianDepth | StereoDepth | ToFDepth
SENSORS: dict[str, type] = {cls.name: cls for cls in (GaussianDepth, StereoDepth, ToFDepth)}
PERFECT = "perfect"
DEFAULT_SENSOR = StereoDepth.name


def make_sensor(spec: str | DepthSensor | None) -> DepthSensor | None:
    """The sensor model for a name (``gaussian``, ``stereo``, ``tof``; ``None`` or ``perfect`` = perfect
    depth, returned as ``None``) or a model instance (returned as is)."""
    if spec is None or isinstance(spec, tuple(SENSORS.values())):
        return spec
    if isinstance(spec, str):
        name = spec.strip().lower()
        if name in ("", PERFECT, "none"):
            return None
        if name in SENSORS:
            return SENSORS[name]()
    raise InputError(f"unknown depth sensor {spec!r}: expected one of {', '.join(SENSORS)} or {PERFECT!r}")


def sensor_name(sensor: DepthSensor | None) -> str:
    """The name of a sensor model (``perfect`` for none)."""
    return PERFECT if sensor is None else sensor.name
