import importlib.util
import io
import os
import random
import signal
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import hmrlab.training.loop
from hmrlab.training.loop import (
    History,
    NonFiniteLossError,
    fit,
    load_checkpoint,
    to_device,
)


def _regression_data(n=48, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=generator)
    y = x @ torch.tensor([1.5, -2.0, 0.5]) + 0.3 + 0.1 * torch.randn(n, generator=generator)
    return x, y


def _mse(model, batch):
    x, y = batch
    return ((model(x).squeeze(-1) - y) ** 2).mean()


def test_linear_regression_converges_to_least_squares():
    x, y = _regression_data()
    model = nn.Linear(3, 1)
    fit(model, _mse, [(x, y)], epochs=150, optimizer=torch.optim.SGD(model.parameters(), lr=0.2),
        device="cpu", progress=False)
    design = np.hstack([x.double().numpy(), np.ones((len(x), 1))])
    solution, *_ = np.linalg.lstsq(design, y.double().numpy(), rcond=None)
    fitted = np.append(model.weight.detach().double().numpy().ravel(), model.bias.item())
    np.testing.assert_allclose(fitted, solution, atol=1e-5)


def _noisy_model(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 1))


def _noisy_loss(model, batch):
    """Uses all three global generators, so resuming must restore each of them."""
    x, y = batch
    scale = 1.0 + 0.1 * random.random()
    error = model(x).squeeze(-1) - y + 0.01 * float(np.random.randn())
    return {"loss": scale * (error**2).mean(), "mae": error.abs().mean()}


def _loader(x, y, own_generator):
    generator = torch.Generator().manual_seed(5) if own_generator else None
    return DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True, generator=generator)


def _max_error(model, batch):
    x, y = batch
    return (model(x).squeeze(-1) - y).abs().max()


def _run(epochs, checkpoint=None, loss_fn=_noisy_loss, own_generator=False, init_seed=1):
    x, y = _regression_data()
    model = _noisy_model(init_seed)
    history = fit(model, loss_fn, _loader(x, y, own_generator), epochs=epochs, lr=0.01,
                  val_data=[(x, y)], val_metrics={"max_error": _max_error}, checkpoint=checkpoint,
                  seed=3, device="cpu", progress=False, grad_clip=1.0)
    return model, history


def _without_time(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def _assert_same_run(a, b):
    (model_a, history_a), (model_b, history_b) = a, b
    for (name, p), q in zip(model_a.state_dict().items(), model_b.state_dict().values()):
        assert torch.equal(p, q), name
    assert _without_time(history_a) == _without_time(history_b)


@pytest.mark.parametrize("own_generator", [False, True], ids=["global-rng", "loader-generator"])
def test_resume_gives_exactly_the_uninterrupted_run(tmp_path, own_generator):
    path = tmp_path / "run.pt"
    uninterrupted = _run(4, own_generator=own_generator)
    _run(2, path, own_generator=own_generator)
    resumed = _run(4, path, own_generator=own_generator, init_seed=99)  # weights come from the file
    _assert_same_run(uninterrupted, resumed)
    assert [row["epoch"] for row in resumed[1]] == [1, 2, 3, 4]


def test_complete_checkpoint_trains_nothing(tmp_path):
    path = tmp_path / "run.pt"
    first = _run(2, path)

    def must_not_run(model, batch):
        raise AssertionError("training ran although the checkpoint was complete")

    again = _run(2, path, loss_fn=must_not_run, init_seed=99)
    _assert_same_run(first, again)


def test_keyboard_interrupt_mid_epoch_keeps_last_complete_epoch(tmp_path):
    path = tmp_path / "run.pt"
    calls = 0

    def interrupted_in_epoch_3(model, batch):
        nonlocal calls
        calls += 1
        if model.training and calls > 2 * (6 + 1) + 2:  # 6 train + 1 val batch per epoch
            raise KeyboardInterrupt
        return _noisy_loss(model, batch)

    with pytest.raises(KeyboardInterrupt):
        _run(4, path, loss_fn=interrupted_in_epoch_3)
    assert load_checkpoint(path, _noisy_model(0))["epoch"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]
    _assert_same_run(_run(4), _run(4, path, init_seed=99))


def test_checkpoint_of_another_model_is_refused_with_names(tmp_path):
    path = tmp_path / "run.pt"
    x, y = _regression_data()
    fit(nn.Linear(3, 1), _mse, [(x, y)], epochs=1, checkpoint=path, device="cpu", progress=False)
    wider = nn.Sequential(nn.Linear(3, 1))
    with pytest.raises(ValueError, match=r"(?s)Sequential.*0\.weight.*new checkpoint path.*resume=False"):
        fit(wider, _mse, [(x, y)], epochs=2, checkpoint=path, device="cpu", progress=False)
    with pytest.raises(ValueError, match=r"shape changed.*weight \[1, 3\] -> \[2, 3\]"):
        load_checkpoint(path, nn.Linear(3, 2))
    history = fit(wider, _mse, [(x, y)], epochs=1, checkpoint=path, resume=False, device="cpu",
                  progress=False)
    assert len(history) == 1 and load_checkpoint(path, nn.Sequential(nn.Linear(3, 1)))["epoch"] == 1


def test_load_checkpoint_restores_model_and_optimizer(tmp_path):
    path = tmp_path / "run.pt"
    model, _ = _run(2, path)
    copy = _noisy_model(99)
    optimizer = torch.optim.AdamW(copy.parameters(), lr=0.5)
    state = load_checkpoint(path, copy, optimizer)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), copy.parameters()))
    assert optimizer.param_groups[0]["lr"] == 0.01 and state["epoch"] == 2
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt", copy)


def test_nan_loss_stops_with_epoch_step_and_advice(tmp_path):
    path = tmp_path / "run.pt"
    x, y = _regression_data()
    batches = [(x[:16], y[:16]), (x[16:32], y[16:32]), (x[32:], y[32:])]
    calls = 0

    def nan_at_epoch_2_step_3(model, batch):
        nonlocal calls
        calls += 1
        loss = _mse(model, batch)
        return loss * float("nan") if calls == 6 else loss

    with pytest.raises(FloatingPointError, match=r"nan at epoch 2, step 3.*learning rate.*inputs") as error:
        fit(nn.Linear(3, 1), nan_at_epoch_2_step_3, batches, epochs=3, checkpoint=path, device="cpu",
            progress=False)
    assert isinstance(error.value, NonFiniteLossError)
    assert load_checkpoint(path, nn.Linear(3, 1))["epoch"] == 1


def test_history_frame_columns_and_best():
    x, y = _regression_data()
    history = fit(nn.Linear(3, 1), lambda m, b: {"loss": _mse(m, b), "rmse": _mse(m, b).sqrt()},
                  [(x, y)], epochs=5, lr=0.1, val_data=[(x, y)], val_metrics={"neg": lambda m, b: -1.0},
                  device="cpu", progress=False)
    frame = history.to_frame()
    assert list(frame.columns) == [
        "epoch", "train_loss", "train_rmse", "val_loss", "val_rmse", "val_neg", "seconds",
    ]
    assert frame["epoch"].tolist() == [1, 2, 3, 4, 5]
    np.testing.assert_allclose(frame["val_rmse"], np.sqrt(frame["val_loss"]), rtol=1e-5)
    assert history.best("val_loss")["epoch"] == frame.loc[frame["val_loss"].idxmin(), "epoch"]
    assert history.best("val_loss", mode="max")["epoch"] == frame.loc[frame["val_loss"].idxmax(), "epoch"]
    with pytest.raises(ValueError, match="logged columns"):
        history.best("val_accuracy")
    with pytest.raises(ValueError, match="'min' or 'max'"):
        History([{"a": 1.0}]).best("a", mode="lowest")


def test_checkpoint_is_written_atomically_every_epoch(tmp_path, monkeypatch):
    written = []
    real_save = hmrlab.training.loop.atomic_torch_save

    def spy(obj, path):
        written.append(obj["epoch"])
        return real_save(obj, path)

    monkeypatch.setattr(hmrlab.training.loop, "atomic_torch_save", spy)
    _run(3, tmp_path / "run.pt")
    assert written == [1, 2, 3]
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]


def test_to_device_moves_nested_tensors():
    Pair = namedtuple("Pair", "image label")
    batch = {"pair": Pair(torch.zeros(2), "a.jpg"), "list": [torch.ones(1), (torch.ones(3), 4)]}
    moved = to_device(batch, "meta")  # a real device change that needs no GPU
    assert isinstance(moved["pair"], Pair) and moved["pair"].label == "a.jpg"
    assert moved["pair"].image.device.type == "meta"
    assert moved["list"][0].is_meta and moved["list"][1][0].is_meta and moved["list"][1][1] == 4


def test_progress_bars_run(capsys):
    x, y = _regression_data()
    fit(nn.Linear(3, 1), _mse, [(x, y)], epochs=2, device="cpu", progress=True)
    assert "train_loss=" in capsys.readouterr().err


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"train_data": (b for b in []), "epochs": 1}, "one-shot iterator"),
        ({"epochs": 0}, "epochs must be a positive integer"),
        ({"epochs": 1, "val_metrics": {"m": lambda m, b: 0.0}}, "need val_data"),
        ({"epochs": 1, "loss_fn": lambda m, b: {"mse": _mse(m, b)}}, "without a 'loss' entry"),
        ({"epochs": 1, "loss_fn": lambda m, b: m(b[0])}, "scalar tensor"),
        ({"epochs": 1, "grad_clip": 0.0}, "grad_clip must be"),
    ],
)
def test_bad_arguments_are_explained(kwargs, message):
    x, y = _regression_data()
    arguments = {"train_data": [(x, y)], "loss_fn": _mse, **kwargs}
    with pytest.raises(ValueError, match=message):
        fit(nn.Linear(3, 1), arguments.pop("loss_fn"), arguments.pop("train_data"), device="cpu",
            progress=False, **arguments)


def _interrupting(at_call: int):
    """_noisy_loss, but a SIGINT arrives during the given call (as from Ctrl-C or Jupyter's stop)."""
    calls = 0

    def loss_fn(model, batch):
        nonlocal calls
        calls += model.training
        if model.training and calls == at_call:
            signal.raise_signal(signal.SIGINT)
        return _noisy_loss(model, batch)

    return loss_fn


@pytest.mark.parametrize("own_generator", [False, True], ids=["global-rng", "loader-generator"])
def test_sigint_saves_the_partial_epoch_and_resume_is_exact(tmp_path, own_generator):
    path = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt, match="epoch 2 after step 3"):
        _run(4, path, loss_fn=_interrupting(6 + 3), own_generator=own_generator)  # 6 batches per epoch
    state = load_checkpoint(path, _noisy_model(0))
    assert (state["epoch"], state["step"]) == (1, 3)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # fit put the handler back
    _assert_same_run(_run(4, own_generator=own_generator), _run(4, path, own_generator=own_generator, init_seed=99))


def _scheduled_run(epochs, checkpoint=None, snapshots=None):
    x, y = _regression_data()
    model = _noisy_model(1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 / (1 + 0.1 * step))

    def recording_loss(model, batch):
        if model.training and snapshots is not None:
            snapshots.append([p.detach().clone() for p in model.parameters()])
        return _noisy_loss(model, batch)

    history = fit(model, recording_loss, _loader(x, y, True), epochs=epochs, optimizer=optimizer,
                  scheduler=scheduler, ema_decay=0.9, val_data=[(x, y)], checkpoint=checkpoint, seed=3,
                  device="cpu", progress=False)
    return model, history


def test_scheduler_and_ema_resume_exactly_and_ema_is_the_recursion(tmp_path):
    path = tmp_path / "run.pt"
    snapshots = []
    model, history = _scheduled_run(3, snapshots=snapshots)
    # Step k (from 0) ran at lr 0.05 / (1 + 0.1 (k + 1)) after it: 6 steps per epoch.
    np.testing.assert_allclose([row["lr"] for row in history], [0.05 / (1 + 0.1 * 6 * e) for e in (1, 2, 3)])
    _scheduled_run(1, path)
    _assert_same_run((model, history), _scheduled_run(3, path))
    # EMA by hand: the first update copies the weights, then after n updates ema = d ema + (1 - d) p
    # with the warmed-up decay d = min(0.9, (1 + n) / (10 + n)).
    after_each_step = snapshots[1:] + [[p.detach() for p in model.parameters()]]
    ema = after_each_step[0]
    for n, params in enumerate(after_each_step[1:], 1):
        d = min(0.9, (1 + n) / (10 + n))
        ema = [d * e + (1 - d) * p for e, p in zip(ema, params)]
    averaged = _noisy_model(0)
    load_checkpoint(path, averaged, ema=True)
    for mine, loaded in zip(ema, averaged.parameters()):
        torch.testing.assert_close(loaded, mine)
    fit(nn.Linear(3, 1), _mse, [_regression_data()], epochs=1, checkpoint=tmp_path / "plain.pt", device="cpu",
        progress=False)
    with pytest.raises(ValueError, match="no EMA"):
        load_checkpoint(tmp_path / "plain.pt", nn.Linear(3, 1), ema=True)


def test_best_checkpoint_and_logs(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    x, y = _regression_data()
    model = _noisy_model(1)
    path = tmp_path / "run.pt"
    history = fit(model, _noisy_loss, _loader(x, y, False), epochs=6, lr=0.2, val_data=[(x, y)],
                  val_metrics={"max_error": _max_error}, checkpoint=path, best_metric="val_max_error",
                  log_dir=tmp_path / "logs", device="cpu", progress=False)
    best = load_checkpoint(hmrlab.training.loop.best_checkpoint_path(path), _noisy_model(0))
    assert best["epoch"] == history.best("val_max_error")["epoch"]
    logged = pd.read_csv(tmp_path / "logs" / "history.csv")
    pd.testing.assert_frame_equal(logged, history.to_frame(), check_exact=False, rtol=1e-12)
    events = EventAccumulator(str(tmp_path / "logs"))
    events.Reload()
    scalars = events.Scalars("val_loss")
    assert [s.step for s in scalars] == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose([s.value for s in scalars], logged["val_loss"], rtol=1e-6)


def test_bfloat16_autocast_on_cpu_still_learns():
    x, y = _regression_data()
    model = nn.Linear(3, 1)
    history = fit(model, _mse, [(x, y)], epochs=60, lr=0.1, amp=True, device="cpu", progress=False)
    assert history[-1]["train_loss"] < 0.1 * history[0]["train_loss"]


SCRIPT = Path(__file__).parent / "scripts" / "fit_under_torchrun.py"


def test_two_gloo_processes_agree_with_one(tmp_path):
    spec = importlib.util.spec_from_file_location("fit_under_torchrun", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    model, history, world = script.train()
    assert world == 1
    out = tmp_path / "two.pt"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(SCRIPT),
               str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=240,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    two = torch.load(out, weights_only=True)
    assert two["world"] == 2
    for name, p in model.state_dict().items():
        torch.testing.assert_close(two["model"][name], p, rtol=1e-5, atol=1e-6)
    for a, b in zip(history, two["history"], strict=True):
        for key in ("train_loss", "train_mae", "val_loss", "val_mae"):
            np.testing.assert_allclose(b[key], a[key], rtol=1e-5)


# --- what may change on resume, and what is refused --------------------------------------------------


def _batches(size):
    x, y = _regression_data()
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(x), size)]


def test_resume_refuses_other_optimizer_settings_naming_both_values(tmp_path):
    path = tmp_path / "run.pt"
    fit(nn.Linear(3, 1), _mse, _batches(16), epochs=1, lr=0.01, checkpoint=path, device="cpu", progress=False)
    with pytest.raises(ValueError, match=r"other optimizer settings: lr 0\.01 in the checkpoint, 0\.1 now"):
        fit(nn.Linear(3, 1), _mse, _batches(16), epochs=2, lr=0.1, checkpoint=path, device="cpu", progress=False)
    model = nn.Linear(3, 1)
    with pytest.raises(ValueError, match=r"weight_decay 0\.01 in the checkpoint, 0\.5 now"):
        fit(model, _mse, _batches(16), epochs=2, optimizer=torch.optim.AdamW(model.parameters(), 0.01, weight_decay=0.5),
            checkpoint=path, device="cpu", progress=False)
    assert len(fit(nn.Linear(3, 1), _mse, _batches(16), epochs=2, lr=0.01, checkpoint=path, device="cpu",
                   progress=False)) == 2  # epochs may grow


def test_resume_with_another_batch_count_is_refused_also_mid_epoch(tmp_path):
    path = tmp_path / "run.pt"
    calls = 0

    def interrupted(model, batch):
        nonlocal calls
        calls += 1
        if calls == 12 + 3:  # epoch 2, step 3 of 12 batches of 4
            signal.raise_signal(signal.SIGINT)
        return _mse(model, batch)

    with pytest.raises(KeyboardInterrupt):
        fit(nn.Linear(3, 1), interrupted, _batches(4), epochs=3, checkpoint=path, device="cpu", progress=False)
    with pytest.raises(ValueError, match="gives 3 batches an epoch but the run .* had 12: the batch size or the data"):
        fit(nn.Linear(3, 1), _mse, _batches(16), epochs=3, checkpoint=path, device="cpu", progress=False)
    # A checkpoint of an earlier version, without the count: the replay itself says so.
    state = torch.load(path, weights_only=True)
    del state["batches"]
    torch.save(state, path)
    with pytest.raises(ValueError, match="stopped in epoch 2 after step 3, but train_data now gives only 2 batches"):
        fit(nn.Linear(3, 1), _mse, [b for b in _batches(16)][:2], epochs=3, checkpoint=path, device="cpu",
            progress=False)


def _counting(loss_fn=_mse):
    def counted(model, batch):
        counted.calls += 1
        return loss_fn(model, batch)

    counted.calls = 0
    return counted


def test_best_file_without_its_checkpoint_is_not_replaced(tmp_path):
    path = tmp_path / "run.pt"
    x, y = _regression_data()
    arguments = dict(epochs=1, val_data=[(x, y)], checkpoint=path, best_metric="val_loss", device="cpu",
                     progress=False)
    fit(nn.Linear(3, 1), _mse, [(x, y)], **arguments)
    best = hmrlab.training.loop.best_checkpoint_path(path)
    before = best.read_bytes()
    path.unlink()  # as a user would delete a damaged checkpoint to start over
    loss = _counting()
    with pytest.raises(ValueError, match=r"run\.best\.pt' exists but .*run\.pt' does not.*would replace the best"):
        fit(nn.Linear(3, 1), loss, [(x, y)], **arguments)
    assert loss.calls == 0 and best.read_bytes() == before
    fit(nn.Linear(3, 1), _mse, [(x, y)], resume=False, **arguments)  # explicit: start over
    assert best.read_bytes() != before


# --- files that cannot be written -------------------------------------------------------------------


def test_unwritable_files_are_refused_before_the_first_step(tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    loss = _counting()
    with pytest.raises(ValueError, match=r"cannot create the folder .*a_file.* is a file"):
        fit(nn.Linear(3, 1), loss, _batches(16), epochs=1, checkpoint=blocker / "ck.pt", device="cpu", progress=False)
    with pytest.raises(ValueError, match="cannot create the folder"):
        fit(nn.Linear(3, 1), loss, _batches(16), epochs=1, log_dir=blocker / "logs", device="cpu", progress=False)
    path = tmp_path / "run.pt"
    fit(nn.Linear(3, 1), _mse, _batches(16), epochs=1, checkpoint=path, device="cpu", progress=False)
    # (Tests may run as root, who may write anything: pretend the file is read-only.)
    monkeypatch.setattr(hmrlab.training.loop.os, "access", lambda file, mode: Path(file) != path)
    with pytest.raises(ValueError, match=r"run\.pt' is read-only.*chmod u\+w"):
        fit(nn.Linear(3, 1), loss, _batches(16), epochs=2, checkpoint=path, device="cpu", progress=False)
    assert loss.calls == 0


def test_file_size_limit_is_refused_before_the_first_step(tmp_path):
    script = (
        "import resource, sys, torch\n"
        "from torch import nn\n"
        "from hmrlab.training.loop import fit\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (20000, resource.RLIM_INFINITY))\n"
        "calls = []\n"
        "try:\n"
        "    fit(nn.Linear(100, 100), lambda m, b: calls.append(1) or m(b).pow(2).mean(), [torch.randn(4, 100)],\n"
        f"        epochs=1, checkpoint={str(tmp_path / 'ck.pt')!r}, device='cpu', progress=False)\n"
        "except ValueError as error:\n"
        "    print(error, len(calls))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "needs at least 40400 bytes, but files are limited to 20000 bytes (ulimit -f)" in done.stdout
    assert done.stdout.strip().endswith(" 0")  # no step ran


def _failing_save(monkeypatch, when):
    """torch.save that writes half a file and then fails like a full disk, where ``when(path)``."""
    real = torch.save

    def save(obj, file, *args, **kwargs):
        if when(Path(file)):
            Path(file).write_bytes(b"PK\x03\x04 half a checkpoint")
            raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file")
        return real(obj, file, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)


def test_failed_save_names_the_file_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "run.pt"
    _run(1, path)
    _failing_save(monkeypatch, lambda file: True)
    with pytest.raises(hmrlab.training.loop.CheckpointWriteError,
                       match=r"could not write .*run\.pt' \(the file could not be written completely.*epoch 2 was not "
                             r"saved, and run\.pt keeps its previous contents") as error:
        _run(2, path)
    assert isinstance(error.value, OSError)
    assert load_checkpoint(path, _noisy_model(0))["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["run.pt"]  # no temporary file left behind


def test_failed_best_save_leaves_checkpoint_and_history_agreeing_and_resume_is_exact(tmp_path, monkeypatch):
    x, y = _regression_data()

    def run(epochs, folder):
        model = _noisy_model(1)
        history = fit(model, _noisy_loss, _loader(x, y, True), epochs=epochs, lr=0.05, val_data=[(x, y)],
                      checkpoint=folder / "run.pt", best_metric="val_loss", log_dir=folder, seed=3, device="cpu",
                      progress=False)
        return model, history

    uninterrupted = run(3, tmp_path / "whole")
    epochs_seen = []
    real = torch.save
    monkeypatch.setattr(torch, "save", lambda obj, file, *a, **k: epochs_seen.append(obj["epoch"]) or real(obj, file))
    _failing_save(monkeypatch, lambda file: file.name.startswith(".run.best.pt") and len(epochs_seen) >= 3)
    folder = tmp_path / "broken"
    with pytest.raises(OSError, match=r"run\.best\.pt.*run\.pt and history\.csv were not updated either"):
        run(3, folder)
    monkeypatch.undo()
    saved = load_checkpoint(folder / "run.pt", _noisy_model(0))["epoch"]
    assert saved == len(pd.read_csv(folder / "history.csv")) < 3
    _assert_same_run(uninterrupted, run(3, folder))
    assert load_checkpoint(folder / "run.best.pt", _noisy_model(0))["epoch"] == uninterrupted[1].best("val_loss")["epoch"]


# --- damaged, foreign and untrusted checkpoints -------------------------------------------------------


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo ran > ran.txt",))


def _damaged(good: bytes, kind: str):
    state = torch.load(io.BytesIO(good), weights_only=True)
    if kind == "truncated":
        return good[: len(good) // 2]
    if kind == "empty":
        return b""
    if kind == "text":
        return b"epochs: 3\n"
    if kind == "state dict":
        return state["model"]
    if kind == "no signature":
        return {k: v for k, v in state.items() if k != "signature"}
    if kind == "negative epoch":
        return {**state, "epoch": -5}
    if kind == "history":
        return {**state, "history": state["history"] * 2}
    if kind == "rng":
        return {**state, "rng": ["garbage"] * 7}
    if kind == "code":
        return {**state, "extra": _RunsCode()}
    raise AssertionError(kind)


@pytest.mark.parametrize("kind, message", [
    ("truncated", r"is truncated or damaged \(\d+ bytes; PyTorch could not read its archive"),
    ("empty", r"is empty \(0 bytes\)"),
    ("text", r"is not an hmrlab checkpoint: it is not a PyTorch archive \(it starts with b'epoc'\)"),
    ("state dict", r"has no hmrlab format tag.*model\.load_state_dict"),
    ("no signature", r"damaged or was not written by hmrlab's fit: its 'signature' entry is NoneType"),
    ("negative epoch", r"epoch is -5, not a whole number >= 0"),
    ("history", r"its history has 2 rows .* for epoch = 1"),
    ("rng", r"rng\[0\] is not a random-generator state"),
    ("code", r"was not loaded: it is not trusted\. It holds Python objects \(posix\.system\)"),
])
def test_damaged_or_untrusted_checkpoints_are_named_and_explained(tmp_path, monkeypatch, kind, message):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "run.pt"
    fit(nn.Linear(3, 1), _mse, _batches(16), epochs=1, checkpoint=path, device="cpu", progress=False)
    content = _damaged(path.read_bytes(), kind)
    path.write_bytes(content) if isinstance(content, bytes) else torch.save(content, path)
    for attempt in (lambda: load_checkpoint(path, nn.Linear(3, 1)),
                    lambda: fit(nn.Linear(3, 1), _mse, _batches(16), epochs=2, checkpoint=path, device="cpu",
                                progress=False)):
        with pytest.raises(ValueError, match=message) as error:
            attempt()
        text = str(error.value)
        assert str(path) in text and "weights_only=False" not in text and "training process" not in text
        if kind != "code":
            assert "Delete or move" in text  # what to do
    assert not (tmp_path / "ran.txt").exists()


# --- nonsense settings and misleading messages ------------------------------------------------------


def test_best_metric_that_is_never_logged_is_refused_before_anything_is_saved(tmp_path):
    x, y = _regression_data()
    loss = _counting()
    arguments = dict(epochs=2, val_data=[(x, y)], val_metrics={"max_error": _max_error},
                     checkpoint=tmp_path / "run.pt", device="cpu", progress=False)
    with pytest.raises(ValueError, match=r"best_metric 'max_error' .*one of \['train_loss', 'val_loss', "
                                         r"'val_max_error'\]"):
        fit(nn.Linear(3, 1), loss, [(x, y)], best_metric="max_error", **arguments)
    assert loss.calls == 0
    with pytest.raises(ValueError, match=r"best_metric 'val_max_eror' is not a logged column; nothing of epoch 1 "
                                         r"was saved; the logged columns are \[.*'val_max_error'"):
        fit(nn.Linear(3, 1), _mse, [(x, y)], best_metric="val_max_eror", **arguments)
    assert list(tmp_path.iterdir()) == []
    fit(nn.Linear(3, 1), _mse, [(x, y)], **{**arguments, "epochs": 1})
    loss = _counting()
    with pytest.raises(ValueError, match=r"best_metric 'val_mae' .* the columns logged in .*run\.pt' are"):
        fit(nn.Linear(3, 1), loss, [(x, y)], best_metric="val_mae", **arguments)  # known from the history
    assert loss.calls == 0


@pytest.mark.parametrize("kwargs, message", [
    ({"lr": float("inf")}, "lr must be a positive finite number"),
    ({"lr": float("nan")}, "lr must be a positive finite number"),
    ({"lr": 0}, "lr must be a positive finite number"),
    ({"amp": "off please"}, "amp must be True, False or None"),
])
def test_nonsense_fit_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fit(nn.Linear(3, 1), _mse, _batches(16), epochs=1, device="cpu", progress=False, **kwargs)


def test_divergence_is_blamed_on_the_learning_rate_not_the_data():
    model = nn.Linear(3, 1)
    with pytest.raises(ValueError, match=r"optimizer's learning rate \(group 0\) is inf"):
        fit(model, _mse, _batches(16), epochs=1, optimizer=torch.optim.SGD(model.parameters(), lr=float("inf")),
            device="cpu", progress=False)
    x, y = _regression_data()
    # lr 1e38: the first step's update overflows float32, with one batch an epoch, before validation
    model = nn.Linear(3, 1)
    with pytest.raises(NonFiniteLossError, match=r"weights became NaN or inf during epoch 1 \(weight.*"
                                                 r"Lower the learning rate \(now 1e\+38\)"):
        fit(model, _mse, [(x, y)], epochs=2, optimizer=torch.optim.SGD(model.parameters(), lr=1e38),
            val_data=[(x, y)], device="cpu", progress=False)
    model = nn.Linear(3, 1)
    with pytest.raises(NonFiniteLossError, match=r"already non-finite, so earlier optimizer steps diverged: lower "
                                                 r"the learning rate \(now 1e\+38\)"):
        fit(model, _mse, _batches(16), epochs=1, optimizer=torch.optim.SGD(model.parameters(), lr=1e38),
            device="cpu", progress=False)
