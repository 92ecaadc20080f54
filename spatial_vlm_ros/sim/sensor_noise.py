"""Imitation of an active-stereo RGB-D sensor (RealSense D4xx-like) applied to perfect rendered depth.

Depth (metres, camera optical z) is converted to disparity ``d = f B / z`` (pixels), perturbed there and
converted back, so the error grows with the square of the distance exactly as the package's
``DepthNoiseModel`` assumes: ``sigma_z = z^2 * sigma_d / (f B)``. On top of per-pixel noise:

- a spatially correlated disparity error (smooth low-frequency field, as stereo matching windows produce);
- stereo shadows: background pixels the second imager (``B`` to the right) cannot see, a band left of every
  foreground edge as wide as the disparity jump, have no depth;
- edge effects at depth discontinuities: some pixels dropped, some take the depth of the other side
  (mixed/"flying" pixels that bleed across object boundaries);
- dropouts: isolated speckles, small blobs, and very dark (IR-absorbing) surfaces losing depth more often;
- the colour image gets a slight blur and sensor noise.

Invalid depth is NaN here; the 16UC1 encoding stores 0 for it.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from spatial_vlm_ros.core.noise import DepthNoiseModel


@dataclass(frozen=True)
class StereoNoise:
    """Parameters of the simulated sensor. Lengths in metres, disparities in pixels."""

    baseline_m: float = 0.05                 # D435: 50 mm
    disparity_sigma_px: float = 0.08         # independent per-pixel subpixel error
    correlated_sigma_px: float = 0.04        # smooth error field (std), correlation length below
    correlation_px: float = 6.0
    edge_threshold: float = 0.03             # relative depth jump between neighbours that makes an edge
    edge_drop_prob: float = 0.35             # edge pixels that lose their depth
    edge_bleed_prob: float = 0.10            # edge pixels that take the depth across the edge
    shadows: bool = True                     # stereo occlusion band left of foreground objects
    speckle_prob: float = 0.002              # isolated invalid pixels
    blobs_per_megapixel: float = 15.0        # small invalid blobs (radius 1-4 px)
    dark_level: int = 25                     # luminance below which surfaces are hard to see
    dark_drop_prob: float = 0.4
    min_range_m: float = 0.17                # D435 minimum range at 640x480
    max_range_m: float = 6.0
    rgb_blur_sigma_px: float = 0.6
    rgb_noise_levels: float = 2.0            # std of colour sensor noise, 8-bit levels

    def depth_model(self, focal_px: float) -> DepthNoiseModel:
        """The package's ``sigma(z)`` model matching this sensor at focal length ``focal_px``."""
        total = float(np.hypot(self.disparity_sigma_px, self.correlated_sigma_px))
        return DepthNoiseModel.from_stereo(focal_px, self.baseline_m, disparity_sigma_px=total, sigma0=0.0005)

    def apply(self, depth_m: np.ndarray, rgb: np.ndarray, focal_px: float,
              rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Noisy copies of (depth float32 metres with NaN = invalid, rgb uint8)."""
        return self.apply_depth(depth_m, rgb, focal_px, rng), self.apply_rgb(rgb, rng)

    # ------------------------------------------------------------------------------------------------------
    def apply_depth(self, depth_m: np.ndarray, rgb: np.ndarray | None, focal_px: float,
                    rng: np.random.Generator) -> np.ndarray:
        z = np.asarray(depth_m, dtype=np.float64)
        h, w = z.shape
        valid = np.isfinite(z) & (z > 0)
        fb = focal_px * self.baseline_m
        disp = np.where(valid, fb / np.where(valid, z, 1.0), 0.0)

        invalid = ~valid
        if self.shadows:
            invalid |= _stereo_shadow(disp, valid)
        edges = _depth_edges(z, valid, self.edge_threshold)
        u = rng.uniform(size=z.shape)
        invalid |= edges & (u < self.edge_drop_prob)
        bleed = edges & (u >= self.edge_drop_prob) & (u < self.edge_drop_prob + self.edge_bleed_prob)
        if bleed.any():
            far = cv2.dilate(np.where(valid, z, 0.0).astype(np.float32), np.ones((3, 3), np.uint8))
            near = -cv2.dilate(np.where(valid, -z, -1e9).astype(np.float32), np.ones((3, 3), np.uint8))
            other = np.where(np.abs(far - z) > np.abs(z - near), far, near)   # the value across the edge
            disp = np.where(bleed, fb / np.maximum(other, 1e-3), disp)

        noise = rng.normal(0.0, self.disparity_sigma_px, z.shape)
        if self.correlated_sigma_px > 0:
            field = rng.normal(0.0, 1.0, z.shape).astype(np.float32)
            field = cv2.GaussianBlur(field, (0, 0), self.correlation_px)
            field *= self.correlated_sigma_px / max(float(field.std()), 1e-9)
            noise += field
        disp = disp + noise

        invalid |= rng.uniform(size=z.shape) < self.speckle_prob
        n_blobs = rng.poisson(self.blobs_per_megapixel * h * w / 1e6)
        if n_blobs:
            blobs = np.zeros((h, w), np.uint8)
            for cx, cy, r in zip(rng.integers(0, w, n_blobs), rng.integers(0, h, n_blobs),
                                 rng.integers(1, 5, n_blobs)):
                cv2.circle(blobs, (int(cx), int(cy)), int(r), 1, -1)
            invalid |= blobs.astype(bool)
        if rgb is not None and self.dark_drop_prob > 0:
            lum = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
            invalid |= (lum < self.dark_level) & (rng.uniform(size=z.shape) < self.dark_drop_prob)

        out = fb / np.where(disp > 1e-6, disp, np.nan)
        out[invalid | (out < self.min_range_m) | (out > self.max_range_m)] = np.nan
        return out.astype(np.float32)

    def apply_rgb(self, rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        img = np.asarray(rgb, dtype=np.float32)
        if self.rgb_blur_sigma_px > 0:
            img = cv2.GaussianBlur(img, (0, 0), self.rgb_blur_sigma_px)
        if self.rgb_noise_levels > 0:
            img = img + rng.normal(0.0, self.rgb_noise_levels, img.shape).astype(np.float32)
        return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _depth_edges(z: np.ndarray, valid: np.ndarray, rel_threshold: float) -> np.ndarray:
    """Pixels next to a depth jump larger than ``rel_threshold * z`` (either side of the edge)."""
    zz = np.where(valid, z, 0.0)
    edge = np.zeros(z.shape, dtype=bool)
    for axis in (0, 1):
        diff = np.abs(np.diff(zz, axis=axis))
        ref = np.minimum(np.delete(zz, -1, axis=axis), np.delete(zz, 0, axis=axis))
        jump = diff > rel_threshold * np.maximum(ref, 1e-3)
        pad_lo = [(0, 0), (0, 0)]
        pad_hi = [(0, 0), (0, 0)]
        pad_lo[axis] = (1, 0)
        pad_hi[axis] = (0, 1)
        edge |= np.pad(jump, pad_lo) | np.pad(jump, pad_hi)
    return edge & valid


def _stereo_shadow(disp: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Pixels hidden from a second imager to the right: a pixel at column u with disparity d appears at
    u - d in that imager, where a nearer surface (larger disparity) landing on the same column hides it."""
    h, w = disp.shape
    rows, cols = np.nonzero(valid)
    d = disp[rows, cols]
    target = np.rint(cols - d).astype(np.int64)
    inside = (target >= 0) & (target < w)
    zbuf = np.zeros(h * w, dtype=np.float64)                  # largest disparity seen per (row, column)
    flat = rows[inside] * w + target[inside]
    np.maximum.at(zbuf, flat, d[inside])
    hidden = np.zeros((h, w), dtype=bool)
    hidden[rows[~inside], cols[~inside]] = True                  # outside the second imager's view
    hidden[rows[inside], cols[inside]] = d[inside] < zbuf[flat] - 0.5   # more than half a pixel behind
    return hidden
