"""The free SMPL-X-format body model as whole-body regressors use it: parameters in, mesh and joints out.

`load_wholebody_model` builds it through smplx with every pose and shape passed in (no parameters of
its own), `pose_wholebody` runs it on a dict of SMPL-X parameters (`SMPLX_PARAM_NAMES`), and
`part_joint_indices` names the output joints that outline the hands and the face (for crops).
Used by `hmrlab.models.bidrn` and `hmrlab.data.synth_wholebody`.
"""

from __future__ import annotations

from functools import lru_cache

from torch import Tensor

from hmrlab.body import SMPLX_JOINT_NAMES, body_model_arrays, load_body_model

SMPLX_PARAM_NAMES = (
    "global_orient", "body_pose", "left_hand_pose", "right_hand_pose", "jaw_pose", "betas", "expression", "transl",
)
_NUM_SKELETON = len(SMPLX_JOINT_NAMES)  # 55; smplx appends 21 vertex joints and 51 landmarks


def load_wholebody_model():
    """The free SMPL-X-format model as smplx runs it here: 10 betas, 10 expressions, absolute hand
    axis-angles (no PCA, ``flat_hand_mean=True``), and no parameters of its own (every input is
    passed to `pose_wholebody`, so a network holding it has only its own parameters)."""
    no_parameters = {f"create_{name}": False for name in (*SMPLX_PARAM_NAMES, "leye_pose", "reye_pose")}
    return load_body_model(
        "smplx", num_betas=10, num_expression_coeffs=10, use_pca=False, flat_hand_mean=True, **no_parameters
    )


def pose_wholebody(model, params: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
    """Vertices (B, 13718, 3) and joints (B, 127, 3), metres, of `load_wholebody_model` for SMPL-X
    parameters keyed by `SMPLX_PARAM_NAMES` (axis-angle poses, shapes as in `WholeBodySamples`);
    the eyes stay at rest. The 127 joints: 55 skeleton joints, 21 vertex joints (nose, eyes, ears,
    feet, finger tips), 51 face landmarks."""
    missing = [name for name in SMPLX_PARAM_NAMES if name not in params]
    if missing:
        raise ValueError(f"params lacks {missing}; pose_wholebody needs all of {list(SMPLX_PARAM_NAMES)}")
    batch = len(params["betas"])
    eyes = params["betas"].new_zeros(batch, 3)
    flat = {name: params[name].reshape(batch, -1) for name in SMPLX_PARAM_NAMES}
    output = model(**flat, leye_pose=eyes, reye_pose=eyes)
    return output.vertices, output.joints


@lru_cache(maxsize=1)
def part_joint_indices() -> dict[str, list[int]]:
    """Indices into smplx's 127 output joints that outline each part (module docstring):
    ``"left_hand"``, ``"right_hand"`` (wrist, 15 finger joints, 5 tips: 21 each) and ``"face"``."""
    extra_names = [str(n) for n in body_model_arrays("smplx")["extra_vertex_names"]]
    name_index = {name: i for i, name in enumerate(SMPLX_JOINT_NAMES)}
    extra = {name: _NUM_SKELETON + i for i, name in enumerate(extra_names)}
    fingers = ("thumb", "index", "middle", "ring", "pinky")
    parts = {}
    for side, short in (("left", "l"), ("right", "r")):
        finger_joints = [i for name, i in name_index.items() if name.startswith(f"{side}_") and name[-1].isdigit()]
        parts[f"{side}_hand"] = [name_index[f"{side}_wrist"], *finger_joints, *(extra[short + f] for f in fingers)]
    first_landmark = _NUM_SKELETON + len(extra_names)
    head = [name_index[n] for n in ("head", "jaw", "left_eye_smplhf", "right_eye_smplhf")]
    parts["face"] = head + [extra[n] for n in ("nose", "reye", "leye", "rear", "lear")]
    parts["face"] += list(range(first_landmark, first_landmark + 51))
    return parts
