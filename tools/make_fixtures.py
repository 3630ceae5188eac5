"""Build the tiny dataset fixtures in the real file formats, with plain NumPy, pickle opcodes and json.

Run from the repository root: ``python -m tools.make_fixtures``. Nothing here uses
hmrlab's writers (they are what the fixtures test); the 3DPW joints come from the free body model
through smplx, as 3DPW's come from SMPL. See README.md beside this file for the format sources.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import torch

from hmrlab.body import load_body_model

HERE = Path(__file__).resolve().parent.parent / "hmrlab" / "assets" / "fixtures"
RNG = np.random.default_rng(0)


def human36m() -> None:
    """VideoPose3D's data_3d_h36m.npz (32 joints, metres) and data_2d_h36m_gt.npz (17 joints, pixels)."""
    frames = {("S1", "Walking 1"): 3, ("S1", "Directions"): 2, ("S9", "Sitting"): 2}
    positions_3d: dict = {}
    positions_2d: dict = {}
    for (subject, action), count in frames.items():
        positions_3d.setdefault(subject, {})[action] = RNG.normal(0, 0.5, (count, 32, 3)).astype("float32")
        # The video of "Walking 1" has one frame more than the motion capture, as some real ones do.
        video = count + (action == "Walking 1")
        positions_2d.setdefault(subject, {})[action] = [
            RNG.uniform(0, 1000, (video, 17, 2)).astype("float32") for _ in range(4)
        ]
    # The ground-truth file of prepare_data_h36m.py has no layout_name; detection files do.
    metadata = {"num_joints": 17, "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]}
    (HERE / "h36m").mkdir(exist_ok=True)
    np.savez_compressed(HERE / "h36m" / "data_3d_h36m.npz", positions_3d=positions_3d)
    np.savez_compressed(HERE / "h36m" / "data_2d_h36m_gt.npz", positions_2d=positions_2d, metadata=metadata)


def py2_pickle(obj: object) -> bytes:
    """`obj` pickled as Python 2's cPickle writes protocol 2: str as byte strings, NumPy arrays through
    ``numpy.core.multiarray._reconstruct`` with their raw buffer as a byte string (no memo entries)."""

    def text(s: str) -> bytes:
        data = s.encode("latin1")
        return (b"U" + bytes([len(data)]) if len(data) < 256 else b"T" + struct.pack("<I", len(data))) + data

    def dump(x: object) -> bytes:
        if isinstance(x, dict):
            return b"}(" + b"".join(dump(k) + dump(v) for k, v in x.items()) + b"u"
        if isinstance(x, list):
            return b"](" + b"".join(map(dump, x)) + b"e"
        if isinstance(x, str):
            return text(x)
        if isinstance(x, bool):
            return b"\x88" if x else b"\x89"
        if isinstance(x, int):
            return b"J" + struct.pack("<i", x)
        if isinstance(x, np.ndarray):
            order = "|" if x.dtype.itemsize == 1 else "<"
            dtype = b"cnumpy\ndtype\n" + text(x.dtype.str[1:]) + b"K\x00K\x01\x87R" + b"(K\x03" + text(order)
            dtype += b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
            shape = b"(" + b"".join(dump(int(n)) for n in x.shape) + b"t"
            head = b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R"
            raw = text(np.ascontiguousarray(x).tobytes().decode("latin1"))  # little-endian, as on x86
            return head + b"(K\x01" + shape + dtype + b"\x89" + raw + b"tb"
        raise TypeError(type(x))

    return b"\x80\x02" + dump(obj) + b"."


def pw3d() -> None:
    """A 3DPW sequence file with two actors and 3 image frames (6 at 60 Hz)."""
    frames, model = 3, load_body_model("smpl")
    sequence: dict = {"sequence": "courtyard_tiny_00", "genders": ["m", "f"]}
    for key in ("betas", "poses", "trans", "poses_60Hz", "trans_60Hz", "betas_clothed", "poses2d",
                "jointPositions", "campose_valid"):
        sequence[key] = []
    for _ in range(2):
        betas = RNG.normal(0, 1, 10)
        poses_60 = RNG.normal(0, 0.2, (2 * frames, 72))
        trans_60 = RNG.normal(0, 1, (2 * frames, 3))
        poses, trans = poses_60[::2], trans_60[::2]
        with torch.no_grad():
            out = model(betas=torch.tensor(betas, dtype=torch.float32).expand(frames, -1),
                        global_orient=torch.tensor(poses[:, :3], dtype=torch.float32),
                        body_pose=torch.tensor(poses[:, 3:], dtype=torch.float32),
                        transl=torch.tensor(trans, dtype=torch.float32))
        sequence["betas"].append(betas)
        sequence["poses"].append(poses)
        sequence["trans"].append(trans)
        sequence["poses_60Hz"].append(poses_60)
        sequence["trans_60Hz"].append(trans_60)
        sequence["betas_clothed"].append(betas + RNG.normal(0, 0.1, 10))
        sequence["poses2d"].append(np.concatenate([RNG.uniform(0, 1080, (frames, 2, 18)),
                                                   RNG.uniform(0, 1, (frames, 1, 18))], axis=1))
        sequence["jointPositions"].append(out.joints[:, :24].numpy().astype(np.float64).reshape(frames, 72))
        sequence["campose_valid"].append(np.array([True, True, False]))
    rotation, _ = np.linalg.qr(RNG.normal(size=(3, 3)))
    cam_poses = np.tile(np.eye(4), (frames, 1, 1))
    cam_poses[:, :3, :3] = rotation * np.sign(np.linalg.det(rotation))
    cam_poses[:, :3, 3] = RNG.normal(0, 1, (frames, 3))
    sequence["cam_poses"] = cam_poses
    sequence["cam_intrinsics"] = np.array([[1961.9, 0.0, 540.0], [0.0, 1969.2, 960.0], [0.0, 0.0, 1.0]])
    sequence["img_frame_ids"] = np.arange(0, 2 * frames, 2)
    folder = HERE / "3dpw" / "sequenceFiles" / "test"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "courtyard_tiny_00.pkl").write_bytes(py2_pickle(sequence))


def coco() -> None:
    """A COCO person-keypoints file: two images, three people (one a crowd region without keypoints)."""
    names = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
             "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
             "right_knee", "left_ankle", "right_ankle"]
    skeleton = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9],
                [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]
    annotations = []
    for ann_id, image_id, crowd in ((101, 7, 0), (102, 7, 0), (103, 9, 1)):
        points = np.zeros((17, 3), dtype=int)
        if not crowd:
            points[:, :2] = RNG.integers(0, 400, (17, 2))
            points[:, 2] = RNG.integers(0, 3, 17)
            points[points[:, 2] == 0, :2] = 0  # COCO writes unlabelled keypoints as (0, 0, 0)
        annotations.append({
            "segmentation": [[10.0, 10.0, 50.0, 10.0, 50.0, 90.0]] if not crowd else {"counts": [0, 5], "size": [4, 5]},
            "num_keypoints": int((points[:, 2] > 0).sum()), "area": 1234.5, "iscrowd": crowd,
            "keypoints": points.reshape(-1).tolist(), "image_id": image_id,
            "bbox": [float(v) for v in RNG.uniform(0, 200, 4).round(2)], "category_id": 1, "id": ann_id,
        })
    content = {
        "info": {"description": "hmrlab test fixture in the COCO 2017 keypoints format", "year": 2017},
        "licenses": [{"url": "http://example.invalid", "id": 1, "name": "none"}],
        "images": [
            {"license": 1, "file_name": "000000000007.jpg", "height": 480, "width": 640, "id": 7},
            {"license": 1, "file_name": "000000000009.jpg", "height": 427, "width": 500, "id": 9},
        ],
        "annotations": annotations,
        "categories": [{"supercategory": "person", "id": 1, "name": "person", "keypoints": names,
                        "skeleton": skeleton}],
    }
    (HERE / "coco").mkdir(exist_ok=True)
    (HERE / "coco" / "person_keypoints_tiny.json").write_text(json.dumps(content))


if __name__ == "__main__":
    human36m()
    pw3d()
    coco()
