"""Hidden tests of byol_pretraining: random inputs against the reference, and the less visible rules."""

from __future__ import annotations

import itertools
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.compare import assert_close, check, describe_call
from grader.sandbox.client import StudentCodeError
from grader.student import call_keeping_inputs, student_raises, value_and_grad


@pytest.mark.weight(1)
@pytest.mark.number("7.1")
@settings(max_examples=25)
@given(batch=st.integers(1, 6), dim=st.integers(1, 9), seed=st.integers(0, 10_000),
       scale=st.sampled_from([1e-3, 1.0, 50.0]))
def test_byol_loss_random(student, reference, batch, dim, seed, scale):
    """byol_loss and its gradient on random batches, against the reference"""
    generator = torch.Generator().manual_seed(seed)
    p = torch.randn(batch, dim, generator=generator) * scale
    z = torch.randn(batch, dim, generator=generator)
    expected, (expected_grad,) = value_and_grad(reference.byol.byol_loss, p, z, wrt=(0,))
    got, (grad,) = value_and_grad(student.byol.byol_loss, p, z, wrt=(0,))
    call = describe_call("byol_loss", p, z)
    assert_close(got, expected, call=call, rtol=1e-4, atol=1e-5)
    check(grad is not None, "no gradient reached the prediction", call=call)
    assert_close(grad, expected_grad, call=call, rtol=1e-3, atol=1e-4 / scale, what="d loss / d prediction")


@pytest.mark.weight(1)
@pytest.mark.number("7.2")
@settings(max_examples=8)
@given(tau=st.floats(0.0, 1.0), seed=st.integers(0, 1000))
def test_ema_update_random(student, reference, worker, make_backbone, helpers, tau, seed):
    """ema_update on random networks and rates, against the reference"""
    online, target = make_backbone(5, seed=seed), make_backbone(5, seed=seed + 1)
    online(worker.torch.randn(3, 3, 4, 4))
    online_state, target_state = online.state_dict(), target.state_dict()
    local_online, local_target = helpers.local_backbone(5), helpers.local_backbone(5)
    local_online.load_state_dict(online_state)
    local_target.load_state_dict(target_state)
    reference.byol.ema_update(local_online, local_target, tau)
    student.byol.ema_update(online, target, tau)
    assert_close(target.state_dict(), local_target.state_dict(), call=describe_call("ema_update", online, target, tau),
                 rtol=1e-5, atol=1e-6, what="target.state_dict()")


@pytest.mark.weight(1)
@pytest.mark.number("7.3")
def test_byol_forward_train_and_eval_mode(student, reference, make_backbone, helpers):
    """BYOL.forward in train and eval mode, batches of 6 and 3, against the reference (separate or concatenated)"""
    model = student.byol.BYOL(make_backbone(6, seed=7), 6, projection_dim=4, hidden_dim=10, tau=0.99)
    local = reference.byol.BYOL(helpers.local_backbone(6, seed=7), 6, projection_dim=4, hidden_dim=10, tau=0.99)
    state = model.state_dict()
    check(sorted(state) == sorted(local.state_dict()),
          f"the model's state_dict keys {sorted(state)[:5]}... differ from the documented attributes' "
          f"{sorted(local.state_dict())[:5]}...", call="BYOL(...).state_dict()")
    generator = torch.Generator().manual_seed(9)
    state = {k: v + 0.2 * torch.randn(v.shape, generator=generator) if k.startswith("target_")
             and v.is_floating_point() else v for k, v in state.items()}
    for shape, mode in itertools.product([(6, 3, 5, 5), (3, 3, 7, 4)], ("eval", "train")):
        if mode == "eval":  # each shape from the same weights and statistics
            model.load_state_dict(state)
            local.load_state_dict(state)
            view1, view2 = torch.randn(*shape, generator=generator), torch.randn(*shape, generator=generator)
        getattr(model, mode)()
        getattr(local, mode)()
        got = call_keeping_inputs(model, view1, view2)  # the views stay as they were
        with torch.no_grad():
            separate = local(view1, view2)
            both = torch.cat([view1, view2])
            p1, p2 = local.predictor(local.online_projector(local.online_encoder(both))).chunk(2)
            z1, z2 = local.target_projector(local.target_encoder(both)).chunk(2)
            concatenated = reference.byol.symmetric_byol_loss(p1, p2, z1, z2)
        call = describe_call("BYOL.forward", view1, view2) + f" in {mode} mode"
        close = [bool(torch.allclose(got.detach(), e, rtol=1e-4, atol=1e-5)) for e in (separate, concatenated)]
        check(any(close), f"loss {float(got.detach()):.6f}; expected {float(separate):.6f} (views separately) or "
              f"{float(concatenated):.6f} (views concatenated)", call=call)


ROW_KINDS = ("ok", "ok", "ok", "ok", "blank", "bad_label", "big_label", "bad_id", "short", "long", "empty_name",
             "duplicate")


@st.composite
def csv_files(draw):
    kinds = draw(st.lists(st.sampled_from(ROW_KINDS), min_size=0, max_size=8))
    order = draw(st.permutations(["id", "filename", "label"]))
    lines = [",".join(order)]
    next_id = 0
    for kind in kinds:
        fields = {"id": str(next_id), "filename": f"img{next_id}.jpg", "label": str(draw(st.integers(0, 64)))}
        next_id += 1
        if kind == "blank":
            lines.append("   ")
            continue
        if kind == "bad_label":
            fields["label"] = draw(st.sampled_from(["x", "3.0", ""]))
        elif kind == "big_label":
            fields["label"] = draw(st.sampled_from(["65", "-1", "100"]))
        elif kind == "bad_id":
            fields["id"] = draw(st.sampled_from(["a", "1e3", ""]))
        elif kind == "empty_name":
            fields["filename"] = " "
        elif kind == "duplicate":
            fields["id"] = "0"
        row = [fields[c] for c in order]
        if kind == "short":
            row = row[:2]
        elif kind == "long":
            row = row + ["extra"]
        lines.append(",".join(row))
    return "\n".join(lines) + "\n"


def _outcome(call):
    try:
        return "ok", [(r.id, r.filename, r.label, r.line) for r in call()]
    except (ValueError, StudentCodeError) as exc:
        if isinstance(exc, StudentCodeError) and exc.type_name != "ValueError":
            return "error", f"{exc.type_name}: {exc.message}"
        message = exc.message if isinstance(exc, StudentCodeError) else str(exc)
        found = re.search(r"\bline (\d+)\b", message)
        return "ValueError", found.group(1) if found else message


@pytest.mark.weight(1)
@pytest.mark.number("7.4")
@settings(max_examples=30)
@given(text=csv_files())
def test_read_office_csv_random(student, reference, sandbox_tmp_path, text):
    """read_office_csv on random valid and broken CSVs: same records, or an error on the same line"""
    path = sandbox_tmp_path / "random.csv"
    path.write_text(text, encoding="utf-8")
    expected = _outcome(lambda: reference.officehome.read_office_csv(path))
    got = _outcome(lambda: student.officehome.read_office_csv(str(path)))
    check(got == expected, f"expected {expected}, got {got}", call=f"read_office_csv({text!r})",
          hint="records (id, filename, label, line) or ValueError naming the first bad line")


@pytest.mark.weight(1)
@pytest.mark.number("7.5")
def test_read_office_csv_unlabelled(student, sandbox_tmp_path):
    """read_office_csv(labelled=False): a test split without labels; labels checked against num_classes"""
    path = sandbox_tmp_path / "test.csv"
    path.write_text("id,filename,label\n0,a.jpg,\n1,b.jpg,\n", encoding="utf-8")
    got = [(r.id, r.filename, r.label, r.line) for r in student.officehome.read_office_csv(str(path), labelled=False)]
    check(got == [(0, "a.jpg", -1, 2), (1, "b.jpg", -1, 3)], f"expected labels -1, got {got}",
          call="read_office_csv('id,filename,label / 0,a.jpg, / 1,b.jpg,', labelled=False)")
    path.write_text("id,filename\n4,c.jpg\n", encoding="utf-8")
    got = [(r.id, r.filename, r.label, r.line) for r in student.officehome.read_office_csv(str(path), labelled=False)]
    check(got == [(4, "c.jpg", -1, 2)], f"expected [(4, 'c.jpg', -1, 2)], got {got}",
          call="read_office_csv('id,filename / 4,c.jpg', labelled=False)")
    path.write_text("id,filename,label\n0,a.jpg,3\n1,b.jpg,69\n", encoding="utf-8")
    got = [(r.id, r.label) for r in student.officehome.read_office_csv(str(path), num_classes=70)]
    check(got == [(0, 3), (1, 69)], f"with num_classes=70 label 69 is valid; expected [(0, 3), (1, 69)], got {got}",
          call="read_office_csv('id,filename,label / 0,a.jpg,3 / 1,b.jpg,69', num_classes=70)",
          hint="labels lie in [0, num_classes) for the num_classes given, not always 65")
    with student_raises("ValueError", match=r"\bline 2\b"):
        student.officehome.read_office_csv(str(path), num_classes=3)


@pytest.mark.weight(1)
@pytest.mark.number("7.6")
@settings(max_examples=6)
@given(base=st.integers(0, 10**6), size=st.sampled_from([8, 17, 33]), height=st.integers(9, 40),
       width=st.integers(9, 40))
def test_two_views_random(student, reference, plain, helpers, base, size, height, width):
    """two_views of byol_augmentation on random images and seeds, against the reference"""
    image = helpers.image_tensor(height, width, seed=base)
    seeds = (base, base + 7)
    expected = reference.augmentations.two_views(image, reference.augmentations.byol_augmentation(size), seeds)
    got = student.augmentations.two_views(image, student.augmentations.byol_augmentation(size), seeds)
    call = describe_call("two_views", image, f"byol_augmentation({size})", seeds)
    for k in range(2):
        assert_close(plain(got[k]), expected[k].as_subclass(torch.Tensor), call=call, rtol=1e-4, atol=1e-4,
                     what=f"view{k + 1}")


@pytest.mark.weight(1)
@pytest.mark.number("7.7")
def test_pretrain_fixed_tau_and_save_every(student, worker, make_backbone, helpers, sandbox_tmp_path):
    """pretrain: constant tau without the schedule, checkpoints every save_every epochs, set_epoch every epoch"""
    model = student.byol.BYOL(make_backbone(6, seed=11), 6, projection_dim=4, hidden_dim=10, tau=0.93)
    optimizer = worker.torch.optim.Adam(model.parameters(), lr=0.01)
    generator = torch.Generator().manual_seed(12)
    views = [(torch.randn(3, 3, 5, 5, generator=generator), torch.randn(3, 3, 5, 5, generator=generator))
             for _ in range(2)]
    # A DataLoader whose dataset (the two batches, batch_size=None) records the epochs given to its set_epoch.
    worker_list = worker.builtins.type("WorkerList", (worker.builtins.list,), {})  # stays in the worker
    epochs_set = worker_list()
    batches = worker_list(views)
    worker.builtins.setattr(batches, "set_epoch", epochs_set.append)
    loader = student.import_library("torch.utils.data").DataLoader(batches, batch_size=None)
    out = sandbox_tmp_path / "run"
    student.train_byol.pretrain(model, loader, 3, optimizer, str(out), schedule_tau=False, save_every=2)
    call = ("pretrain(BYOL(tau=0.93), DataLoader of 2 batches, epochs=3, optimizer, out_dir, schedule_tau=False, "
            "save_every=2)")
    recorded = worker.builtins.list(epochs_set)
    check(recorded == [0, 1, 2], f"expected loader.dataset.set_epoch(0), (1), (2) before the epochs, got calls with "
          f"{recorded}", call=call, hint="when loader.dataset has set_epoch, call it with the 0-based epoch before "
                                         "each epoch (so that UnlabeledImages draws new views)")
    files = sorted(p.name for p in out.glob("backbone_*.pth"))
    check(files == ["backbone_epoch002.pth", "backbone_epoch003.pth", "backbone_last.pth"],
          f"expected backbone_epoch002.pth, backbone_epoch003.pth and backbone_last.pth, got {files}", call=call,
          hint="numbered checkpoints after epochs that are multiples of save_every, and after the last")
    taus = [v for _, v in helpers.read_scalars(out / "tensorboard").get("pretrain/tau", [])]
    check(len(taus) == 6 and all(abs(t - 0.93) < 1e-6 for t in taus),
          f"without the schedule every step uses model.tau = 0.93; logged {taus}", call=call)


@pytest.mark.weight(1)
@pytest.mark.number("7.8")
@settings(max_examples=20)
@given(total=st.integers(1, 10_000), fraction=st.floats(0, 1), base=st.floats(0.9, 1.0))
def test_cosine_tau_random(student, reference, total, fraction, base):
    """cosine_tau on random steps, against the reference"""
    step = int(round(fraction * total))
    expected = reference.byol.cosine_tau(step, total, base)
    got = student.byol.cosine_tau(step, total, base)
    assert_close(got, expected, call=describe_call("cosine_tau", step, total, base), rtol=1e-9, atol=1e-12)
