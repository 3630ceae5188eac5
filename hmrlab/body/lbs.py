"""Linear blend skinning for SMPL-family body models, one function per step of the maths.

A body is a template mesh ``v_template`` (N, 3) deformed in four steps (SMPL, Loper et al., SIGGRAPH
Asia 2015; equation numbers refer to that paper):

1. shape: ``v_shaped = v_template + blend_shapes(betas, shapedirs)`` (Eq. 8);
2. joints: ``rest_joints = regress_joints(J_regressor, v_shaped)`` (Eq. 10);
3. pose correctives: ``v_posed = v_shaped + blend_shapes(pose_feature(R), posedirs)`` (Eq. 9);
4. skinning: every joint's rigid motion ``forward_kinematics`` (Eq. 2-4), blended per vertex with
   the skinning ``weights`` by ``skin`` (Eq. 7).

Conventions: rotation matrices act on column vectors (``x' = R x``); joint 0 is the root and
``parents[j] < j`` (a parent before its children); lengths are in metres. Every function takes
torch tensors in float32 or float64 and is differentiable. The results equal smplx's ``lbs``
(tested to float precision); this file is written from the paper, not from smplx's code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from hmrlab.geometry import axis_angle_to_matrix
from hmrlab.validation import check_parents, format_shape


def blend_shapes(coefficients: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Per-vertex offsets ``sum_k coefficients[b, k] * directions[n, :, k]``: (B, K), (N, 3, K) -> (B, N, 3).

    With ``betas`` and ``shapedirs`` these are SMPL's shape blend shapes (Eq. 8); with
    `pose_feature` and ``posedirs`` the pose-corrective blend shapes (Eq. 9).
    """
    return torch.einsum("bk,nck->bnc", coefficients, directions)


def pose_feature(rotmats: torch.Tensor) -> torch.Tensor:
    """Coefficients of the pose blend shapes: ``R_j - I`` for every non-root joint, flattened.

    (B, J, 3, 3) -> (B, (J - 1) * 9), 207 values for SMPL's 24 joints. Subtracting the identity
    makes the rest pose (all ``R_j = I``) give zero pose correctives (Eq. 9); the root is left out
    because turning the whole body does not deform it.
    """
    eye = torch.eye(3, dtype=rotmats.dtype, device=rotmats.device)
    return (rotmats[:, 1:] - eye).flatten(1)


def regress_joints(J_regressor: torch.Tensor, vertices: torch.Tensor) -> torch.Tensor:
    """Joint positions as fixed weighted averages of the vertices (Eq. 10): (J, N), (B, N, 3) -> (B, J, 3)."""
    return torch.einsum("jn,bnc->bjc", J_regressor, vertices)


def rigid_transform(rotation: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    """4x4 homogeneous matrix ``[[R, t], [0, 1]]``: (..., 3, 3), (..., 3) -> (..., 4, 4)."""
    top = torch.cat([rotation, translation[..., None]], -1)
    bottom = torch.zeros_like(top[..., :1, :])
    bottom[..., 0, 3] = 1
    return torch.cat([top, bottom], -2)


def forward_kinematics(
    rotmats: torch.Tensor, rest_joints: torch.Tensor, parents: Sequence[int] | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pose a kinematic tree: (B, J, 3, 3) local rotations, (B, J, 3) rest joints, (J,) parents.

    Joint j rotates by ``rotmats[:, j]`` about its own rest position, relative to its parent; its
    world transform is the parent's composed with ``[R_j | rest_j - rest_parent]`` (Eq. 3 of SMPL).
    Returns ``posed_joints`` (B, J, 3) and ``transforms`` (B, J, 4, 4): the rigid motion taking a
    rest-pose point attached to joint j to its posed position, i.e. the world transform with the
    rest pose's one removed (``G_j [I | -rest_j]``, Eq. 2), which is what `skin` blends.
    """
    parents = check_parents(parents, rotmats.shape[1])
    offsets = rest_joints.clone()
    offsets[:, 1:] -= rest_joints[:, parents[1:]]
    local = rigid_transform(rotmats, offsets)
    world: list[torch.Tensor] = []
    for joint, parent in enumerate(parents):
        world.append(local[:, joint] if parent < 0 else world[parent] @ local[:, joint])
    world_transforms = torch.stack(world, 1)
    posed_joints = world_transforms[..., :3, 3]
    rotations = world_transforms[..., :3, :3]
    translations = posed_joints - (rotations @ rest_joints[..., None])[..., 0]
    return posed_joints, rigid_transform(rotations, translations)


def skin(vertices: torch.Tensor, weights: torch.Tensor, transforms: torch.Tensor) -> torch.Tensor:
    """Linear blend skinning (Eq. 7): each vertex moves by the weighted sum of its joints' transforms.

    (B, N, 3) rest-pose vertices, (N, J) weights (rows sum to 1), (B, J, 4, 4) transforms from
    `forward_kinematics` -> (B, N, 3) posed vertices.
    """
    # (N, J) @ (B, J, 16) is one matrix product; the equivalent einsum is several times slower on CPU.
    blended = (weights @ transforms.flatten(2)).unflatten(-1, (4, 4))
    return (blended[..., :3, :3] @ vertices[..., None])[..., 0] + blended[..., :3, 3]


def linear_blend_skinning(
    betas: torch.Tensor,
    pose: torch.Tensor,
    v_template: torch.Tensor,
    shapedirs: torch.Tensor,
    posedirs: torch.Tensor,
    J_regressor: torch.Tensor,
    parents: Sequence[int] | torch.Tensor,
    weights: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The SMPL body function M(betas, pose) (Eq. 5-10): posed vertices and joints.

    Args: ``betas`` (B, K); ``pose`` (B, J, 3) axis-angle or (B, J, 3, 3) rotation matrices,
    joint 0 the global orientation; ``v_template`` (N, 3); ``shapedirs`` (N, 3, K); ``posedirs``
    (N, 3, (J - 1) * 9); ``J_regressor`` (J, N); ``parents`` (J,); ``weights`` (N, J).
    Returns ``vertices`` (B, N, 3) and ``joints`` (B, J, 3), in the model's units (metres).
    """
    rotmats = pose if pose.dim() == 4 else axis_angle_to_matrix(pose)
    v_shaped = v_template + blend_shapes(betas, shapedirs)
    rest_joints = regress_joints(J_regressor, v_shaped)
    v_posed = v_shaped + blend_shapes(pose_feature(rotmats), posedirs)
    joints, transforms = forward_kinematics(rotmats, rest_joints, parents)
    return skin(v_posed, weights, transforms), joints


def check_body_params(
    *,
    num_betas: int,
    num_joints: int,
    betas: torch.Tensor | None = None,
    body_pose: torch.Tensor | None = None,
    global_orient: torch.Tensor | None = None,
    transl: torch.Tensor | None = None,
) -> int:
    """Check body-model inputs against a model with `num_betas` shapes and `num_joints` joints.

    Accepted shapes: ``betas`` (B, num_betas); ``global_orient`` (B, 3) axis-angle or (B, 3, 3);
    ``body_pose`` (B, (J - 1) * 3), (B, J - 1, 3) or (B, J - 1, 3, 3) for the J - 1 non-root joints;
    ``transl`` (B, 3) in metres. Batch sizes must agree, or be 1 (broadcast). Returns B; raises
    `ValueError` naming the argument, the shapes it accepts and the shape it got.
    """
    expected = {
        "betas": ((num_betas,),),
        "global_orient": ((3,), (3, 3)),
        "body_pose": (((num_joints - 1) * 3,), (num_joints - 1, 3), (num_joints - 1, 3, 3)),
        "transl": ((3,),),
    }
    given = {"betas": betas, "body_pose": body_pose, "global_orient": global_orient, "transl": transl}
    batch_sizes = {}
    for name, value in given.items():
        if value is None:
            continue
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor; got {type(value).__name__}")
        if value.dim() < 2 or tuple(value.shape[1:]) not in expected[name]:
            accepted = " or ".join(format_shape(("B", *shape)) for shape in expected[name])
            raise ValueError(
                f"{name} must have shape {accepted} for this model ({num_betas} betas, {num_joints} "
                f"joints); got {format_shape(tuple(value.shape))}"
            )
        batch_sizes[name] = value.shape[0]
    sizes = set(batch_sizes.values()) - {1}
    if len(sizes) > 1:
        raise ValueError(f"batch sizes must agree or be 1; got {batch_sizes}")
    return sizes.pop() if sizes else 1


def _as_rotmats(pose: torch.Tensor | None, batch: int, num_joints: int, like: torch.Tensor) -> torch.Tensor:
    """A checked pose (or None for the rest pose) as (batch, num_joints, 3, 3) rotation matrices."""
    if pose is None:
        eye = torch.eye(3, dtype=like.dtype, device=like.device)
        return eye.expand(batch, num_joints, 3, 3)
    if pose[0].numel() == num_joints * 9:
        rotmats = pose.reshape(pose.shape[0], num_joints, 3, 3)
    else:
        rotmats = axis_angle_to_matrix(pose.reshape(pose.shape[0], num_joints, 3))
    return rotmats.expand(batch, -1, -1, -1)


class BodyModel(nn.Module):
    """A SMPL-layout body model (SMPL, SMPL-X or the free model) running `linear_blend_skinning`.

    ``arrays`` holds the model file's arrays (see `hmrlab.body.body_model_arrays`): ``v_template``
    (N, 3), ``shapedirs`` (N, 3, >= num_betas), ``posedirs`` (N, 3, (J - 1) * 9), ``J_regressor``
    (J, N), ``weights`` (N, J), ``kintree_table`` (2, J) and ``f`` (F, 3). ``body_pose`` covers
    every non-root joint in the model's order (23 for SMPL; 54 for SMPL-X: body, jaw, eyes, then
    fingers); SMPL-X's expressions and hand PCA are left to smplx.
    """

    def __init__(self, arrays: Mapping[str, np.ndarray], num_betas: int = 10, dtype: torch.dtype = torch.float32):
        super().__init__()
        shapedirs = np.asarray(arrays["shapedirs"])
        if shapedirs.ndim != 3 or shapedirs.shape[2] < num_betas:
            raise ValueError(
                f"shapedirs must have shape (N, 3, K) with K >= num_betas={num_betas}; "
                f"got {format_shape(shapedirs.shape)}. Pass a smaller num_betas."
            )

        def tensor(array: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.asarray(array, dtype=np.float64), dtype=dtype)

        parents = np.asarray(arrays["kintree_table"][0], dtype=np.int64)
        parents[0] = -1  # stored as an unsigned -1 (4294967295) in the model files
        self.register_buffer("v_template", tensor(arrays["v_template"]))
        self.register_buffer("shapedirs", tensor(shapedirs[:, :, :num_betas]))
        self.register_buffer("posedirs", tensor(arrays["posedirs"]))
        self.register_buffer("J_regressor", tensor(arrays["J_regressor"]))
        self.register_buffer("weights", tensor(arrays["weights"]))
        self.register_buffer("parents", torch.as_tensor(check_parents(parents, len(parents))))
        self.register_buffer("faces", torch.as_tensor(np.asarray(arrays["f"], dtype=np.int64)))
        # Eq. 10 applied to Eq. 8 once: rest joints are linear in betas, so the regressor can act on the
        # template and the shape directions ahead of time (24 x 3 x K numbers instead of the mesh).
        self.register_buffer("J_template", regress_joints(self.J_regressor, self.v_template[None])[0], persistent=False)
        self.register_buffer("J_shapedirs", torch.einsum("jn,nck->jck", self.J_regressor, self.shapedirs),
                             persistent=False)

    def rest_joints(self, betas: torch.Tensor) -> torch.Tensor:
        """The rest-pose joints (B, J, 3), metres, of shapes (B, num_betas): ``J(β)`` of Eq. 10,
        equal to `regress_joints` of the shaped template without building the mesh."""
        return self.J_template + blend_shapes(betas, self.J_shapedirs)

    def posed_points(
        self, betas: torch.Tensor, rotmats: torch.Tensor, vertex_ids: Sequence[int] | torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`linear_blend_skinning` restricted to some vertices: betas (B, num_betas), rotmats (B, J, 3, 3)
        -> the posed vertices ``vertex_ids`` (B, M, 3) and the joints (B, J, 3), metres, equal to those
        entries of the full mesh. Training needs joints and a few markers, not 13,718 vertices."""
        ids = torch.as_tensor(vertex_ids, dtype=torch.long, device=self.v_template.device)
        v_shaped = self.v_template[ids] + blend_shapes(betas, self.shapedirs[ids])
        v_posed = v_shaped + blend_shapes(pose_feature(rotmats), self.posedirs[ids])
        joints, transforms = forward_kinematics(rotmats, self.rest_joints(betas), self.parents)
        return skin(v_posed, self.weights[ids], transforms), joints

    @property
    def num_betas(self) -> int:
        return self.shapedirs.shape[2]

    @property
    def num_joints(self) -> int:
        return self.J_regressor.shape[0]

    def forward(
        self,
        betas: torch.Tensor | None = None,
        body_pose: torch.Tensor | None = None,
        global_orient: torch.Tensor | None = None,
        transl: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Vertices (B, N, 3) and joints (B, J, 3) in metres; shapes as in `check_body_params`.

        Missing arguments mean the mean shape, the rest pose and no translation.
        """
        batch = check_body_params(
            num_betas=self.num_betas, num_joints=self.num_joints,
            betas=betas, body_pose=body_pose, global_orient=global_orient, transl=transl,
        )
        if betas is None:
            betas = self.shapedirs.new_zeros(batch, self.num_betas)
        pose = torch.cat(
            [
                _as_rotmats(global_orient, batch, 1, self.v_template),
                _as_rotmats(body_pose, batch, self.num_joints - 1, self.v_template),
            ],
            1,
        )
        vertices, joints = linear_blend_skinning(
            betas.expand(batch, -1), pose, self.v_template, self.shapedirs, self.posedirs,
            self.J_regressor, self.parents, self.weights,
        )
        if transl is not None:
            vertices = vertices + transl[:, None]
            joints = joints + transl[:, None]
        return vertices, joints
