"""Synthetic whole-body images: SMPL-X-format bodies with posed hands, jaw and expression, rendered offscreen.

A small, fully labelled set for checking that a whole-body regressor (`hmrlab.models.bidrn`) learns,
in seconds on a CPU. Each sample is one person of the free SMPL-X-format model
(`hmrlab.body.load_body_model("smplx")`) with

* shape ``betas`` ~ N(0, I) (10) and expression ``expression`` ~ N(0, I) (10; the free model's
  expression directions are scaled to unit variance);
* a body pose from `hmrlab.data.poses.sample_poses` (SMPL's first 22 joints are SMPL-X's body
  joints) with a random heading;
* hand poses ``hands_mean + sum_k c_k sqrt(var_k) component_k`` with ``c_k ~ N(0, hand_spread^2)``,
  a draw from the model's own hand-pose PCA (absolute axis-angles: the model runs with
  ``flat_hand_mean=True``), and a jaw rotation about the left-right axis, U(0, 0.3) rad;
* placed in front of a camera at the origin looking along +z (the **camera frame is the world
  frame**: x right, y down, metres), so ``global_orient`` and ``transl`` are what a network
  regresses from the picture; the pelvis lies 2.6-3.4 m away, within 0.15 m of the optical axis.

Images are rendered with `hmrlab.data.render.render_clip` (several bodies share one offscreen
window and one light and body colour) on random procedural backgrounds. Boxes ``[x1, y1, x2, y2]``
(pixels, pixel centres at integers) come from the projected joints, as whole-body datasets make them:
each hand's from its wrist, 15 finger joints and 5 finger tips, the face's from the head, jaw, eye,
nose/ear joints and the 51 face landmarks, each made square about its centre and enlarged by
``part_scale``; the body's from all joints, widened to the body crop's aspect ratio (height:width
4:3, Hand4Whole's 256x192) and enlarged by 1.2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from hmrlab.body import body_model_arrays
from hmrlab.body.wholebody import (
    load_wholebody_model,
    part_joint_indices,
    pose_wholebody,
)
from hmrlab.data.cameras import Camera
from hmrlab.data.poses import sample_poses
from hmrlab.data.render import (
    random_background,
    random_body_color,
    random_lighting,
    render_clip,
)
from hmrlab.geometry import axis_angle_to_matrix, matrix_to_axis_angle

__all__ = ["WholeBodySamples", "make_wholebody_samples", "joint_box", "PART_NAMES", "BODY_ASPECT"]

PART_NAMES = ("body", "left_hand", "right_hand", "face")
BODY_ASPECT = 256 / 192  # height / width of Hand4Whole's body crop
_BODY_SCALE = 1.2
_RENDER_CLIP = 8  # bodies per offscreen window (one light and colour each)


def joint_box(points: Tensor, scale: float, aspect: float = 1.0) -> Tensor:
    """Box (..., 4) ``[x1, y1, x2, y2]`` around 2D points (..., J, 2) pixels: the tight box, widened
    or heightened about its centre to ``height / width = aspect``, then enlarged by ``scale``."""
    low, high = points.amin(-2), points.amax(-2)
    centre, size = (low + high) / 2, (high - low).clamp(min=1.0)
    width = torch.maximum(size[..., 0], size[..., 1] / aspect) * scale
    half = torch.stack([width, width * aspect], -1) / 2
    return torch.cat([centre - half, centre + half], -1)


FOCAL_PER_HEIGHT = 1.4
"""Focal length in pixels per image row: a standing adult fills about 80 % of the height at 3 m."""

@dataclass(eq=False)  # eq would compare tensors, whose truth value is ambiguous
class WholeBodySamples(Dataset):
    """Rendered whole-body samples with their SMPL-X parameters, joints and part boxes (S samples).

    images (S, 3, H, W) float32 in [0, 1]; global_orient (S, 3), body_pose (S, 21, 3),
    left_hand_pose / right_hand_pose (S, 15, 3), jaw_pose (S, 3): axis-angle, radians, camera frame;
    betas (S, 10); expression (S, 10); transl (S, 3) metres; joints (S, 127, 3) metres, camera frame;
    joints_2d (S, 127, 2) pixels; boxes (S, 4, 4): ``PART_NAMES`` order, ``[x1, y1, x2, y2]`` pixels;
    focal (2,) and center (2,) pixels, the camera shared by all samples (R = I, t = 0).
    Indexing gives one sample as a dict of these (camera included), so a DataLoader batches it.
    """

    images: Tensor
    global_orient: Tensor
    body_pose: Tensor
    left_hand_pose: Tensor
    right_hand_pose: Tensor
    jaw_pose: Tensor
    betas: Tensor
    expression: Tensor
    transl: Tensor
    joints: Tensor
    joints_2d: Tensor
    boxes: Tensor
    focal: Tensor
    center: Tensor

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        shared = ("focal", "center")
        return {f.name: getattr(self, f.name) if f.name in shared else getattr(self, f.name)[index] for f in fields(self)}

    def camera(self) -> Camera:
        """The samples' `Camera` (identity pose), for projecting or rendering more."""
        height, width = self.images.shape[2:]
        return Camera(np.eye(3), np.zeros(3), self.focal.numpy(), self.center.numpy(), (width, height))


def _sample_params(count: int, generator: torch.Generator, arrays: dict, hand_spread: float) -> dict[str, Tensor]:
    """SMPL-X parameters for `count` bodies (module docstring), before placing them in front of the camera."""
    poses = sample_poses(count, generator, random_yaw=True)  # (S, 24, 3), y-up
    # A half turn about x takes the model's y-up, facing-+z body into the camera frame (y down),
    # facing the camera at the origin.
    flip = axis_angle_to_matrix(torch.tensor([math.pi, 0.0, 0.0]))
    global_orient = matrix_to_axis_angle(flip @ axis_angle_to_matrix(poses[:, 0]))
    std = hand_spread * torch.as_tensor(arrays["hands_variances"], dtype=torch.float32).sqrt()

    def hand(side: str) -> Tensor:
        mean = torch.as_tensor(arrays[f"hands_mean{side}"], dtype=torch.float32)
        components = torch.as_tensor(arrays[f"hands_components{side}"], dtype=torch.float32)  # (45 comps, 45)
        return (mean + (torch.randn(count, len(std), generator=generator) * std) @ components).unflatten(-1, (15, 3))

    jaw = torch.zeros(count, 3)
    jaw[:, 0] = 0.3 * torch.rand(count, generator=generator)
    return {
        "global_orient": global_orient,
        "body_pose": poses[:, 1:22],
        "left_hand_pose": hand("l"),
        "right_hand_pose": hand("r"),
        "jaw_pose": jaw,
        "betas": torch.randn(count, 10, generator=generator),
        "expression": torch.randn(count, 10, generator=generator),
    }


def make_wholebody_samples(
    count: int,
    image_size: tuple[int, int] = (128, 96),
    seed: int = 0,
    *,
    hand_spread: float = 1.0,
    part_scale: float = 1.5,
) -> WholeBodySamples:
    """Render `count` whole-body samples at `image_size` = (height, width) pixels (module docstring).

    The focal length is 1.4 x the image height, so a standing adult fills about 80 % of the picture's
    height at 3 m (1.4 x 1.7 m / 3 m). Same `seed`, same samples. Rendering dominates the time: 16
    samples at 128 x 96 took 10 s on a shared, busy 2-core machine.
    """
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive int (the number of samples); got {count!r}")
    height, width = image_size
    if not (isinstance(height, int) and isinstance(width, int) and height >= 16 and width >= 16):
        raise ValueError(f"image_size must be (height, width) in whole pixels, both >= 16; got {image_size!r}")
    if not (hand_spread >= 0 and part_scale > 0):
        raise ValueError(f"need hand_spread >= 0 and part_scale > 0; got {hand_spread}, {part_scale}")
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = load_wholebody_model()
    arrays = body_model_arrays("smplx")
    params = _sample_params(count, generator, arrays, hand_spread)
    pelvis = torch.stack([
        0.3 * torch.rand(count, generator=generator) - 0.15,
        0.3 * torch.rand(count, generator=generator) - 0.15,
        2.6 + 0.8 * torch.rand(count, generator=generator),
    ], 1)
    with torch.no_grad():
        # smplx turns the body about its rest pelvis, then adds transl: the pelvis ends at rest + transl.
        rest = {**params, "transl": torch.zeros(count, 3)}
        rest.update({name: torch.zeros_like(params[name]) for name in ("global_orient", "body_pose")})
        params["transl"] = pelvis - pose_wholebody(model, rest)[1][:, 0]
        vertices, joints = pose_wholebody(model, params)
    camera = Camera(np.eye(3), np.zeros(3), (FOCAL_PER_HEIGHT * height, FOCAL_PER_HEIGHT * height), ((width - 1) / 2, (height - 1) / 2), (width, height))
    images = _render(vertices, model.faces, camera, rng)
    joints_2d = camera.project(joints.double()).float()
    parts = part_joint_indices()
    boxes = torch.stack([
        joint_box(joints_2d, _BODY_SCALE, BODY_ASPECT),
        *(joint_box(joints_2d[:, parts[name]], part_scale) for name in PART_NAMES[1:]),
    ], 1)
    return WholeBodySamples(
        images=images, **params, joints=joints, joints_2d=joints_2d, boxes=boxes,
        focal=torch.as_tensor(camera.focal, dtype=torch.float32), center=torch.as_tensor(camera.center, dtype=torch.float32),
    )


def _render(vertices: Tensor, faces: np.ndarray, camera: Camera, rng: np.random.Generator) -> Tensor:
    """(S, 3, H, W) float32 images in [0, 1]: clips of `_RENDER_CLIP` bodies, each clip one light and
    colour, each image its own background pasted through the render's mask."""
    width, height = camera.image_size
    images = []
    for start in range(0, len(vertices), _RENDER_CLIP):
        clip = vertices[start : start + _RENDER_CLIP].numpy()
        rgb, masks = render_clip(clip, faces, camera, light=random_lighting(rng), color=random_body_color(rng))
        for frame, mask in zip(rgb, masks):
            background = random_background((height, width), rng)
            images.append(np.where(mask[..., None], frame, background))
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
