"""Typed run configuration: one dataclass per stage, nested in `Config`.

Every checkpoint stores `asdict(config)`, and `Config.from_dict` rebuilds it, so sampling never needs the
training flags repeated. `Config.validate` checks what the types cannot (ranges, registries, divisibility).
Overrides (`--set section.key=value`) and the conversion of mappings to typed fields live in `ulib/overrides.py`
(`apply_overrides`): an unknown key or a value of the wrong type is an error (nanoGPT's configurator rule), never a
silent None.

Profiles (smoke, demo, ffhq, churches, bedrooms) are data, in `ulib/profiles.py`.
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field

import torch

from ulib.overrides import apply_overrides, build_dataclass

# re-exported from ulib.overrides for the notebooks: apply_overrides
__all__ = ["DATASETS", "SPLIT_BY", "allowed_datasets", "downsampling_factor", "DataConfig", "VQGANConfig",
           "PriorConfig", "TrainConfig", "SampleConfig", "Config", "SEED_LIMIT", "apply_overrides"]

# data.dataset -> the module that builds it: the one registry of dataset kinds. Each module exports
# `build(cfg, *, flip)` (the whole dataset) and `fingerprint(cfg)` (the facts its images depend on);
# `ulib.data.datasets` imports the module named here, and `Config.validate` checks data.dataset against the keys.
# The modules are named, not imported: config is the lowest layer. A new dataset: one module, one line here.
DATASETS = {"openmoji": "ulib.data.openmoji", "folder": "ulib.data.folders", "lsun": "ulib.data.lsun"}
# data.split_by -> the one dataset it applies to (None: any)
SPLIT_BY = {"random": None, "family": "openmoji", "group": "folder"}


def allowed_datasets() -> str:
    """"'openmoji', 'folder', 'lsun'": the registered kinds, as the error messages list them."""
    return ", ".join(repr(name) for name in DATASETS)


def downsampling_factor(ch_mult) -> int:
    """Pixels per token along each side, f = 2**(len(ch_mult) - 1): the encoder halves the resolution at every
    level after the first."""
    return 2 ** (len(ch_mult) - 1)

@dataclass
class DataConfig:
    dataset: str = "openmoji"  # a key of DATASETS: 'openmoji' (built in), 'folder' (any folder of images, e.g.
    #   FFHQ) or 'lsun' (LMDB)
    path: str = ""  # image folder or LSUN LMDB directory; unused for openmoji
    img_size: int = 32  # images are resized + centre-cropped (or rendered) to img_size x img_size
    flip: bool = False  # random horizontal flip during training
    val_fraction: float = 0.05  # fraction of images held out for validation (deterministic split)
    split_seed: int = 0  # seed of the train/validation split
    split_by: str = "random"  # 'random': items shuffled one by one; 'family' (openmoji only): whole families
    #   (skin tone/gender/hair variants) and pixel-identical renders kept on one side (ulib/data/families.py);
    #   'group' (folder only): files with one data.group_pattern key kept on one side
    group_pattern: str = ""  # split_by='group': a regular expression searched in each file's path relative to
    #   data.path ('/'-separated); its first capture group (the whole match if it has none) is the file's group;
    #   a file it does not match (or whose group 1 does not take part) is a group of its own
    test_fraction: float = 0.0  # fraction held out as a test split, never seen in training; 0 = no test split
    skip_bad: bool = False  # skip unreadable images with a warning instead of raising
    cache_dir: str = "data/cache"  # data caches; a relative path starts at ulib's checkout, not the cwd (data/cache.py)


@dataclass
class VQGANConfig:
    # Architecture (official names, paper section 3.1 / supplementary A)
    n_channels: int = 3  # image channels
    nf: int = 64  # base channel count of encoder and generator
    ch_mult: tuple[int, ...] = (1, 2, 2)  # channel multiplier per resolution; len-1 downsamplings
    res_blocks: int = 1  # residual blocks per resolution
    attn_resolutions: tuple[int, ...] = (8,)  # feature-map sizes that get a self-attention block
    norm_groups: int = 32  # GroupNorm groups (official: 32); narrow models need fewer (see ulib/vq/blocks.py)
    codebook_size: int = 256  # K, number of codebook vectors
    emb_dim: int = 64  # dimension of each codebook vector
    beta: float = 0.25  # commitment weight, Eq. 5
    code_init: str = "uniform"  # codebook start: 'uniform' (official, U(-1/K, 1/K)) or 'data' (encoder outputs)
    code_restart_every: int = 0  # every N steps, move codes unused since the last check onto encoder outputs; 0 = off
    # Losses (Eq. 9)
    perceptual_weight: float = 0.0  # LPIPS weight; 0 means no perceptual loss (offline profiles)
    ndf: int = 64  # discriminator base channels
    disc_layers: int = 3  # discriminator strided conv layers
    disc_start_step: int = 2000  # the GAN loss is switched on at this step
    disc_weight_max: float = 1.0  # lambda_max, clamp of the adaptive weight (Eq. 9c)
    diff_aug: bool = True  # differentiable augmentation on every discriminator input


@dataclass
class PriorConfig:
    kind: str = "absorbing"  # 'absorbing' (the paper's prior) or 'autoregressive' (Table 4's baseline)
    n_emb: int = 256  # transformer width (bert_n_emb)
    n_head: int = 8  # attention heads
    n_layers: int = 8  # transformer blocks
    dropout: float = 0.0  # dropout on embeddings, attention and residual paths
    total_steps: int = 64  # T, diffusion steps of the forward process
    loss_type: str = "reweighted_elbo"  # 'elbo' (Eq. 6), 'reweighted_elbo' (Eq. 7) or 'mlm'


@dataclass
class TrainConfig:
    steps: int = 1000  # optimiser steps
    batch_size: int = 32  # global: items per optimiser step over all processes (the paper's batch size)
    micro_batch: int = 0  # items per forward/backward of one process; 0 = batch_size / processes (smaller: accumulate)
    lr: float = 2e-4  # peak learning rate
    warmup_steps: int = 0  # linear warm-up from 0 to lr
    weight_decay: float = 0.0  # AdamW weight decay
    beta1: float = 0.9  # Adam beta1
    beta2: float = 0.95  # Adam beta2
    grad_clip: float = 1.0  # max gradient norm; 0 disables clipping
    ema_decay: float = 0.995  # EMA of weights; 0 disables EMA
    amp: bool = True  # mixed precision where the device supports it (CUDA)
    log_every: int = 50  # steps between CSV log lines
    image_every: int = 500  # steps between PNG grids
    ckpt_every: int = 500  # steps between checkpoints
    num_workers: int = 0  # data-loader worker processes
    compile: bool = False  # torch.compile the prior's network (opt-in; prior_train only)
    keep_best: bool = False  # prior_train only: also keep the checkpoint of the best validation score so far


@dataclass
class SampleConfig:
    n: int = 16  # images per sample call
    steps: int = 0  # reverse steps; 0 means T (prior.total_steps)
    temperature: float = 1.0  # softmax temperature of the denoiser's predictions
    use_ema: bool = True  # sample with EMA weights when the checkpoint has them


@dataclass
class Config:
    profile: str = "demo"  # name of the profile this config was built from
    seed: int = 0  # global seed
    device: str = "auto"  # 'auto' (cuda, then mps, then cpu) or any torch device string
    data: DataConfig = field(default_factory=DataConfig)
    vqgan: VQGANConfig = field(default_factory=VQGANConfig)
    vqgan_train: TrainConfig = field(default_factory=lambda: TrainConfig(lr=2e-4, beta2=0.9))
    prior: PriorConfig = field(default_factory=PriorConfig)
    prior_train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)

    # ---- derived facts -------------------------------------------------------------------------
    @property
    def latent_size(self) -> int:
        """Side of the token grid: img_size / f, f = `downsampling_factor(ch_mult)`."""
        return self.data.img_size // downsampling_factor(self.vqgan.ch_mult)

    @property
    def mask_id(self) -> int:
        """The absorbing state's token id: one past the codebook (= codebook_size)."""
        return self.vqgan.codebook_size

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        """Rebuild from `to_dict()` output (e.g. a checkpoint); unknown keys are an error."""
        return build_dataclass(cls, d)

    def validate(self) -> "Config":
        """Check values that the types cannot; raise ValueError naming the field, the value and what is allowed.

        Every number is checked against its documented range (NaN and infinities included: `nan <= 0` is
        False, so each check is written as what is allowed, which NaN never satisfies)."""
        f = downsampling_factor(self.vqgan.ch_mult)
        d, v, p, s = self.data, self.vqgan, self.prior, self.sample
        _seed("seed", self.seed)
        _device_name(self.device)
        # data
        if d.dataset not in DATASETS:
            raise ValueError(f"data.dataset={d.dataset!r}; allowed: {allowed_datasets()}")
        if d.img_size <= 0:
            raise ValueError(f"data.img_size={d.img_size}; allowed: a positive multiple of the encoder's "
                             f"downsampling factor 2**(len(vqgan.ch_mult)-1) = {f}")
        if d.img_size % f != 0:
            raise ValueError(
                f"data.img_size={d.img_size} cannot be divided by the encoder's downsampling factor "
                f"2**(len(vqgan.ch_mult)-1) = {f}; allowed: a positive multiple of {f}"
            )
        _real("data.val_fraction", d.val_fraction, 0 <= d.val_fraction < 1, "0 <= val_fraction < 1")
        _seed("data.split_seed", d.split_seed)
        if d.split_by not in SPLIT_BY:
            raise ValueError(f"data.split_by={d.split_by!r}; allowed: 'random', 'family' (openmoji only), "
                             f"'group' (folder only)")
        if d.split_by != "random" and d.dataset != SPLIT_BY[d.split_by]:
            allowed = ", ".join(repr(k) for k, v in SPLIT_BY.items() if v in (None, d.dataset))
            raise ValueError(f"data.split_by={d.split_by!r} needs data.dataset={SPLIT_BY[d.split_by]!r} (got "
                             f"{d.dataset!r}); allowed for {d.dataset!r}: {allowed}")
        _check_group_pattern(d)
        _real("data.test_fraction", d.test_fraction, 0 <= d.test_fraction < 1, "0 <= test_fraction < 1")
        _real("data.test_fraction", d.test_fraction, d.val_fraction + d.test_fraction < 1,
              f"val_fraction + test_fraction < 1 (val_fraction={d.val_fraction})")
        # vqgan
        _require("vqgan.n_channels", v.n_channels, v.n_channels == 3, "3 (the data pipeline gives RGB images)")
        for name in ("nf", "res_blocks", "norm_groups", "codebook_size", "emb_dim", "ndf", "disc_layers"):
            _at_least(f"vqgan.{name}", getattr(v, name), 1)
        _require("vqgan.ch_mult", v.ch_mult, len(v.ch_mult) >= 1 and all(m >= 1 for m in v.ch_mult),
                 "one or more channel multipliers, each >= 1")
        _require("vqgan.attn_resolutions", v.attn_resolutions, all(r >= 1 for r in v.attn_resolutions),
                 "feature-map sizes, each >= 1 (or none)")
        channels = sorted({v.nf * m for m in (1, *v.ch_mult)})
        _require("vqgan.norm_groups", v.norm_groups, all(c % v.norm_groups == 0 for c in channels),
                 f"a number of GroupNorm groups that divides every channel count nf * ch_mult = {channels}")
        _real("vqgan.beta", v.beta, v.beta >= 0, "a finite number >= 0")
        _at_least("vqgan.code_restart_every", v.code_restart_every, 0, " (0 = off)")
        _real("vqgan.perceptual_weight", v.perceptual_weight, v.perceptual_weight >= 0, "a finite number >= 0")
        _at_least("vqgan.disc_start_step", v.disc_start_step, 0)
        _real("vqgan.disc_weight_max", v.disc_weight_max, v.disc_weight_max >= 0, "a finite number >= 0")
        if d.img_size // 2 ** v.disc_layers < 3:  # strided 4x4 convs halve the side, two more take 1 each
            raise ValueError(f"vqgan.disc_layers={v.disc_layers} with data.img_size={d.img_size} leaves the "
                             f"discriminator no output; allowed: img_size // 2**disc_layers >= 3")
        if v.code_init not in ("uniform", "data"):
            raise ValueError(f"vqgan.code_init={v.code_init!r}; allowed: 'uniform', 'data'")
        # prior
        if p.kind not in ("absorbing", "autoregressive"):
            raise ValueError(f"prior.kind={p.kind!r}; allowed: 'absorbing', 'autoregressive'")
        if p.loss_type not in ("elbo", "reweighted_elbo", "mlm"):
            raise ValueError(f"prior.loss_type={p.loss_type!r}; allowed: 'elbo', 'reweighted_elbo', 'mlm'")
        for name in ("n_emb", "n_head", "n_layers", "total_steps"):
            _at_least(f"prior.{name}", getattr(p, name), 1)
        if p.n_emb % p.n_head != 0:
            raise ValueError(f"prior.n_emb={p.n_emb} is not divisible by prior.n_head={p.n_head}; allowed: a width "
                             f"that is a multiple of the number of heads")
        _real("prior.dropout", p.dropout, 0 <= p.dropout < 1, "0 <= dropout < 1")
        # sampling
        _at_least("sample.n", s.n, 1)
        _real("sample.temperature", s.temperature, s.temperature > 0, "a finite number > 0")
        if not 0 <= s.steps <= p.total_steps:
            raise ValueError(f"sample.steps={s.steps}; allowed: 1..prior.total_steps={p.total_steps} (0 = T)")
        # training
        for name in ("vqgan_train", "prior_train"):
            tc: TrainConfig = getattr(self, name)
            _at_least(f"{name}.steps", tc.steps, 0)
            _at_least(f"{name}.batch_size", tc.batch_size, 1)
            _real(f"{name}.lr", tc.lr, tc.lr > 0, "a finite number > 0")
            _at_least(f"{name}.warmup_steps", tc.warmup_steps, 0)
            _real(f"{name}.weight_decay", tc.weight_decay, tc.weight_decay >= 0, "a finite number >= 0")
            for beta in ("beta1", "beta2"):
                _real(f"{name}.{beta}", getattr(tc, beta), 0 <= getattr(tc, beta) < 1, f"0 <= {beta} < 1")
            _real(f"{name}.grad_clip", tc.grad_clip, tc.grad_clip >= 0, "a finite number >= 0 (0 = no clipping)")
            _real(f"{name}.ema_decay", tc.ema_decay, 0 <= tc.ema_decay < 1, "0 <= ema_decay < 1 (0 = no EMA)")
            for every in ("log_every", "image_every", "ckpt_every"):
                _at_least(f"{name}.{every}", getattr(tc, every), 1, " (steps between them)")
            _at_least(f"{name}.num_workers", tc.num_workers, 0)
            if tc.micro_batch < 0 or (tc.micro_batch and tc.batch_size % tc.micro_batch):
                raise ValueError(f"{name}.micro_batch={tc.micro_batch} must divide {name}.batch_size={tc.batch_size} "
                                 "(0 = no gradient accumulation)")
        if self.vqgan_train.compile:
            raise ValueError("vqgan_train.compile=true is not supported: the adaptive weight (Eq. 9c) differentiates "
                             "through the generator twice; use prior_train.compile")
        return self


# ---- checks of single values (the message names the key, the value and what is allowed) ------------------------
SEED_LIMIT = 2**32  # config seeds: numpy's seeds are 32-bit, and training derives per-process seeds from them


def _require(key: str, value, ok: bool, allowed: str) -> None:
    if not ok:
        raise ValueError(f"{key}={value!r}; allowed: {allowed}")


def _at_least(key: str, value: int, low: int, note: str = "") -> None:
    _require(key, value, value >= low, f"an integer >= {low}{note}")


def _real(key: str, value: float, ok: bool, allowed: str) -> None:
    """A float that must be finite and satisfy `ok` (comparisons with NaN are False, but say so anyway)."""
    _require(key, value, math.isfinite(value) and ok, allowed)


def _seed(key: str, value: int) -> None:
    _require(key, value, 0 <= value < SEED_LIMIT, "an integer in 0..2**32-1")


def _check_group_pattern(d: DataConfig) -> None:
    """data.group_pattern: set exactly when data.split_by='group', and a regular expression Python compiles."""
    if d.split_by == "group" and not d.group_pattern:
        raise ValueError("data.split_by='group' needs data.group_pattern: a regular expression whose first capture "
                         "group names each file's group, e.g. '^([^/]+)/' (the top subfolder) or '^(\\w+?)_\\d+'")
    if d.group_pattern and d.split_by != "group":
        raise ValueError(f"data.group_pattern={d.group_pattern!r} is used only with data.split_by='group' and "
                         f"data.dataset='folder' (got split_by={d.split_by!r}, dataset={d.dataset!r}); allowed: "
                         f"set both, or leave group_pattern empty")
    try:
        re.compile(d.group_pattern)
    except re.error as e:
        raise ValueError(f"data.group_pattern={d.group_pattern!r} is not a regular expression ({e}); allowed: "
                         f"Python `re` syntax, e.g. '^([^/]+)/'") from None


def _device_name(name: str) -> None:
    """'auto' or a string torch.device parses ('cpu', 'cuda', 'cuda:1', 'mps'); whether it exists here is
    `ulib.device.resolve_device`'s question, asked where a device is used."""
    if name == "auto":
        return
    try:
        torch.device(name)
    except (RuntimeError, ValueError, TypeError) as e:
        raise ValueError(f"device={name!r} is not a torch device ({e}); allowed: 'auto', 'cpu', 'cuda', 'cuda:1', "
                         f"'mps'")
