# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 08 · Images larger than the training grid
#
# **Reproduces:** Fig. 4 of the paper (section 3.3, Eq. 8): sampling a token canvas larger than the h x w grid the prior was trained on, by running the prior on overlapping windows and mixing their predictions at every position.
#
# **Needs:** notebook 01's run directory (VQGAN and prior; trained here when missing). Every stage is *load if present, else train*: the notebook reuses what the run
# directory holds and trains only what is missing, so the notebooks chain (run them in order, or let
# `python -m ulib reproduce` do it).
#
# **Time:** CPU: about 4 s with `smoke` (measured on 2 cores), 7 s with `demo` (measured on 2 cores, trained run present). GPU, paper profiles: about a minute per 2x-wide canvas at stride 1 (estimate: 17 windows per step, 256 steps).
#
# **Writes:** figures (PNG) and tables (CSV) into `RUN/results/`.

# %% tags=["parameters"]
profile = "smoke"  # smoke (CI, seconds) | demo (CPU, minutes) | ffhq, churches, bedrooms (GPU, the paper's settings)
run_dir = "../runs/nb-smoke"  # run directory shared by every notebook (relative to notebooks/); one per profile
device = "auto"  # 'auto' (cuda, then mps, then cpu), 'cpu', 'cuda', ...
seed = 0  # seed of this notebook's sampling and figures (training uses the config's own seed)
overrides = []  # config overrides, each written as for `--set` on the command line (see the README)
canvas_scale = [1, 2]  # canvas size in training windows (rows, cols); [1, 2] is twice as wide
stride = 2  # window stride in tokens (1..h); smaller: more windows per step, better coherence
n_samples = 4  # canvases to sample
steps = 0  # sampling steps; 0: the profile's sample.steps (or T)
temperature = None  # None: the profile's sample.temperature

# %%
import matplotlib.pyplot as plt
import torch

from ulib.app import notebook as nbu

s = nbu.setup(profile, run_dir, device, seed, overrides)  # absolute run dir, config, device; RUN/results/
cfg = s.cfg
K, T, L = cfg.vqgan.codebook_size, cfg.prior.total_steps, cfg.latent_size ** 2
print(f"profile {cfg.profile} | device {s.device} | {cfg.data.dataset} {cfg.data.img_size}px -> "
      f"{cfg.latent_size}x{cfg.latent_size} = {L} tokens, K = {K} codes, T = {T}")

h = w = cfg.latent_size
canvas = (h * canvas_scale[0], w * canvas_scale[1])
n_steps = steps or cfg.sample.steps or T
temp = temperature or cfg.sample.temperature

# %% [markdown]
# ## Windows and Eq. 8
#
# Windows of the training size h x w are placed every `stride` tokens (plus the last row/column so
# the edges are covered). A position i covered by the windows R_i gets the mixture
# p̄_i = (1/|R_i|) Σ_r p_θ(x_0^i | x_t^(r)), sharpened by the temperature τ: p ∝ p̄^(1/τ). The map shows
# |R_i|, how many windows see each position.

# %%
# NBVAL_CHECK_OUTPUT
from ulib.sample.canvas import coverage, decode_canvas, window_offsets

offsets = window_offsets(canvas, (h, w), stride)  # (Nw, 2) top-left corners
cover = coverage(canvas, (h, w), offsets)  # (a, b) windows per position
print(f"canvas {canvas[0]}x{canvas[1]} tokens, window {h}x{w}, stride {stride}: {len(offsets)} windows, "
      f"each position seen by {int(cover.min())} to {int(cover.max())} of them")

# %%
fig, ax = plt.subplots(figsize=(2 + 0.25 * canvas[1], 1 + 0.25 * canvas[0]))
im = ax.imshow(cover.numpy(), cmap="viridis")
fig.colorbar(im, ax=ax, label="|R_i|")
ax.set_title("windows covering each token")
nbu.save_figure(s, fig, "08_window_coverage")
plt.show()

# %%
from ulib import sample_images, sample_tokens

models = nbu.models(s)
vq = models.vqgan
tokens, seconds = nbu.timed(lambda: sample_tokens(
    models, n_samples, canvas=canvas, stride=stride, steps=n_steps, temperature=temp,
    generator=s.generator(), device=s.device), s.device)
with torch.no_grad():
    big = decode_canvas(vq, tokens).clamp(-1, 1)  # (n, 3, a*f, b*f): the generator is convolutional
nbu.write_table(s, [{"canvas": f"{canvas[0]}x{canvas[1]}", "window": f"{h}x{w}", "stride": stride,
                     "windows": len(offsets), "steps": n_steps,
                     "seconds_per_image": seconds / n_samples}], "fig4_big_images")
nbu.show(nbu.save_grid(s, big, "fig4_big_images", nrow=1))
print(f"{seconds / n_samples:.2f} s per canvas")

# %% [markdown]
# Without Eq. 8: independent training-size samples side by side. Nothing ties the tiles together,
# so the seams show; the windowed sampler makes every overlap agree.

# %%
tiles = canvas_scale[0] * canvas_scale[1]
images = sample_images(models, n_samples * tiles, seed=s.seed, steps=n_steps, temperature=temp)
rows = images.view(n_samples, canvas_scale[0], canvas_scale[1], *images.shape[1:])
naive = torch.cat([torch.cat(r.unbind(1), dim=-1) for r in rows.unbind(1)], dim=-2)  # (n, 3, a*f, b*f)
nbu.show(nbu.save_grid(s, naive, "fig4_independent_tiles", nrow=1))
