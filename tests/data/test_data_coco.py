"""hmrlab.data.coco: COCO person-keypoints JSON read, written back, bad files refused.

References: the fixture (plain json, see hmrlab/assets/fixtures/README.md) read with `json`, COCO's
keypoint names and 1-based limb list as published in the annotation files, tight boxes by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hmrlab import paths
from hmrlab.body.skeletons import COCO_17
from hmrlab.data.coco import keypoint_boxes, load_coco_keypoints, write_coco_keypoints

FIXTURE = paths.FIXTURES / "coco" / "person_keypoints_tiny.json"
# The person category of person_keypoints_val2017.json.
COCO_NAMES = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
              "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
              "right_knee", "left_ankle", "right_ankle"]
COCO_LIMBS = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9],
              [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]


def test_fixture_reads_like_json():
    reference = json.loads(FIXTURE.read_text())
    coco = load_coco_keypoints(FIXTURE)
    assert coco.image_ids.tolist() == [image["id"] for image in reference["images"]]
    assert coco.file_names == [image["file_name"] for image in reference["images"]]
    assert coco.image_sizes.tolist() == [[image["width"], image["height"]] for image in reference["images"]]
    annotations = reference["annotations"]
    assert coco.annotation_ids.tolist() == [a["id"] for a in annotations]
    assert coco.annotation_image_ids.tolist() == [a["image_id"] for a in annotations]
    assert coco.keypoints.shape == (3, 17, 3)
    for got, annotation in zip(coco.keypoints, annotations, strict=True):
        assert got[:, 0].tolist() == annotation["keypoints"][0::3]
        assert got[:, 2].tolist() == annotation["keypoints"][2::3]
        assert (got[:, 2] > 0).sum() == annotation["num_keypoints"]
    np.testing.assert_array_equal(coco.boxes, [a["bbox"] for a in annotations])
    assert coco.iscrowd.tolist() == [False, False, True]
    assert list(coco.keypoint_names) == COCO_NAMES == list(COCO_17.joint_names)
    assert (coco.skeleton + 1).tolist() == COCO_LIMBS


def test_writer_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    keypoints = np.concatenate([rng.uniform(0, 300, (4, 17, 2)), rng.integers(0, 3, (4, 17, 1))], axis=-1)
    path = write_coco_keypoints(tmp_path / "person_keypoints_synth.json", ["a.jpg", "b.jpg"], [[320, 240], [64, 48]],
                                keypoints, [5, 5, 8, 5], image_ids=[5, 8], iscrowd=[0, 0, 0, 1])
    coco = load_coco_keypoints(path)
    assert coco.file_names == ["a.jpg", "b.jpg"] and coco.image_ids.tolist() == [5, 8]
    assert coco.image_sizes.tolist() == [[320, 240], [64, 48]]
    assert coco.annotation_image_ids.tolist() == [5, 5, 8, 5] and coco.annotation_ids.tolist() == [1, 2, 3, 4]
    np.testing.assert_array_equal(coco.keypoints, keypoints)
    np.testing.assert_array_equal(coco.boxes, keypoint_boxes(keypoints))
    assert coco.iscrowd.tolist() == [False, False, False, True]
    written = json.loads(path.read_text())
    assert written["categories"][0]["skeleton"] == COCO_LIMBS
    assert [a["num_keypoints"] for a in written["annotations"]] == (keypoints[..., 2] > 0).sum(-1).tolist()
    # Reading and writing again gives the same file.
    again = write_coco_keypoints(tmp_path / "again.json", coco.file_names, coco.image_sizes, coco.keypoints,
                                 coco.annotation_image_ids, image_ids=coco.image_ids, boxes=coco.boxes,
                                 iscrowd=coco.iscrowd)
    assert json.loads(again.read_text()) == written


def test_keypoint_boxes_cover_labelled_points_only():
    pose = np.zeros((2, 17, 3))
    pose[0, 3] = (10, 20, 2)
    pose[0, 7] = (40, 5, 1)
    pose[0, 9] = (500, 500, 0)  # not labelled: ignored
    np.testing.assert_array_equal(keypoint_boxes(pose), [[10, 5, 30, 15], [0, 0, 0, 0]])


def edited_fixture(tmp_path: Path, edit) -> Path:
    content = json.loads(FIXTURE.read_text())
    edit(content)
    path = tmp_path / "person_keypoints_bad.json"
    path.write_text(json.dumps(content))
    return path


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c.pop("annotations"), r"lacks the key 'annotations'"),
        (lambda c: c["images"][1].pop("width"), r"images\[1\] lacks the key 'width'"),
        (lambda c: c["annotations"][0].pop("bbox"), r"annotations\[0\] lacks the key 'bbox'"),
        (lambda c: c["annotations"][1].update(keypoints=[0] * 34),
         r"annotations\[1\]\['keypoints'\] must be a numeric array of shape \(51,\); got shape \(34,\)"),
        (lambda c: c["annotations"][2].update(image_id=99), r"annotations refer to images \[99\]"),
        (lambda c: c["categories"][0].update(keypoints=COCO_NAMES[::-1]), r"expected COCO's 17"),
        (lambda c: c["categories"][0].update(skeleton=COCO_LIMBS[:-1]), r"does not link \['right_shoulder'\]"),
        (lambda c: c["categories"][0].update(skeleton=[[0, 1]]), r"skeleton pairs must number keypoints 1 to 17"),
        (lambda c: c.update(categories=[]), r"exactly one category with 'keypoints'"),
    ],
)
def test_bad_files_name_file_and_key(tmp_path, edit, message):
    path = edited_fixture(tmp_path, edit)
    with pytest.raises(ValueError, match=message) as error:
        load_coco_keypoints(path)
    assert str(path) in str(error.value)


def test_missing_and_truncated_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no COCO person keypoints file"):
        load_coco_keypoints(tmp_path / "absent.json")
    text = FIXTURE.read_text()
    (tmp_path / "cut.json").write_text(text[: len(text) // 2])
    with pytest.raises(ValueError, match=r"cut\.json: .*not valid JSON"):
        load_coco_keypoints(tmp_path / "cut.json")


def test_writer_checks_its_inputs(tmp_path):
    with pytest.raises(ValueError, match=r"keypoints must be a numeric array of shape \(K, 17, 3\)"):
        write_coco_keypoints(tmp_path / "x.json", ["a.jpg"], [[4, 4]], np.zeros((2, 17, 2)), [1, 1])
    with pytest.raises(ValueError, match=r"annotation_image_ids \[2\] are not among image_ids"):
        write_coco_keypoints(tmp_path / "x.json", ["a.jpg"], [[4, 4]], np.zeros((1, 17, 3)), [2])
    assert not (tmp_path / "x.json").exists()
