"""Model/sensor depth fusion (core.depth_fusion), the noise model's relative term, and the pipeline's
depth_source modes on analytic scenes with an injected depth predictor (no learned model here: see
test/perception/test_mono_depth.py for the tiny-model plumbing)."""
import numpy as np
import pytest

from spatial_vlm_ros.core.depth import encode_depth_mm
from spatial_vlm_ros.core.depth_fusion import FusionParams, align_depth, fill_holes, fuse_depth, valid_depth
from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.frame import Frame, Segmentation
from spatial_vlm_ros.core.noise import DepthNoiseModel
from spatial_vlm_ros.pipeline import FramePipeline, PipelineConfig
from spatial_vlm_ros.sim import analytic

OBJECTS = [
    analytic.BoxObject("box", (-0.22, 0.0), (0.10, 0.10, 0.16), color=(210, 35, 35)),
    analytic.CylinderObject("mug", (0.18, 0.06), 0.04, 0.10, color=(40, 70, 210)),
    analytic.BoxObject("book", (0.0, 0.20), (0.20, 0.14, 0.05), color=(35, 160, 50)),
]
SCENE = analytic.render(OBJECTS, camera=analytic.default_camera(320, 240))


def _scene_depth(shape=(120, 160)):
    v, u = np.mgrid[0:shape[0], 0:shape[1]]
    return (0.6 + 0.006 * v + 0.3 * np.sin(u / 25.0) ** 2).astype(np.float64)


def _holey_sensor(z, rng, hole_fraction=0.5, outlier_fraction=0.1, noise=0.005):
    """``z`` with relative noise, NaN holes and gross outliers (uniform 0.2-5 m)."""
    sensor = z * (1.0 + rng.normal(0.0, noise, z.shape))
    sensor[rng.random(z.shape) < hole_fraction] = np.nan
    out = rng.random(z.shape) < outlier_fraction
    sensor[out] = rng.uniform(0.2, 5.0, int(out.sum()))
    return sensor.astype(np.float32)


# ------------------------------------------------------------------------------------------ alignment
def test_scale_is_recovered_despite_holes_and_outliers(rng):
    z = _scene_depth()
    sensor = _holey_sensor(z, rng)
    fit = align_depth(z / 1.37, sensor)
    assert fit.scale == pytest.approx(1.37, rel=2e-3) and fit.shift == 0.0 and fit.space == "depth"
    assert fit.n_valid == np.count_nonzero(valid_depth(sensor))
    ok = valid_depth(sensor)
    agree = int(np.count_nonzero(np.abs(sensor[ok] - z[ok]) < 0.15 * sensor[ok]))   # the true inliers
    assert abs(fit.n_inliers - agree) <= 0.005 * fit.n_valid and agree < 0.9 * fit.n_valid
    assert fit.median_abs_residual < 0.01


def test_scale_and_shift_are_recovered(rng):
    z = _scene_depth()
    fit = align_depth((z - 0.12) / 0.8, _holey_sensor(z, rng), FusionParams(fit_shift=True))
    assert fit.scale == pytest.approx(0.8, rel=5e-3)
    assert fit.shift == pytest.approx(0.12, abs=5e-3)
    # a scale alone cannot explain an offset: the fit is visibly worse (the test above can fail)
    scale_only = align_depth((z - 0.12) / 0.8, _holey_sensor(z, rng))
    assert scale_only.median_abs_residual > 5 * fit.median_abs_residual


def test_relative_inverse_depth_is_aligned_in_inverse_space(rng):
    z = _scene_depth()
    disparity = 3.0 / z + 0.5                                           # a relative model's output
    fused = fuse_depth(disparity, _holey_sensor(z, rng), FusionParams(fit_shift=True), space="inverse")
    assert fused.alignment.scale == pytest.approx(1 / 3.0, rel=5e-3)
    assert fused.alignment.shift == pytest.approx(-0.5 / 3.0, abs=3e-3)
    holes = fused.filled
    assert holes.any() and np.max(np.abs(fused.depth[holes] - z[holes]) / z[holes]) < 0.01


def test_holes_are_filled_with_the_aligned_model_depth_only(rng):
    z = _scene_depth()
    sensor = _holey_sensor(z, rng, outlier_fraction=0.0)
    model = z / 2.0
    model[:5, :5] = np.nan                                              # no model depth either
    sensor[:5, :5] = np.nan
    fused = fuse_depth(model, sensor)
    kept = valid_depth(sensor)
    np.testing.assert_array_equal(fused.depth[kept], sensor[kept])      # sensor pixels untouched
    assert np.array_equal(fused.filled, ~kept & valid_depth(model))
    np.testing.assert_allclose(fused.depth[fused.filled], z[fused.filled], rtol=5e-3)
    assert np.isnan(fused.depth[:5, :5]).all() and fused.depth.dtype == np.float32
    with pytest.raises(InputError, match="differ in size"):
        fill_holes(sensor, model[:, :-1])


def test_local_correction_removes_a_smooth_model_error(rng):
    z = _scene_depth((240, 320))
    v, u = np.mgrid[0:240, 0:320]
    model = z * (1.0 + 0.04 * np.sin(u / 40.0) * np.cos(v / 30.0)) / 1.3   # a smooth 4 % error, wrong scale
    sensor = _holey_sensor(z, rng, hole_fraction=0.9, outlier_fraction=0.02, noise=0.002)
    sensor[60:140, 100:200] = np.nan                                    # and a large hole
    errors = {}
    for sigma in (0.0, 8.0):
        fused = fuse_depth(model, sensor, FusionParams(local_sigma_px=sigma))
        holes = fused.filled
        errors[sigma] = float(np.median(np.abs(fused.depth[holes] / z[holes] - 1.0)))
    assert errors[0.0] > 0.01 and errors[8.0] < 0.3 * errors[0.0], errors
    with pytest.raises(InputError, match="local_sigma_px"):
        FusionParams(local_sigma_px=-1.0).validate()


def test_too_few_valid_sensor_pixels_is_a_clear_error(rng):
    z = _scene_depth()
    sensor = np.full(z.shape, np.nan, np.float32)
    sensor[0, :150] = z[0, :150]
    with pytest.raises(InputError, match=r"only 150 sensor depth pixels .* set depth_source: model"):
        align_depth(z, sensor)
    with pytest.raises(InputError, match="must be the same HxW"):
        align_depth(z[:, :10], z)


def test_unexplainable_or_degenerate_depth_is_refused(rng):
    z = _scene_depth()
    with pytest.raises(InputError, match="could not be aligned"):
        align_depth(rng.uniform(0.3, 5.0, z.shape), z)                   # unrelated to the sensor
    with pytest.raises(InputError, match="flat"):
        align_depth(np.full(z.shape, 2.0), z, FusionParams(fit_shift=True))


# --------------------------------------------------------------------------------------- noise model
def test_relative_error_term_widens_sigma_and_defaults_to_none():
    sensor = DepthNoiseModel()
    assert sensor.rel == 0.0 and sensor.sigma(2.0) == pytest.approx(0.001 + 0.002 * 4)
    model = sensor.widened(0.05)
    assert model.sigma(2.0) == pytest.approx(0.009 + 0.1)
    assert model.widened(0.01).rel == 0.05                              # never narrowed
    # per-point noise averages over an object, a model's relative error does not
    assert model.center_sigma(2.0, 10000) - sensor.center_sigma(2.0, 10000) == pytest.approx(0.1)


# ------------------------------------------------------------------------------ pipeline depth_source
def _frame(depth, encoding="32FC1", stamp=1.0):
    return Frame(rgb=SCENE.rgb, depth=depth, depth_encoding=encoding, camera=SCENE.camera, stamp=stamp,
                 segmentation=Segmentation(SCENE.mask, SCENE.ids, SCENE.labels, [1.0] * len(SCENE.ids)))


def _errors(objects):
    """Largest center error and largest size error against the analytic truth, metres."""
    assert sorted(o.label for o in objects) == sorted(t.label for t in SCENE.objects)
    center = size = 0.0
    for obj in objects:
        truth = next(t for t in SCENE.objects if t.label == obj.label)
        center = max(center, float(np.linalg.norm(obj.center - truth.center_c)))
        size = max(size, float(np.max(np.abs(obj.size - truth.size))))
    return center, size


def _scaled_truth(scale):
    """A depth predictor returning the true depth times an unknown ``scale`` (a model off in scale)."""
    calls = []

    def predict(rgb):
        calls.append(rgb.shape)
        return np.nan_to_num(SCENE.depth, nan=0.0) * scale
    return predict, calls


def test_fuse_recovers_the_geometry_from_a_holey_sensor_and_a_scaled_model(rng):
    sensor = SCENE.depth.copy()
    sensor[rng.random(sensor.shape) < 0.6] = np.nan                     # 60 % of the pixels missing
    predict, calls = _scaled_truth(0.8)
    pipeline = FramePipeline(PipelineConfig(depth_source="fuse"), depth_predictor=predict)
    result = pipeline.process(_frame(encode_depth_mm(sensor), "16UC1"))
    assert calls == [SCENE.rgb.shape] and "depth_model" in result.timings_ms
    assert pipeline.last_depth_fit.scale == pytest.approx(1.25, rel=2e-3)
    center, size = _errors(result.objects)
    assert center < 0.01 and size < 0.01
    # the same model depth unaligned (depth_source model) is 20 % off: the geometry is visibly wrong
    model_only = FramePipeline(PipelineConfig(depth_source="model"), depth_predictor=_scaled_truth(0.8)[0])
    center_m, _ = _errors(model_only.process(_frame(None)).objects)
    assert center_m > 0.1


def test_fuse_aligns_a_relative_model_in_inverse_depth(rng):
    def disparity(rgb):                                                 # relative inverse depth, unknown affine
        with np.errstate(divide="ignore"):
            return np.where(np.isfinite(SCENE.depth), 2.0 / SCENE.depth + 0.3, 0.0)
    disparity.metric = False
    sensor = SCENE.depth.copy()
    sensor[rng.random(sensor.shape) < 0.6] = np.nan
    pipeline = FramePipeline(PipelineConfig(depth_source="fuse"), depth_predictor=disparity)
    result = pipeline.process(_frame(encode_depth_mm(sensor), "16UC1"))
    fit = pipeline.last_depth_fit
    assert fit.space == "inverse" and fit.scale == pytest.approx(0.5, rel=5e-3)
    assert fit.shift == pytest.approx(-0.15, abs=3e-3)                  # the shift is always fitted here
    center, size = _errors(result.objects)
    assert center < 0.01 and size < 0.01


def test_model_source_needs_no_depth_image_and_widens_the_query_noise():
    predict, calls = _scaled_truth(1.0)
    config = PipelineConfig(depth_source="model")
    pipeline = FramePipeline(config, depth_predictor=predict)
    result = pipeline.process(_frame(None))                             # an RGB-only frame
    center, size = _errors(result.objects)
    assert center < 0.01 and size < 0.01
    rel = config.depth_model.relative_error
    assert pipeline.config.noise.rel == rel and config.noise.rel == 0.0   # the caller's config is kept
    assert pipeline.config.lifting.noise.rel == 0.0                     # per-pixel lifting bands unchanged
    assert FramePipeline(PipelineConfig()).config.noise.rel == 0.0      # sensor depth: unchanged


@pytest.mark.parametrize("source", ["sensor", "fuse"])
def test_rgb_only_frame_without_model_source_is_refused(source):
    pipeline = FramePipeline(PipelineConfig(depth_source=source), depth_predictor=_scaled_truth(1.0)[0])
    with pytest.raises(InputError, match="no depth image; for an RGB-only camera set depth_source: model"):
        pipeline.process(_frame(None))
    assert pipeline.memory.snapshot().objects == ()                  # memory untouched


def test_bad_depth_sources_and_predictions_are_clear_errors():
    with pytest.raises(InputError, match="unknown depth_source 'lidar'"):
        FramePipeline(PipelineConfig(depth_source="lidar"), depth_predictor=_scaled_truth(1.0)[0])

    def relative(rgb):
        return np.ones(rgb.shape[:2])
    relative.metric = False
    with pytest.raises(InputError, match="predicts relative depth"):
        FramePipeline(PipelineConfig(depth_source="model"), depth_predictor=relative)
    wrong_size = FramePipeline(PipelineConfig(depth_source="model"), depth_predictor=lambda rgb: np.ones((5, 5)))
    with pytest.raises(InputError, match="returned a"):
        wrong_size.process(_frame(None))
    invalid = FramePipeline(PipelineConfig(depth_source="model"), depth_predictor=lambda rgb: -np.ones(rgb.shape[:2]))
    with pytest.raises(InputError, match="no valid depth"):
        invalid.process(_frame(None))
    few = np.full(SCENE.depth.shape, np.nan, np.float32)
    few[0, :50] = 1.0
    fuse = FramePipeline(PipelineConfig(depth_source="fuse"), depth_predictor=_scaled_truth(1.0)[0])
    with pytest.raises(InputError, match="only 50 sensor depth pixels"):
        fuse.process(_frame(few))
