"""Stereo sensor (``StereoNoise`` = ``depth_sensors.StereoDepth``): error ~ z^2, 1/32 px disparity steps, a smooth
bias field, shadows, flying pixels mixed across edges, dropouts."""
import numpy as np
import pytest

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.sim.sensor_noise import StereoNoise

F = 600.0      # focal length, pixels
QUIET = dict(correlated_sigma_px=0.0, edge_drop_prob=0.0, flying_prob=0.0, shadows=False, dropout_fraction=0.0,
             dark_drop_prob=0.0, bias_rms_px=0.0, disparity_step_px=0.0)


def _plane(z, h=200, w=200):
    return np.full((h, w), z, dtype=np.float32)


@pytest.mark.parametrize("z", [0.5, 1.0, 2.0, 3.0])
def test_depth_error_follows_the_stereo_model(z, rng):
    noise = StereoNoise(**QUIET)
    noisy = noise.apply_depth(_plane(z), None, F, rng)
    err = noisy - z
    expected = z * z * noise.disparity_sigma_px / (F * noise.baseline_m)
    assert np.std(err) == pytest.approx(expected, rel=0.05)
    assert abs(np.mean(err)) < 0.1 * expected + 1e-5
    # the package's model built from the same sensor agrees (sigma0 floor aside)
    model = noise.depth_model(F)
    assert float(model.sigma(z)) == pytest.approx(expected, rel=0.15, abs=1e-3)


def test_error_grows_with_distance_squared_including_the_correlated_part(rng):
    noise = StereoNoise(**{**QUIET, "correlated_sigma_px": 0.05, "disparity_step_px": 1 / 32})
    s1 = np.std(noise.apply_depth(_plane(1.0, 300, 300), None, F, rng) - 1.0)
    s2 = np.std(noise.apply_depth(_plane(2.0, 300, 300), None, F, rng) - 2.0)
    assert s2 / s1 == pytest.approx(4.0, rel=0.15)


def test_disparity_is_quantised_to_a_32nd_of_a_pixel(rng):
    ramp = np.tile(np.linspace(0.6, 1.4, 320, dtype=np.float32), (40, 1))     # a slanted surface
    fb = F * StereoNoise().baseline_m
    noisy = StereoNoise(**{**QUIET, "disparity_step_px": 1 / 32}).apply_depth(ramp, None, F, rng)
    steps = fb / noisy.astype(np.float64) * 32
    assert np.max(np.abs(steps - np.rint(steps))) < 0.01                  # every disparity a multiple of 1/32
    assert np.diff(np.unique(np.rint(steps))).min() == 1                  # distinct levels one step apart
    assert len(np.unique(noisy[20])) < 0.9 * ramp.shape[1]                # neighbours share a level
    continuous = fb / StereoNoise(**QUIET).apply_depth(ramp, None, F, rng).astype(np.float64) * 32
    assert np.mean(np.abs(continuous - np.rint(continuous)) > 0.05) > 0.5  # without the step: no such grid


def test_bias_field_is_smooth_has_the_configured_size_and_is_fixed_per_unit(rng):
    noise = StereoNoise(**{**QUIET, "disparity_sigma_px": 0.0, "bias_rms_px": 0.1})
    z = 1.0
    fb = F * noise.baseline_m
    out = noise.apply_depth(_plane(z, 120, 160), None, F, rng).astype(np.float64)
    bias_px = fb / out - fb / z
    assert np.sqrt(np.mean(bias_px ** 2)) == pytest.approx(0.1, rel=0.02)
    assert np.max(np.abs(np.diff(bias_px, axis=1))) < 0.02                 # smooth: tiny change pixel to pixel
    unit = noise.for_scene(rng)
    a = unit.apply_depth(_plane(z, 60, 80), None, F, np.random.default_rng(1))
    b = unit.apply_depth(_plane(z, 60, 80), None, F, np.random.default_rng(2))
    assert np.array_equal(a, b)                                            # one unit: same bias every frame
    other = noise.for_scene(rng).apply_depth(_plane(z, 60, 80), None, F, np.random.default_rng(1))
    assert not np.array_equal(a, other)                                    # another unit: another field


def test_stereo_shadow_left_of_a_foreground_object(rng):
    depth = _plane(2.0, 100, 200)
    depth[30:70, 100:140] = 1.0          # a box 1 m closer than the wall behind it
    noise = StereoNoise(**{**QUIET, "shadows": True, "disparity_sigma_px": 0.0})
    out = noise.apply_depth(depth, None, F, rng)
    band = F * noise.baseline_m * (1 / 1.0 - 1 / 2.0)     # disparity jump: 15 px
    row = out[50]
    holes = np.nonzero(np.isnan(row[40:100]))[0] + 40
    assert holes.size == pytest.approx(band, abs=1.5)
    assert holes.max() == 99 and np.all(np.isfinite(row[100:140]))      # just left of the box
    assert np.all(np.isfinite(row[141:]))                              # nothing hidden on its right
    assert np.all(np.isnan(out[:, :int(F * noise.baseline_m / 2.0) - 1]))  # image border unseen by the 2nd imager


def test_edges_lose_depth_or_fly_between_the_two_surfaces(rng):
    depth = _plane(2.0, 240, 320)
    depth[60:180, 100:220] = 1.0
    noise = StereoNoise(**{**QUIET, "edge_drop_prob": 0.5, "flying_prob": 0.3, "disparity_sigma_px": 0.0})
    out = noise.apply_depth(depth, None, F, rng)
    edge = np.zeros_like(depth, dtype=bool)
    edge[59:61, 100:220] = edge[179:181, 100:220] = True
    assert 0.35 < np.isnan(out[edge]).mean() < 0.65
    interior = out[80:160, 120:200]
    assert np.all(interior == pytest.approx(1.0, abs=1e-6))             # no noise, no holes inside
    moved = edge & np.isfinite(out) & (np.abs(out - depth) > 1e-3)
    assert moved.sum() > 0.15 * edge.sum()
    assert np.all((out[moved] > 1.0 - 1e-6) & (out[moved] < 2.0 + 1e-6))  # between the two surfaces ...
    between = (out[moved] > 1.1) & (out[moved] < 1.9)
    assert between.mean() > 0.5                                         # ... mostly mixed, not copies


@pytest.mark.parametrize("fraction", [0.01, 0.05])
def test_dropout_fraction_is_close_to_the_configured_value(fraction, rng):
    noise = StereoNoise(**{**QUIET, "dropout_fraction": fraction})
    holes = np.mean([np.isnan(noise.apply_depth(_plane(1.0, 600, 600), None, F, rng)).mean() for _ in range(4)])
    assert holes == pytest.approx(fraction, rel=0.1)
    assert StereoNoise().dropout_fraction == pytest.approx(0.01)       # the default: about 1 %


def test_dark_surfaces_drop_more_and_range_limits(rng):
    rgb = np.full((100, 100, 3), 200, np.uint8)
    rgb[:, :50] = 5
    noise = StereoNoise(**{**QUIET, "dark_drop_prob": 0.5})
    out = noise.apply_depth(_plane(1.0, 100, 100), rgb, F, rng)
    assert np.isnan(out[:, :50]).mean() == pytest.approx(0.5, abs=0.05)
    assert not np.isnan(out[:, 50:]).any()
    assert np.isnan(StereoNoise(**QUIET).apply_depth(_plane(0.1, 10, 10), None, F, rng)).all()   # too close
    assert np.isnan(StereoNoise(**QUIET).apply_depth(_plane(9.0, 10, 10), None, F, rng)).all()   # too far


def test_color_noise_keeps_type_and_is_small(rng):
    rgb = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    out = StereoNoise().apply_rgb(rgb, rng)
    assert out.dtype == np.uint8 and out.shape == rgb.shape
    flat = np.full((60, 80, 3), 128, np.uint8)
    assert np.std(StereoNoise().apply_rgb(flat, rng).astype(float)) == pytest.approx(2.0, rel=0.15)


def test_bad_input(rng):
    with pytest.raises(InputError, match="focal"):
        StereoNoise().apply_depth(_plane(1.0, 10, 10), None, 0.0, rng)
    with pytest.raises(InputError, match="2-D"):
        StereoNoise().apply_depth(np.ones((4, 4, 3)), None, F, rng)
