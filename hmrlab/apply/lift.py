"""2D keypoints of a video -> 3D Human3.6M joints, with a trained lifter, and the root's path.

Steps (the same from Python and from ``hmrlab lift``):

1. `to_h36m`: the detector's layout -> Human3.6M's 17 joints (`hmrlab.data.keypoint_formats`);
2. `lift_keypoints`: pixels -> normalized screen coordinates (VideoPose3D's, by the image size), then
   the run's MixSTE/RTPCA over the whole sequence in clips of its ``frames``, the last clip aligned to
   the end (`hmrlab.models.mixste.lift_sequence`), optionally with flip averaging -> (T, 17, 3);
3. `root_trajectory`: where the pelvis is, from the 2D keypoints, the lifted pose and the camera's
   intrinsics, by least squares per frame.

Coordinates. The lifter's output is in the **camera frame** of OpenCV and Human3.6M (x right, y down,
z forward, `hmrlab.data.cameras`), in **metres**, **root-relative** (the pelvis, joint 0, at the
origin in every frame): what it was trained on (`hmrlab.data.datasets.LiftingWindows`). Adding
`root_trajectory` puts each frame's pose where the camera sees it. For a world frame see
`hmrlab.apply.fit.to_world`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hmrlab.data.datasets import normalize_screen_coordinates
from hmrlab.data.detections import KeypointSequence
from hmrlab.data.keypoint_formats import H36M17, KeypointLayout, KeypointOrigin, convert_keypoints, get_layout
from hmrlab.models.mixste import lift_sequence
from hmrlab.validation import format_shape


def default_focal(image_size: tuple[int, int]) -> float:
    """A focal length (pixels) for a camera whose calibration is unknown: the image's longer side,
    a horizontal field of view of 53 degrees for a landscape frame (phones and webcams: 50-70)."""
    return float(max(image_size))


@dataclass
class LiftResult:
    """What `lift_detections` returns.

    ``joints`` (T, 17, 3): `H36M_17` joints, camera frame, metres, root-relative; ``trajectory``
    (T, 3): the pelvis in the camera frame, metres (``joints + trajectory[:, None]`` is the posed
    skeleton where the camera sees it); ``keypoints`` (T, 17, 3): the Human3.6M 2D input, pixels and
    confidence; ``origin`` (T, 17): `KeypointOrigin` of each input joint; ``frame_ids`` (T,);
    ``image_size`` (width, height) and ``focal`` pixels (principal point at the image centre);
    ``seconds``: the lifter's time.
    """

    joints: np.ndarray
    trajectory: np.ndarray
    keypoints: np.ndarray
    origin: np.ndarray
    frame_ids: np.ndarray
    image_size: tuple[int, int]
    focal: float
    seconds: float

    @property
    def seconds_per_frame(self) -> float:
        return self.seconds / max(len(self.joints), 1)

    @property
    def center(self) -> np.ndarray:
        """The principal point assumed, the image centre ((W - 1) / 2, (H - 1) / 2) pixels."""
        width, height = self.image_size
        return np.array([(width - 1) / 2, (height - 1) / 2])


def to_h36m(
    keypoints: np.ndarray | KeypointSequence, layout: str | KeypointLayout | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A sequence's keypoints (T, J, 3) in `layout` (or a `KeypointSequence`) -> Human3.6M's (T, 17, 3)
    pixels and confidence, and the (T, 17) `KeypointOrigin` of each joint (`convert_keypoints`)."""
    if isinstance(keypoints, KeypointSequence):
        keypoints, layout = keypoints.keypoints, keypoints.layout
    if layout is None:
        raise ValueError("pass the keypoints' layout, e.g. layout='coco17'")
    converted = convert_keypoints(np.asarray(keypoints, dtype=np.float64), get_layout(layout), H36M17)
    return converted.keypoints, converted.origin


def complete_span(origin: np.ndarray) -> slice:
    """The longest run of frames whose 17 joints are all known (`KeypointOrigin` not MISSING)."""
    complete = (origin != KeypointOrigin.MISSING).all(-1)
    best, start = (0, 0), None
    for t, ok in enumerate([*complete.tolist(), False]):
        if ok and start is None:
            start = t
        elif not ok and start is not None:
            best, start = max(best, (t - start, start)), None
    return slice(best[1], best[1] + best[0])


def lift_keypoints(
    keypoints: np.ndarray,
    image_size: tuple[int, int],
    model: nn.Module,
    *,
    flip: bool = True,
    batch_size: int = 16,
) -> np.ndarray:
    """Lift Human3.6M 2D keypoints (T, 17, 2 or 3) pixels -> 3D joints (T, 17, 3), camera frame, metres,
    root-relative, for a sequence of any length T >= 1.

    Pixels are normalized by ``image_size`` = (width, height) as the lifter's training data were
    (`normalize_screen_coordinates`); the model runs in eval mode without gradients, in clips of its
    ``frames`` (`lift_sequence`), with flip averaging if `flip`.
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.ndim != 3 or keypoints.shape[1:2] != (17,) or keypoints.shape[2] not in (2, 3) or not len(keypoints):
        raise ValueError(f"keypoints must have shape (T, 17, 2 or 3) in Human3.6M's order (to_h36m converts); "
                         f"got {format_shape(keypoints.shape)}")
    if not np.isfinite(keypoints[..., :2]).all():
        bad = np.flatnonzero(~np.isfinite(keypoints[..., :2]).all((-1, -2)))
        raise ValueError(f"keypoints are missing in {len(bad)} frames (first: {bad[:5].tolist()}); fill the gaps "
                         "(read with a larger max_gap) or cut the sequence to complete frames (complete_span)")
    width, height = (int(s) for s in image_size)
    if width < 1 or height < 1:
        raise ValueError(f"image_size must be (width, height) in pixels; got {image_size}")
    parameter = next(model.parameters())
    inputs = torch.as_tensor(normalize_screen_coordinates(keypoints[..., :2], width, height),
                             dtype=parameter.dtype, device=parameter.device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            lifted = lift_sequence(model, inputs, flip=flip, batch_size=batch_size)
    finally:
        model.train(was_training)
    lifted = lifted - lifted[:, :1]
    return lifted.double().cpu().numpy()


def root_trajectory(
    joints: np.ndarray,
    keypoints: np.ndarray,
    focal: float | tuple[float, float],
    center: tuple[float, float] | np.ndarray,
    *,
    min_depth: float = 0.5,
) -> np.ndarray:
    """The camera-frame pelvis positions (T, 3), metres, that make root-relative `joints` (T, J, 3)
    project onto `keypoints` (T, J, 2 or 3) pixels best.

    With the pinhole model ``u = f_x (X + T_x) / (Z + T_z) + c_x`` (and v likewise) each joint gives two
    equations linear in the root ``T``: ``f_x T_x - (u - c_x) T_z = (u - c_x) Z - f_x X``, and
    ``f_y T_y - (v - c_y) T_z = (v - c_y) Z - f_y Y``; they are solved by least squares per frame,
    each joint weighted by its confidence when given (the estimate SPIN and VIBE use for their
    cameras). Depths below `min_depth` metres are clipped (a person in front of the camera).
    """
    joints = np.asarray(joints, dtype=np.float64)
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if joints.shape[:2] != keypoints.shape[:2] or joints.shape[-1] != 3:
        raise ValueError(f"joints (T, J, 3) and keypoints (T, J, 2|3) must match; got "
                         f"{format_shape(joints.shape)} and {format_shape(keypoints.shape)}")
    fx, fy = np.broadcast_to(np.asarray(focal, dtype=np.float64), (2,))
    cx, cy = np.asarray(center, dtype=np.float64)
    weight = keypoints[..., 2] if keypoints.shape[-1] == 3 else np.ones(keypoints.shape[:2])
    weight = np.where(np.isfinite(keypoints[..., :2]).all(-1), np.clip(weight, 0, None), 0.0)
    du, dv = keypoints[..., 0] - cx, keypoints[..., 1] - cy
    du, dv = np.nan_to_num(du), np.nan_to_num(dv)
    X, Y, Z = np.moveaxis(joints, -1, 0)
    zeros = np.zeros_like(du)
    # rows (T, 2J, 3) and right-hand sides (T, 2J)
    rows = np.concatenate([np.stack([fx + zeros, zeros, -du], -1), np.stack([zeros, fy + zeros, -dv], -1)], 1)
    rhs = np.concatenate([du * Z - fx * X, dv * Z - fy * Y], 1)
    w = np.sqrt(np.concatenate([weight, weight], 1))
    trajectory = np.stack([np.linalg.lstsq(r * wt[:, None], b * wt, rcond=None)[0]
                           for r, b, wt in zip(rows, rhs, w)])
    trajectory[:, 2] = np.maximum(trajectory[:, 2], min_depth)
    return trajectory


def lift_detections(
    keypoints: KeypointSequence | np.ndarray,
    model: nn.Module | str | os.PathLike,
    image_size: tuple[int, int] | None = None,
    *,
    layout: str | KeypointLayout | None = None,
    focal: float | None = None,
    flip: bool = True,
    trim: bool = True,
) -> LiftResult:
    """Detections -> `LiftResult`: convert to Human3.6M (`to_h36m`), keep the longest run of complete
    frames if `trim` (else every frame must be complete), lift (`lift_keypoints`) and place the root
    (`root_trajectory`, focal `focal` or `default_focal`, principal point at the image centre).

    `model` is a lifting module or a run folder (`hmrlab.training.load_run`); `image_size` (width,
    height) pixels, or the sequence's own when it has one.
    """
    frame_ids = np.arange(len(keypoints))
    if isinstance(keypoints, KeypointSequence):
        frame_ids = keypoints.frame_ids
        image_size = image_size or keypoints.image_size
    if image_size is None:
        raise ValueError("pass image_size=(width, height) in pixels: the lifter's input is normalized by it")
    if isinstance(model, (str, os.PathLike)):
        model = load_lifter(model)
    h36m, origin = to_h36m(keypoints, layout)
    if trim:
        span = complete_span(origin)
        if span.stop == span.start:
            raise ValueError("no frame has all 17 Human3.6M joints; check the layout (--format) and min_confidence")
        h36m, origin, frame_ids = h36m[span], origin[span], frame_ids[span]
    start = time.perf_counter()
    joints = lift_keypoints(h36m, image_size, model, flip=flip)
    seconds = time.perf_counter() - start
    focal = default_focal(image_size) if focal is None else float(focal)
    width, height = image_size
    trajectory = root_trajectory(joints, h36m, focal, ((width - 1) / 2, (height - 1) / 2))
    return LiftResult(joints, trajectory, h36m, origin, np.asarray(frame_ids), (int(width), int(height)), focal,
                      seconds)


def load_lifter(run_dir: str | os.PathLike, which: str = "best") -> nn.Module:
    """The trained lifter of a run folder (`hmrlab.training.load_run`), checked to be a lifting run."""
    from hmrlab.training import load_run  # the training package loads its tasks; only when a run is named

    config, model = load_run(Path(run_dir), which)
    if config.task != "lifting":
        raise ValueError(f"{run_dir} is a {config.task!r} run; lifting needs a run of the 'lifting' task "
                         "(e.g. hmrlab train configs/lifting_mixste.yaml)")
    return model


__all__ = ["LiftResult", "complete_span", "default_focal", "lift_detections", "lift_keypoints", "load_lifter",
           "root_trajectory", "to_h36m"]
