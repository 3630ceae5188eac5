"""``hmrlab lift`` end to end on a tiny lifting run trained here (the quick `configs/lifting_mixste.yaml`),
and the command's clean errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hmrlab import training
from hmrlab.apply import fit
from hmrlab.body import body_model_arrays
from hmrlab.body.skeletons import COCO_17
from hmrlab.data.cameras import Camera
from hmrlab.data.motions import generate_motion
from hmrlab.data.pw3d import PW3D_KEYPOINTS_2D
from hmrlab.data.synth_images import openpose_keypoints
from hmrlab.training.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")
CONFIG = Path(__file__).resolve().parents[2] / "configs" / "lifting_mixste.yaml"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    overrides = [f"out_dir={out}", "progress=false", "data.train_subjects=[S1]"]  # one subject: a few seconds
    training.train(training.load_config(CONFIG, overrides, quick=True))
    return out


@pytest.fixture(scope="module")
def coco_results(tmp_path_factory) -> Path:
    """A walking body filmed 4 m away, as a COCO results file: 16 frames, frame 5 missing, a second
    small person in every frame."""
    body = fit.fitting_body()
    arrays = body_model_arrays("smpl")
    ids = dict(zip(arrays["extra_vertex_names"].tolist(), arrays["extra_vertex_ids"].tolist()))
    motion = generate_motion("walk", generator=torch.Generator().manual_seed(2), duration=1.0, fps=16)
    transl = motion.transl.numpy() + [0.0, 0.95, 0.0]
    with torch.no_grad():
        vertices, joints = body.model(body_pose=motion.poses[:, 1:], global_orient=motion.poses[:, 0],
                                      transl=torch.as_tensor(transl, dtype=torch.float32))
    points = openpose_keypoints(joints.double().numpy(), vertices.double().numpy(), ids)
    camera = Camera.look_at((0.5, 1.2, 4.0), (0.0, 0.9, 0.0), focal=640.0, image_size=(640, 480))
    pixels = camera.project(points[:, [PW3D_KEYPOINTS_2D.index(n) for n in COCO_17.joint_names]])
    entries = []
    for t, frame in enumerate(pixels):
        if t != 5:
            keypoints = np.concatenate([frame, np.full((17, 1), 0.9)], -1)
            entries.append({"image_id": t + 1, "category_id": 1, "keypoints": keypoints.reshape(-1).tolist(),
                            "score": 0.9})
        small = np.concatenate([frame * 0.1 + 500, np.full((17, 1), 0.8)], -1)
        entries.append({"image_id": t + 1, "category_id": 1, "keypoints": small.reshape(-1).tolist(), "score": 0.8})
    path = tmp_path_factory.mktemp("detections") / "results.json"
    path.write_text(json.dumps(entries))
    return path


def test_lift_end_to_end(run_dir, coco_results, tmp_path, capsys):
    out = tmp_path / "out"
    status = main(["lift", str(coco_results), "--format", "coco17", "--size", "640", "480", "--run", str(run_dir),
                   "--out", str(out), "--iterations", "10", "--focal", "640", "--fps", "16",
                   "--export", "glb", "bvh", "obj", "gif", "--video-size", "96", "72"])
    printed = capsys.readouterr()
    assert status == 0, printed.err
    assert "lifted frames 1-16 (16)" in printed.out and "body fit" in printed.out
    for name in ("keypoints_h36m.npz", "joints_camera.npz", "body_camera.npz", "body_world.npz", "motion.glb",
                 "motion.bvh", "render.gif", "report.json", "meshes/frame_00015.obj"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert report["detections"]["filled_frames"] == [6] and report["detections"]["frames_with_several"] == 15
    assert set(report["seconds_per_frame"]) >= {"lift", "fit", "glb_bvh", "obj", "gif"}
    assert "OpenCV camera frame" in report["coordinates"]["camera"] and report["fit"]["joint_error_mm"] > 0
    world = np.load(out / "body_world.npz")
    assert world["poses"].shape == (16, 24, 3) and float(world["fps"]) == 16


def test_lift_errors_are_clean(run_dir, coco_results, tmp_path, capsys):
    common = ["--size", "640", "480", "--out", str(tmp_path / "o")]
    assert main(["lift", str(tmp_path / "absent.json"), "--run", str(run_dir), *common]) == 2
    assert "no detections file at" in capsys.readouterr().err
    assert main(["lift", str(coco_results), "--run", str(tmp_path), *common]) == 2
    assert "is not a training run" in capsys.readouterr().err
    assert main(["lift", str(coco_results), "--format", "body25", "--run", str(run_dir), *common]) == 2
    assert "keypoints must be a flat list of 75 numbers" in capsys.readouterr().err
    blocked = tmp_path / "a_file"
    blocked.write_text("")
    assert main(["lift", str(coco_results), "--run", str(run_dir), "--size", "640", "480", "--out",
                 str(blocked / "out")]) == 2
    assert "hmrlab lift:" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: lifting\nmodel_args: {dim: [16\n")
    assert main(["train", str(bad)]) == 2
    assert "hmrlab train:" in capsys.readouterr().err
