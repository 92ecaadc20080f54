"""Stereo-like depth noise: error ~ z^2 as the package's noise model says, shadows, edge holes, dropouts."""
import numpy as np
import pytest

from spatial_vlm_ros.sim.sensor_noise import StereoNoise

F = 600.0      # focal length, pixels
QUIET = dict(correlated_sigma_px=0.0, edge_drop_prob=0.0, edge_bleed_prob=0.0, shadows=False, speckle_prob=0.0,
             blobs_per_megapixel=0.0, dark_drop_prob=0.0)


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
    noise = StereoNoise(**{**QUIET, "correlated_sigma_px": 0.05})
    s1 = np.std(noise.apply_depth(_plane(1.0, 300, 300), None, F, rng) - 1.0)
    s2 = np.std(noise.apply_depth(_plane(2.0, 300, 300), None, F, rng) - 2.0)
    assert s2 / s1 == pytest.approx(4.0, rel=0.15)


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


def test_edges_lose_or_bleed_depth_and_dropouts_happen(rng):
    depth = _plane(2.0, 240, 320)
    depth[60:180, 100:220] = 1.0
    noise = StereoNoise(**{**QUIET, "edge_drop_prob": 0.5, "edge_bleed_prob": 0.3, "disparity_sigma_px": 0.0})
    out = noise.apply_depth(depth, None, F, rng)
    edge = np.zeros_like(depth, dtype=bool)
    edge[59:61, 100:220] = edge[179:181, 100:220] = True
    assert 0.35 < np.isnan(out[edge]).mean() < 0.65
    interior = out[80:160, 120:200]
    assert np.all(interior == pytest.approx(1.0, abs=1e-6))             # no noise, no holes inside
    bled = edge & np.isfinite(out) & (np.abs(out - depth) > 0.5)
    assert bled.sum() > 0.1 * edge.sum()                                # mixed pixels carry the other side

    speckle = StereoNoise(**{**QUIET, "speckle_prob": 0.01, "blobs_per_megapixel": 200.0})
    holes = np.isnan(speckle.apply_depth(_plane(1.0, 500, 500), None, F, rng)).mean()
    assert 0.01 < holes < 0.05


def test_dark_surfaces_drop_more_and_range_limits(rng):
    rgb = np.full((100, 100, 3), 200, np.uint8)
    rgb[:, :50] = 5
    noise = StereoNoise(**{**QUIET, "dark_drop_prob": 0.5})
    out = noise.apply_depth(_plane(1.0, 100, 100), rgb, F, rng)
    assert np.isnan(out[:, :50]).mean() == pytest.approx(0.5, abs=0.05)
    assert not np.isnan(out[:, 50:]).any()
    assert np.isnan(StereoNoise(**QUIET).apply_depth(_plane(0.1, 10, 10), None, F, rng)).all()   # too close
    assert np.isnan(StereoNoise(**QUIET).apply_depth(_plane(9.0, 10, 10), None, F, rng)).all()   # too far


def test_colour_noise_keeps_type_and_is_small(rng):
    rgb = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    out = StereoNoise().apply_rgb(rgb, rng)
    assert out.dtype == np.uint8 and out.shape == rgb.shape
    flat = np.full((60, 80, 3), 128, np.uint8)
    assert np.std(StereoNoise().apply_rgb(flat, rng).astype(float)) == pytest.approx(2.0, rel=0.15)
