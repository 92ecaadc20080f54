"""2D-box conversions: spatial_vlm_interfaces/Detections2D <-> Detection2D, and the vision_msgs
Detection2DArray path, tested on duck-typed stand-ins (SimpleNamespace) since vision_msgs is not installable
here. Messages only, no DDS."""
from types import SimpleNamespace as NS

import pytest

from spatial_vlm_interfaces.msg import Detection2D as Detection2DMsg
from spatial_vlm_interfaces.msg import Detections2D
from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.frame import Detection2D
from spatial_vlm_ros.ros import conversions as conv
from spatial_vlm_ros.ros.perception_node import detections_input

BOXES = [Detection2D("mug", 0.9, 120.5, 80.25, 30.0, 42.0, "7"),
         Detection2D("cutting board", 0.25, 300.0, 200.0, 180.5, 60.0, "")]


def test_detections_round_trip_through_the_message():
    msg = conv.detections_to_msg(BOXES, conv.seconds_to_stamp(12.5), "cam")
    assert msg.header.frame_id == "cam" and conv.stamp_to_seconds(msg.header.stamp) == 12.5
    assert msg.detections[0].center_x == 120.5 and msg.detections[0].id == "7"
    back = conv.detections_from_msg(msg)
    assert [b.label for b in back] == ["mug", "cutting board"] and [b.id for b in back] == ["7", ""]
    assert back[0] == BOXES[0]                                   # float64 box fields: exact
    assert back[1].score == pytest.approx(0.25)                  # float32 score


def test_empty_and_odd_values_pass_through_unchanged():
    """Zero detections is no objects, not an error; NaN/negative scores and boxes outside the image are the
    boxes detector's to skip and report, so the conversion keeps them."""
    assert conv.detections_from_msg(Detections2D()) == []
    msg = Detections2D(detections=[Detection2DMsg(label="x", score=float("nan"), center_x=-50.0, center_y=1e6,
                                                  size_x=-3.0, size_y=0.0),
                                   Detection2DMsg(label="y", score=-1.0, size_x=5.0, size_y=5.0)])
    nan_box, negative = conv.detections_from_msg(msg)
    assert nan_box.score != nan_box.score and (nan_box.center_x, nan_box.size_x) == (-50.0, -3.0)
    assert negative.score == -1.0


def _vision_detection(cx, cy, sx, sy, results, id_="", humble=True):
    center = NS(position=NS(x=cx, y=cy), theta=0.0) if humble else NS(x=cx, y=cy, theta=0.0)
    return NS(header=NS(), results=results, bbox=NS(center=center, size_x=sx, size_y=sy), id=id_)


def _hypothesis(class_id, score):
    return NS(hypothesis=NS(class_id=class_id, score=score), pose=NS())


def test_vision_msgs_humble_layout():
    msg = NS(header=NS(), detections=[
        _vision_detection(100.0, 50.0, 20.0, 10.0, [_hypothesis("mug", 0.8), _hypothesis("cup", 0.1)], "track_3"),
        _vision_detection(10.0, 20.0, 4.0, 6.0, [_hypothesis("bowl", 0.55)])])
    mug, bowl = conv.detections_from_vision_msgs(msg)
    assert mug == Detection2D("mug", 0.8, 100.0, 50.0, 20.0, 10.0, "track_3")      # results[0], not the best
    assert bowl == Detection2D("bowl", 0.55, 10.0, 20.0, 4.0, 6.0, "")


def test_vision_msgs_older_layouts():
    """Pre-Humble: bbox.center is a Pose2D (x, y, theta) and the hypothesis has id/score directly; a
    detection without results is a class-agnostic 'object'; an absent tracker id is ''."""
    old = _vision_detection(5.0, 6.0, 7.0, 8.0, [NS(id="bottle", score=0.4)], humble=False)
    del old.id
    agnostic = _vision_detection(1.0, 2.0, 3.0, 4.0, [])
    bottle, thing = conv.detections_from_vision_msgs(NS(detections=[old, agnostic]))
    assert bottle == Detection2D("bottle", 0.4, 5.0, 6.0, 7.0, 8.0, "")
    assert thing == Detection2D("object", 1.0, 1.0, 2.0, 3.0, 4.0, "")
    assert conv.detections_from_vision_msgs(NS(detections=[])) == []


def test_vision_msgs_without_a_box_is_an_input_error():
    broken = NS(results=[_hypothesis("mug", 0.9)], bbox=NS(size_x=1.0, size_y=1.0), id="")
    with pytest.raises(InputError, match="detection 0: unreadable bounding box"):
        conv.detections_from_vision_msgs(NS(detections=[broken]))


def test_detections_input_types():
    cls, convert = detections_input("spatial_vlm_interfaces/Detections2D")
    assert cls is Detections2D and convert is conv.detections_from_msg
    if conv.VisionDetection2DArray is None:
        with pytest.raises(InputError, match="vision_msgs is not installed"):
            detections_input("vision_msgs/Detection2DArray")
    else:                                            # a real ROS install with vision_msgs
        cls, convert = detections_input("vision_msgs/Detection2DArray")
        assert cls is conv.VisionDetection2DArray and convert is conv.detections_from_vision_msgs
    with pytest.raises(InputError, match="not one of"):
        detections_input("yolo_msgs/DetectionArray")
