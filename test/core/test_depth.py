"""decode_depth: the unit comes from the encoding; invalid readings become NaN; bad input is refused."""
import numpy as np
import pytest

from spatial_vlm_ros.core.depth import SUPPORTED_DEPTH_ENCODINGS, check_depth_image, decode_depth, encode_depth_mm
from spatial_vlm_ros.core.errors import InputError


@pytest.mark.parametrize("encoding", ["16UC1", "mono16"])
def test_millimetre_encodings(encoding):
    raw = np.array([[0, 1, 1000], [1500, 65535, 250]], dtype=np.uint16)
    m = decode_depth(raw, encoding)
    assert m.dtype == np.float32 and m.shape == (2, 3)
    assert np.isnan(m[0, 0])                                   # 0 = no reading
    np.testing.assert_allclose(m[0, 1:], [0.001, 1.0], rtol=1e-6)
    np.testing.assert_allclose(m[1], [1.5, 65.535, 0.25], rtol=1e-6)


def test_big_endian_millimetres_decode_to_the_same_metres():
    raw = np.array([[1000, 2345]], dtype=">u2")
    np.testing.assert_allclose(decode_depth(raw, "16UC1"), [[1.0, 2.345]], rtol=1e-6)


def test_float_metres_with_invalid_values():
    raw = np.array([[0.0, -1.0, np.nan], [np.inf, -np.inf, 1.5]], dtype=np.float32)
    m = decode_depth(raw, "32FC1")
    assert np.isnan(m[0]).all() and np.isnan(m[1, :2]).all()
    assert m[1, 2] == np.float32(1.5)
    assert raw[0, 0] == 0.0 and raw[1, 2] == np.float32(1.5)    # the input is left untouched


def test_single_channel_3d_array_is_accepted():
    raw = np.full((4, 5, 1), 800, dtype=np.uint16)
    np.testing.assert_allclose(decode_depth(raw, "16UC1"), np.full((4, 5), 0.8), rtol=1e-6)


@pytest.mark.parametrize("encoding", ["rgb8", "16SC1", "32FC3", "", "16uc1"])
def test_unsupported_encoding_names_the_supported_ones(encoding):
    with pytest.raises(InputError) as err:
        decode_depth(np.zeros((2, 2), np.uint16), encoding)
    for supported in SUPPORTED_DEPTH_ENCODINGS:
        assert supported in str(err.value)


@pytest.mark.parametrize("array, encoding, message", [
    (np.zeros((2, 2), np.float32), "16UC1", "uint16"),
    (np.zeros((2, 2), np.uint8), "mono16", "uint16"),
    (np.zeros((2, 2), np.uint16), "32FC1", "float"),
    (np.zeros((0, 4), np.uint16), "16UC1", "non-empty"),
    (np.zeros(5, np.float32), "32FC1", r"\(H, W\)"),
    (np.zeros((2, 2, 3), np.uint16), "16UC1", r"\(H, W\)"),
])
def test_data_that_does_not_match_the_encoding_is_refused(array, encoding, message):
    with pytest.raises(InputError, match=message):
        decode_depth(array, encoding)


def test_encode_millimetres_round_trip():
    m = np.array([[np.nan, 0.2504, 1.0], [70.0, -1.0, 3.2]], dtype=np.float32)
    mm = encode_depth_mm(m)
    assert mm.dtype == np.uint16
    assert mm[0, 0] == 0 and mm[1, 0] == 0 and mm[1, 1] == 0  # invalid or beyond 65.535 m -> 0
    back = decode_depth(mm, "16UC1")
    np.testing.assert_allclose(back[[0, 0, 1], [1, 2, 2]], [0.250, 1.0, 3.2], atol=5e-4)


def test_check_depth_image():
    check_depth_image(np.zeros((4, 5), np.float32), (4, 5))
    with pytest.raises(InputError, match="decode_depth"):
        check_depth_image(np.zeros((4, 5), np.uint16))
    with pytest.raises(InputError, match=r"depth image: expected 6x4 \(camera_info\), got 5x4"):
        check_depth_image(np.zeros((4, 5), np.float32), (4, 6))
    with pytest.raises(InputError, match=r"\(H, W\)"):
        check_depth_image([[1.0]])
