"""Hidden tests of Q1 (theory): random inputs (hypothesis), dtypes, batching and edge cases."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.compare import assert_close, check, describe_call
from grader.student import call_keeping_inputs

seeds = st.integers(0, 2**31 - 1)


@pytest.mark.weight(0.5)
@pytest.mark.number("1.1")
@settings(max_examples=15)
@given(seeds)
def test_logit_gradients_random(student, seed):
    """Q1.1(a) MSE and BCE logit gradients on random float64 inputs with broadcast labels"""
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(3, 4, generator=generator, dtype=torch.float64) * 6
    y = (torch.rand(4, generator=generator) > 0.5).double()
    s = torch.sigmoid(z)
    assert_close(student.theory.sigmoid_mse_grad(z, y), 2 * (s - y) * s * (1 - s),
                 call=describe_call("sigmoid_mse_grad", z, y), rtol=1e-9, atol=1e-12)
    assert_close(student.theory.sigmoid_bce_grad(z, y), s - y, call=describe_call("sigmoid_bce_grad", z, y),
                 rtol=1e-9, atol=1e-12)


@pytest.mark.weight(0.5)
@pytest.mark.number("1.2")
@settings(max_examples=15)
@given(seeds)
def test_bce_random_float64(student, seed):
    """Q1.1(b) BCE per element on random float64 predictions (both labels, no reduction)"""
    generator = torch.Generator().manual_seed(seed)
    y_hat = torch.rand(7, generator=generator, dtype=torch.float64) * 0.998 + 0.001
    y = (torch.rand(7, generator=generator) > 0.5).double()
    got = student.theory.binary_cross_entropy(y_hat, y)
    expected = -(y * torch.log(y_hat) + (1 - y) * torch.log(1 - y_hat))
    assert_close(got, expected, call=describe_call("binary_cross_entropy", y_hat, y), rtol=1e-9, atol=1e-12)


@pytest.mark.weight(0.5)
@pytest.mark.number("1.3")
@settings(max_examples=15)
@given(st.integers(1, 30), seeds)
def test_mean_bce_random(student, count, seed):
    """Q1.1(d) mean BCE equals torch's binary_cross_entropy on random data sets"""
    generator = torch.Generator().manual_seed(seed)
    y_hat = torch.rand(count, generator=generator, dtype=torch.float64) * 0.98 + 0.01
    y = (torch.rand(count, generator=generator) > 0.5).double()
    got = student.theory.mean_binary_cross_entropy(y_hat, y)
    assert_close(got, F.binary_cross_entropy(y_hat, y), call=describe_call("mean_binary_cross_entropy", y_hat, y),
                 rtol=1e-9, atol=1e-12)


@pytest.mark.weight(0.5)
@pytest.mark.number("1.4")
def test_l2_update_shrinks_and_keeps_input(student):
    """Q1.1(e) L2 update: weights shrink by (1 - lr*lambda) per step without loss gradient; input unchanged"""
    w0 = torch.tensor([[2.0, -4.0], [1.0, 0.5]], dtype=torch.float64)
    zero = torch.zeros_like(w0)
    w = w0
    for _ in range(5):
        # compared where the function runs: an in-place update of the caller's w fails here
        w = call_keeping_inputs(student.theory.l2_regularized_update, w, zero, 0.1, 0.5)
    assert_close(w, w0 * 0.95 ** 5, call="five calls of l2_regularized_update(w, 0, lr=0.1, weight_decay=0.5)",
                 rtol=1e-12, atol=1e-12, hint="each step multiplies w by (1 - lr * lambda) when the loss gradient is 0")
    w = student.theory.l2_regularized_update(w0, torch.ones_like(w0), 0.2, 0.0)
    assert_close(w, w0 - 0.2, call="l2_regularized_update(w, 1, lr=0.2, weight_decay=0)", rtol=1e-12, atol=1e-12)


@pytest.mark.weight(0.5)
@pytest.mark.number("1.5")
@settings(max_examples=15)
@given(seeds, st.integers(2, 6))
def test_kl_zeros_and_identity(student, seed, classes):
    """Q1.1(f) entropy/CE/KL with zero probabilities, KL(P||P) = 0 and KL = CE - H"""
    generator = torch.Generator().manual_seed(seed)
    p = torch.rand(3, classes, generator=generator, dtype=torch.float64)
    p[:, 0] = 0.0  # zero probabilities contribute nothing
    p = p / p.sum(1, keepdim=True)
    q = torch.softmax(torch.randn(3, classes, generator=generator, dtype=torch.float64), dim=1)
    theory = student.theory
    h, ce, kl = theory.entropy(p), theory.cross_entropy(p, q), theory.kl_divergence(p, q)
    rest = p[:, 1:]
    assert_close(h, -(rest * rest.log()).sum(1), call=describe_call("entropy", p), rtol=1e-9, atol=1e-12,
                 hint="0 log 0 = 0 (torch.xlogy)")
    assert_close(kl, ce - h, call=describe_call("kl_divergence", p, q), rtol=1e-9, atol=1e-12)
    assert_close(theory.kl_divergence(p, p), torch.zeros(3, dtype=torch.float64),
                 call=describe_call("kl_divergence", p, p), atol=1e-12)


@pytest.mark.weight(0.5)
@pytest.mark.number("1.6")
def test_two_layer_forward(student):
    """Q1.2(a) forward pass of the two-layer network on a batch of columns"""
    generator = torch.Generator().manual_seed(4)
    d_x, d_a, k, m = 5, 4, 3, 6
    x = torch.randn(d_x, m, generator=generator, dtype=torch.float64)
    w1 = torch.randn(d_a, d_x, generator=generator, dtype=torch.float64)
    b1 = torch.randn(d_a, 1, generator=generator, dtype=torch.float64)
    w2 = torch.randn(k, d_a, generator=generator, dtype=torch.float64)
    b2 = torch.randn(k, 1, generator=generator, dtype=torch.float64)
    a1 = F.leaky_relu((x.T @ w1.T + b1.T), 0.01)
    y_hat = torch.softmax(a1 @ w2.T + b2.T, dim=1)
    got = student.theory.two_layer_forward(x, w1, b1, w2, b2)
    assert_close(got, (a1.T, y_hat.T), call=describe_call("two_layer_forward", x, w1, b1, w2, b2), rtol=1e-9,
                 atol=1e-12, hint="LeakyReLU slope 0.01; softmax over the classes of each column (dim 0)")
    shapes = student.theory.two_layer_shapes(7, 2, 9, 1)
    check(tuple(shapes.get("W2", ())) == (9, 2) and tuple(shapes.get("A1", ())) == (2, 1),
          f"two_layer_shapes(7, 2, 9, 1): expected W2 (9, 2) and A1 (2, 1), got {shapes}")


def _jacobians(z: torch.Tensor) -> torch.Tensor:
    rows = [torch.autograd.functional.jacobian(lambda v: torch.softmax(v, dim=0), row) for row in z]
    return torch.stack(rows)


@pytest.mark.weight(0.5)
@pytest.mark.number("1.7")
@settings(max_examples=15)
@given(seeds, st.integers(2, 6))
def test_softmax_jacobian_diagonal_batched(student, seed, classes):
    """Q1.2(b) softmax Jacobian diagonal, batched, on random logits"""
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(3, classes, generator=generator, dtype=torch.float64) * 3
    y_hat = torch.softmax(z, dim=1)
    got = student.theory.softmax_jacobian(y_hat)
    check(isinstance(got, torch.Tensor) and tuple(got.shape) == (3, classes, classes),
          f"expected a [3, {classes}, {classes}] tensor for a batch of 3, got {getattr(got, 'shape', got)}",
          hint="batch along the leading dimensions (torch.diag_embed)")
    assert_close(got.diagonal(dim1=-2, dim2=-1), _jacobians(z).diagonal(dim1=-2, dim2=-1),
                 call=describe_call("softmax_jacobian", y_hat), what="diagonals", rtol=1e-9, atol=1e-12)


@pytest.mark.weight(0.5)
@pytest.mark.number("1.8")
@settings(max_examples=15)
@given(seeds, st.integers(2, 6))
def test_softmax_jacobian_full_batched(student, seed, classes):
    """Q1.2(c) the whole softmax Jacobian, batched, on random logits"""
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(2, classes, generator=generator, dtype=torch.float64) * 3
    y_hat = torch.softmax(z, dim=1)
    got = student.theory.softmax_jacobian(y_hat)
    check(isinstance(got, torch.Tensor) and tuple(got.shape) == (2, classes, classes),
          f"expected a [2, {classes}, {classes}] tensor, got {getattr(got, 'shape', got)}")
    assert_close(got, _jacobians(z), call=describe_call("softmax_jacobian", y_hat), rtol=1e-9, atol=1e-12,
                 hint="J[k, i] = y_hat_k (delta_ki - y_hat_i); row k is the output")


@pytest.mark.weight(1)
@pytest.mark.number("1.9")
@settings(max_examples=15)
@given(seeds, st.integers(2, 8))
def test_softmax_cross_entropy_grad_random(student, seed, classes):
    """Q1.2(d) dL/dz against autograd for random logits and labels, float32 and float64"""
    generator = torch.Generator().manual_seed(seed)
    for dtype in (torch.float32, torch.float64):
        z = torch.randn(4, classes, generator=generator, dtype=dtype) * 4
        y = F.one_hot(torch.randint(0, classes, (4,), generator=generator), classes).to(dtype)
        zz = z.clone().requires_grad_(True)
        (-(y * torch.log_softmax(zz, dim=1)).sum()).backward()
        y_hat = torch.softmax(z, dim=1)
        got = call_keeping_inputs(student.theory.softmax_cross_entropy_grad, y_hat, y)
        assert_close(got, zz.grad, call=describe_call("softmax_cross_entropy_grad", y_hat, y), rtol=1e-5,
                     atol=1e-6, hint="return y_hat - y as a new tensor; y_hat and y stay unchanged")


@pytest.mark.weight(1)
@pytest.mark.number("1.10")
def test_stable_softmax_rows_of_different_scale(student):
    """Q1.2(e) stable softmax: the max is taken along dim (rows of very different scale), any dim, float64, z unchanged"""
    z = torch.tensor([[1000.0, 999.0, 990.0], [-1000.0, -999.0, -1001.0]])
    got = call_keeping_inputs(student.theory.stable_softmax, z, dim=1)  # z - max, not z -= max
    assert_close(got, torch.softmax(z, dim=1), call=describe_call("stable_softmax", z, dim=1), rtol=1e-5, atol=1e-7,
                 hint="subtract the maximum of each row (keepdim=True), not the maximum of the whole tensor")
    z = torch.tensor([[1000.0, -1000.0], [999.0, -998.0], [0.0, -999.0]], dtype=torch.float64)
    got = student.theory.stable_softmax(z, dim=0)
    assert_close(got, torch.softmax(z, dim=0), call=describe_call("stable_softmax", z, dim=0), rtol=1e-9,
                 atol=1e-12, hint="normalise along the requested dim")
    z = torch.tensor([3.0e38, -3.0e38, 0.0])
    got = student.theory.stable_softmax(z)
    assert_close(got, torch.tensor([1.0, 0.0, 0.0]), call=describe_call("stable_softmax", z), atol=1e-7,
                 hint="the largest exponent must be exp(0) = 1")
