"""SimCC's released loss normalisation and argmax decoding (leeyegy/SimCC) on the same tensors."""

import pytest
import torch

from hmrlab.nn.simcc import simcc_decode, simcc_loss, simcc_targets

pytestmark = pytest.mark.usefixtures("one_thread")


def test_authors_loss(load_fixture):
    """Their x and y have different bin counts (W k, H k), so one call per axis; their loss sums the axes."""
    f = load_fixture("simcc")
    weight = f["target_weight"][..., 0]
    loss = sum(simcc_loss(f[f"output_{a}"][:, :, None], f[f"target_{a}"][:, :, None], weight, normalisation="authors")
               for a in "xy")
    torch.testing.assert_close(loss, f["loss"], rtol=1e-6, atol=1e-7)


def test_authors_normalisation_is_axes_over_bins_times_ours(load_fixture):
    f = load_fixture("simcc")
    logits, targets = f["output_x"][:, :, None].expand(-1, -1, 2, -1), f["target_x"][:, :, None].expand(-1, -1, 2, -1)
    ours, theirs = simcc_loss(logits, targets), simcc_loss(logits, targets, normalisation="authors")
    torch.testing.assert_close(theirs, ours * 2 / logits.shape[-1])


def test_authors_argmax_decoding(load_fixture):
    f = load_fixture("simcc")
    (width, height), k = f["image_size"], f["split_ratio"]
    coords = [simcc_decode(f[f"output_{a}"][:, :, None], -0.5 / k, size - 0.5 / k, method="argmax")[0]
              for a, size in (("x", width), ("y", height))]
    torch.testing.assert_close(torch.cat(coords, -1), f["preds"], rtol=0, atol=1e-5)


def test_authors_labels_are_our_labels_as_densities(load_fixture):
    """Their Gaussian over bins at pixels i / k, normalised as a density: ours times the bins' sum of it."""
    f = load_fixture("simcc")
    (width, _), k, sigma = f["image_size"], f["split_ratio"], f["sigma"]
    theirs = f["target_x"]
    visible = f["target_weight"][..., 0] > 0.5
    bins = theirs.shape[-1]
    centre = f["joints"][..., 0][visible]  # pixels
    ours = simcc_targets(centre[..., None], bins, sigma / k, -0.5 / k, width - 0.5 / k)[..., 0, :]
    torch.testing.assert_close(ours * theirs[visible].sum(-1, keepdim=True), theirs[visible], rtol=0, atol=1e-5)
    assert torch.all(theirs[~visible] == 0)


def test_unknown_options():
    with pytest.raises(ValueError, match="method must be"):
        simcc_decode(torch.zeros(1, 2, 4), method="max")
    with pytest.raises(ValueError, match="normalisation must be"):
        simcc_loss(torch.zeros(1, 2, 4), torch.zeros(1, 2, 4), normalisation="mean")
