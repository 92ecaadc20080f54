"""``FrameProcessor`` (no DDS: no node, no topics): a set matched or a frame converted before ``reset`` is
dropped, never lands in the fresh memory or seeds the new gravity; the diagnostics values say where up came
from and the status WARNs while up is assumed."""
from dataclasses import replace

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from ros_harness import default_scene, frame_messages

from spatial_vlm_ros.ros.diagnostics import ProcessingStats, diagnostic_array
from spatial_vlm_ros.ros.frame_worker import FrameEvents, FrameProcessor, WorkerSpec
from spatial_vlm_ros.ros.parameters import node_settings, pipeline_config, validate_values

SCENE = default_scene()


class Recorder(FrameEvents):
    def __init__(self):
        self.frames, self.rejected = [], []

    def frame(self, report) -> None:
        self.frames.append(report)

    def rejected(self, message: str) -> None:
        self.rejected.append(message)


@pytest.fixture()
def processor():
    values = validate_values({})
    events = Recorder()
    proc = FrameProcessor(None, WorkerSpec(node_settings(values), pipeline_config(values), {}, "frames"), events)
    proc.worker.stop()                    # the test hands the sets over itself
    yield proc
    proc.close()


def _matched(proc, stamp: float, scene=SCENE):
    """File one frame's messages through the input callbacks; returns the set they handed off."""
    msgs = frame_messages(scene, stamp)
    for slot in proc.slots:
        proc._input_callback(slot)(getattr(msgs, slot))
    return proc.handoff.get(timeout=0.0)


def test_a_set_matched_before_reset_is_dropped(processor):
    processor._process_set(_matched(processor, 1.0))
    assert len(processor.pipeline.memory.snapshot().objects) == 3
    queued = _matched(processor, 1.1)
    processor.reset()
    processor._process_set(queued)
    assert processor.pipeline.memory.snapshot().objects == ()
    assert processor.pipeline.gravity.current is None          # the new estimate is not seeded by it
    assert processor.dropped_by_reset == 1 and len(processor.events.frames) == 1
    processor._process_set(_matched(processor, 1.2))           # a set matched after the reset is used
    assert len(processor.pipeline.memory.snapshot().objects) == 3 and processor.dropped_by_reset == 1


def test_a_frame_converted_while_reset_runs_is_dropped(processor, monkeypatch):
    convert = processor._frame_from_set

    def convert_then_reset(msgs):          # ~/reset arrives while the frame thread converts its set
        frame = convert(msgs)
        processor.reset()
        return frame
    monkeypatch.setattr(processor, "_frame_from_set", convert_then_reset)
    processor._process_set(_matched(processor, 1.0))
    assert processor.pipeline.memory.snapshot().objects == ()
    assert processor.pipeline.gravity.current is None
    assert processor.dropped_by_reset == 1 and processor.events.frames == []


def _diagnostics(processor):
    stats = ProcessingStats()
    stats.record_frame(0.01, 3, now=0.0)
    values = processor.status_values()
    status = diagnostic_array(stats.snapshot(now=0.5), None, "perception", "hw", 1.0, 5.0, values).status[0]
    return status, {kv.key: kv.value for kv in status.values}


def test_diagnostics_report_the_up_source_and_warn_while_assumed(processor):
    processor._process_set(_matched(processor, 1.0))
    status, values = _diagnostics(processor)
    assert status.level == DiagnosticStatus.OK, status.message
    assert (values["up_source"], values["up_assumed"]) == ("support plane", "False")
    blind = default_scene()
    blind.depth = np.where(blind.mask > 0, blind.depth, np.nan)      # no table: no support plane
    gravity = processor.pipeline.gravity
    gravity.params = replace(gravity.params, max_hold_frames=0)     # no holding of the last plane
    processor._process_set(_matched(processor, 1.1, blind))
    status, values = _diagnostics(processor)
    assert status.level == DiagnosticStatus.WARN
    assert values["up_assumed"] == "True"
    assert values["up_source"] == "level camera (static orientation parameter)"   # the parameters' default
    assert "up assumed (level camera (static orientation parameter))" in status.message
