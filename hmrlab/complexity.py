"""Model size and cost: parameters, FLOPs and MACs, measured the same way for every model.

Papers report "FLOPs" and "MACs" under different conventions, so this module fixes one and states it:

* **FLOPs are what** `torch.utils.flop_counter.FlopCounterMode` **counts**: one multiply-add is
  2 FLOPs, for matrix products (``mm``, ``addmm``, ``bmm``, ``baddbmm``), convolutions (any stride,
  padding, dilation or groups) and scaled-dot-product attention (the two products ``Q K^T`` and
  ``A V``). A bias addition is not counted.
* **MACs = FLOPs / 2**, i.e. the number of multiply-accumulates. Many HMR and pose papers (and tools
  such as thop and ptflops) call this number "FLOPs"; compare a paper's figure with our MACs when its
  numbers are about half of ours.
* **Elementwise work is not counted at all**: activations, normalisation layers (BatchNorm,
  LayerNorm), softmax, pooling, additions, indexing. In convolutional and transformer networks they
  are a small share of the work; in a network made mostly of such operations they are not.

Two things torch's counter cannot see are handled here so that CPU and GPU give the same count:
``nn.MultiheadAttention`` and ``nn.TransformerEncoderLayer`` switch, in eval mode without gradients,
to a fused "fast path" kernel with no FLOP formula, so `measure` turns that path off while it
counts; and torch (up to at least 2.13) has no formula for the CPU kernel of
``scaled_dot_product_attention`` (pytorch/pytorch#195460), so `measure` supplies the same formula
torch uses for the GPU kernels.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, flop_registry

if TYPE_CHECKING:  # pandas loads only when a table is made
    import pandas as pd

@dataclass(frozen=True)
class Complexity:
    """The size and cost of one forward pass of a module on given inputs.

    Attributes:
        params: number of parameters (all of them, trainable or not).
        flops: floating-point operations, a multiply-add counted as 2 (see the module docstring).
        by_module: FLOPs of each direct child of the module, by attribute name; FLOPs spent in the
            module's own ``forward`` outside any child are in ``flops`` but in no entry here.
    """

    params: int
    flops: int
    by_module: dict[str, int] = field(default_factory=dict)

    @property
    def macs(self) -> int:
        """Multiply-accumulates, ``flops // 2``."""
        return self.flops // 2


def count_params(module: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters of ``module``; a parameter shared by two layers is counted once.

    With ``trainable_only`` only parameters with ``requires_grad=True`` are counted (a frozen
    backbone's are not).
    """
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def _attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of ``softmax(Q K^T) V`` for ``Q (..., Lq, E)``, ``K (..., Lk, E)``, ``V (..., Lk, Ev)``.

    The same count torch uses for its GPU attention kernels: ``2 Lq Lk E`` for the scores plus
    ``2 Lq Lk Ev`` for the weighted sum, per batch element and head.
    """
    *batch, length_q, dim = query_shape
    length_k, dim_v = key_shape[-2], value_shape[-1]
    return 2 * math.prod(batch) * length_q * length_k * (dim + dim_v)


# Only supplied where this torch lacks a formula, so that a torch which has one is trusted.
_MISSING_FORMULAS = {
    op: _attention_flops
    for op in [getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)]
    if op is not None and op not in flop_registry
}


def _top_level_flops(counts: dict[str, dict], root: str) -> dict[str, int]:
    """Sum the counter's per-module FLOPs into one number per direct child of ``root``.

    The counter adds each operation to every module on the call stack, and records a container
    (``nn.ModuleList``, or an ``nn.Sequential`` whose layers are called one by one) only through its
    members. So a child's FLOPs are its own entry when it was called, else the sum over its
    outermost called descendants.
    """
    totals = {name: sum(ops.values()) for name, ops in counts.items()}
    prefix = root + "."
    by_child: dict[str, int] = {}
    for name, flops in totals.items():
        if not name.startswith(prefix):
            continue
        parts = name[len(prefix) :].split(".")
        ancestors = (prefix + ".".join(parts[:i]) for i in range(1, len(parts)))
        if any(ancestor in totals for ancestor in ancestors):
            continue  # already inside an outer entry
        by_child[parts[0]] = by_child.get(parts[0], 0) + flops
    return by_child


def measure(module: nn.Module, *inputs, **kwargs) -> Complexity:
    """Count the parameters and FLOPs of ``module(*inputs, **kwargs)``.

    The forward pass runs once in eval mode (dropout off, BatchNorm on running statistics) without
    gradients; every submodule's train/eval mode is restored afterwards. Inputs must already be on
    the module's device. FLOPs scale with the inputs: pass the batch size and resolution the paper
    reports (usually one image, e.g. ``torch.zeros(1, 3, 224, 224)``).
    """
    if not isinstance(module, nn.Module):
        raise ValueError(f"measure needs an nn.Module; got {type(module).__name__}")
    modes = {m: m.training for m in module.modules()}
    fastpath = torch.backends.mha.get_fastpath_enabled()
    counter = FlopCounterMode(display=False, custom_mapping=_MISSING_FORMULAS)
    try:
        module.eval()
        torch.backends.mha.set_fastpath_enabled(False)
        with torch.no_grad(), counter:
            module(*inputs, **kwargs)
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        # Pre-order (parents first), so that a child's own mode wins over its parent's train().
        for m, training in modes.items():
            m.train(training)
    return Complexity(
        params=count_params(module),
        flops=counter.get_total_flops(),
        by_module=_top_level_flops(counter.get_flop_counts(), type(module).__name__),
    )


def format_count(n: numbers.Real) -> str:
    """A count with an SI suffix and two decimals: ``25_557_032 -> "25.56 M"``, ``4.11e9 -> "4.11 G"``.

    Counts below a thousand are printed as they are (``"512"``).
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Real) or not math.isfinite(n):
        raise ValueError(f"format_count needs a finite number; got {n!r}")
    if abs(n) < 1000:
        return f"{n:g}" if isinstance(n, float) else str(n)
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M")):
        # Compare after rounding so that 999_999 reads "1.00 M", not "1000.00 K".
        if round(abs(n) / scale, 2) >= 1:
            return f"{n / scale:.2f} {suffix}"
    return f"{n / 1e3:.2f} K"


def _relative_difference(measured: int, reported: float | None) -> float:
    if reported is None:
        return math.nan
    return 100.0 * (measured - reported) / reported


def compare_table(rows: Iterable[Sequence]) -> pd.DataFrame:
    """Measured against reported complexity, one model per row, for a notebook to display.

    Each row is ``(name, measured, reported_params, reported_macs)`` with ``measured`` a
    `Complexity` and the reported values plain counts as the paper gives them (``25.56e6``, not
    ``25.56``), or ``None`` where the paper gives none. The table is indexed by name and has the
    columns ``params``, ``params (paper)``, ``params diff %``, ``MACs``, ``MACs (paper)``,
    ``MACs diff %``, where ``diff % = 100 (measured - reported) / reported`` (NaN when not reported).
    Show it with ``table.style.format(format_count, subset=[...])`` for readable counts.
    """
    records = []
    for row in rows:
        if len(row) != 4 or not isinstance(row[1], Complexity):
            raise ValueError(
                "each row must be (name, Complexity, reported_params or None, reported_macs or None); "
                f"got {row!r}"
            )
        name, measured, reported_params, reported_macs = row
        for label, value in (("reported_params", reported_params), ("reported_macs", reported_macs)):
            if value is not None and not value > 0:
                raise ValueError(f"{label} of {name!r} must be a positive count or None; got {value!r}")
        records.append(
            {
                "model": name,
                "params": measured.params,
                "params (paper)": math.nan if reported_params is None else reported_params,
                "params diff %": _relative_difference(measured.params, reported_params),
                "MACs": measured.macs,
                "MACs (paper)": math.nan if reported_macs is None else reported_macs,
                "MACs diff %": _relative_difference(measured.macs, reported_macs),
            }
        )
    columns = ["model", "params", "params (paper)", "params diff %", "MACs", "MACs (paper)", "MACs diff %"]
    import pandas as pd

    return pd.DataFrame.from_records(records, columns=columns).set_index("model")
