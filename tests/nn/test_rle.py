"""hmrlab.nn.rle: RealNVP invertibility and log-determinant (autograd Jacobian), the density's mass,
the RLE loss against SciPy log-densities, gradients, and a flow learning a heavy-tailed error."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import laplace, multivariate_normal, norm

from hmrlab.nn.rle import RealNVP, base_log_prob, rle_loss

pytestmark = pytest.mark.usefixtures("one_thread")


def perturbed_flow(dim: int, seed: int = 0) -> RealNVP:
    """A float64 flow far from the identity, so the tests see real couplings."""
    torch.manual_seed(seed)
    flow = RealNVP(dim, hidden=16, num_couplings=4).double()
    with torch.no_grad():
        for p in flow.parameters():
            p.normal_(0, 0.4)
    return flow


@pytest.mark.parametrize("dim", [2, 3])
def test_inverse_undoes_forward_and_log_det_is_the_jacobians(dim: int) -> None:
    flow = perturbed_flow(dim)
    x = torch.randn(5, dim, dtype=torch.float64)
    z, log_det = flow.inverse(x)
    torch.testing.assert_close(flow(z), x)
    for i in range(5):
        jacobian = torch.autograd.functional.jacobian(lambda v: flow.inverse(v)[0], x[i])
        assert log_det[i].item() == pytest.approx(torch.linalg.slogdet(jacobian)[1].item(), abs=1e-10)


def test_density_integrates_to_the_mass_its_samples_put_in_a_box() -> None:
    flow = perturbed_flow(2)
    grid = torch.linspace(-9, 9, 361, dtype=torch.float64)
    points = torch.stack(torch.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():
        integral = flow.log_prob(points).exp().sum().item() * (grid[1] - grid[0]).item() ** 2
        samples = flow.sample(20000, torch.Generator().manual_seed(0))
    inside = (samples.abs() <= 9).all(-1).double().mean().item()
    assert 0.9 < inside < 1.0  # the box misses some mass: the check is not trivially 1 = 1
    assert integral == pytest.approx(inside, abs=5e-3)


def test_a_new_flow_starts_near_the_standard_normal() -> None:
    x = torch.randn(10, 3)
    expected = multivariate_normal(np.zeros(3), np.eye(3)).logpdf(x.numpy())
    np.testing.assert_allclose(RealNVP(3).log_prob(x).detach().numpy(), expected, atol=1e-2)


def identity_flow(dim: int) -> RealNVP:
    flow = RealNVP(dim).double()
    with torch.no_grad():
        for p in flow.parameters():
            p.zero_()
    return flow


@pytest.mark.parametrize("q, log_q", [("laplace", laplace.logpdf), ("gaussian", norm.logpdf)])
def test_loss_is_eq7_with_scipy_densities(q: str, log_q) -> None:
    generator = torch.Generator().manual_seed(0)
    mu = torch.randn(4, 6, 3, generator=generator, dtype=torch.float64)
    target = torch.randn(4, 6, 3, generator=generator, dtype=torch.float64)
    sigma = torch.rand(4, 6, 3, generator=generator, dtype=torch.float64) + 0.1
    u = ((mu - target) / sigma).numpy()
    # with all weights zero the flow is exactly the standard normal
    per_keypoint = -log_q(u).sum(-1) - norm.logpdf(u).sum(-1) + np.log(sigma.numpy()).sum(-1)
    loss = rle_loss(mu, sigma, target, identity_flow(3), q=q)
    assert loss.item() == pytest.approx(per_keypoint.sum(-1).mean())
    weight = torch.zeros(4, 6, dtype=torch.float64)
    weight[:, 0] = 1
    assert rle_loss(mu, sigma, target, identity_flow(3), q=q, weight=weight).item() == pytest.approx(
        per_keypoint[:, 0].mean()
    )


def test_base_log_prob_matches_scipy() -> None:
    u = torch.randn(7, 2, dtype=torch.float64)
    np.testing.assert_allclose(base_log_prob(u, "laplace").numpy(), laplace.logpdf(u.numpy()).sum(-1))
    np.testing.assert_allclose(base_log_prob(u, "gaussian").numpy(), norm.logpdf(u.numpy()).sum(-1))


def test_loss_gradients() -> None:
    flow = perturbed_flow(2, seed=2)
    mu = torch.randn(2, 3, 2, dtype=torch.float64, requires_grad=True)
    sigma = (torch.rand(2, 3, 2, dtype=torch.float64) + 0.5).requires_grad_()
    target = torch.randn(2, 3, 2, dtype=torch.float64)
    # the Laplace |u| has a kink at 0 only; random points stay away from it
    assert torch.autograd.gradcheck(lambda m, s: rle_loss(m, s, target, flow), (mu, sigma))


def test_flow_learns_a_heavy_tailed_error() -> None:
    torch.manual_seed(0)
    errors = torch.distributions.StudentT(2.0).sample((1024, 2))
    train, held_out = errors[:768], errors[768:]
    flow = RealNVP(2, hidden=16, num_couplings=4)
    before = flow.log_prob(held_out).mean().item()
    optimizer = torch.optim.Adam(flow.parameters(), lr=2e-2)
    for _ in range(60):
        optimizer.zero_grad()
        (-flow.log_prob(train).mean()).backward()
        optimizer.step()
    after = flow.log_prob(held_out).mean().item()
    # the exact Student-t log-likelihood bounds what any density reaches on average (up to sampling)
    exact = torch.distributions.StudentT(2.0).log_prob(held_out).sum(-1).mean().item()
    assert before < after <= exact + 0.1, (before, after, exact)
    assert after - before > 0.5 * (exact - before), (before, after, exact)


def test_bad_inputs_raise() -> None:
    flow = RealNVP(3)
    x = torch.zeros(2, 4, 3)
    with pytest.raises(ValueError, match=r"RealNVP\(2\)"):
        rle_loss(x[..., :2], x[..., :2] + 1, x[..., :2], flow)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        rle_loss(x, x, x, flow)
    with pytest.raises(ValueError, match=r"\(B, K, D\)"):
        rle_loss(x[0], x[0] + 1, x[0], flow)
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\)"):
        flow.log_prob(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="dim must be an int >= 2"):
        RealNVP(1)
    assert math.isfinite(rle_loss(x, x + 1, x, flow).item())
