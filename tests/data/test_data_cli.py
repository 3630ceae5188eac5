"""``python -m hmrlab.data``: both SynthHuman sets at once, readable by the loaders."""

import pytest

import hmrlab.data.synth as synth
import hmrlab.data.synth_images as synth_images
from hmrlab.data import load_3dpw, load_coco_keypoints, load_h36m
from hmrlab.data.__main__ import main

pytestmark = pytest.mark.usefixtures("one_thread")


def test_one_command_writes_both_sets(tmp_path, monkeypatch):
    monkeypatch.setattr(synth, "QUICK", {"motions_per_subject": 1, "max_frames": 5})
    monkeypatch.setattr(synth_images, "QUICK", {"sequences": 1, "frames_per_sequence": 2, "image_size": (64, 48)})
    main(["--out", str(tmp_path), "--quick", "--seed", "3"])
    lifting = load_h36m(tmp_path / "h36m" / "data_3d_h36m.npz", tmp_path / "h36m" / "data_2d_h36m_gt.npz")
    assert set(lifting.positions_3d) == set(synth.H36M_SUBJECTS)
    assert len(load_3dpw(tmp_path / "3dpw" / "sequenceFiles")) == 1
    assert len(load_coco_keypoints(tmp_path / "3dpw" / synth_images.COCO_FILE).keypoints) == 2
