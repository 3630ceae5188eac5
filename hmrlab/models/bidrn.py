"""BiDRN (Li et al., "Binarized 3D Whole-body Human Mesh Recovery"): Hand4Whole with binarized ResNets.

BiDRN keeps Hand4Whole's pipeline (Moon et al., CVPR 2022 workshops; the appendix's Sec. B) and
replaces the blocks of its three ResNets by binary blocks that keep full-precision residuals
(`hmrlab.nn.binary`). From one image (B, 3, H, W):

1. **body**: the body box is cropped with RoIAlign (`hmrlab.nn.roi_align`) to 256x192 and run through
   a ResNet-50 (``binary_resnet50``) to a stride-32 map ``F_b``;
2. **positions** (`PositionNet`): a 1x1 convolution gives a 3D heatmap per body joint (depth 8 over
   the map); its soft-argmax is the joint's position on the map;
3. **boxes** (`BoxNet`): three transposed convolutions upsample ``F_b`` and the joint heatmaps 8x;
   soft-argmax heatmaps give the centres of the left hand, right hand and face, features sampled
   there give their sizes;
4. **hands**: both hands are cropped from the *image* with RoIAlign to 256x256, the left one flipped
   to look like a right hand, and run through one shared ResNet-50; a hand `PositionNet` and
   `RotationNet` give 15 finger rotations per hand (the left hand's mirrored back);
5. **face**: the face is cropped to 192x192 and run through a ResNet-18 (``binary_resnet18``);
   global average pooling and two linear layers give the jaw rotation and the 10 expression
   coefficients (`FaceRegressor`);
6. **body parameters** (`RotationNet`): features sampled at the body joints, with their positions,
   give the root and 21 body rotations; the pooled map gives the 10 shape coefficients and the
   camera translation (`camera_translation`);
7. every rotation is predicted in the 6D form (`hmrlab.geometry.rot6d_to_matrix`) and all the
   parameters go through the free SMPL-X-format model (`hmrlab.body.wholebody.pose_wholebody`)
   to vertices (B, 13718, 3) and joints (B, 127, 3), projected to the image with the camera.

Choices the appendix leaves open, and what Hand4Whole's public release does instead:

* the body rotation net uses body-joint features only; Hand4Whole also samples the hand maps at
  the finger knuckles (MCP joints);
* the body crop is taken by RoIAlign from a body box (the whole image by default); Hand4Whole
  resizes the whole 512x384 input instead;
* ``aligned=True`` RoIAlign (pixel centres at integers); Hand4Whole uses ``aligned=False``;
* predicted part boxes are used as they are (square for hands and face); Hand4Whole enlarges its
  predicted boxes by 2 (hands) and 1.5 (face) because it is trained on tight boxes, while
  `hmrlab.data.synth_wholebody` boxes are already enlarged;
* the heads (position, rotation, box, face) are full precision in both the binary and the
  full-precision twin: the appendix binarizes the ResNet blocks (its Table 1) and nothing else.
* the camera translation is Hand4Whole's, ``t_z = k sigmoid(gamma)`` with
  ``k = sqrt(f_x f_y) * 2.5 m / sqrt(box area)``, using the real focal length and the body box
  (Hand4Whole: a virtual 5000-pixel focal length and the fixed crop), and ``t_x, t_y`` added to
  the ray through the box centre.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hmrlab.body.wholebody import (
    load_wholebody_model,
    part_joint_indices,
    pose_wholebody,
)
from hmrlab.geometry import axis_angle_to_matrix, matrix_to_axis_angle, rot6d_to_matrix
from hmrlab.nn.backbones import Backbone, resnet18, resnet50
from hmrlab.nn.binary import binary_resnet18, binary_resnet50
from hmrlab.nn.roi_align import roi_align
from hmrlab.nn.xnor import pack_binary_network
from hmrlab.validation import as_pair, format_shape

__all__ = [
    "BiDRN", "PositionNet", "RotationNet", "BoxNet", "FaceRegressor", "soft_argmax_3d", "soft_argmax_2d",
    "sample_joint_features", "camera_translation", "crop_boxes", "crop_to_image", "image_to_crop", "hand4whole",
    "bidrn_loss", "pack_bidrn", "PAPER_COMPLEXITY", "PAPER_PACKED_TIME_RATIO",
]

# Appendix Table 2 / Table 8: (params, OPs) as reported; OPs are MACs (binary MACs / 64 for BiDRN).
PAPER_COMPLEXITY = {"BiDRN": (17.22e6, 2.50e9), "Hand4Whole": (77.84e6, 16.85e9)}
# Appendix Table 8: BiDRN's estimated inference time as a fraction of its full-precision counterpart's.
PAPER_PACKED_TIME_RATIO = 0.221
CAMERA_DEPTH_SIZE = 2.5  # metres: Hand4Whole's camera_3d_size
NUM_BODY_JOINTS = 22  # pelvis to wrists: the SMPL-X body joints whose positions the body net finds


# ----------------------------------------------------------------------------------------------------
# Geometry of heatmaps, crops and the camera


def soft_argmax_3d(heatmaps: Tensor) -> Tensor:
    """Expected voxel of softmax-normalised heatmaps: (B, J, D, H, W) -> (B, J, 3) as (x, y, z) voxels."""
    batch, joints, depth, height, width = heatmaps.shape
    probabilities = heatmaps.flatten(2).softmax(-1).view(batch, joints, depth, height, width)
    axes = []
    for dims, size in (((2, 3), width), ((2, 4), height), ((3, 4), depth)):
        marginal = probabilities.sum(dims)  # (B, J, size)
        axes.append((marginal * torch.arange(size, dtype=heatmaps.dtype, device=heatmaps.device)).sum(-1))
    return torch.stack(axes, -1)


def soft_argmax_2d(heatmaps: Tensor) -> Tensor:
    """Expected pixel of softmax-normalised heatmaps: (B, J, H, W) -> (B, J, 2) as (x, y) pixels."""
    return soft_argmax_3d(heatmaps[:, :, None])[..., :2]


def sample_joint_features(features: Tensor, points: Tensor) -> Tensor:
    """Bilinear features at points: (B, C, H, W), (B, J, 2) (x, y) in map pixels -> (B, J, C)."""
    height, width = features.shape[2:]
    scale = points.new_tensor([max(width - 1, 1), max(height - 1, 1)])
    grid = (points / scale * 2 - 1)[:, :, None]  # (B, J, 1, 2) in [-1, 1], pixel centres at the ends
    return F.grid_sample(features, grid, align_corners=True)[..., 0].transpose(1, 2)


def crop_to_image(points: Tensor, boxes: Tensor, crop_size: tuple[int, int]) -> Tensor:
    """Crop pixels (B, J, 2) -> image pixels, for crops taken by ``roi_align(aligned=True)`` of
    boxes (B, 4) ``[x1, y1, x2, y2]`` at crop_size (height, width): ``x = x1 - 0.5 + (u + 0.5) w / W``."""
    height, width = crop_size
    scale = torch.stack([(boxes[:, 2] - boxes[:, 0]) / width, (boxes[:, 3] - boxes[:, 1]) / height], -1)[:, None]
    return boxes[:, None, :2] - 0.5 + (points + 0.5) * scale


def image_to_crop(points: Tensor, boxes: Tensor, crop_size: tuple[int, int]) -> Tensor:
    """The inverse of `crop_to_image`: image pixels (B, J, 2) -> crop pixels."""
    height, width = crop_size
    scale = torch.stack([(boxes[:, 2] - boxes[:, 0]) / width, (boxes[:, 3] - boxes[:, 1]) / height], -1)[:, None]
    return (points - boxes[:, None, :2] + 0.5) / scale - 0.5


def camera_translation(raw: Tensor, boxes: Tensor, focal: Tensor, center: Tensor) -> Tensor:
    """SMPL-X translation (B, 3) metres, camera frame, from raw outputs (B, 3) (t_x, t_y, gamma).

    Hand4Whole's depth ``t_z = k sigmoid(gamma)``, ``k = sqrt(f_x f_y) 2.5 / sqrt(w h)``: the depth at
    which a 2.5 m object fills the body box (B, 4) (w x h pixels), the upper bound of the depth
    range. ``t_x, t_y`` are offsets (metres) from the ray through the box centre. focal, center:
    (B, 2) pixels.
    """
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).clamp(min=1.0)
    depth = focal.prod(-1).sqrt() * CAMERA_DEPTH_SIZE / area.sqrt() * torch.sigmoid(raw[:, 2])
    box_centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    on_ray = (box_centre - center) / focal * depth[:, None]
    return torch.cat([on_ray + raw[:, :2], depth[:, None]], -1)


def crop_boxes(images: Tensor, boxes: Tensor, size: tuple[int, int]) -> Tensor:
    """One RoIAlign crop per image: images (B, C, H, W), boxes (B, 4) ``[x1, y1, x2, y2]`` pixels ->
    (B, C, *size), ``aligned=True`` (`crop_to_image` maps crop pixels back)."""
    index = torch.arange(len(boxes), dtype=boxes.dtype, device=boxes.device)[:, None]
    return roi_align(images, torch.cat([index, boxes], 1), size, aligned=True)


def _map_to_image(points: Tensor, boxes: Tensor, crop_size: tuple[int, int], map_size: tuple[int, int]) -> Tensor:
    """Pixels (B, J, 2) of a backbone map of size map_size of a crop of boxes (B, 4) -> image pixels."""
    stride = points.new_tensor([crop_size[1] / map_size[1], crop_size[0] / map_size[0]])
    return crop_to_image((points + 0.5) * stride - 0.5, boxes, crop_size)


def _rot6d_to_axis_angle(rot6d: Tensor) -> Tensor:
    """(..., J * 6) -> (..., J, 3) axis-angle, via rotation matrices."""
    return matrix_to_axis_angle(rot6d_to_matrix(rot6d.unflatten(-1, (-1, 6))))


def _mirror_pose(pose: Tensor) -> Tensor:
    """Axis-angles (..., 3) of the mirror image through the x = 0 plane: (x, -y, -z)."""
    return pose * pose.new_tensor([1.0, -1.0, -1.0])


# ----------------------------------------------------------------------------------------------------
# Heads (Hand4Whole's, full precision)


def _conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU())


class PositionNet(nn.Module):
    """Joint positions from a feature map: (B, C, h, w) -> heatmaps (B, J, D, h, w) and positions
    (B, J, 3) (x, y map pixels, z depth bins) by `soft_argmax_3d` of a 1x1 convolution's output."""

    def __init__(self, channels: int, joints: int, depth: int = 8):
        super().__init__()
        self.joints, self.depth = joints, depth
        self.conv = nn.Conv2d(channels, joints * depth, 1)

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        heatmaps = self.conv(features).unflatten(1, (self.joints, self.depth))
        positions = soft_argmax_3d(heatmaps)
        probabilities = heatmaps.flatten(2).softmax(-1).view_as(heatmaps)
        return probabilities, positions


class RotationNet(nn.Module):
    """Rotations from features at joints: a 1x1 conv to `hidden` channels, sampled at the J joint
    positions (B, J, 3), concatenated with them, then one linear layer to ``outputs`` 6D rotations."""

    def __init__(self, channels: int, joints: int, outputs: int, hidden: int = 512):
        super().__init__()
        self.conv = _conv_bn_relu(channels, hidden)
        self.out = nn.Linear(joints * (hidden + 3), outputs * 6)

    def forward(self, features: Tensor, positions: Tensor) -> Tensor:
        sampled = sample_joint_features(self.conv(features), positions[..., :2])
        return self.out(torch.cat([sampled, positions], -1).flatten(1))


class BoxNet(nn.Module):
    """Part boxes from the body map and joint heatmaps: centres by soft-argmax on an 8x upsampled map
    (3 transposed convolutions), sizes by an MLP on the features at each centre.

    Input (B, C, h, w) and heatmaps (B, J, D, h, w); output centres (B, 3, 2) and sizes (B, 3, 2),
    in map pixels of the input map (left hand, right hand, face).
    """

    def __init__(self, channels: int, joints: int, depth: int = 8, hidden: int = 256):
        super().__init__()
        layers, width = [], channels + joints * depth
        for _ in range(3):
            layers += [nn.ConvTranspose2d(width, hidden, 4, 2, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU()]
            width = hidden
        self.deconv = nn.Sequential(*layers)
        self.centre = nn.Conv2d(hidden, 3, 1)
        self.size = nn.ModuleList(
            nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 2)) for _ in range(3)
        )

    def forward(self, features: Tensor, heatmaps: Tensor) -> tuple[Tensor, Tensor]:
        upsampled = self.deconv(torch.cat([features, heatmaps.flatten(1, 2)], 1))
        centres = soft_argmax_2d(self.centre(upsampled))  # (B, 3, 2) upsampled pixels
        sampled = sample_joint_features(upsampled, centres.detach())
        sizes = torch.stack([F.softplus(mlp(sampled[:, i])) for i, mlp in enumerate(self.size)], 1)
        # 8x upsampled pixel u covers input-map pixel (u + 0.5) / 8 - 0.5; sizes scale by 1/8.
        return (centres + 0.5) / 8 - 0.5, sizes


class FaceRegressor(nn.Module):
    """Jaw rotation (6D) and expression from the pooled face map: (B, C, h, w) -> (B, 6), (B, n)."""

    def __init__(self, channels: int, expressions: int = 10):
        super().__init__()
        self.jaw = nn.Linear(channels, 6)
        self.expression = nn.Linear(channels, expressions)

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        pooled = features.mean((2, 3))
        return self.jaw(pooled), self.expression(pooled)


# ----------------------------------------------------------------------------------------------------
# The whole-body model


class BiDRN(nn.Module):
    """Whole-body mesh recovery: images (B, 3, H, W) -> SMPL-X parameters, vertices and joints.

    ``binary=True`` builds BiDRN (binarized ResNet-50 body and hand, ResNet-18 face backbones,
    `hmrlab.nn.binary`); ``binary=False`` its full-precision twin (same architecture, real weights and
    Hardtanh for sign). ``width`` is the backbones' base width (64 in the paper); the heads scale with
    it (512 and 256 hidden channels at 64). ``body_shape``, ``hand_shape``, ``face_shape`` are the crop
    sizes (height, width); ``surrogate`` and ``redistribution`` go to the backbones (Tables 3-4).
    ``backbones`` replaces the three backbones (dict with ``"body"``, ``"hand"``, ``"face"``
    `hmrlab.nn.backbones.Backbone` s), e.g. plain ResNets for Hand4Whole (`hand4whole`).
    The module docstring lists the pipeline and the choices made.
    """

    def __init__(
        self,
        binary: bool = True,
        *,
        width: int = 64,
        body_shape: int | tuple[int, int] = (256, 192),
        hand_shape: int | tuple[int, int] = (256, 256),
        face_shape: int | tuple[int, int] = (192, 192),
        depth: int = 8,
        surrogate: str | None = None,
        redistribution: str = "rprelu",
        backbones: dict[str, Backbone] | None = None,
    ):
        super().__init__()
        self.body_shape = as_pair(body_shape, "body_shape")
        self.hand_shape = as_pair(hand_shape, "hand_shape")
        self.face_shape = as_pair(face_shape, "face_shape")
        if backbones is None:
            options = dict(width=width, surrogate=surrogate, redistribution=redistribution)
            backbones = {
                "body": binary_resnet50(binary, **options),
                "hand": binary_resnet50(binary, **options),
                "face": binary_resnet18(binary, **options),
            }
        for name in ("body", "hand", "face"):
            backbone = backbones.get(name)
            if not isinstance(backbone, Backbone) or "layer4" not in backbone.feature_channels:
                raise ValueError(
                    f"backbones[{name!r}] must be a Backbone with a 'layer4' stage; got {type(backbone).__name__}"
                )
            # The classifier is not used: drop it so that it is not counted or trained.
            backbone.fc = nn.Identity()
        self.binary = binary
        self.body_backbone = backbones["body"]
        self.hand_backbone = backbones["hand"]
        self.face_backbone = backbones["face"]
        body_c = self.body_backbone.feature_channels["layer4"]
        hand_c = self.hand_backbone.feature_channels["layer4"]
        face_c = self.face_backbone.feature_channels["layer4"]
        hidden = 8 * width
        self.body_position = PositionNet(body_c, NUM_BODY_JOINTS, depth)
        self.body_rotation = RotationNet(body_c, NUM_BODY_JOINTS, NUM_BODY_JOINTS, hidden)
        self.shape_out = nn.Linear(body_c, 10)
        self.camera_out = nn.Linear(body_c, 3)
        self.box_net = BoxNet(body_c, NUM_BODY_JOINTS, depth, 4 * width)
        self.hand_joints = 1 + 15 + 5  # wrist, finger joints, tips: `part_joint_indices`
        self.hand_position = PositionNet(hand_c, self.hand_joints, depth)
        self.hand_rotation = RotationNet(hand_c, self.hand_joints, 15, hidden)
        self.face_regressor = FaceRegressor(face_c)
        self.body_model = load_wholebody_model()
        self.part_joints = part_joint_indices()
        self._init_outputs()

    def _init_outputs(self) -> None:
        """Start near the mean body: the regressors' last layers get tiny weights and biases at the
        identity rotation (6D ``(1, 0, 0, 1, 0, 0)``), zero shape and expression, and half the depth
        range. Without this a freshly built model predicts huge shapes whose projections swamp the
        loss (Hand4Whole starts from ImageNet-pretrained backbones, which this quick check lacks)."""
        identity6d = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0])
        layers = {
            self.body_rotation.out: identity6d.repeat(NUM_BODY_JOINTS),
            self.hand_rotation.out: identity6d.repeat(15),
            self.face_regressor.jaw: identity6d,
            self.face_regressor.expression: torch.zeros(self.face_regressor.expression.out_features),
            self.shape_out: torch.zeros(10),
            self.camera_out: torch.zeros(3),
        }
        with torch.no_grad():
            for layer, bias in layers.items():
                layer.weight.mul_(1e-3)
                layer.bias.copy_(bias)

    def forward(
        self,
        images: Tensor,
        body_boxes: Tensor | None = None,
        part_boxes: Tensor | None = None,
        focal: Tensor | None = None,
        center: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Whole-body estimate of images (B, 3, H, W) (values in [0, 1] or normalised, as trained).

        body_boxes: (B, 4) ``[x1, y1, x2, y2]`` pixels (None: the whole image); part_boxes: (B, 3, 4)
        left hand, right hand, face boxes to crop (None: the predicted ones; pass the true boxes to
        train the part branches on the right crops, as teacher forcing); focal, center: (B, 2) or (2,)
        pixels (None: Hand4Whole's 5000-pixel virtual focal length per 256 rows of body crop, scaled
        to the image, and the image centre).

        Returns a dict: ``global_orient`` (B, 3), ``body_pose`` (B, 21, 3), ``left_hand_pose`` /
        ``right_hand_pose`` (B, 15, 3), ``jaw_pose`` (B, 3) axis-angle; ``betas``, ``expression``
        (B, 10); ``transl`` (B, 3) metres; ``rotations`` (B, 53, 3, 3) (root, body, left hand, right
        hand, jaw); ``vertices`` (B, 13718, 3), ``joints`` (B, 127, 3) metres, camera frame;
        ``joints_2d`` (B, 127, 2) pixels; ``part_boxes`` (B, 3, 4) predicted boxes, pixels;
        ``body_positions`` (B, 22, 2) and ``hand_positions`` (B, 2, 21, 2) pixels (heatmap joints).
        """
        if not isinstance(images, Tensor) or images.ndim != 4 or images.shape[1] != 3:
            shape = format_shape(tuple(images.shape)) if isinstance(images, Tensor) else type(images).__name__
            raise ValueError(f"images must have shape (B, 3, H, W); got {shape}")
        batch, _, height, width = images.shape
        if body_boxes is None:
            body_boxes = images.new_tensor([0.0, 0.0, width, height]).expand(batch, 4)
        focal, center = self._camera(images, focal, center)

        body_map = self.body_backbone.forward_features(crop_boxes(images, body_boxes, self.body_shape), "layer4")["layer4"]
        body_size = tuple(body_map.shape[2:])
        heatmaps, body_positions = self.body_position(body_map)
        centres, sizes = self.box_net(body_map, heatmaps.detach())
        predicted_boxes = self._part_boxes(centres, sizes, body_boxes, body_size)
        used_boxes = predicted_boxes.detach() if part_boxes is None else part_boxes

        hand_pose, hand_positions = self._hands(images, used_boxes[:, 0], used_boxes[:, 1])
        jaw6d, expression = self.face_regressor(
            self.face_backbone.forward_features(crop_boxes(images, used_boxes[:, 2], self.face_shape), "layer4")["layer4"]
        )
        pooled = body_map.mean((2, 3))
        body6d = self.body_rotation(body_map, body_positions.detach())
        rotations = torch.cat([
            rot6d_to_matrix(body6d.unflatten(-1, (-1, 6))),
            axis_angle_to_matrix(hand_pose.flatten(1, 2)),
            rot6d_to_matrix(jaw6d)[:, None],
        ], 1)
        params = {
            "global_orient": matrix_to_axis_angle(rotations[:, 0]),
            "body_pose": matrix_to_axis_angle(rotations[:, 1:NUM_BODY_JOINTS]),
            "left_hand_pose": hand_pose[:, 0],
            "right_hand_pose": hand_pose[:, 1],
            "jaw_pose": matrix_to_axis_angle(rotations[:, -1]),
            "betas": self.shape_out(pooled),
            "expression": expression,
            "transl": camera_translation(self.camera_out(pooled), body_boxes, focal, center),
        }
        vertices, joints = pose_wholebody(self.body_model, params)
        joints_2d = joints[..., :2] / joints[..., 2:].clamp(min=1e-3) * focal[:, None] + center[:, None]
        return {
            **params, "rotations": rotations, "vertices": vertices, "joints": joints, "joints_2d": joints_2d,
            "part_boxes": predicted_boxes,
            "body_positions": _map_to_image(body_positions[..., :2], body_boxes, self.body_shape, body_size),
            "hand_positions": hand_positions,
        }

    def _camera(self, images: Tensor, focal: Tensor | None, center: Tensor | None) -> tuple[Tensor, Tensor]:
        batch, _, height, width = images.shape
        if focal is None:
            focal = images.new_full((2,), 5000.0 / self.body_shape[0] * height)
        if center is None:
            center = images.new_tensor([(width - 1) / 2, (height - 1) / 2])
        return focal.to(images.dtype).expand(batch, 2), center.to(images.dtype).expand(batch, 2)

    def _part_boxes(self, centres: Tensor, sizes: Tensor, body_boxes: Tensor, body_size) -> Tensor:
        """Square image boxes (B, 3, 4) from BoxNet's centres and sizes (B, 3, 2), body-map pixels."""
        centre = _map_to_image(centres, body_boxes, self.body_shape, body_size)
        body_width = (body_boxes[:, 2] - body_boxes[:, 0])[:, None]
        # Between 4 pixels and the body box's width: an untrained BoxNet can predict any size, and
        # RoIAlign's adaptive sampling grows with the box.
        side = torch.minimum(sizes.amax(-1) * body_width / body_size[1], body_width).clamp(min=4.0)
        half = torch.stack([side, side], -1) / 2
        return torch.cat([centre - half, centre + half], -1)

    def _hands(self, images: Tensor, left_boxes: Tensor, right_boxes: Tensor) -> tuple[Tensor, Tensor]:
        """Both hands through the shared hand branch: poses (B, 2, 15, 3) (left, right) and heatmap
        joint positions (B, 2, 21, 2) image pixels. The left crop is flipped to look like a right hand."""
        batch = len(images)
        left = crop_boxes(images, left_boxes, self.hand_shape).flip(-1)
        crops = torch.cat([left, crop_boxes(images, right_boxes, self.hand_shape)])
        hand_map = self.hand_backbone.forward_features(crops, "layer4")["layer4"]
        map_size = tuple(hand_map.shape[2:])
        _, positions = self.hand_position(hand_map)
        pose = _rot6d_to_axis_angle(self.hand_rotation(hand_map, positions.detach())).unflatten(0, (2, batch))
        pose = torch.stack([_mirror_pose(pose[0]), pose[1]], 1)
        xy = positions[..., :2].unflatten(0, (2, batch))
        left_xy = torch.stack([map_size[1] - 1 - xy[0, ..., 0], xy[0, ..., 1]], -1)  # undo the flip
        image_xy = torch.stack([
            _map_to_image(left_xy, left_boxes, self.hand_shape, map_size),
            _map_to_image(xy[1], right_boxes, self.hand_shape, map_size),
        ], 1)
        return pose, image_xy


def hand4whole(*, width: int = 64, **kwargs) -> BiDRN:
    """The full-precision Hand4Whole-style model: the same heads on torchvision-layout ResNet-50
    (body, hands) and ResNet-18 (face) from `hmrlab.nn.backbones`, for the Params/OPs comparison."""
    if width != 64:
        raise ValueError(f"hmrlab.nn.backbones ResNets have width 64 only; got width={width}")
    backbones = {"body": resnet50(), "hand": resnet50(), "face": resnet18()}
    return BiDRN(False, width=width, backbones=backbones, **kwargs)


def pack_bidrn(model: BiDRN) -> BiDRN:
    """A trained (or random) binary `BiDRN` for CPU inference: a copy in eval mode whose binarized
    backbone blocks run as packed XNOR-popcount units (`hmrlab.nn.xnor.pack_binary_network`: each
    binary convolution's input is binarized once while packing it, alpha, RPReLU, the residuals and
    BatchNorm are applied after the integer product, in the same kernel call). Its outputs equal
    ``model.eval()``'s to float rounding; the heads and stems stay full precision, as in the model.
    """
    if not isinstance(model, BiDRN) or not model.binary:
        raise ValueError(f"pack_bidrn needs a binary BiDRN (BiDRN(True)); got "
                         f"{type(model).__name__}{'' if not isinstance(model, BiDRN) else ' with binary=False'}")
    return pack_binary_network(model)


# ----------------------------------------------------------------------------------------------------
# Training loss


def _rotations(batch: dict[str, Tensor]) -> Tensor:
    """Ground-truth rotations (B, 53, 3, 3) in `BiDRN`'s order from a `WholeBodySamples` batch."""
    pose = torch.cat([
        batch["global_orient"][:, None], batch["body_pose"], batch["left_hand_pose"], batch["right_hand_pose"],
        batch["jaw_pose"][:, None],
    ], 1)
    return axis_angle_to_matrix(pose)


def bidrn_loss(model: BiDRN, batch: dict[str, Tensor], *, teacher_boxes: bool = True) -> dict[str, Tensor]:
    """L1 losses of a `BiDRN` on a `hmrlab.data.synth_wholebody.WholeBodySamples` batch.

    Terms (each a mean absolute error): ``rotation`` (rotation-matrix entries of all 53 joints),
    ``shape`` (betas), ``expression``, ``transl`` (metres), ``joints`` (the 127 joints relative to the
    pelvis, metres), ``joints_2d`` and ``positions`` (projected joints and heatmap joints, in units
    of the body box width), ``boxes`` (part boxes, same unit). ``loss`` is their sum. With
    ``teacher_boxes`` the part branches see the true boxes (Hand4Whole crops with its predicted ones).
    """
    images, boxes = batch["images"], batch["boxes"]
    out = model(images, boxes[:, 0], boxes[:, 1:] if teacher_boxes else None, batch["focal"][0], batch["center"][0])
    scale = (boxes[:, 0, 2] - boxes[:, 0, 0])[:, None, None]  # body box width, pixels
    hands = [model.part_joints["left_hand"], model.part_joints["right_hand"]]
    true_hands = torch.stack([batch["joints_2d"][:, idx] for idx in hands], 1)
    root = lambda joints: joints - joints[:, :1]  # noqa: E731
    terms = {
        "rotation": (out["rotations"] - _rotations(batch)).abs().mean(),
        "shape": (out["betas"] - batch["betas"]).abs().mean(),
        "expression": (out["expression"] - batch["expression"]).abs().mean(),
        "transl": (out["transl"] - batch["transl"]).abs().mean(),
        "joints": (root(out["joints"]) - root(batch["joints"])).abs().mean(),
        "joints_2d": ((out["joints_2d"] - batch["joints_2d"]) / scale).abs().mean(),
        "positions": ((out["body_positions"] - batch["joints_2d"][:, :NUM_BODY_JOINTS]) / scale).abs().mean()
        + ((out["hand_positions"] - true_hands) / scale[..., None]).abs().mean(),
        "boxes": ((out["part_boxes"] - boxes[:, 1:]) / scale).abs().mean(),
    }
    return {"loss": sum(terms.values()), **{name: value.detach() for name, value in terms.items()}}
