import random
from collections import namedtuple

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import hmrlab.train
from hmrlab.train import History, NonFiniteLossError, fit, load_checkpoint, to_device


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
    real_save = hmrlab.train.atomic_torch_save

    def spy(obj, path):
        written.append(obj["epoch"])
        return real_save(obj, path)

    monkeypatch.setattr(hmrlab.train, "atomic_torch_save", spy)
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
