"""Readers for 2D detectors' outputs: one tracked person's keypoints over a video, and what was done.

Formats read (each from its tool's documentation):

- **COCO results** (cocodataset.org "Results format", keypoint detection): a JSON list of
  ``{"image_id": int, "category_id": 1, "keypoints": [x1, y1, c1, ...], "score": float}``, the file
  that COCO's evaluation and most top-down detectors (mmpose, detectron2, ViTPose) write.
  `read_coco_results`.
- **OpenPose** ``--write_json`` folders (``doc/02_output.md``): one file per frame,
  ``<video>_<frame number, 12 digits>_keypoints.json``, holding ``{"version": ..., "people": [{"person_id":
  [-1], "pose_keypoints_2d": [x0, y0, c0, ...], ...}]}`` with BODY_25 (75 numbers) or COCO-18 (54).
  `read_openpose_folder`.
- **AlphaPose** results (``docs/output.md`` of MVIG-SJTU/AlphaPose): the COCO results list with
  ``image_id`` a file name (``"0.jpg"``), ``box`` [x, y, w, h] and, with its pose tracker, ``idx`` the track
  id; keypoints in Halpe-26 (78 numbers), Halpe-136 (408; its first 26 are Halpe-26's) or COCO-17 (51).
  Old AlphaPose versions give COCO confidences in [0, 6]; scale `min_confidence` accordingly.
  `read_alphapose`.
- **A plain array** ``(T, J, 2 or 3)`` in ``.npy`` (read with ``allow_pickle=False``) or ``.csv`` (one row
  per frame, J x 2 or J x 3 numbers, an optional header line), in a named layout
  (`hmrlab.data.keypoint_formats`). `read_keypoint_array`.

Every reader returns a `KeypointSequence`: ``keypoints`` (T, J, 3) pixels and confidence, one row per
frame from the first to the last frame number (NaN and confidence 0 where nothing is known), and a
`DetectionReport` saying what was done. The steps, in order, with their stated rules:

1. **Frames.** Frame numbers come from the file (COCO ``image_id``, the number in an OpenPose file's
   name or AlphaPose's image name); numbers absent between the first and the last are missing frames.
2. **The person** (`select_person`). With track ids (AlphaPose's ``idx``, OpenPose's ``person_id`` when
   not -1): the track seen in the most frames (ties: the higher mean score). Without: the largest person
   (area of the box around their confident keypoints) in the first frame with anyone, then in each
   next frame the detection whose box overlaps the last chosen box most (intersection over union at
   least `MIN_IOU`); a frame where nobody overlaps has no person, and after more than ``max_gap`` such
   frames in a row the largest person is taken again.
3. **Low confidences**: a keypoint with confidence below ``min_confidence`` counts as missing.
4. **Short gaps** (`fill_gaps`): a joint missing for at most ``max_gap`` frames in a row between two
   frames where it is known is linearly interpolated; at the sequence's start or end, the nearest known
   value is held. Longer gaps stay missing (NaN).

Files are read defensively: a JSON file larger than ``max_bytes`` or nested deeper than `MAX_JSON_DEPTH`
is refused before parsing, arrays never unpickle, and every error names the file, what is wrong and
the fix.
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hmrlab import io as _io
from hmrlab.data.keypoint_formats import KeypointLayout, get_layout

MAX_JSON_BYTES = 512 * 2**20
"""Default size limit of a detections JSON file (512 MiB, about a million detections)."""
MAX_JSON_DEPTH = 32
"""Nesting limit of a detections JSON file (the formats here nest at most 4 deep)."""
MIN_IOU = 0.1
"""Overlap below which a detection is not taken as the followed person (`select_person`)."""


# ---------------------------------------------------------------------------------------------------
# What the readers return
# ---------------------------------------------------------------------------------------------------


@dataclass
class DetectionReport:
    """What reading, choosing the person and gap filling did (``str(report)`` gives a summary).

    ``frames`` counts the frames from the first to the last frame number; ``frames_without_person``
    those where no detection was taken (before filling), ``frames_with_several`` those with more than
    one detection; ``person_rule`` states how the person was chosen and ``track`` its id (None without
    track ids); ``low_confidence`` counts keypoints below the threshold (made missing); ``filled``
    counts keypoints filled, ``filled_frames`` lists frames where something was filled and
    ``missing_frames`` those where some joint is still missing; ``notes`` anything else.
    """

    source: str
    reader: str
    layout: str
    frames: int = 0
    frames_without_person: int = 0
    frames_with_several: int = 0
    person_rule: str = ""
    track: int | None = None
    min_confidence: float = 0.0
    low_confidence: int = 0
    max_gap: int = 0
    filled: int = 0
    filled_frames: list[int] = field(default_factory=list)
    missing_frames: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready values."""
        return asdict(self)

    def __str__(self) -> str:
        lines = [
            f"{self.reader} from {self.source}: {self.frames} frames in layout {self.layout}",
            f"person: {self.person_rule}" + (f" (track {self.track})" if self.track is not None else ""),
            f"frames without the person: {self.frames_without_person}; frames with several people: "
            f"{self.frames_with_several}",
            f"keypoints below confidence {self.min_confidence:g}: {self.low_confidence} (treated as missing)",
            f"filled (gaps of at most {self.max_gap} frames): {self.filled} keypoints in "
            f"{len(self.filled_frames)} frames; frames still missing a joint: {_ranges(self.missing_frames)}",
        ]
        return "\n".join(lines + [f"note: {note}" for note in self.notes])


@dataclass
class KeypointSequence:
    """One person's 2D keypoints over a video: ``keypoints`` (T, J, 3) pixels x, y and confidence (NaN
    and 0 where missing), in ``layout``; ``frame_ids`` (T,) the frames' numbers in the source; the
    `DetectionReport`; ``image_size`` (width, height) pixels when the source says it."""

    keypoints: np.ndarray
    layout: KeypointLayout
    frame_ids: np.ndarray
    report: DetectionReport
    image_size: tuple[int, int] | None = None

    def __len__(self) -> int:
        return len(self.keypoints)

    def complete_frames(self) -> np.ndarray:
        """(T,) bool: frames where every joint is known."""
        return np.isfinite(self.keypoints[..., :2]).all((-1, -2)) & (self.keypoints[..., 2] > 0).all(-1)


@dataclass
class _Detection:
    keypoints: np.ndarray  # (J, 3)
    score: float
    track: int | None


def _ranges(frames: list[int]) -> str:
    """[1, 2, 3, 7] -> '1-3, 7' (at most 8 runs), 'none' when empty."""
    if not frames:
        return "none"
    runs, start = [], frames[0]
    for previous, current in zip(frames, [*frames[1:], None]):
        if current is None or current != previous + 1:
            runs.append(f"{start}" if start == previous else f"{start}-{previous}")
            start = current
    return ", ".join(runs[:8]) + (f", ... ({len(runs)} runs)" if len(runs) > 8 else "")


# ---------------------------------------------------------------------------------------------------
# Reading files safely
# ---------------------------------------------------------------------------------------------------


def _existing(path: str | os.PathLike, what: str, folder: bool = False) -> Path:
    path = Path(path).expanduser()
    if folder and not path.is_dir():
        raise FileNotFoundError(f"no {what} at {path}: pass the folder that OpenPose's --write_json wrote")
    if not folder and not path.is_file():
        raise FileNotFoundError(f"no {what} at {path}: check the path")
    return path


def read_json(path: str | os.PathLike, what: str, *, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """The JSON value in `path` (a `what`, for messages) through `hmrlab.io.read_json`, refusing files
    over `max_bytes` or nested deeper than `MAX_JSON_DEPTH` before parsing."""
    return _io.read_json(_existing(path, what), what, max_bytes=max_bytes, max_depth=MAX_JSON_DEPTH)


def _keypoint_list(value: Any, where: str, sizes: dict[int, str] | int) -> np.ndarray:
    """A flat [x, y, c, ...] list as (J, 3) float64; `sizes` the allowed J (or {J: layout name})."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        array = np.empty(0, dtype=object)
    allowed = [sizes] if isinstance(sizes, int) else list(sizes)
    if array.dtype != np.float64 or array.ndim != 1 or array.size % 3 or array.size // 3 not in allowed:
        counts = " or ".join(f"{3 * j}" for j in allowed)
        raise ValueError(f"{where}: keypoints must be a flat list of {counts} numbers (x, y, confidence per "
                         f"joint); got {np.shape(value) if array.dtype != object else type(value).__name__}")
    return array.reshape(-1, 3)


def _frame_number(name: Any, where: str) -> int:
    if isinstance(name, (int, np.integer)) and not isinstance(name, bool):
        return int(name)
    numbers = re.findall(r"\d+", Path(str(name)).stem)
    if not numbers:
        raise ValueError(f"{where}: cannot read a frame number from {name!r}; name frames with their number "
                         "(image_00012.jpg) or pass integer image ids")
    return int(numbers[-1])


# ---------------------------------------------------------------------------------------------------
# Choosing the person, filling gaps
# ---------------------------------------------------------------------------------------------------


def _box(keypoints: np.ndarray, min_confidence: float) -> np.ndarray | None:
    good = np.isfinite(keypoints[:, :2]).all(-1) & (keypoints[:, 2] >= max(min_confidence, 1e-9))
    if good.sum() < 2:
        return None
    points = keypoints[good, :2]
    return np.concatenate([points.min(0), points.max(0)])


def _area(box: np.ndarray | None) -> float:
    return 0.0 if box is None else float(np.prod(box[2:] - box[:2]))


def _iou(a: np.ndarray | None, b: np.ndarray | None) -> float:
    if a is None or b is None:
        return 0.0
    inter = np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None).prod()
    union = _area(a) + _area(b) - inter
    return float(inter / union) if union > 0 else 0.0


def select_person(
    frames: list[list[_Detection]],
    num_joints: int,
    report: DetectionReport,
    *,
    person: int | str = "auto",
    min_confidence: float = 0.3,
    max_gap: int = 10,
) -> np.ndarray:
    """One detection per frame by the module's rule: (T, J, 3), NaN and confidence 0 where none.

    `person`: "auto" (the track seen most if the detections carry track ids, else the largest person
    followed by overlap), "largest" (the largest in every frame, no following), or an int track id.
    Fills ``report``'s person fields.
    """
    out = np.full((len(frames), num_joints, 3), np.nan)
    out[..., 2] = 0.0
    report.frames_with_several = sum(len(f) > 1 for f in frames)
    tracks = [d.track for f in frames for d in f]
    has_tracks = bool(tracks) and all(t is not None and t >= 0 for t in tracks)
    if isinstance(person, (int, np.integer)) and not isinstance(person, bool):
        if not has_tracks:
            raise ValueError(f"{report.source}: person={person} names a track id, but the detections carry no "
                             "track ids; use person='auto' or 'largest'")
        chosen, report.person_rule = int(person), f"the track with id {person}, as asked"
    elif person == "auto" and has_tracks:
        counts: dict[int, list[float]] = {}
        for f in frames:
            for track in {d.track for d in f}:
                counts.setdefault(track, []).append(max(d.score for d in f if d.track == track))
        chosen = max(counts, key=lambda t: (len(counts[t]), float(np.mean(counts[t]))))
        report.person_rule = "the track seen in the most frames (ties: the higher mean score)"
    elif person in ("auto", "largest"):
        chosen = None
    else:
        raise ValueError(f"person must be 'auto', 'largest' or an int track id; got {person!r}")
    if chosen is not None:
        report.track = chosen
        for t, f in enumerate(frames):
            mine = [d for d in f if d.track == chosen]
            if mine:
                out[t] = max(mine, key=lambda d: d.score).keypoints
        if not any(d.track == chosen for f in frames for d in f):
            raise ValueError(f"{report.source}: no detection has track id {chosen}; ids present: "
                             f"{sorted(set(tracks))}")
    else:
        follow = person == "auto"
        report.person_rule = ("the largest person in the first frame with anyone, then the detection overlapping "
                              f"the last chosen box most (IoU >= {MIN_IOU}), the largest again after more than "
                              f"{max_gap} frames without a match") if follow else "the largest person in every frame"
        last, unmatched, reacquired = None, 0, 0
        for t, f in enumerate(frames):
            boxes = [_box(d.keypoints, min_confidence) for d in f]
            if not f:
                unmatched += 1
                continue
            if follow and last is not None and unmatched <= max_gap:
                overlaps = [_iou(last, b) for b in boxes]
                best = int(np.argmax(overlaps))
                if overlaps[best] < MIN_IOU:
                    unmatched += 1
                    continue
            else:
                if last is not None:
                    reacquired += 1
                best = int(np.argmax([_area(b) for b in boxes]))
            out[t], last, unmatched = f[best].keypoints, boxes[best] if boxes[best] is not None else last, 0
        if follow and reacquired:
            report.notes.append(f"the largest person was taken again {reacquired} times after long gaps")
    report.frames_without_person = int((out[..., 2] <= 0).all(-1).sum())
    return out


def fill_gaps(keypoints: np.ndarray, *, max_gap: int = 10, min_confidence: float = 0.3) -> tuple[np.ndarray, dict]:
    """Mark low-confidence keypoints missing and fill short gaps: (T, J, 3) -> (T, J, 3), and counts.

    A keypoint is missing where its coordinates are not finite or its confidence is below
    `min_confidence` (made NaN, confidence 0). Per joint, a run of at most `max_gap` missing frames
    between two known ones is linearly interpolated (x, y) and given the lower of the two neighbours'
    confidences; a run of at most `max_gap` frames at the start or end holds the nearest known value
    and its confidence. Returns the filled copy and ``{"low_confidence": int, "filled": int,
    "filled_frames": [...], "missing_frames": [...]}``.
    """
    keypoints = np.array(keypoints, dtype=np.float64)
    if keypoints.ndim != 3 or keypoints.shape[-1] != 3:
        raise ValueError(f"keypoints must have shape (T, J, 3) (x, y, confidence); got {keypoints.shape}")
    if max_gap < 0:
        raise ValueError(f"max_gap must be >= 0 frames; got {max_gap}")
    finite = np.isfinite(keypoints).all(-1)
    present = finite & (keypoints[..., 2] > 0)
    valid = finite & (keypoints[..., 2] >= min_confidence) & (keypoints[..., 2] > 0)
    low = int((present & ~valid).sum())
    keypoints[~valid] = (np.nan, np.nan, 0.0)
    filled = np.zeros(valid.shape, dtype=bool)
    frames = np.arange(len(keypoints))
    for j in range(keypoints.shape[1]):
        known = frames[valid[:, j]]
        if len(known) == 0:
            continue
        missing = frames[~valid[:, j]]
        # the known frames on each side of every missing frame, and the gap's length
        after = np.searchsorted(known, missing)
        before = after - 1
        has_before, has_after = before >= 0, after < len(known)
        left = known[np.clip(before, 0, None)]
        right = known[np.clip(after, None, len(known) - 1)]
        inside = has_before & has_after & (right - left - 1 <= max_gap)
        start = ~has_before & (right <= max_gap)
        end = ~has_after & (missing - left <= max_gap)
        if inside.any():
            m, a, b = missing[inside], left[inside], right[inside]
            w = ((m - a) / (b - a))[:, None]
            keypoints[m, j, :2] = (1 - w) * keypoints[a, j, :2] + w * keypoints[b, j, :2]
            keypoints[m, j, 2] = np.minimum(keypoints[a, j, 2], keypoints[b, j, 2])
        for mask, source in ((start, right), (end, left)):
            keypoints[missing[mask], j] = keypoints[source[mask], j]
        filled[missing[inside | start | end], j] = True
    still = ~np.isfinite(keypoints[..., :2]).all(-1)
    return keypoints, {
        "low_confidence": low,
        "filled": int(filled.sum()),
        "filled_frames": frames[filled.any(-1)].tolist(),
        "missing_frames": frames[still.any(-1)].tolist(),
    }


def _finish(
    frames: dict[int, list[_Detection]],
    layout: KeypointLayout,
    report: DetectionReport,
    *,
    person: int | str,
    min_confidence: float,
    max_gap: int,
    image_size: tuple[int, int] | None = None,
) -> KeypointSequence:
    """Frames by number -> the filled `KeypointSequence` (module docstring, steps 1-4)."""
    if not frames:
        raise ValueError(f"{report.source}: no detections at all; is it the detector's output for this video?")
    first, last = min(frames), max(frames)
    ids = np.arange(first, last + 1)
    report.frames = len(ids)
    absent = len(ids) - len(frames)
    if absent:
        report.notes.append(f"{absent} frame numbers between {first} and {last} have no entry (taken as frames "
                            "without anyone)")
    chosen = select_person([frames.get(int(i), []) for i in ids], layout.num_joints, report, person=person,
                           min_confidence=min_confidence, max_gap=max_gap)
    keypoints, counts = fill_gaps(chosen, max_gap=max_gap, min_confidence=min_confidence)
    report.min_confidence, report.max_gap = min_confidence, max_gap
    report.low_confidence, report.filled = counts["low_confidence"], counts["filled"]
    report.filled_frames = [int(ids[t]) for t in counts["filled_frames"]]
    report.missing_frames = [int(ids[t]) for t in counts["missing_frames"]]
    return KeypointSequence(keypoints, layout, ids, report, image_size)


# ---------------------------------------------------------------------------------------------------
# The readers
# ---------------------------------------------------------------------------------------------------


def _score(value: Any, keypoints: np.ndarray) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float(np.nanmean(keypoints[:, 2]))


def _track(value: Any) -> int | None:
    if isinstance(value, list) and len(value) == 1:  # OpenPose writes "person_id": [-1]
        value = value[0]
    if isinstance(value, (int, float, np.integer)) and not isinstance(value, bool) and float(value).is_integer():
        return int(value) if value >= 0 else None
    return None


def _result_list(content: Any, path: Path, what: str) -> list[dict]:
    if isinstance(content, dict) and "annotations" in content:
        raise ValueError(f"{path} is a COCO annotation file (it has 'annotations'), not detector results; read it "
                         "with hmrlab.data.coco.load_coco_keypoints")
    if isinstance(content, dict) and "people" in content:
        raise ValueError(f"{path} is one OpenPose frame; pass the folder of all frames to read_openpose_folder")
    if not isinstance(content, list) or not all(isinstance(r, dict) for r in content):
        raise ValueError(f"{path}: a {what} is a JSON list of objects with image_id and keypoints; got a "
                         f"{type(content).__name__}")
    return content


_COCO_RESULTS = "COCO keypoint results file ([{image_id, keypoints, score}])"
_ALPHAPOSE = "AlphaPose results file (alphapose-results.json)"
_ALPHAPOSE_SIZES = {17: "coco17", 26: "halpe26", 136: "halpe26", 133: "coco17"}


def read_coco_results(
    path: str | os.PathLike,
    layout: str | KeypointLayout = "coco17",
    *,
    person: int | str = "auto",
    min_confidence: float = 0.3,
    max_gap: int = 10,
    max_bytes: int = MAX_JSON_BYTES,
) -> KeypointSequence:
    """A COCO keypoint results file as one person's `KeypointSequence` (module docstring for the rules).

    Entries need ``image_id`` (the frame number, an int) and ``keypoints`` (3 J numbers for `layout`);
    ``score`` is optional, and entries whose ``category_id`` is not 1 (person) are skipped.
    """
    layout = get_layout(layout)
    content = _result_list(read_json(path, _COCO_RESULTS, max_bytes=max_bytes), Path(path), _COCO_RESULTS)
    report = DetectionReport(str(path), "COCO results", layout.name)
    frames: dict[int, list[_Detection]] = {}
    skipped = 0
    for i, entry in enumerate(content):
        where = f"{path}: entry {i}"
        if entry.get("category_id", 1) != 1:
            skipped += 1
            continue
        if "image_id" not in entry or "keypoints" not in entry:
            raise ValueError(f"{where} lacks image_id or keypoints (it has {sorted(entry)}); COCO results entries "
                             "are {image_id, category_id, keypoints, score}")
        keypoints = _keypoint_list(entry["keypoints"], where, layout.num_joints)
        frame = _frame_number(entry["image_id"], where)
        frames.setdefault(frame, []).append(_Detection(keypoints, _score(entry.get("score"), keypoints), None))
    if skipped:
        report.notes.append(f"{skipped} entries of other categories than person (1) were skipped")
    return _finish(frames, layout, report, person=person, min_confidence=min_confidence, max_gap=max_gap)


def read_alphapose(
    path: str | os.PathLike,
    *,
    person: int | str = "auto",
    min_confidence: float = 0.3,
    max_gap: int = 10,
    max_bytes: int = MAX_JSON_BYTES,
) -> KeypointSequence:
    """AlphaPose's results JSON as one person's `KeypointSequence` (Halpe-26, Halpe-136's body or COCO-17,
    told apart by the keypoint count); frame numbers from the image names, track ids from ``idx``."""
    content = _result_list(read_json(path, _ALPHAPOSE, max_bytes=max_bytes), Path(path), _ALPHAPOSE)
    frames: dict[int, list[_Detection]] = {}
    sizes = set()
    for i, entry in enumerate(content):
        where = f"{path}: entry {i}"
        if "image_id" not in entry or "keypoints" not in entry:
            raise ValueError(f"{where} lacks image_id or keypoints (it has {sorted(entry)}); AlphaPose writes "
                             "{image_id, category_id, keypoints, score, box, idx}")
        keypoints = _keypoint_list(entry["keypoints"], where, _ALPHAPOSE_SIZES)
        sizes.add(len(keypoints))
        keypoints = keypoints[:26] if len(keypoints) == 136 else keypoints[:17] if len(keypoints) == 133 else keypoints
        frame = _frame_number(entry["image_id"], where)
        frames.setdefault(frame, []).append(
            _Detection(keypoints, _score(entry.get("score"), keypoints), _track(entry.get("idx"))))
    if len(sizes) > 1:
        raise ValueError(f"{path}: entries have different keypoint counts {sorted(sizes)}; one layout per file")
    layout = get_layout(_ALPHAPOSE_SIZES[sizes.pop()] if sizes else "halpe26")
    report = DetectionReport(str(path), "AlphaPose results", layout.name)
    return _finish(frames, layout, report, person=person, min_confidence=min_confidence, max_gap=max_gap)


_OPENPOSE_SIZES = {25: "body25", 18: "coco18"}
_OPENPOSE_FILE = re.compile(r"_keypoints\.json$")


def read_openpose_folder(
    folder: str | os.PathLike,
    *,
    person: int | str = "auto",
    min_confidence: float = 0.3,
    max_gap: int = 10,
    max_bytes: int = 16 * 2**20,
) -> KeypointSequence:
    """An OpenPose ``--write_json`` folder as one person's `KeypointSequence`: BODY_25 or COCO-18 (told
    apart by the keypoint count), frame numbers from the files' names (``..._000000000012_keypoints.json``;
    any ``*.json`` if none is named so), track ids from ``person_id`` where it is not -1."""
    folder = _existing(folder, "OpenPose JSON folder", folder=True)
    files = sorted(p for p in folder.iterdir() if p.is_file() and _OPENPOSE_FILE.search(p.name))
    files = files or sorted(p for p in folder.iterdir() if p.is_file() and p.suffix == ".json")
    if not files:
        raise ValueError(f"{folder} holds no *_keypoints.json files; run OpenPose with --write_json {folder}")
    frames: dict[int, list[_Detection]] = {}
    sizes = set()
    for path in files:
        content = read_json(path, "OpenPose frame file", max_bytes=max_bytes)
        people = content.get("people") if isinstance(content, dict) else None
        if not isinstance(people, list):
            raise ValueError(f"{path}: an OpenPose frame file is an object with a 'people' list; got "
                             f"{sorted(content) if isinstance(content, dict) else type(content).__name__}")
        number = _frame_number(_OPENPOSE_FILE.sub("", path.name), str(path))
        if number in frames:
            raise ValueError(f"{path}: frame number {number} appears twice in {folder}; one video per folder")
        frames[number] = []
        for k, entry in enumerate(people):
            where = f"{path}: people[{k}]"
            if not isinstance(entry, dict) or "pose_keypoints_2d" not in entry:
                raise ValueError(f"{where} lacks pose_keypoints_2d; run OpenPose with its body model on")
            keypoints = _keypoint_list(entry["pose_keypoints_2d"], where, _OPENPOSE_SIZES)
            sizes.add(len(keypoints))
            # OpenPose writes undetected keypoints as (0, 0, 0): confidence 0 marks them missing.
            frames[number].append(_Detection(keypoints, float(keypoints[:, 2].mean()), _track(entry.get("person_id"))))
    if len(sizes) > 1:
        raise ValueError(f"{folder}: frames have different keypoint counts {sorted(sizes)}; one model per folder")
    layout = get_layout(_OPENPOSE_SIZES[sizes.pop()] if sizes else "body25")
    report = DetectionReport(str(folder), "OpenPose JSON folder", layout.name)
    return _finish(frames, layout, report, person=person, min_confidence=min_confidence, max_gap=max_gap)


def read_keypoint_array(
    path: str | os.PathLike,
    layout: str | KeypointLayout,
    *,
    min_confidence: float = 0.3,
    max_gap: int = 10,
) -> KeypointSequence:
    """A ``(T, J, 2 or 3)`` ``.npy`` (pixels, optional confidence; ``allow_pickle=False``) or ``.csv`` (T rows
    of J x 2 or J x 3 numbers, an optional header) in `layout`, as a `KeypointSequence`; without a
    confidence channel finite points get confidence 1 and NaN marks missing ones."""
    layout = get_layout(layout)
    path = _existing(path, "keypoint array (.npy or .csv)")
    if path.suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except ValueError as error:
            raise ValueError(f"{path}: cannot read it as a numeric .npy ({error}); save a float array with "
                             "numpy.save, not a pickled object") from error
    elif path.suffix == ".csv":
        array = _read_csv(path)
    else:
        raise ValueError(f"{path}: keypoint arrays are read from .npy or .csv files; got {path.suffix!r}")
    if array.ndim == 2 and array.shape[1] in (2 * layout.num_joints, 3 * layout.num_joints):
        array = array.reshape(len(array), layout.num_joints, -1)
    if array.dtype.kind not in "iuf" or array.ndim != 3 or array.shape[1:] not in ((layout.num_joints, 2),
                                                                                  (layout.num_joints, 3)):
        raise ValueError(f"{path}: expected a numeric array of shape (T, {layout.num_joints}, 2 or 3) for "
                         f"{layout.name}; got {array.dtype} {array.shape}. Is --format right?")
    array = array.astype(np.float64)
    if array.shape[-1] == 2:
        array = np.concatenate([array, np.isfinite(array).all(-1, keepdims=True).astype(np.float64)], -1)
    report = DetectionReport(str(path), "keypoint array", layout.name, frames=len(array),
                             person_rule="one person per file")
    report.frames_without_person = int((~np.isfinite(array[..., :2]).any(-1)).all(-1).sum())
    keypoints, counts = fill_gaps(array, max_gap=max_gap, min_confidence=min_confidence)
    report.min_confidence, report.max_gap = min_confidence, max_gap
    report.low_confidence, report.filled = counts["low_confidence"], counts["filled"]
    report.filled_frames, report.missing_frames = counts["filled_frames"], counts["missing_frames"]
    return KeypointSequence(keypoints, layout, np.arange(len(array)), report)


def _read_csv(path: Path) -> np.ndarray:
    text = path.read_text(encoding="utf-8-sig")
    rows = [row for row in csv.reader(io.StringIO(text)) if row]
    if rows and any(not _is_number(cell) for cell in rows[0]):
        rows = rows[1:]  # a header line
    try:
        return np.array([[float(cell) if cell.strip() else np.nan for cell in row] for row in rows])
    except ValueError as error:
        raise ValueError(f"{path}: every row after the header must hold numbers only ({error})") from error


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return not cell.strip()
    return True


READERS = ("coco", "openpose", "alphapose", "array")


def read_detections(
    path: str | os.PathLike,
    layout: str | KeypointLayout | None = None,
    *,
    reader: str = "auto",
    person: int | str = "auto",
    min_confidence: float = 0.3,
    max_gap: int = 10,
) -> KeypointSequence:
    """Any of the formats above, told apart by `reader` or, with "auto", by the path: a folder is
    OpenPose's; ``.npy``/``.csv`` a plain array (needs `layout`); a ``.json`` list whose entries have
    ``box`` or ``idx`` or string image ids is AlphaPose's, else COCO results (`layout`, default COCO-17)."""
    path = Path(path).expanduser()
    if reader == "auto":
        if path.is_dir():
            reader = "openpose"
        elif path.suffix in (".npy", ".csv"):
            reader = "array"
        elif path.suffix == ".json":
            content = read_json(path, "detections file")
            first = content[0] if isinstance(content, list) and content and isinstance(content[0], dict) else {}
            alphapose = "box" in first or "idx" in first or isinstance(first.get("image_id"), str)
            reader = "alphapose" if alphapose else "coco"
        elif not path.exists():
            raise FileNotFoundError(f"no detections at {path}: pass a .json file, an OpenPose folder, or .npy/.csv")
        else:
            raise ValueError(f"{path}: cannot tell the format from the name; pass reader= one of {READERS}")
    options = {"min_confidence": min_confidence, "max_gap": max_gap}
    if reader == "openpose":
        return read_openpose_folder(path, person=person, **options)
    if reader == "alphapose":
        return read_alphapose(path, person=person, **options)
    if reader == "coco":
        return read_coco_results(path, layout or "coco17", person=person, **options)
    if reader == "array":
        if layout is None:
            raise ValueError(f"{path}: a plain array needs its layout, e.g. layout='coco17' (--format coco17)")
        return read_keypoint_array(path, layout, **options)
    raise ValueError(f"reader must be 'auto' or one of {READERS}; got {reader!r}")


__all__ = [
    "DetectionReport", "KeypointSequence", "MAX_JSON_BYTES", "MAX_JSON_DEPTH", "MIN_IOU", "READERS", "fill_gaps",
    "read_alphapose", "read_coco_results", "read_detections", "read_json", "read_keypoint_array",
    "read_openpose_folder", "select_person",
]
