"""Depth-noise model: the standard deviation of a depth reading as a function of range.

Stereo and structured-light sensors have an error that grows with the square of the distance,
``dZ = Z^2 * dd / (f * B)`` (disparity error ``dd`` in pixels, focal length ``f`` in pixels, baseline ``B``
in metres). We model ``sigma(z) = sigma0 + k * z^2 + rel * z`` (metres), which also covers ToF sensors with
``k`` small. ``rel`` (0 for a depth sensor) is the 1-sigma relative error of depth predicted by a monocular
model (``depth_source: model | fuse``): such errors grow in proportion to the range.
Relations and quantities use it, together with the lifting's own error (``lifting``, see
``core.uncertainty``), to turn margins into confidences and uncertainties.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .uncertainty import LiftingError


@dataclass(frozen=True)
class DepthNoiseModel:
    """``sigma(z) = sigma0 + k * z**2 + rel * z``, metres. Defaults approximate a RealSense D435 at 640x480."""

    sigma0: float = 0.001   # metres, floor of the error (quantisation, calibration)
    k: float = 0.002        # 1/metre; D435: ~2 mm at 1 m, ~8 mm at 2 m
    rel: float = 0.0        # unitless, relative error of model-predicted depth (0 = sensor depth only)
    #: the lifting's own error, added to the sensor term by ``core.quantities`` (zero: sensor term only)
    lifting: LiftingError = field(default_factory=LiftingError)

    @classmethod
    def from_stereo(cls, focal_px: float, baseline_m: float, disparity_sigma_px: float = 0.08,
                    sigma0: float = 0.001) -> DepthNoiseModel:
        """Model of a stereo sensor: ``k = dd / (f * B)``."""
        return cls(sigma0=sigma0, k=disparity_sigma_px / (focal_px * baseline_m))

    def sigma(self, z):
        """Standard deviation (metres) of one depth reading at range ``z`` (metres); array or scalar."""
        z = np.asarray(z, dtype=np.float64)
        return self.sigma0 + self.k * z * z + self.rel * z

    def widened(self, rel: float) -> DepthNoiseModel:
        """This model with a relative-error term of at least ``rel`` (depth from a monocular model)."""
        return replace(self, rel=max(self.rel, float(rel)))

    def center_sigma(self, z: float, n_points: int = 1) -> float:
        """Standard deviation (metres) of an object's estimated center at range ``z``.

        Per-point noise averages out over many points, but the systematic part (calibration, surface
        bias, partial views) does not, so we keep a floor of half a single reading's sigma. A model's
        relative error (``rel``) is correlated over an object (it errs on the whole surface), so it is added
        in full, not averaged.
        """
        z = float(z)
        s = self.sigma0 + self.k * z * z
        return max(s / np.sqrt(max(n_points, 1)), 0.5 * s) + self.rel * z
