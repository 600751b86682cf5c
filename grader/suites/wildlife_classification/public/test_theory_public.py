"""Public tests of Q1 (theory): golden values from the handout, torch.autograd and library oracles."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from grader.compare import assert_close, assert_equal, check, describe_call


def _autograd_logit_grad(loss_fn, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    z = z.clone().requires_grad_(True)
    loss_fn(z, y).sum().backward()
    return z.grad


@pytest.mark.weight(0.5)
@pytest.mark.number("1.1")
def test_mse_vs_bce_gradients(student):
    """Q1.1(a) gradients of MSE and BCE w.r.t. the logit (autograd) and why MSE stalls"""
    z = torch.linspace(-12, 12, 25, dtype=torch.float64)
    y = (torch.arange(25) % 2).double()
    theory = student.theory
    got_mse = theory.sigmoid_mse_grad(z, y)
    assert_close(got_mse, _autograd_logit_grad(lambda a, b: (torch.sigmoid(a) - b) ** 2, z, y),
                 call=describe_call("sigmoid_mse_grad", z, y), rtol=1e-6, atol=1e-12,
                 hint="d/dz (s - y)^2 = 2 (s - y) s (1 - s) with s = sigmoid(z)")
    got_bce = theory.sigmoid_bce_grad(z, y)
    assert_close(got_bce, _autograd_logit_grad(
        lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction="none"), z, y),
        call=describe_call("sigmoid_bce_grad", z, y), rtol=1e-6, atol=1e-12, hint="sigmoid(z) - y")
    wrong = torch.tensor([-10.0], dtype=torch.float64)
    one = torch.tensor([1.0], dtype=torch.float64)
    mse, bce = float(theory.sigmoid_mse_grad(wrong, one)), float(theory.sigmoid_bce_grad(wrong, one))
    check(abs(mse) < 1e-3 < 0.9 < abs(bce),
          f"for a confidently wrong prediction (z=-10, y=1) expected a vanishing MSE gradient and a BCE "
          f"gradient near -1, got {mse:.3g} and {bce:.3g}")


@pytest.mark.weight(1)
@pytest.mark.number("1.2")
def test_bce_single_example(student):
    """Q1.1(b,c) binary cross-entropy of one example: y=0, y_hat=0.9 gives 2.302585"""
    y_hat, y = torch.tensor(0.9, dtype=torch.float64), torch.tensor(0.0, dtype=torch.float64)
    got = student.theory.binary_cross_entropy(y_hat, y)
    assert_close(got, torch.tensor(-math.log(0.1), dtype=torch.float64),
                 call=describe_call("binary_cross_entropy", y_hat, y), rtol=1e-9, atol=1e-12,
                 hint="-(y log y_hat + (1 - y) log(1 - y_hat)), natural log")
    generator = torch.Generator().manual_seed(3)
    y_hat = torch.rand(4, 5, generator=generator) * 0.98 + 0.01
    y = (torch.rand(4, 5, generator=generator) > 0.5).float()
    got = student.theory.binary_cross_entropy(y_hat, y)
    assert_close(got, F.binary_cross_entropy(y_hat, y, reduction="none"),
                 call=describe_call("binary_cross_entropy", y_hat, y), rtol=1e-5, atol=1e-6,
                 hint="one loss per element, no reduction, dtype of y_hat")


@pytest.mark.weight(1)
@pytest.mark.number("1.3")
def test_mean_bce_handout_dataset(student):
    """Q1.1(d) mean BCE of Y={1,0,0}, Y_hat={0.1,0.2,0.7} is 1.243234"""
    y_hat = torch.tensor([0.1, 0.2, 0.7], dtype=torch.float64)
    y = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    expected = (-math.log(0.1) - math.log(0.8) - math.log(0.3)) / 3
    got = student.theory.mean_binary_cross_entropy(y_hat, y)
    assert_close(got, torch.tensor(expected, dtype=torch.float64),
                 call=describe_call("mean_binary_cross_entropy", y_hat, y), rtol=1e-9, atol=1e-12,
                 hint="average the per-example losses (divide by N = 3), return a 0-dim tensor")


@pytest.mark.weight(1)
@pytest.mark.number("1.4")
def test_l2_update_matches_sgd_weight_decay(student):
    """Q1.1(e) L2-regularised update equals one step of torch.optim.SGD(weight_decay=lambda)"""
    generator = torch.Generator().manual_seed(11)
    w = torch.randn(3, 4, generator=generator, dtype=torch.float64)
    grad = torch.randn(3, 4, generator=generator, dtype=torch.float64)
    lr, weight_decay = 0.1, 0.05
    parameter = torch.nn.Parameter(w.clone())
    optimizer = torch.optim.SGD([parameter], lr=lr, weight_decay=weight_decay)
    parameter.grad = grad.clone()
    optimizer.step()
    got = student.theory.l2_regularized_update(w, grad, lr, weight_decay)
    assert_close(got, parameter.detach(), call=describe_call("l2_regularized_update", w, grad, lr, weight_decay),
                 rtol=1e-12, atol=1e-12, hint="w - lr * (grad + lambda * w)")


@pytest.mark.weight(1)
@pytest.mark.number("1.5")
def test_entropy_cross_entropy_kl(student):
    """Q1.1(f) entropy, cross-entropy and KL equal scipy's, and KL = CE - H"""
    generator = torch.Generator().manual_seed(5)
    p = torch.softmax(torch.randn(6, 7, generator=generator, dtype=torch.float64) * 2, dim=1)
    q = torch.softmax(torch.randn(6, 7, generator=generator, dtype=torch.float64) * 2, dim=1)
    theory = student.theory
    h = theory.entropy(p)
    ce = theory.cross_entropy(p, q)
    kl = theory.kl_divergence(p, q)
    expected_h = torch.from_numpy(stats.entropy(p.numpy(), axis=1))
    expected_kl = torch.from_numpy(stats.entropy(p.numpy(), q.numpy(), axis=1))
    assert_close(h, expected_h, call=describe_call("entropy", p), rtol=1e-9, atol=1e-12,
                 hint="-sum p log p over the last dimension, natural log")
    assert_close(kl, expected_kl, call=describe_call("kl_divergence", p, q), rtol=1e-9, atol=1e-12,
                 hint="sum p log(p / q): KL(P || Q), not KL(Q || P)")
    assert_close(ce, expected_h + expected_kl, call=describe_call("cross_entropy", p, q), rtol=1e-9, atol=1e-12,
                 hint="-sum p log q; then KL = cross-entropy - entropy")
    check(bool((kl >= 0).all()), "KL divergence must never be negative")


@pytest.mark.weight(0.5)
@pytest.mark.number("1.6")
def test_two_layer_shapes(student):
    """Q1.2(a) shapes of W2, b2 and the batched hidden output"""
    got = student.theory.two_layer_shapes(5, 4, 3, 8)
    expected = {"W1": (4, 5), "b1": (4, 1), "W2": (3, 4), "b2": (3, 1), "A1": (4, 8), "Y_hat": (3, 8)}
    assert_equal(got, expected, call="two_layer_shapes(d_x=5, d_a=4, k=3, m=8)",
                 hint="column convention: z = W x + b with x of shape (D_x, 1); a batch is (D_x, m)")


def _softmax_jacobian_autograd(z: torch.Tensor) -> torch.Tensor:
    return torch.autograd.functional.jacobian(lambda v: torch.softmax(v, dim=0), z)


@pytest.mark.weight(0.5)
@pytest.mark.number("1.7")
def test_softmax_jacobian_diagonal(student):
    """Q1.2(b) d y_hat_k / d z_k = y_hat_k (1 - y_hat_k), against autograd"""
    z = torch.tensor([0.5, -1.0, 2.0, 0.0], dtype=torch.float64)
    y_hat = torch.softmax(z, dim=0)
    got = student.theory.softmax_jacobian(y_hat)
    check(isinstance(got, torch.Tensor) and tuple(got.shape) == (4, 4),
          f"expected a [4, 4] tensor, got {type(got).__name__} {getattr(got, 'shape', '')}",
          call=describe_call("softmax_jacobian", y_hat))
    assert_close(got.diagonal(), _softmax_jacobian_autograd(z).diagonal(),
                 call=describe_call("softmax_jacobian", y_hat), what="diagonal", rtol=1e-9, atol=1e-12,
                 hint="the diagonal is y_hat_k (1 - y_hat_k)")


@pytest.mark.weight(0.5)
@pytest.mark.number("1.8")
def test_softmax_jacobian_off_diagonal(student):
    """Q1.2(c) d y_hat_k / d z_i = -y_hat_k y_hat_i for i != k, against autograd"""
    z = torch.tensor([0.5, -1.0, 2.0, 0.0], dtype=torch.float64)
    y_hat = torch.softmax(z, dim=0)
    got = student.theory.softmax_jacobian(y_hat)
    check(isinstance(got, torch.Tensor) and tuple(got.shape) == (4, 4),
          f"expected a [4, 4] tensor, got {type(got).__name__} {getattr(got, 'shape', '')}")
    off = ~torch.eye(4, dtype=torch.bool)
    assert_close(got[off], _softmax_jacobian_autograd(z)[off], call=describe_call("softmax_jacobian", y_hat),
                 what="off-diagonal entries", rtol=1e-9, atol=1e-12, hint="J[k, i] = -y_hat_k y_hat_i for i != k")


@pytest.mark.weight(2)
@pytest.mark.number("1.9")
def test_softmax_cross_entropy_grad(student):
    """Q1.2(d) dL/dz = y_hat - y for a one-hot label, against autograd"""
    generator = torch.Generator().manual_seed(9)
    z = torch.randn(5, 6, generator=generator, dtype=torch.float64)
    labels = torch.tensor([0, 3, 5, 2, 3])
    y = F.one_hot(labels, 6).double()
    zz = z.clone().requires_grad_(True)
    (-(y * torch.log_softmax(zz, dim=1)).sum()).backward()
    y_hat = torch.softmax(z, dim=1)
    got = student.theory.softmax_cross_entropy_grad(y_hat, y)
    assert_close(got, zz.grad, call=describe_call("softmax_cross_entropy_grad", y_hat, y), rtol=1e-9, atol=1e-12,
                 hint="y_hat_k - 1 at the true class k, y_hat_i elsewhere")


@pytest.mark.weight(1)
@pytest.mark.number("1.10")
def test_stable_softmax(student):
    """Q1.2(e) stable softmax is finite on [1000, 0, -1000] and equals torch.softmax"""
    z = torch.tensor([1000.0, 0.0, -1000.0])
    got = student.theory.stable_softmax(z)
    assert_close(got, torch.tensor([1.0, 0.0, 0.0]), call=describe_call("stable_softmax", z), atol=1e-7,
                 hint="subtract the maximum before exponentiating; exp(1000) overflows to inf")
    generator = torch.Generator().manual_seed(1)
    z = torch.randn(4, 7, generator=generator) * 30
    got = student.theory.stable_softmax(z)
    assert_close(got, torch.softmax(z, dim=-1), call=describe_call("stable_softmax", z), rtol=1e-5, atol=1e-7,
                 hint="softmax over the last dimension by default")
