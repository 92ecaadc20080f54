"""Ordering questions from the simulator's truth: an auxiliary training task for the compact VLM.

"Name the objects from left to right." -> "red box, blue cylinder, green box." The answer depends on the
image alone (no object is named in the question), so from the first step the loss can only fall by reading
colours at positions -- unlike the describe / yes-no / choice questions, which also need the model to bind
the object names of the question to image regions before the image helps at all (see docs/compact_vlm.md,
"Diagnosis"). Three orders, the axes of the What's Up prepositions:

- ``left to right``: the objects' pixel centroids in the image, left first;
- ``top to bottom``: pixel centroids, top of the image first (a stacked object before its support);
- ``front to back``: the true distance of the object centers from the camera, nearest first.

An order is asked only when every neighbouring pair is separated by at least ``min_gap_px`` pixels (the first
two) or ``min_gap_m`` metres (the third), and only in frames whose object labels are unique. Frames are the
analytic source's scenes (``synthesis.frames.render_analytic``: scene ``index`` of seed ``seed``, the very
images the synthesis helper writes for the same seed and index).
"""
from __future__ import annotations

import io

import numpy as np

from spatial_vlm_ros.core.errors import InputError

KIND = "order"
ORDER_QUESTIONS = {"left_right": "Name the objects from left to right.",
                   "top_bottom": "Name the objects from top to bottom.",
                   "front_back": "Name the objects from front to back."}


def order_answer(labels: list[str]) -> str:
    return ", ".join(labels) + "."


def frame_orders(frame, min_gap_px: float = 3.0, min_gap_m: float = 0.03) -> dict[str, list[str]]:
    """``{order: labels in that order}`` of one analytic ``FrameInput`` (orders too close to call left out)."""
    labels = list(frame.labels)
    if len(labels) < 2 or len(set(labels)) != len(labels) or frame.mask is None:
        return {}
    cols, rows = [], []
    for i in frame.ids:
        ys, xs = np.nonzero(frame.mask == i)
        if len(xs) == 0:
            return {}
        cols.append(float(xs.mean()))
        rows.append(float(ys.mean()))
    keys = {"left_right": (np.asarray(cols), min_gap_px), "top_bottom": (np.asarray(rows), min_gap_px)}
    if frame.truth is not None:
        dist = {o.label: float(np.linalg.norm(o.center)) for o in frame.truth.objects}
        if all(lab in dist for lab in labels):
            keys["front_back"] = (np.asarray([dist[lab] for lab in labels]), min_gap_m)
    out = {}
    for name, (value, gap) in keys.items():
        order = np.argsort(value, kind="stable")
        if np.all(np.diff(value[order]) >= gap):
            out[name] = [labels[k] for k in order]
    return out


def order_rows(n_scenes: int, seed: int, width: int, height: int, min_gap_px: float = 3.0,
               min_gap_m: float = 0.03) -> list[dict]:
    """Rows (``image`` PNG bytes, ``question``, ``answer``, ``kind`` "order", ``template``, ``frame_index``,
    ``source``, ``seed``, ``sample_id``) of the first ``n_scenes`` analytic scenes of ``seed``."""
    from PIL import Image

    from spatial_vlm_ros.synthesis.frames import SourceSpec, render_analytic

    if n_scenes < 1:
        raise InputError("order questions need at least one scene")
    spec = SourceSpec(kind="analytic", seed=int(seed), width=int(width), height=int(height))
    out = []
    for index in range(int(n_scenes)):
        frame = render_analytic(spec, index)
        orders = frame_orders(frame, min_gap_px, min_gap_m)
        if not orders:
            continue
        buf = io.BytesIO()
        Image.fromarray(frame.stored_image).save(buf, format="PNG")
        png = buf.getvalue()
        for name, labels in orders.items():
            out.append({"sample_id": f"{spec.name}:{index}:order/{name}", "image": {"bytes": png, "path": None},
                        "question": ORDER_QUESTIONS[name], "answer": order_answer(labels), "kind": KIND,
                        "template": f"order/{name}", "frame_index": int(index), "source": spec.name,
                        "seed": int(seed)})
    if not out:
        raise InputError(f"no order question in {n_scenes} scenes of seed {seed}")
    return out


COLUMNS = ("sample_id", "image", "question", "answer", "kind", "template", "frame_index", "source", "seed")


def write_order_dataset(n_scenes: int, seed: int, width: int, height: int, out) -> int:
    """:func:`order_rows` saved as a Hugging Face dataset at ``out``; returns the row count."""
    import datasets

    rows = order_rows(n_scenes, seed, width, height)
    features = datasets.Features({"sample_id": datasets.Value("string"), "image": datasets.Image(),
                                  "question": datasets.Value("string"), "answer": datasets.Value("string"),
                                  "kind": datasets.Value("string"), "template": datasets.Value("string"),
                                  "frame_index": datasets.Value("int64"), "source": datasets.Value("string"),
                                  "seed": datasets.Value("int64")})
    ds = datasets.Dataset.from_dict({c: [r[c] for r in rows] for c in COLUMNS}, features=features)
    ds.save_to_disk(str(out))
    return len(ds)
