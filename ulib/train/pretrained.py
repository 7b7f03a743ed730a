"""Ready-trained models that ship inside the kit (`ulib/assets/pretrained/NAME/`): load if present, else train.

A reader should see recognisable emoji at once, not after an hour of training, so the kit ships one model trained
by a recorded recipe (the `tutorial` profile, `make tutorial`). A pretrained model is a folder of three files:

- `vqgan.pt`, `prior.pt`: the run's checkpoints cut down to what sampling and evaluation need: the EMA weights,
  stored in float16 under "model" (half the bytes; loading casts them back to float32), the config, the step,
  and for the prior the `vqgan_digest` and latents fingerprint of the shipped `vqgan.pt`, so the pairing checks
  of `ulib.trained` and `ulib.train.prior.tokens_changed` hold.
  No optimiser, no discriminator: training resumes from neither (a GAN-phase continuation starts a fresh Adam).
- `MANIFEST.json`: the profile, each file's SHA-256 and size, the step of each model, the command that recreates
  them, what was measured with them, and the data's credit.

`pack_run` makes the folder from a finished run; `install` verifies every file against the manifest and copies
them into a run directory (with its config.json), after which every stage of the kit finds them trained and
reuses them (notebooks: the `pretrained` parameter; command line: `python -m ulib pretrained install`).
float16 is exact enough here: the largest relative rounding error is 2^-11 per weight, and the shipped models'
samples are measured from the float16 files themselves.
"""
from __future__ import annotations

import json
import os
import shutil
from datetime import date
from pathlib import Path

import torch

from ulib.config import Config
from ulib.data.openmoji import RENDERER_VERSION, has_raqm, openmoji_version
from ulib.io.checkpoint import load_checkpoint, save_checkpoint
from ulib.io.files import atomic_write, file_sha256
from ulib.io.rundir import RunDir
from ulib.overrides import apply_overrides
from ulib.profiles import PROFILES, get_profile
from ulib.train.latents import latents_fingerprint

PRETRAINED_DIR = Path(__file__).resolve().parents[1] / "assets" / "pretrained"  # package data: ships with pip
ROOT_ENV = "ULIB_PRETRAINED_DIR"  # another folder of pretrained models (one folder per model), instead of the kit's
MANIFEST = "MANIFEST.json"
FILES = ("vqgan.pt", "prior.pt")  # what every pretrained model holds, beside its manifest
OPENMOJI_CREDIT = ("Trained on images derived from OpenMoji (https://openmoji.org, CC BY-SA 4.0): \"All emojis "
                   "designed by OpenMoji - the open-source emoji and icon project.\"")


# The command that recreates each model the kit ships (recorded in its manifest too).
RECIPES = {"tutorial": "make tutorial  (python -m ulib pipeline --profile tutorial --run runs/tutorial, then "
                       "python -m ulib pretrained pack tutorial --run runs/tutorial)"}


class PretrainedError(ValueError):
    """A pretrained model that is missing, altered, or cannot go into the given run directory."""


def models_folder(root: Path | None = None) -> Path:
    """Where pretrained models are looked for: `root`, else $ULIB_PRETRAINED_DIR, else the kit's own folder."""
    return Path(root or os.environ.get(ROOT_ENV) or PRETRAINED_DIR)


def available(root: Path | None = None) -> list[str]:
    """The names of the pretrained models present (folders with a manifest)."""
    return sorted(p.parent.name for p in models_folder(root).glob(f"*/{MANIFEST}"))


def manifest(name: str, root: Path | None = None) -> dict:
    """The manifest of pretrained model `name`; PretrainedError naming the folder and the models present."""
    root = models_folder(root)
    path = root / name / MANIFEST
    if not path.is_file():
        present = available(root)
        raise PretrainedError(f"no pretrained model {name!r}: {path} does not exist; present in {root}: "
                              f"{', '.join(present) if present else '(none)'}. `make tutorial` trains and packs "
                              f"the tutorial model (about 1 h 10 min on 2 CPU cores)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise PretrainedError(f"{path} is not valid JSON ({e})") from e


def verify(name: str, root: Path | None = None) -> dict:
    """The manifest, after checking that every file it lists is present with its recorded SHA-256 and size;
    PretrainedError naming the file, the expected and the found digest, and the command that recreates it."""
    info = manifest(name, root)
    folder = models_folder(root) / name
    for fname, rec in info["files"].items():
        path = folder / fname
        if not path.is_file():
            raise PretrainedError(f"{path} is missing (listed in {folder / MANIFEST}); recreate the model: "
                                  f"{info.get('recipe', 'make tutorial')}")
        found = file_sha256(path)
        if found != rec["sha256"]:
            raise PretrainedError(f"{path}: sha256 {found} is not the manifest's {rec['sha256']} (an altered or "
                                  f"partly downloaded file); restore it with git, or recreate the model: "
                                  f"{info.get('recipe', 'make tutorial')}")
    return info


def config_of(name: str, root: Path | None = None) -> Config:
    """The config the pretrained model was trained with (profile and all)."""
    return Config.from_dict(manifest(name, root)["config"]).validate()


def _weights_only(state: dict, keep: tuple[str, ...]) -> dict:
    """A checkpoint cut to its EMA weights (else its weights) in float16, plus the fields named in `keep`."""
    weights = state["ema"] if state.get("ema") is not None else state["model"]
    half = {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}
    return {"model": half, "ema": None, **{k: state[k] for k in keep if k in state}}


def data_facts(cfg: Config) -> dict:
    """What the images a model was trained on depend on beyond its config (OpenMoji: the package and renderer
    versions, and whether Pillow shapes emoji sequences with raqm)."""
    if cfg.data.dataset != "openmoji":
        return {"dataset": cfg.data.dataset}
    return {"dataset": "openmoji", "openmoji": openmoji_version(), "renderer": RENDERER_VERSION,
            "sequences": has_raqm()}


def pack_run(run: RunDir, name: str, *, recipe: str, root: Path | None = None, notes: dict | None = None,
             checkpoint: str = "best") -> Path:
    """Write `root/NAME/` from the finished run `run`: its VQGAN and absorbing prior as float16 EMA weights, and the
    manifest. Returns the folder.

    checkpoint: which prior ships: 'best' (the best-validation checkpoint, prior_best.pt, kept when
    prior_train.keep_best is on; the final one where the run has none) or 'final'. The run counts as finished when
    its last checkpoint reached the steps of its config, or of its profile (the recipe) where those are fewer. The
    shipped config says prior_train.steps = the shipped step, so that every stage takes the prior as trained; the
    prior records the digest and latents fingerprint of the packed VQGAN file, so the pair stays a pair."""
    if checkpoint not in ("best", "final"):
        raise PretrainedError(f"checkpoint={checkpoint!r}; allowed: 'best', 'final'")
    vq_state = load_checkpoint(run.vqgan_ckpt, what="VQGAN checkpoint")
    final = load_checkpoint(run.prior_ckpt, what="prior checkpoint")
    cfg = Config.from_dict(final["config"]).validate()
    if cfg.prior.kind != "absorbing":
        raise PretrainedError(f"{run.prior_ckpt} holds a {cfg.prior.kind} prior; a pretrained model ships the "
                              f"absorbing one")
    target = cfg.prior_train.steps  # its own config's steps, or its profile's where fewer (a recipe cut shorter)
    if cfg.profile in PROFILES:
        target = min(target, get_profile(cfg.profile).prior_train.steps)
    if int(final["step"]) < target:
        raise PretrainedError(f"{run.prior_ckpt} is unfinished (step {final['step']} of {target}); finish "
                              f"training before packing it")
    best = run.prior_best_for("absorbing")
    prior_state = load_checkpoint(best) if checkpoint == "best" and best.exists() else final
    step = int(prior_state["step"])
    shipped = apply_overrides(cfg, {"prior_train.steps": step})
    folder = models_folder(root) / name  # made only now: a run that cannot be packed leaves nothing behind
    folder.mkdir(parents=True, exist_ok=True)
    save_checkpoint(folder / "vqgan.pt", {**_weights_only(vq_state, ("step",)), "config": shipped.to_dict(),
                                          "pretrained": name})
    digest = file_sha256(folder / "vqgan.pt")[:16]  # = ulib.trained.vqgan_digest of the shipped file
    save_checkpoint(folder / "prior.pt", {**_weights_only(prior_state, ("best",)), "config": shipped.to_dict(),
                                          "step": step, "vqgan_digest": digest, "pretrained": name,
                                          "latents_fingerprint": latents_fingerprint(shipped, folder / "vqgan.pt")})
    files = {f: {"sha256": file_sha256(folder / f), "bytes": (folder / f).stat().st_size, "step": st}
             for f, st in (("vqgan.pt", int(vq_state["step"])), ("prior.pt", step))}
    info = {"name": name, "profile": cfg.profile, "made": date.today().isoformat(), "torch": torch.__version__,
            "recipe": recipe, "files": files, "weights": "EMA weights in float16",
            "prior": {"shipped": "best validation checkpoint" if prior_state is not final else "final checkpoint",
                      "step": step, "trained_steps": int(final["step"]), "best": prior_state.get("best")},
            "notes": notes or {}, "credit": OPENMOJI_CREDIT, "data": data_facts(cfg), "config": shipped.to_dict()}
    atomic_write(folder / MANIFEST, lambda f: f.write((json.dumps(info, indent=2) + "\n").encode()))
    return folder


def install(name: str, run: RunDir, root: Path | None = None) -> list[str]:
    """Put pretrained model `name` into the run directory `run` (verified first): config.json, vqgan.pt and
    prior.pt. Files the run already holds byte for byte are left alone; returns the names of those copied.

    A run made with another profile, or holding other checkpoints under those names, is a PretrainedError
    (nothing is overwritten: pass a run directory of its own, e.g. runs/tutorial)."""
    info = verify(name, root)
    cfg = Config.from_dict(info["config"]).validate()
    stored = run.stored_config()
    if stored is not None and stored.profile != cfg.profile:
        raise PretrainedError(f"run {run.path} was made with profile {stored.profile!r}; the pretrained model "
                              f"{name!r} is profile {cfg.profile!r}: give it a run directory of its own "
                              f"(e.g. runs/{name})")
    folder = models_folder(root) / name
    for fname in FILES:
        dst = run.path / fname
        if dst.exists() and file_sha256(dst) != info["files"][fname]["sha256"]:
            raise PretrainedError(f"{dst} is not the pretrained {name!r} model's {fname} (another training's "
                                  f"checkpoint); it is left as it is: give the pretrained model a run directory "
                                  f"of its own (e.g. runs/{name}), or move that file away")
    trained_on = load_checkpoint(folder / "prior.pt").get("latents_fingerprint")
    if trained_on is not None and latents_fingerprint(cfg, folder / "vqgan.pt") != trained_on:
        here, there = data_facts(cfg), info.get("data", {})
        differ = ", ".join(f"{k} {there.get(k)!r} there, {v!r} here" for k, v in here.items() if there.get(k) != v)
        raise PretrainedError(f"pretrained model {name!r} was trained on images this machine renders differently "
                              f"({differ or 'the data config differs'}): its prior would not fit the tokens made "
                              f"here. Install the versions it names, or train the profile: python -m ulib pipeline "
                              f"--profile {cfg.profile} --run {run.path}")
    copied = []
    run.path.mkdir(parents=True, exist_ok=True)
    if stored is None:
        run.save_config(cfg)
        copied.append("config.json")
    for fname in FILES:
        dst = run.path / fname
        if not dst.exists():
            tmp = dst.with_name(f".{fname}.{os.getpid()}.tmp")
            shutil.copyfile(folder / fname, tmp)
            os.replace(tmp, dst)
            copied.append(fname)
    return copied


def listing(root: Path | None = None, only: str | None = None) -> str:
    """One paragraph per pretrained model: name, profile, the models' steps and sizes, the recipe."""
    names = [only] if only else available(root)
    if not names:
        return f"no pretrained models in {models_folder(root)}; `make tutorial` trains and packs the tutorial model"
    out = []
    for name in names:
        info = manifest(name, root)
        files = ", ".join(f"{f} (step {r['step']:,}, {r['bytes'] / 2**20:.1f} MiB)" for f, r in info["files"].items())
        out.append(f"{name}: profile {info['profile']}, {info['weights']}: {files}\n  made {info['made']} with "
                   f"torch {info['torch']}; recreate: {info['recipe']}")
    return "\n".join(out)


def describe_install(name: str, run: RunDir, root: Path | None = None) -> str:
    """`install`, said in a line: what was copied where (or that the run already holds the model)."""
    copied = install(name, run, root)
    if not copied:
        return f"pretrained model {name!r}: {run.path} holds it already (verified by SHA-256)"
    return f"pretrained model {name!r} installed in {run.path}: {', '.join(copied)} (verified by SHA-256)"


def command(action: str, name: str = "tutorial", run: str | None = None) -> str:
    """`python -m ulib pretrained ACTION NAME`: 'list' the models, 'install' one in `run` (default runs/NAME), or
    'pack' the finished run `run` into one. Returns what to print."""
    if action == "list":
        return listing()
    if action == "install":
        return describe_install(name, RunDir(run or Path("runs") / name))
    if action != "pack":
        raise ValueError(f"action={action!r}; allowed: list, install, pack")
    if run is None:
        raise ValueError("pretrained pack needs --run DIR, the finished run to pack")
    folder = pack_run(RunDir(run), name, recipe=RECIPES.get(name, f"python -m ulib pretrained pack {name} --run {run}"))
    return listing(folder.parent, only=name)
