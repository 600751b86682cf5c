"""Public tests of the BYOL pre-training loop: optimiser, one step, schedules, logs and checkpoints."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from grader.compare import assert_close, check
from grader.student import call_keeping_inputs, module_info, num_parameters, type_name


def _byol(student, make_backbone, tau: float = 0.9):
    return student.byol.BYOL(make_backbone(6, seed=11), 6, projection_dim=4, hidden_dim=10, tau=tau)


def _views(count: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randn(4, 3, 6, 6, generator=generator), torch.randn(4, 3, 6, 6, generator=generator))
            for _ in range(count)]


def _split(state: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


@pytest.mark.weight(1)
@pytest.mark.number("3.1")
def test_build_optimizer(student, make_backbone):
    """build_optimizer: Adam over the online parameters only, with the given lr and weight decay"""
    model = _byol(student, make_backbone)
    optimizer = student.train_byol.build_optimizer(model, lr=0.01)
    call = "build_optimizer(BYOL(...), lr=0.01)"
    check(type_name(optimizer).endswith("Adam"), f"expected torch.optim.Adam, got {type_name(optimizer)}", call=call)
    groups = optimizer.param_groups
    check(len(groups) == 1 and groups[0]["lr"] == pytest.approx(0.01),
          f"expected one parameter group with lr 0.01, got {[g['lr'] for g in groups]}", call=call)
    online = sum(num_parameters(getattr(model, part)) for part in ("online_encoder", "online_projector", "predictor"))
    given = sum(p.numel() for g in groups for p in g["params"])
    check(given == online, f"the optimiser holds {given} parameter values; the online network has {online}",
          call=call, hint="give the optimiser model.online_parameters(): the target moves only by the EMA")
    check(groups[0]["weight_decay"] == pytest.approx(0.0), f"the default weight_decay is 0.0, got "
          f"{groups[0]['weight_decay']}", call=call)
    decayed = student.train_byol.build_optimizer(model, lr=0.003, weight_decay=0.05).param_groups
    check(len(decayed) == 1 and decayed[0]["lr"] == pytest.approx(0.003)
          and decayed[0]["weight_decay"] == pytest.approx(0.05),
          f"expected one group with lr 0.003 and weight_decay 0.05, got "
          f"{[(g['lr'], g['weight_decay']) for g in decayed]}", call="build_optimizer(BYOL(...), lr=0.003, "
          "weight_decay=0.05)", hint="pass lr and weight_decay on to torch.optim.Adam")


@pytest.mark.weight(3)
@pytest.mark.number("3.2")
def test_train_step(student, worker, make_backbone, grads_of):
    """train_step: training mode, the online network learns, the target is exactly the EMA and gets no gradient"""
    model = _byol(student, make_backbone, tau=0.9)
    optimizer = worker.torch.optim.SGD(model.parameters(), lr=0.5)  # built here: independent of build_optimizer
    (view1, view2), (view3, view4) = _views(2, seed=3)
    for tau, views in ((None, (view1, view2)), (0.5, (view3, view4))):
        before = model.state_dict()
        model.train()
        expected_loss = model(*views)
        model.load_state_dict(before)  # forget the BatchNorm statistics of that extra forward pass
        model.eval()  # as after an evaluation: train_step must put the model back into training mode itself
        loss = call_keeping_inputs(student.train_byol.train_step, model, optimizer, *views, tau) if tau is not None \
            else call_keeping_inputs(student.train_byol.train_step, model, optimizer, *views)
        call = (f"model.eval(); train_step(model with tau=0.9, optimizer, view1, view2"
                f"{'' if tau is None else ', 0.5'})")
        check(isinstance(loss, float), f"expected the loss as a Python float, got {type(loss).__name__}", call=call,
              hint="return float(loss) (or loss.item())")
        assert_close(loss, float(expected_loss.detach()), call=call, rtol=1e-5, atol=1e-6, what="returned loss",
                     hint="model.train() first (BatchNorm on batch statistics), then return the loss of "
                          "model(view1, view2) computed before the update")
        after = model.state_dict()
        changed = [k for k in _split(after, "online_encoder.") if after["online_encoder." + k].is_floating_point()
                   and not torch.equal(after["online_encoder." + k], before["online_encoder." + k])]
        check(bool(changed), "the online encoder did not change", call=call,
              hint="loss.backward() then optimizer.step()")
        effective = 0.9 if tau is None else tau
        parameters = {name for name, *_ in module_info(model)["parameters"]}
        for part in ("encoder", "projector"):
            for name in _split(after, f"target_{part}."):
                if f"target_{part}.{name}" not in parameters:
                    continue
                xi, theta = before[f"target_{part}.{name}"].double(), after[f"online_{part}.{name}"].double()
                assert_close(after[f"target_{part}.{name}"], (effective * xi + (1 - effective) * theta).float(),
                             call=call, rtol=1e-5, atol=1e-6, what=f"target_{part}.{name}",
                             hint="after optimizer.step(): target <- tau * target + (1 - tau) * (updated online); "
                                  "tau=None means model.tau")
        grads = grads_of(model.target_encoder.parameters()) + grads_of(model.target_projector.parameters())
        check(all(g is None or not g.any() for g in grads), "target parameters received gradients", call=call,
              hint="compute the target projections under torch.no_grad() / detach them")


def _pretrain(student, make_backbone, worker, folder: Path, epochs: int = 2, save_every: int = 1,
              schedule_tau: bool = True):
    model = _byol(student, make_backbone, tau=0.9)
    optimizer = worker.torch.optim.Adam(model.parameters(), lr=0.02)  # independent of build_optimizer
    history = student.train_byol.pretrain(model, _views(3, seed=4), epochs, optimizer, str(folder),
                                          schedule_tau=schedule_tau, save_every=save_every)
    return model, optimizer, history


@pytest.mark.weight(2)
@pytest.mark.number("3.3")
def test_pretrain_checkpoints(student, worker, make_backbone, sandbox_tmp_path):
    """pretrain: per-epoch losses and checkpoints of the online backbone alone"""
    model, _, history = _pretrain(student, make_backbone, worker, sandbox_tmp_path / "run")
    call = "pretrain(BYOL(...), 3 batches of views, epochs=2, optimizer, out_dir, save_every=1)"
    check(isinstance(history, list) and len(history) == 2 and all(isinstance(x, float) for x in history),
          f"expected a list of 2 floats (mean loss per epoch), got {history!r}", call=call)
    for name in ("backbone_last.pth", "backbone_epoch001.pth", "backbone_epoch002.pth"):
        check((sandbox_tmp_path / "run" / name).is_file(), f"{name} was not written in out_dir", call=call)
    saved = torch.load(sandbox_tmp_path / "run" / "backbone_last.pth", map_location="cpu", weights_only=True)
    expected = model.online_encoder.state_dict()
    check(isinstance(saved, dict) and sorted(saved) == sorted(expected),
          f"backbone_last.pth should hold online_encoder.state_dict() alone (keys {sorted(expected)[:4]}...), "
          f"got keys {sorted(saved)[:6] if isinstance(saved, dict) else type(saved).__name__}", call=call,
          hint="torch.save(model.online_encoder.state_dict(), path): no projector, predictor or target")
    assert_close(saved, expected, call=call, what="backbone_last.pth", rtol=0, atol=0,
                 hint="save the online encoder after the last epoch")
    first = torch.load(sandbox_tmp_path / "run" / "backbone_epoch001.pth", map_location="cpu", weights_only=True)
    check(any(not torch.equal(first[k], saved[k]) for k in saved if saved[k].is_floating_point()),
          "backbone_epoch001.pth equals the final backbone", call=call, hint="save after each epoch's updates")


@pytest.mark.weight(2)
@pytest.mark.number("3.4")
def test_pretrain_schedules_and_logs(student, worker, make_backbone, helpers, sandbox_tmp_path):
    """pretrain: cosine learning rate, cosine tau, TensorBoard scalars"""
    model, optimizer, history = _pretrain(student, make_backbone, worker, sandbox_tmp_path / "run")
    call = "pretrain(BYOL(tau=0.9), 3 batches of views, epochs=2, Adam(lr=0.02), out_dir)"
    scalars = helpers.read_scalars(sandbox_tmp_path / "run" / "tensorboard")
    for tag in ("pretrain/loss", "pretrain/lr", "pretrain/tau", "pretrain/epoch_loss"):
        check(tag in scalars, f"no scalar {tag!r} in the TensorBoard logs (found {sorted(scalars)})", call=call,
              hint="SummaryWriter(out_dir / 'tensorboard').add_scalar(tag, value, step)")
    total = 6
    check([s for s, _ in scalars["pretrain/loss"]] == list(range(total)),
          f"expected pretrain/loss at steps 0..5, got steps {[s for s, _ in scalars['pretrain/loss']]}", call=call)
    lrs = torch.tensor([v for _, v in scalars["pretrain/lr"]], dtype=torch.float64)
    expected_lr = torch.tensor([0.02 * (1 + math.cos(math.pi * k / total)) / 2 for k in range(total)],
                               dtype=torch.float64)
    assert_close(lrs, expected_lr, call=call, rtol=1e-5, atol=1e-8, what="logged learning rates",
                 hint="CosineAnnealingLR(optimizer, T_max=epochs * len(loader)), stepped after every batch; "
                      "log the rate each step used")
    final_lr = optimizer.param_groups[0]["lr"]
    check(abs(final_lr) < 1e-9, f"after the last step the learning rate should be 0, got {final_lr}", call=call)
    taus = torch.tensor([v for _, v in scalars["pretrain/tau"]], dtype=torch.float64)
    expected_tau = torch.tensor([1 - 0.1 * (math.cos(math.pi * k / total) + 1) / 2 for k in range(total)],
                                dtype=torch.float64)
    assert_close(taus, expected_tau, call=call, rtol=1e-6, atol=1e-7, what="logged tau",
                 hint="tau at global step k is cosine_tau(k, epochs * len(loader), model.tau)")
    epoch_loss = [v for _, v in scalars["pretrain/epoch_loss"]]
    assert_close(epoch_loss, [float(x) for x in history], call=call, rtol=1e-5, atol=1e-6,
                 what="logged pretrain/epoch_loss", hint="log each epoch's mean loss at global_step=epoch")
    step_losses = [v for _, v in scalars["pretrain/loss"]]
    assert_close([sum(step_losses[:3]) / 3, sum(step_losses[3:]) / 3], [float(x) for x in history], call=call,
                 rtol=1e-5, atol=1e-6, what="history", hint="an epoch's loss is the mean of its step losses")
