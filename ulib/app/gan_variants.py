"""The VQGAN's GAN phase under Table 5's four settings (notebooks 02 and 13): continuations of the run's trained
VQGAN with the discriminator switched on, each in a child run."""
from __future__ import annotations

from ulib.app.session import Session, ensure_vqgan, train_or_reuse
from ulib.config import Config
from ulib.io.rundir import RunDir
from ulib.overrides import apply_overrides
from ulib.train.vqgan import start_continuation, train_vqgan

# ---- Table 5: the VQGAN's GAN phase under four settings ------------------------------------------------
# The paper's four VQGANs differ only in the GAN term of Eq. 9: "default" is taming's recipe (the adaptive
# weight of Eq. 9c clamped only at 1e4, no augmentation), then lambda_max = 1, DiffAug, and both. The GAN
# term starts after a reconstruction-only phase (the paper's disc_start_step = 30,001), so the variants
# share that phase: each continues the run's trained VQGAN with the discriminator switched on.
TAMING_DISC_WEIGHT_MAX = 1e4  # taming-transformers' clamp of the adaptive weight (its "default")


VQGAN_VARIANTS = {  # name: (vqgan.disc_weight_max, vqgan.diff_aug), as in Table 5's rows
    "default": (TAMING_DISC_WEIGHT_MAX, False),
    "lambda_max=1": (1.0, False),
    "DiffAug": (TAMING_DISC_WEIGHT_MAX, True),
    "both": (1.0, True),
}


GAN_PHASE_STEPS = {"smoke": 4, "demo": 100, "study": 400, "tutorial": 100}  # any other profile: 20,000 (GPU)


GAN_PHASE_LR = {"demo": 1e-4, "study": 1e-4, "tutorial": 1e-4}  # any other profile: its own vqgan_train.lr


def gan_phase(cfg: Config, steps: int = 0, lr: float = 0.0) -> tuple[int, float]:
    """(steps, lr) of a GAN-phase continuation of the run's VQGAN (notebooks 02 and 13): the given values, or
    where 0 the profile's (smoke 4, demo and study 100 and 400 steps at lr 1e-4, else 20,000 at the profile's lr).
    The demo's VQGAN trains fast at lr 1e-3; a GAN phase at that rate made its L1 rise from 0.09 to 0.46-0.78
    within 250 steps, so demo and study continue ten times lower."""
    if steps < 0 or lr < 0:
        raise ValueError(f"gan_phase(steps={steps}, lr={lr}); both must be >= 0 (0: by profile)")
    return (steps or GAN_PHASE_STEPS.get(cfg.profile, 20_000),
            lr or GAN_PHASE_LR.get(cfg.profile, cfg.vqgan_train.lr))


def vqgan_variant_configs(cfg: Config, gan_steps: int, with_control: bool = True,
                          lr: float | None = None) -> dict[str, Config]:
    """{variant: config} for Table 5: each continues cfg's trained VQGAN (cfg.vqgan_train.steps) for
    gan_steps more steps with the GAN on from the first of them. with_control adds "no GAN": the same extra
    steps without the discriminator, so that "what the GAN phase changed" is measured against more training
    alone. lr: the learning rate of the continuation (both players; every variant and the control); None
    keeps cfg's."""
    if gan_steps < 1:
        raise ValueError(f"gan_steps={gan_steps}; must be >= 1")
    if lr is not None and not lr > 0:
        raise ValueError(f"lr={lr}; must be > 0")
    base = cfg.vqgan_train.steps
    common = {"vqgan_train.steps": base + gan_steps, **({"vqgan_train.lr": lr} if lr is not None else {})}
    out = {}
    for name, (weight_max, diff_aug) in VQGAN_VARIANTS.items():
        out[name] = apply_overrides(cfg, {**common, "vqgan.disc_start_step": base,
                                          "vqgan.disc_weight_max": weight_max, "vqgan.diff_aug": diff_aug})
    if with_control:
        out["no GAN"] = apply_overrides(cfg, {**common, "vqgan.disc_start_step": 1_000_000_000})
    return out


def train_child_vqgan(s: Session, name: str, cfg: Config, show_progress: bool = False) -> RunDir:
    """Continue the run's trained VQGAN in the child run RUN/name with `cfg` (load if present, else train):
    the parent's vqgan.pt is set up once for the continuation (`ulib.train.vqgan.start_continuation`: its EMA
    restarted from the raw weights, a fresh discriminator and the random streams drawn from cfg.seed, so cfg.seed
    is the continuation's seed) and resumed to cfg.vqgan_train.steps. A child trained with another config starts
    again from the parent's checkpoint; an interrupted one is resumed."""
    ensure_vqgan(s)
    child = RunDir(s.run.path / name)
    child.path.mkdir(parents=True, exist_ok=True)
    stored = child.stored_config()
    if not child.vqgan_ckpt.exists() or (stored is not None and stored.to_dict() != cfg.to_dict()):
        start_continuation(s.run.vqgan_ckpt, child.vqgan_ckpt, cfg)
        child.vqgan_log.unlink(missing_ok=True)  # a continuation made with another config: its log goes too
    train_or_reuse(f"VQGAN in {name}", lambda: train_vqgan(child, cfg, resume=True, show_progress=show_progress))
    return child
