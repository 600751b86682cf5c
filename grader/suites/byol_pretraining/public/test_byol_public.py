"""Public tests of BYOL: the loss, the EMA target and the networks (no reference needed)."""

from __future__ import annotations

import math

import pytest
import torch

from grader.compare import assert_close, assert_equal, check, describe_call
from grader.student import call_keeping_inputs, module_info, num_parameters, student_raises, value_and_grad


def hand_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``2 - 2 cos(p, z)`` per row, in float64."""
    p, z = p.double(), z.double()
    return 2 - 2 * (p * z).sum(-1) / (p.norm(dim=-1) * z.norm(dim=-1))


def hand_grad(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """d(2 - 2 cos(p, z))/dp = -2 (z_hat - cos * p_hat) / |p|, in float64."""
    p, z = p.double(), z.double()
    p_norm = p.norm(dim=-1, keepdim=True)
    p_hat, z_hat = p / p_norm, z / z.norm(dim=-1, keepdim=True)
    cos = (p_hat * z_hat).sum(-1, keepdim=True)
    return -2 * (z_hat - cos * p_hat) / p_norm


@pytest.mark.weight(2)
@pytest.mark.number("2.1")
def test_byol_loss_value_and_gradient(student):
    """byol_loss: 2 - 2 cos per pair (2 with a zero vector) and its gradient, by hand; inputs left unchanged"""
    golden_p = torch.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, 0.0], [3.0, 4.0]])
    golden_z = torch.tensor([[0.0, 2.0], [2.0, 2.0], [-3.0, 0.0], [4.0, 3.0]])
    got = call_keeping_inputs(student.byol.byol_loss, golden_p, golden_z)  # neither input changed in place
    assert_close(got, torch.tensor([2.0, 0.0, 4.0, 2 - 2 * 24 / 25]), call=describe_call("byol_loss", golden_p, golden_z),
                 hint="normalise both vectors (L2, last dimension), then 2 - 2 * their dot product; one value per row")
    # A zero vector has no direction: F.normalize's eps maps it to zero, so its cosine is 0 and the loss 2.
    zero_p = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 2.0], [0.0, 0.0, 0.0]])
    zero_z = torch.tensor([[1.0, -1.0, 0.5], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    got = call_keeping_inputs(student.byol.byol_loss, zero_p, zero_z)
    assert_close(got, torch.tensor([2.0, 2.0, 2.0]), call=describe_call("byol_loss", zero_p, zero_z),
                 what="loss of pairs with a zero vector",
                 hint="normalise with F.normalize(x, dim=-1) (its eps keeps a zero vector finite), not x / x.norm()")
    generator = torch.Generator().manual_seed(0)
    p = torch.randn(6, 9, generator=generator) * torch.rand(6, 1, generator=generator) * 5
    z = torch.randn(6, 9, generator=generator)
    loss, (grad,) = value_and_grad(student.byol.byol_loss, p, z, wrt=(0,))
    call = describe_call("byol_loss", p, z)
    assert_close(loss, hand_loss(p, z).float(), call=call, rtol=1e-5, atol=1e-5)
    check(grad is not None, "no gradient reached the prediction", call=call)
    assert_close(grad, hand_grad(p, z).float(), call=call, rtol=1e-4, atol=1e-5, what="d loss / d prediction",
                 hint="let autograd differentiate through F.normalize of the prediction")


@pytest.mark.weight(1)
@pytest.mark.number("2.2")
def test_byol_loss_stops_the_gradient_of_the_target(student):
    """byol_loss: no gradient flows into the target"""
    generator = torch.Generator().manual_seed(1)
    p, z = torch.randn(4, 5, generator=generator), torch.randn(4, 5, generator=generator)
    _, (grad_p, grad_z) = value_and_grad(student.byol.byol_loss, p, z, wrt=(0, 1))
    check(grad_z is None or not grad_z.any(), "the target received a gradient", call=describe_call("byol_loss", p, z),
          hint="detach the target: it is a constant of the regression")
    check(grad_p is not None and bool(grad_p.abs().sum() > 0), "the prediction received no gradient",
          call=describe_call("byol_loss", p, z))
    with student_raises("ValueError", match=r"\[4, 5\]"):
        student.byol.byol_loss(p, z[:, :4])


@pytest.mark.weight(1)
@pytest.mark.number("2.3")
def test_symmetric_byol_loss(student):
    """symmetric_byol_loss: each view's prediction regresses the other view's target"""
    generator = torch.Generator().manual_seed(2)
    p1, p2, z1, z2 = (torch.randn(5, 4, generator=generator) for _ in range(4))
    got = call_keeping_inputs(student.byol.symmetric_byol_loss, p1, p2, z1, z2)  # no input changed in place
    expected = (hand_loss(p1, z2) + hand_loss(p2, z1)).mean().float()
    assert_close(got, expected, call=describe_call("symmetric_byol_loss", p1, p2, z1, z2), rtol=1e-5, atol=1e-5,
                 hint="mean over the batch of byol_loss(p1, z2) + byol_loss(p2, z1): a 0-d tensor")


@pytest.mark.weight(1)
@pytest.mark.number("2.4")
def test_mlp(student):
    """mlp: Linear, BatchNorm1d, ReLU, Linear"""
    head = student.byol.mlp(5, 11, 3)
    info = module_info(head)
    expected = [("0.weight", (11, 5)), ("0.bias", (11,)), ("1.weight", (11,)), ("1.bias", (11,)),
                ("3.weight", (3, 11)), ("3.bias", (3,))]
    got = [(name, tuple(shape)) for name, shape, *_ in info["parameters"]]
    check(got == expected, f"expected the parameters {expected}, got {got}", call="mlp(5, 11, 3)",
          hint="nn.Sequential(Linear(in, hidden), BatchNorm1d(hidden), ReLU(inplace=True), Linear(hidden, out))")
    types = [kind.rsplit(".", 1)[-1] for name, kind in info["modules"] if name]
    check(types == ["Linear", "BatchNorm1d", "ReLU", "Linear"], f"expected Linear, BatchNorm1d, ReLU, Linear; got {types}",
          call="mlp(5, 11, 3)")
    out = head(torch.randn(4, 5))
    check(tuple(out.shape) == (4, 3), f"expected an output [4, 3], got {list(out.shape)}", call="mlp(5, 11, 3)(x[4, 5])")


def _trained_pair(worker, make_backbone):
    """Two tiny networks whose BatchNorm buffers differ (different numbers of training batches)."""
    online, target = make_backbone(6, seed=1), make_backbone(6, seed=2)
    for _ in range(2):
        online(worker.torch.randn(4, 3, 5, 5))
    target(worker.torch.randn(4, 3, 5, 5) * 2)
    return online, target


@pytest.mark.weight(2)
@pytest.mark.number("2.5")
def test_ema_update_parameters(student, worker, make_backbone):
    """ema_update: target parameters become tau * target + (1 - tau) * online, online unchanged"""
    online, target = _trained_pair(worker, make_backbone)
    parameter_names = [name for name, *_ in module_info(online)["parameters"]]
    for tau in (0.9, 0.5, 0.996, 0.0, 1.0):
        before_online, before_target = online.state_dict(), target.state_dict()
        result = student.byol.ema_update(online, target, tau)
        call = describe_call("ema_update", online, target, tau)
        check(result is None, f"ema_update updates in place and returns None, got {result!r}", call=call)
        after_online, after_target = online.state_dict(), target.state_dict()
        for name in parameter_names:
            expected = (tau * before_target[name].double() + (1 - tau) * before_online[name].double()).float()
            assert_close(after_target[name], expected, call=call, rtol=1e-6, atol=1e-7, what=f"target {name}",
                         hint="xi <- tau * xi + (1 - tau) * theta, in place, under torch.no_grad()")
            assert_equal(after_online[name], before_online[name], call=call, what=f"online {name}",
                         hint="the online network must not change")


@pytest.mark.weight(1)
@pytest.mark.number("2.6")
def test_ema_update_buffers(student, worker, make_backbone):
    """ema_update: BatchNorm running statistics averaged, num_batches_tracked copied, online buffers unchanged"""
    online, target = _trained_pair(worker, make_backbone)
    before_online, before_target = online.state_dict(), target.state_dict()
    student.byol.ema_update(online, target, 0.75)
    after = target.state_dict()
    call = describe_call("ema_update", online, target, 0.75)
    after_online = online.state_dict()
    for name in ("1.running_mean", "1.running_var", "1.num_batches_tracked"):
        assert_equal(after_online[name], before_online[name], call=call, what=f"online {name}",
                     hint="only the target moves: update the target's buffers in place (xi.mul_(tau).add_(theta, "
                          "...) or xi.lerp_(theta, 1 - tau)), never the online network's")
    for name in ("1.running_mean", "1.running_var"):
        expected = (0.75 * before_target[name].double() + 0.25 * before_online[name].double()).float()
        assert_close(after[name], expected, call=call, rtol=1e-6, atol=1e-7, what=f"target {name}",
                     hint="floating-point buffers follow the same moving average as parameters")
    assert_equal(after["1.num_batches_tracked"], before_online["1.num_batches_tracked"], call=call,
                 what="target 1.num_batches_tracked", hint="integer buffers are copied from the online network")


@pytest.mark.weight(1)
@pytest.mark.number("2.7")
def test_ema_update_errors(student, worker, make_backbone):
    """ema_update rejects tau outside [0, 1] and networks that do not match"""
    online, target = make_backbone(6, seed=1), make_backbone(6, seed=2)
    for tau in (1.5, -0.1):
        with student_raises("ValueError", match=str(tau)):
            student.byol.ema_update(online, target, tau)
    with student_raises("ValueError"):
        student.byol.ema_update(online, make_backbone(4, seed=3), 0.5)
    with student_raises("ValueError"):
        student.byol.ema_update(online, worker.nn.Sequential(make_backbone(6, seed=3), worker.nn.Linear(6, 2)),
                                0.5)


@pytest.mark.weight(1)
@pytest.mark.number("2.8")
def test_cosine_tau(student):
    """cosine_tau: 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2"""
    cases = [((0, 10, 0.996), 0.996), ((10, 10, 0.996), 1.0), ((5, 10, 0.996), 0.998),
             ((2, 8, 0.99), 1 - 0.01 * (math.cos(math.pi / 4) + 1) / 2), ((7, 7, 0.5), 1.0)]
    for args, expected in cases:
        got = student.byol.cosine_tau(*args)
        assert_close(got, expected, call=describe_call("cosine_tau", *args), rtol=1e-9, atol=1e-12,
                     hint="tau rises from base_tau at step 0 to 1 at the last step")
    for args in ((11, 10), (-1, 10), (0, 0)):
        with student_raises("ValueError"):
            student.byol.cosine_tau(*args)


def _byol(student, make_backbone, tau: float = 0.99):
    return student.byol.BYOL(make_backbone(6, seed=7), 6, projection_dim=4, hidden_dim=10, tau=tau)


@pytest.mark.weight(2)
@pytest.mark.number("2.9")
def test_byol_networks(student, make_backbone):
    """BYOL: online encoder, projector and predictor; a frozen copy of encoder and projector as the target"""
    model = _byol(student, make_backbone)
    info = module_info(model)
    call = "BYOL(tiny backbone, 6, projection_dim=4, hidden_dim=10, tau=0.99)"
    names = {name for name, *_ in info["parameters"]}
    for needed in ("online_encoder.0.weight", "online_projector.0.weight", "predictor.0.weight",
                   "target_encoder.0.weight", "target_projector.0.weight"):
        check(needed in names, f"the model has no parameter {needed!r}", call=call,
              hint="attributes online_encoder, online_projector, predictor, target_encoder, target_projector")
    shapes = {name: tuple(shape) for name, shape, *_ in info["parameters"]}
    for name, shape in (("online_projector.0.weight", (10, 6)), ("online_projector.3.weight", (4, 10)),
                        ("predictor.0.weight", (10, 4)), ("predictor.3.weight", (4, 10))):
        check(shapes.get(name) == shape, f"{name} should have shape {list(shape)}, got {shapes.get(name)}", call=call,
              hint="projector mlp(feature_dim, hidden_dim, projection_dim); predictor mlp(projection_dim, hidden_dim, "
                   "projection_dim)")
    for name, _, requires_grad, _ in info["parameters"]:
        if name.startswith("target_"):
            check(not requires_grad, f"target parameter {name} has requires_grad=True", call=call,
                  hint="the target is updated only by the moving average: requires_grad_(False)")
        else:
            check(requires_grad, f"online parameter {name} has requires_grad=False", call=call)
    extra = sorted(n for n in names if "predictor" in n and not n.startswith("predictor."))
    check(not extra, f"only the online network has a predictor; found {extra[:3]}", call=call)
    counts = {part: num_parameters(getattr(model, part)) for part in
              ("online_encoder", "online_projector", "predictor", "target_encoder", "target_projector")}
    check(counts["target_encoder"] == counts["online_encoder"]
          and counts["target_projector"] == counts["online_projector"],
          f"the target must copy the online encoder and projector; parameter counts {counts}", call=call)
    check(info["num_parameters"] == sum(counts.values()),
          f"the model has {info['num_parameters']} parameters but its five parts have {sum(counts.values())}: "
          "something else (a target predictor?) is in it", call=call)
    for part in ("encoder", "projector"):
        online_state = getattr(model, f"online_{part}").state_dict()
        target_state = getattr(model, f"target_{part}").state_dict()
        assert_close(target_state, online_state, call=call, what=f"target_{part}.state_dict()", rtol=0, atol=0,
                     hint="the target starts as a deep copy of the online network")
    # A deep copy, not the same modules: changing the online encoder leaves the target as it was.
    state = model.online_encoder.state_dict()
    model.online_encoder.load_state_dict({k: v + 1 if v.is_floating_point() else v for k, v in state.items()})
    after = model.target_encoder.state_dict()
    assert_close(after, state, call=call + "; online_encoder.load_state_dict(changed weights)", rtol=0, atol=0,
                 what="target_encoder.state_dict()", hint="copy.deepcopy the online encoder and projector")


@pytest.mark.weight(2)
@pytest.mark.number("2.10")
def test_byol_forward(student, make_backbone):
    """BYOL.forward: symmetric loss of online predictions against target projections (eval mode)"""
    model = _byol(student, make_backbone)
    # Give the target its own weights so that online and target branches differ.
    for part in ("encoder", "projector"):
        state = getattr(model, f"target_{part}").state_dict()
        generator = torch.Generator().manual_seed(5)
        getattr(model, f"target_{part}").load_state_dict(
            {k: v + 0.3 * torch.randn(v.shape, generator=generator) if v.is_floating_point() else v
             for k, v in state.items()})
    model.eval()
    generator = torch.Generator().manual_seed(6)
    view1, view2 = torch.randn(5, 3, 7, 7, generator=generator), torch.randn(5, 3, 7, 7, generator=generator)
    got = call_keeping_inputs(model, view1, view2)  # the views stay as they were
    p1 = model.predictor(model.online_projector(model.online_encoder(view1)))
    p2 = model.predictor(model.online_projector(model.online_encoder(view2)))
    z1 = model.target_projector(model.target_encoder(view1))
    z2 = model.target_projector(model.target_encoder(view2))
    expected = (hand_loss(p1, z2) + hand_loss(p2, z1)).mean().float()
    assert_close(got, expected, call=describe_call("BYOL.forward", view1, view2) + " in eval mode", rtol=1e-4,
                 atol=1e-5, hint="p_i = predictor(online_projector(online_encoder(view_i))); z_i = "
                                 "target_projector(target_encoder(view_i)) (no predictor on the target); "
                                 "loss = mean(l(p1, z2) + l(p2, z1))")
