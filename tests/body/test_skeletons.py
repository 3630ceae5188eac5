"""Joint sets: trees are valid, left/right flips are involutions that preserve bone structure,
orders agree with smplx's and COCO's own lists, and name mappings round-trip."""

import numpy as np
import pytest
from smplx.joint_names import JOINT_NAMES as SMPLX_JOINT_NAMES_REFERENCE

from hmrlab.body.skeletons import (
    COCO_17,
    H36M_17,
    SMPL_24,
    SMPLX_55,
    Skeleton,
    joint_mapping,
    shared_joints,
)

ALL = [H36M_17, SMPL_24, SMPLX_55, COCO_17]


@pytest.mark.parametrize("skeleton", ALL, ids=lambda s: s.name)
def test_flip_is_an_involution_mapping_bones_to_bones(skeleton: Skeleton) -> None:
    flip = skeleton.flip_permutation
    assert np.array_equal(flip[flip], np.arange(skeleton.num_joints))
    bones = set(skeleton.bones())
    assert {(int(flip[p]), int(flip[c])) for p, c in bones} == bones
    left = [n for n in skeleton.joint_names if n.startswith("left")]
    assert all(skeleton.joint_names[flip[skeleton.index(n)]] == "right" + n[4:] for n in left)


def chain(skeleton: Skeleton, name: str) -> list[str]:
    j, names = skeleton.index(name), []
    while j >= 0:
        names.append(skeleton.joint_names[j])
        j = skeleton.parents[j]
    return names


def test_smpl_tree_matches_known_chains() -> None:
    assert chain(SMPL_24, "left_hand") == [
        "left_hand", "left_wrist", "left_elbow", "left_shoulder", "left_collar", "spine3", "spine2",
        "spine1", "pelvis",
    ]
    assert chain(SMPL_24, "right_foot") == ["right_foot", "right_ankle", "right_knee", "right_hip", "pelvis"]


def test_smplx_order_is_smplx_and_body_is_smpl() -> None:
    assert SMPLX_55.joint_names == tuple(SMPLX_JOINT_NAMES_REFERENCE[:55])
    assert SMPLX_55.parents[:22] == SMPL_24.parents[:22]
    assert chain(SMPLX_55, "right_thumb3")[:5] == [
        "right_thumb3", "right_thumb2", "right_thumb1", "right_wrist", "right_elbow",
    ]
    assert chain(SMPLX_55, "jaw")[:3] == ["jaw", "head", "neck"]


def test_coco_tree_uses_coco_limbs() -> None:
    # The COCO annotation file's "skeleton" links, 1-based (person_keypoints_*.json).
    coco_links = {
        (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8),
        (7, 9), (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
    }
    undirected = {frozenset((a - 1, b - 1)) for a, b in coco_links}
    assert all(frozenset(bone) in undirected for bone in COCO_17.bones())
    assert COCO_17.joint_names[0] == "nose" and COCO_17.parents[0] == -1


def test_joint_mapping_reorders_by_name_and_reports_missing() -> None:
    mapping = joint_mapping(SMPLX_55, Skeleton("body22", SMPL_24.joint_names[:22], SMPL_24.parents[:22]))
    assert np.array_equal(mapping, np.arange(22))
    back = joint_mapping(H36M_17, H36M_17)
    assert np.array_equal(back, np.arange(17))
    with pytest.raises(ValueError, match="spine, thorax.*shared_joints"):
        joint_mapping(SMPL_24, H36M_17)


def test_shared_joints_between_smpl_and_h36m() -> None:
    source_idx, target_idx = shared_joints(SMPL_24, H36M_17)
    assert len(target_idx) == 15
    assert [H36M_17.joint_names[t] for t in target_idx] == [SMPL_24.joint_names[s] for s in source_idx]
    assert set(H36M_17.joint_names) - {H36M_17.joint_names[t] for t in target_idx} == {"spine", "thorax"}
    empty = shared_joints(SMPL_24, Skeleton("other", ("tail",), (-1,)))
    assert empty[0].shape == (0,) and empty[1].shape == (0,)


def test_bad_trees_and_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="parent"):
        Skeleton("loop", ("a", "b"), (1, -1))
    with pytest.raises(ValueError, match="unique"):
        Skeleton("twins", ("a", "a"), (-1, 0))
    with pytest.raises(ValueError, match="no joint 'tail'"):
        H36M_17.index("tail")
