"""PMCE's co-evolution block ("Coevoblock"), the baseline LIFD-HMR's LDMP is measured against.

PMCE ("Co-Evolution of Pose and Mesh for 3D Human Body Estimation from Video", You et al., ICCV 2023,
github.com/kasvii/PMCE) refines 3D joints and grows a coarse mesh from them in blocks that each run,
for the joints and for the vertices,

    cross-attention to the other branch + MLP,  then  self-attention + MLP,

every LayerNorm replaced by an **AdaLayerNorm** whose gain and bias are linear functions of the clip's
image feature (a 2048-vector from a bidirectional GRU). `CoevoBlock` is the block as their
``lib/models/CoevoDecoder.py`` builds it, `CoevoDecoder` their three blocks as ``Pose2Mesh`` chains them;
both load their weights (`hmrlab.models.authors.from_authors("pmce_coevo", ...)`) and give their outputs
(``tests/fidelity``). What `hmrlab.models.lifd_hmr.LDMP` with ``channel_ratio = token_ratio = 1`` (its
"standard-attention twin") leaves out of this block: the AdaLayerNorms (LDMP adds the context to the
tokens once and uses plain LayerNorms), the learned query and key embeddings, the projections that bring
each branch's tokens to the other's width, and the re-embedding of the coordinates in every block.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from hmrlab.nn.attention import Attention, scaled_dot_product_attention

__all__ = ["AdaLayerNorm", "CoevoBlock", "CoevoCrossAttention", "CoevoCrossBlock", "CoevoDecoder", "CoevoSelfBlock"]


def _drop_path(x: Tensor, p: float, training: bool) -> Tensor:
    """Stochastic depth (timm's DropPath): zero a sample's whole residual branch with probability p."""
    if not training or p == 0.0:
        return x
    keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(1 - p)
    return x * keep / (1 - p)


def _mlp(dim: int, ratio: float) -> nn.Sequential:
    hidden = int(dim * ratio)
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class AdaLayerNorm(nn.Module):
    """PMCE's adaptive LayerNorm of tokens x (B, N, C) given c (B, D): ``gamma(c) (x - m) / (std + eps) + beta(c)``.

    Unlike ``nn.LayerNorm``: ``m`` and ``std`` are the mean and the *unbiased* standard deviation over the
    C channels, the eps is
    added to it (not to the variance, 1e-6), and gain and bias are linear functions of the context
    (``gamma``, ``beta``: Linear(D, C) each; PMCE's D is 2048, its GRU feature).
    """

    def __init__(self, num_features: int, context_dim: int = 2048, eps: float = 1e-6) -> None:
        super().__init__()
        self.gamma, self.beta = nn.Linear(context_dim, num_features), nn.Linear(context_dim, num_features)
        self.eps = eps

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        mean, std = x.mean(-1, keepdim=True), x.std(-1, keepdim=True)
        return self.gamma(context)[:, None] * (x - mean) / (std + self.eps) + self.beta(context)[:, None]


class CoevoCrossAttention(nn.Module):
    """PMCE's cross-attention, keys and values from *different* tokens: (B, N, C), (B, M, C), (B, M, Cv) -> (B, N, C).

    ``softmax(q k^T / sqrt(C / h)) v`` per head with ``q = W_q x``, ``k = W_k keys``, ``v = W_v values``
    (``W_v``: Cv -> Cv), then ``W_o``: Cv -> C. `hmrlab.nn.attention.Attention` takes one context for both,
    hence this module.
    """

    def __init__(self, dim: int, value_dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads or value_dim % heads:
            raise ValueError(f"dim ({dim}) and value_dim ({value_dim}) must be divisible by heads ({heads})")
        self.heads = heads
        self.q, self.k = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.v, self.out = nn.Linear(value_dim, value_dim), nn.Linear(value_dim, dim)

    def forward(self, x: Tensor, keys: Tensor, values: Tensor) -> Tensor:
        def split(t: Tensor) -> Tensor:
            return t.unflatten(-1, (self.heads, -1)).transpose(1, 2)

        out, _ = scaled_dot_product_attention(split(self.q(x)), split(self.k(keys)), split(self.v(values)))
        return self.out(out.transpose(1, 2).flatten(2))


class CoevoCrossBlock(nn.Module):
    """``x + CA(AdaLN_q(x), AdaLN_k(keys), AdaLN_v(values))``, then ``x + MLP(AdaLN(x))`` (CrossAttentionBlock)."""

    def __init__(self, dim: int, value_dim: int, heads: int, mlp_ratio: float = 4.0, context_dim: int = 2048,
                 drop_path: float = 0.2) -> None:
        super().__init__()
        self.norm_query, self.norm_key = AdaLayerNorm(dim, context_dim), AdaLayerNorm(dim, context_dim)
        self.norm_value = AdaLayerNorm(value_dim, context_dim)
        self.attention = CoevoCrossAttention(dim, value_dim, heads)
        self.norm2, self.mlp, self.drop_path = AdaLayerNorm(dim, context_dim), _mlp(dim, mlp_ratio), drop_path

    def forward(self, x: Tensor, keys: Tensor, values: Tensor, context: Tensor) -> Tensor:
        query, keys = self.norm_query(x, context), self.norm_key(keys, context)
        values = self.norm_value(values, context)
        attended = self.attention(query, keys, values)
        x = x + _drop_path(attended, self.drop_path, self.training)
        return x + _drop_path(self.mlp(self.norm2(x, context)), self.drop_path, self.training)


class CoevoSelfBlock(nn.Module):
    """``x + SA(AdaLN(x))``, then ``x + MLP(AdaLN(x))`` (PMCE's Block; SA is `hmrlab.nn.attention.Attention`)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, context_dim: int = 2048,
                 drop_path: float = 0.2) -> None:
        super().__init__()
        self.norm1, self.attention = AdaLayerNorm(dim, context_dim), Attention(dim, heads)
        self.norm2, self.mlp, self.drop_path = AdaLayerNorm(dim, context_dim), _mlp(dim, mlp_ratio), drop_path

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        x = x + _drop_path(self.attention(self.norm1(x, context)), self.drop_path, self.training)
        return x + _drop_path(self.mlp(self.norm2(x, context)), self.drop_path, self.training)


class CoevoBlock(nn.Module):
    """PMCE's co-evolution block: joints (B, J, 3), vertices (B, V, 3), context (B, D) -> joints, vertices.

    Both are embedded (``joint_embed``, ``vertex_embed``: Linear(3, C)) and get a learned position each;
    the joints' cross-attention uses queries ``joint + joint_query`` and keys ``vertex_to_joint(vertex) +
    vertex_key`` (the vertices brought to the joints' width, plus a learned key per vertex), with the
    vertex tokens as values; the vertices' symmetrically. Then a self-attention block each, and linear
    heads whose output is *added to the input coordinates*. PMCE's sizes: C = 64 for both, 8 heads for
    the joints, 2 for the vertices, MLP ratio 4, stochastic depth 0.2, D = 2048. The two
    cross-attentions read the same embedded tokens (side by side, not one after the other).
    """

    def __init__(self, num_joints: int, num_vertices: int, joint_dim: int = 64, vertex_dim: int = 64,
                 joint_heads: int = 8, vertex_heads: int = 2, mlp_ratio: float = 4.0, context_dim: int = 2048,
                 drop_path: float = 0.2) -> None:
        super().__init__()
        self.joint_embed, self.vertex_embed = nn.Linear(3, joint_dim), nn.Linear(3, vertex_dim)
        # PMCE initialises every embedding with a standard normal.
        self.joint_position = nn.Parameter(torch.randn(1, num_joints, joint_dim))
        self.vertex_position = nn.Parameter(torch.randn(1, num_vertices, vertex_dim))
        self.joint_query = nn.Parameter(torch.randn(1, num_joints, joint_dim))
        self.vertex_query = nn.Parameter(torch.randn(1, num_vertices, vertex_dim))
        self.vertex_to_joint, self.joint_to_vertex = nn.Linear(vertex_dim, joint_dim), nn.Linear(joint_dim, vertex_dim)
        self.vertex_key = nn.Parameter(torch.randn(1, num_vertices, joint_dim))
        self.joint_key = nn.Parameter(torch.randn(1, num_joints, vertex_dim))
        sizes = dict(mlp_ratio=mlp_ratio, context_dim=context_dim, drop_path=drop_path)
        self.joint_self = CoevoSelfBlock(joint_dim, joint_heads, **sizes)
        self.vertex_self = CoevoSelfBlock(vertex_dim, vertex_heads, **sizes)
        self.joint_cross = CoevoCrossBlock(joint_dim, vertex_dim, joint_heads, **sizes)
        self.vertex_cross = CoevoCrossBlock(vertex_dim, joint_dim, vertex_heads, **sizes)
        self.joint_head, self.vertex_head = nn.Linear(joint_dim, 3), nn.Linear(vertex_dim, 3)

    def forward(self, joints: Tensor, vertices: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        joint = self.joint_embed(joints) + self.joint_position
        vertex = self.vertex_embed(vertices) + self.vertex_position
        joint, vertex = (
            self.joint_cross(joint + self.joint_query, self.vertex_to_joint(vertex) + self.vertex_key, vertex, context),
            self.vertex_cross(vertex + self.vertex_query, self.joint_to_vertex(joint) + self.joint_key, joint, context),
        )
        joint, vertex = self.joint_self(joint, context), self.vertex_self(vertex, context)
        return self.joint_head(joint) + joints[..., :3], self.vertex_head(vertex) + vertices[..., :3]


class CoevoDecoder(nn.Module):
    """PMCE's decoder: ``depth`` `CoevoBlock` s as its ``Pose2Mesh`` chains them; joints (B, J, 3), context (B, D).

    Vertices start at their nearest joint (``vertex_joint`` (V,), `hmrlab.models.lifd_hmr.nearest_joint`)
    and pass from block to block; every block, as in PMCE's code, is given the *input* joints (the
    refined joints of a block are used by no later block) and the last block's joints are returned:
    -> joints (B, J, 3), coarse vertices (B, V, 3). The GRU that makes the context, the 431 -> 6890
    upsampling and the image residual of ``Pose2Mesh`` are outside it, as they are outside `LDMP`.
    """

    def __init__(self, vertex_joint: Tensor, num_joints: int = 17, depth: int = 3, **block_sizes) -> None:
        super().__init__()
        self.register_buffer("vertex_joint", torch.as_tensor(vertex_joint, dtype=torch.int64))
        self.blocks = nn.ModuleList(CoevoBlock(num_joints, len(self.vertex_joint), **block_sizes) for _ in range(depth))

    def forward(self, joints: Tensor, context: Tensor) -> tuple[Tensor, Tensor]:
        vertices, refined = joints[:, self.vertex_joint, :3], joints
        for block in self.blocks:
            refined, vertices = block(joints, vertices, context)
        return refined, vertices
