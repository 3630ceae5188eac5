"""The keypoints-based 3D human template: body joints plus surface markers, and how the markers are chosen.

The keypoints-guided lightweight HMR (Chen and Wang, Sec. III-B, Fig. 4) predicts 91 keypoints
instead of SMPL's 24 joints or 6890 vertices: the 24 joints (pose) and 67 surface markers (shape).
Following MoSh (Loper et al., SIGGRAPH Asia 2014), 47 markers sit where a motion-capture suit puts
them (anatomical landmarks: acromion, epicondyles, malleoli, ...), and 20 more are chosen greedily
to make the whole mesh recoverable from the keypoints. The authors' public code instead uses 29
joints (SMPL's 24 and HybrIK's 5 leaf joints: head top, middle finger tips, big toes) and the same
67 markers: 96 keypoints. `keypoint_template` builds either (``kind="paper91"`` or ``"code96"``,
and ``"joints24"`` for the joints-only baseline of the paper's Table V).

Markers are mesh vertices, found two ways:

* on a licensed SMPL mesh (6890 vertices), by the standard vertex ids of the MoSh/SOMA marker
  layout (`SMPL_MARKER_VERTEX_IDS`, as used by the authors' code) and HybrIK's leaf vertex ids;
* on any other mesh (the free model), by anatomical rule (`LANDMARKS`): from a point between two
  rest joints, cast a ray in a body direction and take the mesh vertex nearest to where the ray
  leaves the body (`ray_exit_vertices`). The free model is in SMPL's frame: y up, the body facing
  +z, its left side at +x, in a T-pose with the palms down (thumbs forward).

The 20 greedy markers are computed on the mesh at hand, SMPL or free (`greedy_marker_selection`):
the mesh is reconstructed from the keypoints by linear least squares over a set of posed, shaped
bodies, and each step adds the vertex that lowers the reconstruction error most.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from hmrlab.body import SMPL_24, BodyModel, body_model_arrays, lbs
from hmrlab.data.poses import sample_poses
from hmrlab.geometry import axis_angle_to_matrix
from hmrlab.validation import check_points, format_shape

SMPL_NUM_VERTICES = 6890

# HybrIK's leaf joints (Li et al., CVPR 2021): mesh vertices appended to SMPL's 24 joints, with the
# joint each hangs from; the vertex ids are those of the SMPL mesh (HybrIK's and the authors' code).
LEAF_JOINT_NAMES = ("head_top", "left_middle_tip", "right_middle_tip", "left_big_toe", "right_big_toe")
LEAF_JOINT_PARENTS = (15, 22, 23, 10, 11)
SMPL_LEAF_VERTEX_IDS = (411, 2445, 5905, 3216, 6617)

# The 47 motion-capture markers, in the authors' order (their code's "yellow" markers).
MOCAP_MARKER_NAMES = (
    "RFHD", "LFHD", "RSHO", "CLAV", "LSHO", "RUPA", "LUPA", "STRN",
    "RELB", "LELB", "RFRM", "LFRM", "RFWT", "LFWT", "RIWR", "LIWR",
    "RTHMB", "LTHMB", "RFIN", "LFIN", "RTHI", "LTHI", "RKNE", "LKNE",
    "RSHN", "LSHN", "RANK", "LANK", "RMT1", "LMT1", "RMT5", "LMT5",
    "RRSTBEEF", "LRSTBEEF", "RTOE", "LTOE", "LHEE", "RHEE", "LBWT", "RBWT",
    "T10", "C7", "LBHD", "RBHD", "RBAK", "LOWR", "ROWR",
)
# The 20 markers the authors' code adds on SMPL ("orange"); LTHI and RTHI are also among the 47.
AUTHORS_EXTRA_MARKER_NAMES = (
    "LBAK", "LSCAP", "RSCAP", "LELBIN", "LNWST", "RNWST", "RELBIN", "LTHI", "RTHI", "LKNI",
    "RKNI", "RFTHI", "LFTHI", "RFTHIIN", "LFTHIIN", "MBLLY", "RBUST", "LBUST", "RCHEECK", "LCHEECK",
)
# SMPL vertex ids of those markers (SOMA/MoSh layout, as listed in the authors' public code).
SMPL_MARKER_VERTEX_IDS: dict[str, int] = {
    "C7": 3470, "CLAV": 3171, "LANK": 3327, "LBAK": 1812, "LBHD": 182, "LBUST": 3040, "LBWT": 3122,
    "LCHEECK": 239, "LELB": 1666, "LELBIN": 1725, "LFHD": 0, "LFIN": 2174, "LFRM": 1568, "LFTHI": 874,
    "LFTHIIN": 1368, "LFWT": 857, "LHEE": 3387, "LIWR": 2112, "LKNE": 1053, "LKNI": 1058, "LMT1": 3336,
    "LMT5": 3346, "LNWST": 1323, "LOWR": 2108, "LRSTBEEF": 3314, "LSCAP": 1252, "LSHN": 1082,
    "LSHO": 1861, "LTHI": 1454, "LTHMB": 2224, "LTOE": 3233, "LUPA": 1443, "MBLLY": 1769, "RANK": 6728,
    "RBAK": 5273, "RBHD": 3694, "RBUST": 6488, "RBWT": 6544, "RCHEECK": 3749, "RELB": 5135,
    "RELBIN": 5194, "RFHD": 3512, "RFIN": 5635, "RFRM": 5037, "RFTHI": 4360, "RFTHIIN": 4841,
    "RFWT": 4343, "RHEE": 6786, "RIWR": 5573, "RKNE": 4538, "RKNI": 4544, "RMT1": 6736, "RMT5": 6747,
    "RNWST": 4804, "ROWR": 5568, "RRSTBEEF": 6682, "RSCAP": 4735, "RSHN": 4568, "RSHO": 5322,
    "RTHI": 4927, "RTHMB": 5686, "RTOE": 6633, "RUPA": 4918, "STRN": 3506, "T10": 3016,
}

NUM_GREEDY_MARKERS = 20
KINDS = ("paper91", "code96", "joints24")


class Landmark(NamedTuple):
    """An anatomical marker rule: a ray from ``J[a] + t (J[b] - J[a])`` (rest joints) along `direction`.

    The marker is the mesh vertex nearest to where the ray leaves the body. Directions are in the
    model frame (x to the body's left, y up, z forward) and need not be unit length.
    """

    a: int
    b: int
    t: float
    direction: tuple[float, float, float]
    description: str


# Left-side and midline rules; right-side markers mirror the left ones (x -> -x, left <-> right joints).
# Joints: 0 pelvis, 1 left hip, 4 left knee, 6 spine2, 7 left ankle, 9 spine3, 10 left foot, 12 neck,
# 15 head, 16 left shoulder, 17 right shoulder, 18 left elbow, 20 left wrist, 22 left hand.
LANDMARKS: dict[str, Landmark] = {
    "LFHD": Landmark(12, 15, 1.6, (0.35, 0.3, 1.0), "front of the head, above the left temple"),
    "LBHD": Landmark(12, 15, 1.6, (0.35, 0.3, -1.0), "back of the head, left of the midline"),
    "CLAV": Landmark(9, 12, 0.7, (0.0, 0.0, 1.0), "jugular notch, top of the sternum"),
    "STRN": Landmark(6, 9, 0.5, (0.0, 0.0, 1.0), "lower sternum (xiphoid process)"),
    "C7": Landmark(9, 12, 0.9, (0.0, 0.3, -1.0), "7th cervical vertebra, base of the neck at the back"),
    "T10": Landmark(6, 6, 0.0, (0.0, 0.0, -1.0), "10th thoracic vertebra, mid back"),
    "LBAK": Landmark(9, 16, 0.5, (0.0, 0.0, -1.0), "back, over the left scapula"),
    "LSHO": Landmark(16, 16, 0.0, (0.2, 1.0, 0.0), "top of the left shoulder (acromion)"),
    "LUPA": Landmark(16, 18, 0.5, (0.0, 1.0, -0.5), "left upper arm, lateral side"),
    "LELB": Landmark(18, 18, 0.0, (0.0, 1.0, 0.0), "left lateral epicondyle (up in a palms-down T-pose)"),
    "LFRM": Landmark(18, 20, 0.5, (0.0, 1.0, -0.5), "left forearm, back of the forearm"),
    "LIWR": Landmark(20, 20, 0.0, (0.0, 0.0, 1.0), "left wrist, thumb side (radial styloid)"),
    "LOWR": Landmark(20, 20, 0.0, (0.0, 0.0, -1.0), "left wrist, little-finger side (ulnar styloid)"),
    "LTHMB": Landmark(20, 22, 0.6, (0.0, 0.0, 1.0), "left hand, thumb side"),
    "LFIN": Landmark(22, 22, 0.0, (0.0, 1.0, 0.0), "back of the left hand over the knuckles"),
    "LFWT": Landmark(1, 16, 0.15, (0.3, 0.0, 1.0), "left front waist (anterior superior iliac spine)"),
    "LBWT": Landmark(1, 16, 0.15, (0.15, 0.0, -1.0), "left back waist (posterior superior iliac spine)"),
    "LTHI": Landmark(1, 4, 0.6, (1.0, 0.0, 0.0), "left thigh, lateral, lower half"),
    "LKNE": Landmark(4, 4, 0.0, (1.0, 0.0, 0.0), "left lateral femoral epicondyle"),
    "LSHN": Landmark(4, 7, 0.5, (0.0, 0.0, 1.0), "left shin, front of the tibia"),
    "LANK": Landmark(7, 7, 0.0, (1.0, 0.0, 0.0), "left lateral malleolus"),
    "LHEE": Landmark(7, 7, 0.0, (0.0, -0.5, -1.0), "left heel"),
    "LRSTBEEF": Landmark(7, 10, 0.5, (0.0, 1.0, 0.0), "top of the left foot (instep)"),
    "LMT1": Landmark(10, 10, 0.0, (-1.0, 0.0, 0.0), "left foot, head of the 1st metatarsal (medial)"),
    "LMT5": Landmark(10, 10, 0.0, (1.0, 0.0, 0.0), "left foot, head of the 5th metatarsal (lateral)"),
    "LTOE": Landmark(10, 10, 0.0, (0.0, 0.3, 1.0), "left toes, front"),
}
HEAD_TOP_LANDMARK = Landmark(15, 15, 0.0, (0.0, 1.0, 0.0), "top of the head")
# The free model's own fingertip and toe vertices (smplx's extra keypoints) give the other leaves.
_FREE_LEAF_VERTEX_NAMES = ("lmiddle", "rmiddle", "LBigToe", "RBigToe")


def _mirror(name: str, landmark: Landmark) -> tuple[str, Landmark]:
    flip = SMPL_24.flip_permutation
    x, y, z = landmark.direction
    mirrored = Landmark(int(flip[landmark.a]), int(flip[landmark.b]), landmark.t, (-x, y, z),
                        landmark.description.replace("left", "right"))
    return "R" + name[1:], mirrored


def landmark_rules() -> dict[str, Landmark]:
    """Every rule by marker name: `LANDMARKS` and the mirrored right-side ones (``LKNE`` -> ``RKNE``)."""
    rules = dict(LANDMARKS)
    for name, landmark in LANDMARKS.items():
        if name.startswith("L"):
            mirrored, rule = _mirror(name, landmark)
            rules[mirrored] = rule
    return rules


def ray_exit_vertices(
    vertices: np.ndarray, faces: np.ndarray, origins: np.ndarray, directions: np.ndarray
) -> np.ndarray:
    """For each ray, the mesh vertex nearest to its first hit on the surface: (R,) vertex ids.

    vertices (N, 3), faces (F, 3), origins and directions (R, 3). Möller-Trumbore ray/triangle
    intersection against every face; from an origin inside the body the first hit is where the ray
    leaves it. Raises `ValueError` if a ray hits nothing (origin outside the mesh, or a hole).
    """
    directions = directions / np.linalg.norm(directions, axis=-1, keepdims=True)
    v0, v1, v2 = (vertices[faces[:, k]] for k in range(3))
    edge1, edge2 = v1 - v0, v2 - v0  # (F, 3)
    p = np.cross(directions[:, None], edge2[None])  # (R, F, 3)
    det = (p * edge1[None]).sum(-1)
    inv_det = 1.0 / np.where(np.abs(det) < 1e-12, np.nan, det)
    s = origins[:, None] - v0[None]
    u = (s * p).sum(-1) * inv_det
    q = np.cross(s, edge1[None])
    v = (q * directions[:, None]).sum(-1) * inv_det
    t = (q * edge2[None]).sum(-1) * inv_det
    hit = (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 1e-9)
    t = np.where(hit, t, np.inf)
    face = t.argmin(-1)
    distance = t[np.arange(len(face)), face]
    if not np.isfinite(distance).all():
        missed = np.flatnonzero(~np.isfinite(distance)).tolist()
        raise ValueError(f"rays {missed} hit no face: their origins must lie inside a closed body mesh")
    points = origins + distance[:, None] * directions
    corners = faces[face]  # (R, 3)
    nearest = np.linalg.norm(vertices[corners] - points[:, None], axis=-1).argmin(-1)
    return corners[np.arange(len(face)), nearest]


def place_landmarks(
    vertices: np.ndarray, faces: np.ndarray, rest_joints: np.ndarray, rules: Mapping[str, Landmark]
) -> dict[str, int]:
    """Vertex id of each landmark rule on a rest mesh: vertices (N, 3), faces (F, 3), rest_joints (24, 3)."""
    names = list(rules)
    origins = np.stack([rest_joints[r.a] + r.t * (rest_joints[r.b] - rest_joints[r.a]) for r in rules.values()])
    directions = np.array([r.direction for r in rules.values()], dtype=np.float64)
    ids = ray_exit_vertices(np.asarray(vertices, np.float64), np.asarray(faces), origins, directions)
    return dict(zip(names, ids.tolist()))


def farthest_point_sampling(points: np.ndarray, n: int, start: int = 0) -> np.ndarray:
    """`n` indices (n,) of `points` (N, 3) spread over the set: each next point is the farthest from those taken."""
    if not 1 <= n <= len(points):
        raise ValueError(f"n must be between 1 and the number of points {len(points)}; got {n}")
    chosen = [start]
    distance = np.linalg.norm(points - points[start], axis=-1)
    for _ in range(n - 1):
        chosen.append(int(distance.argmax()))
        distance = np.minimum(distance, np.linalg.norm(points - points[chosen[-1]], axis=-1))
    return np.array(chosen)


def _design_matrix(keypoints: torch.Tensor) -> torch.Tensor:
    """(S, K, 3) -> (S, 3K + 1): flattened coordinates and a constant column (the regression's bias)."""
    return torch.cat([keypoints.flatten(1), keypoints.new_ones(keypoints.shape[0], 1)], 1)


def _orthonormal_basis(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal columns (S, r) spanning the columns of x (S, p), r its numerical rank.

    From the SVD rather than QR: a rank-deficient x (the root joint is always at the origin, three
    zero columns) would give QR arbitrary extra directions that fit noise.
    """
    u, s, _ = torch.linalg.svd(x, full_matrices=False)
    return u[:, s > s[0] * max(x.shape) * torch.finfo(x.dtype).eps]


def _mean_vertex_error(residual: torch.Tensor) -> float:
    """Mean Euclidean length of a (S, 3N) residual read as S x N three-vectors."""
    return float(residual.unflatten(1, (-1, 3)).norm(dim=-1).mean())


def vertex_regression_error(
    keypoints: torch.Tensor,
    vertices: torch.Tensor,
    test_keypoints: torch.Tensor | None = None,
    test_vertices: torch.Tensor | None = None,
) -> float:
    """Mean per-vertex error (metres) of the best linear map from keypoints to vertices.

    keypoints (S, K, 3) and vertices (S, N, 3) over S bodies fit ``vertices ≈ [keypoints, 1] W``
    (least squares, one W for all bodies); the error is measured on the same bodies, or on
    ``test_keypoints`` (T, K, 3) / ``test_vertices`` (T, N, 3) if given (held out).
    """
    check_points(keypoints, "keypoints", dims=("S", "K"))
    check_points(vertices, "vertices", dims=("S", "N"))
    x, y = _design_matrix(keypoints), vertices.flatten(1)
    weights = torch.linalg.lstsq(x, y, driver="gelsd").solution
    if test_keypoints is None or test_vertices is None:
        return _mean_vertex_error(y - x @ weights)
    return _mean_vertex_error(test_vertices.flatten(1) - _design_matrix(test_keypoints) @ weights)


def greedy_marker_selection(
    vertices: torch.Tensor,
    base_keypoints: torch.Tensor,
    num_markers: int,
    candidates: torch.Tensor | None = None,
) -> tuple[list[int], list[float]]:
    """Choose `num_markers` vertices one at a time, each the one that best completes the keypoints.

    vertices: (S, N, 3) the meshes to reconstruct; base_keypoints: (S, K0, 3) the keypoints already
    in the template (joints, mocap markers); candidates: (C,) vertex indices that may be chosen
    (default all). The reconstruction is ``vertices ≈ [keypoints, 1] W`` by least squares
    (`vertex_regression_error`). With R the current residual (S, 3N) and ``c`` the candidate's
    three coordinate columns of R (what the current keypoints cannot explain of it), adding the
    candidate removes ``tr((c^T c)^-1 c^T R R^T c)`` of the squared error (the projection of R onto
    c), so every candidate is scored at once and the best is taken (the greedy method the paper
    cites from MoSh, with this reconstruction as its criterion). Returns the chosen indices and the mean per-vertex error (metres) of the
    fit on these meshes before and after each addition (num_markers + 1 values).
    """
    check_points(vertices, "vertices", dims=("S", "N"))
    check_points(base_keypoints, "base_keypoints", dims=("S", "K"))
    num_samples, num_vertices = vertices.shape[:2]
    if base_keypoints.shape[0] != num_samples:
        raise ValueError(f"base_keypoints must have {num_samples} samples like vertices; got {base_keypoints.shape[0]}")
    allowed = torch.zeros(num_vertices, dtype=torch.bool)
    allowed[torch.arange(num_vertices) if candidates is None else candidates] = True
    if not 0 <= num_markers <= int(allowed.sum()):
        raise ValueError(f"num_markers must be between 0 and the number of candidates {int(allowed.sum())}; got {num_markers}")
    if num_samples <= 3 * (base_keypoints.shape[1] + num_markers) + 1:
        raise ValueError(
            f"{num_samples} meshes cannot constrain a linear map from {base_keypoints.shape[1] + num_markers} "
            f"keypoints; pass more than {3 * (base_keypoints.shape[1] + num_markers) + 1} posed meshes"
        )
    y = vertices.double().flatten(1)
    basis = _orthonormal_basis(_design_matrix(base_keypoints.double()))
    residual = y - basis @ (basis.T @ y)
    errors, chosen = [_mean_vertex_error(residual)], []
    eye = torch.eye(3, dtype=torch.float64)
    for _ in range(num_markers):
        columns = residual.unflatten(1, (num_vertices, 3))  # (S, N, 3)
        gram = torch.einsum("snc,snd->ncd", columns, columns)
        projected = ((residual @ residual.T) @ residual).unflatten(1, (num_vertices, 3))  # R R^T c, all at once
        cross = torch.einsum("snc,snd->ncd", columns, projected)
        # a tiny ridge: a vertex fully explained already has c = 0 and no gain
        gain = torch.linalg.solve(gram + 1e-12 * eye, cross).diagonal(dim1=-2, dim2=-1).sum(-1)
        gain[~allowed] = -torch.inf
        best = int(gain.argmax())
        chosen.append(best)
        allowed[best] = False
        new = _orthonormal_basis(columns[:, best])  # already orthogonal to the current basis
        residual = residual - new @ (new.T @ residual)
        errors.append(_mean_vertex_error(residual))
    return chosen, errors


def sample_posed_meshes(
    body_arrays: Mapping[str, np.ndarray],
    num_meshes: int,
    seed: int = 0,
    spread: float = 1.0,
    vertex_ids: Sequence[int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Posed, shaped bodies for fitting: vertices (S, N, 3) and joints (S, 24, 3) in metres, float32.

    Poses from `hmrlab.data.poses.sample_poses` (no global rotation), shapes ``betas ~ N(0, I)``,
    every body moved so its pelvis is at the origin (a keypoint regressor sees root-relative points).
    `vertex_ids` (N,) skins only those vertices (the joints still come from the whole shaped mesh),
    which is what makes fitting on hundreds of bodies cheap.
    """
    generator = torch.Generator().manual_seed(seed)
    model = BodyModel(body_arrays)
    ids = slice(None) if vertex_ids is None else torch.as_tensor(list(vertex_ids))
    rotmats = axis_angle_to_matrix(sample_poses(num_meshes, generator, spread=spread))
    betas = torch.randn(num_meshes, model.num_betas, generator=generator)
    # the steps of `hmrlab.body.lbs.linear_blend_skinning`, skinning only the vertices asked for
    v_shaped = model.v_template + lbs.blend_shapes(betas, model.shapedirs)
    rest_joints = lbs.regress_joints(model.J_regressor, v_shaped)
    v_posed = v_shaped[:, ids] + lbs.blend_shapes(lbs.pose_feature(rotmats), model.posedirs[ids])
    joints, transforms = lbs.forward_kinematics(rotmats, rest_joints, model.parents)
    vertices = lbs.skin(v_posed, model.weights[ids], transforms)
    root = joints[:, :1]
    return vertices - root, joints - root


@dataclass(frozen=True)
class KeypointTemplate:
    """Which points make the keypoints: joints (24, or 29 with HybrIK's leaves) then surface markers.

    ``leaf_vertex_ids`` are the mesh vertices that define joints 24-28 when there are 29;
    ``marker_vertex_ids`` the markers' vertices, named in ``marker_names`` (47 mocap markers, then
    ``G01``... for the greedy ones); ``num_vertices`` the mesh they index.
    """

    kind: str
    joint_names: tuple[str, ...]
    leaf_vertex_ids: tuple[int, ...]
    marker_names: tuple[str, ...]
    marker_vertex_ids: tuple[int, ...]
    num_vertices: int

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def num_markers(self) -> int:
        return len(self.marker_names)

    @property
    def num_keypoints(self) -> int:
        return self.num_joints + self.num_markers

    @property
    def names(self) -> tuple[str, ...]:
        return self.joint_names + self.marker_names

    @property
    def joint_indices(self) -> tuple[int, ...]:
        """Positions of the joints among the keypoints (the first ``num_joints``)."""
        return tuple(range(self.num_joints))

    @property
    def marker_indices(self) -> tuple[int, ...]:
        """Positions of the markers among the keypoints (after the joints)."""
        return tuple(range(self.num_joints, self.num_keypoints))


def mocap_marker_vertex_ids(body_arrays: Mapping[str, np.ndarray]) -> dict[str, int]:
    """Vertex ids of the 47 mocap markers and the head-top leaf on a body model's mesh.

    A licensed SMPL mesh (6890 vertices) uses the standard SOMA/MoSh and HybrIK ids; any other mesh
    the anatomical rules `landmark_rules` on its mean-shape rest mesh.
    """
    if len(body_arrays["v_template"]) == SMPL_NUM_VERTICES:
        ids = {name: SMPL_MARKER_VERTEX_IDS[name] for name in MOCAP_MARKER_NAMES}
        return ids | {"head_top": SMPL_LEAF_VERTEX_IDS[0]}
    rest = np.asarray(body_arrays["v_template"], np.float64)
    rest_joints = np.asarray(body_arrays["J_regressor"], np.float64) @ rest
    rules = {name: rule for name, rule in landmark_rules().items() if name in MOCAP_MARKER_NAMES}
    return place_landmarks(rest, body_arrays["f"], rest_joints, rules | {"head_top": HEAD_TOP_LANDMARK})


def _leaf_vertex_ids(body_arrays: Mapping[str, np.ndarray], head_top: int) -> tuple[int, ...]:
    if len(body_arrays["v_template"]) == SMPL_NUM_VERTICES:
        return SMPL_LEAF_VERTEX_IDS
    if "extra_vertex_names" not in body_arrays:
        raise ValueError(
            "a non-SMPL mesh needs 'extra_vertex_names'/'extra_vertex_ids' (finger tips, toes) for HybrIK's leaf "
            "joints; use the free model (body_model_arrays('smpl')) or a licensed SMPL file"
        )
    extra = dict(zip(body_arrays["extra_vertex_names"].tolist(), body_arrays["extra_vertex_ids"].tolist()))
    return (head_top, *(int(extra[name]) for name in _FREE_LEAF_VERTEX_NAMES))


def greedy_marker_vertex_ids(
    body_arrays: Mapping[str, np.ndarray],
    base_vertex_ids: list[int],
    num_markers: int = NUM_GREEDY_MARKERS,
    num_meshes: int = 512,
    num_candidates: int = 500,
    seed: int = 0,
) -> tuple[list[int], list[float]]:
    """The greedy markers of a body model: vertex ids and the training error curve (metres).

    Posed meshes from `sample_posed_meshes`; the mesh to reconstruct and the candidates are
    `num_candidates` vertices spread over the rest mesh by `farthest_point_sampling` (a uniform
    coarse mesh, so the selection costs well under a second); the base keypoints are the 24 joints
    and the vertices `base_vertex_ids` (the mocap markers). See `greedy_marker_selection`.
    """
    coarse = farthest_point_sampling(np.asarray(body_arrays["v_template"], np.float64), num_candidates)
    vertices, joints = sample_posed_meshes(body_arrays, num_meshes, seed, vertex_ids=[*coarse, *base_vertex_ids])
    base = torch.cat([joints, vertices[:, num_candidates:]], 1)
    chosen, errors = greedy_marker_selection(vertices[:, :num_candidates], base, num_markers)
    return [int(coarse[i]) for i in chosen], errors


def _build_template(
    kind: str, arrays: Mapping[str, np.ndarray], mocap: Mapping[str, int], greedy: Sequence[int]
) -> KeypointTemplate:
    joint_names, leaves = tuple(SMPL_24.joint_names), ()
    if kind == "code96":
        joint_names, leaves = joint_names + LEAF_JOINT_NAMES, _leaf_vertex_ids(arrays, mocap["head_top"])
    marker_names: tuple[str, ...] = ()
    marker_ids: tuple[int, ...] = ()
    if kind != "joints24":
        marker_names = MOCAP_MARKER_NAMES + tuple(f"G{k + 1:02d}" for k in range(len(greedy)))
        marker_ids = tuple(mocap[n] for n in MOCAP_MARKER_NAMES) + tuple(greedy)
    return KeypointTemplate(kind, joint_names, tuple(leaves), marker_names, marker_ids, len(arrays["v_template"]))


def _markers(arrays: Mapping[str, np.ndarray]) -> tuple[dict[str, int], list[int]]:
    mocap = mocap_marker_vertex_ids(arrays)
    greedy, _ = greedy_marker_vertex_ids(arrays, [mocap[n] for n in MOCAP_MARKER_NAMES])
    return mocap, greedy


@functools.lru_cache(maxsize=None)
def _free_model_template(kind: str) -> KeypointTemplate:
    return _build_template(kind, *_free_model_markers())


@functools.lru_cache(maxsize=1)
def _free_model_markers() -> tuple[Mapping[str, np.ndarray], dict[str, int], list[int]]:
    arrays = body_model_arrays("smpl")
    return (arrays, *_markers(arrays))


def keypoint_template(kind: str = "paper91", body_arrays: Mapping[str, np.ndarray] | None = None) -> KeypointTemplate:
    """The keypoint template of a body model (default: the shipped free model).

    ``"paper91"``: SMPL's 24 joints + 47 mocap markers + 20 greedy markers (Sec. III-B, Fig. 4);
    ``"code96"``: 29 joints (with HybrIK's leaves) + the same 67 markers, the authors' code;
    ``"joints24"``: the 24 joints alone (the baseline without the template, Table V).
    `body_arrays` as from `hmrlab.body.body_model_arrays` (free model or licensed SMPL); the free
    model's template is computed once per process (a few seconds: `greedy_marker_vertex_ids`),
    others on every call.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
    if body_arrays is None:
        return _free_model_template(kind)
    return _build_template(kind, body_arrays, *_markers(body_arrays))


def keypoints_from_mesh(vertices: torch.Tensor, joints: torch.Tensor, template: KeypointTemplate) -> torch.Tensor:
    """The template's keypoints (B, K, 3) of posed bodies: joints first, then markers, in metres.

    vertices: (B, V, 3) with V = ``template.num_vertices``; joints: (B, 24, 3) from the body model,
    or (B, 29, 3) already holding HybrIK's leaves. A 29-joint template given 24 joints takes the
    leaves from the mesh (HybrIK defines them as vertices); a 24-joint template keeps the first 24.
    """
    check_points(vertices, "vertices", dims=("B", "V"))
    check_points(joints, "joints", dims=("B", "J"))
    if vertices.shape[-2] != template.num_vertices:
        raise ValueError(
            f"vertices must have shape (B, {template.num_vertices}, 3) for this template; got "
            f"{format_shape(tuple(vertices.shape))}. Build the template from the same body model."
        )
    if joints.shape[-2] not in (24, 29) or vertices.shape[0] != joints.shape[0]:
        raise ValueError(
            f"joints must have shape ({vertices.shape[0]}, 24, 3) or ({vertices.shape[0]}, 29, 3); got "
            f"{format_shape(tuple(joints.shape))}"
        )
    if template.num_joints == 29 and joints.shape[-2] == 24:
        joints = torch.cat([joints, vertices[:, list(template.leaf_vertex_ids)]], 1)
    return torch.cat([joints[:, : template.num_joints], vertices[:, list(template.marker_vertex_ids)]], 1)


__all__ = [
    "AUTHORS_EXTRA_MARKER_NAMES", "HEAD_TOP_LANDMARK", "KINDS", "KeypointTemplate", "LANDMARKS", "LEAF_JOINT_NAMES",
    "LEAF_JOINT_PARENTS", "Landmark", "MOCAP_MARKER_NAMES", "NUM_GREEDY_MARKERS", "SMPL_LEAF_VERTEX_IDS",
    "SMPL_MARKER_VERTEX_IDS", "farthest_point_sampling", "greedy_marker_selection", "greedy_marker_vertex_ids",
    "keypoint_template", "keypoints_from_mesh", "landmark_rules", "mocap_marker_vertex_ids", "place_landmarks",
    "ray_exit_vertices", "sample_posed_meshes", "vertex_regression_error",
]
