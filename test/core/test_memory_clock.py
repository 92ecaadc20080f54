"""SceneMemory and time jumps (issue 8): far-future stamps, backwards jumps, looped bags, paused cameras.

A fake wall clock drives the future-stamp allowance, so nothing here sleeps.
"""
import numpy as np
import pytest
from reasoning_fixtures import make_observation

from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.core.gravity_frame import GravityFrame
from spatial_vlm_ros.core.memory import MemoryParams, SceneMemory

G = GravityFrame.camera_default()
HOUR = 3600.0


def obs(label, x, z=1.0):
    return make_observation(label, (x, 0.1, z), (0.08, 0.08, 0.1), G)


def scene():
    return [obs("mug", -0.2), obs("mug", 0.2), obs("bowl", 0.4)]


class FakeClock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def _memory(**params):
    clock = FakeClock()
    return SceneMemory(MemoryParams(**params), clock=clock), clock


def _run(mem, clock, stamps, frame=scene):
    """Feed 30 Hz frames (wall clock advancing with them); returns the number rejected."""
    rejected = 0
    for t in stamps:
        clock.t += 1 / 30
        try:
            mem.update(frame(), t, G)
        except InputError:
            rejected += 1
    return rejected


def test_one_frame_an_hour_ahead_is_rejected_and_changes_nothing():
    mem, clock = _memory()
    _run(mem, clock, [10.0 + k / 30 for k in range(5)])
    before, report = mem.snapshot(), mem.last_report
    assert before.ids == ("bowl_1", "mug_1", "mug_2")
    with pytest.raises(InputError, match="ahead of the memory's last update .* clock jump or a bad stamp"):
        mem.update([obs("mug", 0.0)], 10.2 + HOUR, G)
    assert mem.snapshot() is before and mem.last_report is report        # bit-identical
    # the normal frames after it are accepted and nothing is renumbered
    assert _run(mem, clock, [10.2 + k / 30 for k in range(10)]) == 0
    assert mem.snapshot().ids == ("bowl_1", "mug_1", "mug_2")
    mem.update(scene() + [obs("cup", -0.5)], 10.6, G)
    assert "cup_1" in mem.snapshot().ids and mem.last_report.note == ""


def test_stray_future_frames_between_normal_ones_never_confirm_a_jump():
    mem, clock = _memory()
    rng = np.random.default_rng(3)
    t, rejected = 0.0, 0
    for k in range(300):
        t += 1 / 30
        rejected += _run(mem, clock, [t])
        if k % 2:                                       # every other frame: garbage far in the future
            rejected += _run(mem, clock, [t + float(rng.uniform(400.0, 10 * HOUR))])
    assert rejected == 150
    assert mem.snapshot().ids == ("bowl_1", "mug_1", "mug_2")
    assert mem.snapshot().objects[0].observations == 300                 # every normal frame was used


def test_a_real_forward_jump_is_confirmed_by_consecutive_frames_and_resets_explicitly():
    mem, clock = _memory(jump_confirm_frames=3)
    _run(mem, clock, [5.0, 5.033])
    before = mem.snapshot()
    assert _run(mem, clock, [5.033 + HOUR, 5.066 + HOUR]) == 2          # not believed yet
    assert mem.snapshot() is before
    mem.update(scene(), 5.1 + HOUR, G)                                   # the third one is
    assert "clock jumped forward" in mem.last_report.note and "confirmed by 3 frames" in mem.last_report.note
    assert "memory reset" in mem.last_report.note
    assert mem.snapshot().ids == ("bowl_1", "mug_1", "mug_2")            # ids restart, explicitly
    assert mem.snapshot().objects[0].observations == 1
    assert _run(mem, clock, [5.1 + HOUR + k / 30 for k in range(1, 20)]) == 0
    assert mem.last_report.note == ""


def test_future_frames_out_of_order_or_far_apart_do_not_confirm():
    mem, clock = _memory(jump_confirm_frames=2)
    mem.update(scene(), 1.0, G)
    before = mem.snapshot()
    # descending, equal, and a second one 3 h after the first: none continues the run
    assert _run(mem, clock, [HOUR + 2.0, HOUR + 1.0, HOUR + 1.0, 4 * HOUR]) == 4
    assert mem.snapshot() is before


def test_a_paused_camera_may_resume_later_by_the_wall_time_it_waited():
    mem, clock = _memory(max_future_s=10.0, timeout_s=3.0)
    mem.update(scene(), 1.0, G)
    clock.t += 60.0                                                      # the camera was off a minute
    mem.update([obs("mug", -0.2)], 61.0, G)
    report = mem.last_report
    assert report.note == "" and set(report.expired) == {"bowl_1", "mug_1", "mug_2"}  # ordinary expiry
    with pytest.raises(InputError, match="ahead"):                       # but not beyond what it waited
        mem.update(scene(), 61.0 + 15.0, G)


def test_max_future_s_zero_disables_the_check():
    mem, clock = _memory(max_future_s=0.0)
    mem.update(scene(), 1.0, G)
    mem.update(scene(), 1.0 + HOUR, G)
    assert mem.last_report.note == ""


def test_a_looped_bag_never_stalls_the_memory():
    """Three passes over the same 2 s of stamps (a looped bag without stamp shifting): the first
    ``restart_confirm_frames - 1`` frames of a new pass are refused, the next one resets the memory."""
    mem, clock = _memory()
    confirm = mem.params.restart_confirm_frames
    one_pass = [100.0 + k / 30 for k in range(60)]
    notes = []
    rejected = 0
    for _ in range(3):
        rejected += _run(mem, clock, one_pass[:confirm])
        notes.append(mem.last_report.note)
        rejected += _run(mem, clock, one_pass[confirm:])
    assert rejected == 2 * (confirm - 1)
    assert notes[0] == "" and all("clock jumped back" in n and "memory reset" in n for n in notes[1:])
    assert mem.snapshot().ids == ("bowl_1", "mug_1", "mug_2")
    assert mem.snapshot().objects[0].observations == 60 - (confirm - 1)


def test_small_backwards_jumps_are_out_of_order_and_stall_at_most_that_long():
    mem, clock = _memory(max_backwards_jump_s=1.0)
    _run(mem, clock, [10.0 + k / 30 for k in range(30)])                 # up to 10.967 s
    last = 10.0 + 29 / 30
    restarted = [last - 0.5 + k / 30 for k in range(40)]                 # the source went back 0.5 s
    rejected = _run(mem, clock, restarted)
    assert rejected == sum(1 for t in restarted if t < last)             # only until it overtakes: 15
    assert rejected == 15 and mem.last_report.note == ""
    assert mem.snapshot().ids == ("bowl_1", "mug_1", "mug_2")


def test_restart_confirmation_lets_a_single_stale_frame_change_nothing():
    mem, clock = _memory(restart_confirm_frames=3)
    _run(mem, clock, [50.0 + k / 30 for k in range(5)])
    before = mem.snapshot()
    with pytest.raises(InputError, match="replay restart is assumed after 3 such frames"):
        mem.update(scene(), 1.0, G)
    assert mem.snapshot() is before
    assert _run(mem, clock, [50.2, 50.233]) == 0                         # normal frames break the run
    assert _run(mem, clock, [0.0, 0.033]) == 2
    mem.update([obs("bowl", 0.4)], 0.066, G)
    assert "clock jumped back" in mem.last_report.note and "confirmed by 3 frames" in mem.last_report.note
    assert mem.snapshot().ids == ("bowl_1",)


def test_reset_forgets_a_pending_jump_run():
    mem, clock = _memory(jump_confirm_frames=2)
    mem.update(scene(), 1.0, G)
    _run(mem, clock, [HOUR])
    mem.reset()
    mem.update(scene(), 2.0, G)
    assert _run(mem, clock, [HOUR + 0.033]) == 1                         # a new run, not the old one's 2nd


@pytest.mark.parametrize("field,value", [("max_future_s", -1.0), ("max_backwards_jump_s", -0.1),
                                         ("jump_confirm_frames", 0), ("restart_confirm_frames", 0)])
def test_bad_clock_parameters_are_refused(field, value):
    with pytest.raises(InputError, match=field):
        MemoryParams(**{field: value}).validate()
