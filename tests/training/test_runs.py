"""Configured runs: configuration files, schedules, train -> resume -> evaluate, and the command line."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from hmrlab import paths, training
from hmrlab.__main__ import main
from hmrlab.evaluation import H36M_ACTIONS

pytestmark = pytest.mark.usefixtures("one_thread")

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TINY = {"model_args": {"dim": 16, "depth": 1, "heads": 2}, "data": {"frames": 9, "flip_test": False},
        "epochs": 2, "batch_size": 64, "progress": False}


@pytest.mark.parametrize("quick", [False, True], ids=["full", "quick"])
@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load_and_build(path, quick):
    config = training.load_config(path, quick=quick)
    model = training.build_model(config)
    assert sum(p.numel() for p in model.parameters()) > 0
    if config.task == "lifting":
        assert model.frames == config.data["frames"]
    if quick:  # the quick version is smaller and writes elsewhere
        full = training.load_config(path)
        assert config.epochs <= full.epochs and config.out_dir != full.out_dir
        assert sum(p.numel() for p in model.parameters()) < sum(p.numel() for p in training.build_model(full).parameters())


def test_quick_settings_apply_before_overrides():
    raw = {"epochs": 9, "model_args": {"dim": 64, "depth": 4}, "quick": {"epochs": 1, "model_args.dim": 8}}
    assert training.load_config(raw) == training.load_config({"epochs": 9, "model_args": {"dim": 64, "depth": 4}})
    quick = training.load_config(raw, ["epochs=2"], quick=True)
    assert (quick.epochs, quick.model_args) == (2, {"dim": 8, "depth": 4})
    assert "quick" not in yaml.safe_load(quick.to_yaml())
    with pytest.raises(ValueError, match="'quick' must map settings"):
        training.load_config({"quick": [1]})


def test_overrides_and_unknown_keys(tmp_path):
    config = training.load_config(CONFIGS / "lifting_mixste.yaml", ["epochs=3", "model_args.dim=32", "ema_decay=0.99"])
    assert (config.epochs, config.model_args["dim"], config.ema_decay) == (3, 32, 0.99)
    assert config.model_args["depth"] == 4  # the rest of the section is kept
    assert training.load_config(yaml.safe_load(config.to_yaml())) == config
    with pytest.raises(ValueError, match=r"unknown configuration keys \['epoch'\].*'epochs'"):
        training.load_config({"epoch": 3})
    with pytest.raises(ValueError, match="key=value"):
        training.load_config({}, ["epochs"])
    with pytest.raises(ValueError, match="schedule must be one of"):
        training.load_config({"schedule": "linear"})
    with pytest.raises(FileNotFoundError, match="configs/"):
        training.load_config(tmp_path / "missing.yaml")
    with pytest.raises(ValueError, match="no model 'PoseFormer'.*MixSTE"):
        training.build_model(training.load_config({"model": "PoseFormer"}))


def test_learning_rate_schedules():
    steps = 10
    cosine = training.learning_rate_factor(training.RunConfig(epochs=3, warmup_steps=5), steps)
    assert [cosine(s) for s in range(5)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert cosine(5) == pytest.approx(1.0) and cosine(30) == pytest.approx(0.0, abs=1e-12)
    assert cosine(5 + 25 // 2) == pytest.approx(0.5 * (1 + math.cos(math.pi * 12 / 25)))
    decay = training.learning_rate_factor(training.RunConfig(schedule="exponential", lr_decay=0.9), steps)
    assert [decay(s) for s in (0, 9, 10, 25)] == pytest.approx([1, 1, 0.9, 0.81])
    constant = training.learning_rate_factor(training.RunConfig(schedule="constant"), steps)
    assert constant(0) == constant(999) == 1.0


def test_train_resume_and_evaluate_a_lifting_run(tmp_path):
    config = training.load_config({**TINY, "out_dir": str(tmp_path / "run")})
    history = training.train(config)
    assert [row["epoch"] for row in history] == [1, 2]
    assert {"train_wmpjpe", "val_mpjpe", "lr"} <= set(history[0])
    for name in ("config.yaml", "checkpoint.pt", "checkpoint.best.pt", "history.csv"):
        assert (tmp_path / "run" / name).is_file(), name
    assert training.load_config(tmp_path / "run" / "config.yaml") == config
    again = training.train(config)  # complete: loads, trains nothing
    assert [row["train_loss"] for row in again] == [row["train_loss"] for row in history]

    table = training.evaluate(tmp_path / "run", which="last")
    assert list(table.columns) == ["MPJPE", "PA-MPJPE", "MPJVE", "frames"]
    assert table.index[-2:].tolist() == ["Average", "All frames"]
    assert np.isfinite(table.to_numpy()).all() and (table["MPJPE"] > table["PA-MPJPE"]).all()
    saved = pd.read_csv(tmp_path / "run" / "evaluation.csv", index_col=0)
    np.testing.assert_allclose(saved["MPJPE"], table["MPJPE"])
    assert set(table.index[:-2]) <= set(H36M_ACTIONS) | {a.split(" ")[0] for a in table.index[:-2]}

    common = training.benchmark(tmp_path / "run", paths.SYNTH_3DPW)
    assert list(common.columns) == ["MPJPE", "PA-MPJPE", "Accel", "frames"]
    assert common.index.tolist() == ["synth_01_sit_stand/0", "Average", "All frames"]
    assert np.isfinite(common.to_numpy()).all() and common.loc["All frames", "frames"] == 16
    assert (tmp_path / "run" / "benchmark.csv").is_file()


def test_command_line(tmp_path, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY, "epochs": 1, "out_dir": str(tmp_path / "run"), "quick": {"model_args.dim": 8}}))
    assert main(["train", str(config), "--quick", "--set", "model=RTPCA", "--set", "model_args.pyramid_depth=2"]) == 0
    assert "val_mpjpe" in capsys.readouterr().out
    saved = training.load_config(tmp_path / "run" / "config.yaml")
    assert (saved.model, saved.model_args["dim"]) == ("RTPCA", 8)
    assert main(["eval", str(tmp_path / "run")]) == 0
    assert "All frames" in capsys.readouterr().out
    assert main(["eval", str(tmp_path / "run"), "--on", str(paths.SYNTH_3DPW)]) == 0
    assert "synth_01_sit_stand/0" in capsys.readouterr().out
    assert main(["eval", str(tmp_path / "run"), "--on", str(tmp_path)]) == 2
    assert "3DPW-format folder" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "nothing")]) == 2
    assert "no config.yaml" in capsys.readouterr().err


def test_module_entry_point_runs():
    done = subprocess.run([sys.executable, "-m", "hmrlab", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "train" in done.stdout and "eval" in done.stdout


# --- the run folder: what is refused, and that nothing is written then --------------------------------


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A one-epoch run of the TINY configuration (copy it before changing it)."""
    out = tmp_path_factory.mktemp("trained") / "run"
    training.train(training.load_config({**TINY, "epochs": 1, "out_dir": str(out)}))
    return out


def _copy(run: Path, where: Path) -> Path:
    import shutil

    return Path(shutil.copytree(run, where / "run"))


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_a_folder_of_the_users_own_files_is_refused_untouched(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.yaml").write_text("my: notes\n")
    (mine / "history.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"is not empty and is not an hmrlab run.*\['config\.yaml', 'history\.csv'\]"):
        training.train(training.load_config({**TINY, "out_dir": str(mine)}))
    assert _contents(mine) == {"config.yaml": b"my: notes\n", "history.csv": b"a,b\n1,2\n"}
    with pytest.raises(ValueError, match="is a file"):
        training.train(training.load_config({**TINY, "out_dir": str(mine / "history.csv")}))


@pytest.mark.parametrize("change, message", [
    ({"model": "RTPCA"}, r"model: 'MixSTE' in the run, 'RTPCA' now"),
    ({"lr": 0.5}, r"lr: 0\.001 in the run, 0\.5 now"),
    ({"batch_size": 16}, r"batch_size: 64 in the run, 16 now"),
    ({"model_args": {"dim": 8, "depth": 1, "heads": 2}}, r"model_args: \{'dim': 16.* in the run, \{'dim': 8"),
    ({"epochs": 0 + 1, "seed": 4}, r"seed: 0 in the run, 4 now"),
])
def test_resume_with_other_settings_is_refused_and_leaves_the_run_as_it_was(trained_run, tmp_path, change, message):
    run = _copy(trained_run, tmp_path)
    before = _contents(run)
    with pytest.raises(ValueError, match=message + r".*Only \['epochs', 'out_dir', 'progress', 'workers', 'device'\]"):
        training.train(training.load_config({**TINY, "epochs": 2, **change, "out_dir": str(run)}))
    assert _contents(run) == before
    training.evaluate(run, which="last")  # still evaluable


def test_resume_may_add_epochs_but_not_remove_trained_ones(trained_run, tmp_path):
    run = _copy(trained_run, tmp_path)
    history = training.train(training.load_config({**TINY, "epochs": 2, "progress": True, "out_dir": str(run)}))
    assert [row["epoch"] for row in history] == [1, 2]
    saved = (run / "config.yaml").read_text()
    assert saved.startswith(training.runs.RUN_HEADER) and "epochs: 2" in saved and "progress: true" in saved
    with pytest.raises(ValueError, match="epochs is 1, but the run .* has already trained 2 epochs"):
        training.train(training.load_config({**TINY, "epochs": 1, "out_dir": str(run)}))
    assert (run / "config.yaml").read_text() == saved


def test_a_run_of_an_earlier_version_is_still_recognised(trained_run, tmp_path):
    run = _copy(trained_run, tmp_path)
    config_file = run / "config.yaml"
    config_file.write_text(config_file.read_text().removeprefix(training.runs.RUN_HEADER))  # no header then
    assert len(training.train(training.load_config({**TINY, "epochs": 2, "out_dir": str(run)}))) == 2


def test_deleting_a_damaged_checkpoint_does_not_silently_replace_the_best_one(trained_run, tmp_path):
    run = _copy(trained_run, tmp_path)
    (run / "checkpoint.pt").unlink()
    before = _contents(run)
    with pytest.raises(ValueError, match=r"checkpoint\.best\.pt' exists but .*checkpoint\.pt' does not"):
        training.train(training.load_config({**TINY, "out_dir": str(run)}))
    assert _contents(run) == before
    with pytest.raises(FileNotFoundError, match=r"has no checkpoint\.pt .*use hmrlab train first"):
        training.load_run(run, which="last")


def test_a_damaged_checkpoint_is_refused_before_config_yaml_is_rewritten(trained_run, tmp_path):
    run = _copy(trained_run, tmp_path)
    data = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(data[: len(data) // 3])
    before = _contents(run)
    with pytest.raises(ValueError, match=r"checkpoint\.pt' is truncated or damaged.*checkpoint\.best\.pt' is intact"):
        training.train(training.load_config({**TINY, "epochs": 2, "out_dir": str(run)}))
    assert _contents(run) == before


def test_model_args_are_checked_against_the_constructor():
    with pytest.raises(ValueError, match=r"model_args\.dimm: not an argument of MixSTE; it takes \[.*'dim'"):
        training.build_model(training.load_config(TINY, ["model_args.dimm=8"]))
    with pytest.raises(ValueError, match=r"cannot build MixSTE from model_args \{'dim': 'abc'"):
        training.build_model(training.load_config(TINY, ["model_args.dim=abc"]))
    assert TINY["model_args"] == {"dim": 16, "depth": 1, "heads": 2}  # overrides left the caller's dict alone
