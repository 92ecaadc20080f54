"""Replay a bag into the node frame set by frame set: ``SteppedBagPlayer`` pauses at each set's boundary
while the evaluation asks its questions; ``replay_topics`` chooses the bag topics a detector needs. Stamps in
integer nanoseconds (header stamps, read from the CDR payload without deserialising).
"""
from __future__ import annotations

import math
import struct
import time
from collections.abc import Callable

from spatial_vlm_ros.bag.messages import CameraTopics
from spatial_vlm_ros.bag.player import BagPlayer

#: message types whose CDR payload starts with a std_msgs/Header (the stamp is read without deserialising)
HEADER_FIRST_TYPES = {"sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage", "sensor_msgs/msg/CameraInfo",
                      "spatial_vlm_interfaces/msg/InstanceSegmentation", "spatial_vlm_interfaces/msg/Detections2D"}


def header_stamp_ns(data: bytes) -> int | None:
    """Header stamp (ns) of a CDR-serialised message whose first field is a std_msgs/Header."""
    if len(data) < 12:
        return None
    little = data[1] in (0x01, 0x03)            # CDR_LE / PL_CDR_LE encapsulation
    sec, nsec = struct.unpack_from("<iI" if little else ">iI", data, 4)
    return int(sec) * 10**9 + int(nsec)


def replay_topics(detector: str, topics: CameraTopics, in_bag) -> list[str]:
    """Bag topics to replay for ``detector``: the camera topics, plus ``/camera/instances`` for ``external``
    and ``/camera/detections`` for ``boxes`` (each only where the bag has it)."""
    wanted = [topics.color, topics.depth, topics.camera_info]
    if detector == "external":
        wanted.append(topics.instances)
    detections = getattr(topics, "detections", None)
    if detector == "boxes" and detections:
        wanted.append(detections)
    return [t for t in wanted if t in in_bag]


class SteppedBagPlayer(BagPlayer):
    """``BagPlayer`` that pauses at frame-set boundaries: before publishing the first camera message stamped
    after a boundary it calls ``on_boundary(index)``, which may block (the questions are asked there), then
    resumes at recorded timing; boundaries after the bag's last message fire when the bag ends. Also records
    the wall time each color frame was published."""

    def __init__(self, bag, boundaries_ns: list[int], on_boundary: Callable[[int], None],
                 color_topic: str, **kwargs):
        super().__init__(bag, **kwargs)
        self.boundaries_ns = list(boundaries_ns)
        self.on_boundary = on_boundary
        self.color_topic = color_topic
        self.color_published: dict[int, float] = {}      # header stamp ns -> wall time.time() of publish
        self.last_color_ns: int | None = None
        self.error: BaseException | None = None
        self._next = 0

    @staticmethod
    def _stamp_of(m) -> int:
        if m.msgtype in HEADER_FIRST_TYPES:
            stamp = header_stamp_ns(m.data)
            if stamp is not None:
                return stamp
        return m.log_time_ns

    def _fire(self) -> None:
        i = self._next
        self._next += 1
        try:
            self.on_boundary(i)
        except BaseException as err:          # noqa: BLE001 - stop replaying, re-raised by the caller
            self.error = err
            self.stop()

    def _fire_until(self, stamp_ns: float) -> bool:
        """Fire every pending boundary before ``stamp_ns``; True if any fired."""
        fired = False
        while self._next < len(self.boundaries_ns) and stamp_ns > self.boundaries_ns[self._next] \
                and not self.stopped:
            self._fire()
            fired = True
        return fired

    def before_publish(self, message) -> bool:
        return self._fire_until(self._stamp_of(message))    # after a pause, resume the schedule here

    def after_publish(self, message) -> None:
        if message.topic == self.color_topic:
            stamp = self._stamp_of(message)
            self.color_published[stamp] = time.time()
            self.last_color_ns = stamp

    def end_of_pass(self) -> None:
        self._fire_until(math.inf)                           # sets at the end of the bag
