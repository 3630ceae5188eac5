"""Joint sets: trees are valid and left/right flips are involutions that preserve bone structure."""

import numpy as np
import pytest

from hmrlab.skeletons import H36M_17, SMPL_24, Skeleton


@pytest.mark.parametrize("skeleton", [H36M_17, SMPL_24], ids=lambda s: s.name)
def test_flip_is_an_involution_mapping_bones_to_bones(skeleton: Skeleton) -> None:
    flip = skeleton.flip_permutation
    assert np.array_equal(flip[flip], np.arange(skeleton.num_joints))
    bones = set(skeleton.bones())
    assert {(int(flip[p]), int(flip[c])) for p, c in bones} == bones
    left = [n for n in skeleton.joint_names if n.startswith("left")]
    assert all(skeleton.joint_names[flip[skeleton.index(n)]] == "right" + n[4:] for n in left)


def test_smpl_tree_matches_known_chains() -> None:
    def chain(name: str) -> list[str]:
        j, names = SMPL_24.index(name), []
        while j >= 0:
            names.append(SMPL_24.joint_names[j])
            j = SMPL_24.parents[j]
        return names

    assert chain("left_hand") == [
        "left_hand", "left_wrist", "left_elbow", "left_shoulder", "left_collar", "spine3", "spine2",
        "spine1", "pelvis",
    ]
    assert chain("right_foot") == ["right_foot", "right_ankle", "right_knee", "right_hip", "pelvis"]


def test_bad_trees_and_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="parent"):
        Skeleton("loop", ("a", "b"), (1, -1))
    with pytest.raises(ValueError, match="no joint 'tail'"):
        H36M_17.index("tail")
