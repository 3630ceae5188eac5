"""Train a small MLP with `hmrlab.training.loop.fit`. tests/training/test_loop.py runs `train` in its own process and
this file under torchrun with 2 processes (gloo on CPU), where process 0 saves the final weights and
the history to the path given."""

import sys

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import TensorDataset

from hmrlab.training.loop import fit, init_distributed, sharded_loader


def mse(model, batch):
    x, y = batch
    return {"loss": ((model(x) - y) ** 2).mean(), "mae": (model(x) - y).abs().mean()}


def train() -> tuple[nn.Module, list[dict], int]:
    """Fit the MLP on this process's shard; returns it, the history and the number of processes."""
    _, world = init_distributed()
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=generator)
    y = torch.sin(x @ torch.randn(4, 2, generator=generator))
    data = TensorDataset(x, y)
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 2))
    history = fit(
        model, mse, sharded_loader(data, 16 // world, seed=3), epochs=3,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1), val_data=sharded_loader(data, 8, shuffle=False),
        device="cpu", progress=False,
    )
    return model, list(history), world


if __name__ == "__main__":
    torch.set_num_threads(1)
    trained, rows, processes = train()
    if dist.get_rank() == 0:
        torch.save({"model": trained.state_dict(), "history": rows, "world": processes}, sys.argv[1])
    dist.destroy_process_group()
