"""Weights files from outside the kit (torchvision's VGG16 for LPIPS, torch-fidelity's InceptionV3): checked,
then read as plain tensors.

A `.pth` file is a pickle, and unpickling can run any code the file's author chose. So a third-party file is
1. hashed and compared with the SHA-256 of the released file (`check_digest`): a different file is refused,
   unless the caller opts in (`allow_unverified=True`, the CLI's `--allow-unverified-weights`), which loads it
   as unofficial, with a warning;
2. read only by `torch.load(..., weights_only=True)` (`read_state_dict`), which rebuilds tensors and plain
   containers and refuses any other object, so not even an opted-in file can run code;
3. checked key by key and shape by shape against the architecture it is meant for (`check_state_dict`),
   so a wrong file fails here, naming the key, not deep inside a forward pass.
Libraries are then handed our clean dict of tensors, never the user's file.
"""
from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path

import torch

from ulib.io.files import file_sha256

OPT_IN_FLAG = "--allow-unverified-weights"
OPT_IN_ENV = "ULIB_ALLOW_UNVERIFIED_WEIGHTS"  # =1: the same opt-in where no flag reaches (training, notebooks)


class UnverifiedWeightsError(ValueError):
    """A weights file that is not the released one (without the opt-in), or that is not a plain state dict."""


def check_digest(path: str | os.PathLike, expected_sha256: str, allow_unverified: bool = False) -> tuple[str, bool]:
    """(the file's sha256, whether it is the released file's). A different digest raises UnverifiedWeightsError
    (one line: the file, both digests, the opt-in) unless allow_unverified, which warns instead."""
    found = file_sha256(path)
    if found == expected_sha256:
        return found, True
    what = f"{path}: sha256 {found} is not the released file's {expected_sha256}"
    if not (allow_unverified or os.environ.get(OPT_IN_ENV) == "1"):
        raise UnverifiedWeightsError(
            f"{what}; refusing to load it. To load it anyway (as plain tensors, recorded as official_weights: "
            f"false) pass {OPT_IN_FLAG} to evaluate/compare, or set {OPT_IN_ENV}=1 (training, notebooks)")
    warnings.warn(f"{what}; loading it as plain tensors because unverified weights were allowed "
                  "(official_weights: false): figures computed with it are not the standard ones")
    return found, False


def read_state_dict(path: str | os.PathLike, mmap: bool = False) -> dict[str, torch.Tensor]:
    """The file's {name: tensor}, read with weights_only=True on the CPU (memory-mapped when `mmap` and the
    file is in the zip format). Anything but a flat dict of tensors raises UnverifiedWeightsError."""
    path = Path(path)
    try:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except RuntimeError:
            if not mmap:
                raise
            # torchvision's own files predate the zip format, which mmap needs
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:  # weights_only met an object that is not a tensor or plain container
        reason = _refusal(str(e))
        raise UnverifiedWeightsError(f"{path} is not a plain state dict of tensors: torch.load(weights_only=True) "
                                     f"refused it ({reason}); nothing in it was run or loaded") from None
    except (RuntimeError, EOFError, OSError) as e:
        raise UnverifiedWeightsError(f"{path} could not be read as a PyTorch state dict: {e}") from None
    if not isinstance(state, dict):
        raise UnverifiedWeightsError(f"{path} holds a {type(state).__name__}, not a state dict {{name: tensor}}")
    for k, v in state.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            raise UnverifiedWeightsError(f"{path}: entry {k!r} is a {type(v).__name__}; a state dict holds tensors")
    return {k: v.detach() for k, v in state.items()}  # plain tensors (a saved nn.Parameter comes back as one)


def _refusal(message: str) -> str:
    """The one sentence of torch's multi-line weights_only error that says what was refused, e.g.
    'Unsupported global: GLOBAL io.open was not an allowed global by default' (its advice to retry with
    weights_only=False is exactly what we must not do, so it is left out)."""
    for line in message.splitlines():
        if "WeightsUnpickler error:" in line:
            return line.split("WeightsUnpickler error:", 1)[1].strip().split(". ")[0].rstrip(".")
    return "it holds objects other than tensors and plain containers"


def check_state_dict(state: dict[str, torch.Tensor], expected: dict[str, tuple[int, ...]], path,
                     required: set[str] | None = None) -> None:
    """Every key of `state` must be in `expected` with that shape, and every key of `required` (default: all of
    `expected`) must be present; otherwise UnverifiedWeightsError naming the file and the first offending key."""
    required = set(expected) if required is None else required
    missing = sorted(required - set(state))
    if missing:
        raise UnverifiedWeightsError(f"{path}: key {missing[0]!r} is missing ({len(missing)} missing in all); "
                                     "not the expected architecture's state dict")
    for k, v in state.items():
        if k not in expected:
            raise UnverifiedWeightsError(f"{path}: unexpected key {k!r}; not the expected architecture's state dict")
        if tuple(v.shape) != tuple(expected[k]):
            raise UnverifiedWeightsError(f"{path}: {k} has shape {tuple(v.shape)}; the architecture needs "
                                         f"{tuple(expected[k])}")


def shapes_of(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    """{name: shape} of a module's state dict: what a weights file for it must hold."""
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}
