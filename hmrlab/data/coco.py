"""COCO person keypoints: ``annotations/person_keypoints_{train,val}2017.json``.

The format (Lin et al., ECCV 2014; cocodataset.org "Data format", keypoint detection): a JSON object
with ``images`` (``id``, ``file_name``, ``width``, ``height``), ``annotations`` (``id``,
``image_id``, ``category_id``, ``keypoints`` as 51 numbers x1, y1, v1, ..., x17, y17, v17 in pixels,
``num_keypoints``, ``bbox`` [x, y, width, height], ``area``, ``iscrowd``, ``segmentation``) and
``categories``, whose ``person`` entry lists the 17 ``keypoints`` names (the order of
`hmrlab.body.skeletons.COCO_17`) and the ``skeleton``, limb pairs numbered from 1. Visibility v is
0 for a keypoint not labelled (x = y = 0), 1 for labelled but hidden, 2 for labelled and visible.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hmrlab.body.skeletons import COCO_17
from hmrlab.data.safe_files import checked_array, checked_dict, checked_list, existing_file, require_key
from hmrlab.io import atomic_write_text, read_json

# COCO's limb list, 1-based as in the annotation files: legs, hips, torso, arms, face.
COCO_SKELETON = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8), (7, 9),
    (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
)
_FILE = "COCO person keypoints file (person_keypoints_*.json)"


@dataclass
class CocoKeypoints:
    """COCO person keypoints: I images, K annotations.

    ``image_ids`` (I,), ``file_names`` (I names), ``image_sizes`` (I, 2) width and height in pixels;
    ``annotation_ids`` (K,), ``annotation_image_ids`` (K,) the image of each annotation,
    ``keypoints`` (K, 17, 3) x, y pixels and visibility 0/1/2 in `COCO_17` order, ``boxes`` (K, 4)
    x, y, width, height pixels, ``iscrowd`` (K,) bool; ``keypoint_names`` and ``skeleton`` (E, 2)
    0-based limb pairs as the file's person category gives them.
    """

    image_ids: np.ndarray
    file_names: list[str]
    image_sizes: np.ndarray
    annotation_ids: np.ndarray
    annotation_image_ids: np.ndarray
    keypoints: np.ndarray
    boxes: np.ndarray
    iscrowd: np.ndarray
    keypoint_names: tuple[str, ...]
    skeleton: np.ndarray


def _whole(value: Any, where: str) -> int:
    """`value` as an int if it is a whole number (COCO ids, sizes), else `ValueError` naming `where`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
        raise ValueError(f"{where} must be a whole number; got {value!r:.60}")
    if abs(value) >= 2**63:
        raise ValueError(f"{where} is {value:.3g}, too large for an id or a size")
    return int(value)


def _person_category(content: dict, where: str) -> tuple[int, tuple[str, ...], np.ndarray]:
    """The person category's id, keypoint names (checked against `COCO_17`) and 0-based skeleton."""
    categories = checked_list(require_key(content, "categories", where, "a list with the 'person' category"),
                              f"{where}: categories", "category dicts")
    people = [c for c in categories if isinstance(c, dict) and "keypoints" in c]
    if len(people) != 1:
        raise ValueError(f"{where}: categories must hold exactly one category with 'keypoints' (person); "
                         f"found {len(people)}")
    names = tuple(checked_list(require_key(people[0], "keypoints", f"{where}: categories", "the 17 keypoint names"),
                               f"{where}: the person category's keypoints", "the 17 keypoint names"))
    if names != COCO_17.joint_names:
        raise ValueError(f"{where}: the person category's keypoints are {list(names)}; expected COCO's 17 "
                         f"{list(COCO_17.joint_names)}")
    skeleton = checked_array(require_key(people[0], "skeleton", f"{where}: categories", "limb pairs numbered from 1"),
                             ("E", 2), f"{where}: categories' skeleton").astype(np.int64) - 1
    if skeleton.size and (skeleton.min() < 0 or skeleton.max() >= 17):
        raise ValueError(f"{where}: skeleton pairs must number keypoints 1 to 17")
    limbs = {frozenset(pair) for pair in skeleton.tolist()}
    missing = [COCO_17.joint_names[child] for parent, child in COCO_17.bones() if {parent, child} not in limbs]
    if missing:
        raise ValueError(f"{where}: the skeleton does not link {missing} to their COCO_17 parents; expected "
                         f"COCO's limbs {list(COCO_SKELETON)}")
    category = _whole(require_key(people[0], "id", f"{where}: categories", "the category id"),
                      f"{where}: the person category's id")
    return category, names, skeleton


def _annotation_arrays(annotation: Any, index: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    where = f"{where}: annotations[{index}]"
    keypoints = checked_array(require_key(annotation, "keypoints", where, "51 numbers x, y, v"), (51,),
                              f"{where}['keypoints']").reshape(17, 3)
    box = checked_array(require_key(annotation, "bbox", where, "[x, y, width, height]"), (4,), f"{where}['bbox']")
    return keypoints, box


def load_coco_keypoints(path: str | os.PathLike) -> CocoKeypoints:
    """Read a COCO person-keypoints JSON file: images, and each person annotation's (17, 3) keypoints.

    Only annotations of the person category are kept. Raises `FileNotFoundError` for a missing file
    and `ValueError` naming the file and key for bad JSON, a missing key, keypoint names that are not
    `COCO_17`'s, or an annotation of an image the file does not list.
    """
    path = existing_file(path, _FILE)
    where = str(path)
    content = checked_dict(read_json(path, _FILE), where, "a COCO object with images, annotations and categories")
    category, names, skeleton = _person_category(content, where)
    images = checked_list(require_key(content, "images", where, "a list of {id, file_name, width, height}"),
                          f"{where}: images", "{id, file_name, width, height} dicts")
    for i, image in enumerate(images):
        entry = f"{where}: images[{i}]"
        for key in ("id", "width", "height"):
            _whole(require_key(image, key, entry, "COCO image entry"), f"{entry}[{key!r}]")
        if not isinstance(require_key(image, "file_name", entry, "COCO image entry"), str):
            raise ValueError(f"{entry}['file_name'] must be a string (the image's path)")
    image_ids = np.array([int(image["id"]) for image in images], dtype=np.int64)
    annotations = []
    for i, annotation in enumerate(checked_list(require_key(content, "annotations", where, "person annotations"),
                                                f"{where}: annotations", "annotation dicts")):
        owner = f"{where}: annotations[{i}]"
        if require_key(annotation, "category_id", owner, "the category id") != category:
            continue
        for key in ("id", "image_id"):
            _whole(require_key(annotation, key, owner, "COCO annotation entry"), f"{owner}[{key!r}]")
        if not isinstance(annotation.get("iscrowd", 0), (bool, int)):
            raise ValueError(f"{owner}['iscrowd'] must be 0 or 1; got {annotation['iscrowd']!r:.60}")
        annotations.append((i, annotation))
    arrays = [_annotation_arrays(a, i, where) for i, a in annotations]
    annotations = [a for _, a in annotations]
    annotation_image_ids = np.array([int(a["image_id"]) for a in annotations], dtype=np.int64)
    unknown = sorted(set(annotation_image_ids.tolist()) - set(image_ids.tolist()))
    if unknown:
        raise ValueError(f"{where}: annotations refer to images {unknown[:10]} that 'images' does not list")
    return CocoKeypoints(
        image_ids=image_ids,
        file_names=[str(image["file_name"]) for image in images],
        image_sizes=np.array([[int(image["width"]), int(image["height"])] for image in images],
                             dtype=np.int64).reshape(-1, 2),
        annotation_ids=np.array([int(a["id"]) for a in annotations], dtype=np.int64),
        annotation_image_ids=annotation_image_ids,
        keypoints=np.array([k for k, _ in arrays], dtype=np.float64).reshape(-1, 17, 3),
        boxes=np.array([b for _, b in arrays], dtype=np.float64).reshape(-1, 4),
        iscrowd=np.array([bool(a.get("iscrowd", 0)) for a in annotations], dtype=bool),
        keypoint_names=names,
        skeleton=skeleton,
    )


def keypoint_boxes(keypoints: np.ndarray) -> np.ndarray:
    """(K, 4) tight boxes x, y, width, height around each (17, 3) pose's labelled keypoints (v > 0), pixels.

    A pose with no labelled keypoint gets the empty box (0, 0, 0, 0).
    """
    keypoints = checked_array(keypoints, ("K", 17, 3), "keypoints")
    boxes = np.zeros((len(keypoints), 4))
    for k, pose in enumerate(keypoints):
        labelled = pose[pose[:, 2] > 0, :2]
        if len(labelled):
            low, high = labelled.min(axis=0), labelled.max(axis=0)
            boxes[k] = (*low, *(high - low))
    return boxes


def write_coco_keypoints(
    path: str | os.PathLike,
    file_names: list[str],
    image_sizes: np.ndarray,
    keypoints: np.ndarray,
    annotation_image_ids: np.ndarray,
    *,
    image_ids: np.ndarray | None = None,
    boxes: np.ndarray | None = None,
    iscrowd: np.ndarray | None = None,
) -> Path:
    """Write a COCO person-keypoints JSON file (atomically) that `load_coco_keypoints` and pycocotools read.

    `file_names` and `image_sizes` (I, 2) width, height describe the images (ids `image_ids`, default
    1..I); `keypoints` (K, 17, 3) x, y pixels and visibility 0/1/2 in `COCO_17` order belong to the
    images `annotation_image_ids` (K,). `boxes` (K, 4) x, y, width, height default to
    `keypoint_boxes`; ``area`` is written as the box area (COCO's is the segmentation mask's, which
    synthetic data lacks). Annotation ids are 1..K; the person category has id 1.
    """
    image_sizes = checked_array(image_sizes, (len(file_names), 2), "write_coco_keypoints: image_sizes (I, 2)")
    keypoints = checked_array(keypoints, ("K", 17, 3), "write_coco_keypoints: keypoints")
    count = len(keypoints)
    ids = np.arange(1, len(file_names) + 1) if image_ids is None else image_ids
    ids = checked_array(ids, (len(file_names),), "write_coco_keypoints: image_ids (I,)")
    owners = checked_array(annotation_image_ids, (count,), "write_coco_keypoints: annotation_image_ids (K,)")
    unknown = sorted(set(owners.tolist()) - set(ids.tolist()))
    if unknown:
        raise ValueError(f"write_coco_keypoints: annotation_image_ids {unknown[:10]} are not among image_ids")
    boxes = checked_array(keypoint_boxes(keypoints) if boxes is None else boxes, (count, 4),
                          "write_coco_keypoints: boxes (K, 4)")
    crowd = checked_array(np.zeros(count, bool) if iscrowd is None else iscrowd, (count,),
                          "write_coco_keypoints: iscrowd (K,)")
    content = {
        "info": {"description": "written by hmrlab.data.coco"},
        "licenses": [],
        "images": [
            {"id": int(i), "file_name": str(name), "width": int(w), "height": int(h)}
            for i, name, (w, h) in zip(ids, file_names, image_sizes)
        ],
        "annotations": [
            {
                "id": k + 1,
                "image_id": int(owners[k]),
                "category_id": 1,
                "keypoints": [float(v) if c < 2 else int(v) for point in keypoints[k] for c, v in enumerate(point)],
                "num_keypoints": int((keypoints[k, :, 2] > 0).sum()),
                "bbox": [float(v) for v in boxes[k]],
                "area": float(boxes[k, 2] * boxes[k, 3]),
                "iscrowd": int(crowd[k]),
                "segmentation": [],
            }
            for k in range(count)
        ],
        "categories": [
            {
                "id": 1,
                "name": "person",
                "supercategory": "person",
                "keypoints": list(COCO_17.joint_names),
                "skeleton": [list(pair) for pair in COCO_SKELETON],
            }
        ],
    }
    return atomic_write_text(path, json.dumps(content))
