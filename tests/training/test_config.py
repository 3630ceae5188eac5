"""A task's ``data`` settings: one rule (`data_settings`) over the fields of each task's dataclass."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest
import yaml

from hmrlab import paths, training
from hmrlab.data.h36m import H36M_TEST_SUBJECTS, H36M_TRAIN_SUBJECTS
from hmrlab.training import config as cfg
from hmrlab.training import tasks
from hmrlab.training.tasks import lifting, mesh, video, wholebody


@dataclass(frozen=True)
class Toy:
    """Settings of a made-up task, to test the rule without any task's data."""

    count: int = cfg.setting(3, cfg.positive_int, "how many")
    size: tuple[int, int] = cfg.setting((8, 8), cfg.pixel_side_or_pair, "[height, width] or one side")
    folder: Path = cfg.setting(Path("here"), cfg.path, "where")


def toy(**data):
    return cfg.data_settings(Toy, training.RunConfig(data=data), "toy")


def test_missing_keys_take_the_defaults_and_given_ones_are_checked_and_converted():
    assert toy() == Toy(count=3, size=(8, 8), folder=Path("here"))
    assert toy(size=5, folder="there") == Toy(count=3, size=(5, 5), folder=Path("there"))
    with pytest.raises(ValueError, match=r"^data\.count must be a positive integer; got 0$"):
        toy(count=0)


def test_unknown_keys_are_refused_with_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown data keys \['colour', 'counts'\] for the toy task; "
                                         r"the known keys are \['count', 'size', 'folder'\]"):
        toy(counts=2, colour="red")


def test_settings_are_frozen_and_the_config_keeps_its_plain_mapping():
    config = training.RunConfig(data={"size": [4, 6]})
    settings = cfg.data_settings(Toy, config, "toy")
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.count = 4
    assert config.data == {"size": [4, 6]} and yaml.safe_load(config.to_yaml())["data"] == {"size": [4, 6]}


ACCEPTED = [
    (cfg.positive_int, 1, 1), (cfg.positive_int, 27, 27),
    (cfg.integer, -3, -3), (cfg.integer, 0, 0),
    (cfg.non_negative_float, 0, 0.0), (cfg.non_negative_float, 2.5, 2.5),
    (cfg.positive_float, 1, 1.0), (cfg.positive_float, 1.25, 1.25),
    (cfg.boolean, False, False),
    (cfg.text, "gt", "gt"),
    (cfg.path, "build/x", Path("build/x")), (cfg.path, Path("/tmp"), Path("/tmp")),
    (cfg.names, ["S9", "S11"], ("S9", "S11")),
    (cfg.pixel_pair, [64, 48], (64, 48)), (cfg.pixel_pair, (1, 1), (1, 1)),
    (partial(cfg.pixel_pair, minimum=16), [16, 32], (16, 32)),
    (cfg.pixel_side_or_pair, 96, (96, 96)), (cfg.pixel_side_or_pair, [80, 64], (80, 64)),
]

REFUSED = [  # (validator, value, what the message says is expected)
    (cfg.positive_int, 0, "a positive integer"), (cfg.positive_int, 2.0, "a positive integer"),
    (cfg.positive_int, True, "a positive integer"),
    (cfg.integer, "1", "an integer"), (cfg.integer, False, "an integer"),
    (cfg.non_negative_float, -0.1, "a number >= 0"), (cfg.non_negative_float, float("nan"), "a number >= 0"),
    (cfg.non_negative_float, "0", "a number >= 0"),
    (cfg.positive_float, 0, "a number > 0"), (cfg.positive_float, None, "a number > 0"),
    (cfg.boolean, "yes", "true or false"), (cfg.boolean, 1, "true or false"),
    (cfg.text, "", "a non-empty string"), (cfg.text, 3, "a non-empty string"),
    (cfg.path, 3, "a path"), (cfg.path, "", "a path"),
    (cfg.names, "S9", "a non-empty list of names"), (cfg.names, [], "a non-empty list of names"),
    (cfg.names, ["S9", 11], "a non-empty list of names"),
    (cfg.pixel_pair, 64, r"\[height, width\], two positive integers"),
    (cfg.pixel_pair, [64, 0], r"\[height, width\], two positive integers"),
    (cfg.pixel_pair, [64, 48, 3], r"\[height, width\], two positive integers"),
    (partial(cfg.pixel_pair, minimum=16), [64, 8], r"\[height, width\], two integers >= 16"),
    (cfg.pixel_side_or_pair, "96", r"one side or \[height, width\]"),
    (cfg.pixel_side_or_pair, [96], r"one side or \[height, width\]"),
    (cfg.pixel_side_or_pair, 0, r"one side or \[height, width\]"),
]


@pytest.mark.parametrize(("check", "value", "expected"), ACCEPTED)
def test_validators_accept_and_convert(check, value, expected):
    result = check(value, "data.key")
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize(("check", "value", "expected"), REFUSED)
def test_validators_name_the_key_what_was_expected_and_what_came(check, value, expected):
    with pytest.raises(ValueError, match=rf"^data\.key must be {expected}.*; got {re.escape(repr(value))}$"):
        check(value, "data.key")


def test_every_task_declares_documented_and_checked_data_settings():
    for name in tasks.TASKS:
        settings = tasks.get(name).data
        assert dataclasses.is_dataclass(settings) and settings.__dataclass_params__.frozen, name
        for field in dataclasses.fields(settings):
            assert callable(field.metadata["check"]), (name, field.name)
            assert len(field.metadata["doc"]) > 10, (name, field.name)  # says what the key means
        settings()  # every field has a default: every key is optional


def test_the_task_defaults():
    assert lifting.settings(training.RunConfig()) == lifting.LiftingData(
        dir=paths.SYNTH_H36M, keypoints="gt", frames=27, train_subjects=H36M_TRAIN_SUBJECTS,
        test_subjects=H36M_TEST_SUBJECTS, stride=27, flip_test=True)
    assert lifting.settings(training.RunConfig(data={"frames": 9})).stride == 9  # stride follows frames
    assert lifting.settings(training.RunConfig(data={"frames": 9, "stride": 2})).stride == 2
    assert mesh.settings(training.RunConfig()) == mesh.MeshData(dir=paths.SYNTH_3DPW, crop_size=(128, 128), scale=1.25)
    assert video.settings(training.RunConfig()) == video.VideoData(
        dir=paths.SYNTH_3DPW, clip_length=8, stride=4, crop_size=(96, 96), scale=1.25, noise=0.0)
    assert wholebody.settings(training.RunConfig()) == wholebody.WholeBodyData(
        train_count=10_000, val_count=200, image_size=(128, 96), seed=1, cache_dir=Path("build/synth/wholebody"),
        dir=paths.SYNTH_3DPW)


def test_the_tasks_read_their_own_settings():
    config = training.RunConfig(data={"crop_size": 64, "noise": 2, "dir": "elsewhere"})
    assert video.settings(config) == video.VideoData(dir=Path("elsewhere"), crop_size=(64, 64), noise=2.0)
    with pytest.raises(ValueError, match=r"unknown data keys \['noise'\] for the mesh task"):
        mesh.settings(config)
    with pytest.raises(ValueError, match=r"data\.crop_size must be \[height, width\]"):
        mesh.settings(training.RunConfig(data={"crop_size": 64}))  # the mesh task takes no single side


def test_train_refuses_bad_data_before_writing_the_run(tmp_path):
    config = training.load_config({"data": {"frame": 9}, "out_dir": str(tmp_path / "run"), "progress": False})
    with pytest.raises(ValueError, match=r"unknown data keys \['frame'\] for the lifting task"):
        training.train(config)
    assert not (tmp_path / "run").exists()


# --- RunConfig's own fields and the YAML it is read from ---------------------------------------------


@pytest.mark.parametrize("key, value, message", [
    ("lr", 0, r"lr must be a number > 0 and finite; got 0"),
    ("lr", float("inf"), r"lr must be a number > 0 and finite; got inf"),
    ("lr", float("nan"), r"lr must be a number > 0 and finite; got nan"),
    ("lr", "abc", r"lr must be a number > 0 and finite; got 'abc'"),
    ("lr_decay", -1, r"lr_decay must be a number in \(0, 1\]"),
    ("weight_decay", -0.1, r"weight_decay must be a number >= 0"),
    ("warmup_steps", -3, r"warmup_steps must be a whole number >= 0"),
    ("workers", 1.5, r"workers must be a whole number >= 0"),
    ("amp", "off please", r"amp must be true, false or null"),
    ("progress", "no", r"progress must be true or false"),
    ("grad_clip", 0, r"grad_clip must be a number > 0"),
    ("ema_decay", 1, r"ema_decay must be a number strictly between 0 and 1"),
    ("seed", 1.5, r"seed must be an integer"),
    ("device", 3, r"device must be a non-empty string"),
    ("model", "", r"model must be a non-empty string"),
    ("model_args", [1], r"model_args must be a mapping"),
    ("out_dir", "", r"out_dir must be a path"),
])
def test_run_settings_are_checked_when_the_configuration_is_made(key, value, message):
    with pytest.raises(ValueError, match=rf"^{message}"):
        training.load_config({key: value})


def test_run_settings_accept_and_convert():
    config = training.load_config({"lr": 1, "ema_decay": 0.999, "amp": None, "grad_clip": None, "out_dir": "~/runs/x"})
    assert config.lr == 1.0 and type(config.lr) is float and config.ema_decay == 0.999
    assert config.out_dir == str(Path.home() / "runs" / "x")
    assert cfg.path("~/data", "data.dir") == Path.home() / "data"


def _yaml_file(tmp_path, text):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_yaml_is_read_strictly(tmp_path):
    assert training.load_config(_yaml_file(tmp_path, "lr: 1e-3\nwarmup_steps: 10\n")).lr == 0.001  # YAML 1.1: a string
    with pytest.raises(ValueError, match=r"run\.yaml' is not valid YAML at line 3, column 1: duplicate key 'lr' "
                                         r"\(first on line 1\)"):
        training.load_config(_yaml_file(tmp_path, "lr: 0.1\nepochs: 2\nlr: 0.2\n"))
    with pytest.raises(ValueError, match="duplicate key 'dim'"):
        training.load_config(_yaml_file(tmp_path, "model_args: {dim: 8, dim: 16}\n"))
    with pytest.raises(ValueError, match=r"run\.yaml' is not valid YAML at line 3, column 1: expected ',' or '\}'"):
        training.load_config(_yaml_file(tmp_path, "epochs: 3\nmodel_args: {dim: 8\n"))
    with pytest.raises(ValueError, match=r"the value of the override 'lr=\[1' is not valid YAML"):
        training.load_config({}, ["lr=[1"])
    with pytest.raises(ValueError, match="not a setting name"):
        training.load_config({}, ["model_args..dim=3"])
    for empty in ("", "# only a comment\n"):
        with pytest.raises(ValueError, match=r"holds no settings .* paper-size run.*\{\} to mean the defaults"):
            training.load_config(_yaml_file(tmp_path, empty))
    assert training.load_config(_yaml_file(tmp_path, "{}\n")) == training.RunConfig()
    with pytest.raises(ValueError, match="is a folder"):
        training.load_config(tmp_path)
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ValueError, match="is not a text file"):
        training.load_config(tmp_path / "binary.yaml")


def test_overrides_do_not_edit_the_callers_mapping_and_quick_keys_are_checked():
    raw = {"model_args": {"dim": 64}, "quick": {"model_args.dim": 8}}
    training.load_config(raw, ["model_args.dim=32"], quick=True)
    assert raw == {"model_args": {"dim": 64}, "quick": {"model_args.dim": 8}}
    with pytest.raises(ValueError, match=r"unknown keys \['epoch'\] in 'quick'"):
        training.load_config({"quick": {"epoch": 1}})  # found without quick=True too
