"""Named profiles: plain data that differs only in values. A profile is never code: a new profile is a dict
of settings, so every code path is the same for `smoke`, `demo` and the paper's profiles.

Each profile is a nested dict of overrides on top of `Config()`'s defaults. Notebooks, the CLI and the
tests all read profiles from here.

- smoke:    the whole pipeline in about two minutes on 2 CPU cores (CI); results are meaningless.
- demo:     CPU, at most about 15 minutes to recognisable 32x32 emoji (`make demo`).
- study:    the demo's earlier prior (width 192) with both priors (absorbing and AR) trained 2.5x longer
            (2,500 steps), validated every 250 steps and kept at their best validation checkpoint (Table 4's
            overfitting question; about 1 h on 2 CPU cores: `python -m ulib reproduce --profile study --only 01 05`).
- tutorial: the demo trained for an hour (VQGAN 5,000 steps, prior width 192 for 4,500 steps, shipped at its best
            validation checkpoint): the ready-trained model in ulib/assets/pretrained/ (`make tutorial` makes it).
- ffhq, churches, bedrooms: the paper's hyper-parameters (GPU; supplementary A, official code's defaults).
"""
from __future__ import annotations

from ulib.config import Config
from ulib.overrides import apply_overrides, merge

_PAPER_VQGAN = dict(
    n_channels=3, nf=128, ch_mult=(1, 1, 2, 2, 4), res_blocks=2, attn_resolutions=(16,), codebook_size=1024,
    emb_dim=256, beta=0.25, perceptual_weight=1.0, ndf=64, disc_layers=3, disc_start_step=30001,
    disc_weight_max=1.0, diff_aug=True,
)
_PAPER_PRIOR = dict(kind="absorbing", n_emb=512, n_head=8, n_layers=24, dropout=0.0, total_steps=256,
                    loss_type="reweighted_elbo")


def _paper(dataset: str, path: str, lr: float, warmup: int, flip: bool) -> dict:
    return dict(
        data=dict(dataset=dataset, path=path, img_size=256, flip=flip, val_fraction=0.01),
        vqgan=_PAPER_VQGAN,
        # Official defaults: Adam, batch 3, lr 4.5e-6 per image of the batch (taming's base_lr convention).
        vqgan_train=dict(steps=500_000, batch_size=3, lr=4.5e-6 * 3, beta1=0.5, beta2=0.9, grad_clip=0.0,
                         ema_decay=0.995, log_every=100, image_every=5000, ckpt_every=10_000, num_workers=4),
        prior=_PAPER_PRIOR,
        prior_train=dict(steps=2_000_000, batch_size=20, lr=lr, warmup_steps=warmup, beta1=0.9, beta2=0.95,
                         grad_clip=0.0, ema_decay=0.9997, log_every=100, image_every=5000, ckpt_every=10_000),
        sample=dict(n=16, steps=256, temperature=0.9),
    )


PROFILES: dict[str, dict] = {
    "smoke": dict(
        data=dict(dataset="openmoji", img_size=16, val_fraction=0.05, test_fraction=0.10, split_by="family"),
        vqgan=dict(nf=32, ch_mult=(1, 2), res_blocks=1, attn_resolutions=(8,), codebook_size=32, emb_dim=16,
                   ndf=16, disc_layers=2, disc_start_step=10, perceptual_weight=0.0),
        vqgan_train=dict(steps=24, batch_size=8, lr=1e-3, log_every=4, image_every=12, ckpt_every=12),
        prior=dict(n_emb=32, n_head=2, n_layers=2, total_steps=16),
        # keep_best as in demo, so that CI runs notebook 05's final-and-best path (Table 4) too
        prior_train=dict(steps=24, batch_size=8, lr=1e-3, warmup_steps=4, log_every=4, image_every=12,
                         ckpt_every=12, keep_best=True),
        sample=dict(n=4, steps=8),
    ),
    "demo": dict(
        # Measured on 2 CPU cores (see the foundation issue's note): GroupNorm with 8 groups, so that each
        # group spans 4 channels at nf=32 (32 groups would act as InstanceNorm and wash out colours); codes
        # start on encoder outputs and dead ones are recycled; the GAN stays off, because within minutes of
        # training it only hurt (L1 0.14 -> 0.22 in the 300 steps after switching it on at step 1100).
        # Split by design family (an emoji and its skin-tone, gender and hair variants on one side, #22) into
        # train / validation / test: the test images (25 %, about 1,100) are never seen by any model, so the
        # noise floor (two disjoint sets of them) and Fig. 6's floor at n = 1,000 are truly held out.
        data=dict(dataset="openmoji", img_size=32, val_fraction=0.05, test_fraction=0.25, split_by="family"),
        vqgan=dict(nf=32, ch_mult=(1, 2, 2), res_blocks=1, attn_resolutions=(), norm_groups=8, codebook_size=256,
                   emb_dim=16, code_init="data", code_restart_every=100, ndf=32, disc_layers=2,
                   disc_start_step=1_000_000, perceptual_weight=0.0),
        vqgan_train=dict(steps=1400, batch_size=32, lr=1e-3, beta2=0.9, warmup_steps=50, ema_decay=0.99,
                         log_every=50, image_every=350, ckpt_every=350),
        # The prior: width 128 trains 1.8x faster per step than 192 on 2 cores, so 2,000 steps fit the time
        # 1,000 steps of width 192 took, and end lower (validation ELBO 4.23 vs 4.61 bits/token; sample FID at
        # t = 0.8 33.2 vs 37.8 in the OpenMoji space; measured for #12 part 3, README "The demo's own quality").
        prior=dict(n_emb=128, n_head=4, n_layers=4, total_steps=64),
        # Validated every 250 steps, keeping the best-validation checkpoint too, so that Table 4 (notebook 05) can
        # score both priors at their final and best checkpoints (#22).
        prior_train=dict(steps=2000, batch_size=64, lr=1e-3, warmup_steps=100, ema_decay=0.99, log_every=50,
                         image_every=250, ckpt_every=250, keep_best=True),
        # t = 0.7 vs 0.8: FID 32.8 vs 33.2 ± 3, not resolved at n = 300 (random split); 0.8 recalled more
        sample=dict(n=64, steps=64, temperature=0.8),
    ),
    "ffhq": _paper("folder", "data/ffhq", lr=1e-4, warmup=30_000, flip=True),
    "churches": _paper("lsun", "data/lsun/church_outdoor_train_lmdb", lr=2e-4, warmup=10_000, flip=True),
    "bedrooms": _paper("lsun", "data/lsun/bedroom_train_lmdb", lr=2e-4, warmup=10_000, flip=True),
}


# The study: everything as in the demo except the priors' training length and validation (see the docstring).
# Its priors are the demo's before #12's rebalance (width 192, 1,000 -> 2,500 steps at lr 7e-4), so the Table 4
# figures measured with it stay reproducible (its executed copy of notebook 05 is regenerated with the demo's, #22).
PROFILES["study"] = merge(PROFILES["demo"], dict(
    prior=dict(n_emb=192, n_head=8),
    prior_train=dict(steps=2500, lr=7e-4, image_every=250, ckpt_every=250, keep_best=True),
    sample=dict(temperature=0.7)))


# The tutorial model (#23): the demo's data split, VQGAN and sampler, trained for over an hour instead of minutes, so
# that a reader sees recognisable emoji at once. Recipe: `make tutorial` (about 1 h 10 min on 2 CPU cores). Its
# prior overfits the 3,146 training emoji: the validation ELBO (EMA weights, every 500 steps) is lowest at step 3,500
# (5.19 bits/token) and rises after (5.20 at 4,000, 5.25 at 4,500), so the recipe stops at 4,500 steps and ships the
# best-validation checkpoint. Its EMA weights ship in fp16 in ulib/assets/pretrained/tutorial/ with their SHA-256
# (ulib/train/pretrained.py), and every notebook takes them through its `pretrained` parameter. Same split as the
# demo (same seeds and fractions), so both are scored on the same never-seen test images.
PROFILES["tutorial"] = merge(PROFILES["demo"], dict(
    vqgan_train=dict(steps=5000, image_every=1000, ckpt_every=500),
    prior=dict(n_emb=192, n_head=8),
    prior_train=dict(steps=4_500, lr=7e-4, warmup_steps=200, ema_decay=0.999, image_every=500, ckpt_every=500,
                     keep_best=True)))


def get_profile(name: str, overrides: list[str] | dict | None = None) -> Config:
    """The Config of profile `name`, with optional `section.key=value` overrides applied.

    Raises ValueError for an unknown profile (listing the allowed ones) or override key.
    """
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; allowed: {sorted(PROFILES)}")
    d = merge(Config().to_dict(), PROFILES[name])
    d["profile"] = name
    cfg = Config.from_dict(d).validate()
    return apply_overrides(cfg, overrides) if overrides else cfg
