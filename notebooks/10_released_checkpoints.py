# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 10 · Sampling from the paper's released checkpoints
#
# **Reproduces:** samples and a larger-than-training image (the kind of pictures the paper opens with) from the models the authors trained (FFHQ, LSUN Churches, LSUN Bedroom), loaded into ulib's modules. Nothing is scored: pictures only.
#
# **Needs:** the released `logs/` folder (not included: see below). Without it this notebook says so and skips every cell that needs it. It trains nothing and does not use the run directory's models.
#
# **Time:** `smoke` or `demo` about 6 s when the files are absent (measured on 2 cores, 2026-12-07); with them about a minute per image at 256 steps on the CPU, seconds on a GPU (estimate).
#
# **Writes:** with the released files, the pictures (PNG) into `RUN/results/`, nothing else.

# %% tags=["parameters"]
profile = "smoke"  # smoke (CI, seconds) | demo (CPU, minutes) | ffhq, churches, bedrooms (GPU, the paper's settings)
run_dir = "../runs/nb-smoke"  # run directory shared by every notebook (relative to notebooks/); one per profile
device = "auto"  # 'auto' (cuda, then mps, then cpu), 'cpu', 'cuda', ...
seed = 0  # seed of this notebook's sampling and figures (training uses the config's own seed)
overrides = []  # config overrides, each written as for `--set` on the command line (see the README)
pretrained = ""  # "tutorial" loads the kit's ready-trained model instead of training (with run_dir "../runs/tutorial")
released_dir = "../logs"  # the downloaded logs/ folder (relative to notebooks/)
dataset = "churches"  # churches | bedrooms | ffhq: which released pair to use
n_samples = 2  # images to sample
steps = 64  # reverse steps (Tables 1-2 of the paper use all 256, i.e. T; fewer is faster, Table 3)
temperature = 0.9  # Tables 1-2 of the paper report temperatures 0.9 and 1.0; its Fig. 4 uses 0.8
canvas = "16x32"  # latent canvas of the wide image (training grid: 16x16)

# %%
from ulib.app import outputs, readings, session

s = session.setup(profile, run_dir, device, seed, overrides, pretrained)  # run dir, config, device, RUN/results/
cfg = s.cfg
K, T, L = cfg.vqgan.codebook_size, cfg.prior.total_steps, cfg.latent_size ** 2

from pathlib import Path

root = (session.START_DIR / Path(released_dir).expanduser()).resolve()  # relative to the notebook's folder

# %% [markdown]
# ## Where the files come from
#
# The official repository's README links a `logs/` folder (a Google Drive folder) holding, for each
# dataset, `logs/vqgan_<dataset>/saved_models/vqgan_ema_<step>.th` and
# `logs/absorbing_<dataset>/saved_models/absorbing_ema_<step>.th` (and the AR baseline's
# `autoregressive_ema_<step>.th`). Download it into this repository as `logs/` (beside `notebooks/`), or point
# `released_dir` at it. They are plain PyTorch state dicts; `ulib.official` maps them onto ulib's
# VQGAN and transformer, which compute exactly what the official modules compute (checked layer by
# layer in `tests/test_official.py`).

# %%
from ulib.official import RELEASE_HINT


def newest(pattern: str):  # the file matching `pattern` with the highest training step (..._STEP.th)
    step = lambda p: int(p.stem.rsplit("_", 1)[-1]) if p.stem.rsplit("_", 1)[-1].isdigit() else -1
    files = sorted(root.glob(pattern), key=step)
    return files[-1] if files else None

vqgan_file = newest(f"vqgan_{dataset}/saved_models/vqgan_ema_*.th")
sampler_file = newest(f"absorbing_{dataset}/saved_models/absorbing_ema_*.th")
available = vqgan_file is not None and sampler_file is not None
if available:
    print("using", vqgan_file.relative_to(root), "and", sampler_file.relative_to(root))
else:
    print(f"The released checkpoints for {dataset!r} are not in {released_dir!r}: the cells below skip.")
    print(RELEASE_HINT)

# %%
# NBVAL_CHECK_OUTPUT
from ulib.official import PAPER_SAMPLER_HPARAMS, PAPER_VQGAN_HPARAMS

print("paper VQGAN:", {k: PAPER_VQGAN_HPARAMS[k] for k in ("nf", "ch_mult", "codebook_size", "emb_dim")})
print("paper sampler:", {k: PAPER_SAMPLER_HPARAMS[k] for k in ("bert_n_emb", "bert_n_layers", "block_size")})

# %% [markdown]
# ## Samples
#
# The same command-line path as `python -m ulib sample --official-vqgan ... --official-sampler ...`.

# %%
from ulib import sample_images
from ulib.app.commands import parse_canvas
from ulib.models import load_official

if available:
    m = load_official(vqgan_file, sampler_file, "absorbing", s.device)
    images = sample_images(m, n_samples, steps=steps, temperature=temperature, seed=s.seed)
    outputs.show(outputs.save_grid(s, images, f"10_released_{dataset}_samples"))
    wide = sample_images(m, 1, steps=steps, temperature=temperature, seed=s.seed, canvas=parse_canvas(canvas),
                         stride=4)
    outputs.show(outputs.save_grid(s, wide, f"10_released_{dataset}_wide"))
else:
    print("skipped: no released checkpoints")

# %% [markdown]
# ## Reading
#
# **What to notice.** The released checkpoints load into the same modules the kit trains (`ulib.official` maps their
# keys), so every sampler and every notebook of the kit runs on the paper's own models: the same code path at the
# paper's scale. When the files are absent, nothing here is faked: the notebook says which file is missing and where
# it goes.
#
# **Against the paper.** These are the models behind Tables 1–4 (FFHQ, LSUN Churches, LSUN Bedroom at 256×256 px).
# Sampling them at the paper's settings reproduces the kind of pictures in its figures; scoring them at the paper's
# scale (50,000 samples, Inception features) needs a GPU and the real datasets (`python -m ulib evaluate`).
#
# **Why it differs at this scale.** The table below sets this run's model beside the paper's: everything the other
# notebooks measure on emoji happens at about 1/80 of the parameters and 1/1000 of the training steps.

# %%
shown = readings.reading(s, "10_released_checkpoints", readings.scale_rows(s))

# %% [markdown]
# ## Exercises
#
# 1. **The paper's prior, built empty.** Build the paper's prior architecture for `dataset` (no files needed) and
#    list its parameter count and first keys. *Expected:* about 77M parameters (the paper rounds to 80M), with the key
#    names of the released checkpoint (`tok_emb`, `pos_emb`, `blocks.0.ln1`, ...), which is why it loads by name.
#
#    <details><summary>Solution</summary>
#
#    ```python
#    from ulib.trained import prior_from_config
#    from ulib.profiles import get_profile
#    m = prior_from_config(get_profile(dataset))
#    print(sum(p.numel() for p in m.parameters()), list(m.state_dict())[:8])
#    ```
#    </details>
#
# 2. **Your run's scale.** Print the same parameter count for this run's prior and the ratio to the paper's.
#    *Expected:* at `demo` about 0.9M against 77M, a factor of about 80.
#
#    <details><summary>Solution</summary>
#
#    ```python
#    from ulib.trained import prior_from_config
#    from ulib.profiles import get_profile
#    count = lambda c: sum(p.numel() for p in prior_from_config(c).parameters())
#    print(count(cfg), count(get_profile("ffhq")), count(get_profile("ffhq")) / count(cfg))
#    ```
#    </details>

# %% [markdown]
# ## References
#
# - S. Bond-Taylor, P. Hessey, H. Sasaki, T. P. Breckon, C. G. Willcocks. *Unleashing Transformers: Parallel Token Prediction with Discrete Absorbing Diffusion for Fast High-Resolution Image Generation from Vector-Quantized Codes.* ECCV 2022. [arXiv:2111.12701](https://arxiv.org/abs/2111.12701)
# - P. Esser, R. Rombach, B. Ommer. *Taming Transformers for High-Resolution Image Synthesis* (VQGAN). CVPR 2021. [arXiv:2012.09841](https://arxiv.org/abs/2012.09841)
# - J. Austin, D. D. Johnson, J. Ho, D. Tarlow, R. van den Berg. *Structured Denoising Diffusion Models in Discrete State-Spaces* (D3PM, the absorbing state). NeurIPS 2021. [arXiv:2107.03006](https://arxiv.org/abs/2107.03006)
