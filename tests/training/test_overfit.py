"""Sanity checks of every trained mesh model: each can fit 32 samples far below their floor, the error
of the constant mean body (`hmrlab.data.mean_body`) on the same samples.

A model that cannot do this on the very samples it trains on has a bug in its path from pixels to
loss (a detached tensor, a wrong target frame, a loss that falls without the error falling), and no
amount of data will help it. Each check trains one small model on one fixed batch of 32 with its task's
own loss and Adam, on one thread, and reads the task's validation metric on that batch (eval mode).
Thresholds are the measured errors with a margin (docstrings); the floors are computed here.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import ConcatDataset, default_collate

from hmrlab import metrics, paths
from hmrlab.data.datasets import CentredClips, ClipSamples, MeshSamples
from hmrlab.data.mean_body import mean_axis_angle
from hmrlab.data.smpl_targets import h36m_joints, posed_smpl, smpl_meshes
from hmrlab.data.synth_wholebody import make_wholebody_samples
from hmrlab.evaluation import pw3d_split
from hmrlab.models.bidrn import NUM_BODY_JOINTS, BiDRN
from hmrlab.models.keypoint_hmr import KeypointHMR
from hmrlab.models.lifd_hmr import lifd_hmr
from hmrlab.nn.backbones import Backbone
from hmrlab.training.tasks import mesh, video, wholebody

pytestmark = pytest.mark.usefixtures("one_thread")

KEYPOINT_HMR_STEPS = 180
CLIP, LIFD_STEPS = 2, 60
BIDRN_STEPS = 200
SLOW = pytest.mark.skipif(os.environ.get("HMRLAB_SLOW_TESTS") != "1", reason=(
    "BiDRN needs about 150 steps of about 0.7 s on 32 samples (its network is ~300 layers deep, backward "
    "dominates); run with HMRLAB_SLOW_TESTS=1"))


def _fit(model: nn.Module, loss, batch: dict, steps: int, lr: float) -> float:
    """Train `model` on one batch for `steps` Adam steps (gradients clipped to norm 1); seconds taken."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    start = time.perf_counter()
    model.train()
    for _ in range(steps):
        value = loss(model, batch)["loss"]
        optimizer.zero_grad()
        value.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    model.eval()
    return time.perf_counter() - start


def _shipped_frames(crop_size: tuple[int, int]) -> dict:
    """The shipped set's 32 frames (its train and test sequences, 16 each) as one batch of crops."""
    splits = [MeshSamples(pw3d_split.load_split(paths.SYNTH_3DPW, split), paths.SYNTH_3DPW / "imageFiles",
                          crop_size=crop_size) for split in ("train", "test")]
    samples = ConcatDataset(splits)
    assert len(samples) == 32
    return default_collate([samples[i] for i in range(32)])


def _mean_smpl(pose: torch.Tensor, betas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch's own mean body: (1, 72) chordal-mean pose and (1, 10) mean betas."""
    return mean_axis_angle(pose.reshape(-1, 24, 3)).reshape(1, 72), betas.mean(0, keepdim=True)


class TinyBackbone(Backbone):
    """Four stride-2 3x3 convolutions (GroupNorm, ReLU): a stand-in for MGFENet, whose step on 32 crops
    takes over a second on this CPU. The check is of the head, IK, body model and loss behind it."""

    def __init__(self, width: int = 32):
        super().__init__()
        layers, channels = [], 3
        for _ in range(4):
            layers += [nn.Conv2d(channels, width, 3, stride=2, padding=1), nn.GroupNorm(4, width), nn.ReLU()]
            channels = width
        self.body = nn.Sequential(*layers)
        self.feature_channels, self.feature_strides = {"map": width}, {"map": 16}

    def _stages(self):
        return [("map", self.body)]

    def _head(self, x):
        return x.mean((2, 3))


def test_keypoint_hmr_fits_32_frames():
    """KeypointHMR (91 keypoints, SimCC head, IK, body model; `TinyBackbone`) with its Eq. 9 loss (RLE)
    on the shipped set's 32 crops at 32x32, Adam lr 1e-2. Measured (one thread): floor 204.1 mm; the
    MPJPE stays near the floor for about 100 steps (182 mm at step 100) while the RLE loss falls, then
    drops: 101 mm at step 150, 70 mm at step 180, 30 mm at step 250 (0.2-0.7 s a step here,
    with the machine's other load). Asserted: below half the floor (102 mm)."""
    batch = _shipped_frames((32, 32))
    pose, betas = _mean_smpl(batch["pose"], batch["betas"])
    _, floor_joints = posed_smpl(pose, betas)
    truth = batch["joints_3d"] - batch["joints_3d"][:, :1]
    floor = 1000 * float(metrics.mpjpe((floor_joints - floor_joints[:, :1]).expand_as(truth), truth))
    torch.manual_seed(0)
    model = KeypointHMR(image_size=(32, 32), backbone=TinyBackbone(), channels=32, num_bins=32)
    seconds = _fit(model, mesh.loss, batch, steps=KEYPOINT_HMR_STEPS, lr=1e-2)
    with torch.no_grad():
        error = float(mesh.loss(model, batch)["mpjpe"])
    print(f"KeypointHMR: floor {floor:.1f} mm, fitted {error:.1f} mm, {seconds:.1f} s")
    assert 180 < floor < 230
    assert error < 0.5 * floor


def test_lifd_hmr_fits_32_clips():
    """LIFD-HMR (ResNet-18, the quick config's head sizes) with the video task's L1 losses on 32 centred
    2-frame clips of 32x32 (every frame of the shipped set), fed the true 2D joints, Adam lr 3e-3.
    Measured: floor 186.8 mm, fitted 53.1 mm after 60 steps (31 s on one thread of a busy machine).
    Asserted: below half the floor (93 mm)."""
    clips = [ClipSamples(CentredClips(pw3d_split.load_split(paths.SYNTH_3DPW, split), paths.SYNTH_3DPW / "imageFiles",
                                      clip_length=CLIP, crop_size=(32, 32))) for split in ("train", "test")]
    samples = ConcatDataset(clips)
    batch = default_collate([samples[i] for i in range(32)])
    middle = batch["joints"][:, CLIP // 2]
    frames = [clip.clips for clip in clips]
    poses = torch.cat([torch.as_tensor(np.concatenate([t["pose"] for _, _, t in f.actors]), dtype=torch.float32)
                       for f in frames])
    betas = torch.cat([torch.as_tensor(np.tile(a.betas, (len(t["pose"]), 1)), dtype=torch.float32)
                       for f in frames for _, a, t in f.actors])
    vertices = smpl_meshes(*_mean_smpl(poses, betas))
    floor_joints = h36m_joints(vertices)
    floor = 1000 * float(metrics.mpjpe(floor_joints.expand_as(middle), middle, root=0))
    torch.manual_seed(0)
    model = lifd_hmr("resnet18", frames=CLIP, channels=16, pose_dim=16, pose_depth=1, gru_hidden=8, ldmp_channels=32,
                     ldmp_depth=1)
    seconds = _fit(model, video.loss, batch, steps=LIFD_STEPS, lr=3e-3)
    with torch.no_grad():
        error = float(video.loss(model, batch)["mpjpe"])
    print(f"LIFD-HMR: floor {floor:.1f} mm, fitted {error:.1f} mm, {seconds:.1f} s")
    assert error < 0.5 * floor


@SLOW
@pytest.mark.parametrize("binary", [True, False], ids=["BiDRN", "BiDRN-FP"])
def test_bidrn_fits_32_samples(binary):
    """BiDRN and its full-precision twin (the quick config's sizes) with `bidrn_loss` on 32 rendered
    whole-body samples of 64x48, Adam lr 3e-3. Measured: floor 226.5 mm; BiDRN-FP 197 mm at step 60,
    93 mm at step 160, 80 mm at step 200 (180 s); binary BiDRN fits more slowly: 178 mm at step 140,
    133 mm at step 200 (500 s on a machine loaded 4x). Asserted after 200 steps: BiDRN-FP below half
    the floor (113 mm), BiDRN below 0.7 of it (159 mm). Slow (`SLOW`): skipped unless
    HMRLAB_SLOW_TESTS=1."""
    samples = make_wholebody_samples(32, (64, 48), seed=7)
    batch = default_collate([samples[i] for i in range(32)])
    floor_joints = wholebody._constant_body(samples)[1][:NUM_BODY_JOINTS]
    target = batch["joints"][:, :NUM_BODY_JOINTS]
    floor = 1000 * float(metrics.mpjpe(floor_joints.expand_as(target), target, root=0))
    torch.manual_seed(0)
    model = BiDRN(binary, width=8, body_shape=(32, 24), hand_shape=(16, 16), face_shape=(16, 16))
    seconds = _fit(model, wholebody.loss, batch, steps=BIDRN_STEPS, lr=3e-3)
    with torch.no_grad():
        error = wholebody.body_mpjpe(model, batch)
    print(f"BiDRN(binary={binary}): floor {floor:.1f} mm, fitted {error:.1f} mm, {seconds:.1f} s")
    assert error < (0.7 if binary else 0.5) * floor
