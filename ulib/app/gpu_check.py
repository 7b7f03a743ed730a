"""`python -m ulib gpu-check` (`make gpu-check`): every CUDA path once, at the paper's model sizes, as JSON.

On synthetic 256x256 images (written to a temporary folder) with the `ffhq` profile's networks (VQGAN nf=128,
ch_mult 1,1,2,2,4, codebook 1024; prior 24 layers, width 512, T = 256), in phases:

- matmul_peak: the measured bf16 ceiling (an 8192^3 bf16 matmul, median of 5) beside the card's nominal bf16 peak
  (`ulib.app.gpu_peak`: a datasheet table by device name; null with a note for a card not in it);
- vqgan: training steps with the GAN switched on, stopped and resumed (images/s);
- encode: the latent cache, mirrored images included (images/s);
- prior_absorbing, prior_ar: training steps of both priors, stopped and resumed (tokens/s);
- sample_{method}_{fp32,bf16}: each decoding method at T steps in both precisions (samples/s, s/image beside the
  official code's 3.8 s/image at 256 steps on an RTX 2080 Ti), with passes_per_image (the sampler's network passes,
  `StepTrace`), forward_rows (rows through the prior's trunk) and achieved_tflops over the phase (decode included);
- sampler_b16, sampler_b256: the random-order sampler alone (tokens, no decode) in bf16 at batch 16 and 256, one
  untimed call then 3 timed (median and spread), achieved_tflops and fraction_of_peak from the median;
- decode_b256: the VQGAN decoding a batch of evaluation size (`ulib.eval.evaluate.CUDA_BATCH_SIZE`) as evaluation
  does, in chunks sized from free memory (`ulib.vq.chunked`);
- ar_cache_{fp32,bf16}: the AR prior's sampling with its key/value cache;
- big_canvas: a latent canvas twice the training width (Eq. 8);
- inpaint: half of each image regenerated (Fig. 7), at the precision `python -m ulib inpaint` uses;
- features: InceptionV3 features for evaluation, streamed moments included (images/s);
- distributed: a one-process NCCL group (gloo off CUDA): all_reduce, broadcast, all_gather and DDP with no_sync()
  accumulation against plain accumulation (`ulib.app.gpu_dist`).

Beside the phases: environment (the Python, torch and CUDA build it ran with), flops_per_forward (the prior's matmul
FLOPs per forward pass at batch 1, `ulib.app.gpu_peak.flops_per_forward`), peak, and fallbacks: {what: why} for
each optional piece it ran without. Each phase records its wall time, its throughput and its peak GPU memory
(`torch.cuda.max_memory_allocated`; on the CPU the process's peak resident memory so far); a phase that fails is
recorded with its error and the others still run (exit status 1). Meant to take at most BUDGET_S on one H200; the
JSON says whether it did. `--tiny` runs the same phases at smoke sizes in seconds on a CPU (sampler_b2, sampler_b8,
decode_b8): the test suite does, so this cannot rot.
Runs on a GPU machine's own Python and torch (README: GPUs): LPIPS when the lpips package and the VGG16 weights are
found offline, else none; standard Inception features when the weights are found, else random-inception; no
torch-fidelity: the features phase is skipped. Each fallback is recorded in `fallbacks`.
"""
from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Subset

from ulib.app.gpu_dist import agrees, distributed_check
from ulib.app.gpu_peak import flops_per_forward, peak_record
from ulib.app.gpu_phases import (  # noqa: F401 (Phases, peak_memory_mb: importable from here as before)
    Phases,
    environment,
    logged_rate,
    peak_memory_mb,
    try_inception,
    try_lpips,
)
from ulib.app.gpu_sampling import decode_phase, other_sampling_phases, sample_phases, sampler_batch_phases
from ulib.data.datasets import build_dataset
from ulib.device import configure_matmul, native_bf16
from ulib.eval.evaluate import CUDA_BATCH_SIZE
from ulib.eval.extractors import load_inception, stream_features
from ulib.eval.metrics import FeatureMoments, fid_from_moments
from ulib.io.logs import MetricsLog
from ulib.io.rundir import RunDir
from ulib.models import load_run
from ulib.overrides import apply_overrides
from ulib.profiles import get_profile
from ulib.train.latents import load_latents
from ulib.train.prior import train_prior
from ulib.train.vqgan import train_vqgan
from ulib.vq.perceptual import load_lpips

BUDGET_S = 300  # the most `make gpu-check` should take on one H200
OFFICIAL_S_PER_IMAGE = 3.8  # official code, 256 steps, RTX 2080 Ti (the paper's repository README)
N_IMAGES = {"paper": 48, "tiny": 24}  # synthetic images (train + val)
SAMPLER_BATCHES = {"paper": (16, 256), "tiny": (2, 8)}  # the timed sampler phases
DECODE_BATCH = {"paper": CUDA_BATCH_SIZE, "tiny": 8}  # evaluate's images per batch on a GPU
REPEATS = {"paper": 3, "tiny": 2}  # timed calls after one untimed


def synthetic_images(folder: Path, n: int, size: int, seed: int = 0) -> None:
    """n smooth random colour fields with a few rectangles, size x size PNGs: something to reconstruct."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        low = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        img = Image.fromarray(low).resize((size, size), Image.BICUBIC)
        a = np.asarray(img).copy()
        for _ in range(3):
            x0, y0 = rng.integers(0, size * 3 // 4, 2)
            w, h = rng.integers(size // 8, size // 3, 2)
            a[y0: y0 + h, x0: x0 + w] = rng.integers(0, 256, 3)
        Image.fromarray(a).save(folder / f"{i:04d}.png")


def check_config(tiny: bool, data: Path, cache: Path, perceptual: bool):
    """The ffhq profile (or smoke, --tiny) on the synthetic folder, with a few steps per stage."""
    steps = dict(steps=6, log_every=1, image_every=1000, ckpt_every=1000)
    over = {"data.dataset": "folder", "data.path": str(data), "data.cache_dir": str(cache), "data.val_fraction": 0.25,
            "data.split_by": "random", "data.test_fraction": 0.0,
            "data.flip": True, "vqgan.disc_start_step": 2, "vqgan.perceptual_weight": 1.0 if perceptual else 0.0,
            "sample.n": 4, "sample.steps": 8}
    over.update({f"{s}.{k}": v for s in ("vqgan_train", "prior_train") for k, v in steps.items()})
    if tiny:
        over.update({"data.img_size": 16, "vqgan_train.batch_size": 4, "prior_train.batch_size": 4,
                     "prior_train.micro_batch": 2})  # tiny: also a gradient-accumulation step
        return get_profile("smoke", over)
    over.update({"vqgan_train.num_workers": 2, "prior_train.micro_batch": 10})  # global batch 20 in 2 passes
    return get_profile("ffhq", over)


def run_check(device: torch.device, tiny: bool, workdir: Path, log=print) -> dict:
    """All phases; returns the JSON record (module docstring)."""
    t_start, mode = time.perf_counter(), "tiny" if tiny else "paper"
    configure_matmul(device)
    env, name = environment(device), torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    log(f"gpu-check: Python {env['python']} ({env['executable']}), torch {env['torch']} from {env['torch_file']}, "
        f"CUDA build {env['cuda_build']}, cuDNN {env['cudnn']}; device {device} ({name})")
    fallbacks = {}  # what ran without an optional package or weights file, and why
    perceptual, why = try_lpips(lambda: load_lpips(device=torch.device("cpu")))
    if why:
        fallbacks["lpips"] = why
    size = 16 if tiny else 256
    data = workdir / "images"
    synthetic_images(data, N_IMAGES[mode], size)
    cfg = check_config(tiny, data, workdir / "cache", perceptual)
    cfg = apply_overrides(cfg, {"device": str(device)})
    run = RunDir(workdir / "run")
    ph = Phases(device, log)
    L = cfg.latent_size**2
    fpf = flops_per_forward(cfg.prior.n_layers, cfg.prior.n_emb, L, cfg.vqgan.codebook_size)
    out = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "tiny": tiny, "device": str(device),
        "device_name": name, "torch": torch.__version__, "environment": env, "bf16_native": native_bf16(device),
        "float32_matmul_precision": torch.get_float32_matmul_precision(), "image_size": size,
        "profile": cfg.profile, "lpips": perceptual, "fallbacks": fallbacks,
        "model": {"vqgan_nf": cfg.vqgan.nf, "vqgan_ch_mult": list(cfg.vqgan.ch_mult),
                  "codebook_size": cfg.vqgan.codebook_size, "prior_layers": cfg.prior.n_layers,
                  "prior_width": cfg.prior.n_emb, "latent": f"{cfg.latent_size}x{cfg.latent_size}",
                  "total_steps": cfg.prior.total_steps},
        "flops_per_forward": fpf,
        "flops_formula": "n_layers (3*2LC^2 + 2*2L^2C + 2LC^2 + 2*2LC*4C) + 2LCK, batch 1 (ulib.app.gpu_peak)",
        "peak": None, "phases": ph.records,
    }
    with ph.phase("matmul_peak") as rec:
        out["peak"] = ph.peak = peak_record(device, name, tiny)
        rec["tflops"] = ph.peak["measured_bf16_matmul"]["tflops"]
    _training(ph, run, cfg)
    models = load_run(run, device, cfg=cfg)
    sample_phases(ph, models, cfg, 4 if tiny else 16, fpf)
    sampler_batch_phases(ph, models, cfg, SAMPLER_BATCHES[mode], REPEATS[mode], fpf)
    decode_phase(ph, models, cfg, DECODE_BATCH[mode])
    other_sampling_phases(ph, run, models, cfg, 4 if tiny else 16)
    _features(ph, cfg, tiny, device, fallbacks)
    with ph.phase("distributed") as rec:
        rec.update(distributed_check(device, tiny))
        rec["agree"] = agrees(rec)
        if not rec["agree"]:
            raise RuntimeError("the one-process group disagrees: a collective's result or DDP's no_sync gradients")

    out["wall_s"] = round(time.perf_counter() - t_start, 2)
    out["budget_s"] = BUDGET_S
    out["within_budget"] = out["wall_s"] <= BUDGET_S
    best = ph.records.get("sample_random_bf16", {})
    if best.get("samples_per_s"):
        out["s_per_image_random_bf16"] = round(1 / best["samples_per_s"], 4)
        out["official_s_per_image_2080ti_256_steps"] = OFFICIAL_S_PER_IMAGE
    out["ok"] = all(r["ok"] for r in ph.records.values())
    return out


def _training(ph: Phases, run: RunDir, cfg) -> None:
    """vqgan, encode, prior_absorbing, prior_ar: each trained a few steps, stopped and resumed."""
    with ph.phase("vqgan") as rec:  # GAN on from step 2; stop after 3, resume to the end
        train_vqgan(run, cfg, stop_at=3, show_progress=False)
        train_vqgan(run, cfg, resume=True, show_progress=False)
        rec["images_per_s"] = logged_rate(run.vqgan_log)
        rec["global_batch"] = cfg.vqgan_train.batch_size
        rec["gan_steps"] = sum(1 for r in MetricsLog.read(run.vqgan_log) if r.get("d_loss") not in (None, ""))

    with ph.phase("encode") as rec:
        cache = load_latents(cfg, run.vqgan_ckpt, run.latents, ph.device, rebuild="force", progress=False)
        rec["rates"] = {"images_per_s": sum(len(v) for v in cache.values() if isinstance(v, torch.Tensor))}
        rec["dtype"] = str(cache["train"].dtype)

    for kind in ("absorbing", "autoregressive"):
        kcfg = apply_overrides(cfg, {"prior.kind": kind})
        with ph.phase("prior_" + ("ar" if kind == "autoregressive" else kind)) as rec:
            train_prior(run, kcfg, stop_at=3, show_progress=False)
            train_prior(run, kcfg, resume=True, show_progress=False)
            rate = logged_rate(run.prior_log_for(kind))
            rec["tokens_per_s"] = rate * cfg.latent_size**2 if rate is not None else None
            rec["global_batch"], rec["micro_batch"] = kcfg.prior_train.batch_size, kcfg.prior_train.micro_batch


def _features(ph: Phases, cfg, tiny: bool, device, fallbacks: dict) -> None:
    """features: standard Inception where its weights are found, else random-inception; skipped without
    torch-fidelity (each fallback recorded)."""
    with ph.phase("features") as rec:
        inception, features, why = try_inception(lambda kind: load_inception(kind, device=device))
        rec["features"] = features
        if why:
            fallbacks["inception"] = why
        if inception is None:
            rec["skipped"] = why
            return
        ds = build_dataset(cfg.data, "train", train_transforms=False)
        m = min(len(ds), 4 if tiny else 32)
        keep = torch.arange(m) % 2 == 0  # half kept as features, all in the moments
        kept, moments = stream_features(inception, DataLoader(Subset(ds, range(m)), batch_size=8), keep)
        rec["rates"] = {"images_per_s": m}
        rec["kept"], rec["streamed"] = len(kept), moments.n
        rec["fid_kept_vs_all"] = fid_from_moments(FeatureMoments.of(kept), moments)


def check_to_json(device, tiny: bool, json_path=None, workdir=None) -> int:
    """`python -m ulib gpu-check`: `run_check` in `workdir` (default: a temporary folder, removed), its messages on
    stderr and the record as JSON on stdout (and in json_path); 0 when every phase passed, else 1."""
    if device.type != "cuda" and not tiny:
        print(f"note: gpu-check at the paper's sizes on {device} takes a long time; --tiny is meant for CPUs",
              file=sys.stderr)
    with contextlib.ExitStack() as stack:
        workdir = Path(workdir) if workdir else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        with contextlib.redirect_stdout(sys.stderr):  # training's messages; stdout carries the JSON only
            record = run_check(device, tiny, workdir, log=lambda m: print(m, file=sys.stderr))
    text = json.dumps(record, indent=1)
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(text + "\n")
    print(text)
    return 0 if record["ok"] else 1
