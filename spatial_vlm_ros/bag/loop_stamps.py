"""Header stamps of a looped replay: pass ``k`` is shifted forwards by ``k * (span + period)``.

A looped bag whose stamps repeat looks to a subscriber like a clock that jumps back at every pass (the scene
memory would restart and the synchroniser drop pre-jump messages). ``bag play --loop`` therefore rewrites
the ``std_msgs/Header`` stamp of every message whose type starts with one (images, camera info, instance
masks, detections): ``span`` is the range of header stamps the first pass published and ``period`` the
median gap between its consecutive distinct stamps (one frame period), so time runs forwards across passes
at the recorded frame rate. Stamps are patched in the CDR bytes (no deserialisation). Messages without a
header are published unchanged. Nanoseconds throughout.
"""
from __future__ import annotations

import struct
from dataclasses import replace

import numpy as np

HEADER_TYPE = "std_msgs/msg/Header"
DEFAULT_PERIOD_NS = 33_333_333          # the frame period assumed when a pass has a single stamp (30 Hz)


def header_first(store, msgtype: str) -> bool:
    """True when ``msgtype``'s first field is a ``std_msgs/Header`` (per the rosbags type store)."""
    try:
        fields = store.fielddefs[msgtype][1]
    except (KeyError, AttributeError, IndexError):
        return False
    return bool(fields) and fields[0][1][1] == HEADER_TYPE


def _layout(data: bytes) -> str:
    return "<iI" if data[1] in (0x01, 0x03) else ">iI"          # CDR_LE / PL_CDR_LE, else big endian


def read_stamp_ns(data: bytes) -> int | None:
    """Header stamp (ns) of CDR bytes whose first field is a Header; None when too short."""
    if len(data) < 12:
        return None
    sec, nsec = struct.unpack_from(_layout(data), data, 4)
    return int(sec) * 10**9 + int(nsec)


def shift_stamp(data: bytes, shift_ns: int) -> bytes:
    """The CDR bytes with their header stamp moved by ``shift_ns`` (unchanged when too short)."""
    stamp = read_stamp_ns(data)
    if stamp is None or shift_ns == 0:
        return data
    sec, nsec = divmod(stamp + int(shift_ns), 10**9)
    out = bytearray(data)
    struct.pack_into(_layout(data), out, 4, int(sec), int(nsec))
    return bytes(out)


class PassRestamper:
    """Shifts the header stamps of each replay pass; pass 0 is published as recorded.

    ``apply(message)`` before publishing, ``next_pass()`` between passes. ``topics``: topic -> message type
    of the bag; ``store``: its rosbags type store.
    """

    def __init__(self, topics: dict[str, str], store):
        self.header_topics = {t for t, msgtype in topics.items() if header_first(store, msgtype)}
        self.passes = 0
        self.shift_ns = 0
        self.step_ns: int | None = None             # span + period, known after the first pass
        self._stamps: set[int] = set()

    def apply(self, message):
        """``message`` (a ``RawMessage``) with its header stamp shifted for the current pass."""
        if message.topic not in self.header_topics:
            return message
        if self.passes == 0:
            stamp = read_stamp_ns(message.data)
            if stamp is not None:
                self._stamps.add(stamp)
            return message
        return replace(message, data=shift_stamp(message.data, self.shift_ns))

    def next_pass(self) -> None:
        """Start the next pass: its stamps run on from the previous pass's last one by one frame period."""
        if self.step_ns is None:
            stamps = np.array(sorted(self._stamps), dtype=np.int64)
            gaps = np.diff(stamps)
            period = int(np.median(gaps)) if gaps.size else DEFAULT_PERIOD_NS
            span = int(stamps[-1] - stamps[0]) if stamps.size else 0
            self.step_ns = span + max(period, 1)
            self._stamps.clear()
        self.passes += 1
        self.shift_ns = self.passes * self.step_ns
