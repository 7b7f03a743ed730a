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
# # 02 · The VQGAN: reconstructions, codebook usage, the λ clamp and DiffAugment
#
# **Reproduces:** section 3.1 of the paper: the vector-quantised autoencoder (Eq. 4, 5) and its adversarial loss with the adaptive weight clamped at λmax (Eq. 9) and differentiable augmentation.
#
# **Needs:** notebook 01's run directory (the VQGAN is trained here if it is missing). Every stage is *load if present, else train*: the notebook reuses what the run
# directory holds and trains only what is missing, so the notebooks chain (run them in order, or let
# `python -m ulib reproduce` do it).
#
# **Time:** CPU: about 5 s with `smoke` (measured on 2 cores) once the VQGAN exists (training it: see 01); 4 s with `demo` (measured on 2 cores, trained run present). GPU, paper profiles: a minute once trained (estimate).
#
# **Writes:** figures (PNG) and tables (CSV) into `RUN/results/`.

# %% tags=["parameters"]
profile = "smoke"  # smoke (CI, seconds) | demo (CPU, minutes) | ffhq, churches, bedrooms (GPU, the paper's settings)
run_dir = "../runs/nb-smoke"  # run directory shared by every notebook (relative to notebooks/); one per profile
device = "auto"  # 'auto' (cuda, then mps, then cpu), 'cpu', 'cuda', ...
seed = 0  # seed of this notebook's sampling and figures (training uses the config's own seed)
overrides = []  # config overrides, each written as for `--set` on the command line (see the README)
n_images = 16  # validation images to reconstruct

# %%
import math

import matplotlib.pyplot as plt
import torch

from ulib.app import notebook as nbu

s = nbu.setup(profile, run_dir, device, seed, overrides)  # absolute run dir, config, device; RUN/results/
cfg = s.cfg
K, T, L = cfg.vqgan.codebook_size, cfg.prior.total_steps, cfg.latent_size ** 2
print(f"profile {cfg.profile} | device {s.device} | {cfg.data.dataset} {cfg.data.img_size}px -> "
      f"{cfg.latent_size}x{cfg.latent_size} = {L} tokens, K = {K} codes, T = {T}")

# %%
from ulib.data.datasets import build_dataset

vq = nbu.vqgan(s)
val = build_dataset(cfg.data, "val", train_transforms=False)
x = torch.stack([val[i] for i in range(min(n_images, len(val)))]).to(s.device)  # (B, 3, H, W) in [-1, 1]

# %% [markdown]
# ## Reconstructions
#
# `encode` is the encoder followed by the nearest-code lookup (Eq. 4); `decode` looks the codes up
# and runs the generator. The top row is the input, the bottom row its reconstruction from tokens
# alone: whatever the bottom row loses, the prior can never produce.

# %%
with torch.no_grad():
    codes = vq.encode(x)  # (B, h, w) token ids: the image as the prior sees it
    x_rec = vq.decode(codes).clamp(-1, 1)  # (B, 3, H, W)
nbu.show(nbu.save_grid(s, torch.cat([x, x_rec]), "02_reconstructions", nrow=len(x)))
print(f"mean L1 error on these images: {(x - x_rec).abs().mean().item():.3f} (pixel range [-1, 1])")

# %%
# NBVAL_CHECK_OUTPUT
print("images", tuple(x.shape), "-> tokens", tuple(codes.shape), "-> reconstructions", tuple(x_rec.shape))
print(f"VQGAN parameters: {sum(p.numel() for p in vq.parameters()):,}")

# %% [markdown]
# ## Codebook usage
#
# A code that never wins the nearest-neighbour search gets no gradient and stays dead; the prior
# then has fewer symbols to work with. Perplexity exp(H) of the code histogram is K when every code
# is used equally and 1 when one code is used for everything.

# %%
tokens = nbu.latents(s)["val"].long()  # every validation image as tokens (N, h, w)
hist = nbu.code_histogram(tokens, K)  # (K,) share of tokens per code
used = int((hist > 0).sum())
perplexity = math.exp(-torch.special.xlogy(hist, hist).sum().item())
fig, ax = plt.subplots(figsize=(7, 2.5))
ax.bar(range(K), hist.sort(descending=True).values.numpy(), width=1.0)
ax.set(xlabel="code (sorted by frequency)", ylabel="share of tokens",
       title=f"{used} of {K} codes used, perplexity {perplexity:.1f}")
nbu.save_figure(s, fig, "02_codebook_usage")
nbu.write_table(s, [{"codebook_size": K, "codes_used": used, "perplexity": perplexity}], "02_codebook_usage")
plt.show()

# %% [markdown]
# ## The adaptive weight and its clamp (Eq. 9c)
#
# The GAN term is weighted by λ = ‖∇_last L_rec‖ / (‖∇_last L_GAN‖ + δ), gradients taken at the
# generator's last layer, so the adversarial gradient never swamps the reconstruction gradient.
# When the discriminator's gradient is tiny (early, or when it is confused), λ explodes; the paper
# clamps it at λmax = 1. A two-weight "last layer" makes the numbers checkable by hand:
# ∇(w₁² + w₂²) = (2, 4) has norm √20, and ∇(c·(w₁ + w₂)) = (c, c) has norm c√2.

# %%
# NBVAL_CHECK_OUTPUT
from ulib.vq.loss import adaptive_weight

w = torch.tensor([1.0, 2.0], requires_grad=True)  # stands for the generator's last layer
rec = (w ** 2).sum()  # reconstruction loss: gradient (2, 4), norm sqrt(20)
for c in (10.0, 1.0):
    gan = c * w.sum()  # GAN loss: gradient (c, c), norm c * sqrt(2)
    lam = adaptive_weight(rec, gan, w, max_weight=1.0)
    print(f"c = {c:4.1f}: lambda = {lam.item():.4f}   unclamped sqrt(20) / (c sqrt(2)) = "
          f"{math.sqrt(20) / (c * math.sqrt(2)):.4f}")

# %%
from ulib.io.logs import MetricsLog

rows = MetricsLog.read(s.run.vqgan_log)
steps = [r["step"] for r in rows]
fig, axes = plt.subplots(1, 3, figsize=(12, 3))
axes[0].plot(steps, [r["l1"] for r in rows])
axes[0].set(title="L1 reconstruction (train)", xlabel="step")
axes[1].plot(steps, [r["codes_used"] for r in rows])
axes[1].set(title="codes used per batch", xlabel="step")
gan = [r for r in rows if r["step"] > cfg.vqgan.disc_start_step and r.get("d_weight") is not None]
axes[2].plot([r["step"] for r in gan], [r["d_weight"] for r in gan], "o-")
axes[2].axhline(cfg.vqgan.disc_weight_max, ls="--", c="gray", label="λmax")
axes[2].set(title=f"adaptive weight λ (GAN on from step {cfg.vqgan.disc_start_step})", xlabel="step")
axes[2].legend()
fig.tight_layout()
nbu.save_figure(s, fig, "02_training_curves")
plt.show()

# %% [markdown]
# ## DiffAugment
#
# Every image the discriminator sees, real or reconstructed, is augmented (colour, translation)
# with operations that are differentiable in the pixels, so the generator is trained *through*
# them and the discriminator cannot tell real from fake by the augmentation. Rows: the input, then
# three augmentations of it.

# %%
from ulib.vq.diffaug import diff_augment

g = s.generator()
x4 = x[:4].clone().requires_grad_(True)
augmented = [diff_augment(x4, "color,translation", generator=g) for _ in range(3)]
nbu.show(nbu.save_grid(s, torch.cat([x4.detach()] + [a.detach() for a in augmented]), "02_diffaug", nrow=4))

# %%
# NBVAL_CHECK_OUTPUT
augmented[0].sum().backward()
print("gradient reaches the input pixels:", bool(x4.grad.abs().sum() > 0),
      "| shape kept:", tuple(augmented[0].shape) == tuple(x4.shape))
