"""What several test files share: paths, the tiny settings, the CLI runner and small seeded models.

Tests import from here (never from one another); pytest fixtures stay in conftest.py.
"""
import io
import math
import os
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from ulib.io.rundir import RunDir
from ulib.prior.transformer import Transformer
from ulib.profiles import get_profile
from ulib.sample import registry
from ulib.sample.absorbing import time_schedule
from ulib.sample.base import Sampler, SampleStep
from ulib.train.prior import train_prior
from ulib.train.vqgan import train_vqgan
from ulib.vq.perceptual import VGG16_FILE

ROOT = Path(__file__).resolve().parents[1]
CACHE = str(ROOT / "data" / "cache")
# The Chromium that Playwright drives in the tests marked `browser` (never a browser Playwright downloads).
CHROMIUM = os.environ.get("ULIB_CHROMIUM", "/usr/bin/chromium")
# Headless, as root, on a closed network: no sandbox, no GPU, nothing fetched in the background.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Key names and shapes of the official code's released checkpoints (source named inside the file).
OFFICIAL_KEYS = ROOT / "tests" / "fixtures" / "official_checkpoint_keys.json"
# kind of released file -> the entry of OFFICIAL_KEYS holding its keys and shapes, in the file's order
OFFICIAL_KEYS_OF = {"vqgan": "vqgan_autoencoder_keys", "absorbing": "absorbing_sampler_keys",
                    "autoregressive": "autoregressive_sampler_keys"}

# Tiny settings on top of the smoke profile: every stage runs in seconds on 2 CPU cores.
TINY = [
    f"data.cache_dir={CACHE}",
    "vqgan_train.steps=6", "vqgan_train.log_every=2", "vqgan_train.image_every=3", "vqgan_train.ckpt_every=3",
    "vqgan.disc_start_step=3",
    "prior_train.steps=6", "prior_train.log_every=2", "prior_train.image_every=3", "prior_train.ckpt_every=3",
]


def missing_browser(reason: str):
    """Skip, or fail under CI=true (a CI run that skipped a browser check must not look green)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the browser checks must run in CI; `make browser-deps` installs Chromium)")
    pytest.skip(f"{reason}; `make browser-deps` installs Chromium")


def tiny_config(extra=()):
    """The smoke profile with TINY's settings and `extra` overrides on top (each as for `--set`)."""
    return get_profile("smoke", [*TINY, *extra])


def tiny_trained_run(path, steps: int = 2, extra=()):
    """(RunDir, config): a run at `path` with TINY's settings whose VQGAN and absorbing prior are trained `steps`
    steps each (the prior's token cache built on the way)."""
    run = RunDir(path)
    cfg = tiny_config([f"vqgan_train.steps={steps}", f"prior_train.steps={steps}", *extra])
    train_vqgan(run, cfg, show_progress=False)
    train_prior(run, cfg, show_progress=False)
    return run, cfg


def tiny_sets(extra=()):
    """TINY's settings and `extra` as command-line arguments: --set KEY=VALUE ..."""
    return [a for s in [*TINY, *extra] for a in ("--set", s)]


def png_folder(folder, n=3, size=(8, 8)):
    """A folder of `n` small PNG images of different reds (made if missing); returns it."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", size, (40 * i, 0, 0)).save(folder / f"{i}.png")
    return folder


def run_cli(*args, cwd=None, env=None, timeout=600):
    """Run `python -m ulib ARGS` in a subprocess; return the CompletedProcess."""
    e = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", "ulib", *args], cwd=cwd or ROOT, env=e, capture_output=True,
                          text=True, timeout=timeout)


# ---- a tiny causal prior (the AR baseline's tests) ------------------------------------------------
AR_K, AR_L = 16, 12  # codebook, sequence length


def tiny_ar(seed=0, std=0.2):
    """A causal transformer with weights larger than the GPT-2 init, so logits are far from uniform
    and attention actually mixes positions (a freshly initialised model predicts ~1/K everywhere)."""
    return scaled_transformer(AR_K, AR_L, causal=True, seed=seed, std=std)


def scaled_transformer(K, L, causal, seed=0, std=0.2, n_emb=32, n_head=4, n_layers=2):
    """A Transformer (causal or absorbing) whose matrices and start token are drawn N(0, std^2) from `seed`."""
    torch.manual_seed(seed)
    net = Transformer(codebook_size=K, block_size=L, n_emb=n_emb, n_head=n_head, n_layers=n_layers, causal=causal)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if p.dim() > 1 or name.endswith("start_tok"):
                p.normal_(0.0, std)
    return net.eval()


def ar_tokens(B=3, seed=0):
    return torch.randint(0, AR_K, (B, AR_L), generator=torch.Generator().manual_seed(seed))


def cached_logits(net, x, forward=None):
    """Logits (B, L, K) of every position from L cached calls: start token, then one token at a time.
    forward: what runs each call (default `net.forward_cached`; `ulib.sample.cpu_step.CachedForward(net)`
    takes the CPU accelerator's path)."""
    forward = forward or net.forward_cached
    cache = net.new_cache()
    with torch.no_grad():
        out = [forward(x[:, :0], cache, 0)]
        for i in range(1, x.shape[1]):
            out.append(forward(x[:, i - 1:i], cache, i - 1))
    return torch.cat(out, dim=1)


# ---- test-made weights ------------------------------------------------------------------------------
def vgg16_features_file(folder):
    """A random VGG16 `features` state dict under torchvision's file name: enough for load_lpips."""
    torch.manual_seed(0)
    layers, c = [], 3
    for v in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU()]
            c = v
    torch.save({f"features.{k}": t for k, t in nn.Sequential(*layers).state_dict().items()}, folder / VGG16_FILE)


class PickleBomb:
    """Unpickling it calls open(marker, 'w'), creating the file: the stand-in for any code a crafted .pth runs."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


# ---- small stand-ins --------------------------------------------------------------------------------
def small_net():
    """Linear, BatchNorm (a buffer that EMA copies instead of averaging), Linear."""
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))


class Oracle(nn.Module):
    """Predicts the true tokens x0 (B, L) of K codes: logits one_hot(x0) * scale for the first rows of x0. With a
    large scale it is a perfect model (its ELBO is 0); a small one leaves it unsure."""

    def __init__(self, x0, K, scale=1e4):
        super().__init__()
        self.x0, self.K, self.scale = x0, K, scale

    def forward(self, x):
        return nn.functional.one_hot(self.x0[: x.shape[0]], self.K).float() * self.scale


class CountingCalls(nn.Module):
    """Wraps a module and counts its forward calls (`calls`)."""

    def __init__(self, module):
        super().__init__()
        self.module, self.calls = module, 0

    def forward(self, x):
        self.calls += 1
        return self.module(x)


class FakeDDP:
    """Stands in for DistributedDataParallel (which needs a process group): an object with `.module`."""

    def __init__(self, module):
        self.module = module


# ---- small image files ---------------------------------------------------------------------------------
def write_images(root):
    """Five images of assorted modes, sizes and extensions (one in a subfolder); returns relative names."""
    (root / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)).save(root / "a_rgb.jpg")
    Image.new("RGBA", (20, 40), (255, 0, 0, 0)).save(root / "b_rgba.PNG")  # fully transparent -> white
    Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8), "L").save(root / "c_gray.bmp")
    Image.new("RGB", (33, 17), (0, 128, 255)).convert("P").save(root / "sub" / "d_palette.gif.png")
    Image.fromarray(rng.integers(0, 256, (8, 12, 3), dtype=np.uint8)).save(root / "sub" / "e_small.webp")
    (root / "notes.txt").write_text("not an image")
    return ["a_rgb.jpg", "b_rgba.PNG", "c_gray.bmp", "sub/d_palette.gif.png", "sub/e_small.webp"]


def jpeg_bytes(color, size=(24, 16)) -> bytes:
    """A JPEG of one colour, as bytes (what an LSUN LMDB stores)."""
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def huge_png_header(width=20_000, height=20_000) -> bytes:
    """A tiny PNG whose header claims width x height pixels (default 400 million, over twice Pillow's
    decompression-bomb limit) and that holds no pixel data: what a decompression bomb looks like to a reader."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


# ---- an example sampling method (tests/sample/test_registry.py, tests/app/test_widgets.py) ------------------
@dataclass(frozen=True)
class RasterOptions:
    per_step: int = 2  # positions revealed per step

    def __post_init__(self):
        if self.per_step < 1:
            raise ValueError(f"per_step={self.per_step}; must be >= 1")


class RasterSampler(Sampler):
    """Reveal the still-masked positions in raster order, per_step at a time, each drawn from its softmax."""

    Options = RasterOptions

    def start(self, x):
        return -(-int((x == self.mask_id).sum(1).max()) // self.options.per_step)  # ceil(masked / per_step)

    @torch.no_grad()
    def step(self, x, k):
        masked = x == self.mask_id
        reveal = masked & (masked.long().cumsum(1) <= self.options.per_step)
        if not reveal.any():
            return SampleStep(x, reveal, ran_network=False)
        probs = torch.softmax(self.logits_at(x, reveal).float() / self.temperature, -1)
        x = x.clone()
        x[reveal] = torch.multinomial(probs, 1, generator=self.generator).squeeze(1)
        return SampleStep(x, reveal, extras={"k": k})


EXAMPLE_METHOD = registry.Method("raster_test", RasterSampler, "a test's raster order", supports=frozenset({"x_start"}))
# the same, declaring that it sets its own number of calls and never reads steps (registry.Method.steps)
OWN_STEPS_METHOD = registry.Method("raster_own_steps", RasterSampler, "a test's raster order, its own steps",
                                   supports=frozenset({"x_start"}), steps="unused")


# ---- the sampler tests' stand-ins: a seeded generator, a tiny transformer, a deterministic 'network' whose
# logits depend on what is revealed, the paper's reverse process written plainly, chi-square checks ----------
def gen(seed):
    return torch.Generator().manual_seed(seed)


def tiny_transformer(K=16, L=12):
    torch.manual_seed(0)
    return Transformer(codebook_size=K, block_size=L, n_emb=32, n_head=4, n_layers=2).eval()


class CountModel(torch.nn.Module):
    """A deterministic 'network' whose logits depend on x_t, so the order of reveals matters:
    logits[b, i, c] = bias[i, c] + a * (number of tokens c already in row b). Row-wise and exact, so a row
    gets the same logits whatever else is in the batch. Records every row it is shown."""

    def __init__(self, K, L, a=1.5, seed=0):
        super().__init__()
        self.K, self.a = K, a
        self.bias = torch.randn(L, K, generator=gen(seed))
        self.calls, self.rows = 0, []

    def forward(self, x):
        self.calls += 1
        self.rows += [tuple(r) for r in x.tolist()]
        counts = (x[:, :, None] == torch.arange(self.K)).sum(1)  # (B, K), mask id never counted
        return self.bias[: x.shape[1]] + self.a * counts[:, None, :].float()  # (B, L, K)


def plain_reverse_process(model, T, steps, mask_id, B, L, temperature=1.0, generator=None):
    """The paper's sampler written plainly (like the official code): the full network and a categorical
    draw at every position at every step, then each masked position unmasks with probability (t - s)/t.
    Returns the tokens (B, L) and the step (B, L) at which each position was revealed."""
    x = torch.full((B, L), mask_id, dtype=torch.long)
    step_of = torch.full((B, L), -1, dtype=torch.long)
    times = time_schedule(T, steps)
    for k, (t, s) in enumerate(zip(times, times[1:])):
        probs = torch.softmax(model(x).float() / temperature, dim=-1)  # (B, L, K)
        draws = torch.multinomial(probs.view(B * L, -1), 1, generator=generator).view(B, L)
        unmask = (x == mask_id) & (torch.rand(B, L, generator=generator) < (t - s) / t)
        x = torch.where(unmask, draws, x)
        step_of[unmask] = k
    return x, step_of


def chi2_same_law(a, b):
    """Two-sample chi-square statistic on counts a, b (n,) and its critical value at p = 0.001
    (Wilson-Hilferty approximation of the chi-square quantile)."""
    table = torch.stack([a, b]).double()
    table = table[:, table.sum(0) > 0]
    expected = table.sum(1, keepdim=True) * table.sum(0, keepdim=True) / table.sum()
    stat = ((table - expected) ** 2 / expected).sum().item()
    return stat, _chi2_critical(table.shape[1] - 1)


def chi2_fits(counts, p, z=3.090):
    """Goodness-of-fit chi-square of counts (n,) against probabilities p (n,), and the critical value at the level
    whose standard normal quantile is z (3.090: p = 0.001; 4.265: p = 1e-5)."""
    expected = counts.sum().double() * p.double()
    return ((counts.double() - expected) ** 2 / expected).sum().item(), _chi2_critical(len(p) - 1, z)


def _chi2_critical(dof, z=3.090):
    return dof * (1 - 2 / (9 * dof) + z * math.sqrt(2 / (9 * dof))) ** 3
