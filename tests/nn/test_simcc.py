"""hmrlab.nn.simcc: bin centres, Gaussian soft labels, soft-argmax decoding and the KL loss vs SciPy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import softmax
from scipy.stats import entropy, norm

from hmrlab.nn import simcc

pytestmark = pytest.mark.usefixtures("one_thread")


def test_bin_centres_split_the_range_evenly() -> None:
    torch.testing.assert_close(simcc.bin_centres(4, -1.0, 1.0), torch.tensor([-0.75, -0.25, 0.25, 0.75]))


def test_targets_are_normalised_gaussians_over_the_bins() -> None:
    coords = torch.tensor([[0.1, -0.23, 0.4]], dtype=torch.float64)
    labels = simcc.simcc_targets(coords, num_bins=64, sigma=0.05)
    assert labels.shape == (1, 3, 64)
    centres = (np.arange(64) + 0.5) / 64 - 0.5
    for axis, x in enumerate(coords[0].tolist()):
        expected = norm.pdf(centres, loc=x, scale=0.05)
        np.testing.assert_allclose(labels[0, axis].numpy(), expected / expected.sum(), rtol=1e-10)


def test_decode_recovers_coordinates_and_spread_of_a_gaussian() -> None:
    coords = torch.tensor([[-0.2, 0.0, 0.137]], dtype=torch.float64)
    labels = simcc.simcc_targets(coords, num_bins=256, sigma=0.03)
    decoded, sigma = simcc.simcc_decode(labels.log())
    # far from the range's ends the discretised Gaussian keeps its mean and standard deviation
    torch.testing.assert_close(decoded, coords, atol=1e-9, rtol=0)
    torch.testing.assert_close(sigma, torch.full_like(sigma, 0.03), atol=1e-4, rtol=0)


def test_decode_by_hand_on_three_bins() -> None:
    logits = torch.tensor([[0.0, 1.0, 2.0]], dtype=torch.float64)
    centres = np.array([-1.0, 0.0, 1.0]) * 2 / 3  # range [-1, 1] in three bins
    p = softmax([0.0, 1.0, 2.0])
    mean = (p * centres).sum()
    coords, sigma = simcc.simcc_decode(logits, low=-1.0, high=1.0)
    assert coords.item() == pytest.approx(mean)
    assert sigma.item() == pytest.approx(np.sqrt((p * (centres - mean) ** 2).sum()))


def test_decode_is_differentiable() -> None:
    logits = torch.randn(2, 3, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: simcc.simcc_decode(x), (logits,))


def test_loss_is_the_kl_divergence() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, 3, 16, generator=generator, dtype=torch.float64)
    targets = simcc.simcc_targets(torch.rand(2, 5, 3, generator=generator, dtype=torch.float64) - 0.5, 16, 0.1)
    kl = [entropy(t, softmax(l)) for t, l in zip(targets.reshape(-1, 16).numpy(), logits.reshape(-1, 16).numpy())]
    assert simcc.simcc_loss(logits, targets).item() == pytest.approx(np.mean(kl))
    weight = torch.zeros(2, 5, dtype=torch.float64)
    weight[1, 2] = 1
    assert simcc.simcc_loss(logits, targets, weight).item() == pytest.approx(np.mean(np.reshape(kl, (2, 5, 3))[1, 2]))
    assert simcc.simcc_loss(targets.log(), targets).item() == pytest.approx(0, abs=1e-12)


def test_bad_inputs_raise_with_the_expected_shape() -> None:
    with pytest.raises(ValueError, match=r"\(\.\.\., D, num_bins\)"):
        simcc.simcc_decode(torch.zeros(5))
    with pytest.raises(ValueError, match="num_bins must be an int >= 2"):
        simcc.simcc_targets(torch.zeros(2, 3), 1, 0.1)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        simcc.simcc_targets(torch.zeros(2, 3), 8, 0.0)
    with pytest.raises(ValueError, match="targets must have the logits' shape"):
        simcc.simcc_loss(torch.zeros(2, 3, 8), torch.zeros(2, 3, 4))
