import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hmrlab.complexity import Complexity, compare_table, count_params, format_count, measure


def test_linear_macs_closed_form():
    batch, d_in, d_out = 4, 7, 5
    result = measure(nn.Linear(d_in, d_out), torch.zeros(batch, d_in))
    assert result.macs == batch * d_in * d_out
    assert result.flops == 2 * result.macs
    assert result.params == d_in * d_out + d_out


def _conv_macs(c_in, c_out, k, groups, h_out, w_out, batch=1):
    return batch * h_out * w_out * c_out * (c_in // groups) * k * k


def _conv_out(size, k, stride, padding):
    return (size + 2 * padding - k) // stride + 1


def test_conv_macs_closed_form_strided():
    conv = nn.Conv2d(3, 8, kernel_size=3, stride=2, padding=1)
    h, w = 11, 9
    result = measure(conv, torch.zeros(2, 3, h, w))
    h_out, w_out = _conv_out(h, 3, 2, 1), _conv_out(w, 3, 2, 1)
    assert (h_out, w_out) == (6, 5)
    assert result.macs == _conv_macs(3, 8, 3, 1, h_out, w_out, batch=2)


def test_conv_macs_closed_form_depthwise():
    channels, k, size = 6, 5, 10
    conv = nn.Conv2d(channels, channels, kernel_size=k, padding=2, groups=channels, bias=False)
    result = measure(conv, torch.zeros(1, channels, size, size))
    assert result.macs == size * size * channels * 1 * k * k
    assert result.params == channels * k * k


def _attention_macs(batch, length_q, length_k, dim, dim_v):
    return batch * length_q * length_k * (dim + dim_v)  # Q K^T then A V


def test_scaled_dot_product_attention_macs_closed_form():
    # Equal head sizes make CPU torch pick its fused kernel, the one torch's counter misses.
    class Attend(nn.Module):
        def forward(self, q, k, v):
            return F.scaled_dot_product_attention(q, k, v)

    batch, heads, length_q, length_k, dim = 2, 3, 7, 9, 4
    q = torch.randn(batch, heads, length_q, dim)
    k, v = torch.randn(batch, heads, length_k, dim), torch.randn(batch, heads, length_k, dim)
    result = measure(Attend(), q, k, v)
    assert result.macs == _attention_macs(batch * heads, length_q, length_k, dim, dim)


@pytest.mark.parametrize("training", [True, False])
def test_multihead_attention_macs_closed_form(training):
    # In eval mode torch would take its fused fast path, invisible to the counter.
    batch, length, dim, heads = 3, 5, 8, 2
    attention = nn.MultiheadAttention(dim, heads, batch_first=True).train(training)
    x = torch.randn(batch, length, dim)
    result = measure(attention, x, x, x)
    projections = batch * length * 4 * dim * dim  # Q, K, V and output projections
    scores_and_sum = _attention_macs(batch, length, length, dim, dim)  # heads split dim
    assert result.macs == projections + scores_and_sum
    assert attention.training is training
    assert torch.backends.mha.get_fastpath_enabled()


def test_params_by_hand_and_trainable_only():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    by_hand = (3 * 4 * 9 + 4) + (4 + 4) + (4 * 36 * 10 + 10)
    assert count_params(net) == by_hand
    net[0].requires_grad_(False)
    assert count_params(net, trainable_only=True) == by_hand - (3 * 4 * 9 + 4)
    assert measure(net, torch.zeros(1, 3, 8, 8)).params == by_hand


def test_shared_parameters_counted_once():
    layer = nn.Linear(3, 3)
    assert count_params(nn.Sequential(layer, layer)) == 12


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(6, 6) for _ in range(3)])
        self.dropout = nn.Dropout(0.5)
        self.head = nn.Linear(6, 2)

    def forward(self, x):
        for block in self.blocks:
            x = torch.relu(block(x))
        return self.head(self.dropout(x)) @ torch.ones(2, 2)  # the last product belongs to no child


def test_by_module_sums_children_and_modes_are_restored():
    net = _Net().train()
    net.blocks[1].eval()
    result = measure(net, torch.zeros(4, 6))
    assert result.by_module == {"blocks": 2 * 3 * 4 * 6 * 6, "head": 2 * 4 * 6 * 2}
    assert result.flops == sum(result.by_module.values()) + 2 * 4 * 2 * 2
    assert [m.training for m in net.blocks] == [True, False, True]
    assert net.training and net.head.training


def test_measure_runs_in_eval_mode_without_grad():
    seen = {}

    class Probe(nn.Linear):
        def forward(self, x):
            seen["training"], seen["grad"] = self.training, torch.is_grad_enabled()
            return super().forward(x)

    measure(Probe(2, 2).train(), torch.zeros(1, 2))
    assert seen == {"training": False, "grad": False}


@pytest.mark.parametrize(
    "n, text",
    [(512, "512"), (1234, "1.23 K"), (25_557_032, "25.56 M"), (4.11e9, "4.11 G"), (999_999, "1.00 M"),
     (2.5e12, "2.50 T")],
)
def test_format_count(n, text):
    assert format_count(n) == text


def test_format_count_rejects_non_numbers():
    with pytest.raises(ValueError, match="finite number"):
        format_count(float("nan"))


def test_compare_table_columns_and_relative_difference():
    measured = Complexity(params=110, flops=2 * 300)
    table = compare_table([("a", measured, 100, 400), ("b", measured, None, 300)])
    assert list(table.columns) == [
        "params", "params (paper)", "params diff %", "MACs", "MACs (paper)", "MACs diff %",
    ]
    assert list(table.index) == ["a", "b"]
    assert table.loc["a", "params diff %"] == pytest.approx(10.0)
    assert table.loc["a", "MACs diff %"] == pytest.approx(-25.0)
    assert math.isnan(table.loc["b", "params diff %"]) and pd.isna(table.loc["b", "params (paper)"])
    assert table.loc["b", "MACs diff %"] == 0.0


def test_compare_table_rejects_malformed_rows():
    with pytest.raises(ValueError, match="each row must be"):
        compare_table([("a", 100, 100, 400)])
    with pytest.raises(ValueError, match="positive count"):
        compare_table([("a", Complexity(1, 2), 0, None)])
