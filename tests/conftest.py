"""Shared fixtures of the project's own tests."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

pytest_plugins = ["pytester"]

settings.register_profile(
    "cvgrade", derandomize=True, deadline=None, database=None, print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "cvgrade"))



# Libraries with C extensions must be imported before any in-process pytester run:
# pytester removes modules first imported during a nested run, and importing
# torchvision (or scipy, sklearn ...) a second time in one process crashes it.
import importlib  # noqa: E402

os.environ.setdefault("MPLBACKEND", "Agg")
for _name in ("numpy", "torch", "torchvision", "torchvision.ops", "PIL.Image", "scipy.io", "scipy.ndimage",
              "sklearn.metrics", "sklearn.manifold", "sklearn.decomposition", "matplotlib.pyplot",
              "torch.utils.tensorboard"):
    try:
        importlib.import_module(_name)
    except ImportError:  # an optional library that is not installed
        pass
