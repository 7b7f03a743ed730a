"""Bad inputs, command by command (#21 item 6): each ends in one `error:` line that names the input, the value
given and what is allowed, with exit status 2, no traceback, and no file written or changed.

Every row runs `ulib.app.cli.main(argv)` in-process against its own copy of a tiny trained run (VQGAN, latents
and prior trained 2 steps each at the smoke sizes), from inside a scratch folder, and compares a snapshot of
that folder (names, sizes, mtimes, SHA-256) before and after. argparse's own errors (exit 2, `usage:` then
`... error: argument --flag: ...`) count when they name the flag.

The heavy work of some commands (the bench, gpu-check's phases, executing notebooks, training the feature
network) is replaced by a stand-in that raises `Reached`: the checks must come before it starts.
"""
import hashlib
import json
import os
import shutil
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from ulib.app import cli, commands, flags
from ulib.sample import registry

from helpers import OWN_STEPS_METHOD, TINY, tiny_trained_run

pytestmark = pytest.mark.slow

BIG_SEED = str(2**64)  # one past the largest seed torch.Generator.manual_seed takes
SMOKE = ["--profile", "smoke", *[a for s in TINY for a in ("--set", s)]]  # a new tiny run ({new})
EVAL = ["--run", "{run}", "--features", "openmoji", "--samples", "8"]  # 8 samples (PRDC, k=5), OpenMoji features


def sets(*overrides):
    return [a for s in overrides for a in ("--set", s)]


# (command, argv after the command, substrings the error must hold). Placeholders: {run} a copy of the tiny
# trained run, {new} a run folder that does not exist yet, {tmp} the scratch folder, {img} {mask} two images,
# {real} {fake} two folders of 12 images each.
ROWS = [
    # ---- train-vqgan: a new run; the checks come before config.json is written -------------------------------
    ("train-vqgan", ["--run", "{new}", *SMOKE, *sets("vqgan_train.log_every=0")], ["vqgan_train.log_every=0", ">= 1"]),
    ("train-vqgan", ["--run", "{new}", *SMOKE, *sets("vqgan_train.ckpt_every=0")],
     ["vqgan_train.ckpt_every=0", ">= 1"]),
    ("train-vqgan", ["--run", "{new}", *SMOKE, *sets("vqgan_train.image_every=0")],
     ["vqgan_train.image_every=0", ">= 1"]),
    ("train-vqgan", ["--run", "{new}", *SMOKE, *sets("vqgan_train.lr=nan")], ["vqgan_train.lr=nan", "> 0"]),
    ("train-vqgan", ["--run", "{new}", *SMOKE, *sets("vqgan_train.lr=inf")], ["vqgan_train.lr=inf", "> 0"]),
    ("train-vqgan", ["--run", "{new}", *SMOKE, *sets("vqgan_train.grad_clip=-1")],
     ["vqgan_train.grad_clip=-1", ">= 0"]),
    ("train-vqgan", ["--run", "{new}", *SMOKE, *sets("vqgan_train.batch_size=0")],
     ["vqgan_train.batch_size=0", ">= 1"]),
    ("train-vqgan", ["--run", "{new}", *SMOKE, *sets("vqgan_train.beta1=1")], ["vqgan_train.beta1=1", "< 1"]),
    ("train-vqgan", ["--run", "{new}", *SMOKE, *sets("vqgan_train.warmup_steps=-5")],
     ["vqgan_train.warmup_steps=-5", ">= 0"]),
    ("train-vqgan", ["--run", "{new}", *SMOKE, *sets("vqgan_train.num_workers=-1")],
     ["vqgan_train.num_workers=-1", ">= 0"]),
    ("train-vqgan", ["--run", "{new}", *SMOKE, *sets("vqgan.codebook_size=0")], ["vqgan.codebook_size=0", ">= 1"]),
    ("train-vqgan", ["--run", "{new}", *SMOKE, *sets("vqgan.beta=-1")], ["vqgan.beta=-1", ">= 0"]),
    ("train-vqgan", ["--run", "{new}", *SMOKE, *sets("vqgan.beta=nan")], ["vqgan.beta=nan", ">= 0"]),
    ("train-vqgan", ["--run", "{new}", *SMOKE, *sets("vqgan.nf=0")], ["vqgan.nf=0", ">= 1"]),
    ("train-vqgan", ["--run", "{new}", *SMOKE, *sets("vqgan.norm_groups=0")], ["vqgan.norm_groups=0", ">= 1"]),
    ("train-vqgan", ["--run", "{new}", *SMOKE, *sets("vqgan.norm_groups=64")], ["vqgan.norm_groups=64", "divide"]),
    ("train-vqgan", ["--run", "{new}", *SMOKE, *sets("vqgan.n_channels=1")], ["vqgan.n_channels=1", "3"]),
    ("train-vqgan", ["--run", "{new}", *SMOKE, *sets("vqgan.ch_mult=0,2")], ["vqgan.ch_mult=(0, 2)", ">= 1"]),
    ("train-vqgan", ["--run", "{new}", *SMOKE, *sets("vqgan.res_blocks=0")], ["vqgan.res_blocks=0", ">= 1"]),
    ("train-vqgan", ["--run", "{new}", *SMOKE, *sets("vqgan.emb_dim=0")], ["vqgan.emb_dim=0", ">= 1"]),
    ("train-vqgan", ["--run", "{new}", *SMOKE, *sets("vqgan.disc_layers=0")], ["vqgan.disc_layers=0", ">= 1"]),
    ("train-vqgan", ["--run", "{new}", *SMOKE, *sets("vqgan.disc_weight_max=nan")],
     ["vqgan.disc_weight_max=nan", ">= 0"]),
    ("train-vqgan", ["--run", "{new}", *SMOKE, *sets("vqgan.perceptual_weight=nan")],
     ["vqgan.perceptual_weight=nan", ">= 0"]),
    ("train-vqgan", ["--run", "{new}", *SMOKE, *sets("vqgan.code_restart_every=-1")],
     ["vqgan.code_restart_every=-1", ">= 0"]),
    ("train-vqgan", ["--run", "{new}", *SMOKE, *sets("vqgan.disc_start_step=-1")],
     ["vqgan.disc_start_step=-1", ">= 0"]),
    ("train-vqgan", ["--run", "{new}", *SMOKE, *sets("data.img_size=0")], ["data.img_size=0", "positive multiple"]),
    ("train-vqgan", ["--run", "{new}", *SMOKE, *sets("data.split_seed=-1")], ["data.split_seed=-1", "0..2**32-1"]),
    ("train-vqgan", ["--run", "{new}", *SMOKE, *sets(f"seed={BIG_SEED}")], [f"seed={BIG_SEED}", "0..2**32-1"]),
    ("train-vqgan", ["--run", "{new}", *SMOKE, *sets("device=banana")], ["device='banana'", "'cpu'"]),
    ("train-vqgan", ["--run", "{new}", *SMOKE, "--stop-at", "0"], ["--stop-at=0", ">= 1"]),
    ("train-vqgan", ["--run", "{new}", *SMOKE, "--stop-at", "-1"], ["--stop-at=-1", ">= 1"]),
    ("train-vqgan", ["--run", "{run}/config.json", *SMOKE], ["--run", "config.json", "not a folder"]),
    ("train-vqgan", ["--run", "{new}", *SMOKE, "--data", "{tmp}/missing"], ["--data", "missing", "does not exist"]),
    ("train-vqgan", ["--run", "{new}", "--profile", "nonsense"], ["--profile", "invalid choice"]),
    # ---- encode ------------------------------------------------------------------------------------------------
    ("encode", ["--run", "{run}", "--force", *sets("data.val_fraction=1.5")], ["data.val_fraction=1.5", "< 1"]),
    ("encode", ["--run", "{run}", "--force", *sets("device=banana")], ["device='banana'", "'cpu'"]),
    ("encode", ["--run", "{run}", "--force", *sets("device=cuda:99")], ["device='cuda:99'", "'cpu'"]),
    ("encode", ["--run", "{run}", "--force", "--data", "{tmp}/missing"], ["--data", "does not exist"]),
    ("encode", ["--run", "{tmp}/missing", "--force"], ["vqgan.pt", "train-vqgan"]),
    ("encode", ["--run", "{run}/config.json"], ["--run", "not a folder"]),
    # ---- train-prior: --force, so that a finished prior does not answer "nothing to do" ----------------------
    ("train-prior", ["--run", "{run}", "--force", *sets("prior_train.log_every=0")],
     ["prior_train.log_every=0", ">= 1"]),
    ("train-prior", ["--run", "{run}", "--force", *sets("prior_train.image_every=0")],
     ["prior_train.image_every=0", ">= 1"]),
    ("train-prior", ["--run", "{run}", "--force", *sets("prior_train.ckpt_every=0")],
     ["prior_train.ckpt_every=0", ">= 1"]),
    ("train-prior", ["--run", "{run}", "--force", *sets("prior.n_head=0")], ["prior.n_head=0", ">= 1"]),
    ("train-prior", ["--run", "{run}", "--force", *sets("prior.n_head=-1")], ["prior.n_head=-1", ">= 1"]),
    ("train-prior", ["--run", "{run}", "--force", *sets("prior.n_layers=0")], ["prior.n_layers=0", ">= 1"]),
    ("train-prior", ["--run", "{run}", "--force", *sets("prior.n_emb=0")], ["prior.n_emb=0", ">= 1"]),
    ("train-prior", ["--run", "{run}", "--force", *sets("prior.dropout=1")], ["prior.dropout=1", "< 1"]),
    ("train-prior", ["--run", "{run}", "--force", *sets("prior.dropout=nan")], ["prior.dropout=nan", "< 1"]),
    ("train-prior", ["--run", "{run}", "--force", *sets("prior_train.lr=inf")], ["prior_train.lr=inf", "> 0"]),
    ("train-prior", ["--run", "{run}", "--force", *sets("prior_train.lr=nan")], ["prior_train.lr=nan", "> 0"]),
    ("train-prior", ["--run", "{run}", "--force", *sets("prior_train.grad_clip=-1")],
     ["prior_train.grad_clip=-1", ">= 0"]),
    ("train-prior", ["--run", "{run}", "--force", *sets("prior_train.grad_clip=nan")],
     ["prior_train.grad_clip=nan", ">= 0"]),
    ("train-prior", ["--run", "{run}", "--force", *sets("prior_train.weight_decay=nan")],
     ["prior_train.weight_decay=nan", ">= 0"]),
    ("train-prior", ["--run", "{run}", "--force", *sets("prior_train.beta2=nan")], ["prior_train.beta2=nan", "< 1"]),
    ("train-prior", ["--run", "{run}", "--force", *sets("prior_train.ema_decay=nan")],
     ["prior_train.ema_decay=nan", "< 1"]),
    ("train-prior", ["--run", "{run}", "--force", *sets("prior_train.steps=-1")], ["prior_train.steps=-1", ">= 0"]),
    ("train-prior", ["--run", "{run}", "--force", *sets("prior.total_steps=0")], ["prior.total_steps=0", ">= 1"]),
    ("train-prior", ["--run", "{run}", "--force", "--stop-at", "0"], ["--stop-at=0", ">= 1"]),
    # ---- sample --------------------------------------------------------------------------------------------------
    ("sample", ["--run", "{run}", "--n", "0"], ["--n=0", ">= 1"]),
    ("sample", ["--run", "{run}", "--n", "-5"], ["--n=-5", ">= 1"]),
    ("sample", ["--run", "{run}", "--n", "5000"], ["--n=5000", "1024", "--npz"]),
    ("sample", ["--run", "{run}", "--n", "4", "--batch-size", "0"], ["--batch-size=0", ">= 1"]),
    ("sample", ["--run", "{run}", "--n", "2", "--npz", "{tmp}/s.txt"], ["--npz", ".npz"]),
    ("sample", ["--run", "{run}", "--n", "2", "--steps", "0"], ["--steps=0", "1..T=16"]),
    ("sample", ["--run", "{run}", "--n", "2", "--steps", "1000"], ["--steps=1000", "1..T=16"]),
    ("sample", ["--run", "{run}", "--n", "2", "--temperature", "0"], ["--temperature=0", "> 0"]),
    ("sample", ["--run", "{run}", "--n", "2", "--temperature", "nan"], ["--temperature=nan", "> 0"]),
    ("sample", ["--run", "{run}", "--n", "2", "--temperature", "inf"], ["--temperature=inf", "> 0"]),
    ("sample", ["--run", "{run}", "--n", "2", "--canvas", "0x5"], ["--canvas", "0x5", ">= 8"]),
    ("sample", ["--run", "{run}", "--n", "2", "--canvas", "5"], ["--canvas='5'", "HxW"]),
    ("sample", ["--run", "{run}", "--n", "2", "--canvas", "10x10", "--stride", "0"], ["--stride=0", "1..8"]),
    ("sample", ["--run", "{run}", "--n", "2", "--stride", "-1"], ["--stride=-1", "1.."]),
    ("sample", ["--run", "{run}", "--n", "2", "--top-k", "0"], ["--top-k=0", ">= 1"]),
    ("sample", ["--run", "{run}", "--n", "2", "--top-k", "5"], ["--top-k", "autoregressive"]),
    ("sample", ["--run", "{run}", "--n", "2", "--seed", BIG_SEED], [f"--seed={BIG_SEED}", "2**63"]),
    ("sample", ["--run", "{run}", "--n", "2", "--device", "banana"], ["device='banana'", "'cpu'"]),
    ("sample", ["--run", "{run}", "--n", "2", "--device", "cuda:99"], ["device='cuda:99'", "'cpu'"]),
    ("sample", ["--run", "{run}", "--n", "2", "--png", "{tmp}/s.jpg"], ["--png", ".png"]),
    ("sample", ["--run", "{run}", "--n", "2", "--png", "{run}/images"], ["--png", "folder"]),
    ("sample", ["--run", "{run}", "--n", "2", "--png", "{run}/config.json/s.png"], ["--png", "not a folder"]),
    ("sample", ["--run", "{run}", *sets("sample.temperature=inf")], ["sample.temperature=inf", "> 0"]),
    ("sample", ["--run", "{run}", *sets("sample.n=0")], ["sample.n=0", ">= 1"]),
    ("sample", ["--run", "{run}", *sets("sample.n=5000")], ["sample.n", "5000", "1024", "--npz"]),
    ("sample", ["--run", "{run}", "--n", "two"], ["argument --n", "invalid int value"]),
    ("sample", ["--run", "{run}", "--method", "best"], ["argument --method", "invalid choice"]),
    ("sample", ["--official-vqgan", "{tmp}/v.th"], ["--official-vqgan", "--official-sampler"]),
    ("sample", ["--run", "{tmp}/no_run", "--n", "2"], ["no_run/config.json not found", "not a trained run"]),
    ("sample", ["--run", "{run}", "--profile", "demo", "--n", "2"], ["made with profile 'smoke'", "drop --profile"]),
    # ---- sample --method NAME --option KEY=VALUE (#25): checked before the models load ----------------------------
    ("sample", ["--run", "{run}", "--n", "2", "--method", "speculative"],
     ["--method speculative samples the run's AR prior", "prior_ar.pt is missing", "--set prior.kind=autoregressive"]),
    ("sample", ["--run", "{run}", "--n", "2", "--method", "speculative", "--option", "draft=x"],
     ["--option draft=x", "takes draft from its inputs", "allowed: block (int, default 4)"]),
    ("sample", ["--run", "{run}", "--n", "2", "--method", "speculative", "--option", "top_k=3"],
     ["--option top_k=3", "--top-k"]),
    ("sample", ["--official-vqgan", "{tmp}/v.th", "--official-sampler", "{tmp}/s.th", "--method", "speculative"],
     ["--method speculative needs a run holding both priors", "--run DIR"]),
    ("sample", ["--run", "{run}", "--n", "2", "--method", "eb", "--option", "gama=1"],
     ["--option gama=1", "--method eb has no setting 'gama'", "allowed: gamma (float, default 1.0)"]),
    ("sample", ["--run", "{run}", "--n", "2", "--method", "eb", "--option", "gamma=abc"],
     ["--option gamma: expected a float, got 'abc'", "--method eb", "gamma (float, default 1.0)"]),
    ("sample", ["--run", "{run}", "--n", "2", "--method", "eb", "--option", "gamma=-1"],
     ["--option gamma=-1.0", ">= 0", "--method eb"]),
    ("sample", ["--run", "{run}", "--n", "2", "--method", "halton", "--option", "shift=maybe"],
     ["--option shift: expected a bool", "'maybe'", "--method halton", "shift (bool, default True)"]),
    ("sample", ["--run", "{run}", "--n", "2", "--method", "confidence", "--option", "schedule=square"],
     ["--option schedule='square'", "('cosine', 'linear')", "--method confidence"]),
    ("sample", ["--run", "{run}", "--n", "2", "--method", "remask", "--option", "shift=true"],
     ["--option shift=true", "--method remask has no setting 'shift'", "allowed: none"]),
    ("sample", ["--run", "{run}", "--n", "2", "--option", "skip_empty_steps"],
     ["--option 'skip_empty_steps'", "KEY=VALUE", "--method random", "skip_empty_steps (bool, default True)"]),
    ("sample", ["--run", "{run}", "--n", "2", "--method", "eb", "--steps", "0"],
     ["--steps=0", "method='eb'", "an integer >= 1 (a cap on the network calls per image"]),
    ("sample", ["--run", "{run}", "--n", "2", "--method", "halton", "--steps", "17"], ["--steps=17", "1..T=16"]),
    # ---- inpaint -------------------------------------------------------------------------------------------------
    ("inpaint", ["--run", "{run}", "--image", "{img}", "--mask", "{mask}", "--dilate", "-1"], ["--dilate=-1", ">= 0"]),
    ("inpaint", ["--run", "{run}", "--image", "{img}", "--mask", "{mask}", "--steps", "0"], ["--steps=0", "1..T=16"]),
    ("inpaint", ["--run", "{run}", "--image", "{img}", "--mask", "{mask}", "--temperature", "nan"],
     ["--temperature=nan", "> 0"]),
    ("inpaint", ["--run", "{run}", "--image", "{img}", "--mask", "{mask}", "--temperature", "inf"],
     ["--temperature=inf", "> 0"]),
    ("inpaint", ["--run", "{run}", "--image", "{tmp}/missing.png", "--mask", "{mask}"], ["--image", "does not exist"]),
    ("inpaint", ["--run", "{run}", "--image", "{img}", "--mask", "{tmp}/missing.png"], ["--mask", "does not exist"]),
    ("inpaint", ["--run", "{run}", "--image", "{img}", "--mask", "{mask}", "--png", "{tmp}/out.jpg"],
     ["--png", ".png"]),
    ("inpaint", ["--run", "{run}", "--image", "{img}", "--mask", "{mask}", "--png", "{run}"], ["--png", "folder"]),
    ("inpaint", ["--run", "{run}", "--image", "{img}", "--mask", "{mask}", "--seed", BIG_SEED],
     [f"--seed={BIG_SEED}", "2**63"]),
    ("inpaint", ["--run", "{run}", "--image", "{img}", "--mask", "{mask}", "--device", "banana"],
     ["device='banana'", "'cpu'"]),
    # ---- elbo ----------------------------------------------------------------------------------------------------
    ("elbo", ["--run", "{run}", "--mc", "0"], ["--mc=0", ">= 1"]),
    ("elbo", ["--run", "{run}", "--mc", "-1"], ["--mc=-1", ">= 1"]),
    ("elbo", ["--run", "{run}", "--batch-size", "0"], ["--batch-size=0", ">= 1"]),
    ("elbo", ["--run", "{run}", "--batch-size", "-4"], ["--batch-size=-4", ">= 1"]),
    ("elbo", ["--run", "{run}", "--max-items", "0"], ["--max-items=0", ">= 1"]),
    ("elbo", ["--run", "{run}", "--max-items", "-1"], ["--max-items=-1", ">= 1"]),
    ("elbo", ["--run", "{run}", "--seed", BIG_SEED], [f"--seed={BIG_SEED}", "2**63"]),
    ("elbo", ["--run", "{run}", *sets("device=banana")], ["device='banana'", "'cpu'"]),
    ("elbo", ["--run", "{run}", *sets("prior.n_head=0")], ["prior.n_head=0", ">= 1"]),
    # ---- bench ---------------------------------------------------------------------------------------------------
    ("bench", ["--quick", "--only", "nonsense"], ["--only nonsense", "allowed"]),
    ("bench", ["--quick", "--only"], ["argument --only", "expected at least one argument"]),
    ("bench", ["--quick", "--device", "banana"], ["device='banana'", "'cpu'"]),
    ("bench", ["--quick", "--device", "cuda:99"], ["device='cuda:99'", "'cpu'"]),
    ("bench", ["--quick", "--json", "{run}"], ["--json", "folder"]),
    ("bench", ["--quick", "--json", "{run}/config.json/b.json"], ["--json", "not a folder"]),
    ("bench", ["--quick", "--spec-run", "{run}"], ["--spec-run", "add --only speculative"]),
    # ---- gpu-check -----------------------------------------------------------------------------------------------
    ("gpu-check", ["--tiny", "--device", "banana"], ["device='banana'", "'cpu'"]),
    ("gpu-check", ["--tiny", "--device", "cuda:99"], ["device='cuda:99'", "'cpu'"]),
    ("gpu-check", ["--tiny", "--json", "{run}"], ["--json", "folder"]),
    ("gpu-check", ["--tiny", "--json", "{run}/config.json/g.json"], ["--json", "not a folder"]),
    ("gpu-check", ["--tiny", "--workdir", "{run}/config.json"], ["--workdir", "not a folder"]),
    # ---- pipeline ------------------------------------------------------------------------------------------------
    ("pipeline", ["--run", "{new}", *SMOKE, *sets("prior_train.log_every=0")], ["prior_train.log_every=0", ">= 1"]),
    ("pipeline", ["--run", "{new}", *SMOKE, *sets("vqgan_train.ckpt_every=0")], ["vqgan_train.ckpt_every=0", ">= 1"]),
    ("pipeline", ["--run", "{new}", *SMOKE, *sets("prior.n_head=0")], ["prior.n_head=0", ">= 1"]),
    ("pipeline", ["--run", "{new}", *SMOKE, *sets("sample.temperature=inf")], ["sample.temperature=inf", "> 0"]),
    ("pipeline", ["--run", "{new}", *SMOKE, *sets("sample.n=0")], ["sample.n=0", ">= 1"]),
    ("pipeline", ["--run", "{new}", *SMOKE, *sets("sample.n=5000")], ["sample.n=5000", "1024"]),
    ("pipeline", ["--run", "{new}", *SMOKE, "--data", "{tmp}/missing"], ["--data", "does not exist"]),
    ("pipeline", ["--run", "{run}/config.json"], ["--run", "not a folder"]),
    # ---- evaluate (OpenMoji features: shipped, so nothing is missing but the input) ------------------------------
    ("evaluate", ["--run", "{run}", "--features", "openmoji", "--samples", "0"], ["--samples=0", ">= 1"]),
    ("evaluate", [*EVAL, "--steps", "0"], ["--steps=0", "1..T=16"]),
    ("evaluate", [*EVAL, "--steps", "1000"], ["--steps=1000", "1..T=16"]),
    ("evaluate", [*EVAL, "--temperature", "0"], ["--temperature=0", "> 0"]),
    ("evaluate", [*EVAL, "--temperature", "nan"], ["--temperature=nan", "> 0"]),
    ("evaluate", [*EVAL, "--temperature", "inf"], ["--temperature=inf", "> 0"]),
    ("evaluate", [*EVAL, "--batch-size", "0"], ["--batch-size=0", ">= 1"]),
    ("evaluate", [*EVAL, "--prdc-k", "0"], ["--prdc-k=0", ">= 1"]),
    ("evaluate", [*EVAL, "--neighbours", "-1"], ["--neighbours=-1", ">= 0"]),
    ("evaluate", [*EVAL, "--max-reference", "0"], ["--max-reference=0", ">= 1"]),
    ("evaluate", [*EVAL, "--max-reference", "many"], ["argument --max-reference", "'all'"]),
    ("evaluate", [*EVAL, "--seed", BIG_SEED], [f"--seed={BIG_SEED}", "2**63"]),
    ("evaluate", [*EVAL, "--device", "banana"], ["device='banana'", "'cpu'"]),
    ("evaluate", [*EVAL, *sets("sample.temperature=nan")], ["sample.temperature=nan", "> 0"]),
    ("evaluate", ["--run", "{tmp}/missing", "--features", "openmoji"], ["config.json", "does not exist"]),
    ("evaluate", ["--run", "{run}", "--features", "openmoji", "--samples", "6"], ["--samples=6", "at least 7"]),
    # ---- compare ---------------------------------------------------------------------------------------------------
    ("compare", ["{real}", "{fake}", "--bootstrap", "-1"], ["--bootstrap=-1", ">= 0"]),
    ("compare", ["{real}", "{fake}", "--prdc-k", "0"], ["--prdc-k=0", ">= 1"]),
    ("compare", ["{real}", "{fake}", "--prdc-k", "-1"], ["--prdc-k=-1", ">= 1"]),
    ("compare", ["{real}", "{fake}", "--limit", "0"], ["--limit=0", ">= 1"]),
    ("compare", ["{real}", "{fake}", "--limit", "-1"], ["--limit=-1", ">= 1"]),
    ("compare", ["{real}", "{fake}", "--seed", BIG_SEED], [f"--seed={BIG_SEED}", "2**63"]),
    ("compare", ["{real}", "{fake}", "--device", "banana"], ["device='banana'", "'cpu'"]),
    ("compare", ["{real}", "{fake}", "--json", "{run}"], ["--json", "folder"]),
    ("compare", ["{real}", "{fake}", "--json", "{run}/config.json/c.json"], ["--json", "not a folder"]),
    ("compare", ["{real}", "{fake}", "--bootstrap", "ten"], ["argument --bootstrap", "invalid int value"]),
    ("compare", ["{real}", "{fake}", "--prdc-k", "11"], ["12 images", "k=11", "at least 13"]),
    # ---- train-features --------------------------------------------------------------------------------------------
    ("train-features", ["--out", "{tmp}/f.pt", "--epochs", "0"], ["--epochs=0", ">= 1"]),
    ("train-features", ["--out", "{tmp}/f.pt", "--epochs", "-1"], ["--epochs=-1", ">= 1"]),
    ("train-features", ["--out", "{tmp}/f.pt", "--limit", "-1"], ["--limit=-1", ">= 0"]),
    ("train-features", ["--out", "{run}"], ["--out", "folder"]),
    ("train-features", ["--out", "{run}/config.json/f.pt"], ["--out", "not a folder"]),
    # ---- pretrained ------------------------------------------------------------------------------------------------
    ("pretrained", ["install", "nope", "--run", "{new}"], ["no pretrained model 'nope'", "present in"]),
    ("pretrained", ["install", "tutorial", "--run", "{run}"], ["made with profile", "'tutorial'"]),
    ("pretrained", ["install", "tutorial", "--run", "{run}/config.json"], ["--run", "not a folder"]),
    ("pretrained", ["pack", "tutorial"], ["pack needs --run DIR"]),
    ("pretrained", ["pack", "tutorial", "--run", "{new}"], ["VQGAN checkpoint", "does not exist"]),
    # ---- reproduce -------------------------------------------------------------------------------------------------
    ("reproduce", ["--profile", "smoke", "--only", "99"], ["--only", "no such notebook"]),
    ("reproduce", [], ["--profile is required", "smoke"]),
    ("reproduce", ["--profile", "smoke", *sets("prior.n_head=0")], ["prior.n_head=0", ">= 1"]),
    ("reproduce", ["--profile", "smoke", *sets("prior.nheads=2")], ["prior.nheads", "allowed"]),
    ("reproduce", ["--profile", "smoke", "--device", "banana"], ["device='banana'", "'cpu'"]),
    ("reproduce", ["--profile", "smoke", "--seed", BIG_SEED], [f"--seed={BIG_SEED}", "2**63"]),
    ("reproduce", ["--profile", "smoke", "--run", "{run}/config.json"], ["--run", "not a folder"]),
    ("reproduce", ["--profile", "smoke", "--export", "{run}/config.json"], ["--export", "not a folder"]),
    ("reproduce", ["--profile", "smoke", "--kernel", "nonsense"], ["--kernel 'nonsense'", "allowed"]),
]

ROWS_BY_COMMAND = dict(Counter(command for command, _, _ in ROWS))


class Reached(Exception):
    """Raised by the stand-ins of heavy work: a row got past the checks it should have failed."""


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A run trained 2 steps per stage at the smoke sizes, plus two images and two small image folders."""
    root = tmp_path_factory.mktemp("bad_inputs")
    tiny_trained_run(root / "run")
    rng = np.random.default_rng(0)
    inputs = root / "inputs"
    for name in ("real", "fake"):
        (inputs / name).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(inputs / name / f"{i:02d}.png")
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(inputs / "img.png")
    mask = np.zeros((16, 16, 3), np.uint8)
    mask[4:12, 4:12] = 255
    Image.fromarray(mask).save(inputs / "mask.png")
    return root


def snapshot(root: Path) -> dict:
    """{relative path: (size, mtime_ns, sha256)} of every file under root, and every folder's name. A run's
    .lock is left out: taking the lock rewrites its note of the holder (RunDir.lock), which is not run data."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root)] = "folder"
        for f in filenames:
            if f == ".lock":
                continue
            p = Path(dirpath) / f
            st = p.stat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def _stand_ins(monkeypatch):
    from ulib.app import gpu_check, reproduce
    from ulib.eval import bench, features

    def reached(what):
        def f(*a, **k):
            raise Reached(f"{what} started before the bad input was reported")
        return f

    monkeypatch.setattr(bench, "run", reached("the bench"))
    monkeypatch.setattr(gpu_check, "run_check", reached("gpu-check's phases"))
    monkeypatch.setattr(reproduce, "execute", reached("a notebook"))
    monkeypatch.setattr(reproduce, "collect", reached("gathering results"))
    monkeypatch.setattr(features, "train_feature_net", reached("training the feature network"))


@pytest.mark.parametrize("command, argv, expected", ROWS,
                         ids=[f"{c}:{' '.join(a for a in argv if a not in SMOKE)}" for c, argv, _ in ROWS])
def test_bad_input_is_one_error_line_and_changes_nothing(command, argv, expected, tiny_run, tmp_path, monkeypatch,
                                                         capsys):
    work = tmp_path / "work"
    shutil.copytree(tiny_run, work)
    places = dict(run=work / "run", new=work / "new", tmp=work, img=work / "inputs" / "img.png",
                  mask=work / "inputs" / "mask.png", real=work / "inputs" / "real", fake=work / "inputs" / "fake")
    args = [command, *(a.format(**places) for a in argv)]
    monkeypatch.chdir(work)  # relative defaults (runs/PROFILE, data/cache) land where the snapshot sees them
    _stand_ins(monkeypatch)
    before = snapshot(work)
    try:
        code = cli.main(args)
    except SystemExit as e:  # argparse
        code = e.code
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and err and f"python -m ulib {command}: error: argument" in err[-1], err
        message = err[-1]
    else:
        out, err = capsys.readouterr()
        lines = err.strip().splitlines()
        assert code == 2, (code, out, err)
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert out == "", out
        message = lines[0]
    assert "Traceback" not in message
    for s in expected:
        assert s in message, (s, message)
    assert snapshot(work) == before, "a file was written or changed"


def test_an_unwritable_output_place_is_reported_before_sampling(tiny_run, tmp_path, monkeypatch, capsys):
    """A folder the process may not write in (tests run as root here, so os.access answers as it would for a
    user without write permission)."""
    monkeypatch.setattr(flags.os, "access", lambda path, mode: False)
    calls = _recording(monkeypatch, fake=True)
    assert cli.main(["sample", "--run", str(tiny_run / "run"), "--png", str(tmp_path / "out" / "s.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --png ") and "cannot write in" in err and "permission denied" in err, err
    assert calls == [] and not (tmp_path / "out").exists()


def test_every_command_has_several_bad_input_rows():
    counts = {c: ROWS_BY_COMMAND.get(c, 0) for c in cli.COMMANDS}
    print("bad inputs tried per command:", counts, "total", len(ROWS))
    assert all(n >= 3 for n in counts.values()), counts


# ---- sample --n beyond one batch (#21 item 6: `sample --n 100000` died on allocation) -----------------------------
def _recording(monkeypatch, fake=False):
    """Record the n of every sample_images call of the sample command (and, if fake, return grey images)."""
    from ulib.app import commands

    calls, real = [], commands.sample_images

    def wrapper(m, n, **kw):
        calls.append(n)
        return torch.zeros(n, 3, 16, 16) if fake else real(m, n, **kw)

    monkeypatch.setattr(commands, "sample_images", wrapper)
    return calls


def test_sample_draws_in_bounded_batches_and_one_seed_repeats(tiny_run, tmp_path, monkeypatch, capsys):
    run = tiny_run / "run"
    calls = _recording(monkeypatch)

    def sample(name, n, batch, seed=0):
        npz = tmp_path / f"{name}.npz"
        assert cli.main(["sample", "--run", str(run), "--n", str(n), "--batch-size", str(batch), "--steps", "4",
                         "--seed", str(seed), "--png", str(tmp_path / f"{name}.png"), "--npz", str(npz)]) == 0
        with np.load(npz) as z:
            return z["images"]

    a = sample("a", 10, 4)
    assert calls == [4, 4, 2], "three batches, none above --batch-size"
    assert a.shape == (10, 16, 16, 3) and a.dtype == np.uint8
    assert "3 batches of <= 4" in capsys.readouterr().out
    assert np.array_equal(a, sample("b", 10, 4)), "the same (seed, batch size) gives the same images"
    # batch 0 keeps the seed itself: one batch of 4 is what sample_images(m, 4, seed=0) draws
    assert np.array_equal(a[:4], sample("c", 4, 4))
    assert not np.array_equal(a, sample("d", 10, 4, seed=1))
    grid = np.asarray(Image.open(tmp_path / "a.png"))
    assert grid.ndim == 3 and grid.std() > 0


def test_sample_beyond_one_grid_writes_every_image_to_the_npz(tiny_run, tmp_path, monkeypatch, capsys):
    from ulib.app.commands import MAX_GRID

    calls = _recording(monkeypatch, fake=True)
    n = MAX_GRID + 76
    npz, png = tmp_path / "all.npz", tmp_path / "grid.png"
    assert cli.main(["sample", "--run", str(tiny_run / "run"), "--n", str(n), "--npz", str(npz),
                     "--png", str(png)]) == 0
    assert max(calls) <= 64 and sum(calls) == n, "default batch size 64"
    with np.load(npz) as z:
        assert z["images"].shape == (n, 16, 16, 3)
    side = 32 * 17 + 1  # a 32 x 32 grid of 16 px tiles with 1 px padding ...
    assert Image.open(png).size == (side * 8, side * 8)  # ... enlarged 8 times for 16 px images
    assert f"(the first {MAX_GRID})" in capsys.readouterr().out


# ---- sample --method NAME --option KEY=VALUE (#25) -----------------------------------------------------------------
@pytest.mark.parametrize("method, options, given, printed", [
    ("random", ["skip_empty_steps=false"], {"skip_empty_steps": False}, "method random, skip_empty_steps=False"),
    ("random", ["fixed_shape=true"], {"fixed_shape": True}, "method random, fixed_shape=True"),
    ("confidence", ["schedule=linear", "choice_temperature=0"], {"schedule": "linear", "choice_temperature": 0.0},
     "method confidence, schedule=linear, choice_temperature=0.0"),
    ("remask", [], {}, "method remask)"),
    ("halton", ["shift=false"], {"shift": False}, "method halton, shift=False"),
    ("eb", ["gamma=1e9"], {"gamma": 1e9}, "(adaptive steps, temperature"),
])
def test_sample_runs_each_method_with_its_options(method, options, given, printed, tiny_run, tmp_path, monkeypatch,
                                                  capsys):
    """Each method from the command line, its --option values converted to their types and handed to
    sample_images (and on to sample_tokens) as the method's settings."""
    seen, real = [], commands.sample_images

    def recording(m, n, **kw):
        seen.append(kw)
        return real(m, n, **kw)

    monkeypatch.setattr(commands, "sample_images", recording)
    args = [a for o in options for a in ("--option", o)]
    assert cli.main(["sample", "--run", str(tiny_run / "run"), "--n", "2", "--method", method, *args,
                     "--png", str(tmp_path / "s.png")]) == 0
    out = capsys.readouterr().out
    assert printed in out and "forward passes" in out, out
    (kw,) = seen
    assert kw["method"] == method and {k: kw[k] for k in given} == given
    cfg = json.loads((tiny_run / "run" / "config.json").read_text())
    assert kw["steps"] == (None if method == "eb" else cfg["sample"]["steps"])  # a run's steps are no cap
    if method == "eb":  # gamma = 1e9 admits every position at once: one call
        assert "1 forward passes" in out, out
    assert Image.open(tmp_path / "s.png").size[0] > 0


def test_sample_compile_runs_the_prior_through_torch_compile(tiny_run, tmp_path, monkeypatch):
    """--compile reaches sample_images, which hands the sampler torch.compile(dynamic=False) of the prior (a
    stand-in compiler here, which records its calls)."""
    compiled = []

    def fake_compile(fn, dynamic=None, backend=None):
        calls = []
        compiled.append((dynamic, calls))
        return lambda *a: calls.append(1) or fn(*a)

    monkeypatch.setattr(torch, "compile", fake_compile)
    assert cli.main(["sample", "--run", str(tiny_run / "run"), "--n", "2", "--compile", "--option", "fixed_shape=true",
                     "--png", str(tmp_path / "s.png")]) == 0
    assert compiled and all(d is False for d, _ in compiled) and compiled[0][1]  # the forward, called every pass


def test_sample_steps_as_each_method_reads_them(tiny_run, tmp_path, capsys):
    run, png = str(tiny_run / "run"), str(tmp_path / "s.png")
    # 'eb': --steps caps the calls per image; gamma = 0 alone would take more than 2
    assert cli.main(["sample", "--run", run, "--n", "2", "--method", "eb", "--steps", "2", "--option", "gamma=0",
                     "--png", png]) == 0
    out = capsys.readouterr().out
    assert "(at most 2 calls per image, " in out and "2 forward passes" in out, out
    # a method that sets its own calls: --steps is not rejected, and the line says it was not used
    registry.register(OWN_STEPS_METHOD)
    try:
        assert cli.main(["sample", "--run", run, "--n", "2", "--method", "raster_own_steps", "--steps", "3",
                         "--png", png]) == 0
    finally:
        registry.unregister(OWN_STEPS_METHOD.name)
    out = capsys.readouterr().out
    assert "--steps=3 not used: method raster_own_steps sets its own number of calls" in out, out


def test_an_autoregressive_prior_takes_no_method_options():
    ar = SimpleNamespace(kind="autoregressive", default_steps=8)
    assert commands.check_sample_args(ar, 2, None, 1.0, "random", None) == 8
    with pytest.raises(ValueError, match="--option gamma applies to a --method's settings; the AR prior's raster"):
        commands.check_sample_args(ar, 2, None, 1.0, "random", None, options={"gamma": 1.0})
    with pytest.raises(ValueError, match="--method eb apply to the absorbing prior; .* or with --method speculative"):
        commands.check_sample_args(ar, 2, None, 1.0, "eb", None)
    assert commands.check_sample_args(ar, 2, 5, 1.0, "speculative", None, options={"block": 2}) is None  # unused
    absorbing = SimpleNamespace(kind="absorbing", default_steps=8)
    with pytest.raises(ValueError, match="--method speculative samples an autoregressive prior; this one is absorbing"):
        commands.check_sample_args(absorbing, 2, None, 1.0, "speculative", None)
