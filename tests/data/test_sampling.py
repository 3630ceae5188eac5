"""hmrlab.data.sampling.Resampled: epochs of a chosen size, items drawn with replacement."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset

from hmrlab.data.sampling import Resampled


class Numbers(Dataset):
    def __len__(self) -> int:
        return 5

    def __getitem__(self, item: int) -> int:
        return item


def test_draws_every_item_uniformly_and_reproducibly():
    resampled = Resampled(Numbers(), 4000)
    assert len(resampled) == 4000 and isinstance(resampled.dataset, Numbers)
    torch.manual_seed(0)
    draws = torch.tensor([resampled[i] for i in range(4000)])
    counts = torch.bincount(draws, minlength=5)
    assert counts.min() > 700 and counts.max() < 900  # 800 each expected
    torch.manual_seed(0)
    assert torch.equal(torch.tensor([resampled[i] for i in range(4000)]), draws)


def test_refuses_bad_sizes():
    with pytest.raises(ValueError, match="positive integer"):
        Resampled(Numbers(), 0)
    with pytest.raises(IndexError):
        Resampled(Numbers(), 3)[3]
