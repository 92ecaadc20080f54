"""Fusion of a model's dense depth with a holey or sparse sensor depth (``depth_source: fuse``).

1. **Alignment.** The model depth ``m`` is mapped onto the sensor depth ``z`` by a scale (and optionally a
   shift) fitted on the pixels where both are valid: ``z ~ s * m + t`` for a metric model (depth space), or
   ``1/z ~ s * d + t`` for a relative model that predicts inverse depth ``d`` (inverse space, the affine
   ambiguity such models are trained with).
2. **Local correction** (``local_sigma_px`` > 0). A model's error is not one global scale: it varies
   smoothly over the image. The log-ratio ``log(z / aligned)`` at the inlier sensor pixels is spread into
   the holes by normalised Gaussian convolution (``local_sigma_px``), so a hole takes the correction of the
   sensor pixels around it; far from any sensor pixel the correction fades to the global alignment.
3. **Hole filling.** Sensor pixels are kept where valid; the others take the (corrected) model depth.

Why relative residuals: the fit minimises ``r = (s m + t - z) / z`` (depth space) or ``r = (s d + t) z - 1``
(inverse space, the same relative error to first order), not metres. After alignment the residual is
dominated by the model's error, which is proportional to range (a monocular network's error is relative);
residuals in metres would let the far pixels dominate the fit, plain inverse-depth residuals the near ones.
The sensor's own noise (``k z^2``) is small beside it. Both models are linear in ``(s, t)``; the fit is a
robust ``scipy.optimize.least_squares`` (soft-L1 loss, scale ``f_scale``) on a deterministic subsample
(outliers: flying pixels, reflections, a model's wrong surface), then an ordinary least-squares refit on
all inliers so the noise does not bias the estimate.

Frames: depth in metres along the optical axis (camera optical frame, z forward); NaN, inf and values
<= 0 are invalid. ROS-free; numpy/scipy only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spatial_vlm_ros.core.errors import InputError

SPACES = ("depth", "inverse")


@dataclass(frozen=True)
class FusionParams:
    """Robust alignment of model depth to sensor depth."""

    fit_shift: bool = False            # also fit t (metres in depth space); a metric model needs only s
    min_valid_pixels: int = 200        # pixels valid in both depths needed to align
    f_scale: float = 0.05              # relative residual where the soft-L1 loss turns linear (~ model sigma)
    inlier_threshold: float = 0.15     # |relative residual| below this: inlier of the final refit
    min_inlier_fraction: float = 0.3   # fewer inliers than this fraction of the valid pixels: no alignment
    max_samples: int = 5000            # valid pixels (subsampled, seeded) used by the robust fit
    local_sigma_px: float = 15.0       # > 0: also correct the aligned depth locally (Gaussian sigma, px)

    def validate(self) -> FusionParams:
        if self.min_valid_pixels < 2 + int(self.fit_shift):
            raise InputError(f"min_valid_pixels must be >= {2 + int(self.fit_shift)}, got {self.min_valid_pixels}")
        if not (self.f_scale > 0 and self.inlier_threshold > 0 and 0 <= self.min_inlier_fraction <= 1):
            raise InputError("f_scale and inlier_threshold must be > 0, min_inlier_fraction in [0, 1]")
        if self.local_sigma_px < 0:
            raise InputError(f"local_sigma_px must be >= 0, got {self.local_sigma_px}")
        return self


@dataclass(frozen=True)
class Alignment:
    """A fitted model-to-sensor mapping and its quality (residuals are relative: 0.05 = 5 % of range)."""

    scale: float
    shift: float                       # metres (depth space) or 1/metres (inverse space)
    space: str                         # "depth" or "inverse"
    n_valid: int                       # pixels valid in both depths
    n_inliers: int                     # of those, |residual| < inlier_threshold
    rms_residual: float                # RMS relative residual of the inliers
    median_abs_residual: float         # median |relative residual| over all valid pixels

    @property
    def inlier_fraction(self) -> float:
        return self.n_inliers / max(self.n_valid, 1)

    def apply(self, model: np.ndarray) -> np.ndarray:
        """Aligned depth (metres, float32) of a model output; NaN where the mapping is not a valid depth."""
        m = np.asarray(model, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = self.scale * m + self.shift
            if self.space == "inverse":
                z = 1.0 / z
        out = np.where(np.isfinite(z) & (z > 0) & np.isfinite(m) & (m > 0), z, np.nan)
        return out.astype(np.float32)


@dataclass(frozen=True)
class FusedDepth:
    """The fused depth image and how it was made."""

    depth: np.ndarray                  # (H, W) float32 metres, NaN where neither source is valid
    filled: np.ndarray                 # (H, W) bool, pixels taken from the aligned model depth
    alignment: Alignment


def valid_depth(depth: np.ndarray) -> np.ndarray:
    """Boolean mask of usable depth pixels (finite and > 0)."""
    d = np.asarray(depth)
    with np.errstate(invalid="ignore"):
        return np.isfinite(d) & (d > 0)


def _design(m: np.ndarray, z: np.ndarray, space: str) -> np.ndarray:
    """Rows ``a`` with ``r = a @ (s, t) - 1`` the relative residual."""
    if space == "depth":
        return np.stack([m / z, 1.0 / z], axis=1)
    return np.stack([m * z, z], axis=1)


def align_depth(model: np.ndarray, sensor: np.ndarray, params: FusionParams | None = None,
                space: str = "depth") -> Alignment:
    """Fit the model depth (or, with ``space="inverse"``, the model's inverse depth) to the sensor depth.

    ``model``, ``sensor``: (H, W) arrays, sensor in metres. Raises ``InputError`` when too few pixels are
    valid in both, when a shift is asked of a flat model depth, or when the fit explains too few pixels.
    """
    from scipy.optimize import least_squares

    p = (params or FusionParams()).validate()
    if space not in SPACES:
        raise InputError(f"alignment space must be one of {SPACES}, got {space!r}")
    model, sensor = np.asarray(model), np.asarray(sensor)
    if model.shape != sensor.shape or model.ndim != 2:
        raise InputError(f"model depth {model.shape} and sensor depth {sensor.shape} must be the same HxW")
    both = valid_depth(model) & valid_depth(sensor)
    n_valid = int(np.count_nonzero(both))
    if n_valid < p.min_valid_pixels:
        raise InputError(f"only {n_valid} sensor depth pixels are valid where the model predicts depth (at least "
                         f"{p.min_valid_pixels} are needed to align the model depth); for an RGB-only camera or "
                         "an empty depth image set depth_source: model")
    m_all = model[both].astype(np.float64)
    z_all = sensor[both].astype(np.float64)
    if p.fit_shift and np.std(m_all) <= 1e-6 * max(float(np.mean(np.abs(m_all))), 1e-12):
        raise InputError("the model depth is flat over the valid sensor pixels: a shift cannot be fitted")

    # robust fit on a deterministic subsample
    if n_valid > p.max_samples:
        pick = np.random.default_rng(0).choice(n_valid, p.max_samples, replace=False)
        m, z = m_all[pick], z_all[pick]
    else:
        m, z = m_all, z_all
    a = _design(m, z, space)
    ratio = 1.0 / a[:, 0]                                   # s with t = 0, per pixel
    x0 = np.array([float(np.median(ratio)), 0.0])
    cols = [0, 1] if p.fit_shift else [0]
    a_fit = a[:, cols]
    fit = least_squares(lambda x: a_fit @ x - 1.0, x0[cols], jac=lambda x: a_fit, loss="soft_l1",
                        f_scale=p.f_scale, x_scale="jac", method="trf")
    x = np.zeros(2)
    x[cols] = fit.x

    # ordinary least squares on every inlier (unbiased under the noise once outliers are out)
    a_all = _design(m_all, z_all, space)
    inl = np.abs(a_all @ x - 1.0) < p.inlier_threshold
    if np.count_nonzero(inl) >= len(cols) + 1:
        sol, *_ = np.linalg.lstsq(a_all[inl][:, cols], np.ones(int(np.count_nonzero(inl))), rcond=None)
        x = np.zeros(2)
        x[cols] = sol
    r_all = a_all @ x - 1.0
    inl = np.abs(r_all) < p.inlier_threshold
    n_in = int(np.count_nonzero(inl))
    if not np.all(np.isfinite(x)) or x[0] <= 0 or n_in < max(p.min_inlier_fraction * n_valid, len(cols) + 1):
        raise InputError(f"the model depth could not be aligned to the sensor depth: only {n_in} of {n_valid} "
                         f"valid pixels agree within {100 * p.inlier_threshold:.0f} % (scale {x[0]:.3g})")
    return Alignment(scale=float(x[0]), shift=float(x[1]), space=space, n_valid=n_valid, n_inliers=n_in,
                     rms_residual=float(np.sqrt(np.mean(r_all[inl] ** 2))),
                     median_abs_residual=float(np.median(np.abs(r_all))))


def fill_holes(sensor: np.ndarray, aligned: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(fused, filled)``: the sensor depth where valid, else the aligned model depth; ``filled`` marks
    the pixels taken from the model. Metres, float32; NaN where neither is valid."""
    sensor, aligned = np.asarray(sensor), np.asarray(aligned)
    if sensor.shape != aligned.shape:
        raise InputError(f"sensor depth {sensor.shape} and aligned depth {aligned.shape} differ in size")
    keep = valid_depth(sensor)
    filled = ~keep & valid_depth(aligned)
    fused = np.where(keep, sensor, np.where(filled, aligned, np.nan)).astype(np.float32)
    return fused, filled


def local_correction(aligned: np.ndarray, sensor: np.ndarray, sigma_px: float,
                     inlier_threshold: float = 0.15, support_px: float = 5.0) -> np.ndarray:
    """``aligned`` times a smooth correction field: the normalised Gaussian convolution (``sigma_px``) of
    ``log(sensor / aligned)`` over the pixels where both are valid and agree within ``inlier_threshold``.
    Where fewer than about ``support_px`` sensor pixels lie within the kernel the correction fades to 1 (the
    global alignment). The field is smooth, so it is computed on blocks of ``sigma_px / 4`` pixels and
    interpolated bilinearly. Metres, float32."""
    from scipy.ndimage import gaussian_filter, map_coordinates

    ok = valid_depth(sensor) & valid_depth(aligned)
    log_ratio = np.zeros(aligned.shape, np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio[ok] = np.log(sensor[ok] / aligned[ok])
    ok &= np.abs(log_ratio) < np.log1p(inlier_threshold)
    log_ratio[~ok] = 0.0
    h, w = aligned.shape
    f = max(1, int(sigma_px // 4))
    hb, wb = -(-h // f), -(-w // f)

    def block_sum(a):
        padded = np.zeros((hb * f, wb * f), np.float32)
        padded[:h, :w] = a
        return padded.reshape(hb, f, wb, f).sum(axis=(1, 3))

    s = sigma_px / f
    num = gaussian_filter(block_sum(log_ratio), s, mode="nearest", truncate=3.0)
    den = gaussian_filter(block_sum(ok.astype(np.float32)), s, mode="nearest", truncate=3.0)
    field = num / (den + np.float32(support_px / (2.0 * np.pi * s * s)))   # den * 2 pi s^2 ~ pixels in kernel
    if f > 1:
        rows = (np.arange(h, dtype=np.float32) - (f - 1) / 2) / f
        cols = (np.arange(w, dtype=np.float32) - (f - 1) / 2) / f
        rr, cc = np.meshgrid(rows, cols, indexing="ij")
        field = map_coordinates(field, [rr, cc], order=1, mode="nearest")
    return (aligned * np.exp(field)).astype(np.float32)


def fuse_depth(model: np.ndarray, sensor: np.ndarray, params: FusionParams | None = None,
               space: str = "depth") -> FusedDepth:
    """Align ``model`` to ``sensor`` (``align_depth``), correct it locally if asked, fill the sensor's holes."""
    p = (params or FusionParams()).validate()
    alignment = align_depth(model, sensor, p, space)
    aligned = alignment.apply(model)
    if p.local_sigma_px > 0:
        aligned = local_correction(aligned, np.asarray(sensor), p.local_sigma_px, p.inlier_threshold)
    fused, filled = fill_holes(sensor, aligned)
    return FusedDepth(fused, filled, alignment)
