"""Shared pieces of the weak_localization suite (public and hidden tests; nothing here needs the reference).

* ``alexnet_weights``: the course code builds AlexNet with ImageNet weights
  (``pretrained=True``: torchvision or ``model_zoo.load_url`` read them from torch's
  cache). Nothing can be downloaded where grading runs, so seeded stand-in weights
  are written under torchvision's file names in the cache the student's process
  uses (its ``TORCH_HOME``), and the test compares against them.
* ``wl_data``: writes a small synthetic VOC2007 folder with selective-search
  ``.mat`` files where the student's code can read it, at ``data/VOCdevkit/VOC2007``
  under ``data.course_root`` (where the starter's defaults look: students hard-code it).
* ``course``: the student's work reached through the F22 starter's own entry points
  (``VOCDataset`` built from the folder the starter expects, ``task_1.main()`` run up to
  its ``train()`` call, ``WSDDN.forward`` called with each ``rois`` container and scale the
  starter leaves open); see :class:`CourseCalls`.
* ``wl``: comparison helpers whose failures explain themselves.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from grader.compare import GradingFailure, assert_close, check, describe
from grader.sandbox.client import StudentCodeError

ALEXNET_CHECKPOINTS = ("alexnet-owt-7be5be79.pth", "alexnet-owt-4df8aa71.pth")
VOC_CLASSES = ['aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair', 'cow', 'diningtable',
               'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor']


WEIGHTS_HOME = pytest.StashKey[Path]()  # where alexnet_weights put the stand-ins (linked into course folders)


@functools.cache
def seeded_alexnet_state(seed: int = 824) -> dict[str, torch.Tensor]:
    """Stand-in "ImageNet" AlexNet weights: torchvision's names and shapes, deterministic values.

    ``features.*`` (what the localizers keep, and what the tests compare) are seeded random values.
    ``classifier.*`` (58.6M of AlexNet's 61.1M parameters, never compared) are zeros expanded with
    stride 0: the file holds one number for each, so every ``torch.load`` of it costs 10 MB instead
    of 244 MB (in the student's worker, the reference worker and here), while ``load_state_dict``
    into torchvision's full ``alexnet`` still works. Built once per grading (read-only).
    """
    from torchvision import models

    with torch.device("meta"):
        template = models.alexnet(weights=None).state_dict()
    generator = torch.Generator().manual_seed(seed)
    return {name: torch.randn(value.shape, generator=generator) * 0.02 if name.startswith("features.")
            else torch.zeros(()).expand(value.shape) for name, value in template.items()}


@pytest.fixture
def alexnet_weights(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict:
    """Write stand-in AlexNet weights where ``pretrained=True`` finds them; return them (a state dict)."""
    from grader.plugin import STATE, sandbox_enabled

    state = seeded_alexnet_state()
    session = request.config.stash.get(STATE, None)
    if session is not None and sandbox_enabled(request.config):
        home = Path(session.scratch()) / "work-weak_localization"  # the worker's TORCH_HOME and cwd
    else:  # --no-sandbox: the student's code runs in this process
        home = tmp_path / "torch_home"
        monkeypatch.setenv("TORCH_HOME", str(home))
    folder = home / "hub" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    for path in (home, home / "hub", folder):
        os.chmod(path, 0o777 if path == home else 0o755)
    # Torch's cache, and the worker's own folder: students load the file the starter names by hand
    # (torch.load('alexnet-owt-4df8aa71.pth')).
    for name in ALEXNET_CHECKPOINTS:
        if not (folder / name).is_file():
            torch.save(state, folder / name)
            os.chmod(folder / name, 0o644)
        if not (home / name).exists():
            (home / name).symlink_to(folder / name)
    request.config.stash[WEIGHTS_HOME] = home
    return state


@pytest.fixture
def wl_data(sandbox_tmp_path: Path):
    """``make(splits, seed=..., **options)`` writes ``VOCdevkit/VOC2007`` into a folder the student's code can read."""
    from grader.data.weak_localization import make_weak_localization_data

    def make(splits: dict[str, int], seed: int = 0, **options: Any):
        root = sandbox_tmp_path / f"course{seed}"
        data = make_weak_localization_data(root / "data", splits, seed=seed, **options)
        data.course_root = root  # root/data/VOCdevkit/VOC2007: the starter's default data_dir, from root
        for folder, _dirs, files in os.walk(root):
            os.chmod(folder, 0o755)
            for name in files:
                os.chmod(os.path.join(folder, name), 0o644)
        return data

    return make


def _tensor(value: Any, what: str, call: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        out = value.detach()
    elif isinstance(value, (list, tuple, np.ndarray)) and not isinstance(value, str):
        try:
            out = torch.as_tensor(np.asarray(value, dtype=np.float64))
        except (TypeError, ValueError) as exc:
            raise GradingFailure(f"Called {call}\n{what}: expected a tensor, got {describe(value)}") from exc
    else:
        raise GradingFailure(f"Called {call}\n{what}: expected a tensor, got {describe(value)}")
    return out.to(dtype) if dtype is not None else out


def number(value: Any, call: str, what: str = "result") -> float:
    """A result that should be one number: a float, a 0-d tensor or array, or a one-element list or tuple
    (the starter's metric stubs return ``[0]``)."""
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    try:
        return float(np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value,
                                dtype=np.float64).reshape(()))
    except (TypeError, ValueError):
        raise GradingFailure(f"Called {call}\n{what}: expected a number, got {describe(value)}") from None


def sorted_rows(rows: torch.Tensor) -> torch.Tensor:
    """The rows of a [K, D] tensor in lexicographic order (to compare sets of boxes)."""
    if rows.shape[0] == 0:
        return rows
    keys = np.lexsort(tuple(rows.to(torch.float64).numpy().T[::-1]))
    return rows[torch.from_numpy(keys.copy())]


def same_box_sets(got: torch.Tensor, expected: torch.Tensor, *, atol: float, call: str, what: str, hint: str) -> None:
    """``got`` and ``expected`` hold the same boxes, in any order, within ``atol``."""
    check(tuple(got.shape) == tuple(expected.shape),
          f"{what}: expected shape {list(expected.shape)}, got {list(got.shape)}", call=call, hint=hint)
    a, b = sorted_rows(got.to(torch.float64)), sorted_rows(expected.to(torch.float64))
    if a.numel() and not torch.allclose(a, b, rtol=0, atol=atol):
        bad = int((~torch.isclose(a, b, rtol=0, atol=atol)).any(1).nonzero()[0])
        raise GradingFailure(f"Called {call}\n{what}: the boxes differ (compared as sets, in sorted order); "
                             f"e.g. got {[round(v, 4) for v in a[bad].tolist()]}, expected "
                             f"{[round(v, 4) for v in b[bad].tolist()]} (tolerance {atol:.3g})\nHint: {hint}")


def sort_detections(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor) -> tuple:
    """Detections in a canonical order: class, then score (descending), then box."""
    if boxes.shape[0] == 0:
        return boxes, scores, labels
    columns = tuple(boxes.to(torch.float64).numpy().T[::-1]) + (-scores.to(torch.float64).numpy(), labels.numpy())
    index = torch.from_numpy(np.lexsort(columns).copy())
    return boxes[index], scores[index], labels[index]


def check_aps(got: Any, expected_aps: np.ndarray, call: str, *, atol: float = 1e-6) -> None:
    """``got`` = (class-wise APs, mAP). A class without ground truth may be NaN (as specified) or 0,
    and the mean may then be over the classes with ground truth (as specified) or over all classes."""
    check(isinstance(got, (tuple, list)) and len(got) == 2,
          f"expected a tuple (class-wise APs, mAP), got {describe(got)}", call=call)
    aps = _tensor(got[0], "class-wise APs", call, torch.float64).reshape(-1)
    check(aps.numel() == len(expected_aps), f"expected {len(expected_aps)} class-wise APs, got {aps.numel()}",
          call=call)
    try:
        mean_ap = float(got[1])
    except (TypeError, ValueError):
        raise GradingFailure(f"Called {call}\nmAP: expected a number, got {describe(got[1])}") from None
    expected = torch.as_tensor(expected_aps, dtype=torch.float64)
    present = ~torch.isnan(expected)
    for cls in range(len(expected_aps)):
        value = float(aps[cls])
        if bool(present[cls]):
            check(math.isclose(value, float(expected[cls]), abs_tol=atol),
                  f"AP of class {cls}: expected {float(expected[cls]):.6g}, got {value:.6g}", call=call,
                  hint="a detection is a true positive when its best-overlapping ground-truth box of its class "
                       "has IoU >= 0.5 and was not matched before; AP is the area under the interpolated "
                       "precision-recall curve")
        else:
            check(math.isnan(value) or value == 0.0,
                  f"AP of class {cls} (no ground-truth box of that class): expected NaN, got {value:.6g}", call=call)
    readings = [float(expected[present].mean()) if bool(present.any()) else 0.0,
                float(torch.nan_to_num(expected, nan=0.0).mean())]
    check(any(math.isclose(mean_ap, r, abs_tol=atol) for r in readings),
          f"mAP: expected {readings[0]:.6g} (mean over the classes that have ground truth), got {mean_ap:.6g}",
          call=call)


def nms_result(got, call: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(boxes [K, 4], scores [K]) in float64 from tensors, arrays or lists (of boxes / numbers / 0-d tensors)."""
    check(isinstance(got, (tuple, list)) and len(got) == 2, f"expected (boxes, scores), got {describe(got)}",
          call=call)
    try:
        boxes = torch.as_tensor(np.asarray([np.asarray(b, dtype=np.float64) for b in got[0]], dtype=np.float64))
        scores = torch.as_tensor(np.asarray([np.asarray(v, dtype=np.float64) for v in got[1]], dtype=np.float64))
    except (TypeError, ValueError):
        raise GradingFailure(f"Called {call}\nexpected boxes and scores (tensors, arrays or lists), got "
                             f"{describe(got)}") from None
    return boxes.reshape(-1, 4), scores.reshape(-1)


def check_nms_result(got, expected_boxes: torch.Tensor, expected_scores: torch.Tensor, call: str) -> None:
    """The kept boxes and scores, compared by score order (the starter does not fix the order)."""
    boxes, scores = nms_result(got, call)
    check(boxes.shape[0] == scores.shape[0], f"{boxes.shape[0]} boxes but {scores.shape[0]} scores", call=call)
    hint = "drop scores <= 0.05, visit boxes from the highest score, suppress IoU > 0.3 with a kept box"
    check(boxes.shape[0] == expected_boxes.shape[0],
          f"expected {expected_boxes.shape[0]} boxes to be kept, got {boxes.shape[0]}", call=call, hint=hint)
    order = torch.argsort(scores, descending=True, stable=True)
    expected_order = torch.argsort(expected_scores.double(), descending=True, stable=True)
    assert_close(scores[order], expected_scores.double()[expected_order], call=call, what="scores (highest first)",
                 rtol=1e-6, atol=1e-7, hint=hint)
    assert_close(boxes[order], expected_boxes.double()[expected_order], call=call, what="boxes (by score)",
                 rtol=1e-6, atol=1e-6, hint=hint)


def keeping_inputs(fn: Any, *args: Any, call: str, hint: str = "", **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` (:func:`grader.student.call_keeping_inputs`): fails, naming the call, when ``fn``
    changed one of its tensor / array arguments in place (the comparison runs in the student's process)."""
    from grader.student import call_keeping_inputs

    try:
        return call_keeping_inputs(fn, *args, **kwargs)
    except GradingFailure:
        raise
    except AssertionError as exc:
        raise GradingFailure(f"Called {call}\n{exc}" + (f"\nHint: {hint}" if hint else "")) from None


def xavier_std(shape: tuple[int, ...]) -> float:
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return math.sqrt(2.0 / (shape[1] * receptive + shape[0] * receptive))


@pytest.fixture
def wl() -> SimpleNamespace:
    """Helpers: ``tensor``, ``sorted_rows``, ``same_box_sets``, ``sort_detections``, ``check_aps``, ``xavier_std``,
    ``keeping_inputs(fn, *args, call=...)``, ``eval_mode(model)`` / ``train_mode(model)``.

    ``model.eval()`` returns the model itself, which comes back as a second proxy with the same
    object id; when that proxy is garbage-collected the engine releases the id and the first proxy
    goes stale ("unknown object id"). ``eval_mode`` keeps the returned proxy alive until the end of
    the test.
    """
    keep: list = []

    def eval_mode(model: Any) -> Any:
        keep.append(model.eval())
        return model

    def train_mode(model: Any) -> Any:
        keep.append(model.train())
        return model

    return SimpleNamespace(tensor=_tensor, number=number, sorted_rows=sorted_rows, same_box_sets=same_box_sets,
                           sort_detections=sort_detections, check_aps=check_aps, xavier_std=xavier_std,
                           nms_result=nms_result, check_nms_result=check_nms_result, keeping_inputs=keeping_inputs,
                           classes=list(VOC_CLASSES), eval_mode=eval_mode, train_mode=train_mode, _keep=keep)


# -- the student's work through the starter's entry points -------------------------------------------

ROI_READINGS = (
    ("[Tensor[K, 4]] in pixels", False, "list"), ("[Tensor[K, 4]] normalised", True, "list"),
    ("Tensor[K, 4] in pixels", False, "tensor"), ("Tensor[1, K, 4] in pixels", False, "batch"),
    ("Tensor[K, 5] (batch index, x1, y1, x2, y2) in pixels", False, "k5"),
    ("Tensor[K, 4] normalised", True, "tensor"), ("Tensor[1, K, 4] normalised", True, "batch"),
    ("Tensor[K, 5] normalised", True, "k5"),
)
"""How ``WSDDN.forward`` may take the proposals: the starter fixes neither container nor scale
(its loop's comment says "proposal values should be in pixels", but the student writes that
loop, and the conversion may sit in it or in ``forward``). Lists first: a forward that iterates over
its ``rois`` (``[r for r in rois]``) reads a ``[K, 4]`` tensor as K images of one box each, which
runs, and gives the wrong regions."""


def roi_argument(boxes: torch.Tensor, image_size: tuple[int, int], reading: tuple) -> Any:
    """``boxes`` (pixels, [K, 4]) in one of ``ROI_READINGS``."""
    _name, normalised, container = reading
    height, width = image_size
    if normalised:
        boxes = boxes / torch.tensor([width, height, width, height], dtype=boxes.dtype)
    if container == "batch":
        return boxes[None]
    if container == "list":
        return [boxes]
    if container == "k5":
        return torch.cat([torch.zeros(boxes.shape[0], 1, dtype=boxes.dtype), boxes], 1)
    return boxes


@dataclass
class WsddnCall:
    """What ``course.wsddn_forward`` found: the output of the first reading that ran, and every attempt."""

    output: Any = None
    reading: str = ""
    attempts: list = field(default_factory=list)  # (reading, error message or None)


class CourseCalls:
    """The student's code reached as the F22 starter reaches it (see the module docstring)."""

    def __init__(self, student: Any, worker_chdir: Any, scratch: Path, weights_home: Path | None = None):
        self.weights_home = weights_home
        self.student = student
        self.chdir = worker_chdir
        self.scratch = scratch
        self._counter = iter(range(10**6))
        self._probes = None
        self.main_folder: Path | None = None

    def dataset(self, data: Any, split: str, image_size: int, top_n: int) -> Any:
        """``VOCDataset(split, image_size, top_n, data_dir)`` run from ``data.course_root`` (so that a
        hard-coded ``data/VOCdevkit/VOC2007/`` finds the same files)."""
        cls = self.student.voc_dataset.VOCDataset
        with self.chdir(data.course_root):
            try:
                return cls(split=split, image_size=image_size, top_n=top_n, data_dir=str(data.data_dir) + "/")
            except StudentCodeError as exc:
                if exc.type_name != "TypeError":
                    raise
            return cls(split, image_size, top_n)

    def wsddn_forward(self, net: Any, image: torch.Tensor, boxes: torch.Tensor, *, accept: Any = None,
                      gt_vec: Any = None, only: str | None = None) -> WsddnCall:
        """``net(image, rois[, gt_vec])`` with ``rois`` in each reading (or the one named ``only``) until
        ``accept(output)`` is true (default: an output of shape ``[K, C]`` whose rows are not all equal:
        a reading the network does not expect pools the same empty cells for every region)."""
        found = WsddnCall()
        size = tuple(image.shape[-2:])
        if accept is None:
            def accept(out: Any) -> bool:
                return (isinstance(out, torch.Tensor) and out.dim() == 2 and out.shape[0] == boxes.shape[0]
                        and (out.shape[0] < 2 or not bool(torch.allclose(out, out[:1].expand_as(out)))))
        for reading in ROI_READINGS:
            if only is not None and reading[0] != only:
                continue
            rois = roi_argument(boxes, size, reading)
            try:
                out = net(image, rois) if gt_vec is None else net(image, rois, gt_vec)
            except StudentCodeError as exc:
                found.attempts.append((reading[0], f"{exc.type_name}: {(exc.message or '').splitlines()[-1:]}"))
                continue
            ok = accept(out)
            found.attempts.append((reading[0], None if ok else f"gave {describe(out)}"))
            if ok:
                found.output, found.reading = out, reading[0]
                return found
            if found.output is None:
                found.output = out
        return found

    def probes(self) -> Any:
        """:mod:`grader.data.weak_localization_probes` imported in the student's process (as
        ``cvgrade_wl_probes``, from a copy in the scratch folder: the worker does not see the grader)."""
        import shutil

        from grader.data import weak_localization_probes

        folder = self.scratch / "probes"
        if not (folder / "cvgrade_wl_probes.py").is_file():
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(weak_localization_probes.__file__, folder / "cvgrade_wl_probes.py")
            folder.chmod(0o755)
            (folder / "cvgrade_wl_probes.py").chmod(0o644)
        if self._probes is None:
            util = self.student.import_library("importlib.util")
            spec = util.spec_from_file_location("cvgrade_wl_probes", str(folder / "cvgrade_wl_probes.py"))
            module = util.module_from_spec(spec)
            spec.loader.exec_module(module)
            self._probes = module
        return self._probes

    def course_folder(self, data: Any) -> Path:
        """A writable folder with ``data`` -> the generated ``data`` (main() writes runs/, checkpoints)."""
        folder = self.scratch / f"course-run-{next(self._counter)}"
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o777)
        (folder / "data").symlink_to(Path(data.course_root) / "data", target_is_directory=True)
        if self.weights_home is not None:  # torch.load('alexnet-owt-4df8aa71.pth') from main()'s folder
            for name in ALEXNET_CHECKPOINTS:
                if (self.weights_home / name).exists():
                    (folder / name).symlink_to((self.weights_home / name).resolve())
        return folder

    def task_2_test_entry(self, dataset: Any, loader: Any) -> str:
        """The name of task_2's test loop: ``test_model`` (F22), or ``test_net`` (the S22 starter, a script
        whose module level builds ``train_dataset`` / ``val_dataset`` / ``val_loader`` and starts wandb:
        those are provided, on the grader's data, when the definitions import left them out)."""
        builtins = self.student.import_library("builtins")
        task_2 = self.student.load("task_2")
        if builtins.hasattr(task_2, "test_model") or not builtins.hasattr(task_2, "test_net"):
            return "test_model"
        for name, value in (("train_dataset", dataset), ("val_dataset", dataset), ("val_loader", loader)):
            if not builtins.hasattr(task_2, name):
                setattr(task_2, name, value)
        return "test_net"

    @contextlib.contextmanager
    def wandb_stubbed(self, *modules: str):
        """The student's modules' ``wandb`` replaced by a ``MagicMock`` (logging is not graded: the report
        shows it): whatever wandb version is installed, ``wandb.Image(batch)`` or ``wandb.log`` before
        ``wandb.init`` cannot fail the loop that is graded."""
        builtins = self.student.import_library("builtins")
        stub = self.student.import_library("unittest.mock").MagicMock()
        saved = []
        for name in modules:
            loaded = self.student.load(name)
            if builtins.hasattr(loaded, "wandb"):
                saved.append((loaded, builtins.getattr(loaded, "wandb")))
                loaded.wandb = stub
        try:
            yield
        finally:
            for loaded, value in saved:
                loaded.wandb = value

    def retry_left_out_constants(self, module: str, folder: Path) -> list[str]:
        """Run again, from ``folder`` (which holds the course's data), the top-level assignments that a
        definitions import of ``module`` left out (``class_id_to_label = dict(enumerate(VOCDataset().
        CLASS_NAMES))``: a constant built from the data set, which the test loop reads). Bare calls
        (``main()``) stay out. Returns the lines that are now defined."""
        import ast

        builtins = self.student.import_library("builtins")
        loaded = self.student.load(module)
        lines = builtins.getattr(loaded, "__cvgrade_left_out__", None)
        if not lines:
            return []  # a plain import: nothing was left out
        left_out = {int(line.split(":", 1)[0].split()[1]) for line in lines}
        source = Path(str(builtins.getattr(loaded, "__file__"))).read_text(encoding="utf-8", errors="replace")
        run = builtins.eval("lambda module, code: exec(code, module.__dict__)")
        defined = []
        for node in ast.parse(source).body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.lineno in left_out:
                code = ast.get_source_segment(source, node) or ""
                try:
                    with self.chdir(folder), self.wandb_stubbed(module):
                        run(loaded, code)
                except StudentCodeError:
                    continue
                defined.append(f"line {node.lineno}")
        return defined

    def script_args(self, module: str) -> Any:
        """``parser.parse_args([])`` of a script's module-level parser (its defaults), or None."""
        builtins = self.student.import_library("builtins")
        loaded = self.student.load(module)
        if not builtins.hasattr(loaded, "parser"):
            return None
        try:
            return loaded.parser.parse_args([])
        except StudentCodeError:
            return None

    def task_1_train_call(self, data: Any) -> Any:
        """Run ``task_1.main()`` (``sys.argv = ['task_1.py']``) until it calls ``train``; return that call.

        ``train`` and ``validate`` are replaced while ``main()`` runs by recorders that stop it, so nothing
        is trained: what comes back holds the student's own data set, ``collate_fn``, criterion and
        optimizer, as ``main()`` made them (``call.args`` / ``call.kwargs``).
        """
        task_1 = self.student.load("task_1")
        mock = self.student.import_library("unittest.mock")
        builtins = self.student.import_library("builtins")
        sys_module = self.student.import_library("sys")
        os_module = self.student.import_library("os")
        stop = builtins.RuntimeError("cvgrade: main() reached train(); nothing is trained")
        recorder = mock.Mock(side_effect=stop)
        saved = [(name, builtins.getattr(task_1, name)) for name in ("train", "validate")
                 if builtins.hasattr(task_1, name)]
        previous_argv = list(sys_module.argv)
        previous_mode = os_module.environ.get("WANDB_MODE")
        os_module.environ["WANDB_MODE"] = "disabled"  # a wandb that main() imports itself: nothing leaves the box
        sys_module.argv = ["task_1.py"]
        for name, _ in saved:
            setattr(task_1, name, recorder)
        error = None
        self.main_folder = self.course_folder(data)
        try:
            with self.chdir(self.main_folder), self.wandb_stubbed("task_1", "utils"):
                task_1.main()
        except StudentCodeError as exc:
            error = exc
        finally:
            for name, value in saved:
                setattr(task_1, name, value)
            sys_module.argv = previous_argv
            if previous_mode is None:
                os_module.environ.pop("WANDB_MODE", None)
            else:
                os_module.environ["WANDB_MODE"] = previous_mode
        if int(recorder.call_count) == 0:
            detail = (f"it raised {error.type_name}: {(error.message or '').strip()[-300:]}" if error is not None
                      else "it returned without calling train()")
            raise GradingFailure(
                "Called task_1.main() with sys.argv = ['task_1.py'], from a folder holding the course's "
                "data/VOCdevkit/VOC2007 (train() and validate() replaced by recorders)\n"
                f"main() should build the data sets, the model, the criterion and the optimizer and call "
                f"train(train_loader, model, criterion, optimizer, epoch); {detail}")
        return recorder.call_args

    def run_task_1_train(self, data: Any, batch_size: int = 4, recording_optimizer: bool = False) -> tuple[Any, str]:
        """The student's ``train()`` for one epoch on their own data set (built by their ``main()``), in
        batches of ``batch_size`` with their ``collate_fn``, with a :class:`RecordingLocalizer` for the
        model and an optimizer that changes nothing (with ``recording_optimizer``, a
        :class:`RecordingOptimizer`, ``probe.optimizer``, that notes the gradient at every ``step()``).
        Returns the probe and a description of the call."""
        call = self.task_1_train_call(data)
        args, kwargs = list(call.args), dict(call.kwargs)
        builtins = self.student.import_library("builtins")
        names = ("train_loader", "model", "criterion", "optimizer", "epoch")
        given = {name: args[i] if i < len(args) else kwargs.get(name) for i, name in enumerate(names)}
        loader = given["train_loader"]
        check(loader is not None and builtins.hasattr(loader, "dataset"),
              "main() called train() without a DataLoader as its first argument", call="task_1.main()")
        data_module = self.student.import_library("torch.utils.data")
        probes = self.probes()
        mock = self.student.import_library("unittest.mock")
        fresh = data_module.DataLoader(loader.dataset, batch_size=batch_size, shuffle=False, num_workers=0,
                                       collate_fn=loader.collate_fn, drop_last=False)
        probe = probes.RecordingLocalizer(20, 29, 7)
        if recording_optimizer:
            optimizer = probes.RecordingOptimizer(probe)
        else:
            optimizer = mock.MagicMock()
        replaced = {"train_loader": fresh, "model": probe, "optimizer": optimizer}
        for i, name in enumerate(names):
            if name in replaced:
                if i < len(args):
                    args[i] = replaced[name]
                elif name in kwargs:
                    kwargs[name] = replaced[name]
        if len(args) < 2 and "model" not in kwargs:
            raise GradingFailure("main() called train() without the model as its second argument "
                                 "(the starter's train(train_loader, model, criterion, optimizer, epoch))")
        # main()'s data set may hold paths relative to its folder
        with self.chdir(self.main_folder), self.wandb_stubbed("task_1", "utils"):
            self.student.load("task_1").train(*args, **kwargs)
        how = (f"task_1.train(...) as main() calls it, on main()'s own training set in batches of {batch_size} "
               f"(with its collate_fn), a stand-in localizer (fixed score maps [N, 20, 29, 29]) and an optimizer "
               f"that changes nothing")
        return probe, how


@pytest.fixture
def course(request, student, worker_chdir, sandbox_tmp_path: Path) -> CourseCalls:
    return CourseCalls(student, worker_chdir, sandbox_tmp_path, request.config.stash.get(WEIGHTS_HOME, None))
