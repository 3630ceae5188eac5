"""Detector outputs: COCO results, OpenPose folders, AlphaPose JSON, plain arrays; the person rule, gap
filling, the report, and clear refusals of bad files. Files are written here in each tool's layout."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hmrlab.data import detections as det
from hmrlab.io import _json_depth


def person(centre: tuple[float, float], scale: float, joints: int = 17, confidence: float = 0.9) -> np.ndarray:
    """(J, 3) keypoints spread around `centre` over a box of about `scale` pixels."""
    rng = np.random.default_rng(int(scale))
    xy = np.asarray(centre) + scale * (rng.random((joints, 2)) - 0.5)
    return np.concatenate([xy, np.full((joints, 1), confidence)], -1)


def coco_entry(frame: int, keypoints: np.ndarray, score: float = 0.9) -> dict:
    return {"image_id": frame, "category_id": 1, "keypoints": keypoints.reshape(-1).tolist(), "score": score}


def test_coco_results_follow_the_largest_person_fill_gaps_and_report(tmp_path):
    entries = []
    for t in range(12):
        big = person((100 + 5 * t, 200), 120)
        if t in (4, 5):  # the followed person is not detected in two frames
            pass
        else:
            if t == 7:
                big[3, 2] = 0.1  # one low-confidence joint
            entries.append(coco_entry(t, big))
        # a second person, small at first, later larger than the first but elsewhere
        entries.append(coco_entry(t, person((600, 200), 60 if t < 6 else 200), score=0.95))
    entries.append({"image_id": 3, "category_id": 2, "keypoints": [0] * 51, "score": 1.0})  # not a person
    path = tmp_path / "results.json"
    path.write_text(json.dumps(entries))
    sequence = det.read_coco_results(path, max_gap=3)
    report = sequence.report
    assert sequence.keypoints.shape == (12, 17, 3) and list(sequence.frame_ids) == list(range(12))
    # the first (larger) person is followed by overlap even when the other grows larger
    np.testing.assert_allclose(sequence.keypoints[10, :, :2], person((150, 200), 120)[:, :2])
    # frames 4 and 5 are interpolated between frames 3 and 6
    expected = (2 * person((115, 200), 120) + person((130, 200), 120)) / 3
    np.testing.assert_allclose(sequence.keypoints[4, :, :2], expected[:, :2])
    assert report.frames == 12 and report.frames_with_several == 10 and report.frames_without_person == 2
    assert report.low_confidence == 1 and report.filled == 2 * 17 + 1 and report.missing_frames == []
    assert report.filled_frames == [4, 5, 7] and "overlapping" in report.person_rule
    assert any("other categories" in note for note in report.notes)
    assert "frames still missing a joint: none" in str(report)


def test_long_gaps_stay_missing_and_edges_are_held(tmp_path):
    keypoints = np.tile(person((100, 100), 80)[None], (20, 1, 1))
    keypoints[:, 0, 0] += np.arange(20)
    keypoints[0:2, 0, 2] = 0  # start: held
    keypoints[5:15, 1, 2] = 0  # 10 frames: longer than max_gap
    filled, counts = det.fill_gaps(keypoints, max_gap=4)
    np.testing.assert_allclose(filled[0:2, 0], np.tile(keypoints[2, 0], (2, 1)))
    assert np.isnan(filled[5:15, 1, :2]).all() and (filled[5:15, 1, 2] == 0).all()
    assert counts["missing_frames"] == list(range(5, 15)) and counts["filled"] == 2
    with pytest.raises(ValueError, match=r"\(T, J, 3\)"):
        det.fill_gaps(keypoints[..., :2])


def openpose_frame(people: list[tuple[np.ndarray, int]]) -> dict:
    return {"version": 1.3, "people": [{"person_id": [track], "pose_keypoints_2d": k.reshape(-1).tolist(),
                                        "face_keypoints_2d": [], "hand_left_keypoints_2d": []}
                                       for k, track in people]}


def test_openpose_folder_body25_with_missing_files_and_empty_frames(tmp_path):
    folder = tmp_path / "openpose"
    folder.mkdir()
    for t in (0, 1, 2, 4, 5):  # frame 3 has no file
        people = [] if t == 2 else [(person((300, 300), 150, joints=25), -1)]
        (folder / f"video_{t:012d}_keypoints.json").write_text(json.dumps(openpose_frame(people)))
    sequence = det.read_detections(folder)
    assert sequence.layout.name == "OpenPose-BODY_25" and sequence.keypoints.shape == (6, 25, 3)
    assert sequence.report.frames_without_person == 2 and sequence.report.filled_frames == [2, 3]
    assert any("no entry" in note for note in sequence.report.notes)
    assert sequence.complete_frames().all()


def test_openpose_track_ids_and_coco18(tmp_path):
    folder = tmp_path / "tracked"
    folder.mkdir()
    for t in range(4):
        people = [(person((100, 100), 300, joints=18), 7)] + ([(person((400, 100), 50, joints=18), 2)] if t else [])
        (folder / f"clip_{t:012d}_keypoints.json").write_text(json.dumps(openpose_frame(people)))
    sequence = det.read_openpose_folder(folder)
    assert sequence.layout.name == "OpenPose-COCO-18" and sequence.report.track == 7
    chosen = det.read_openpose_folder(folder, person=2)
    assert chosen.report.track == 2 and chosen.report.filled_frames == [0]  # held at the start
    with pytest.raises(ValueError, match="no detection has track id 5"):
        det.read_openpose_folder(folder, person=5)


def test_alphapose_results_pick_the_track_seen_most(tmp_path):
    entries = []
    for t in range(5):
        entries.append({"image_id": f"{t}.jpg", "category_id": 1, "keypoints": person((200, 200), 100, 26).reshape(-1)
                        .tolist(), "score": 2.5, "box": [0, 0, 10, 10], "idx": 1})
        if t < 2:
            entries.append({"image_id": f"{t}.jpg", "category_id": 1, "keypoints": person((500, 200), 300, 26)
                            .reshape(-1).tolist(), "score": 3.0, "box": [0, 0, 10, 10], "idx": 4})
    path = tmp_path / "alphapose-results.json"
    path.write_text(json.dumps(entries))
    sequence = det.read_detections(path)
    assert sequence.report.reader == "AlphaPose results" and sequence.layout.name == "Halpe-26"
    assert sequence.report.track == 1 and "most frames" in sequence.report.person_rule
    np.testing.assert_allclose(sequence.keypoints[0, :, :2], person((200, 200), 100, 26)[:, :2])


def test_arrays_npy_and_csv(tmp_path):
    keypoints = np.stack([person((50 + t, 60), 40)[:, :2] for t in range(6)])
    keypoints[2, 5] = np.nan
    np.save(tmp_path / "k.npy", keypoints)
    sequence = det.read_detections(tmp_path / "k.npy", "coco17")
    assert sequence.keypoints.shape == (6, 17, 3) and sequence.report.filled_frames == [2]
    np.testing.assert_allclose(sequence.keypoints[2, 5, :2], (keypoints[1, 5] + keypoints[3, 5]) / 2)
    header = ",".join(f"{name}_{axis}" for name in range(17) for axis in "xyc")
    rows = [",".join(map(str, row)) for row in np.stack([person((9, 9), 30)] * 3).reshape(3, -1)]
    (tmp_path / "k.csv").write_text("\n".join([header, *rows]) + "\n")
    assert det.read_detections(tmp_path / "k.csv", "coco17").keypoints.shape == (3, 17, 3)
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="not a pickled object"):
        det.read_keypoint_array(tmp_path / "objects.npy", "coco17")
    with pytest.raises(ValueError, match=r"\(T, 25, 2 or 3\).*--format"):
        det.read_keypoint_array(tmp_path / "k.npy", "body25")
    with pytest.raises(ValueError, match="needs its layout"):
        det.read_detections(tmp_path / "k.npy")


def test_bad_files_get_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no COCO keypoint results"):
        det.read_coco_results(tmp_path / "absent.json")
    broken = tmp_path / "broken.json"
    broken.write_text('[{"image_id": 1, "keypoints": [1, 2')
    with pytest.raises(ValueError, match="not valid JSON"):
        det.read_coco_results(broken)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 5000 + "]" * 5000)
    with pytest.raises(ValueError, match="nested 5000 deep"):
        det.read_json(deep, "detections file")
    escaped = tmp_path / "escaped.json"
    escaped.write_text('[{"image_id": "a \\" [[[[", "x": [[[1]]]}]')
    assert _json_depth(escaped.read_bytes()) == 5  # the brackets in the string do not count
    with pytest.raises(ValueError, match="larger than the 0 MiB allowed"):
        det.read_json(deep, "detections file", max_bytes=100)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps([coco_entry(0, person((0, 0), 10, joints=18))]))
    with pytest.raises(ValueError, match="entry 0: keypoints must be a flat list of 51 numbers"):
        det.read_coco_results(wrong)
    annotations = tmp_path / "person_keypoints_val.json"
    annotations.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    with pytest.raises(ValueError, match="load_coco_keypoints"):
        det.read_coco_results(annotations)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="--write_json"):
        det.read_openpose_folder(tmp_path / "empty")
