"""The run directory: one folder holding a run's config, checkpoints, latents, logs and pictures.

    runs/NAME/
      config.json            the Config every stage of this run uses (written on first use)
      vqgan.pt  prior.pt     checkpoints (model, EMA, optimiser, scaler, step, RNG states, config); a prior
                             records the vqgan.pt whose tokens it was trained on (vqgan_digest)
      prior_ar.pt            the autoregressive baseline's checkpoint, when trained (prior.kind=autoregressive)
      latents.pt             token grids of the dataset, with the fingerprint they were made from
      data_check.json        only with data.skip_bad: the unreadable image files that were left out, and why
      metrics_vqgan.csv  metrics_prior.csv  (metrics_prior_ar.csv)
      reconstructions.png  samples.png
      images/                grids written during training
"""
from __future__ import annotations

import dataclasses
import json
import os
import warnings
from pathlib import Path

from ulib.config import Config, apply_overrides
from ulib.profiles import get_profile


def sample_settings_drift(stored: Config) -> str | None:
    """A sentence when a run's stored sampling settings differ from its profile's current ones, else None.

    A run keeps the config it was made with (that is what its checkpoints were trained under), so a run made
    before a profile changed still samples with the old settings; this says so instead of staying silent.
    """
    try:
        now = get_profile(stored.profile).sample
    except (KeyError, ValueError):
        return None  # a profile this version no longer knows: nothing to compare with
    then = stored.sample
    diff = {f.name: (getattr(then, f.name), getattr(now, f.name)) for f in dataclasses.fields(then)
            if getattr(then, f.name) != getattr(now, f.name)}
    if not diff:
        return None
    stored_s = ", ".join(f"sample.{k}={a}" for k, (a, b) in diff.items())
    profile_s = " ".join(f"sample.{k}={b}" for k, (a, b) in diff.items())
    return (f"its config.json samples with {stored_s} (stored when the run was made); profile "
            f"{stored.profile!r} now says {profile_s.replace(' ', ', ')}. Using the stored values; pass "
            f"--set {profile_s.replace(' ', ' --set ')} to follow the profile")


class RunDir:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    # paths -----------------------------------------------------------------------------------------
    config_file = property(lambda self: self.path / "config.json")
    vqgan_ckpt = property(lambda self: self.path / "vqgan.pt")
    prior_ckpt = property(lambda self: self.path / "prior.pt")
    latents = property(lambda self: self.path / "latents.pt")
    data_check = property(lambda self: self.path / "data_check.json")
    batch_file = property(lambda self: self.path / "batch.json")  # global batch, processes, accumulation per stage
    vqgan_log = property(lambda self: self.path / "metrics_vqgan.csv")
    prior_log = property(lambda self: self.path / "metrics_prior.csv")
    reconstructions = property(lambda self: self.path / "reconstructions.png")
    samples = property(lambda self: self.path / "samples.png")
    images = property(lambda self: self.path / "images")

    def prior_ckpt_for(self, kind: str) -> Path:
        """The checkpoint of the run's absorbing prior (prior.pt) or AR baseline (prior_ar.pt)."""
        return self.prior_ckpt if kind == "absorbing" else self.path / "prior_ar.pt"

    def prior_best_for(self, kind: str) -> Path:
        """The checkpoint at the best validation score so far (prior_best.pt, prior_ar_best.pt), written when
        prior_train.keep_best is on."""
        return self.prior_ckpt_for(kind).with_name(self.prior_ckpt_for(kind).stem + "_best.pt")

    def prior_log_for(self, kind: str) -> Path:
        return self.prior_log if kind == "absorbing" else self.path / "metrics_prior_ar.csv"

    def make(self) -> "RunDir":
        self.images.mkdir(parents=True, exist_ok=True)
        return self

    # config ----------------------------------------------------------------------------------------
    def stored_config(self) -> Config | None:
        if not self.config_file.exists():
            return None
        try:
            d = json.loads(self.config_file.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"{self.config_file} is not valid JSON ({e}); fix or delete it")
        return Config.from_dict(d).validate()

    def resolve_config(self, profile: str | None, overrides: list[str] | None = None) -> Config:
        """The run's stored config if it has one (a different --profile is an error), else the profile's
        (default 'demo'); then the `--set` overrides."""
        stored = self.stored_config()
        if stored is not None:
            if profile is not None and profile != stored.profile:
                raise ValueError(
                    f"run {self.path} was made with profile {stored.profile!r}, not {profile!r}; "
                    f"use another --run directory or drop --profile"
                )
            cfg = stored
            touched = [o for o in (overrides or []) if str(o).split("=", 1)[0].strip().startswith("sample.")]
            note = sample_settings_drift(stored)
            if note and not touched:
                warnings.warn(f"run {self.path}: {note}", stacklevel=2)
        else:
            cfg = get_profile(profile or "demo")
        return apply_overrides(cfg, overrides) if overrides else cfg

    def save_config(self, cfg: Config) -> None:
        """Write config.json. `prior.kind` only chooses which of the run's priors a command trains or uses
        (both share the other settings), so the stored kind stays what it was."""
        stored = self.stored_config()
        if stored is not None and stored.prior.kind != cfg.prior.kind:
            cfg = apply_overrides(cfg, {"prior.kind": stored.prior.kind})
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.config_file.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
        os.replace(tmp, self.config_file)
