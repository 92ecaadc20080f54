"""``SceneMemory``: objects associated across frames, smoothed, given stable ids, and expired when unseen.

Centers and points are kept in the camera optical frame of the latest frame (x right, y down, z forward,
metres); sizes are gravity-aligned extents (width, depth, height, metres) and boxes are rebuilt at every update
in the latest frame's gravity frame as ``gravity(center) -/+ size / 2``.

Per frame (``update``):
1. validate the frame (finite stamp, a ``GravityFrame``) -> ``InputError`` and no change when it is bad;
   check its stamp against the memory's clock (see "Time jumps" below);
   each observation is validated on its own (finite center in front of the camera, finite non-negative size,
   non-empty label, finite score); bad ones are skipped with a reason in ``last_report``;
2. drop objects unseen for more than ``timeout_s``;
3. unless ``compensate_motion`` is off (it is on by default: a camera on a robot moves), estimate the camera
   motion since the last frame from >= 3 matched centers (Kabsch via
   ``scipy.spatial.transform.Rotation.align_vectors``, leave-worst-out until the RMS residual is below
   ``motion_max_residual_m``) and carry every object, seen or not, into the new camera frame. A fit that
   moves the matched centers by less than ``motion_min_translation_m`` (RMS) and turns by less than
   ``motion_min_rotation_deg`` is taken as no motion, so a static camera's centers are averaged over frames
   rather than following each frame's noise. With fewer matches nothing is carried;
4. associate observations to objects with the same label by the Hungarian algorithm
   (``scipy.optimize.linear_sum_assignment``) on ``d / gate + (1 - IoU)``, a pair being allowed when the center
   distance ``d`` is within the gate (``max(match_distance_m, match_size_factor * largest extent)``) or the
   gravity boxes overlap with IoU >= ``min_iou``;
5. smooth matched objects exponentially with weight ``w = max(alpha, 1 / (n + 1))`` for the new observation
   (``n`` = observations so far: a running mean at first, then an exponential filter); points are the latest;
6. start a new object for each unmatched observation; an object gets its id ("<label>_<k>", spaces -> "_",
   k counting up per label from 1, never reused until ``reset``) once seen ``min_observations`` times.

Time jumps (header stamps, seconds; ``t_last`` = stamp of the newest accepted frame):
- a frame older than ``t_last`` by at most ``max_backwards_jump_s`` is a late, out-of-order frame: rejected
  (``InputError``, nothing changes). Stamps moving forward overtake ``t_last`` again, so this stalls the
  memory for at most that long;
- a frame older by more than that is a replay restart (looped bag, simulator reset, driver restart): once
  ``restart_confirm_frames`` consecutive such frames (ascending stamps) have come, the memory is reset
  explicitly (objects forgotten, id counters restarted) and ``last_report.note`` says so; the frames
  before that are rejected;
- a frame ahead of ``t_last`` by more than ``max_future_s`` plus the wall time elapsed since ``t_last`` was
  accepted (so a paused camera may resume) is a clock jump or a garbage stamp: rejected, memory untouched.
  Only ``jump_confirm_frames`` consecutive such frames with ascending stamps, each within ``max_future_s``
  (plus wall time) of the previous, are believed: the memory is reset explicitly as above. One stray
  frame an hour ahead therefore neither renumbers the objects nor blocks the normal frames after it.
A reset is never silent: ids a planner holds are invalid afterwards, and the note says why.

Thread safety: ``update``/``expire``/``reset`` run under a lock and build a new immutable ``Scene``;
``snapshot`` returns that scene without copying (its arrays are read-only, its objects never mutated).
"""
from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.transform import Rotation

from .errors import InputError
from .gravity_frame import GravityFrame
from .observation import Observation, TrackedObject
from .scene import Scene

_NO_MATCH = 1e6


@dataclass(frozen=True)
class MemoryParams:
    """Tuning of ``SceneMemory`` (seconds, metres)."""

    timeout_s: float = 3.0               # forget an object unseen for this long
    match_distance_m: float = 0.15       # association gate on center distance ...
    match_size_factor: float = 0.5       # ... grown to this fraction of the larger object's largest extent
    min_iou: float = 0.1                 # boxes overlapping this much may match whatever the distance
    alpha: float = 0.3                   # weight of a new observation once an object is established
    min_observations: int = 1            # sightings before an object is published with an id
    min_score: float = 0.0               # observations scored lower are skipped
    max_objects: int = 256               # hard bound on remembered objects
    max_points: int = 4096               # points kept per object (uniform subsample)
    compensate_motion: bool = True       # carry objects through camera motion (see module doc)
    motion_gate_m: float = 0.5           # association gate used only to find the motion's matches
    motion_min_matches: int = 3
    motion_max_residual_m: float = 0.03  # RMS residual of the rigid fit
    motion_min_spread_m: float = 0.03    # matched centers must not be collinear (2nd RMS spread)
    motion_min_translation_m: float = 0.005   # motions moving the matched centers less (RMS) and turning
    motion_min_rotation_deg: float = 0.5      # less than this are treated as none (noise of a static camera)
    max_future_s: float = 300.0          # stamps further ahead (plus wall time since the last frame) are
    #                                      rejected as a clock jump; 0 = no check
    max_backwards_jump_s: float = 1.0    # older frames within this are out-of-order; beyond it: replay restart
    jump_confirm_frames: int = 3         # consecutive far-future frames that confirm a forward clock jump
    restart_confirm_frames: int = 3      # consecutive frames this far back that confirm a replay restart

    def validate(self) -> MemoryParams:
        checks = [
            (self.timeout_s > 0, "timeout_s must be > 0"),
            (self.match_distance_m > 0, "match_distance_m must be > 0"),
            (self.match_size_factor >= 0, "match_size_factor must be >= 0"),
            (0 <= self.min_iou <= 1, "min_iou must be in [0, 1]"),
            (0 < self.alpha <= 1, "alpha must be in (0, 1]"),
            (self.min_observations >= 1, "min_observations must be >= 1"),
            (self.max_objects >= 1, "max_objects must be >= 1"),
            (self.max_points >= 1, "max_points must be >= 1"),
            (self.motion_min_matches >= 3, "motion_min_matches must be >= 3"),
            (self.motion_max_residual_m > 0, "motion_max_residual_m must be > 0"),
            (self.max_future_s >= 0, "max_future_s must be >= 0 (0 = no check)"),
            (self.max_backwards_jump_s >= 0, "max_backwards_jump_s must be >= 0"),
            (self.jump_confirm_frames >= 1, "jump_confirm_frames must be >= 1"),
            (self.restart_confirm_frames >= 1, "restart_confirm_frames must be >= 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(f"bad memory parameters: {message}")
        return self


@dataclass(frozen=True)
class UpdateReport:
    """What one ``update`` did: for diagnostics and logs."""

    stamp: float
    accepted: int = 0                            # observations folded in (matched or new)
    rejected: tuple[tuple[int, str], ...] = ()   # (index in the observation list, reason), by index
    matched: tuple[str, ...] = ()                # ids (or "<label> (tentative)") updated by an observation
    created: tuple[str, ...] = ()                # ids published for the first time
    expired: tuple[str, ...] = ()
    motion: str = "off"
    note: str = ""


@dataclass(frozen=True)
class _Track:
    """Internal, immutable state of one remembered object (replaced, never mutated)."""

    key: int
    id: str                      # "" while tentative
    label: str
    label_key: str
    score: float
    center: np.ndarray           # camera frame, read-only
    size: np.ndarray             # read-only
    points: np.ndarray           # camera frame, read-only
    observations: int
    first_seen: float
    last_seen: float
    color_rgb: tuple[int, int, int]
    color_name: str
    n_pixels: int
    carried: bool = False        # moved by motion compensation since it was last seen


def _frozen(array, shape=None) -> np.ndarray:
    out = np.array(array, dtype=np.float64)
    if shape is not None:
        out = out.reshape(shape)
    out.setflags(write=False)
    return out


def _readonly(array: np.ndarray) -> np.ndarray:
    """``array`` (a fresh float64 array nobody else holds) made read-only, without a copy."""
    array.setflags(write=False)
    return array


_EYE = np.eye(3)
_ORTHO_TOL = 1e-6 + 1e-5 * _EYE            # np.allclose(R @ R.T, I, atol=1e-6) with its default rtol


def label_key(label: str) -> str:
    return " ".join(label.strip().lower().split())


def id_prefix(label: str) -> str:
    """"red object" -> "red_object"; anything but letters and digits becomes one underscore."""
    slug = re.sub(r"[^a-z0-9]+", "_", label.strip().lower()).strip("_")
    return slug or "object"


def _all_finite(a: np.ndarray) -> bool:
    """No NaN or inf in float array ``a``."""
    return bool(np.isfinite(a).all())


def _check_observation(obs, params: MemoryParams) -> tuple[dict | None, str]:
    """A cleaned copy of an observation's fields, or None and the reason it is unusable."""
    if not isinstance(obs, Observation):
        return None, f"not an Observation ({type(obs).__name__})"
    if not isinstance(obs.label, str) or not obs.label.strip():
        return None, "empty label"
    try:
        center = np.asarray(obs.center, dtype=np.float64).reshape(-1)
        size = np.asarray(obs.size, dtype=np.float64).reshape(-1)
        score = float(obs.score)
        points = np.asarray(obs.points if obs.points is not None else np.empty((0, 3)), dtype=np.float64)
        color_rgb = tuple(int(c) for c in obs.color_rgb)
        n_pixels = int(obs.n_pixels)
    except (TypeError, ValueError) as err:
        return None, f"unreadable fields ({err})"
    problem = _field_problem(center, size, score, points, params)
    if problem:
        return None, problem
    points = _usable_points(points, params.max_points)
    return {
        "label": obs.label.strip(), "label_key": label_key(obs.label), "score": min(max(score, 0.0), 1.0),
        "center": center, "size": size, "points": points, "color_rgb": color_rgb,
        "color_name": str(obs.color_name or ""), "n_pixels": max(n_pixels, 0),
    }, ""


def _field_problem(center: np.ndarray, size: np.ndarray, score: float, points: np.ndarray, params: MemoryParams
                   ) -> str:
    """Why an observation's converted fields are unusable (camera-frame center and size in metres, score,
    points), or "" when they are usable."""
    if center.shape != (3,) or not _all_finite(center):
        return "center is not a finite 3-vector"
    if center[2] <= 0.0:
        return "center is not in front of the camera (z <= 0)"
    if size.shape != (3,) or not _all_finite(size) or size.min() < 0:
        return "size is not a finite non-negative 3-vector"
    if not math.isfinite(score):
        return "score is not finite"
    if score < params.min_score:
        return f"score {score:.2f} below min_score {params.min_score:.2f}"
    if points.size and (points.ndim != 2 or points.shape[1] != 3):
        return "points are not an (N, 3) array"
    return ""


def _usable_points(points: np.ndarray, max_points: int) -> np.ndarray:
    """The finite rows of (N, 3) (or empty) ``points``, at most ``max_points`` of them, evenly spread."""
    points = points.reshape(-1, 3)
    if not _all_finite(points):
        points = points.take(np.flatnonzero(np.isfinite(points).all(axis=1)), axis=0)
    if len(points) > max_points:
        points = points[np.linspace(0, len(points) - 1, max_points).astype(int)]
    return points


def _clean_observations(observations, params: MemoryParams) -> tuple[list[dict], list[tuple[int, str]]]:
    """The usable observations' cleaned fields (``_check_observation``, with their ``index`` in the list) and
    ``(index, reason)`` for the others."""
    clean, rejected = [], []
    for index, obs in enumerate(observations):
        fields, reason = _check_observation(obs, params)
        if fields is None:
            rejected.append((index, reason))
        else:
            clean.append(dict(fields, index=index))
    return clean, rejected


def _add_tracks(tracks: list[_Track], unmatched: list[dict], stamp: float, next_key: int, max_objects: int,
                rejected: list[tuple[int, str]]) -> int:
    """Append a tentative track (no id yet) to ``tracks`` for each unmatched observation while there is room
    for ``max_objects``; the others go to ``rejected``. Returns the next free track key."""
    for fields in unmatched:
        if len(tracks) >= max_objects:
            rejected.append((fields["index"], f"memory full ({max_objects} objects); "
                                              f"'{fields['label']}' not added"))
            continue
        tracks.append(_Track(
            key=next_key, id="", label=fields["label"], label_key=fields["label_key"],
            score=fields["score"], center=_frozen(fields["center"]), size=_frozen(fields["size"]),
            points=_frozen(fields["points"], (-1, 3)), observations=1, first_seen=stamp,
            last_seen=stamp, color_rgb=fields["color_rgb"], color_name=fields["color_name"],
            n_pixels=fields["n_pixels"]))
        next_key += 1
    return next_key


def _confirm_ids(tracks: list[_Track], counters: dict[str, int], min_observations: int) -> list[str]:
    """Give each tentative track seen ``min_observations`` times its id (``<prefix>_<n>``, counting on in
    ``counters``), in place; returns the new ids."""
    created = []
    for index, track in enumerate(tracks):
        if not track.id and track.observations >= min_observations:
            prefix = id_prefix(track.label)
            counters[prefix] = counters.get(prefix, 0) + 1
            tracks[index] = replace(track, id=f"{prefix}_{counters[prefix]}")
            created.append(tracks[index].id)
    return created


def _pair_costs(tracks: Sequence[_Track], obs: Sequence[dict], gravity: GravityFrame, gate_m: float,
                params: MemoryParams) -> np.ndarray:
    """(T, O) association costs; ``_NO_MATCH`` where a pair is not allowed."""
    tc = np.array([t.center for t in tracks]).reshape(-1, 3)
    oc = np.array([o["center"] for o in obs]).reshape(-1, 3)
    ts = np.array([t.size for t in tracks]).reshape(-1, 3)
    os_ = np.array([o["size"] for o in obs]).reshape(-1, 3)
    dist = np.linalg.norm(tc[:, None, :] - oc[None, :, :], axis=2)
    tg, og = gravity.to_gravity(tc).reshape(-1, 3), gravity.to_gravity(oc).reshape(-1, 3)
    lo = np.maximum((tg - ts / 2)[:, None], (og - os_ / 2)[None])
    hi = np.minimum((tg + ts / 2)[:, None], (og + os_ / 2)[None])
    inter = np.prod(np.clip(hi - lo, 0.0, None), axis=2)
    union = np.prod(ts, axis=1)[:, None] + np.prod(os_, axis=1)[None] - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 1e-12)
    largest = np.maximum(ts.max(axis=1, initial=0.0)[:, None], os_.max(axis=1, initial=0.0)[None])
    gate = np.maximum(gate_m, params.match_size_factor * largest)
    same = np.array([t.label_key for t in tracks])[:, None] == np.array([o["label_key"] for o in obs])[None]
    allowed = same & ((dist <= gate) | (iou >= params.min_iou))
    return np.where(allowed, dist / gate + (1.0 - iou), _NO_MATCH)


def _assign(costs: np.ndarray) -> list[tuple[int, int]]:
    if costs.size == 0:
        return []
    rows, cols = linear_sum_assignment(costs)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if costs[r, c] < _NO_MATCH]


def estimate_rigid_motion(prev: np.ndarray, cur: np.ndarray, params: MemoryParams
                          ) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """Rigid ``(R, t)`` with ``cur ~ R @ prev + t`` from matched centers (metres), or ``(None, None, reason)``.

    Kabsch fit (``Rotation.align_vectors``); while the RMS residual exceeds ``motion_max_residual_m`` the
    worst pair (e.g. an object that was moved) is dropped, as long as ``motion_min_matches`` remain.
    """
    prev, cur = np.asarray(prev, float).reshape(-1, 3), np.asarray(cur, float).reshape(-1, 3)
    while True:
        k = len(prev)
        if k < params.motion_min_matches:
            return None, None, f"not applied: {k} consistent matches < {params.motion_min_matches}"
        mp, mc = prev.mean(axis=0), cur.mean(axis=0)
        spread = np.linalg.svd(prev - mp, compute_uv=False) / math.sqrt(k)
        if spread[1] < params.motion_min_spread_m:
            return None, None, "not applied: matched centers are (nearly) collinear"
        rot, _ = Rotation.align_vectors(cur - mc, prev - mp)
        R = rot.as_matrix()
        t = mc - R @ mp
        residual = np.linalg.norm(prev @ R.T + t - cur, axis=1)
        rms = float(np.sqrt(np.mean(residual ** 2)))
        if rms <= params.motion_max_residual_m:
            angle = math.degrees(rot.magnitude())
            # how far the motion moves the matched centers: ``t`` alone (the camera center's motion) is
            # large for a small noise-fitted rotation about objects a metre away
            shift = float(np.sqrt(np.mean(np.sum((prev @ R.T + t - prev) ** 2, axis=1))))
            if shift < params.motion_min_translation_m and angle < params.motion_min_rotation_deg:
                return np.eye(3), np.zeros(3), f"static ({k} matches)"
            return R, t, (f"applied: {np.linalg.norm(t):.3f} m, {angle:.1f} deg, rms {rms:.3f} m over "
                          f"{k} matches")
        if k - 1 < params.motion_min_matches:
            return None, None, (f"not applied: rms residual {rms:.3f} m > {params.motion_max_residual_m:.3f} m")
        keep = np.arange(k) != int(np.argmax(residual))
        prev, cur = prev[keep], cur[keep]


class SceneMemory:
    """Thread-safe memory of the objects seen recently (see the module docstring for the algorithm)."""

    def __init__(self, params: MemoryParams | None = None, clock=time.monotonic):
        """``clock() -> seconds``: the wall clock of the future-stamp allowance (monotonic; tests fake it)."""
        self.params = (params or MemoryParams()).validate()
        self._clock = clock
        self._accepted_at = 0.0                  # clock() when the newest frame was accepted
        self._jump_run: tuple[str, tuple[float, ...], float] | None = None   # (kind, stamps, clock) rejected
        self._lock = threading.Lock()
        self._tracks: tuple[_Track, ...] = ()
        self._counters: dict[str, int] = {}
        self._next_key = 0
        self._stamp: float | None = None
        self._gravity = GravityFrame.camera_default()
        self._scene = Scene((), self._gravity, 0.0)
        self._report = UpdateReport(0.0, note="no update yet")

    # ------------------------------------------------------------------ public API
    def update(self, observations: Sequence[Observation], stamp: float, gravity: GravityFrame
               ) -> list[TrackedObject]:
        """Fold one frame's observations in; returns the published objects afterwards (sorted by id).

        Raises InputError (and changes nothing) for a non-finite, out-of-order or far-future stamp (see
        "Time jumps" in the module docstring), a bad gravity frame or an observation list that is not a
        sequence; skips bad observations (reasons in ``last_report``).
        """
        stamp = self._check_stamp(stamp)
        gravity = self._check_gravity(gravity)
        if observations is None:
            observations = []
        if not isinstance(observations, (list, tuple)):
            raise InputError(f"observations must be a list, not {type(observations).__name__}")
        with self._lock:
            now = self._clock()
            tracks, counters, next_key = self._tracks, dict(self._counters), self._next_key
            note = self._check_clock(stamp, now)
            if note:
                tracks, counters, next_key = (), {}, 0

            clean, rejected = _clean_observations(observations, self.params)

            alive = [t for t in tracks if stamp - t.last_seen <= self.params.timeout_s]
            expired = tuple(t.id for t in tracks if t.id and stamp - t.last_seen > self.params.timeout_s)

            motion = "off"
            if self.params.compensate_motion and alive and clean:
                alive, motion = self._compensate(alive, clean, gravity)

            pairs = _assign(_pair_costs(alive, clean, gravity, self.params.match_distance_m, self.params))
            new_tracks: list[_Track] = []
            matched_tracks = {i for i, _ in pairs}
            matched_obs = {j for _, j in pairs}
            matched_names = []
            for i, j in pairs:
                track = self._smooth(alive[i], clean[j], stamp)
                new_tracks.append(track)
                matched_names.append(track.id or f"{track.label} (tentative)")
            new_tracks.extend(t for i, t in enumerate(alive) if i not in matched_tracks)
            unmatched = [fields for j, fields in enumerate(clean) if j not in matched_obs]
            next_key = _add_tracks(new_tracks, unmatched, stamp, next_key, self.params.max_objects, rejected)
            created = _confirm_ids(new_tracks, counters, self.params.min_observations)

            scene = self._build_scene(new_tracks, gravity, stamp)
            # commit: nothing above touched the memory's state
            self._tracks, self._counters, self._next_key = tuple(new_tracks), counters, next_key
            self._stamp, self._gravity, self._scene = stamp, gravity, scene
            self._accepted_at, self._jump_run = now, None
            self._report = UpdateReport(stamp, len(observations) - len(rejected), tuple(sorted(rejected)),
                                        tuple(matched_names), tuple(created), expired, motion, note)
            return list(scene.objects)

    def expire(self, stamp: float) -> list[str]:
        """Forget objects unseen for more than ``timeout_s`` at time ``stamp`` (s); returns their ids.

        For a node whose camera stopped publishing; a stamp older than the last update does nothing.
        """
        stamp = self._check_stamp(stamp)
        with self._lock:
            if self._stamp is not None and stamp < self._stamp:
                return []
            keep = tuple(t for t in self._tracks if stamp - t.last_seen <= self.params.timeout_s)
            gone = [t.id for t in self._tracks if t.id and stamp - t.last_seen > self.params.timeout_s]
            if len(keep) != len(self._tracks):
                self._tracks = keep
                self._scene = self._build_scene(keep, self._gravity, self._scene.stamp)
            return gone

    def snapshot(self) -> Scene:
        """The current scene (immutable; O(1))."""
        with self._lock:
            return self._scene

    def reset(self) -> None:
        """Forget every object and the gravity frame (with it the support surface, the ``table``) and restart
        the id counters."""
        with self._lock:
            self._tracks, self._counters, self._next_key, self._stamp = (), {}, 0, None
            self._jump_run = None
            self._gravity = GravityFrame.camera_default()
            self._scene = Scene((), self._gravity, self._scene.stamp)
            self._report = UpdateReport(self._scene.stamp, note="reset")

    @property
    def last_report(self) -> UpdateReport:
        with self._lock:
            return self._report

    def __len__(self) -> int:
        return len(self.snapshot().objects)

    # ------------------------------------------------------------------ internals
    def _check_clock(self, stamp: float, now: float) -> str:
        """'' for a frame in time order; a reset note for a confirmed clock jump; else raise InputError.
        Called under the lock; only the pending jump run changes when a frame is rejected."""
        p, last = self.params, self._stamp
        if last is None:
            return ""
        waited = max(0.0, now - self._accepted_at)
        if stamp < last:
            back = last - stamp
            if back <= p.max_backwards_jump_s:
                self._jump_run = None
                raise InputError(f"frame stamp {stamp:.3f} s is older than the memory's last update "
                                 f"{last:.3f} s; out-of-order frames are not used")
            kind, needed = "back", p.restart_confirm_frames
        elif p.max_future_s > 0 and stamp - last > p.max_future_s + waited:
            kind, needed = "future", p.jump_confirm_frames
        else:
            return ""
        run: tuple[float, ...] = (stamp,)
        if self._jump_run is not None and self._jump_run[0] == kind:
            _, previous, seen_at = self._jump_run
            step = stamp - previous[-1]
            limit = p.max_future_s + max(0.0, now - seen_at) if p.max_future_s > 0 else math.inf
            if 0.0 < step <= limit:
                run = previous + (stamp,)
        if len(run) < needed:
            self._jump_run = (kind, run, now)
            if kind == "back":
                raise InputError(f"frame stamp {stamp:.3f} s is {back:.3f} s older than the memory's last "
                                 f"update {last:.3f} s: a replay restart is assumed after {needed} such "
                                 f"frames ({len(run)} so far); this one is not used")
            raise InputError(f"frame stamp {stamp:.3f} s is {stamp - last:.3f} s ahead of the memory's last "
                             f"update {last:.3f} s (more than max_future_s {p.max_future_s:g} s + "
                             f"{waited:.1f} s waited): rejected as a clock jump or a bad stamp; {needed} "
                             f"consecutive such frames ({len(run)} so far) would confirm a jump")
        confirm = f" (confirmed by {len(run)} frames)" if len(run) > 1 else ""
        if kind == "back":
            return (f"clock jumped back {last - stamp:.3f} s (looped bag, simulator reset or driver "
                    f"restart){confirm}: memory reset, object ids restart")
        return (f"clock jumped forward {stamp - last:.3f} s{confirm}: memory reset, object ids restart")

    @staticmethod
    def _check_stamp(stamp) -> float:
        try:
            stamp = float(stamp)
        except (TypeError, ValueError):
            raise InputError(f"stamp must be a number of seconds, not {stamp!r}") from None
        if not math.isfinite(stamp):
            raise InputError("stamp is not finite")
        return stamp

    @staticmethod
    def _check_gravity(gravity) -> GravityFrame:
        if not isinstance(gravity, GravityFrame):
            raise InputError(f"gravity must be a GravityFrame, not {type(gravity).__name__}")
        rot = np.asarray(gravity.rotation, dtype=np.float64)
        if rot.shape != (3, 3) or not _all_finite(rot) or \
                not bool((np.abs(rot @ rot.T - _EYE) <= _ORTHO_TOL).all()):    # np.allclose(atol=1e-6)
            raise InputError("gravity rotation is not a finite 3x3 rotation matrix")
        return gravity

    def _smooth(self, track: _Track, fields: dict, stamp: float) -> _Track:
        w = max(self.params.alpha, 1.0 / (track.observations + 1))
        return replace(
            track,
            score=(1 - w) * track.score + w * fields["score"],
            center=_readonly((1 - w) * track.center + w * fields["center"]),
            size=_readonly((1 - w) * track.size + w * fields["size"]),
            points=_frozen(fields["points"], (-1, 3)),
            observations=track.observations + 1,
            last_seen=stamp,
            color_rgb=fields["color_rgb"],
            color_name=fields["color_name"] or track.color_name,
            n_pixels=fields["n_pixels"],
            carried=False,
        )

    def _compensate(self, tracks: list[_Track], clean: list[dict], gravity: GravityFrame
                    ) -> tuple[list[_Track], str]:
        pairs = _assign(_pair_costs(tracks, clean, gravity, self.params.motion_gate_m, self.params))
        prev = np.array([tracks[i].center for i, _ in pairs]).reshape(-1, 3)
        cur = np.array([clean[j]["center"] for _, j in pairs]).reshape(-1, 3)
        R, t, message = estimate_rigid_motion(prev, cur, self.params)
        if R is None or message.startswith("static"):
            return tracks, message
        moved = [replace(tr, center=_frozen(R @ tr.center + t), points=_frozen(tr.points @ R.T + t, (-1, 3)),
                         carried=True) for tr in tracks]
        return moved, message

    def _build_scene(self, tracks: Sequence[_Track], gravity: GravityFrame, stamp: float) -> Scene:
        shown = [t for t in tracks if t.id]
        if not shown:
            return Scene((), gravity, stamp)
        g = gravity.to_gravity(np.array([t.center for t in shown]))     # all boxes at once, read-only rows
        half = np.array([t.size for t in shown]) / 2
        box_min, box_max = _readonly(g - half), _readonly(g + half)
        objects = [TrackedObject(
            id=t.id, label=t.label, score=float(t.score), center=t.center, size=t.size,
            box_min=box_min[i], box_max=box_max[i], points=t.points,
            observations=t.observations, first_seen=t.first_seen, last_seen=t.last_seen,
            color_rgb=t.color_rgb, color_name=t.color_name, n_pixels=t.n_pixels,
            extra={"visible": t.last_seen == stamp, "carried": t.carried}) for i, t in enumerate(shown)]
        objects.sort(key=lambda o: _id_sort_key(o.id))
        return Scene(tuple(objects), gravity, stamp)


def _id_sort_key(object_id: str):
    prefix, _, number = object_id.rpartition("_")
    return (prefix, int(number)) if number.isdigit() else (object_id, 0)
