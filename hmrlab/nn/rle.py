"""Residual log-likelihood estimation (RLE) with a RealNVP normalising flow.

L1 and L2 losses are negative log-likelihoods of a Laplace and a Gaussian error, with a fixed
scale. RLE (Li et al., "Human pose regression with residual log-likelihood estimation", ICCV 2021)
lets the network predict, per keypoint, a location ``mu`` and a scale ``sigma`` and learns the
*shape* of the error distribution with a normalising flow. With the normalised residual
``u = (mu - target) / sigma`` (per axis), the density of the target is modelled as

    P(target) = Q(u) G_phi(u) / prod_d sigma_d

where Q is a simple density (Laplace or Gaussian with unit scale) and G_phi a flow density that
learns the *residual* between Q and the true error distribution (Sec. 3.3 of RLE; the constant
that would make ``Q G_phi`` integrate to 1 is dropped, as in RLE). The loss is its negative
logarithm summed over keypoints, Eq. 7 of the keypoints-guided lightweight HMR (Chen and Wang):

    L_3D = sum_i [ -log Q(u_i) - log G_phi(u_i) + log sigma_i ].

The flow is RealNVP (Dinh et al., ICLR 2017): affine coupling layers, each leaving the masked
coordinates unchanged and scaling/shifting the others by functions of them, so the inverse and
the log-determinant are exact and cheap. The paper uses two flows, one for 2D and one for 3D
samples (Sec. III-C): make ``RealNVP(2)`` and ``RealNVP(3)``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from hmrlab.validation import check_same_shape, format_shape


def _coupling_net(dim: int, hidden: int, bounded: bool) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Linear(dim, hidden), nn.LeakyReLU(), nn.Linear(hidden, hidden), nn.LeakyReLU(), nn.Linear(hidden, dim),
    ]
    if bounded:
        # a bounded log-scale keeps exp(s) finite early in training (RLE's choice)
        layers.append(nn.Tanh())
    for layer in layers:
        if isinstance(layer, nn.Linear):
            # near-zero weights: every coupling starts close to the identity, so G_phi starts as
            # the standard normal prior and the loss as plain -log Q
            nn.init.xavier_uniform_(layer.weight, gain=0.01)
            nn.init.zeros_(layer.bias)
    return nn.Sequential(*layers)


class RealNVP(nn.Module):
    """A RealNVP flow on R^dim with a standard normal base density: ``log_prob(x)`` (..., dim) -> (...).

    ``num_couplings`` affine coupling layers alternate two binary masks m (first half of the
    coordinates, then the second half). Layer k maps ``z -> x = m z + (1 - m)(z exp(s(m z)) + t(m z))``
    (Sec. 3.3 of RealNVP), s and t small MLPs of width `hidden` (s bounded by tanh); its inverse is
    ``z = m x + (1 - m)(x - t(m x)) exp(-s(m x))`` with ``log |det dz/dx| = -sum (1 - m) s``.
    Defaults follow RLE's flow (6 couplings of width 64).
    """

    def __init__(self, dim: int, hidden: int = 64, num_couplings: int = 6):
        super().__init__()
        if not isinstance(dim, int) or dim < 2:
            raise ValueError(f"dim must be an int >= 2 (a coupling needs two groups of coordinates); got {dim!r}")
        if num_couplings < 1 or hidden < 1:
            raise ValueError(f"num_couplings and hidden must be >= 1; got {num_couplings} and {hidden}")
        first = (torch.arange(dim) < dim // 2).float()
        self.register_buffer("masks", torch.stack([first if k % 2 == 0 else 1 - first for k in range(num_couplings)]))
        self.scale_nets = nn.ModuleList(_coupling_net(dim, hidden, bounded=True) for _ in range(num_couplings))
        self.shift_nets = nn.ModuleList(_coupling_net(dim, hidden, bounded=False) for _ in range(num_couplings))

    @property
    def dim(self) -> int:
        return self.masks.shape[1]

    def _check(self, x: torch.Tensor, name: str) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() < 1 or x.shape[-1] != self.dim:
            shape = format_shape(tuple(x.shape)) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{name} must have shape (..., {self.dim}) for this {self.dim}-D flow; got {shape}")

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Map base samples z (..., dim) to data space x (..., dim): the generative direction."""
        self._check(z, "z")
        x = z
        for mask, scale_net, shift_net in zip(self.masks, self.scale_nets, self.shift_nets):
            kept = x * mask
            s, t = scale_net(kept) * (1 - mask), shift_net(kept) * (1 - mask)
            x = kept + (1 - mask) * (x * torch.exp(s) + t)
        return x

    def inverse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Base points z (..., dim) of data x (..., dim) and ``log |det dz/dx|`` (...)."""
        self._check(x, "x")
        z, log_det = x, x.new_zeros(x.shape[:-1])
        for mask, scale_net, shift_net in zip(
            reversed(self.masks), reversed(self.scale_nets), reversed(self.shift_nets)
        ):
            kept = z * mask
            s, t = scale_net(kept) * (1 - mask), shift_net(kept) * (1 - mask)
            z = kept + (1 - mask) * (z - t) * torch.exp(-s)
            log_det = log_det - s.sum(-1)
        return z, log_det

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """``log G(x) = log N(z; 0, I) + log |det dz/dx|`` (change of variables): (..., dim) -> (...)."""
        z, log_det = self.inverse(x)
        return -0.5 * (z * z).sum(-1) - 0.5 * self.dim * math.log(2 * math.pi) + log_det

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """`n` samples (n, dim) of the flow density."""
        z = torch.randn(n, self.dim, generator=generator, dtype=self.masks.dtype, device=self.masks.device)
        return self.forward(z)


def base_log_prob(u: torch.Tensor, q: str = "laplace") -> torch.Tensor:
    """``log Q(u)`` summed over the last axis, Q a unit Laplace or standard Gaussian: (..., D) -> (...).

    Laplace: ``-sum |u_d| - D log 2``; Gaussian: ``-sum u_d^2 / 2 - D log(2 pi) / 2``. RLE's ablation of Q
    favours the Laplace for regression; it is the default.
    """
    dim = u.shape[-1]
    if q == "laplace":
        return -u.abs().sum(-1) - dim * math.log(2.0)
    if q == "gaussian":
        return -0.5 * (u * u).sum(-1) - 0.5 * dim * math.log(2 * math.pi)
    raise ValueError(f"q must be 'laplace' or 'gaussian'; got {q!r}")


def rle_loss(
    mu: torch.Tensor,
    sigma: torch.Tensor,
    target: torch.Tensor,
    flow: RealNVP,
    *,
    q: str = "laplace",
    weight: torch.Tensor | None = None,
    form: str = "paper",
) -> torch.Tensor:
    """RLE loss (Eq. 7): ``sum_i [-log Q(u_i) - log G_phi(u_i) + sum_d log sigma_id]``, batch mean.

    mu, sigma, target: (B, K, D) predicted coordinates, predicted scales (> 0) and ground truth, in
    the same units (D = flow.dim: 2 or 3); ``u = (mu - target) / sigma``. weight: optional (B, K)
    (1 keeps a keypoint, 0 drops it, e.g. invisible ones). Returns a scalar: the negative
    log-likelihood per sample, summed over keypoints and averaged over the batch. Gradients reach
    mu, sigma and the flow's parameters, which are trained by the same loss.

    ``form="authors"`` is what RLE's released code computes instead (Jeff-sjtu/res-loglikelihood-regression,
    ``RLELoss``/``RLELoss3D`` with the ``nf_loss`` of ``regression_nf``), the loss their checkpoints were
    trained with: per keypoint ``sum_d [2 log sigma_d - log G_phi(u) + log sqrt(2 pi) + |mu_d - target_d| /
    (sqrt(2) sigma_d + 1e-9)]``. Against the paper's form it counts ``log sigma`` twice (once in the
    flow term, once in their ``log Q``), subtracts the flow term once per axis (D times) rather than
    once per keypoint, divides the residual by ``sqrt(2) sigma`` (a Laplace of scale ``sqrt(2) sigma``)
    and normalises Q with the Gaussian's constant ``sqrt(2 pi)``; q must stay ``"laplace"``. The two
    forms weigh the residual, sigma and the flow differently: their values and gradients differ. To load their flow,
    `hmrlab.models.authors.from_authors("rle_flow", ...)` (their masks: the last coordinate kept first).
    """
    if form not in ("paper", "authors"):
        raise ValueError(f"form must be 'paper' (Eq. 7) or 'authors' (RLE's released code); got {form!r}")
    if form == "authors" and q != "laplace":
        raise ValueError("form='authors' has its own Laplace-like Q; leave q='laplace'")
    for name, x in (("mu", mu), ("sigma", sigma), ("target", target)):
        if not isinstance(x, torch.Tensor) or x.dim() != 3:
            shape = format_shape(tuple(x.shape)) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{name} must be a tensor of shape (B, K, D); got {shape}")
    check_same_shape(mu, target, ("mu", "target"))
    check_same_shape(sigma, target, ("sigma", "target"))
    if target.shape[-1] != flow.dim:
        raise ValueError(
            f"the flow models {flow.dim}-D residuals but the keypoints are {target.shape[-1]}-D; use "
            f"RealNVP({target.shape[-1]}) (the paper keeps one flow for 2D and one for 3D samples)"
        )
    if bool((sigma <= 0).any()):
        raise ValueError("sigma must be > 0 everywhere (predict it through a sigmoid or softplus, plus a small floor)")
    u = (mu - target) / sigma
    if form == "authors":
        log_q = torch.log(sigma * math.sqrt(2 * math.pi)) + (mu - target).abs() / (math.sqrt(2) * sigma + 1e-9)
        nll = (torch.log(sigma) - flow.log_prob(u)[..., None] + log_q).sum(-1)  # (B, K)
    else:
        nll = -base_log_prob(u, q) - flow.log_prob(u) + torch.log(sigma).sum(-1)  # (B, K)
    if weight is not None:
        if tuple(weight.shape) != tuple(nll.shape):
            raise ValueError(f"weight must have shape {format_shape(tuple(nll.shape))}; got {format_shape(tuple(weight.shape))}")
        nll = nll * weight
    return nll.sum(-1).mean()


__all__ = ["RealNVP", "base_log_prob", "rle_loss"]
