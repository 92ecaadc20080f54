"""Image/CameraInfo/InstanceSegmentation/SpatialObject conversions (messages only, no DDS)."""
import array

import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, Image

from spatial_vlm_ros.core.camera import CameraModel
from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.gravity_frame import GravityFrame
from spatial_vlm_ros.core.observation import TrackedObject
from spatial_vlm_ros.core.transforms import RigidTransform, quaternion_to_matrix
from spatial_vlm_ros.ros.conversions import (
    array_to_image,
    camera_info_from_model,
    camera_model_from_info,
    color_to_rgb,
    image_to_array,
    object_box,
    seconds_to_stamp,
    segmentation_from_msg,
    segmentation_to_msg,
    spatial_object_msg,
    stamp_to_seconds,
)

RNG = np.random.default_rng(7)


@pytest.mark.parametrize("encoding,dtype,shape", [
    ("rgb8", np.uint8, (4, 5, 3)), ("bgr8", np.uint8, (4, 5, 3)), ("mono8", np.uint8, (4, 5)),
    ("16UC1", np.uint16, (4, 5)), ("mono16", np.uint16, (4, 5)), ("32FC1", np.float32, (4, 5))])
def test_image_round_trip(encoding, dtype, shape):
    pixels = (RNG.random(shape) * 200).astype(dtype)
    msg = array_to_image(pixels, encoding)
    back = image_to_array(msg)
    assert back.dtype == np.dtype(dtype) and back.shape == shape
    np.testing.assert_array_equal(back, pixels)


def _raw_image(rows: bytes, height, width, encoding, step, bigendian=False) -> Image:
    msg = Image(height=height, width=width, encoding=encoding, step=step, is_bigendian=int(bigendian))
    msg.data = array.array("B", rows)
    return msg


def test_padded_rows_are_cropped_by_step():
    pixels = np.arange(3 * 4, dtype=np.uint16).reshape(3, 4) + 1000
    padded = np.zeros((3, 6), dtype="<u2")         # 4 pixels + 2 padding pixels per row
    padded[:, :4] = pixels
    padded[:, 4:] = 65535
    msg = _raw_image(padded.tobytes(), 3, 4, "16UC1", step=12)
    np.testing.assert_array_equal(image_to_array(msg), pixels)


def test_big_endian_depth_is_swapped():
    pixels = np.array([[1, 258], [65535, 1000]], dtype=np.uint16)
    msg = _raw_image(pixels.astype(">u2").tobytes(), 2, 2, "16UC1", step=4, bigendian=True)
    out = image_to_array(msg)
    assert out.dtype.isnative
    np.testing.assert_array_equal(out, pixels)
    floats = np.array([[0.5, 1.25]], dtype=np.float32)
    msg = _raw_image(floats.astype(">f4").tobytes(), 1, 2, "32FC1", step=8, bigendian=True)
    np.testing.assert_array_equal(image_to_array(msg), floats)


def test_bgr_is_returned_as_rgb():
    rgb = RNG.integers(0, 255, (3, 4, 3), dtype=np.uint8)
    np.testing.assert_array_equal(color_to_rgb(array_to_image(rgb[:, :, ::-1], "bgr8")), rgb)
    np.testing.assert_array_equal(color_to_rgb(array_to_image(rgb, "rgb8")), rgb)


def test_four_channel_color_drops_alpha_and_swaps_bgr():
    rgb = RNG.integers(0, 255, (3, 4, 3), dtype=np.uint8)
    alpha = RNG.integers(0, 255, (3, 4, 1), dtype=np.uint8)
    bgra = np.concatenate([rgb[:, :, ::-1], alpha], axis=2)
    np.testing.assert_array_equal(color_to_rgb(array_to_image(bgra, "bgra8")), rgb)
    rgba = np.concatenate([rgb, alpha], axis=2)
    np.testing.assert_array_equal(color_to_rgb(array_to_image(rgba, "rgba8")), rgb)


@pytest.mark.parametrize("msg,needle", [
    (_raw_image(b"\0" * 12, 2, 2, "yuv422", 6), "unsupported encoding 'yuv422'"),
    (_raw_image(b"\0" * 6, 2, 2, "16UC1", 4), r"expected step\*height = 8"),
    (_raw_image(b"\0" * 12, 2, 2, "16UC1", 4), r"data holds 12 bytes, expected step\*height = 8 \(2x2, step 4\)"),
    (_raw_image(b"\0" * 8, 2, 2, "16UC1", 2), "step 2 is smaller"),
    (_raw_image(b"", 0, 0, "16UC1", 0), "empty image"),
])
def test_malformed_images_raise_input_error(msg, needle):
    with pytest.raises(InputError, match=needle):
        image_to_array(msg)


def test_color_rejects_non_color_encodings():
    with pytest.raises(InputError, match="color image: unsupported encoding '16UC1'"):
        color_to_rgb(array_to_image(np.zeros((2, 2), np.uint16), "16UC1"))


def test_camera_info_round_trip_and_validation():
    camera = CameraModel.from_intrinsics(525.0, 520.0, 319.5, 239.5, 640, 480, D=[0.1, -0.2, 0, 0, 0.01],
                                         frame_id="cam_optical")
    info = camera_info_from_model(camera, seconds_to_stamp(3.5))
    back = camera_model_from_info(info)
    assert back == camera
    assert back.frame_id == "cam_optical"
    with pytest.raises(InputError, match="focal"):
        camera_model_from_info(CameraInfo(width=640, height=480))          # all-zero K
    bad = camera_info_from_model(camera)
    bad.k[0] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        camera_model_from_info(bad)


def test_segmentation_round_trip_and_checks():
    mask = np.zeros((6, 8), np.uint16)
    mask[1:3, 1:3] = 3
    mask[4:6, 5:8] = 300
    msg = segmentation_to_msg(mask, [3, 300], ["mug", "bowl"], [0.9, 0.8])
    assert msg.mask.encoding == "16UC1"
    seg = segmentation_from_msg(msg)
    np.testing.assert_array_equal(seg.mask_ids, mask)
    assert seg.ids == [3, 300] and seg.labels == ["mug", "bowl"]
    assert seg.scores == pytest.approx([0.9, 0.8])
    small = segmentation_to_msg(mask.clip(0, 5).astype(np.uint8), [3], ["mug"])
    assert small.mask.encoding == "mono8"
    msg.labels = ["mug"]
    with pytest.raises(InputError, match="2 ids, 1 labels and 2 scores"):
        segmentation_from_msg(msg)
    msg.mask = array_to_image(mask.astype(np.float32), "32FC1")
    with pytest.raises(InputError, match="instance mask: unsupported encoding '32FC1'"):
        segmentation_from_msg(msg)


def test_stamps_and_spatial_object():
    assert stamp_to_seconds(seconds_to_stamp(12.345678901)) == pytest.approx(12.345678901, abs=1e-9)
    stamp = seconds_to_stamp(1.9999999999)
    assert (stamp.sec, stamp.nanosec) == (2, 0)
    obj = TrackedObject(id="mug_1", label="mug", score=0.9, center=np.array([0.1, -0.2, 1.5]),
                        size=np.array([0.08, 0.09, 0.1]), box_min=np.zeros(3), box_max=np.ones(3),
                        points=np.zeros((0, 3)), observations=4, last_seen=7.25)
    level = GravityFrame.camera_default()
    msg = spatial_object_msg(obj, level)
    assert (msg.id, msg.label, msg.observations) == ("mug_1", "mug", 4)
    assert (msg.center.x, msg.center.y, msg.center.z) == pytest.approx((0.1, -0.2, 1.5))
    assert (msg.size.x, msg.size.y, msg.size.z) == pytest.approx((0.08, 0.09, 0.1))
    assert stamp_to_seconds(msg.last_seen) == pytest.approx(7.25)
    # a level camera: the box's height axis (z) is the camera's -y, its width axis (x) the camera's x
    q = (msg.orientation.x, msg.orientation.y, msg.orientation.z, msg.orientation.w)
    np.testing.assert_allclose(quaternion_to_matrix(q) @ [0.0, 0.0, 1.0], [0.0, -1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(quaternion_to_matrix(q) @ [1.0, 0.0, 0.0], [1.0, 0.0, 0.0], atol=1e-12)


def test_spatial_object_in_a_target_frame():
    obj = TrackedObject(id="box_1", label="box", score=0.5, center=np.array([0.0, 0.1, 2.0]),
                        size=np.array([0.2, 0.3, 0.4]), box_min=np.zeros(3), box_max=np.ones(3),
                        points=np.zeros((0, 3)))
    gravity = GravityFrame.from_up([0.0, -0.8, -0.6])              # a camera pitched down
    # camera optical frame 1 m above base_link, level camera looking along +x (rotation only matters for up)
    to_base = RigidTransform((-0.5, 0.5, -0.5, 0.5), (0.0, 0.0, 1.0), "base_link", "camera_optical")
    msg = spatial_object_msg(obj, gravity, to_base)
    center = (msg.center.x, msg.center.y, msg.center.z)
    np.testing.assert_allclose(center, to_base.apply(obj.center), atol=1e-12)
    np.testing.assert_allclose(center, (2.0, 0.0, 0.9), atol=1e-12)   # 2 m ahead, 10 cm below the camera
    q = (msg.orientation.x, msg.orientation.y, msg.orientation.z, msg.orientation.w)
    # the box's up axis in base_link: the camera-frame up, rotated into base_link
    np.testing.assert_allclose(quaternion_to_matrix(q) @ [0.0, 0.0, 1.0], to_base.rotate(gravity.up), atol=1e-12)
    box = object_box(obj, gravity, to_base)
    assert box.frame_id == "base_link"
    np.testing.assert_allclose(box.orientation_xyzw, q)
