import os
import random

import numpy as np
import pytest
import torch

from hmrlab.runtime import describe_device, get_device, seed_everything


def _forget_after_test(monkeypatch, *names):
    # setenv first so that monkeypatch restores (or removes) what seed_everything writes.
    for name in names:
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


def _draws():
    return random.random(), np.random.rand(), torch.rand(()).item()


def test_seed_everything_repeats_python_numpy_and_torch_draws(monkeypatch):
    _forget_after_test(monkeypatch, "PYTHONHASHSEED")
    seed_everything(123)
    first = _draws()
    seed_everything(123)
    assert _draws() == first
    seed_everything(124)
    assert _draws() != first
    assert os.environ["PYTHONHASHSEED"] == "124"


def test_seed_everything_deterministic_turns_on_torch_setting(monkeypatch):
    _forget_after_test(monkeypatch, "PYTHONHASHSEED", "CUBLAS_WORKSPACE_CONFIG")
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", torch.backends.cudnn.benchmark)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", torch.backends.cudnn.deterministic)
    before = torch.are_deterministic_algorithms_enabled()
    try:
        seed_everything(0, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
        assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    finally:
        torch.use_deterministic_algorithms(before)


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, "0", True])
def test_seed_everything_rejects_bad_seeds(seed):
    with pytest.raises(ValueError, match="seed must be an integer"):
        seed_everything(seed)


def test_get_device_default_follows_availability(monkeypatch):
    monkeypatch.delenv("HMRLAB_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert get_device().type == expected
    assert get_device("auto").type == expected


def test_get_device_prefer_cpu_forces_cpu(monkeypatch):
    monkeypatch.delenv("HMRLAB_DEVICE", raising=False)
    assert get_device("cpu") == torch.device("cpu")
    assert get_device(torch.device("cpu")) == torch.device("cpu")


def test_environment_variable_overrides_prefer(monkeypatch):
    monkeypatch.setenv("HMRLAB_DEVICE", "cpu")
    assert get_device("auto") == torch.device("cpu")
    monkeypatch.setenv("HMRLAB_DEVICE", "tpu")
    with pytest.raises(ValueError, match="HMRLAB_DEVICE"):
        get_device("cpu")


@pytest.mark.parametrize("name", ["gpu", "xla", "cpu:x"])
def test_get_device_unknown_name_is_a_clear_error(monkeypatch, name):
    monkeypatch.delenv("HMRLAB_DEVICE", raising=False)
    with pytest.raises(ValueError, match="'cpu'"):
        get_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_get_device_unavailable_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("HMRLAB_DEVICE", raising=False)
    with pytest.raises(ValueError, match="not available"):
        get_device("cuda")


def test_describe_device_names_device_torch_and_threads():
    line = describe_device("cpu")
    assert "\n" not in line
    assert "cpu" in line and torch.__version__ in line and str(torch.get_num_threads()) in line
