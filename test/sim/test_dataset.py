"""Scene sets on disk: generation, exact read-back, 30 Hz stamps, reproducibility, noise switch, sensor by name."""
import json
from dataclasses import replace

import numpy as np
import pytest

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.sim import dataset as D
from spatial_vlm_ros.sim.dataset import GeneratorConfig, generate_scenes, iter_scenes, load_dataset
from spatial_vlm_ros.sim.depth_sensors import ToFDepth
from spatial_vlm_ros.sim.scene_sampler import SamplerConfig

W, H = 160, 120
SMALL = GeneratorConfig(sampler=SamplerConfig(min_objects=3, max_objects=3))   # keeps the ground truth quick


@pytest.fixture(scope="module")
def noisy(tmp_path_factory):
    out = tmp_path_factory.mktemp("noisy")
    generate_scenes(out, n_scenes=2, frames_per_scene=2, noise=True, seed=7, width=W, height=H, progress=False,
                    config=SMALL)
    return out


def test_layout_and_exact_read_back(noisy):
    meta = json.loads((noisy / "dataset.json").read_text())
    assert meta["scenes"] == ["scene_0000", "scene_0001"] and meta["config"]["width"] == W
    assert meta["sensor"] == "stereo" and meta["config"]["sensor"]["disparity_step_px"] == 1 / 32   # noise=True
    scenes = load_dataset(noisy)
    cfg = GeneratorConfig(width=W, height=H, frames_per_scene=2, sampler=SMALL.sampler)
    # the same seed gives the same scene, and the disk format is lossless
    for loaded, made in zip(scenes, iter_scenes(1, seed=7, cfg=cfg)):
        assert loaded.description["objects"] == made.description["objects"]
        for a, b in zip(loaded.frames, made.frames):
            assert a.stamp_ns == b.stamp_ns
            assert np.array_equal(a.rgb, b.rgb) and a.rgb.dtype == np.uint8 and a.rgb.shape == (H, W, 3)
            assert np.array_equal(a.depth_mm, b.depth_mm) and a.depth_mm.dtype == np.uint16
            assert np.array_equal(a.mask, b.mask) and a.mask.dtype == np.uint16
            assert a.ids == b.ids and a.labels == b.labels and a.camera_info == b.camera_info
            assert a.ground_truth["objects"] == b.ground_truth["objects"]


def test_stamps_camera_info_and_ground_truth_keys(noisy):
    scenes = load_dataset(noisy)
    stamps = [f.stamp_ns for s in scenes for f in s.frames]
    assert stamps[1] - stamps[0] == round(1e9 / 30)                 # 30 Hz within a scene
    assert stamps[2] - stamps[1] > 0.5e9                            # a gap between scenes
    gt = json.loads((noisy / "ground_truth.json").read_text())
    assert sorted(int(k) for k in gt["frames"]) == stamps
    f = scenes[0].frames[1]
    assert f.ground_truth["stamp_ns"] == f.stamp_ns and f.ground_truth["frame_index"] == 1
    k = np.asarray(f.camera_info["k"]).reshape(3, 3)
    assert f.camera_info["width"] == W and k[0, 0] > 0 and k[2, 2] == 1 and f.camera_info["d"] == [0.0] * 5
    assert {o["instance_id"] for o in f.ground_truth["objects"]} == set(f.ids)
    assert set(np.unique(f.mask)) - {0} <= set(f.ids)


def test_camera_moves_between_frames_of_a_scene(noisy):
    scene = load_dataset(noisy)[0]
    p0, p1 = (np.asarray(f.ground_truth["camera_pose_world"]) for f in scene.frames)
    assert 1e-4 < np.linalg.norm(p0[:3, 3] - p1[:3, 3]) < 0.05     # a hand-held speed at 30 Hz
    assert not np.array_equal(scene.frames[0].rgb, scene.frames[1].rgb)


def test_noise_switch(tmp_path, noisy):
    clean_dir = generate_scenes(tmp_path, n_scenes=1, frames_per_scene=1, noise=False, seed=7, width=W, height=H,
                                progress=False, config=SMALL)
    clean = load_dataset(clean_dir)[0].frames[0]
    noisy_frame = load_dataset(noisy)[0].frames[0]
    objects = clean.mask > 0
    assert np.all(clean.depth_mm[objects] > 0)                       # perfect depth: no holes on objects
    assert np.mean(noisy_frame.depth_mm[objects] == 0) > 0.01        # the stereo model drops some
    assert np.array_equal(clean.mask, noisy_frame.mask)              # same scene and view either way


def test_sensor_by_name_same_views_and_its_noise_model_in_the_ground_truth(tmp_path, noisy, monkeypatch):
    seen = []
    real = D.frame_ground_truth
    monkeypatch.setattr(D, "frame_ground_truth", lambda *a: seen.append(a[6].noise) or real(*a))
    out = generate_scenes(tmp_path, n_scenes=1, frames_per_scene=1, seed=7, width=W, height=H, progress=False,
                          config=SMALL, sensor="tof")
    meta = json.loads((out / "dataset.json").read_text())
    assert meta["sensor"] == "tof" and meta["config"]["sensor"]["sigma_per_m"] == ToFDepth().sigma_per_m
    tof = load_dataset(out)[0].frames[0]
    stereo = load_dataset(noisy)[0].frames[0]
    assert np.array_equal(tof.mask, stereo.mask) and tof.camera_info == stereo.camera_info   # same view
    assert not np.array_equal(tof.depth_mm, stereo.depth_mm)
    fx = tof.camera_info["k"][0]
    assert seen == [ToFDepth().depth_model(fx)]                          # ground truth's ambiguity margins
    with pytest.raises(InputError, match="unknown depth sensor"):
        generate_scenes(tmp_path / "y", n_scenes=1, width=W, height=H, progress=False, sensor="sonar")
    perfect = next(iter_scenes(1, seed=7, cfg=replace(SMALL, width=W, height=H, sensor="perfect")))
    assert np.all(perfect.frames[0].depth_mm[perfect.frames[0].mask > 0] > 0)


def test_bad_requests(tmp_path):
    with pytest.raises(InputError):
        generate_scenes(tmp_path / "x", n_scenes=1, frames_per_scene=0, width=W, height=H, progress=False)
    with pytest.raises(InputError, match="dataset.json"):
        load_dataset(tmp_path)
