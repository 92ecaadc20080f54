"""Seeded generators of hostile inputs for the node fuzz test (``test_ros_fuzz.py``): corrupted frames on
every input topic, lone junk messages, header stamps and random service requests.

A corrupted frame starts as the valid messages of ``ros_harness.frame_messages`` and gets one or more
faults. Every fault is one the node must refuse, so a storm of them must leave the scene memory unchanged:

- ``FATAL`` faults (one generator per input topic) make the frame unusable whatever its stamp: encodings,
  sizes, steps, truncated or overlong data, garbage intrinsics, depth without one valid pixel, bad masks,
  ids/labels/scores that disagree ...: the frame is rejected before the memory is touched;
- ``per_object_fault`` (every score NaN/inf/negative, every label empty) leaves a frame whose objects the
  memory must each refuse: the frame may be processed, but no object changes;
- stamp faults on an otherwise valid frame (``StampPlan.refused``): slightly older than the memory's last
  update (out of order), far in the future or far in the past (0, negative). Far stamps are multiples of
  ``FAR_GAP_S`` (or 0 or the int32 extremes), so two of them never ascend by less than
  ``memory.max_future_s``: no run of them can confirm a clock jump, each one is refused on its own.

Phase ``A`` of the storm accepts nothing, so the memory's last stamp stays ``StampPlan.t_last`` and "out of
order" is well defined; phase ``B`` adds per-object faults on the normal time line (processed frames
without objects, which move the memory's last stamp on). Frames on the normal time line get unique stamps on
a ``GRID_S`` grid (far more than the synchroniser's slop), and a message moved off its frame's stamp goes to a
unique off-grid stamp, so the synchroniser can never assemble a valid set out of the valid messages of two
corrupted frames.
"""
from __future__ import annotations

import array
import math
import random
from dataclasses import dataclass

import numpy as np
from ros_harness import FrameMessages, frame_messages
from sensor_msgs.msg import CameraInfo, Image

from spatial_vlm_ros.core.depth import encode_depth_mm
from spatial_vlm_ros.core.quantities import QUANTITIES
from spatial_vlm_ros.core.relations import RELATIONS
from spatial_vlm_ros.ros import conversions as conv

SLOTS = ("color", "depth", "camera_info", "instances")
GRID_S = 0.1                          # spacing of the normal time line; the node's slop must be < GRID_S / 4
FAR_GAP_S = 1.0e4                     # spacing of far-past / far-future stamps (>> memory.max_future_s)
INT32_MAX = 2 ** 31 - 1
UINT32_MAX = 2 ** 32 - 1


# ------------------------------------------------------------------------------------------ strings
_ALPHABETS = (
    "abcdefghijklmnopqrstuvwxyz_ 0123456789",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ.,;:!?'\"()[]{}<>/\\|@#$%^&*-+=~`",
    "äöüßéèêçñøåæœ¡¿€£¥",
    "猫杯子书盒子左右上下",
    "مرحباשלוםПриветΓειά",
    "\u0301\u0308\u200b\u200d\u202e\ufeff",        # combining marks, zero width, RTL override, BOM
    "\t\n\r\x01\x07\x1b\x7f",
    "😀🦄🍵📦🧪",
)


def random_text(rng: random.Random, max_len: int = 40) -> str:
    """A random string: mixed scripts, control characters (no NUL: ROS strings cannot carry one)."""
    n = rng.choice((0, 1, 2, rng.randint(0, max_len)))
    alphabet = "".join(rng.sample(_ALPHABETS, rng.randint(1, 3)))
    return "".join(rng.choice(alphabet) for _ in range(n))


def long_text(rng: random.Random) -> str:
    return rng.choice(("mug ", "a", "left of ", "猫", "😀")) * rng.randint(500, 20000)


# ------------------------------------------------------------------------------------------- stamps
@dataclass
class StampPlan:
    """Header stamps for the storm. ``t_last``: the stamp of the last valid frame the memory accepted;
    normal frames go on a grid after it, one grid point each."""

    t_last: float
    rng: random.Random
    _next: int = 1

    def grid(self) -> float:
        """A fresh stamp on the normal time line (never handed out twice)."""
        stamp = self.t_last + GRID_S * self._next
        self._next += 1
        return round(stamp, 6)

    @property
    def grid_end(self) -> float:
        return self.t_last + GRID_S * self._next

    def out_of_order(self) -> float:
        """Older than the last accepted frame by less than ``memory.max_backwards_jump_s`` (1 s)."""
        return self.t_last - self.rng.uniform(0.001, 0.9)

    def far_future(self) -> float:
        """Hours to years ahead (a multiple of ``FAR_GAP_S``), or the largest stamp ``Time`` holds."""
        if self.rng.random() < 0.05:
            return float(INT32_MAX)
        return self.t_last + FAR_GAP_S * self.rng.randint(1, 20000)

    def far_past(self) -> float:
        """Zero (an unset stamp), the smallest stamp ``Time`` holds, or hours to years before 0."""
        r = self.rng.random()
        return 0.0 if r < 0.2 else float(-2 ** 31) if r < 0.25 else -FAR_GAP_S * self.rng.randint(1, 20000)

    def refused(self) -> tuple[str, float]:
        """(kind, stamp) for a stamp the memory must refuse on an otherwise valid frame."""
        kind = self.rng.choice(("out_of_order", "far_future", "far_past"))
        return kind, getattr(self, kind)()

    def any(self) -> tuple[str, float]:
        """(kind, stamp) of any kind, for a frame that is unusable anyway."""
        kind = self.rng.choice(("grid", "grid", "grid", "out_of_order", "far_future", "far_past"))
        return kind, getattr(self, kind)()


def set_stamp(msgs: FrameMessages, stamp_s: float) -> None:
    for _, msg in msgs.items():
        if msg is not None:
            _stamp_msg(msg, stamp_s)


def _stamp_msg(msg, stamp_s: float) -> None:
    """Header stamp of one message; negative seconds go on the wire as a negative ``sec`` (int32)."""
    sec = math.floor(stamp_s)
    msg.header.stamp.sec = int(max(min(sec, INT32_MAX), -2 ** 31))
    msg.header.stamp.nanosec = int(min(round((stamp_s - sec) * 1e9), 999_999_999))


# ------------------------------------------------------------------------------------------- images
def _raw(msg: Image) -> bytes:
    return bytes(msg.data)


def _set_data(msg: Image, data: bytes) -> None:
    msg.data = array.array("B", data)


def _truncated(rng: random.Random, msg: Image, data: bytes) -> str:
    _set_data(msg, data[: rng.randrange(0, max(msg.step * msg.height, 1))])
    return "truncated data"


def _overlong(rng: random.Random, msg: Image, data: bytes) -> str:
    _set_data(msg, data + bytes(rng.randint(1, 3 * msg.step)))
    return "data longer than step*height"


def _step_too_small(rng: random.Random, msg: Image, data: bytes) -> str:
    msg.step = rng.randint(0, max(msg.step - 1, 0))
    return "step smaller than a row"


def _step_too_large(rng: random.Random, msg: Image, data: bytes) -> str:
    msg.step += rng.randint(1, 64)
    return "step larger, data unpadded"


def _zero_size(rng: random.Random, msg: Image, data: bytes) -> str:
    if rng.random() < 0.5:
        msg.width = 0
    else:
        msg.height = 0
    if rng.random() < 0.5:
        _set_data(msg, b"")
    return "zero width or height"


def _huge_size(rng: random.Random, msg: Image, data: bytes) -> str:
    msg.width, msg.height = rng.choice(((UINT32_MAX, 1), (1, UINT32_MAX), (100000, 100000),
                                        (msg.width * 2, msg.height)))
    return "huge width/height"


def _swapped_size(rng: random.Random, msg: Image, data: bytes) -> str:
    msg.width, msg.height = msg.height, msg.width
    msg.step = msg.width * (len(data) // max(msg.height * msg.width, 1))
    return "width and height swapped"


def _empty_data(rng: random.Random, msg: Image, data: bytes) -> str:
    _set_data(msg, b"")
    return "empty data"


def _width_off(rng: random.Random, msg: Image, data: bytes) -> str:
    msg.width += rng.choice((-3, -1, 1, 7))
    return "width off by a few"


def _height_off(rng: random.Random, msg: Image, data: bytes) -> str:
    msg.height += rng.choice((-5, -1, 1, 2))
    if msg.height < 0:
        msg.height = 0
    return "height off by a few"


#: layout faults of one image, drawn uniformly; each takes (rng, msg, the message's original data)
IMAGE_FAULTS = (_truncated, _overlong, _step_too_small, _step_too_large, _zero_size, _huge_size, _swapped_size,
                _empty_data, _width_off, _height_off)


def image_fault(rng: random.Random, msg: Image, slot: str) -> str:
    """Corrupt the layout of one image so it cannot be decoded (or not as this slot's image)."""
    data = _raw(msg)
    return IMAGE_FAULTS[rng.randrange(len(IMAGE_FAULTS))](rng, msg, data)


def _bad_encoding(rng: random.Random, slot: str) -> str:
    pools = {"color": ["yuv422", "16UC1", "32FC1", "mono8", "mono16", "RGBA8", "bgra16", "RGB8", "rgb8 ",
                       "bayer_rggb8", "8UC3"],
             "depth": ["mono8", "rgb8", "bgr8", "16SC1", "32FC2", "64FC1", "16uc1", "8UC1", "yuv422"],
             "mask": ["32FC1", "rgb8", "bgr8", "16SC1", "8UC1", "32SC1", "MONO8"]}
    pool = pools[slot] + ["", "\u200brgb8", "x" * 300]
    return rng.choice(pool + [random_text(rng, 12) or "?"])


def color_fault(rng: random.Random, m: FrameMessages, scene) -> str:
    c = m.color
    k = rng.randrange(4)
    if k == 0:
        c.encoding = _bad_encoding(rng, "color")
        return f"color encoding {c.encoding[:20]!r}"
    if k == 1:
        return "color " + image_fault(rng, c, "color")
    if k == 2:                       # decodable, but another size than depth / camera info
        small = scene.rgb[::2, ::2]
        m.color = conv.array_to_image(small, "rgb8", c.header.stamp, c.header.frame_id)
        return "color half size"
    m.color = conv.array_to_image(np.repeat(np.repeat(scene.rgb, 2, 0), 2, 1), "bgr8", c.header.stamp,
                                  c.header.frame_id)
    return "color double size"


def depth_fault(rng: random.Random, m: FrameMessages, scene) -> str:
    d = m.depth
    shape = scene.depth.shape
    stamp, frame_id = d.header.stamp, d.header.frame_id
    k = rng.randrange(7)
    if k == 0:
        d.encoding = _bad_encoding(rng, "depth")
        return f"depth encoding {d.encoding[:20]!r}"
    if k == 1:
        return "depth " + image_fault(rng, d, "depth")
    if k == 2:                                    # 32FC1 without one finite positive value
        values = np.array([np.nan, np.inf, -np.inf, 0.0, -1.0, -0.5, -1e30], np.float32)
        pick = values[rng.randrange(len(values))] if rng.random() < 0.5 else None
        pixels = (np.full(shape, pick, np.float32) if pick is not None
                  else values[np.random.default_rng(rng.randrange(2 ** 32)).integers(0, len(values), shape)])
        m.depth = conv.array_to_image(pixels, "32FC1", stamp, frame_id)
        return "32FC1 depth all " + (f"{pick}" if pick is not None else "NaN/inf/zero/negative mix")
    if k == 3:
        m.depth = conv.array_to_image(np.zeros(shape, np.uint16), rng.choice(("16UC1", "mono16")), stamp,
                                      frame_id)
        return "16UC1 depth all zero"
    if k == 4:
        m.depth = conv.array_to_image(encode_depth_mm(scene.depth)[::2, ::2], "16UC1", stamp, frame_id)
        return "depth half size"
    if k == 5:
        big = np.repeat(encode_depth_mm(scene.depth), 2, 0)
        m.depth = conv.array_to_image(big, "16UC1", stamp, frame_id)
        return "depth double height"
    m.depth = conv.array_to_image(scene.rgb, "rgb8", stamp, frame_id)
    return "depth is a color image"


def _set_k(info: CameraInfo, change) -> None:
    """Apply ``change`` to a copy of the intrinsics ``K`` (row-major 3x3 as 9 floats) and set it."""
    k = list(info.k)
    change(k)
    info.k = k


def _k_zero(rng: random.Random, info: CameraInfo) -> str:
    info.k = [0.0] * 9
    return "K all zero"


def _tiny_focal(rng: random.Random, info: CameraInfo) -> str:
    f = rng.choice((1e-12, 1e-6, 0.5))
    _set_k(info, lambda k: k.__setitem__(slice(0, 5, 4), [f, f]))
    return f"implausible tiny focal {f:g}"


def _k_non_finite(rng: random.Random, info: CameraInfo) -> str:
    v = rng.choice((math.nan, math.inf, -math.inf))       # the value is drawn before the index
    i = rng.choice((0, 2, 4, 5, 8))
    _set_k(info, lambda k: k.__setitem__(i, v))
    return "K non-finite"


def _negative_focal(rng: random.Random, info: CameraInfo) -> str:
    i = rng.choice((0, 4))
    _set_k(info, lambda k: k.__setitem__(i, -k[i]))
    return "negative focal length"


def _principal_point_outside(rng: random.Random, info: CameraInfo) -> str:
    k = list(info.k)
    w, h = info.width, info.height
    k[2], k[5] = rng.choice(((-50.0, k[5]), (w + 100.0, k[5]), (k[2], -1.0), (k[2], h * 3.0), (1e9, 1e9)))
    info.k = k
    return "principal point outside the image"


def _huge_focal(rng: random.Random, info: CameraInfo) -> str:
    f = rng.choice((1e9, 1e12, 1e300))
    _set_k(info, lambda k: k.__setitem__(slice(0, 5, 4), [f, f]))
    return "implausible huge focal"


def _focal_aspect(rng: random.Random, info: CameraInfo) -> str:
    _set_k(info, lambda k: k.__setitem__(0, k[0] * 50.0))
    return "fx/fy aspect 50"


def _not_pinhole(rng: random.Random, info: CameraInfo) -> str:
    v = rng.choice((1.0, -3.0, 0.1))                      # the value is drawn before the index
    i = rng.choice((3, 6, 7))
    _set_k(info, lambda k: k.__setitem__(i, v))
    return "K not a pinhole matrix"


def _k22_not_one(rng: random.Random, info: CameraInfo) -> str:
    v = rng.choice((0.0, 2.0, -1.0))
    _set_k(info, lambda k: k.__setitem__(8, v))
    return "K[2,2] != 1"


def _info_size_wrong(rng: random.Random, info: CameraInfo) -> str:
    w, h = info.width, info.height
    info.width, info.height = rng.choice(((0, h), (w, 0), (0, 0), (w // 2, h // 2), (h, w), (w + 1, h)))
    return "camera info size wrong"


def _info_size_huge(rng: random.Random, info: CameraInfo) -> str:
    w, h = info.width, info.height
    info.width, info.height = rng.choice(((UINT32_MAX, h), (w, UINT32_MAX), (10 ** 6, 10 ** 6)))
    return "camera info size huge"


def _distortion_length(rng: random.Random, info: CameraInfo) -> str:
    n = rng.choice((1, 2, 3, 6, 7, 9, 11, 13, 15, 33))
    info.d = [rng.uniform(-0.5, 0.5) or 0.1 for _ in range(n)]
    info.distortion_model = rng.choice(("plumb_bob", "rational_polynomial", "equidistant"))
    return f"distortion with {len(info.d)} coefficients ({info.distortion_model})"


def _distortion_non_finite(rng: random.Random, info: CameraInfo) -> str:
    info.d = [0.1, math.nan, 0.0, 0.0, 0.0] if rng.random() < 0.5 else [math.inf, 0.0, 0.0, 0.0, 0.0]
    return "distortion non-finite"


def _unknown_distortion_model(rng: random.Random, info: CameraInfo) -> str:
    info.d = [0.05, -0.01, 0.0, 0.0, 0.0]
    info.distortion_model = rng.choice(("unknown", "fisheye_weird", "kannala", random_text(rng, 10) + "_model"))
    return f"unknown distortion model {info.distortion_model[:20]!r}"


#: camera info faults, drawn uniformly
INFO_FAULTS = (_k_zero, _tiny_focal, _k_non_finite, _negative_focal, _principal_point_outside, _huge_focal,
               _focal_aspect, _not_pinhole, _k22_not_one, _info_size_wrong, _info_size_huge, _distortion_length,
               _distortion_non_finite, _unknown_distortion_model)


def info_fault(rng: random.Random, m: FrameMessages, scene) -> str:
    return INFO_FAULTS[rng.randrange(len(INFO_FAULTS))](rng, m.camera_info)


def _mask_encoding(rng: random.Random, inst, mask: np.ndarray) -> str:
    inst.mask.encoding = _bad_encoding(rng, "mask")
    return f"mask encoding {inst.mask.encoding[:20]!r}"


def _mask_layout(rng: random.Random, inst, mask: np.ndarray) -> str:
    return "mask " + image_fault(rng, inst.mask, "mask")


def _mask_wrong_size(rng: random.Random, inst, mask: np.ndarray) -> str:
    small = mask[:: rng.choice((2, 3)), ::2]
    inst.mask = conv.array_to_image(small.astype(np.uint8), "mono8")
    return "mask wrong size"


def _mask_all_zero(rng: random.Random, inst, mask: np.ndarray) -> str:
    inst.mask = conv.array_to_image(np.zeros(mask.shape, np.uint8), "mono8")
    return "mask all zero"


def _mask_ids_unlisted(rng: random.Random, inst, mask: np.ndarray) -> str:
    """The mask carries ids, but none of the listed ones."""
    shifted = np.where(mask > 0, mask + 50, 0).astype(np.uint16)
    inst.mask = conv.array_to_image(shifted, rng.choice(("16UC1", "mono16")))
    return "mask ids not in the list"


def _listed_ids_not_in_mask(rng: random.Random, inst, mask: np.ndarray) -> str:
    inst.ids = [i + 300 for i in inst.ids]
    return "listed ids not in the mask"


def _lengths_differ(rng: random.Random, inst, mask: np.ndarray) -> str:
    ids, labels = list(inst.ids), list(inst.labels)
    which = rng.randrange(3)
    if which == 0:
        inst.labels = labels[: rng.randrange(len(labels))]
    elif which == 1:
        inst.scores = list(inst.scores) + [0.5] * rng.randint(1, 4)
    else:
        inst.ids = ids + [rng.randint(1, 200) for _ in range(rng.randint(1, 3))]
    return "ids/labels/scores lengths differ"


def _id_zero(rng: random.Random, inst, mask: np.ndarray) -> str:
    ids = list(inst.ids)
    inst.ids = [0] * len(ids) if rng.random() < 0.5 else [0] + ids[1:]
    return "id 0 listed"


def _repeated_ids(rng: random.Random, inst, mask: np.ndarray) -> str:
    ids = list(inst.ids)
    inst.ids = [ids[0]] * len(ids)
    return "repeated ids"


def _many_unknown_ids(rng: random.Random, inst, mask: np.ndarray) -> str:
    n = rng.randint(100, 3000)
    inst.ids = list(range(1000, 1000 + n))
    inst.labels = [random_text(rng, 8) or "x" for _ in range(n)]
    inst.scores = [1.0] * n
    return f"{n} listed ids, none in the mask"


def _empty_mask(rng: random.Random, inst, mask: np.ndarray) -> str:
    if rng.random() < 0.5:
        inst.mask = conv.array_to_image(np.zeros((0, 0), np.uint8), "mono8")
    else:
        inst.mask.height = 0
    return "empty mask image"


#: instance segmentation faults, drawn uniformly; each takes (rng, the message, the scene's id mask)
INSTANCES_FAULTS = (_mask_encoding, _mask_layout, _mask_wrong_size, _mask_all_zero, _mask_ids_unlisted,
                    _listed_ids_not_in_mask, _lengths_differ, _id_zero, _repeated_ids, _many_unknown_ids,
                    _empty_mask)


def instances_fault(rng: random.Random, m: FrameMessages, scene) -> str:
    return INSTANCES_FAULTS[rng.randrange(len(INSTANCES_FAULTS))](rng, m.instances, scene.mask)


def per_object_fault(rng: random.Random, m: FrameMessages, scene) -> str:
    """A fault the memory must refuse for every object of the frame (the frame itself may be processed)."""
    inst = m.instances
    n = len(inst.ids)
    choice = rng.randrange(4)
    if choice == 0:
        inst.scores = [rng.choice((math.nan, math.inf, -math.inf)) for _ in range(n)]
        return "every score NaN/inf"
    if choice == 1:
        inst.scores = [rng.choice((-1.0, -1e-3, -1e9)) for _ in range(n)]
        return "every score negative"
    if choice == 2:
        inst.labels = [rng.choice(("", " ", "\t", "  \n ")) for _ in range(n)]
        return "every label empty"
    inst.scores = [math.nan] * n
    inst.labels = [rng.choice(("", "mug", long_text(rng)[:300])) for _ in range(n)]
    return "NaN scores, odd labels"


FATAL = {"color": color_fault, "depth": depth_fault, "camera_info": info_fault, "instances": instances_fault}


# -------------------------------------------------------------------------------------------- frames
@dataclass
class StormItem:
    """One thing to publish: a corrupted frame or a lone junk message, and how to reproduce it."""

    kind: str                              # "frame" | "lone"
    description: str
    stamp: float
    messages: list                         # [(slot, msg)] in publishing order
    may_be_processed: bool = False         # per-object faults: processed with no object accepted
    malformed: int = 0                     # how many of the messages are themselves corrupted


def corrupted_frame(rng: random.Random, scene, stamps: StampPlan, phase: str = "A") -> StormItem:
    """A frame the node must refuse. Phase ``A``: the memory's last stamp is ``stamps.t_last`` throughout
    (nothing is accepted). Phase ``B`` (after A): per-object faults on the normal time line, which the memory
    takes as frames without objects (its last stamp moves on), mixed with fatal faults."""
    msgs = frame_messages(scene, stamps.t_last)
    faults = []
    malformed_slots = set()
    roll = rng.random()
    if phase == "B" and roll < 0.5:
        faults.append(per_object_fault(rng, msgs, scene))
        malformed_slots.add("instances")
        stamp_kind, stamp = "grid", stamps.grid()
        may_be_processed = True
    elif phase == "A" and roll < 0.25:       # valid content, refused stamp
        stamp_kind, stamp = stamps.refused()
        faults.append(f"valid content, stamp {stamp_kind}")
        malformed_slots.update(SLOTS)
        may_be_processed = False
    elif phase == "A" and roll < 0.35:
        faults.append(per_object_fault(rng, msgs, scene))
        malformed_slots.add("instances")
        stamp_kind, stamp = stamps.refused()
        may_be_processed = False
    else:
        for slot in rng.sample(SLOTS, rng.choice((1, 1, 1, 2, 3))):
            faults.append(FATAL[slot](rng, msgs, scene))
            malformed_slots.add(slot)
        stamp_kind, stamp = stamps.any() if phase == "A" else ("grid", stamps.grid())
        may_be_processed = False
    set_stamp(msgs, stamp)
    items = [(slot, msg) for slot, msg in msgs.items() if slot in SLOTS]
    if stamp_kind == "grid" and not may_be_processed and rng.random() < 0.15:
        slot, msg = rng.choice(items)             # one message off the frame's stamp: never matched
        _stamp_msg(msg, stamp + rng.uniform(0.3, 0.7) * GRID_S)
        faults.append(f"{slot} stamp off by > slop")
        malformed_slots.add(slot)
    rng.shuffle(items)                            # any arrival order
    if rng.random() < 0.05:
        items = items + list(items)               # published twice
        faults.append("duplicated")
    return StormItem("frame", f"{' + '.join(faults)} @ {stamp_kind}", stamp, items, may_be_processed,
                     len(malformed_slots))


def lone_message(rng: random.Random, scene, stamps: StampPlan, phase: str = "A") -> StormItem:
    """One corrupted message on one topic, alone (queues, eviction, stamps)."""
    msgs = frame_messages(scene, stamps.t_last)
    slot = rng.choice(SLOTS)
    what = FATAL[slot](rng, msgs, scene)
    stamp_kind, stamp = stamps.any() if phase == "A" else ("grid", stamps.grid())
    if rng.random() < 0.1:                        # garbage nanoseconds (>= 1e9) on the wire
        msg = dict(msgs.items())[slot]
        _stamp_msg(msg, stamp)
        msg.header.stamp.nanosec = rng.choice((1_000_000_000, UINT32_MAX))
        what += ", nanosec >= 1e9"
    else:
        _stamp_msg(dict(msgs.items())[slot], stamp)
    return StormItem("lone", f"lone {slot}: {what} @ {stamp_kind}", stamp, [(slot, dict(msgs.items())[slot])],
                     False, 1)


# ------------------------------------------------------------------------------------------ requests
LABELS = ("box", "mug", "book")
QUESTIONS = (
    "Is the box to the left of the mug?", "How far apart are the box and the mug?",
    "Which is taller, the box or the mug?", "How tall is the book?", "What objects do you see?",
    "How many mugs are there?", "Do you see a teapot?", "Where is the mug?", "How big is the box?",
    "Is the unicorn left of the box?", "What is the meaning of life?", "How much higher is the box than the book?",
    "is the red box behind the blue mug", "HOW FAR IS THE MUG FROM THE CAMERA IN METRES?",
)


def _phrase(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.35:
        return rng.choice(LABELS)
    if r < 0.5:
        return rng.choice(LABELS) + "_" + str(rng.choice((1, 1, 1, 2, 0, -1, 99999999999)))
    if r < 0.6:
        return rng.choice(("red ", "blue ", "green ", "the ", "a big ", "  ")) + rng.choice(LABELS)
    if r < 0.68:
        return rng.choice(("teapot", "unicorn", "mug mug", "box_1 box_2", "*", ".*", "%s", "{}"))
    if r < 0.7:
        return long_text(rng)
    return random_text(rng)


def _name(rng: random.Random, names) -> str:
    r = rng.random()
    if r < 0.5:
        return rng.choice(list(names))
    if r < 0.6:
        return rng.choice(list(names)).upper().replace("_", " ")
    if r < 0.65:
        return long_text(rng)
    return random_text(rng, 25)


def random_request(rng: random.Random):
    """(service name, request fields) for one random request on list_objects/get_relation/measure/ask."""
    service = rng.choices(("list_objects", "get_relation", "measure", "ask"), weights=(2, 4, 3, 3))[0]
    if service == "list_objects":
        return service, {"label_filter": "" if rng.random() < 0.3 else _phrase(rng)}
    if service == "get_relation":
        return service, {"subject": _phrase(rng), "relation": _name(rng, RELATIONS), "reference": _phrase(rng)}
    if service == "measure":
        return service, {"quantity": _name(rng, QUANTITIES), "subject": _phrase(rng),
                         "reference": "" if rng.random() < 0.3 else _phrase(rng)}
    r = rng.random()
    question = rng.choice(QUESTIONS) if r < 0.5 else long_text(rng) if r < 0.55 else \
        f"Is the {_phrase(rng)} {_name(rng, RELATIONS).replace('_', ' ')} the {_phrase(rng)}?" if r < 0.8 else \
        random_text(rng, 60)
    return service, {"question": question}
