"""The video task on SynthClips (``data.format: clips``): sets rendered into clips_dir with seeds apart,
one training step, validation with its floor, and the common 3DPW-format split still scored."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from hmrlab import paths, training
from hmrlab.data.datasets import SynthClips
from hmrlab.training.tasks import video

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "video_lifd_hmr.yaml"
TINY = dataclasses.asdict(training.load_config(CONFIG, ["progress=false"], quick=True))


def _config(tmp_path: Path) -> training.RunConfig:
    data = {"format": "clips", "clips_dir": str(tmp_path / "clips"), "train_count": 2, "val_count": 1,
            "clip_length": 4, "crop_size": 32, "render_workers": 1}
    return training.load_config({**TINY, "data": data, "batch_size": 2, "out_dir": str(tmp_path / "run")})


def test_trains_one_step_on_clips(tmp_path):
    config = _config(tmp_path)
    history = training.train(config)  # 2 training clips, batch 2: one step
    assert len(history) == 1 and np.isfinite(history[0]["val_mpjpe"]) and np.isfinite(history[0]["train_loss"])
    assert 50 < history[0]["val_floor_mpjpe"] < 1000
    train, val = video._raw_datasets(config)
    assert isinstance(train, SynthClips) and (len(train), len(val)) == (2, 1)
    assert train.augment is not None and val.augment is None
    assert train.config["seed"] == video.settings(config).seed
    assert val.config["seed"] == video.settings(config).seed + video.VAL_SEED_OFFSET
    assert train.config["clip_length"] == 4 and train.config["crop_size"] == [32, 32]
    # the common test split is still what evaluate and floor score, with the clips' mean body
    table = training.evaluate(tmp_path / "run", which="last")
    assert table.index[-1] == "All frames" and np.isfinite(table.to_numpy()).all()
    floor = video.floor(config, paths.SYNTH_3DPW)
    assert floor.loc["All frames", "frames"] == table.loc["All frames", "frames"]
    assert floor.loc["All frames", "MPJPE"] > 50


def test_bad_format():
    with pytest.raises(ValueError, match=r"data.format must be one of \('3dpw', 'clips'\)"):
        video.settings(training.load_config({**TINY, "data": {"format": "crops"}}))
