"""Depth sensor models by name: gaussian sigma(z), ToF range noise ~ linear, flying pixels between surfaces,
multipath bias at concave creases only, shadows only for stereo, reproducibility, registry."""
import numpy as np
import pytest

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.noise import DepthNoiseModel
from spatial_vlm_ros.sim import analytic as A
from spatial_vlm_ros.sim.depth_sensors import SENSORS, GaussianDepth, StereoDepth, ToFDepth, make_sensor, sensor_name
from spatial_vlm_ros.sim.sensor_effects import back_project

F = 600.0
TOF_QUIET = dict(edge_drop_prob=0.0, flying_prob=0.0, multipath_bias_m=0.0, dropout_fraction=0.0,
                 dark_drop_prob=0.0)


def _plane(z, h=200, w=200):
    return np.full((h, w), z, dtype=np.float32)


def _box_before_wall(h=100, w=200):
    depth = _plane(2.0, h, w)
    depth[30:70, 100:140] = 1.0
    return depth


@pytest.mark.parametrize("z", [0.5, 1.0, 2.0, 3.0])
def test_gaussian_sigma_matches_the_noise_model_on_a_flat_wall(z, rng):
    sensor = GaussianDepth(edge_drop_prob=0.0)
    err = sensor.apply_depth(_plane(z, 300, 300), None, F, rng) - z
    assert np.std(err) == pytest.approx(float(DepthNoiseModel().sigma(z)), rel=0.03)
    assert abs(np.mean(err)) < 0.01 * np.std(err) + 1e-5
    assert sensor.depth_model(F) == DepthNoiseModel()                  # what the node assumes, exactly
    assert not np.isnan(err).any()                                     # a flat wall has no edge: no holes


def test_gaussian_has_edge_holes_only(rng):
    out = GaussianDepth(model=DepthNoiseModel(sigma0=0.0, k=0.0)).apply_depth(_box_before_wall(), None, F, rng)
    holes = np.isnan(out)
    assert 0.2 < holes[29:31, 100:140].mean() < 0.4                    # edge pixels, 30 % dropped
    holes[28:32, 98:142] = holes[68:72, 98:142] = holes[28:72, 98:102] = holes[28:72, 138:142] = False
    assert not holes.any()                                             # nothing else: no shadow, no speckle
    assert np.all(out[np.isfinite(out)] == _box_before_wall()[np.isfinite(out)])   # no flying pixels


def test_tof_error_grows_linearly_with_range(rng):
    tof = ToFDepth(**TOF_QUIET)
    s = {z: np.std(tof.apply_depth(_plane(z, 60, 60), None, F, rng) - z) for z in (1.0, 2.0, 4.0)}
    # on the optical axis range ~ z; off axis range is up to 1.5 % longer in this small image
    for z, sz in s.items():
        assert sz == pytest.approx(tof.sigma0_m + tof.sigma_per_m * z, rel=0.08)
    assert s[4.0] / s[1.0] == pytest.approx((0.001 + 0.006) / (0.001 + 0.0015), rel=0.1)   # linear, not z^2 (16x)
    stereo = StereoDepth(correlated_sigma_px=0.0, edge_drop_prob=0.0, flying_prob=0.0, shadows=False,
                         dropout_fraction=0.0, dark_drop_prob=0.0, bias_rms_px=0.0)
    r = np.std(stereo.apply_depth(_plane(4.0, 60, 60), None, F, rng) - 4.0) / \
        np.std(stereo.apply_depth(_plane(1.0, 60, 60), None, F, rng) - 1.0)
    assert r == pytest.approx(16.0, rel=0.15)                           # stereo: z^2


def test_tof_depth_model_fits_its_sigma_over_the_working_range():
    tof = ToFDepth()
    model = tof.depth_model(F)
    z = np.linspace(0.5, 2.5, 9)
    assert np.allclose(model.sigma(z), tof.sigma(z), rtol=0.12)


@pytest.mark.parametrize("name", ["stereo", "tof"])
def test_flying_pixels_lie_between_the_two_surfaces(name, rng):
    kw = dict(TOF_QUIET, flying_prob=1.0, sigma0_m=0.0, sigma_per_m=0.0) if name == "tof" else \
        dict(edge_drop_prob=0.0, flying_prob=1.0, disparity_sigma_px=0.0, correlated_sigma_px=0.0, shadows=False,
             dropout_fraction=0.0, bias_rms_px=0.0, disparity_step_px=0.0)
    depth = _box_before_wall(120, 240)
    out = SENSORS[name](**kw).apply_depth(depth, None, F, rng)
    edge = np.zeros(depth.shape, dtype=bool)
    edge[29:31, 102:138] = edge[69:71, 102:138] = True                 # top and bottom edges, both sides
    vals = out[edge]
    assert np.all(np.isfinite(vals))
    assert np.all((vals > 1.0 - 1e-4) & (vals < 2.0 + 1e-2))           # between foreground and background
    assert np.mean((vals > 1.1) & (vals < 1.9)) > 0.5                  # mixed, not copies of either side
    assert np.all(np.abs(out[40:60, 110:130] - 1.0) < 1e-4)            # away from edges: untouched


def test_multipath_bias_is_positive_at_a_concave_corner_and_zero_elsewhere():
    """A box on a table seen from above: its bottom edge meets the table in an inside corner."""
    frame = A.render([A.BoxObject("box", (0.0, 0.0), (0.2, 0.15, 0.2))], A.CameraPose(), A.default_camera())
    z = frame.depth.astype(np.float64)
    f = 615.0                                                           # analytic.default_camera's focal length
    tof = ToFDepth(**{**TOF_QUIET, "multipath_bias_m": 0.01, "sigma0_m": 0.0, "sigma_per_m": 0.0})
    out = tof.apply_depth(frame.depth, frame.rgb, f, np.random.default_rng(0)).astype(np.float64)
    bias = out - z
    box = frame.mask == 1
    rows = np.nonzero(box.any(axis=1))[0]
    cols = np.nonzero(box.any(axis=0))[0]
    bottom, mid = rows.max(), (cols.min() + cols.max()) // 2
    below = bias[bottom + 2:bottom + 5, mid - 10:mid + 10]             # table just in front of the box
    face = bias[bottom - 4:bottom - 1, mid - 10:mid + 10]              # the box's front face near its bottom
    assert below.min() > 0.004 and face.min() > 0.004                  # both sides of the crease read far
    assert bias[bottom + 2:bottom + 5, mid].mean() < 0.011
    top = rows.min()
    assert np.abs(bias[top + 2:top + 6, mid - 10:mid + 10]).max() < 1e-4   # convex top edge: no bias
    table = frame.table_mask & (np.arange(z.shape[0])[:, None] > bottom + 100)
    assert np.abs(bias[table]).max() < 1e-4                            # far from the corner: nothing
    # the sign and place come from the geometry: an inside corner (Z = 2 - 0.8 |X|, like a room's corner)
    # gets a bias, an outside corner (Z = 2 + 0.8 |X|, a building's) gets nothing
    x = np.linspace(-0.5, 0.5, 300)[None, :].repeat(100, 0)            # x = X / Z
    inside, outside = 2.0 / (1 + 0.8 * np.abs(x)), 2.0 / (1 - 0.8 * np.abs(x))
    fx = 149.5 / 0.5                                                    # pixels: x = (u - cx) / f spans -0.5..0.5
    assert np.abs(tof.multipath_bias(outside, np.isfinite(outside), fx)).max() == 0.0
    b = tof.multipath_bias(inside, np.isfinite(inside), fx)
    assert b[50, 150] > 0.009 and b[50, 10] < 0.001


def test_shadows_only_for_stereo(rng):
    depth = _box_before_wall()
    quiet = {"gaussian": dict(edge_drop_prob=0.0), "tof": TOF_QUIET,
             "stereo": dict(edge_drop_prob=0.0, flying_prob=0.0, dropout_fraction=0.0, dark_drop_prob=0.0)}
    band = np.s_[40:60, 90:99]                                        # left of the box, inside its shadow band
    for name, kw in quiet.items():
        out = SENSORS[name](**kw).apply_depth(depth, None, F, rng)
        assert np.isnan(out[band]).all() == (name == "stereo"), name
        if name != "stereo":
            assert not np.isnan(out[band]).any(), name


def test_tof_drops_dark_surfaces(rng):
    rgb = np.full((100, 100, 3), 200, np.uint8)
    rgb[:, :50] = 20
    out = ToFDepth(**{**TOF_QUIET, "dark_drop_prob": 0.6}).apply_depth(_plane(1.0, 100, 100), rgb, F, rng)
    assert np.isnan(out[:, :50]).mean() == pytest.approx(0.6, abs=0.05)
    assert not np.isnan(out[:, 50:]).any()


@pytest.mark.parametrize("name", sorted(SENSORS))
def test_same_seed_same_output(name):
    frame = A.render([A.BoxObject("box", (0.0, 0.0), (0.2, 0.15, 0.2)),
                      A.CylinderObject("mug", (0.2, 0.1), 0.04, 0.1, color=(10, 10, 10))],
                     A.CameraPose(), A.default_camera(320, 240))
    sensor = make_sensor(name)
    a = sensor.apply(frame.depth, frame.rgb, 307.5, np.random.default_rng(9))
    b = sensor.apply(frame.depth, frame.rgb, 307.5, np.random.default_rng(9))
    c = sensor.apply(frame.depth, frame.rgb, 307.5, np.random.default_rng(10))
    assert np.array_equal(a[0], b[0], equal_nan=True) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0], equal_nan=True)
    assert a[0].dtype == np.float32 and a[0].shape == frame.depth.shape
    valid = np.isfinite(a[0])
    assert 0.5 < valid.mean() <= np.isfinite(frame.depth).mean()        # some depth lost, most kept


def test_registry_by_name():
    assert set(SENSORS) == {"gaussian", "stereo", "tof"}
    assert isinstance(make_sensor("stereo"), StereoDepth) and isinstance(make_sensor("TOF"), ToFDepth)
    assert make_sensor(None) is None and make_sensor("perfect") is None
    custom = ToFDepth(sigma0_m=0.002)
    assert make_sensor(custom) is custom
    assert [sensor_name(make_sensor(n)) for n in ("gaussian", "stereo", "tof", None)] == \
        ["gaussian", "stereo", "tof", "perfect"]
    with pytest.raises(InputError, match="unknown depth sensor"):
        make_sensor("lidar")
    with pytest.raises(InputError):
        make_sensor(3)


def test_back_project_uses_the_image_center():
    p = back_project(np.full((3, 5), 2.0), 100.0)
    assert np.allclose(p[1, 2], [0.0, 0.0, 2.0]) and np.allclose(p[0, 0], [-0.04, -0.02, 2.0])
