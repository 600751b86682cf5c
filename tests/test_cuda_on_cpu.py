"""Hard-coded ``.cuda()`` in students' code on a grader without a GPU (manifest ``cuda_on_cpu``)."""

from __future__ import annotations

import os

import pytest
import torch

from grader.sandbox.client import StudentCodeError
from grader.sandbox.process import ProcessConnection, SandboxSettings, default_protected, default_run_as

CODE = '''
import torch
from torch import nn

device = torch.device("cuda")

def train_step(x):
    model = nn.Linear(3, 2).cuda()
    model = model.to(device)
    model.to("cuda:0")
    x = x.cuda().to(device=device).to("cuda", torch.float64).float()
    return model(x).sum().item(), str(x.device), str(next(model.parameters()).device)
'''


def _connect(tmp_path, cuda_on_cpu: bool) -> ProcessConnection:
    course = tmp_path / "course"
    course.mkdir()
    (course / "student.py").write_text(CODE)
    for path in (tmp_path, course, course / "student.py"):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    settings = SandboxSettings(memory_limit=2 * 2**30, protected=default_protected(), run_as=default_run_as(),
                               cuda_on_cpu=cuda_on_cpu)
    conn = ProcessConnection(str(course), ["student"], settings)
    conn.call_timeout = 60
    return conn


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU runs .cuda() for real")
def test_cuda_calls_run_on_the_cpu_and_the_student_is_told(tmp_path):
    conn = _connect(tmp_path, cuda_on_cpu=True)
    printed: list[str] = []
    conn.on_output = printed.append
    try:
        value, x_device, weight_device = conn.import_module("student").train_step(torch.ones(4, 3))
    finally:
        conn.close()
    assert x_device == "cpu" and weight_device == "cpu" and isinstance(value, float)
    assert "grading has no GPU; your .cuda() / .to('cuda') calls ran on the CPU" in "".join(printed)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU runs .cuda() for real")
def test_without_the_option_the_error_says_that_grading_has_no_gpu(tmp_path):
    conn = _connect(tmp_path, cuda_on_cpu=False)
    try:
        with pytest.raises(StudentCodeError, match="grading runs without a GPU, and your code asked for CUDA"):
            conn.import_module("student").train_step(torch.ones(4, 3))
    finally:
        conn.close()


def test_the_16_824_manifests_turn_it_on_and_the_others_do_not():
    from grader import manifest as manifests

    on = {m.name for m in manifests.discover().values() if m.grading.cuda_on_cpu}
    assert on == {"fcos_detection", "voc_classification", "weak_localization"}
