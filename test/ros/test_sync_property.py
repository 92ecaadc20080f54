"""Property tests of the approximate-time synchroniser over thousands of random streams (seeded numpy).

Streams mix steady 30 Hz-like stamps with duplicates, reordering, small and large backwards jumps, stamps
far in the future, non-finite stamps and full queues, over 1-4 slots. Checked after every ``add``: it never
raises, an emitted set has exactly one item per slot, contains the new message, lies within ``slop``, never
re-emits a message, and the counters account for every message. A second test compares the chosen set
with an exhaustive search where the queues are unbounded.
"""
import itertools
import math

import numpy as np
import pytest

from spatial_vlm_ros.ros.sync import ApproximateTimeSynchronizer

SLOPS = (0.0, 0.005, 0.02, 0.1, 1.0)


def _random_stamps(rng, n):
    """n stamps (s): a 30 Hz clock with duplicates, jitter, jumps back/forward and a few non-finite ones."""
    t, out, seen = 100.0, [], []
    for _ in range(n):
        r = rng.random()
        if r < 0.08 and seen:
            s = seen[rng.integers(len(seen))]                  # duplicate of an earlier stamp
        elif r < 0.14:
            t -= rng.choice([0.05, 0.5, 3.0, 60.0])            # clock back (reorder, loop, reset)
            s = t
        elif r < 0.17:
            s = t + rng.choice([5.0, 3600.0])                  # one message far in the future
        elif r < 0.18:
            s = rng.choice([math.nan, math.inf, -math.inf])
        else:
            t += rng.choice([0.0, 1 / 30, 1 / 60, 0.1]) + rng.normal(0.0, 0.003)
            s = t
        out.append(float(s))
        if math.isfinite(s):
            seen.append(float(s))
    return out


def _check_accounting(sync, n_slots):
    st = sync.stats
    queued = sum(sync.pending().values())
    assert st.received == st.matched_sets * n_slots + st.dropped_total + st.duplicates + queued
    assert all(v >= 0 for v in st.dropped.values())
    assert all(0 <= q <= sync.queue_size for q in sync.pending().values())


def test_random_streams_never_raise_and_emit_consistent_sets():
    rng = np.random.default_rng(20261201)
    total_sets = 0
    for trial in range(2000):
        n_slots = int(rng.integers(1, 5))
        slots = [f"s{k}" for k in range(n_slots)]
        slop = float(rng.choice(SLOPS))
        sync = ApproximateTimeSynchronizer(slots, slop, queue_size=int(rng.integers(1, 13)))
        emitted = set()
        stamps = _random_stamps(rng, int(rng.integers(10, 50)))
        for k, stamp in enumerate(stamps):
            slot = slots[int(rng.integers(n_slots))]
            item = (slot, stamp, trial, k)
            out = sync.add(slot, stamp, item)
            if out is not None:
                assert set(out) == set(slots)                            # one item per slot
                assert out[slot] is item                                 # the new message is in it
                for s, it in out.items():
                    assert it[0] == s                                    # from its own slot
                    assert it not in emitted                             # never emitted twice
                    emitted.add(it)
                emitted_stamps = [it[1] for it in out.values()]
                assert all(math.isfinite(x) for x in emitted_stamps)
                assert max(emitted_stamps) - min(emitted_stamps) <= slop + 1e-12
                total_sets += 1
            _check_accounting(sync, n_slots)
    assert total_sets > 3000                                             # the streams do match


def test_chosen_set_has_the_smallest_spread_when_queues_are_unbounded():
    """Against an exhaustive search over a shadow copy of the queues (no eviction, no clock jumps)."""
    rng = np.random.default_rng(7)
    for _ in range(400):
        n_slots = int(rng.integers(2, 4))
        slots = list(range(n_slots))
        slop = float(rng.choice((0.01, 0.05, 0.2)))
        sync = ApproximateTimeSynchronizer(slots, slop, queue_size=1000, restart_jump_s=1e9)
        shadow = {s: {} for s in slots}                                  # slot -> {stamp: item}
        for k in range(40):
            slot = int(rng.integers(n_slots))
            stamp = round(float(rng.uniform(0.0, 0.5)), 3)              # ties and duplicates happen
            shadow[slot][stamp] = (slot, stamp, k)
            combos = itertools.product(*[[stamp] if s == slot else sorted(shadow[s]) for s in slots])
            spreads = [max(c) - min(c) for c in combos]
            best = min(spreads, default=math.inf)
            out = sync.add(slot, stamp, (slot, stamp, k))
            if best <= slop:
                assert out is not None
                got = [out[s][1] for s in slots]
                assert max(got) - min(got) == pytest.approx(best, abs=1e-12)
                for s in slots:                                          # matched and older ones leave
                    shadow[s] = {t: it for t, it in shadow[s].items() if t > out[s][1]}
            else:
                assert out is None
            assert sync.pending() == {s: len(shadow[s]) for s in slots}


def test_full_queue_and_stamps_back_do_not_raise_or_starve():
    """The issue-8 crash: a full queue, then stamps jump back (a looped bag): the new message is the
    oldest, is pushed out of its own queue, and must not be looked up afterwards."""
    sync = ApproximateTimeSynchronizer(["color", "depth"], slop=0.01, queue_size=3)
    for k in range(5):
        sync.add("color", 10.0 + k / 30, k)                              # depth silent: color queue fills
    assert sync.add("color", 10.0, "old") is None                        # older than a full queue: dropped
    assert sync.add("color", 0.0, "restart") is None                     # 10 s back: a clock restart
    assert sync.pending()["color"] == 1 and sync.stats.clock_jumps == 1
    assert sync.add("depth", 0.002, "d") == {"color": "restart", "depth": "d"}
    _check_accounting(sync, 2)


def test_wide_slop_and_long_queues_stay_exact():
    """slop 1 s, queue 100, three slots of unmatched messages: the search is not combinatorial (it used to
    try 100^2 combinations per add) and still finds the set."""
    sync = ApproximateTimeSynchronizer(["a", "b", "c"], slop=1.0, queue_size=100)
    for k in range(100):
        assert sync.add("a", k * 0.01, ("a", k)) is None
        assert sync.add("b", k * 0.01 + 0.004, ("b", k)) is None
    out = sync.add("c", 0.5, "c")
    assert out == {"a": ("a", 50), "b": ("b", 50), "c": "c"}         # spread 0.004 s, the smallest
    assert sync.stats.dropped == {"a": 50, "b": 50, "c": 0}
