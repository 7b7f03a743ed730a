"""The gpu-check's bookkeeping: phases timed between device synchronisations, peak memory, the machine it runs on,
the optional packages and weights it falls back without, and a count of the prior's forward passes.
"""
from __future__ import annotations

import contextlib
import importlib.util
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path

import torch

from ulib.app.gpu_peak import achieved
from ulib.eval.timing import synchronize
from ulib.io.logs import MetricsLog
from ulib.io.weights import UnverifiedWeightsError


class Phases:
    """Runs named phases, timing each between device synchronisations, and collects their records.

    A phase's record may set `rates` ({key: items}: key = items / wall_s), `flops` (achieved_tflops and
    fraction_of_peak over wall_s, against `self.peak`) or `skipped` (a reason: the phase counts as passed)."""

    def __init__(self, device: torch.device, log):
        self.device, self.log, self.records, self.peak = device, log, {}, None

    def _sync(self) -> None:
        synchronize(self.device)

    @contextlib.contextmanager
    def phase(self, name: str):
        rec = {"ok": False}
        self.records[name] = rec
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        self.log(f"gpu-check: {name} ...")
        self._sync()
        t0 = time.perf_counter()
        try:
            yield rec
            self._sync()
            rec["ok"] = True
        except Exception as e:  # recorded; the other phases still run
            rec["error"] = f"{type(e).__name__}: {e}"
            rec["traceback"] = traceback.format_exc(limit=6)
            self.log(f"gpu-check: {name} FAILED: {rec['error']}")
        rec["wall_s"] = round(time.perf_counter() - t0, 3)
        rec["peak_memory_mb"] = peak_memory_mb(self.device)
        for key, per in rec.pop("rates", {}).items():  # items per phase -> items per second
            rec[key] = round(per / max(rec["wall_s"], 1e-9), 3)
        if "flops" in rec:
            rec.update(achieved(rec["flops"], rec["wall_s"], self.peak))
        if rec.get("skipped"):
            self.log(f"gpu-check: {name} skipped: {rec['skipped']}")


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)

    import resource  # Unix only: imported here so the CLI still loads on Windows

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KB on Linux: process peak so far


def logged_rate(log_file: Path, key: str = "images_per_s") -> float | None:
    """Median of the training log's rate column, leaving out the first row (warm-up, cuDNN autotuning)."""
    rates = [r[key] for r in MetricsLog.read(log_file) if r.get(key) not in (None, "")]
    rates = rates[1:] or rates
    return float(statistics.median(rates)) if rates else None


def environment(device: torch.device) -> dict:
    """The Python, torch and CUDA the check runs with (a GPU machine's own, or the project's venv)."""
    env = {"python": platform.python_version(), "executable": sys.executable, "torch": torch.__version__,
           "torch_file": str(Path(torch.__file__).parent), "cuda_build": torch.version.cuda,
           "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None}
    if device.type == "cuda":
        env["device_capability"] = ".".join(map(str, torch.cuda.get_device_capability(device)))
        env["cuda_driver_devices"] = torch.cuda.device_count()
    return env


def missing_package(name: str) -> str | None:
    """'package NAME not installed' when `name` cannot be imported here, else None."""
    try:
        found = importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a blocked or half-installed package
        found = False
    return None if found else f"package {name} not installed"


def first_sentence(e: Exception) -> str:
    """A loader's error, shortened to its first sentence (the full text names every place it looked)."""
    return str(e).split("; ")[0].split(". ")[0]


def try_lpips(load) -> tuple[bool, str | None]:
    """(LPIPS usable, why not): `load()` is `ulib.vq.perceptual.load_lpips` on the CPU."""
    why = missing_package("lpips") or missing_package("torchvision")
    if why:
        return False, why
    try:
        load()
        return True, None
    except (FileNotFoundError, UnverifiedWeightsError, ImportError) as e:  # refused counts as absent here
        kind = "refused" if isinstance(e, UnverifiedWeightsError) else "not found"
        return False, f"weights {kind}: {first_sentence(e)}"


def try_inception(load) -> tuple[object | None, str, str | None]:
    """(feature space or None, its kind, why it fell back): `load(kind)` is `ulib.eval.extractors.load_inception`.
    Standard weights when found; else random-inception features; None when torch-fidelity is missing."""
    why = missing_package("torch_fidelity") or missing_package("torchvision")  # torch-fidelity imports torchvision
    if why:
        return None, "none", f"{why}: features phase skipped"
    try:
        return load("inception"), "inception", None
    except (FileNotFoundError, UnverifiedWeightsError) as e:
        kind = "refused" if isinstance(e, UnverifiedWeightsError) else "not found"
        return load("random-inception"), "random-inception", f"weights {kind}: {first_sentence(e)}; random-inception"


class ForwardCounter:
    """Counts the passes through the prior's trunk and the rows they carried (a forward hook on `prior.blocks`,
    which every sampler's network call runs, whole or only on the active rows)."""

    def __init__(self, prior):
        self.calls, self.rows = 0, 0

        def hook(module, inputs, output) -> None:  # a plain function, not a bound method: a copy of the prior
            self.calls += 1  # (bf16 sampling runs a deep copy, `ulib.sample.precision`) keeps counting here,
            self.rows += int(inputs[0].shape[0])  # where deepcopy would have copied a bound method's counter

        self._handle = prior.blocks.register_forward_hook(hook)

    def remove(self) -> None:
        self._handle.remove()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.remove()
