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
      .lock                  held by the one command that writes to the run (`RunDir.lock`), naming it

One writer per run: every command that writes into a run directory holds `RunDir.lock` for its whole length,
an exclusive advisory lock (flock) on RUN/.lock that the system drops when the process ends, however it ends;
a second writer stops at once with an error naming the holder (`RunLocked`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import sys
import time
import warnings
from pathlib import Path

from ulib.config import Config
from ulib.io.checkpoint import checkpoint_config
from ulib.io.files import remove_stale_temporaries
from ulib.overrides import apply_overrides, missing_keys
from ulib.profiles import get_profile

try:
    import fcntl  # POSIX advisory locks
except ImportError:  # Windows: no flock; runs there are not locked (said once, below)
    fcntl = None


class RunLocked(ValueError):
    """Another process holds the run directory's lock (its message names that process)."""


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


_HELD: set[str] = set()  # run directories (resolved) this process holds the lock of
HELD_ENV = "ULIB_HELD_RUNS"  # the runs an ancestor process holds, for the processes it starts (os.pathsep-joined)


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
    split_file = property(lambda self: self.path / "split.json")  # names on each side of the data split (OpenMoji)
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

    lock_file = property(lambda self: self.path / ".lock")

    @contextlib.contextmanager
    def lock(self, command: str | None = None):
        """Hold the run's exclusive lock while the block runs; `RunLocked` at once when another process holds it.

        The lock is flock(LOCK_EX | LOCK_NB) on RUN/.lock, so it dies with its process (a killed run never leaves
        a stale lock behind); the file itself only says who holds it: pid, host, command, start time. Under
        torchrun only rank 0 locks (its other processes are the same command). Re-entrant within one process.
        Taking it removes the temporary files that killed writes left in the run and its sub-folders.
        """
        key = str(self.path.resolve())
        inherited = os.environ.get(HELD_ENV, "").split(os.pathsep)
        if fcntl is None or os.environ.get("RANK", "0") != "0" or key in _HELD or key in inherited:
            yield self  # no flock here, torchrun's other ranks, or held by this process or the one that started it
            return
        made = [d for d in (self.path, *self.path.parents) if not d.exists()]  # folders the lock alone creates
        self.path.mkdir(parents=True, exist_ok=True)
        f = open(self.lock_file, "a+")
        try:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                f.seek(0)
                holder = f.read().strip() or "another process (it has not written its name yet)"
                raise RunLocked(f"run {self.path} is in use by {holder}; only one command may write to a run at a "
                                "time: wait for it to finish, or use another --run directory") from None
            f.seek(0)
            f.truncate()
            who = command or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
            f.write(f"pid {os.getpid()} on {socket.gethostname()} ({who}), since "
                    f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            f.flush()
            # what killed writers left: nobody else writes here now, so every temporary of a dead pid is stale
            for folder in [self.path, *(d for d in self.path.iterdir() if d.is_dir())]:
                remove_stale_temporaries(folder, min_age_s=0)
            _HELD.add(key)
            before = os.environ.get(HELD_ENV)
            # processes this one starts (notebook kernels under `reproduce`) write for it: they see the lock as held
            os.environ[HELD_ENV] = os.pathsep.join([*filter(None, inherited), key])
            try:
                yield self
            finally:
                _HELD.discard(key)
                if before is None:
                    os.environ.pop(HELD_ENV, None)
                else:
                    os.environ[HELD_ENV] = before
                f.seek(0)
                f.truncate()  # nobody holds it now
                f.flush()
                if made and [p.name for p in self.path.iterdir()] == [self.lock_file.name]:
                    self.lock_file.unlink()  # a command that wrote nothing leaves no run folder behind it
                    for d in made:
                        with contextlib.suppress(OSError):
                            d.rmdir()
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        finally:
            f.close()

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
        if not isinstance(d, dict):
            raise ValueError(f"{self.config_file} holds a {type(d).__name__}, not a config mapping; fix or delete it")
        missing = missing_keys(d, Config)
        if missing:
            d = self._fill_from_checkpoints(d, missing)
        return Config.from_dict(d).validate()

    def _fill_from_checkpoints(self, d: dict, missing: list[str]) -> dict:
        """config.json without some keys: take each from the checkpoint that was trained with it (the prior's
        settings from the prior's file, the rest from vqgan.pt first), with a warning; a key no checkpoint holds
        takes its default, said too. Never silently a default for a trained model (T = 64 for a T = 16 prior)."""
        files = (self.vqgan_ckpt, self.prior_ckpt, self.prior_ckpt_for("autoregressive"))
        configs = {p.name: checkpoint_config(p) for p in files}
        d = json.loads(json.dumps(d))  # a deep copy
        taken, defaulted = [], []
        for key in missing:
            section = key.split(".", 1)[0]
            order = (["prior.pt", "prior_ar.pt", "vqgan.pt"] if section in ("prior", "prior_train")
                     else ["vqgan.pt", "prior.pt", "prior_ar.pt"])
            for name in order:
                node = configs.get(name)
                for part in key.split("."):
                    node = node.get(part) if isinstance(node, dict) else None
                if node is not None:
                    *parents, last = key.split(".")
                    target = d
                    for part in parents:
                        target = target.setdefault(part, {})
                    target[last] = node
                    taken.append(f"{key}={node!r} from {name}")
                    break
            else:
                defaulted.append(key)
        said = []
        if taken:
            said.append("took " + ", ".join(taken))
        if defaulted:
            said.append("no checkpoint holds " + ", ".join(defaulted) + ", so they take their defaults")
        warnings.warn(f"{self.config_file} lacks {len(missing)} key(s): " + "; ".join(said), stacklevel=3)
        return d

    def trained_config(self, profile: str | None = None, overrides: list[str] | dict | None = None) -> Config | None:
        """The run's stored config with the `--set` overrides, or None when it has none yet. A `profile` other than
        the stored one is an error; stored sampling settings that differ from the profile's today are said."""
        stored = self.stored_config()
        if stored is None:
            return None
        if profile is not None and profile != stored.profile:
            raise ValueError(
                f"run {self.path} was made with profile {stored.profile!r}, not {profile!r}; "
                f"use another --run directory or drop --profile"
            )
        touched = [o for o in (overrides or []) if str(o).split("=", 1)[0].strip().startswith("sample.")]
        note = sample_settings_drift(stored)
        if note and not touched:
            warnings.warn(f"run {self.path}: {note}", stacklevel=3)
        return apply_overrides(stored, overrides) if overrides else stored

    def resolve_config(self, profile: str | None, overrides: list[str] | None = None) -> Config:
        """The config of a command on this run: the stored one if the run has one (`trained_config`), else the
        profile's (default 'demo') for a new run; then the `--set` overrides."""
        cfg = self.trained_config(profile, overrides)
        if cfg is None:
            cfg = get_profile(profile or "demo")
            cfg = apply_overrides(cfg, overrides) if overrides else cfg
        return cfg

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
