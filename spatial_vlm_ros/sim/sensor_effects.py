"""Depth-sensor artefacts shared by the simulated sensor models (``sim.depth_sensors``).

Each helper works on a rendered (perfect) depth image in metres, camera optical frame (x right, y down, z
forward), NaN or non-positive = no surface, or on a per-pixel value image in another domain (stereo
disparity in pixels). The principal point is taken at the image center where geometry is needed.
"""
from __future__ import annotations

import cv2
import numpy as np

_FAR = 1e9


def depth_edges(z: np.ndarray, valid: np.ndarray, rel_threshold: float) -> np.ndarray:
    """Valid pixels next to a depth jump larger than ``rel_threshold * z`` (either side of the edge; a pixel
    next to one without depth counts as an edge)."""
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


def stereo_shadow(disp: np.ndarray, valid: np.ndarray) -> np.ndarray:
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


def across_edge_values(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per pixel, the value of its valid 8-neighbour (or itself) farthest from its own: the other side of an
    edge. Works in any domain (depth, disparity)."""
    kernel = np.ones((3, 3), np.uint8)
    v = values.astype(np.float32)
    hi = cv2.dilate(np.where(valid, v, -_FAR).astype(np.float32), kernel)
    lo = cv2.erode(np.where(valid, v, _FAR).astype(np.float32), kernel)
    hi = np.where(hi <= -_FAR / 2, v, hi)
    lo = np.where(lo >= _FAR / 2, v, lo)
    return np.where(np.abs(hi - v) > np.abs(v - lo), hi, lo).astype(np.float64)


def mix_across_edges(values: np.ndarray, valid: np.ndarray, pixels: np.ndarray,
                     rng: np.random.Generator) -> np.ndarray:
    """``values`` with each of ``pixels`` replaced by a mix ``v + w (other - v)``, ``w`` uniform in [0, 1],
    of its own value and the value across the edge (``across_edge_values``): a flying pixel that saw both
    surfaces. Mixing disparities models a stereo matching window, mixing ranges a ToF pixel footprint."""
    if not pixels.any():
        return values
    other = across_edge_values(values, valid)
    w = rng.uniform(0.0, 1.0, values.shape)
    return np.where(pixels, values + w * (other - values), values)


def _blob_area(radius: int) -> int:
    img = np.zeros((2 * radius + 3, 2 * radius + 3), np.uint8)
    cv2.circle(img, (radius + 1, radius + 1), radius, 1, -1)
    return int(img.sum())


_BLOB_RADII = (1, 2, 3, 4)
_MEAN_BLOB_AREA = float(np.mean([_blob_area(r) for r in _BLOB_RADII]))


def random_dropouts(shape: tuple[int, int], fraction: float, blob_share: float,
                    rng: np.random.Generator) -> np.ndarray:
    """Random invalid pixels covering about ``fraction`` of the image: ``blob_share`` of it as small round
    blobs (radius 1-4 px), the rest as isolated speckles."""
    h, w = shape
    out = rng.uniform(size=shape) < fraction * (1.0 - blob_share)
    n_blobs = rng.poisson(fraction * blob_share * h * w / _MEAN_BLOB_AREA) if fraction > 0 else 0
    if n_blobs:
        blobs = np.zeros(shape, np.uint8)
        for cx, cy, r in zip(rng.integers(0, w, n_blobs), rng.integers(0, h, n_blobs),
                             rng.choice(_BLOB_RADII, n_blobs)):
            cv2.circle(blobs, (int(cx), int(cy)), int(r), 1, -1)
        out |= blobs.astype(bool)
    return out


def dark_dropouts(rgb: np.ndarray | None, level: int, prob: float, rng: np.random.Generator,
                  shape: tuple[int, int]) -> np.ndarray:
    """Pixels whose color luminance is below ``level`` (8-bit), each dropped with probability ``prob``: dark
    surfaces return little (IR) light. No color image: nothing dropped."""
    if rgb is None or prob <= 0:
        return np.zeros(shape, dtype=bool)
    lum = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    return (lum < level) & (rng.uniform(size=shape) < prob)


def polynomial_field(shape: tuple[int, int], degree: int, rms: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth random field over the image: a polynomial of ``degree`` in the normalised image coordinates
    (-1..1) with standard-normal coefficients (constant term included), scaled to root-mean-square ``rms``."""
    h, w = shape
    y, x = np.mgrid[-1.0:1.0:complex(0, h), -1.0:1.0:complex(0, w)]
    field = np.zeros(shape)
    for i in range(degree + 1):
        for j in range(degree + 1 - i):
            field += rng.normal() * x ** i * y ** j
    norm = float(np.sqrt(np.mean(field ** 2)))
    return field * (rms / norm) if norm > 0 else field


def correlated_field(shape: tuple[int, int], sigma: float, correlation_px: float,
                     rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise blurred over ``correlation_px`` and rescaled to standard deviation ``sigma``."""
    field = cv2.GaussianBlur(rng.normal(0.0, 1.0, shape).astype(np.float32), (0, 0), correlation_px)
    return field * (sigma / max(float(field.std()), 1e-9))


def back_project(z: np.ndarray, focal_px: float) -> np.ndarray:
    """(H, W, 3) optical-frame points of a depth image, principal point at the image center."""
    h, w = z.shape
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    return np.stack([(u - (w - 1) / 2.0) * z / focal_px, (v - (h - 1) / 2.0) * z / focal_px, z], axis=-1)


def concave_creases(z: np.ndarray, valid: np.ndarray, focal_px: float, min_angle_deg: float = 30.0,
                    step_px: int = 2, edge_threshold: float = 0.03) -> np.ndarray:
    """Pixels on an inside corner of the visible surface: the surface normal turns by more than
    ``min_angle_deg`` between ``step_px`` pixels either side, and the surface bends away from the camera
    there (inverse depth, affine in the image on a plane, has a positive second difference). Occlusion edges
    (depth jumps, ``depth_edges``) are not creases."""
    zz = np.where(valid, z, 1.0).astype(np.float64)
    p = back_project(zz, focal_px)
    du = np.zeros_like(p)
    dv = np.zeros_like(p)
    du[:, 1:-1] = p[:, 2:] - p[:, :-2]
    dv[1:-1] = p[2:] - p[:-2]
    n = np.cross(du, dv)
    n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)
    inv = 1.0 / zz
    s = int(step_px)
    crease = np.zeros(z.shape, dtype=bool)
    cos_min = np.cos(np.radians(min_angle_deg))
    for axis in (0, 1):
        a = np.roll(n, s, axis=axis)
        b = np.roll(n, -s, axis=axis)
        turned = np.sum(a * b, axis=-1) < cos_min
        bend = np.roll(inv, s, axis=axis) + np.roll(inv, -s, axis=axis) - 2.0 * inv
        crease |= turned & (bend > 0)
    # away from occlusion edges, image borders and missing depth (rolls wrap around, borders are invalid)
    bad = ~valid | depth_edges(z, valid, edge_threshold)
    bad[:s + 1] = bad[-s - 1:] = True
    bad[:, :s + 1] = bad[:, -s - 1:] = True
    bad = cv2.dilate(bad.astype(np.uint8), np.ones((2 * s + 3, 2 * s + 3), np.uint8)).astype(bool)
    return crease & ~bad


def distance_to(mask: np.ndarray) -> np.ndarray:
    """Image distance (pixels) of every pixel to the nearest pixel of ``mask``; inf where ``mask`` is empty."""
    if not mask.any():
        return np.full(mask.shape, np.inf)
    return cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 5).astype(np.float64)


def noisy_rgb(rgb: np.ndarray, blur_sigma_px: float, noise_levels: float, rng: np.random.Generator) -> np.ndarray:
    """A color camera's copy of ``rgb`` (uint8): a slight blur and Gaussian sensor noise (8-bit levels)."""
    img = np.asarray(rgb, dtype=np.float32)
    if blur_sigma_px > 0:
        img = cv2.GaussianBlur(img, (0, 0), blur_sigma_px)
    if noise_levels > 0:
        img = img + rng.normal(0.0, noise_levels, img.shape).astype(np.float32)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)
