"""The recipe half of an evaluation record (`ulib.eval.evaluate`): the fields every record shares (the data and how
its images were resized and quantised, the reference split and subset, the VQGAN checkpoint and its step, EMA, the
feature extractor, the device and library versions), and the paper's own figures, which stand beside ours only for
standard features on the paper's datasets (profiles ffhq, churches, bedrooms at 256x256).
"""
from __future__ import annotations

from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import torch

from ulib.eval.extractors import QUANTISE, paper_scale
from ulib.eval.inception import RESIZE
from ulib.eval.records import PAPER_PRDC_K
from ulib.io.checkpoint import load_checkpoint
from ulib.paper import headline
from ulib.profiles import get_profile

PAPER_N_SAMPLES = 50_000  # samples behind the paper's Tables 1 and 2
# The paper's figures for its absorbing model come from `ulib.paper.headline` (its abstract, which
# quotes its tables). Precision and Recall are left out: we could not check them against the paper's text.
PAPER_SOURCE = "Bond-Taylor et al. 2022 (abstract of arXiv:2111.12701)"


def checkpoint_step(path: Path) -> int | None:
    """The training step a checkpoint file records (None when it records none)."""
    try:  # memory-mapped: reads the step without loading the weights a second time
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True).get("step")
    except Exception:
        return load_checkpoint(path).get("step")


def data_resize(cfg) -> str:
    """How the run's images were brought to their size, in words for the record."""
    if cfg.data.dataset == "openmoji":
        return f"OpenMoji rendered at {cfg.data.img_size}x{cfg.data.img_size} (ulib.data.openmoji.render_openmoji)"
    return (f"shorter side to {cfg.data.img_size} (PIL bicubic, antialiased), centre crop "
            "(ulib.data.images.resize_center_crop)")


def paper_results(cfg, features: str) -> dict | None:
    """The paper's figures when this run is on the paper's dataset and resolution, with standard features."""
    paper = headline(cfg.profile)
    if not paper_scale(features) or paper is None or cfg.data.img_size != 256:
        return None
    if cfg.data.dataset != get_profile(cfg.profile).data.dataset:
        return None
    return {**paper, "source": PAPER_SOURCE, "n_samples": PAPER_N_SAMPLES,
            "temperature": 0.9, "prdc_k": PAPER_PRDC_K}


def common_record(kind: str, run, cfg, inception, ref_key: dict, device, use_ema: bool) -> dict:
    """The fields every record of `kind` ('samples' or 'vqgan') holds; `ref_key` describes the reference set
    (`ulib.eval.reference.reference_set`)."""
    return {
        "kind": kind, "features": inception.features,
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run": str(run.path), "profile": cfg.profile, "dataset": cfg.data.dataset, "data_path": cfg.data.path,
        "data_fingerprint": ref_key["data_fingerprint"], "image_size": cfg.data.img_size,
        "data_resize": data_resize(cfg), "quantise": QUANTISE, "inception_resize": RESIZE,
        "reference": ref_key["split"], "n_reference": ref_key["n"], "n_reference_split": ref_key["n_split"],
        "reference_limit": ref_key.get("limit"),  # --max-reference as given (default: at most the paper's 50,000)
        "reference_subset_seed": ref_key["subset_seed"],
        "vqgan_checkpoint": str(run.vqgan_ckpt), "vqgan_step": checkpoint_step(run.vqgan_ckpt), "ema": use_ema,
        "extractor": inception.info, "device": str(device), "torch": torch.__version__,
        "torch_fidelity": version("torch-fidelity"), "prdc": version("prdc"), "notes": [],
    }
