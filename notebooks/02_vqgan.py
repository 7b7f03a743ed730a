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
# # 02 · The VQGAN: reconstructions, codebook usage, the λ clamp and DiffAugment
#
# **Reproduces:** section 3.1 of the paper: the vector-quantised autoencoder (Eq. 4), its reconstructions of held-out images, and its adversarial loss with the adaptive weight clamped at λmax (Eq. 9, checked on a toy) and differentiable augmentation (shown on images; whether this run's GAN term was on is printed).
#
# **Needs:** notebook 01's run directory (the VQGAN is trained here if it is missing). Every stage is *load if present, else train*: the notebook reuses what the run
# directory holds and trains only what is missing, so the notebooks chain (run them in order, or let
# `python -m ulib reproduce` do it).
#
# **Time:** CPU: seconds with `smoke` once the VQGAN exists (training it: see 01); about 20 s with `demo` (estimate: 14 s measured on 2 cores with a trained run before the held-out reconstruction error, which reconstructs every test image and as many training images). GPU, paper profiles: a minute once trained (estimate).
#
# **Writes:** figures (PNG) and tables (CSV: codebook usage, reconstruction error) into `RUN/results/`.

# %% tags=["parameters"]
profile = "smoke"  # smoke (CI, seconds) | demo (CPU, minutes) | ffhq, churches, bedrooms (GPU, the paper's settings)
run_dir = "../runs/nb-smoke"  # run directory shared by every notebook (relative to notebooks/); one per profile
device = "auto"  # 'auto' (cuda, then mps, then cpu), 'cpu', 'cuda', ...
seed = 0  # seed of this notebook's sampling and figures (training uses the config's own seed)
overrides = []  # config overrides, each written as for `--set` on the command line (see the README)
n_images = 16  # held-out images to show with their reconstructions (test split; validation in runs without one)

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
vq = nbu.vqgan(s)
held = "test" if nbu.has_test_split(s) else "val"  # images the VQGAN never trained on
held_name = {"test": "test images (families no model saw)",
             "val": "validation images (families the VQGAN did not train on)"}[held]
x = nbu.split_images(s, held, n_images).float().div(127.5).sub(1).to(s.device)  # (B, 3, H, W) in [-1, 1]

# %% [markdown]
# ## Reconstructions
#
# `encode` is the encoder followed by the nearest-code lookup (Eq. 4); `decode` looks the codes up
# and runs the generator. The top row is the input, the bottom row its reconstruction from tokens
# alone: whatever the bottom row loses, the prior can never produce. The inputs are held-out images (the
# line under the picture names them); the built-in profiles split OpenMoji by design family, so no
# variant of these emoji was in the VQGAN's training set.

# %%
with torch.no_grad():
    codes = vq.encode(x)  # (B, h, w) token ids: the image as the prior sees it
    x_rec = vq.decode(codes).clamp(-1, 1)  # (B, 3, H, W)
nbu.show(nbu.save_grid(s, torch.cat([x, x_rec]), "02_reconstructions", nrow=len(x)))
print(f"rows: {len(x)} {held_name}, chosen at random (seeded), then their reconstructions")

# %% [markdown]
# How well does the VQGAN reconstruct images it never saw, and how much better does it do on its training
# images? The mean L1 error per image (pixels in [-1, 1], after rounding to 8 bits as a saved image would be)
# over every held-out image, against as many training images.

# %%
from ulib.app.prose import two_means_sentence

held_all = nbu.split_images(s, held)  # every held-out image, uint8
train_same = nbu.split_images(s, "train", len(held_all))  # as many training images, in a seeded random order
l1 = lambda u: (nbu.reconstruct(vq, u, s.device).float() - u.float()).abs().div(127.5).flatten(1).mean(1)
l1_held, l1_train = l1(held_all), l1(train_same)
nbu.write_table(s, [{"images": held_name, "n": len(l1_held), "l1_mean": l1_held.mean().item()},
                    {"images": "training images (a seeded random choice)", "n": len(l1_train),
                     "l1_mean": l1_train.mean().item()}], "02_reconstruction_l1")
print(two_means_sentence(l1_held.numpy(), l1_train.numpy(), f"{held} images", "training images",
                         "mean L1 reconstruction error per image") + ".")

# %%
# NBVAL_CHECK_OUTPUT
print("images", tuple(x.shape), "-> tokens", tuple(codes.shape), "-> reconstructions", tuple(x_rec.shape))
print(f"VQGAN parameters: {sum(p.numel() for p in vq.parameters()):,}")

# %% [markdown]
# ## Codebook usage
#
# A code that never wins the nearest-neighbour search gets no gradient and stays dead; the prior
# then has fewer symbols to work with (unless training moves unused codes onto encoder outputs, the
# `vqgan.code_restart_every` setting, printed below). Perplexity exp(H) of the code histogram is K when
# every code is used equally and 1 when one code is used for everything.

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
restart = cfg.vqgan.code_restart_every
print(f"{len(tokens)} validation images, {tokens[0].numel()} tokens each: {used} of {K} codes used, perplexity "
      f"{perplexity:.1f}; unused codes restarted during training: "
      + (f"every {restart} steps" if restart else "never (vqgan.code_restart_every = 0)"))

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
gan_said = (f"the GAN term was on from step {cfg.vqgan.disc_start_step}" if gan else
            f"the GAN term was never on in this run (disc_start_step = {cfg.vqgan.disc_start_step}, "
            f"{cfg.vqgan_train.steps} training steps): no λ to plot")
axes[2].plot([r["step"] for r in gan], [r["d_weight"] for r in gan], "o-")
axes[2].axhline(cfg.vqgan.disc_weight_max, ls="--", c="gray", label="λmax")
axes[2].set(title="adaptive weight λ" + ("" if gan else " (GAN never on)"), xlabel="step")
axes[2].legend()
fig.tight_layout()
nbu.save_figure(s, fig, "02_training_curves")
plt.show()
print(f"{gan_said[0].upper()}{gan_said[1:]}; DiffAugment on discriminator inputs: "
      f"{'on' if cfg.vqgan.diff_aug else 'off'}.")

# %% [markdown]
# ## DiffAugment
#
# With `vqgan.diff_aug` on, every image the discriminator sees, real or reconstructed, is augmented
# (colour, translation) with operations that are differentiable in the pixels, so the generator is
# trained *through* them and the discriminator cannot tell real from fake by the augmentation (the line
# under the training curves says whether this run's GAN term and DiffAugment were on). Rows: the input,
# then three augmentations of it.

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
