"""Read rosbag2 bags (MCAP or sqlite3, written here or recorded elsewhere) without ROS.

``BagReader`` gives the raw CDR messages in log-time order (what the player publishes), deserialised
messages, and RGB-D frames: color, depth, CameraInfo, instance masks and 2D boxes matched by header stamp.
Message types the built-in store does not know are registered from the definitions stored in the bag.
"""
from __future__ import annotations

import bisect
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import Reader
from rosbags.typesys import get_types_from_msg

from spatial_vlm_ros.bag.messages import (
    DETECTIONS,
    CameraTopics,
    camera_info_dict,
    detections_list,
    image_array,
    stamp_ns_of,
)
from spatial_vlm_ros.bag.typestore import typestore
from spatial_vlm_ros.bag.writer import GROUND_TRUTH_FILE
from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.frame import Detection2D


@dataclass
class RawMessage:
    topic: str
    msgtype: str            # e.g. "sensor_msgs/msg/Image"
    log_time_ns: int        # receive time recorded in the bag, nanoseconds
    data: bytes             # CDR bytes, as published


@dataclass
class BagFrame:
    """One RGB-D frame. Arrays are None for topics missing at this stamp."""

    stamp_ns: int
    rgb: np.ndarray | None = None            # (H, W, 3) uint8, RGB order (bgr8 images are converted)
    depth: np.ndarray | None = None          # (H, W) as stored (uint16 mm for 16UC1, float32 m for 32FC1)
    depth_encoding: str = ""
    camera_info: dict | None = None          # CameraInfo fields (see messages.camera_info_dict)
    mask: np.ndarray | None = None           # (H, W) instance ids, 0 = none
    ids: list[int] | None = None
    labels: list[str] | None = None
    scores: list[float] | None = None
    detections: list[Detection2D] | None = None   # 2D boxes (pixels) of the detections topic

    @property
    def depth_m(self) -> np.ndarray | None:
        """Depth in metres, float32, NaN where invalid (unit from the encoding)."""
        if self.depth is None:
            return None
        if self.depth_encoding in ("16UC1", "mono16"):
            d = self.depth.astype(np.float32) / 1000.0
        else:
            d = self.depth.astype(np.float32)
        d[~np.isfinite(d) | (d <= 0)] = np.nan
        return d


def find_ground_truth(bag_path: str | Path) -> Path | None:
    """The ground-truth sidecar of a bag: ``<bag>/ground_truth.json`` or ``<bag>.ground_truth.json``."""
    p = Path(bag_path)
    for candidate in (p / GROUND_TRUTH_FILE, p.with_name(p.name + "." + GROUND_TRUTH_FILE)):
        if candidate.is_file():
            return candidate
    return None


class BagReader:
    """Context manager over one bag folder (or a single ``.mcap`` / ``.db3`` with its ``metadata.yaml``)."""

    def __init__(self, path: str | Path, topics: CameraTopics | None = None):
        self.path = Path(path)
        if not self.path.exists():
            raise InputError(f"bag {self.path} does not exist")
        self.camera_topics = topics or CameraTopics()
        self._reader: Reader | None = None
        self._store = typestore()

    # ------------------------------------------------------------------------------------------ lifecycle
    def open(self) -> BagReader:
        if self._reader is None:
            try:
                self._reader = Reader(self.path)
                self._reader.open()
            except Exception as err:       # rosbags raises several types for unreadable bags
                self._reader = None
                raise InputError(f"cannot open bag {self.path}: {err}") from None
            for conn in self._reader.connections:
                self._ensure_type(conn)
        return self

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def __enter__(self) -> BagReader:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def _ensure_type(self, conn) -> None:
        if conn.msgtype in self._store.types:
            return
        msgdef = getattr(conn, "msgdef", None)
        if msgdef is not None and getattr(msgdef, "format", None) and "msg" in str(msgdef.format).lower() \
                and msgdef.data:
            with contextlib.suppress(Exception):   # an undecodable custom type only matters if it is decoded
                self._store.register(get_types_from_msg(msgdef.data, conn.msgtype))

    @property
    def reader(self) -> Reader:
        if self._reader is None:
            self.open()
        return self._reader

    # ------------------------------------------------------------------------------------------ contents
    @property
    def topics(self) -> dict[str, str]:
        """Topic -> message type."""
        return {c.topic: c.msgtype for c in self.reader.connections}

    @property
    def start_ns(self) -> int:
        return int(self.reader.start_time)

    @property
    def end_ns(self) -> int:
        return int(self.reader.end_time)

    @property
    def message_count(self) -> int:
        return int(self.reader.message_count)

    def _connections(self, topics):
        conns = self.reader.connections
        if topics is None:
            return conns
        wanted = set(topics)
        unknown = wanted - {c.topic for c in conns}
        if unknown:
            raise InputError(f"bag {self.path} has no topic(s) {', '.join(sorted(unknown))}; it has "
                             f"{', '.join(sorted(self.topics))}")
        return [c for c in conns if c.topic in wanted]

    def raw_messages(self, topics=None, start_ns: int | None = None,
                     stop_ns: int | None = None) -> Iterator[RawMessage]:
        """Messages in log-time order, CDR bytes untouched."""
        for conn, t, data in self.reader.messages(self._connections(topics), start=start_ns, stop=stop_ns):
            yield RawMessage(conn.topic, conn.msgtype, int(t), bytes(data))

    def messages(self, topics=None) -> Iterator[tuple[str, int, object]]:
        """(topic, log time ns, deserialised rosbags message)."""
        for m in self.raw_messages(topics):
            yield m.topic, m.log_time_ns, self._store.deserialize_cdr(m.data, m.msgtype)

    def frames(self, max_skew_ns: int = 20_000_000) -> list[BagFrame]:
        """RGB-D frames, one per color image; the depth, CameraInfo, instances and detections whose header
        stamp is nearest (within ``max_skew_ns``) are attached (detections only of type
        ``spatial_vlm_interfaces/Detections2D``). Loads the camera topics into memory."""
        t = self.camera_topics
        topics = self.topics
        present = [x for x in t.all() if x in topics and (x != t.detections or topics[x] == DETECTIONS)]
        if t.color not in present:
            raise InputError(f"bag {self.path} has no color topic {t.color}")
        by_topic: dict[str, list[tuple[int, object]]] = {x: [] for x in present}
        for topic, _, msg in self.messages(present):
            by_topic[topic].append((stamp_ns_of(msg), msg))
        for items in by_topic.values():
            items.sort(key=lambda x: x[0])
        frames = []
        for stamp, msg in by_topic[t.color]:
            f = BagFrame(stamp)
            rgb = image_array(msg)
            f.rgb = rgb[..., ::-1].copy() if msg.encoding.startswith("bgr") else rgb[..., :3]
            depth = _nearest(by_topic.get(t.depth, []), stamp, max_skew_ns)
            if depth is not None:
                f.depth, f.depth_encoding = image_array(depth), depth.encoding
            info = _nearest(by_topic.get(t.camera_info, []), stamp, max_skew_ns)
            if info is not None:
                f.camera_info = camera_info_dict(info)
            inst = _nearest(by_topic.get(t.instances, []), stamp, max_skew_ns)
            if inst is not None:
                f.mask = image_array(inst.mask)
                f.ids = [int(i) for i in np.asarray(inst.ids)]
                f.labels = list(inst.labels)
                f.scores = [float(s) for s in np.asarray(inst.scores)]
            dets = _nearest(by_topic.get(t.detections, []), stamp, max_skew_ns)
            if dets is not None:
                f.detections = detections_list(dets)
            frames.append(f)
        return frames

    def ground_truth(self, complete: bool = True) -> dict[int, dict] | None:
        """The sidecar ground truth ``{stamp_ns: frame}``, or None when the bag has none."""
        path = find_ground_truth(self.path)
        if path is None:
            return None
        from spatial_vlm_ros.sim.ground_truth_file import load_ground_truth
        return load_ground_truth(path, complete=complete)


def _nearest(items: list[tuple[int, object]], stamp: int, max_skew_ns: int):
    """The message of ``items`` (sorted by stamp) nearest to ``stamp``, if within ``max_skew_ns``."""
    i = bisect.bisect_left(items, stamp, key=lambda x: x[0])
    candidates = [items[j] for j in (i - 1, i) if 0 <= j < len(items)]
    if not candidates:
        return None
    best = min(candidates, key=lambda x: abs(x[0] - stamp))
    return best[1] if abs(best[0] - stamp) <= max_skew_ns else None


def read_frames(bag_path: str | Path, topics: CameraTopics | None = None) -> list[BagFrame]:
    """Every RGB-D frame of a bag (see ``BagReader.frames``)."""
    with BagReader(bag_path, topics) as reader:
        return reader.frames()
