"""Deterministic, seed-free weights and images for fidelity fixtures too large to store (EfficientHuman's).

Every tensor of a state dict, in order, gets values of a sine of its flat index (arithmetic only, so the
same on every machine and torch version); scales keep a deep network's activations of order one:
``fan_in ** -0.5`` for weights of dimension >= 2, near 1 for norm gains and variances, 0.1 for the rest.
"""

import torch
from torch import nn


def _wave(numel: int, phase: float) -> torch.Tensor:
    return torch.sin(torch.arange(numel, dtype=torch.float64) * 0.7548776662 + phase).float()


def formula_tensors(keys_and_shapes, seed: int) -> dict[str, torch.Tensor]:
    """A state dict {key: tensor} for ``[(key, shape), ...]``, the ``seed`` shifting every phase."""
    state = {}
    for i, (key, shape) in enumerate(keys_and_shapes):
        shape = tuple(shape)
        numel = 1
        for n in shape:
            numel *= n
        wave = _wave(numel, 1.0 + 0.37 * i + 10.0 * seed).reshape(shape)
        leaf = key.rsplit(".", 1)[-1]
        if leaf == "num_batches_tracked":
            value = torch.zeros(shape, dtype=torch.int64)
        elif leaf == "running_var":
            value = 1.0 + 0.5 * wave**2
        elif len(shape) >= 2:
            value = wave * (numel // shape[0]) ** -0.5
        elif leaf in ("weight", "g", "scale") or key.endswith(("gamma", "beta")):
            value = 1.0 + 0.2 * wave
        else:
            value = 0.1 * wave
        state[key] = value
    return state


def fill_state_dict(module: nn.Module, seed: int) -> None:
    """Load `formula_tensors` of the module's own keys and shapes into it."""
    shapes = [(k, tuple(v.shape)) for k, v in module.state_dict().items()]
    module.load_state_dict(formula_tensors(shapes, seed))


def formula_image(batch: int, size: int) -> torch.Tensor:
    """A (batch, 3, size, size) image of smooth stripes and a ramp, values about in [-2, 2]."""
    return 2.0 * _wave(batch * 3 * size * size, 0.5).reshape(batch, 3, size, size)
