"""Offline evaluation: replay a bag into the real node, ask every ground-truth question over its services, score.

    scripts/ros_env.sh python -m spatial_vlm_ros.cli evaluate BAG [--ground-truth GT.json] [--out DIR]

Flow: start the ``spatial_perception`` node (a subprocess of this interpreter, or in-process), replay the bag
with ``bag.player.BagPlayer`` at recorded timing (times ``rate``), pausing after each FRAME SET (consecutive
ground-truth frames of one scene, docs/ground_truth_format.md): wait until the node has published
``~/objects`` for the set's last frame, ask every relation and quantity of that frame's ground truth through
``~/get_relation`` and ``~/measure`` with rclpy clients, then ``~/reset`` when the next set is another scene.
Answers are scored by ``scoring``; ``report`` writes ``results.json``, ``report.md``, plots and annotated frames.

Engines (``--engine``): ``geometry`` (default) asks through the typed services as above; ``vlm`` starts a
``vlm_node`` subprocess serving ``--vlm-model`` next to the perception node and asks each question as its
template question (``asking.template_question``) through ``~/ask`` with ``engine: vlm``, so the VLM answers with
the perception node's scene facts in its prompt and the newest replayed image. Its text is read as yes/no or
a length (``vlm.answer_parsing``); an answer that cannot be read counts as wrong, like a failed call. The
VLM's token probability is not a probability of being right, so VLM records carry no confidence and no
uncertainty (no calibration rows). The run is named ``<detector> (vlm)`` in the report.

Works for any bag with the camera topics and a ground-truth file in the documented format (``objects`` boxes
are enough: relations and quantities are then computed from them). The node's objects of each scored frame are
matched one-to-one to the visible ground-truth objects by 3D center (``matching``). With ``external`` (the
bag's instance masks) and ``boxes`` (its ``/camera/detections``), whose labels are the ground truth's, an
object with a unique label is asked about by that label and the others by the matched node id; with
``tabletop`` (color labels) every object by the matched node id. Every visible ground-truth object is scored:
a question about an object no node object matched is not asked and counts as wrong (``QueryRecord.missed``).
Detector recall (objects found / objects present) and precision (found / objects the node reported) are in
the summary under ``objects``. Must run under ``scripts/ros_env.sh``.

Pieces: ``config`` (``EvaluationConfig``), ``node_process`` (start/stop the nodes, their logs),
``stepped_player`` (the bag replay that pauses per frame set), ``asking`` (the questions and their answers),
``annotation`` (annotated frames), ``console_table`` (the printed summary); this module composes them.
"""
from __future__ import annotations

import math
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spatial_vlm_ros.bag.messages import CameraTopics
from spatial_vlm_ros.bag.reader import BagReader, find_ground_truth
from spatial_vlm_ros.core.errors import InputError
from spatial_vlm_ros.sim.ground_truth_file import load_ground_truth

from .annotation import annotate_frame
from .asking import ask_records, ask_scene_queries, question_names
from .config import DEFAULT_VLM_PARAMS, EvaluationConfig, check_config, params_path
from .console_table import print_summary
from .matching import match_objects, node_centers
from .node_process import NodeRunner, VLMNodeRunner, wait_for_node, wait_for_vlm
from .records import FrameStats, QueryRecord
from .report import FrameAnnotation, RunResult, write_report
from .scene_query_truth import SceneQueryRecord, summarize_scene_queries
from .scoring import summarize
from .stepped_player import SteppedBagPlayer, replay_topics
from .truth_queries import (
    NOT_FOUND,
    FrameSet,
    askable_objects,
    askable_records,
    detection_counts,
    failed_records,
    frame_queries,
    frame_sets,
)

#: a replayed frame counts as processed when the node published ``~/objects`` within this of its stamp (ns)
STAMP_TOLERANCE_NS = 100_000


@dataclass
class EvaluationRun:
    """Everything one evaluation produced (before writing the report)."""

    detector: str
    records: list[QueryRecord]
    frames: FrameStats
    skipped: Counter
    matching: dict                              # GT objects askable / matched to a node object, per run
    annotations: list[FrameAnnotation]
    wall_s: float
    summary: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    engine: str = "geometry"
    scene_records: list[SceneQueryRecord] = field(default_factory=list)

    @property
    def name(self) -> str:
        """The run's name in the report: the detector, with `` (vlm)`` when the VLM answered."""
        return self.detector if self.engine == "geometry" else f"{self.detector} ({self.engine})"


@dataclass
class EvaluationInputs:
    """What one evaluation reads and writes, checked before any node starts."""

    bag_path: Path
    frames: dict[int, dict]                     # ground truth: stamp ns -> frame
    sets: list[FrameSet]
    params: Path                                # the perception node's parameter file
    out: Path
    log_path: Path                              # the perception node's output
    topics: CameraTopics
    play_topics: list[str]


def prepare_inputs(bag_path, ground_truth_path, cfg: EvaluationConfig,
                   out_dir: str | os.PathLike | None) -> EvaluationInputs:
    """Check the configuration, the bag and its ground truth; InputError naming the first problem."""
    check_config(cfg)
    bag_path = Path(bag_path)
    if not bag_path.exists():
        raise InputError(f"bag {bag_path} does not exist")
    frames = _ground_truth_frames(bag_path, ground_truth_path)
    params = params_path(cfg.params_file)
    out = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="svr_eval_"))
    log_path = Path(cfg.log_path) if cfg.log_path else out / f"node_{cfg.detector}.log"
    topics = CameraTopics()
    return EvaluationInputs(bag_path, frames, frame_sets(frames), params, out, log_path, topics,
                            _checked_replay_topics(bag_path, cfg.detector, topics))


def _ground_truth_frames(bag_path: Path, ground_truth_path) -> dict[int, dict]:
    gt_path = Path(ground_truth_path) if ground_truth_path else find_ground_truth(bag_path)
    if gt_path is None:
        raise InputError(f"no ground truth given and none found next to {bag_path} "
                         f"(expected {bag_path / 'ground_truth.json'})")
    frames = load_ground_truth(gt_path)
    if not frames:
        raise InputError(f"{gt_path} holds no frames")
    return frames


def _checked_replay_topics(bag_path: Path, detector: str, topics: CameraTopics) -> list[str]:
    """``replay_topics`` of the bag; InputError when it lacks the color topic or the boxes detector's input."""
    with BagReader(bag_path, topics) as reader:
        play_topics = replay_topics(detector, topics, reader.topics)
    if topics.color not in play_topics:
        raise InputError(f"bag {bag_path} has no color topic {topics.color}")
    detections_topic = getattr(topics, "detections", None)
    if detector == "boxes" and detections_topic not in play_topics:
        raise InputError(f"detector 'boxes' needs 2D detections on {detections_topic or '/camera/detections'}, "
                         f"which bag {bag_path} does not have (write it with a newer `spatial_vlm bag write`)")
    return play_topics


def processed_ns(client) -> set[int]:
    """Stamps (ns) of the frames the node published ``~/objects`` for."""
    return {int(round(s * 1e9)) for s in client.processed_stamps()}


def was_processed(stamp_ns: int, processed: set[int]) -> bool:
    return any(abs(stamp_ns - p) < STAMP_TOLERANCE_NS for p in processed)


@dataclass
class RunTally:
    """What the frame sets asked so far produced."""

    records: list[QueryRecord] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    matching: dict = field(default_factory=lambda: {"askable": 0, "matched": 0, "reported": 0,
                                                    "center_error_m": []})
    annotations: list[FrameAnnotation] = field(default_factory=list)
    scene_records: list[SceneQueryRecord] = field(default_factory=list)

    def relation_accuracy(self) -> float:
        """Accuracy of the unambiguous relation records so far (0 before the first)."""
        rel = [r for r in self.records if r.kind == "relation" and not r.ambiguous]
        return sum(r.answered and bool(r.predicted) == bool(r.truth) for r in rel) / max(len(rel), 1)


class FrameSetAsker:
    """The stepped player's ``on_boundary``: after frame set ``i`` was replayed, wait until the node processed
    it, match its objects to the ground truth, ask the set's questions, annotate, and reset the node's memory
    when the next set is another scene."""

    def __init__(self, inputs: EvaluationInputs, cfg: EvaluationConfig, node: NodeRunner, client,
                 tally: RunTally, ask_timeout_s: float, bar=None, on_frame_set: Callable | None = None):
        self.inputs, self.cfg, self.node, self.client, self.tally = inputs, cfg, node, client, tally
        self.ask_timeout_s, self.bar, self.on_frame_set = ask_timeout_s, bar, on_frame_set
        self.player: SteppedBagPlayer | None = None       # set once the player exists

    def __call__(self, i: int) -> None:
        fs = self.inputs.sets[i]
        if not self.node.alive():
            raise InputError("the perception node exited during the evaluation; its log:\n" + self.node.log_tail())
        update, usable = self._settle(fs)
        gt_frame = self.inputs.frames[usable[-1] if usable else fs.last]
        visible = askable_objects(gt_frame)
        self.tally.matching["askable"] += len(visible)           # present, found or not
        if update is not None and usable:
            update = self.client.update_at(usable[-1] * 1e-9) or update
            set_records, names = self._ask(gt_frame, visible, update)
        else:
            set_records, names = self._unprocessed(gt_frame, visible), {}
        self.tally.records.extend(set_records)
        if self.on_frame_set is not None and update is not None:
            self.on_frame_set(self.client, gt_frame, update, names)
        if update is not None and set_records:
            self._annotate(gt_frame, update, set_records)
        sets = self.inputs.sets
        if i + 1 < len(sets) and sets[i + 1].scene != fs.scene:
            self.client.reset()
        self._progress()

    def _settle(self, fs: FrameSet):
        """Wait for the node's ``~/objects`` of the set's last published frame; return that update (None when
        it never came) and the set's stamps (ns) that the node processed."""
        assert self.player is not None
        published = sorted(s for s in self.player.color_published if s <= fs.last)
        update = self.client.wait_for_stamp(published[-1] * 1e-9, self.cfg.settle_timeout_s) if published else None
        # use the newest processed frame of this set that has ground truth
        processed = processed_ns(self.client)
        return update, [s for s in fs.stamps_ns if was_processed(s, processed)]

    def _ask(self, gt_frame: dict, visible: dict, update) -> tuple[list[QueryRecord], dict[str, str]]:
        """Match the node's objects to the visible ground truth and ask the frame's questions."""
        centers = node_centers(update)
        matches = match_objects(visible, centers)
        matching = self.tally.matching
        matching["matched"] += len(matches)
        matching["reported"] += len(centers)
        matching["center_error_m"] += [m.distance_m for m in matches]
        names = question_names(self.cfg.detector, visible, matches)
        set_records, why = frame_queries(gt_frame, names, self.cfg.detector, self.cfg.relations,
                                         self.cfg.quantities, missed=NOT_FOUND)
        self.tally.skipped.update(why)
        ask_records(self.client, askable_records(set_records), self.ask_timeout_s, self.cfg.engine)
        if self.cfg.scene_queries and self.cfg.engine == "geometry":
            self.tally.scene_records += ask_scene_queries(self.client, gt_frame, visible, names, self.ask_timeout_s)
        return set_records, names

    def _unprocessed(self, gt_frame: dict, visible: dict) -> list[QueryRecord]:
        set_records, _ = frame_queries(gt_frame, {k: k for k in visible}, self.cfg.detector, self.cfg.relations,
                                       self.cfg.quantities)
        return failed_records(set_records, "frame set never processed by the node (dropped or timed out)")

    def _annotate(self, gt_frame: dict, update, set_records: list[QueryRecord]) -> None:
        if len(self.tally.annotations) >= self.cfg.annotate:
            return
        ann = annotate_frame(self.inputs.bag_path, self.inputs.topics, gt_frame, update, set_records,
                             f"{self.cfg.detector}: {gt_frame.get('scene_id', '')} "
                             f"stamp {gt_frame['stamp_ns'] * 1e-9:.3f} s")
        if ann is not None:
            self.tally.annotations.append(ann)

    def _progress(self) -> None:
        if self.bar is not None:
            accuracy = self.tally.relation_accuracy()
            self.bar.set_postfix(queries=len(self.tally.records), rel_acc=f"{100 * accuracy:.1f}%")
            self.bar.update(1)


def frame_stats(player: SteppedBagPlayer, client) -> FrameStats:
    """Color frames published, processed by the node, their latency (publish -> first ``~/objects``, ms)."""
    stats = FrameStats(published=len(player.color_published))
    processed = processed_ns(client)
    hits = [s for s in player.color_published if was_processed(s, processed)]
    stats.processed = len(hits)
    stats.processed_stamps = sorted(s * 1e-9 for s in hits)
    first_seen: dict[int, float] = {}
    for u in client.updates:
        first_seen.setdefault(int(round(u.stamp * 1e9)), u.received)
    stats.frame_latency_ms = [
        1e3 * (first_seen[p] - player.color_published[s]) for s in hits
        for p in [min(first_seen, key=lambda x: abs(x - s))]]
    stats.node_dropped = client.node_dropped_frames()
    return stats


def _progress_bar(cfg: EvaluationConfig, n_sets: int):
    if not cfg.progress:
        return None
    from tqdm import tqdm
    return tqdm(total=n_sets, desc=f"evaluating ({cfg.detector}, {cfg.engine})", unit="set")


def _connect(client, cfg: EvaluationConfig, node: NodeRunner, vlm: VLMNodeRunner | None) -> None:
    """Wait until the nodes serve, then start from an empty memory."""
    deadline = time.monotonic() + cfg.startup_timeout_s
    wait_for_node(client, node, deadline)
    if vlm is not None:
        wait_for_vlm(client, vlm, cfg, deadline)
    client.objects_subscribed(timeout_s=5.0)
    client.reset()


def _replay(asker: FrameSetAsker, inputs: EvaluationInputs, cfg: EvaluationConfig, with_vlm: bool) -> FrameStats:
    """Replay the bag, asking each frame set's questions at its boundary."""
    # engine vlm: the color topic's second subscriber is the VLM node, which must get the first image
    player = SteppedBagPlayer(inputs.bag_path, [s.last for s in inputs.sets], asker, inputs.topics.color,
                              rate=cfg.rate, topics=inputs.play_topics, verbose=False, wait_timeout_s=10.0,
                              wait_subscribers=2 if with_vlm else 1)
    asker.player = player
    player.run()
    if player.error is not None:
        raise player.error
    return frame_stats(player, asker.client)


def _exit_notes(cfg: EvaluationConfig, log_path: Path, code: int | None, vlm: VLMNodeRunner | None,
                vlm_code: int | None) -> list[str]:
    notes = []
    if code not in (0, None, -2):
        notes.append(f"node exited with code {code} (log: {log_path})")
    if vlm is not None:
        notes.append(f"answers by the VLM {cfg.vlm_model} through ~/ask (engine vlm); VLM node log "
                     f"{vlm.log_path}" + (f", exit code {vlm_code}" if vlm_code not in (0, None, -2) else ""))
    return notes


def run_evaluation(bag_path, ground_truth_path=None, cfg: EvaluationConfig | None = None,
                   out_dir: str | os.PathLike | None = None,
                   on_frame_set: Callable | None = None) -> EvaluationRun:
    """Replay ``bag_path`` into a fresh node and ask every ground-truth question (see the module docstring).

    ``on_frame_set(client, gt_frame, update, names)`` is called after each set's questions (the demo asks its
    natural-language questions there). Raises InputError for a missing bag/ground truth or a node that does
    not start.
    """
    from .node_client import PerceptionClient

    cfg = cfg or EvaluationConfig()
    inputs = prepare_inputs(bag_path, ground_truth_path, cfg, out_dir)
    t_start = time.monotonic()
    tally = RunTally()
    vlm = VLMNodeRunner(cfg, DEFAULT_VLM_PARAMS, inputs.out / "vlm_node.log") if cfg.engine == "vlm" else None
    ask_timeout_s = cfg.vlm_timeout_s + 10.0 if vlm is not None else cfg.service_timeout_s
    node = NodeRunner(cfg, inputs.params, inputs.log_path)
    node.start()
    client = None
    bar = None
    try:
        if vlm is not None:
            vlm.start()
        client = PerceptionClient(namespace=cfg.namespace)
        _connect(client, cfg, node, vlm)
        bar = _progress_bar(cfg, len(inputs.sets))
        asker = FrameSetAsker(inputs, cfg, node, client, tally, ask_timeout_s, bar, on_frame_set)
        frames = _replay(asker, inputs, cfg, with_vlm=vlm is not None)
    finally:
        if bar is not None:
            bar.close()
        if client is not None:
            client.close()
        code = node.stop()
        vlm_code = vlm.stop() if vlm is not None else None
    run = EvaluationRun(cfg.detector, tally.records, frames, tally.skipped, tally.matching, tally.annotations,
                        time.monotonic() - t_start, engine=cfg.engine, scene_records=tally.scene_records)
    run.notes += _exit_notes(cfg, inputs.log_path, code, vlm, vlm_code)
    return run


def run_notes(run: EvaluationRun) -> list[str]:
    """Human notes for the report: what was skipped and how the node's objects matched the ground truth."""
    notes = list(run.notes)
    m = run.matching
    if m["askable"]:
        err = np.asarray(m["center_error_m"]) if m["center_error_m"] else np.array([math.nan])
        reported = m.get("reported", m["matched"])
        notes.append(f"objects: {m['matched']} of {m['askable']} visible ground-truth objects found (matched "
                     f"one-to-one by a node object's 3D center; median center error "
                     f"{100 * np.nanmedian(err):.1f} cm); {reported - m['matched']} of the {reported} node "
                     f"objects matched no ground-truth object; questions about an object not found count "
                     f"as wrong")
    for why, n in run.skipped.most_common():
        notes.append(f"ground-truth entries not asked: {n} ({why})")
    notes.append(f"evaluation wall time {run.wall_s:.1f} s")
    return notes


def finish_run(run: EvaluationRun) -> RunResult:
    """Score ``run`` (its ``summary``: ``scoring.summarize`` plus object counts, misses, skips, wall time)."""
    run.summary = summarize(run.records, run.frames)
    m = run.matching
    run.summary["objects"] = detection_counts(m["askable"], m["matched"], m.get("reported", m["matched"]))
    run.summary["questions_missed"] = sum(bool(r.missed) for r in run.records)
    run.summary["skipped"] = dict(run.skipped)
    run.summary["wall_s"] = run.wall_s
    if run.scene_records:
        run.summary["scene_queries"] = summarize_scene_queries(run.scene_records)
    return RunResult(run.name, run.summary, run.records, run_notes(run), run.scene_records)


def baseline_result(bag_path, ground_truth_path, result: RunResult) -> RunResult | None:
    """The naive baseline (``baseline``) on the frames ``result`` was scored on, from the bag's depth and
    instance masks; None (with nothing printed) when the bag has no masks."""
    from .baseline import baseline_for_run
    gt_path = Path(ground_truth_path) if ground_truth_path else find_ground_truth(bag_path)
    return baseline_for_run(bag_path, result.records, load_ground_truth(gt_path))


def evaluate(bag_path, ground_truth_path=None, out_dir="out/eval", detector: str = "external",
             params_file: str | None = None, rate: float = 1.0, baseline: bool = True, **config) -> dict:
    """Evaluate the node on a bag + ground truth; writes ``results.json`` and ``report.md`` under ``out_dir``
    and returns the summary dict (``summary["report"]`` is the Markdown path, ``summary["baseline"]`` the
    naive baseline's summary when the bag has instance masks and ``baseline`` is True). ``config``: further
    ``EvaluationConfig`` fields (node, namespace, parameter_overrides, progress, engine, vlm_model, ...)."""
    cfg = EvaluationConfig(detector=detector, params_file=params_file, rate=rate, **config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = run_evaluation(bag_path, ground_truth_path, cfg, out)
    result = finish_run(run)
    results = [result]
    base = baseline_result(bag_path, ground_truth_path, result) if baseline else None
    if base is not None:
        results.append(base)
    meta = {"bag": str(bag_path), "ground_truth": str(ground_truth_path or find_ground_truth(bag_path)),
            "detector": detector, "engine": cfg.engine, "params_file": str(params_path(params_file)), "rate": rate}
    if cfg.engine == "vlm":
        meta.update(vlm_model=cfg.vlm_model, vlm_parameters=cfg.vlm_parameters)
    paths = write_report(out, results, title=f"Evaluation of {Path(bag_path).name}", annotations=run.annotations,
                         meta=meta)
    summary = dict(result.summary, engine=cfg.engine, report=str(paths["markdown"]), results=str(paths["json"]))
    if base is not None:
        summary["baseline"] = base.summary
    print_summary(results)
    print(f"report: {paths['markdown']}")
    return summary
