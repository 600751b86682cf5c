"""Question 1 (theory) as code: losses, regularisation, softmax and its derivatives.

Every answer of the written theory part is a small function here, so that it can
be checked numerically (against closed forms, ``torch.autograd`` and library
implementations). Use plain tensor operations: ``torch.log``, ``torch.exp``,
sums and broadcasting. Do not call ``torch.nn.functional`` losses or
``torch.softmax`` in this file; the point is to write the formulas yourself.

Conventions: ``y`` is a label (0/1 for binary problems, one-hot or a probability
vector for K classes), ``y_hat`` a prediction, ``z`` a logit (pre-activation).
All functions keep the dtype of their floating-point inputs.
"""

from __future__ import annotations

import torch
from torch import Tensor

LEAKY_RELU_SLOPE = 0.01

# ---------------------------------------------------------------------------
# Q1.1 papaya classifier: binary losses
# ---------------------------------------------------------------------------


def sigmoid_mse_grad(z: Tensor, y: Tensor) -> Tensor:
    """Gradient of the squared error ``(sigmoid(z) - y) ** 2`` with respect to the logit ``z``.

    Q1.1(a): why MSE is a poor fit for a sigmoid classifier. The gradient is
    ``2 (s - y) s (1 - s)`` with ``s = sigmoid(z)``: the factor ``s (1 - s)``
    vanishes when the sigmoid saturates, so a confidently *wrong* prediction
    (``z = -10`` for ``y = 1``) barely moves the weights.

    Args:
        z (Tensor[...]): logits, float.
        y (Tensor[...]): labels in {0, 1} (or in [0, 1]), broadcastable to ``z``.

    Returns:
        Tensor[...]: elementwise ``d/dz (sigmoid(z) - y)**2``, dtype of ``z``.
    """
    # BEGIN SOLUTION
    s = torch.sigmoid(z)
    return 2 * (s - y) * s * (1 - s)
    # END SOLUTION


def sigmoid_bce_grad(z: Tensor, y: Tensor) -> Tensor:
    """Gradient of the binary cross-entropy of ``sigmoid(z)`` with respect to the logit ``z``.

    Q1.1(a), the contrast: for BCE the gradient is ``sigmoid(z) - y``. It is
    largest exactly when the prediction is confidently wrong.

    Args:
        z (Tensor[...]): logits, float.
        y (Tensor[...]): labels in {0, 1} (or in [0, 1]), broadcastable to ``z``.

    Returns:
        Tensor[...]: elementwise ``d/dz BCE(sigmoid(z), y)``, dtype of ``z``.
    """
    # BEGIN SOLUTION
    return torch.sigmoid(z) - y
    # END SOLUTION


def binary_cross_entropy(y_hat: Tensor, y: Tensor) -> Tensor:
    """Binary cross-entropy of each example, Q1.1(b) and (c).

    ``L(y, y_hat) = -(y log(y_hat) + (1 - y) log(1 - y_hat))`` with the natural
    log. For ``y = 0, y_hat = 0.9`` this is ``-log(0.1) = 2.302585``.

    Args:
        y_hat (Tensor[...]): predicted probabilities, strictly inside (0, 1).
        y (Tensor[...]): labels in {0, 1}, broadcastable to ``y_hat``.

    Returns:
        Tensor[...]: the loss of every element (no reduction), dtype of ``y_hat``.
    """
    # BEGIN SOLUTION
    return -(y * torch.log(y_hat) + (1 - y) * torch.log1p(-y_hat))
    # END SOLUTION


def mean_binary_cross_entropy(y_hat: Tensor, y: Tensor) -> Tensor:
    """Binary cross-entropy averaged over a data set, Q1.1(d).

    For ``Y = {1, 0, 0}`` and ``Y_hat = {0.1, 0.2, 0.7}`` the answer is
    ``(-log 0.1 - log 0.8 - log 0.3) / 3 = 1.243234``.

    Args:
        y_hat (Tensor[N]): predicted probabilities, strictly inside (0, 1).
        y (Tensor[N]): labels in {0, 1}.

    Returns:
        Tensor[] (0-dim): the mean loss over the N examples.
    """
    # BEGIN SOLUTION
    return binary_cross_entropy(y_hat, y).mean()
    # END SOLUTION


def l2_regularized_update(w: Tensor, grad: Tensor, lr: float, weight_decay: float) -> Tensor:
    """One gradient-descent step on ``L_BCE + (lambda / 2) * ||w||^2``, Q1.1(e).

    ``w <- w - lr * (dL_BCE/dw + lambda * w)``: the same step as
    ``torch.optim.SGD(lr=lr, weight_decay=lambda)``. Each step also shrinks ``w``
    by the factor ``(1 - lr * lambda)``, so a model trained with L2
    regularisation ends with smaller weights than one trained without.

    Args:
        w (Tensor[...]): current weights.
        grad (Tensor[...]): ``dL_BCE/dw``, same shape as ``w``.
        lr (float): learning rate ``alpha``.
        weight_decay (float): L2 hyper-parameter ``lambda``.

    Returns:
        Tensor[...]: the updated weights (a new tensor; ``w`` is not modified).
    """
    # BEGIN SOLUTION
    return w - lr * (grad + weight_decay * w)
    # END SOLUTION


# ---------------------------------------------------------------------------
# Q1.1(f): entropy, cross-entropy and KL divergence
# ---------------------------------------------------------------------------


def entropy(p: Tensor) -> Tensor:
    """Entropy ``H(P) = -sum_x P(x) log P(x)`` of discrete distributions (natural log).

    Terms with ``P(x) = 0`` contribute 0 (the limit of ``p log p``), never NaN.

    Args:
        p (Tensor[..., K]): probability vectors along the last dimension.

    Returns:
        Tensor[...]: one entropy per distribution.
    """
    # BEGIN SOLUTION
    return -torch.xlogy(p, p).sum(-1)
    # END SOLUTION


def cross_entropy(p: Tensor, q: Tensor) -> Tensor:
    """Cross-entropy ``H(P, Q) = -sum_x P(x) log Q(x)`` (natural log).

    Terms with ``P(x) = 0`` contribute 0 even where ``Q(x) = 0``; a term with
    ``P(x) > 0`` and ``Q(x) = 0`` makes the result ``+inf``.

    Args:
        p (Tensor[..., K]): the true distributions.
        q (Tensor[..., K]): the model's distributions, broadcastable to ``p``.

    Returns:
        Tensor[...]: one cross-entropy per pair.
    """
    # BEGIN SOLUTION
    return -torch.xlogy(p, q).sum(-1)
    # END SOLUTION


def kl_divergence(p: Tensor, q: Tensor) -> Tensor:
    """Kullback-Leibler divergence ``D_KL(P || Q) = sum_x P(x) log(P(x) / Q(x))``.

    It is the cross-entropy minus the entropy, ``D_KL(P || Q) = H(P, Q) - H(P)``,
    always >= 0, and 0 exactly when P = Q. Same conventions for zeros as
    ``cross_entropy``.

    Args:
        p (Tensor[..., K]): the true distributions.
        q (Tensor[..., K]): the model's distributions, broadcastable to ``p``.

    Returns:
        Tensor[...]: one divergence per pair.
    """
    # BEGIN SOLUTION
    return cross_entropy(p, q) - entropy(p)
    # END SOLUTION


# ---------------------------------------------------------------------------
# Q1.2: the two-layer softmax network
# ---------------------------------------------------------------------------


def two_layer_shapes(d_x: int, d_a: int, k: int, m: int) -> dict[str, tuple[int, int]]:
    """Shapes in the two-layer network of Q1.2(a), in the column convention of the handout.

    ``z1 = W1 x + b1``, ``a1 = LeakyReLU(z1)``, ``z2 = W2 a1 + b2``,
    ``y_hat = softmax(z2)`` with ``x`` of shape ``(D_x, 1)``. For a batch
    ``X`` of shape ``(D_x, m)`` (one example per column) the hidden output is
    ``A1`` of shape ``(D_a, m)``.

    Args:
        d_x (int): input size ``D_x``.
        d_a (int): hidden size ``D_a``.
        k (int): number of classes ``K``.
        m (int): batch size.

    Returns:
        dict with keys ``"W1"``, ``"b1"``, ``"W2"``, ``"b2"``, ``"A1"`` (batched
        hidden output) and ``"Y_hat"`` (batched output), each a tuple of two ints.
    """
    # BEGIN SOLUTION
    return {"W1": (d_a, d_x), "b1": (d_a, 1), "W2": (k, d_a), "b2": (k, 1), "A1": (d_a, m), "Y_hat": (k, m)}
    # END SOLUTION


def two_layer_forward(x: Tensor, w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor) -> tuple[Tensor, Tensor]:
    """Forward pass of the two-layer network of Q1.2 on a batch of column vectors.

    Args:
        x (Tensor[D_x, m]): one example per column.
        w1 (Tensor[D_a, D_x]), b1 (Tensor[D_a, 1]): first layer.
        w2 (Tensor[K, D_a]), b2 (Tensor[K, 1]): second layer.

    Returns:
        (Tensor[D_a, m], Tensor[K, m]): the hidden output ``A1 = LeakyReLU(W1 X + b1)``
        (negative slope 0.01) and ``Y_hat``, the softmax of ``W2 A1 + b2`` over
        the classes of each column (use ``stable_softmax``).
    """
    # BEGIN SOLUTION
    z1 = w1 @ x + b1
    a1 = torch.where(z1 > 0, z1, LEAKY_RELU_SLOPE * z1)
    return a1, stable_softmax(w2 @ a1 + b2, dim=0)
    # END SOLUTION


def softmax_jacobian(y_hat: Tensor) -> Tensor:
    """Jacobian of the softmax, written with its output only, Q1.2(b) and (c).

    ``J[k, i] = d y_hat_k / d z_i``: on the diagonal ``y_hat_k (1 - y_hat_k)``,
    off the diagonal (``i != k``) ``-y_hat_k y_hat_i``; i.e.
    ``diag(y_hat) - y_hat y_hat^T``. No Python loop over classes.

    Args:
        y_hat (Tensor[..., K]): softmax outputs (batched along leading dims).

    Returns:
        Tensor[..., K, K]: one Jacobian per vector, row ``k`` = output ``k``.
    """
    # BEGIN SOLUTION
    return torch.diag_embed(y_hat) - y_hat.unsqueeze(-1) * y_hat.unsqueeze(-2)
    # END SOLUTION


def softmax_cross_entropy_grad(y_hat: Tensor, y: Tensor) -> Tensor:
    """Gradient of ``L = -sum_i y_i log(y_hat_i)``, ``y_hat = softmax(z)``, w.r.t. the logits ``z``, Q1.2(d).

    For a one-hot ``y`` with its 1 at ``k``: ``dL/dz_k = y_hat_k - 1`` and
    ``dL/dz_i = y_hat_i`` for ``i != k``; together ``y_hat - y`` (also valid
    for any target ``y`` that sums to 1).

    Args:
        y_hat (Tensor[..., K]): softmax outputs.
        y (Tensor[..., K]): one-hot (or probability) targets.

    Returns:
        Tensor[..., K]: ``dL/dz``.
    """
    # BEGIN SOLUTION
    return y_hat - y
    # END SOLUTION


def stable_softmax(z: Tensor, dim: int = -1) -> Tensor:
    """Numerically stable softmax, Q1.2(e).

    ``exp`` overflows to ``inf`` for logits above ~88 in float32 (``inf / inf``
    is NaN) and underflows to 0 for very negative ones (``0 / 0``). Softmax is
    unchanged by subtracting a constant from every logit, so subtract the
    maximum along ``dim`` first: the largest exponent is then ``exp(0) = 1``.
    ``stable_softmax(tensor([1000., 0., -1000.]))`` is ``[1, 0, 0]``.

    Args:
        z (Tensor[...]): logits.
        dim (int): the dimension that sums to 1.

    Returns:
        Tensor[...]: probabilities, same shape and dtype as ``z``, finite for
        every finite input.
    """
    # BEGIN SOLUTION
    shifted = z - z.amax(dim=dim, keepdim=True)
    exp = torch.exp(shifted)
    return exp / exp.sum(dim=dim, keepdim=True)
    # END SOLUTION
