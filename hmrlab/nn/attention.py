"""Multi-head attention (one implementation), the pre-norm transformer block, and LIFD-HMR's LCP and LSP.

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

`Attention` is the package's one multi-head attention; the models configure it rather than copy it:

* LIFD-HMR's LCP and LSP are `Attention` with ``c_low`` and ``n_low`` (the classes `LCP`, `LSP`);
* RTPCA's temporal attention gives it a ``key_transform`` and a ``value_transform`` (a
  `hmrlab.nn.pyramid.TemporalPyramid` each, applied to the projected keys and values) and passes
  ``memory``, the previous block's refined keys and values, appended after its own (XLR);
* `TransformerBlock` is the one pre-norm transformer block around it (``x + Attention(LN(x))``, then
  ``x + MLP(LN(x))``), used by MixSTE/RTPCA, LIFD-HMR's attention on the low band and, without its
  MLP, the keypoints-guided HMR's softmax-attention ablation.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hmrlab.validation import check_exact_shape, check_nonempty, format_shape

__all__ = [
    "attention_macs",
    "attention_map_bytes",
    "pool_tokens",
    "pool_channels",
    "Attention",
    "AttentionOutput",
    "LCP",
    "LSP",
    "TransformerBlock",
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


def attention_macs(
    n_q: int, n_k: int, channels: int, c_low: int | None = None, n_low: int | None = None, n_memory: int = 0
) -> int:
    """MACs of one `Attention`/`LCP`/`LSP` call for one batch element (biases, softmax and pooling not counted).

    ``n_q`` query tokens, ``n_k`` context tokens, ``C = channels``, ``M = n_memory`` extra keys and
    values (`Attention`'s ``memory``, already projected):
    ``2 n_q C^2`` (Q and output projections) ``+ 2 n_low C^2`` (K and V projections of the pooled
    context) ``+ n_q (n_low + M) c_low`` (scores) ``+ n_q (n_low + M) C`` (weighted sum of V). Standard
    attention is ``c_low = C``, ``n_low = n_k``, ``M = 0`` (the defaults): ``2 (n_q + n_k) C^2 + 2 n_q n_k C``.
    A ``key_transform``/``value_transform`` costs what it costs on top (for a `TemporalPyramid`, its
    docstring says).
    """
    c_low = channels if c_low is None else c_low
    n_low = n_k if n_low is None else n_low
    keys = n_low + n_memory
    return 2 * n_q * channels**2 + 2 * n_low * channels**2 + n_q * keys * c_low + n_q * keys * channels


def attention_map_bytes(batch: int, n_q: int, n_k: int, heads: int = 1, dtype: torch.dtype = torch.float32) -> int:
    """Bytes of the attention map ``(B, h, N_q, N_k)``: ``B h N_q N_k`` times the element size.

    For ``Q, K`` of shape ``(B, N, C)`` this is ``O(B N^2)``, independent of ``C`` (the paper's quick
    check); with LCP/LSP token pooling ``N_k`` becomes ``n_low``.
    """
    return batch * heads * n_q * n_k * torch.empty((), dtype=dtype).element_size()


class AttentionOutput(NamedTuple):
    """What `Attention.attend` computes, for queries ``(B, N_q, C)`` over a context of ``N_k`` tokens.

    ``output`` (B, N_q, C); ``weights`` (B, h, N_q, L + M), the attention map, each row a probability
    distribution over the ``L`` context keys followed by the ``M`` memory keys (``L = min(n_low, N_k)``,
    the pooled context, unless the transforms change it); ``keys`` and ``values`` (B, L, C), the
    context's projected keys and values after ``key_transform``/``value_transform`` and before the
    memory and the channel pooling: what RTPCA's next temporal block takes as its memory (XLR).
    """

    output: Tensor
    weights: Tensor
    keys: Tensor
    values: Tensor


class Attention(nn.Module):
    """Multi-head attention of query tokens ``(B, N_q, C)`` over context tokens ``(B, N_k, C)``.

    ``attention(x, context)`` is cross-attention; ``attention(x)`` self-attention (the context is
    ``x``). In order: the context is pooled to ``n_low`` tokens (if set); ``Q = x W_q``,
    ``K = c W_k``, ``V = c W_v`` (separate linear layers with biases); ``K`` and ``V`` pass through
    ``key_transform`` and ``value_transform`` (if given; modules ``(B, L, C) -> (B, L', C)``, the same
    ``L'`` for both, e.g. RTPCA's `TemporalPyramid`); ``memory`` = (keys, values) ``(B, M, C)`` is
    appended after them; Q and K are pooled to ``c_low`` channels (if set); each head attends
    (`scaled_dot_product_attention`, its weights dropped with probability ``dropout`` while training);
    the heads are merged and projected by ``W_o``. Without the options it is standard attention, the
    same maths as ``nn.MultiheadAttention`` with ``batch_first=True`` (tested).

    Parameters: ``4 C^2 + 4 C``, plus the transforms'. MACs: `attention_macs` (`macs`). The state
    dict has ``q``, ``k``, ``v``, ``out`` (+ ``key_transform``, ``value_transform``); a fused
    ``qkv`` projection of shape ``(3 C, C)`` is ``cat([q.weight, k.weight, v.weight])`` (rows of Q
    first; within each, head ``i`` has rows ``i d .. (i + 1) d - 1``), as `nn.MultiheadAttention`'s
    ``in_proj_weight`` and timm's or MixSTE's ``qkv.weight``.

    Args:
        channels: token width ``C``, divisible by ``heads``.
        heads: number of heads ``h``.
        c_low: pooled width of Q and K over all heads (``C_low``), divisible by ``heads``; ``None``
            keeps ``C``.
        n_low: number of pooled context tokens (``N_low``); ``None`` keeps all. A context with fewer
            tokens than ``n_low`` is not pooled.
        dropout: probability of dropping an attention weight while training.
        key_transform, value_transform: modules applied to the projected keys and to the projected
            values ``(B, L, C)``; ``None`` for none.
    """

    def __init__(
        self,
        channels: int,
        heads: int = 8,
        c_low: int | None = None,
        n_low: int | None = None,
        *,
        dropout: float = 0.0,
        key_transform: nn.Module | None = None,
        value_transform: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if channels < 1 or heads < 1 or channels % heads:
            raise ValueError(
                f"channels ({channels}) must be positive and divisible by heads ({heads}): each head "
                f"takes channels / heads of them; choose heads among the divisors of {channels}"
            )
        c_low = channels if c_low is None else c_low
        if not heads <= c_low <= channels or c_low % heads:
            raise ValueError(
                f"c_low must be a multiple of heads ({heads}) between {heads} and channels ({channels}); got {c_low}. "
                "Pass fewer heads for a smaller c_low."
            )
        if n_low is not None and n_low < 1:
            raise ValueError(f"n_low must be a positive number of tokens or None; got {n_low}")
        if not 0.0 <= dropout <= 1.0:
            raise ValueError(f"dropout must be a probability in [0, 1]; got {dropout}")
        self.channels, self.heads, self.c_low, self.n_low, self.dropout = channels, heads, c_low, n_low, dropout
        self.q = nn.Linear(channels, channels)
        self.k = nn.Linear(channels, channels)
        self.v = nn.Linear(channels, channels)
        self.out = nn.Linear(channels, channels)
        self.key_transform = key_transform
        self.value_transform = value_transform

    def _split_heads(self, x: Tensor) -> Tensor:
        return x.unflatten(-1, (self.heads, -1)).transpose(1, 2)  # (B, N, C) -> (B, h, N, d)

    def _check_memory(self, memory: tuple[Tensor, Tensor], batch: int) -> None:
        if not isinstance(memory, (tuple, list)) or len(memory) != 2:
            raise ValueError(f"memory must be a pair (keys, values) of shape (B, M, {self.channels}); got {type(memory).__name__}")
        keys, values = memory
        check_exact_shape(keys, "memory keys", ("B", "M", self.channels))
        check_exact_shape(values, "memory values", ("B", "M", self.channels))
        if keys.shape != values.shape or keys.shape[0] != batch:
            raise ValueError(
                f"memory keys and values must have the same shape (B, M, {self.channels}) with the queries' "
                f"B = {batch}; got {format_shape(tuple(keys.shape))} and {format_shape(tuple(values.shape))}"
            )

    def attend(
        self, x: Tensor, context: Tensor | None = None, *, memory: tuple[Tensor, Tensor] | None = None
    ) -> AttentionOutput:
        """`AttentionOutput` (output ``(B, N_q, C)``, weights, transformed keys and values) of ``x`` over
        ``context`` (``x`` itself when ``None``) and the extra ``memory`` (keys, values) ``(B, M, C)``."""
        check_exact_shape(x, "x", ("B", "N", self.channels))
        check_nonempty(x, "x")
        if context is None:
            context = x
        else:
            check_exact_shape(context, "context", ("B", "N", self.channels))
            check_nonempty(context, "context")
            if context.shape[0] != x.shape[0]:
                raise ValueError(f"x and context must have the same batch size; got {x.shape[0]} and {context.shape[0]}")
        if memory is not None:
            self._check_memory(memory, x.shape[0])
        if self.n_low is not None and self.n_low < context.shape[1]:
            context = pool_tokens(context, self.n_low)
        keys, values = self.k(context), self.v(context)
        if self.key_transform is not None:
            keys = self.key_transform(keys)
        if self.value_transform is not None:
            values = self.value_transform(values)
        all_keys, all_values = keys, values
        if memory is not None:
            all_keys, all_values = torch.cat([keys, memory[0]], 1), torch.cat([values, memory[1]], 1)
        d_low = self.c_low // self.heads
        q = pool_channels(self._split_heads(self.q(x)), d_low)
        k = pool_channels(self._split_heads(all_keys), d_low)
        out, weights = scaled_dot_product_attention(
            q, k, self._split_heads(all_values), dropout=self.dropout, training=self.training
        )
        return AttentionOutput(self.out(out.transpose(1, 2).flatten(2)), weights, keys, values)

    def forward(
        self, x: Tensor, context: Tensor | None = None, *, memory: tuple[Tensor, Tensor] | None = None
    ) -> Tensor:
        """``(B, N_q, C)`` query tokens over ``(B, N_k, C)`` context tokens (``x`` when ``None``) -> ``(B, N_q, C)``."""
        return self.attend(x, context, memory=memory).output

    def macs(self, n_q: int, n_k: int, n_memory: int = 0) -> int:
        """`attention_macs` for this module's sizes, per batch element (the transforms not counted)."""
        n_low = n_k if self.n_low is None else min(self.n_low, n_k)
        return attention_macs(n_q, n_k, self.channels, self.c_low, n_low, n_memory)


class LCP(Attention):
    """Low-dimensional collaborative perception: pooled cross-attention, ``LCP(x, context)``.

    In LDMP the joints attend to the coarse-mesh vertices (pose branch) and the vertices to the
    joints (mesh branch). `Attention` with ``c_low`` and ``n_low`` set; see the module docstring.
    """

    def __init__(self, channels: int, heads: int, c_low: int, n_low: int) -> None:
        super().__init__(channels, heads, c_low, n_low)


class LSP(Attention):
    """Low-dimensional self-perception: pooled self-attention ``LSP(x)``, LCP-style attention of x over x.

    `Attention` with ``c_low`` and ``n_low`` set, called without a context: ``(B, N, C) -> (B, N, C)``,
    map ``(B, h, N, min(n_low, N))``.
    """

    def __init__(self, channels: int, heads: int, c_low: int, n_low: int) -> None:
        super().__init__(channels, heads, c_low, n_low)


class TransformerBlock(nn.Module):
    """Pre-norm transformer block over tokens ``(B, N, C) -> (B, N, C)`` (Vaswani et al. 2017; pre-norm as in ViT).

    ``x = x + Dropout(Attention(LN_1(x)))``, a multi-head self-attention (`Attention`, ``heads``
    heads, attention-weight dropout ``dropout``), then ``x = x + MLP(LN_2(x))`` with
    ``MLP = Linear(C, m), GELU, Dropout, Linear(m, C), Dropout`` and ``m = int(mlp_ratio C)``.
    ``mlp_ratio=None`` (or 0) leaves the MLP and ``LN_2`` out: the attention half alone.
    ``key_transform``/``value_transform`` go to the `Attention` (RTPCA's pyramids).

    Parameters: ``4 C^2 + 2 m C + 9 C + m`` (without MLP ``4 C^2 + 6 C``), plus the transforms'.
    MACs per batch element for ``N`` tokens and ``M`` memory tokens:
    ``N (4 C^2 + 2 m C) + 2 N (N + M) C`` (without MLP, ``m = 0``), plus the transforms'.
    The state dict has ``norm1``, ``attention`` (`Attention`'s keys), ``norm2``, ``mlp.0`` and
    ``mlp.3`` (the two linear layers).
    """

    def __init__(
        self,
        channels: int,
        heads: int = 8,
        mlp_ratio: float | None = 2.0,
        dropout: float = 0.0,
        *,
        key_transform: nn.Module | None = None,
        value_transform: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if mlp_ratio is not None and mlp_ratio < 0:
            raise ValueError(f"mlp_ratio must be positive, or None or 0 for no MLP; got {mlp_ratio}")
        self.channels, self.dropout = channels, dropout
        self.norm1 = nn.LayerNorm(channels)
        self.attention = Attention(
            channels, heads, dropout=dropout, key_transform=key_transform, value_transform=value_transform
        )
        hidden = int(channels * mlp_ratio) if mlp_ratio else 0
        self.norm2 = nn.LayerNorm(channels) if hidden else None
        self.mlp = nn.Sequential(
            nn.Linear(channels, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, channels), nn.Dropout(dropout)
        ) if hidden else None

    def attend(self, x: Tensor, *, memory: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, AttentionOutput]:
        """The block's output ``(B, N, C)`` and its attention's `AttentionOutput` (weights, keys, values)
        for tokens ``x`` ``(B, N, C)``, attending also to ``memory`` (keys, values) ``(B, M, C)``."""
        attended = self.attention.attend(self.norm1(x), memory=memory)
        x = x + F.dropout(attended.output, self.dropout, self.training)
        if self.mlp is not None:
            x = x + self.mlp(self.norm2(x))
        return x, attended

    def forward(self, x: Tensor, *, memory: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """``(B, N, C) -> (B, N, C)``."""
        return self.attend(x, memory=memory)[0]
