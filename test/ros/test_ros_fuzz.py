"""Fuzz the running node through its topics and services only: thousands of random service requests while
thousands of malformed messages arrive on every input topic (generators: ``fuzz_inputs.py``). Every request
must be answered, the node must stay alive and keep processing good frames, and the scene memory, read
through ``~/list_objects`` field by field, must stay bit-identical.

Deterministic for a seed (``SVR_FUZZ_SEED``, default 8); a failure names the seed and the storm items
(index, faults, stamp) it points to. Run with ``SVR_ISOLATE=1 scripts/ros_env.sh python -m pytest -q -s
test/ros/test_ros_fuzz.py`` (``-s`` prints the storm summary).
"""
import os
import random
import threading
import time
from collections import Counter

import fuzz_inputs as fz
import pytest
import rclpy
from ros_harness import NodeHarness, default_scene, frame_messages, wait_until

from spatial_vlm_interfaces.srv import Ask, GetRelation, ListObjects, Measure
from spatial_vlm_ros.ros import conversions as conv

SEED = int(os.environ.get("SVR_FUZZ_SEED", "8"))
SCENE = default_scene(160, 120)           # small frames: the storm is about content, not bandwidth
T_LAST = 100.2                            # stamp of the last valid frame before the storm
FRAMES_A, LONE_A, FRAMES_B, LONE_B = 1200, 900, 200, 100
REQUESTS = 3000
REQUEST_THREADS = 3
REQUEST_TIMEOUT_S = 10.0
PACE_S = 0.004                            # between storm items (DDS best effort drops what we outrun)
OVERRIDES = {
    "memory.timeout_s": 3600.0,            # nothing expires during the test
    "sync.slop_s": 0.02,                   # < fz.GRID_S / 4: the storm's stamp grid relies on it
    "vlm_service": "",                     # ~/ask never waits for a VLM
    "diagnostics_period_s": 0.05,
}
SERVICES = {"list_objects": ListObjects, "get_relation": GetRelation, "measure": Measure, "ask": Ask}


def _fingerprint(objects) -> tuple:
    """The memory as the planners see it: every field of every object, floats by their exact bits."""
    return tuple((o.id, o.label, float(o.score).hex(), float(o.center.x).hex(), float(o.center.y).hex(),
                  float(o.center.z).hex(), float(o.size.x).hex(), float(o.size.y).hex(), float(o.size.z).hex(),
                  o.observations, o.last_seen.sec, o.last_seen.nanosec) for o in objects)


def _answer_key(res) -> tuple:
    out = []
    for name in res.get_fields_and_field_types():
        value = getattr(res, name)
        out.append(_fingerprint(value) if name == "objects" else value)
    return tuple(out)


def _storm(rng: random.Random, stamps: fz.StampPlan, phase: str, frames: int, lone: int) -> list:
    kinds = ["frame"] * frames + ["lone"] * lone
    rng.shuffle(kinds)
    make = {"frame": fz.corrupted_frame, "lone": fz.lone_message}
    return [make[k](rng, SCENE, stamps, phase) for k in kinds]


class _Requester:
    """Service calls from several threads; records every problem with what was asked."""

    def __init__(self, harness, requests, phase_b_started: threading.Event, progress):
        self.requests, self.phase_b, self.progress = requests, phase_b_started, progress
        self.clients = {name: harness.client(srv, name) for name, srv in SERVICES.items()}
        self.problems: list[str] = []
        self.reference: dict = {}          # request -> first answer while the memory must be unchanged
        self.answered = Counter()
        self.lock = threading.Lock()

    def _problem(self, index, service, fields, text) -> None:
        shown = {k: (v[:60] + f"...({len(v)} chars)" if len(v) > 60 else v) for k, v in fields.items()}
        with self.lock:
            self.problems.append(f"request #{index} {service}({shown!r}) after storm item #{self.progress[0]}: "
                                 f"{text}")

    def run(self, indices) -> None:
        for index in indices:
            service, fields = self.requests[index]
            done = threading.Event()
            future = self.clients[service].call_async(SERVICES[service].Request(**fields))
            future.add_done_callback(lambda _, done=done: done.set())   # this request's event, even if late
            if not done.wait(REQUEST_TIMEOUT_S):
                self._problem(index, service, fields, f"no answer within {REQUEST_TIMEOUT_S} s")
                continue
            res = future.result()
            unchanged_memory = not self.phase_b.is_set()
            with self.lock:
                self.answered[(service, res.success)] += 1
            if not res.success and not res.message:
                self._problem(index, service, fields, "success=false with an empty message")
            if res.message.startswith("internal error"):
                self._problem(index, service, fields, f"caught exception: {res.message}")
            if unchanged_memory:
                key = (service, tuple(sorted(fields.items())))
                answer = _answer_key(res)
                with self.lock:
                    first = self.reference.setdefault(key, answer)
                if answer != first:
                    names = list(res.get_fields_and_field_types())
                    diff = [f"{n}: {a!r} -> {b!r}"[:300] for n, a, b in zip(names, first, answer) if a != b]
                    self._problem(index, service, fields, "answer changed, " + "; ".join(diff))


def _diagnostic_values(h, start: int = 0) -> list[dict]:
    """Key/values of this node's /diagnostics statuses received since message ``start``."""
    return [{kv.key: kv.value for kv in status.values} for array in list(h.diagnostics)[start:]
            for status in array.status if status.hardware_id == h.ns]


def _counts(h) -> tuple[int, int]:
    """(frames processed, frames rejected) from the node's newest /diagnostics status."""
    for array in reversed(list(h.diagnostics)):
        for status in array.status:
            if status.hardware_id == h.ns:
                values = {kv.key: kv.value for kv in status.values}
                return int(values.get("frames_processed", 0)), int(values.get("frames_rejected", 0))
    return 0, 0


def _objects(h) -> list:
    res = h.call(ListObjects, "list_objects")
    assert res.success, res.message
    return list(res.objects)


def _publish_until_seen(h, stamp: float, timeout: float = 10.0) -> list:
    """Publish a valid frame stamped ``stamp`` and wait (through ``~/list_objects`` only) until the memory
    holds three objects last seen then; returns them."""
    h.publish(frame_messages(SCENE, stamp))
    found = []

    def seen():
        found[:] = _objects(h)
        return len(found) == 3 and all(abs(conv.stamp_to_seconds(o.last_seen) - stamp) < 1e-6 for o in found)
    if not wait_until(seen, timeout, period=0.05):
        pytest.fail(f"the valid frame stamped {stamp} was not processed")
    return found


def _wait_connected(h, tries: int = 20) -> None:
    """Publish unusable frames (all-zero K) until the node reports rejecting one: the inputs are connected
    end to end (a publisher can see the subscription before the subscription sees it) and the memory is
    untouched."""
    for k in range(tries):
        msgs = frame_messages(SCENE, T_LAST - 0.5 - 0.01 * k)
        msgs.camera_info.k = [0.0] * 9
        h.publish(msgs)
        if wait_until(lambda: _counts(h)[1] >= 1, 0.5):
            return
    pytest.fail("the node never reported a frame: inputs not connected")


@pytest.fixture(scope="module")
def harness():
    if not rclpy.ok():
        rclpy.init()
    with NodeHarness(OVERRIDES, namespace="fuzz") as h:
        _wait_connected(h)
        _publish_until_seen(h, T_LAST - 0.1)
        _publish_until_seen(h, T_LAST)
        yield h


def _publish_storm(h, storm: list, n_phase_a: int, requester: _Requester, progress: list) -> list:
    """Publish every storm item (paced) while ``REQUEST_THREADS`` threads send the requests; phase B starts
    after phase A has drained. Returns the request threads, joined (with a timeout)."""
    threads = [threading.Thread(target=requester.run, args=(range(k, REQUESTS, REQUEST_THREADS),),
                                name=f"requests-{k}") for k in range(REQUEST_THREADS)]
    for thread in threads:
        thread.start()
    for index, item in enumerate(storm):
        if index == n_phase_a:
            time.sleep(0.5)                     # phase A drained before the memory may move on
            requester.phase_b.set()
        progress[0] = index
        for slot, msg in item.messages:
            h.pubs[slot].publish(msg)
        time.sleep(PACE_S)
    for thread in threads:
        thread.join(120.0)
    return threads


def _processing_problems(h, storm: list, processed_stamps: set, n_objects_topic: int) -> list[str]:
    """Every ~/objects message stamps the frame that produced it: only per-object faults may be processed."""
    problems = []
    by_stamp: dict = {}
    for i, item in enumerate(storm):
        by_stamp.setdefault(round(item.stamp, 6), []).append(i)
    for out in h.objects[n_objects_topic:]:
        stamp = round(conv.stamp_to_seconds(out.header.stamp), 6)
        if stamp not in processed_stamps and stamp not in (round(T_LAST - 0.1, 6), T_LAST):
            items = "; ".join(f"#{i} {storm[i].description}" for i in by_stamp.get(stamp, [])[:3])
            problems.append(f"a frame stamped {stamp} was processed: storm item {items or '(none)'}")
    return problems


def _diagnostics_problems(diagnostics: list[dict], errors: Counter) -> list[str]:
    problems = [f"diagnostics report a caught exception: {e}" for e in errors if "internal error" in e]
    return problems + [f"diagnostics report: {w}" for w in {v.get("last_warning", "") for v in diagnostics}
                       if "memory reset" in w]


def _request_problems(requester: _Requester) -> list[str]:
    return requester.problems[:12] + ([f"... and {len(requester.problems) - 12} more request problems"]
                                      if len(requester.problems) > 12 else [])


def test_storm_of_malformed_frames_and_random_requests(harness):
    h = harness
    rng = random.Random(SEED)
    stamps = fz.StampPlan(T_LAST, rng)
    storm_a = _storm(rng, stamps, "A", FRAMES_A, LONE_A)
    storm_b = _storm(rng, stamps, "B", FRAMES_B, LONE_B)
    storm = storm_a + storm_b
    requests = [fz.random_request(rng) for _ in range(REQUESTS)]
    malformed = sum(item.malformed for item in storm)
    assert malformed >= 2000 and len(requests) >= 2000, "the storm is smaller than the test promises"
    processed_stamps = {round(item.stamp, 6) for item in storm_b if item.may_be_processed}

    before = _objects(h)
    assert [o.observations for o in before] == [2, 2, 2], "the storm needs the memory of the two valid frames"
    fingerprint = _fingerprint(before)
    assert wait_until(lambda: _counts(h)[0] >= 2, 5.0), "no diagnostics from the node"
    n_objects_topic, n_diagnostics = len(h.objects), len(h.diagnostics)
    processed_before, rejected_before = _counts(h)

    t_start = time.monotonic()
    progress = [0]
    requester = _Requester(h, requests, threading.Event(), progress)
    threads = _publish_storm(h, storm, len(storm_a), requester, progress)
    assert not any(thread.is_alive() for thread in threads), "request threads hung"
    storm_s = time.monotonic() - t_start
    time.sleep(0.5)                             # the last storm frames through the pipeline

    problems = _processing_problems(h, storm, processed_stamps, n_objects_topic)
    diagnostics = _diagnostic_values(h, n_diagnostics)
    errors = Counter(v.get("last_error", "") for v in diagnostics)
    problems += _diagnostics_problems(diagnostics, errors)
    problems += _request_problems(requester)
    after = _objects(h)
    if _fingerprint(after) != fingerprint:
        problems.append(f"memory changed: {fingerprint} -> {_fingerprint(after)}")
    processed, rejected = _counts(h)
    print(f"\nfuzz seed {SEED}: {len(storm)} storm items ({malformed} malformed messages) and "
          f"{len(requests)} requests in {storm_s:.1f} s; frames rejected {rejected - rejected_before}, "
          f"processed (per-object faults) {processed - processed_before}; answers "
          f"{dict(sorted(requester.answered.items()))}")
    for error, count in errors.most_common(8):
        print(f"  {count:5d} diagnostics samples with last_error: {error[:110]}")
    assert not problems, f"seed {SEED}: {len(problems)} problem(s):\n" + "\n".join(problems[:30])
    assert rejected - rejected_before >= 200, "the storm hardly reached the pipeline"

    # Alive: a valid frame after the storm is processed, every object seen once more under its old id.
    t_valid = stamps.grid_end + 1.0
    final = _publish_until_seen(h, t_valid)
    assert [(o.id, o.observations) for o in final] == [(o.id, o.observations + 1) for o in before]


def test_a_duplicated_frame_is_not_counted_twice(harness):
    """The same frame published twice (a republished or replayed message) changes the memory once."""
    h = harness
    stamp = max(conv.stamp_to_seconds(o.last_seen) for o in _objects(h)) + 1.0
    once = _publish_until_seen(h, stamp)
    processed, rejected = _counts(h)
    h.publish(frame_messages(SCENE, stamp))             # the same frame again (a republished message)
    wait_until(lambda: sum(_counts(h)) > processed + rejected, 3.0)
    time.sleep(0.3)
    assert _fingerprint(_objects(h)) == _fingerprint(once)
