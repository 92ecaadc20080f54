"""rosbag2 write/read without ROS: bit-exact images, CameraInfo, instances, 2D detections, ground truth sidecar,
and the message definitions stored in the bag (what Foxglove / ros2 bag need)."""
import numpy as np
import pytest
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from spatial_vlm_ros.bag.messages import CameraTopics, image_array, image_msg
from spatial_vlm_ros.bag.reader import BagReader, find_ground_truth, read_frames
from spatial_vlm_ros.bag.writer import write_bag, write_dataset_bag
from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.sim.dataset import Frame, GeneratorConfig, SceneRecord, generate_scenes, load_dataset
from spatial_vlm_ros.sim.detections import DetectionJitter, detections_from_mask
from spatial_vlm_ros.sim.scene_sampler import SamplerConfig

W, H = 64, 48
INFO = {"width": W, "height": H, "k": [50.0, 0, 31.5, 0, 50.0, 23.5, 0, 0, 1], "d": [0.0] * 5,
        "distortion_model": "plumb_bob", "frame_id": "cam_optical"}


def _frames(rng, n=5, t0=1_000_000_000_000, big_ids=False):
    out = []
    for i in range(n):
        mask = rng.integers(0, 4, (H, W)).astype(np.uint16)
        ids, labels = [1, 2, 3], ["mug", "bowl", "teddy bear"]
        if big_ids:
            mask[mask == 3] = 300
            ids[2] = 300
        gt = {"stamp_ns": t0 + i * 33_333_333, "scene_id": "s", "gravity": {"rotation": np.eye(3).tolist()},
              "objects": [], "relations": [], "quantities": []}
        out.append(Frame(t0 + i * 33_333_333, rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
                         rng.integers(0, 65536, (H, W), dtype=np.uint16), mask, ids, labels, INFO, gt))
    return out


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
@pytest.mark.parametrize("big_ids", [False, True])
def test_round_trip_is_bit_exact(storage, big_ids, tmp_path, rng):
    frames = _frames(rng, big_ids=big_ids)
    bag = write_bag([SceneRecord("s", frames)], tmp_path / "bag", storage=storage)
    with BagReader(bag) as reader:
        assert reader.topics == {
            "/camera/color/image_raw": "sensor_msgs/msg/Image",
            "/camera/aligned_depth_to_color/image_raw": "sensor_msgs/msg/Image",
            "/camera/color/camera_info": "sensor_msgs/msg/CameraInfo",
            "/camera/instances": "spatial_vlm_interfaces/msg/InstanceSegmentation",
            "/camera/detections": "spatial_vlm_interfaces/msg/Detections2D"}
        assert reader.message_count == 5 * len(frames)
        read = reader.frames()
        gt = reader.ground_truth()
    assert [f.stamp_ns for f in read] == [f.stamp_ns for f in frames]
    for a, b in zip(read, frames):
        assert np.array_equal(a.rgb, b.rgb)
        assert np.array_equal(a.depth, b.depth_mm) and a.depth_encoding == "16UC1"
        assert np.array_equal(a.mask, b.mask)
        assert a.mask.dtype == (np.uint16 if big_ids else np.uint8)
        assert a.ids == b.ids and a.labels == b.labels and a.scores == [1.0] * 3
        assert a.camera_info["k"] == INFO["k"] and a.camera_info["frame_id"] == "cam_optical"
        assert a.depth_m[b.depth_mm == 0].size == 0 or np.isnan(a.depth_m[b.depth_mm == 0]).all()
        assert a.detections == detections_from_mask(b.mask, b.ids, b.labels)      # float64 boxes, exact
        assert [d.label for d in a.detections] == b.labels and [d.id for d in a.detections] == \
            [str(i) for i in b.ids]
    assert sorted(gt) == [f.stamp_ns for f in frames]


def test_bag_carries_message_definitions(tmp_path, rng):
    """A reader that has never seen our custom message decodes it from the bag alone (as Foxglove does)."""
    bag = write_bag([SceneRecord("s", _frames(rng, n=2))], tmp_path / "bag")
    store = get_typestore(Stores.ROS2_KILTED)
    assert "spatial_vlm_interfaces/msg/InstanceSegmentation" not in store.types
    with Reader(bag) as reader:
        conn = next(c for c in reader.connections if c.topic == "/camera/instances")
        assert "uint16[] ids" in conn.msgdef.data and "sensor_msgs/Image mask" in conn.msgdef.data
        store.register(get_types_from_msg(conn.msgdef.data, conn.msgtype))
        _, _, raw = next(reader.messages([conn]))
        msg = store.deserialize_cdr(raw, conn.msgtype)
    assert list(msg.labels) == ["mug", "bowl", "teddy bear"] and msg.mask.encoding == "mono8"
    assert (bag / "metadata.yaml").read_text().count("type_description_hash") == 5


def test_detections_topic_decodes_from_the_bag_alone(tmp_path, rng):
    """/camera/detections carries the Detections2D definition (with the nested Detection2D) and the boxes
    are the tight boxes of the ground-truth masks."""
    frames = _frames(rng, n=2)
    frames[1].mask[:] = 0                          # a frame without visible objects: an empty message
    bag = write_bag([SceneRecord("s", frames)], tmp_path / "bag")
    store = get_typestore(Stores.ROS2_KILTED)
    with Reader(bag) as reader:
        conn = next(c for c in reader.connections if c.topic == "/camera/detections")
        assert conn.msgtype == "spatial_vlm_interfaces/msg/Detections2D"
        assert "Detection2D[] detections" in conn.msgdef.data and "float64 center_x" in conn.msgdef.data
        store.register(get_types_from_msg(conn.msgdef.data, conn.msgtype))
        for name, text in _nested_definitions(conn.msgdef.data).items():
            store.register(get_types_from_msg(text, name))
        msgs = [store.deserialize_cdr(raw, conn.msgtype) for _, _, raw in reader.messages([conn])]
    assert len(msgs) == 2 and len(msgs[1].detections) == 0
    rows, cols = np.nonzero(frames[0].mask == 2)
    bowl = next(d for d in msgs[0].detections if d.label == "bowl")
    assert bowl.id == "2" and bowl.score == 1.0
    assert (bowl.center_x, bowl.size_x) == (0.5 * (cols.min() + cols.max()), cols.max() - cols.min() + 1.0)
    assert (bowl.center_y, bowl.size_y) == (0.5 * (rows.min() + rows.max()), rows.max() - rows.min() + 1.0)
    assert read_frames(bag)[1].detections == []


def _nested_definitions(msgdef: str) -> dict[str, str]:
    """The dependent definitions of a ros2msg schema (``=== \nMSG: pkg/msg/Name`` sections)."""
    out = {}
    for part in msgdef.split("=" * 80)[1:]:
        head, _, body = part.strip().partition("\n")
        name = head.removeprefix("MSG: ").strip()
        out[name if "/msg/" in name else name.replace("/", "/msg/")] = body
    return out


def test_detections_can_be_jittered_or_left_out(tmp_path, rng):
    frames = _frames(rng, n=2)
    jitter = DetectionJitter(edge_sigma_px=3.0, score_sigma=0.1)
    a = read_frames(write_bag([SceneRecord("s", frames)], tmp_path / "a", detection_jitter=jitter))
    b = read_frames(write_bag([SceneRecord("s", frames)], tmp_path / "b", detection_jitter=jitter))
    exact = [detections_from_mask(f.mask, f.ids, f.labels) for f in frames]
    assert [f.detections for f in a] == [f.detections for f in b]            # seeded: reproducible
    assert [f.detections for f in a] != exact
    scores = [d.score for f in a for d in f.detections]
    assert all(0.0 <= x <= 1.0 for x in scores) and any(x != 1.0 for x in scores)
    with BagReader(write_bag([SceneRecord("s", frames)], tmp_path / "c", detections=False)) as reader:
        assert "/camera/detections" not in reader.topics
        assert all(f.detections is None for f in reader.frames())


def test_generated_dataset_to_bag(tmp_path):
    data = generate_scenes(tmp_path / "data", n_scenes=1, frames_per_scene=2, seed=3, width=W, height=H,
                           progress=False, config=GeneratorConfig(sampler=SamplerConfig(min_objects=3, max_objects=3)))
    bag = write_dataset_bag(data, tmp_path / "bag", progress=False)
    frames = read_frames(bag)
    src = load_dataset(data)[0].frames
    assert len(frames) == 2
    for a, b in zip(frames, src):
        assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.depth, b.depth_mm)
        assert np.array_equal(a.mask, b.mask) and a.labels == b.labels
    assert find_ground_truth(bag) == bag / "ground_truth.json"
    with BagReader(bag) as reader:
        gt = reader.ground_truth()
    assert gt[src[1].stamp_ns]["objects"] == src[1].ground_truth["objects"]


def test_foreign_encodings_are_decoded(rng):
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    msg = image_msg(rgb[..., ::-1], "bgr8", 5, "cam")
    assert np.array_equal(image_array(msg)[..., ::-1], rgb)
    depth = rng.random((H, W)).astype(np.float32)
    assert np.array_equal(image_array(image_msg(depth, "32FC1", 5, "cam")), depth)
    # big-endian 16-bit rows padded to a 4-byte multiple, as some drivers send them
    d16 = rng.integers(0, 65536, (H, W + 1), dtype=np.uint16)
    padded = np.zeros((H, (W + 1) * 2 + 2), np.uint8)
    padded[:, : (W + 1) * 2] = d16.astype(">u2").view(np.uint8).reshape(H, -1)
    msg = image_msg(np.zeros((H, W + 1), np.uint16), "16UC1", 5, "cam")
    msg.is_bigendian, msg.step, msg.data = 1, padded.shape[1], padded.ravel()
    assert np.array_equal(image_array(msg), d16)


def test_bad_requests_raise_input_errors(tmp_path, rng):
    frames = _frames(rng, n=2)
    with pytest.raises(InputError, match="storage"):
        write_bag([SceneRecord("s", frames)], tmp_path / "a", storage="rosbag1")
    write_bag([SceneRecord("s", frames)], tmp_path / "b")
    with pytest.raises(InputError, match="exists"):
        write_bag([SceneRecord("s", frames)], tmp_path / "b")
    write_bag([SceneRecord("s", frames)], tmp_path / "b", overwrite=True)
    with pytest.raises(InputError, match="increase"):
        write_bag([SceneRecord("s", frames[::-1])], tmp_path / "c")
    with pytest.raises(InputError, match="does not exist"):
        BagReader(tmp_path / "nothing")
    with BagReader(tmp_path / "b") as reader, pytest.raises(InputError, match="no topic"):
        list(reader.raw_messages(["/nope"]))
    with pytest.raises(InputError, match="no color topic"):
        read_frames(tmp_path / "b", CameraTopics(color="/other/image"))
    with pytest.raises(InputError, match="encoding"):
        image_msg(np.zeros((2, 2)), "yuv422", 0, "cam")
