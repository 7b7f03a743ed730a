"""`python -m ulib gpu-check` (`make gpu-check`): every CUDA path once, at the paper's model sizes, as JSON.

On synthetic 256x256 images (written to a temporary folder) with the `ffhq` profile's networks (VQGAN nf=128,
ch_mult 1,1,2,2,4, codebook 1024; prior 24 layers, width 512, T = 256), in phases:

- vqgan: training steps with the GAN switched on, stopped and resumed (images/s);
- encode: the latent cache, mirrored images included (images/s);
- prior_absorbing, prior_ar: training steps of both priors, stopped and resumed (tokens/s);
- sample_{random,confidence,remask}_{fp32,bf16}: each decoding method at T steps in both precisions
  (samples/s, s/image beside the official code's 3.8 s/image at 256 steps on an RTX 2080 Ti);
- ar_cache_{fp32,bf16}: the AR prior's sampling with its key/value cache;
- big_canvas: a latent canvas twice the training width (Eq. 8);
- inpaint: half of each image regenerated (Fig. 7);
- features: InceptionV3 features for evaluation, streamed moments included (images/s).

Each phase records its wall time, its throughput and its peak GPU memory (`torch.cuda.max_memory_allocated`;
on the CPU the process's peak resident memory so far); a phase that fails is recorded with its error and the
others still run (exit status 1). Meant to take at most BUDGET_S on one H200; the JSON says whether it did.
`--tiny` runs the same phases at smoke sizes in seconds on a CPU: the test suite does, so this cannot rot.
Standard Inception or LPIPS weights are used when found offline (`ulib.eval.extractors`, `ulib.vq.perceptual`), else
random-inception features and no LPIPS (recorded).
"""
from __future__ import annotations

import contextlib
import json
import statistics
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Subset

from ulib.data.datasets import build_dataset
from ulib.device import autocast, configure_matmul, native_bf16, sampling_dtype
from ulib.eval.extractors import load_inception, stream_features
from ulib.eval.metrics import FeatureMoments, fid_from_moments
from ulib.eval.timing import synchronize
from ulib.io.logs import MetricsLog
from ulib.io.rundir import RunDir
from ulib.io.weights import UnverifiedWeightsError
from ulib.models import load_run
from ulib.overrides import apply_overrides
from ulib.profiles import get_profile
from ulib.sample import registry
from ulib.sample.api import sample_images
from ulib.sample.inpaint import inpaint
from ulib.train.latents import load_latents
from ulib.train.prior import train_prior
from ulib.train.vqgan import train_vqgan
from ulib.vq.perceptual import load_lpips

BUDGET_S = 300  # the most `make gpu-check` should take on one H200
OFFICIAL_S_PER_IMAGE = 3.8  # official code, 256 steps, RTX 2080 Ti (the paper's repository README)
N_IMAGES = {"paper": 48, "tiny": 24}  # synthetic images (train + val)


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


class Phases:
    """Runs named phases, timing each between device synchronisations, and collects their records."""

    def __init__(self, device: torch.device, log):
        self.device, self.log, self.records = device, log, {}

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


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)

    import resource  # Unix only: imported here so the CLI still loads on Windows

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KB on Linux: process peak so far


def _logged_rate(log_file: Path, key: str = "images_per_s") -> float | None:
    """Median of the training log's rate column, leaving out the first row (warm-up, cuDNN autotuning)."""
    rates = [r[key] for r in MetricsLog.read(log_file) if r.get(key) not in (None, "")]
    rates = rates[1:] or rates
    return float(statistics.median(rates)) if rates else None


def run_check(device: torch.device, tiny: bool, workdir: Path, log=print) -> dict:
    """All phases; returns the JSON record (module docstring)."""
    t_start = time.perf_counter()
    configure_matmul(device)
    try:
        load_lpips(device=torch.device("cpu"))
        perceptual = True
    except (FileNotFoundError, UnverifiedWeightsError) as e:  # a refused file is as good as none here
        if isinstance(e, UnverifiedWeightsError):
            log(f"gpu-check: LPIPS off: {e}")
        perceptual = False
    size = 16 if tiny else 256
    data = workdir / "images"
    synthetic_images(data, N_IMAGES["tiny" if tiny else "paper"], size)
    cfg = check_config(tiny, data, workdir / "cache", perceptual)
    cfg = apply_overrides(cfg, {"device": str(device)})
    run = RunDir(workdir / "run")
    ph = Phases(device, log)
    L = cfg.latent_size**2
    out = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "tiny": tiny, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__, "bf16_native": native_bf16(device),
        "float32_matmul_precision": torch.get_float32_matmul_precision(), "image_size": size,
        "profile": cfg.profile, "lpips": perceptual,
        "model": {"vqgan_nf": cfg.vqgan.nf, "vqgan_ch_mult": list(cfg.vqgan.ch_mult),
                  "codebook_size": cfg.vqgan.codebook_size, "prior_layers": cfg.prior.n_layers,
                  "prior_width": cfg.prior.n_emb, "latent": f"{cfg.latent_size}x{cfg.latent_size}",
                  "total_steps": cfg.prior.total_steps},
        "phases": ph.records,
    }

    with ph.phase("vqgan") as rec:  # GAN on from step 2; stop after 3, resume to the end
        train_vqgan(run, cfg, stop_at=3, show_progress=False)
        train_vqgan(run, cfg, resume=True, show_progress=False)
        rec["images_per_s"] = _logged_rate(run.vqgan_log)
        rec["global_batch"] = cfg.vqgan_train.batch_size
        rec["gan_steps"] = sum(1 for r in _rows(run.vqgan_log) if r.get("d_loss") not in (None, ""))

    with ph.phase("encode") as rec:
        cache = load_latents(cfg, run.vqgan_ckpt, run.latents, device, rebuild="force", progress=False)
        rec["rates"] = {"images_per_s": sum(len(v) for v in cache.values() if isinstance(v, torch.Tensor))}
        rec["dtype"] = str(cache["train"].dtype)

    for kind in ("absorbing", "autoregressive"):
        kcfg = apply_overrides(cfg, {"prior.kind": kind})
        with ph.phase("prior_" + ("ar" if kind == "autoregressive" else kind)) as rec:
            train_prior(run, kcfg, stop_at=3, show_progress=False)
            train_prior(run, kcfg, resume=True, show_progress=False)
            rate = _logged_rate(run.prior_log_for(kind))
            rec["tokens_per_s"] = rate * L if rate is not None else None
            rec["global_batch"], rec["micro_batch"] = kcfg.prior_train.batch_size, kcfg.prior_train.micro_batch

    n = 4 if tiny else 16
    T = cfg.prior.total_steps
    models = load_run(run, device, cfg=cfg)
    for method in registry.choices():
        for precision in ("fp32", "bf16"):
            with ph.phase(f"sample_{method}_{precision}") as rec:
                sample_images(models, n, steps=T, temperature=0.9, seed=0, method=method,
                              precision=precision)
                rec["rates"] = {"samples_per_s": n}
                rec["steps"] = T
    ar = load_run(run, device, kind="autoregressive", cfg=cfg)
    for precision in ("fp32", "bf16"):
        with ph.phase(f"ar_cache_{precision}") as rec:
            sample_images(ar, n, steps=T, temperature=0.9, seed=0, precision=precision)
            rec["rates"] = {"samples_per_s": n, "tokens_per_s": n * L}

    s = cfg.latent_size
    with ph.phase("big_canvas") as rec:
        img = sample_images(models, 2, steps=min(T, 32), temperature=0.9, seed=0, canvas=(s, 2 * s),
                            stride=max(1, s // 4))
        rec["rates"] = {"samples_per_s": 2}
        rec["canvas"], rec["image_shape"] = f"{s}x{2 * s}", list(img.shape[1:])

    with ph.phase("inpaint") as rec:
        ds = build_dataset(cfg.data, "val", train_transforms=False)
        x = torch.stack([ds[i] for i in range(2)]).to(device)
        mask = torch.zeros(size, size, dtype=torch.bool, device=device)
        mask[:, size // 2:] = True  # regenerate the right half
        with autocast(device, sampling_dtype(device)):
            res = inpaint(models.vqgan, models.prior, x, mask, num_timesteps=T, mask_id=models.mask_id,
                          steps=min(T, 64), generator=torch.Generator(device=device).manual_seed(0))
        rec["rates"] = {"samples_per_s": 2}
        rec["start_times"] = res.start_times

    with ph.phase("features") as rec:

        try:
            inception, features = load_inception("inception", device=device), "inception"
        except (FileNotFoundError, UnverifiedWeightsError) as e:  # missing or refused: random features instead
            if isinstance(e, UnverifiedWeightsError):
                log(f"gpu-check: standard Inception features off: {e}")
            inception, features = load_inception("random-inception", device=device), "random-inception"
        ds = build_dataset(cfg.data, "train", train_transforms=False)
        m = min(len(ds), 4 if tiny else 32)
        keep = torch.arange(m) % 2 == 0  # half kept as features, all in the moments
        kept, moments = stream_features(inception, DataLoader(Subset(ds, range(m)), batch_size=8), keep)
        rec["rates"] = {"images_per_s": m}
        rec["features"], rec["kept"], rec["streamed"] = features, len(kept), moments.n
        rec["fid_kept_vs_all"] = fid_from_moments(FeatureMoments.of(kept), moments)

    out["wall_s"] = round(time.perf_counter() - t_start, 2)
    out["budget_s"] = BUDGET_S
    out["within_budget"] = out["wall_s"] <= BUDGET_S
    best = ph.records.get("sample_random_bf16", {})
    if best.get("samples_per_s"):
        out["s_per_image_random_bf16"] = round(1 / best["samples_per_s"], 4)
        out["official_s_per_image_2080ti_256_steps"] = OFFICIAL_S_PER_IMAGE
    out["ok"] = all(r["ok"] for r in ph.records.values())
    return out


def _rows(log_file: Path) -> list[dict]:
    return MetricsLog.read(log_file)


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
