"""Multi-head attention and its low-dimensional variants LCP and LSP (LIFD-HMR, arXiv 2510.18267).

Standard attention between ``N_q`` query tokens and ``N_k`` context tokens of ``C`` channels
(Vaswani et al. 2017, Eq. 1 and the multi-head form) is, per head of ``d = C / h`` channels,

    A = softmax(Q K^T / sqrt(d)),  out = A V,   Q = x W_q, K = c W_k, V = c W_v,

followed by an output projection ``W_o``. Its attention map ``A`` has ``h N_q N_k`` entries and
costs ``N_q N_k C`` MACs for ``Q K^T`` plus as many for ``A V``.

LIFD-HMR's low-dimensional mesh-pose module (LDMP) replaces it with two variants that "adaptively
pool Q/K along the channel and vertex/joint dimensions before the dot product": **LCP**
(low-dimensional collaborative perception, a cross-attention from joints to vertices or back) and
**LSP** (low-dimensional self-perception, a self-attention). The paper gives no formula; this module
reads it as follows, and every choice is an argument:

1. *Token pooling* (``n_low``): the context tokens are averaged in ``n_low`` contiguous groups
   (adaptive average pooling, as ``nn.AdaptiveAvgPool1d`` groups them) **before** the K and V
   projections, so that K and V keep one row per pooled token and the projections get cheaper too
   (as in PVT's spatial-reduction attention). The queries are not pooled: the output needs one row
   per query token (a vertex or a joint).
2. *Channel pooling* (``c_low``): Q and K are averaged over contiguous groups of channels inside
   each head, from ``d`` to ``d_low = c_low / h`` channels, so the scores cost ``N_q n_low c_low``
   MACs; the scale becomes ``1 / sqrt(d_low)``. V keeps its ``C`` channels (the output must).

So ``A = softmax(pool_c(Q) pool_c(K_pooled)^T / sqrt(d_low))`` has ``h N_q n_low`` entries. Passing
``c_low = C`` and ``n_low = N_k`` (or ``None``) gives exactly standard attention. `attention_macs`
states the cost of both and agrees with `hmrlab.complexity.measure` (tested). The dot product itself
is `scaled_dot_product_attention` (two matrix products, so the map can be shown).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hmrlab.validation import format_shape

__all__ = [
    "attention_macs",
    "attention_map_bytes",
    "pool_tokens",
    "pool_channels",
    "Attention",
    "LCP",
    "LSP",
    "scaled_dot_product_attention",
]


def scaled_dot_product_attention(
    query: Tensor, key: Tensor, value: Tensor, *, dropout: float = 0.0, training: bool = False
) -> tuple[Tensor, Tensor]:
    """``softmax(Q K^T / sqrt(d)) V`` (Eq. 1 of Vaswani et al. 2017) and the attention weights.

    query (..., Lq, d), key (..., Lk, d), value (..., Lk, dv) -> output (..., Lq, dv) and weights
    (..., Lq, Lk), each row a probability distribution over the Lk keys. Self-attention is
    ``Q, K, V`` from the same tokens; cross-attention takes ``K, V`` from other tokens (XLR).
    ``dropout`` drops weights while ``training``.
    """
    if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise ValueError(
            "query (..., Lq, d), key (..., Lk, d) and value (..., Lk, dv) must agree on d and Lk; got "
            f"{format_shape(tuple(query.shape))}, {format_shape(tuple(key.shape))}, {format_shape(tuple(value.shape))}"
        )
    scores = query @ key.transpose(-2, -1) * query.shape[-1] ** -0.5
    weights = scores.softmax(dim=-1)
    return F.dropout(weights, dropout, training) @ value, weights


def _check_tokens(x: Tensor, channels: int, name: str) -> None:
    if not isinstance(x, Tensor) or x.dim() != 3 or x.shape[-1] != channels or x.shape[1] == 0:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name} must have shape (B, N, {channels}) with N >= 1; got {shape}")


def pool_tokens(x: Tensor, n_low: int) -> Tensor:
    """Average tokens in ``n_low`` contiguous groups: ``(B, N, C) -> (B, n_low, C)``.

    Group ``i`` covers tokens ``floor(i N / n_low)`` to ``ceil((i + 1) N / n_low) - 1``, the
    grouping of ``nn.AdaptiveAvgPool1d`` (groups overlap by one token when ``n_low`` does not divide
    ``N``). The token axis of LCP/LSP's context, step 1 of the module docstring.
    """
    if not isinstance(x, Tensor) or x.dim() != 3:
        raise ValueError(f"x must have shape (B, N, C); got {tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
    if not 1 <= n_low <= x.shape[1]:
        raise ValueError(f"n_low must be between 1 and the number of tokens N = {x.shape[1]}; got {n_low}")
    return F.adaptive_avg_pool1d(x.transpose(1, 2), n_low).transpose(1, 2)


def pool_channels(x: Tensor, d_low: int) -> Tensor:
    """Average each head's channels in ``d_low`` contiguous groups: ``(B, h, N, d) -> (B, h, N, d_low)``.

    Step 2 of the module docstring, applied to Q and K; ``d_low = d`` returns ``x`` unchanged.
    """
    if not isinstance(x, Tensor) or x.dim() != 4:
        raise ValueError(f"x must have shape (B, h, N, d); got {tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}")
    if not 1 <= d_low <= x.shape[-1]:
        raise ValueError(f"d_low must be between 1 and the head width d = {x.shape[-1]}; got {d_low}")
    if d_low == x.shape[-1]:
        return x
    return F.adaptive_avg_pool1d(x.flatten(0, 2)[:, None], d_low)[:, 0].unflatten(0, x.shape[:3])


def attention_macs(n_q: int, n_k: int, channels: int, c_low: int | None = None, n_low: int | None = None) -> int:
    """MACs of one `Attention`/`LCP`/`LSP` call for one batch element (biases, softmax and pooling not counted).

    ``n_q`` query tokens, ``n_k`` context tokens, ``C = channels``:
    ``2 n_q C^2`` (Q and output projections) ``+ 2 n_low C^2`` (K and V projections of the pooled
    context) ``+ n_q n_low c_low`` (scores) ``+ n_q n_low C`` (weighted sum of V). Standard
    attention is ``c_low = C``, ``n_low = n_k`` (the defaults): ``2 (n_q + n_k) C^2 + 2 n_q n_k C``.
    """
    c_low = channels if c_low is None else c_low
    n_low = n_k if n_low is None else n_low
    return 2 * n_q * channels**2 + 2 * n_low * channels**2 + n_q * n_low * c_low + n_q * n_low * channels


def attention_map_bytes(batch: int, n_q: int, n_k: int, heads: int = 1, dtype: torch.dtype = torch.float32) -> int:
    """Bytes of the attention map ``(B, h, N_q, N_k)``: ``B h N_q N_k`` times the element size.

    For ``Q, K`` of shape ``(B, N, C)`` this is ``O(B N^2)``, independent of ``C`` (the paper's quick
    check); with LCP/LSP token pooling ``N_k`` becomes ``n_low``.
    """
    return batch * heads * n_q * n_k * torch.empty((), dtype=dtype).element_size()


class Attention(nn.Module):
    """Multi-head attention of query tokens ``(B, N_q, C)`` over context tokens ``(B, N_k, C)``.

    ``attention(x, context)`` is cross-attention; ``attention(x, x)`` self-attention. With ``c_low``
    and ``n_low`` it pools as in the module docstring (LCP/LSP); without them it is standard
    attention, the same maths as ``nn.MultiheadAttention`` with ``batch_first=True``. Parameters:
    ``4 C^2 + 4 C``; MACs: `attention_macs`.

    Args:
        channels: token width ``C``, divisible by ``heads``.
        heads: number of heads ``h``.
        c_low: pooled width of Q and K over all heads (``C_low``), divisible by ``heads``; ``None``
            keeps ``C``.
        n_low: number of pooled context tokens (``N_low``); ``None`` keeps all. A context with fewer
            tokens than ``n_low`` is not pooled.
    """

    def __init__(self, channels: int, heads: int = 8, c_low: int | None = None, n_low: int | None = None) -> None:
        super().__init__()
        if channels < 1 or heads < 1 or channels % heads:
            raise ValueError(f"channels ({channels}) must be a positive multiple of heads ({heads})")
        c_low = channels if c_low is None else c_low
        if not heads <= c_low <= channels or c_low % heads:
            raise ValueError(
                f"c_low must be a multiple of heads ({heads}) between {heads} and channels ({channels}); got {c_low}. "
                "Pass fewer heads for a smaller c_low."
            )
        if n_low is not None and n_low < 1:
            raise ValueError(f"n_low must be a positive number of tokens or None; got {n_low}")
        self.channels, self.heads, self.c_low, self.n_low = channels, heads, c_low, n_low
        self.q = nn.Linear(channels, channels)
        self.k = nn.Linear(channels, channels)
        self.v = nn.Linear(channels, channels)
        self.out = nn.Linear(channels, channels)

    def _split_heads(self, x: Tensor) -> Tensor:
        return x.unflatten(-1, (self.heads, -1)).transpose(1, 2)  # (B, N, C) -> (B, h, N, d)

    def attend(self, x: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        """Output ``(B, N_q, C)`` and attention map ``(B, h, N_q, n_low or N_k)`` of ``x`` over ``context``."""
        _check_tokens(x, self.channels, "x")
        _check_tokens(context, self.channels, "context")
        if context.shape[0] != x.shape[0]:
            raise ValueError(f"x and context must have the same batch size; got {x.shape[0]} and {context.shape[0]}")
        if self.n_low is not None and self.n_low < context.shape[1]:
            context = pool_tokens(context, self.n_low)
        d_low = self.c_low // self.heads
        q = pool_channels(self._split_heads(self.q(x)), d_low)
        k = pool_channels(self._split_heads(self.k(context)), d_low)
        values, weights = scaled_dot_product_attention(q, k, self._split_heads(self.v(context)))
        return self.out(values.transpose(1, 2).flatten(2)), weights

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        """``(B, N_q, C)`` query tokens over ``(B, N_k, C)`` context tokens -> ``(B, N_q, C)``."""
        return self.attend(x, context)[0]

    def macs(self, n_q: int, n_k: int) -> int:
        """`attention_macs` for this module's sizes, per batch element."""
        n_low = n_k if self.n_low is None else min(self.n_low, n_k)
        return attention_macs(n_q, n_k, self.channels, self.c_low, n_low)


class LCP(Attention):
    """Low-dimensional collaborative perception: pooled cross-attention, ``LCP(x, context)``.

    In LDMP the joints attend to the coarse-mesh vertices (pose branch) and the vertices to the
    joints (mesh branch). `Attention` with ``c_low`` and ``n_low`` set; see the module docstring.
    """

    def __init__(self, channels: int, heads: int, c_low: int, n_low: int) -> None:
        super().__init__(channels, heads, c_low, n_low)


class LSP(Attention):
    """Low-dimensional self-perception: pooled self-attention, ``LSP(x) = LCP-style attention of x over x``."""

    def __init__(self, channels: int, heads: int, c_low: int, n_low: int) -> None:
        super().__init__(channels, heads, c_low, n_low)

    def attend(self, x: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        """Output ``(B, N, C)`` and map ``(B, h, N, min(n_low, N))`` of ``x`` over itself."""
        return super().attend(x, x)

    def forward(self, x: Tensor) -> Tensor:  # type: ignore[override]
        """``(B, N, C) -> (B, N, C)``."""
        return self.attend(x)[0]
