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
# **Reproduces:** section 3.1: the vector-quantised autoencoder, its nearest-neighbour quantiser with straight-through gradients and its loss (Eq. 4, 5) written out and checked against ulib; its reconstructions of held-out images and its codebook use; the adaptive weight with its clamp λmax (Eq. 9c) on a toy and along a short GAN phase; DiffAugment on images.
#
# **Needs:** notebook 01's run directory (the VQGAN is trained here when missing); two short GAN-phase continuations go into `RUN/gan_phase_*/` (never replacing `RUN/vqgan.pt`).
#
# **Time:** `smoke` seconds; `demo` about 2 min (estimate: 21 s measured on 2 cores on 2026-12-07 before the GAN-phase continuations, which take about 50 s each). GPU, paper profiles: minutes (estimate).
#
# **Writes:** figures (PNG) and tables (CSV: codebook usage, reconstruction error) into `RUN/results/`.

# %% tags=["parameters"]
profile = "smoke"  # smoke (CI, seconds) | demo (CPU, minutes) | ffhq, churches, bedrooms (GPU, the paper's settings)
run_dir = "../runs/nb-smoke"  # run directory shared by every notebook (relative to notebooks/); one per profile
device = "auto"  # 'auto' (cuda, then mps, then cpu), 'cpu', 'cuda', ...
seed = 0  # seed of this notebook's sampling and figures (training uses the config's own seed)
overrides = []  # config overrides, each written as for `--set` on the command line (see the README)
pretrained = ""  # "tutorial" loads the kit's ready-trained model instead of training (with run_dir "../runs/tutorial")
n_images = 16  # held-out images to show with their reconstructions (test split; validation in runs without one)

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from ulib.app import gan_variants, measuring, outputs, readings, session

s = session.setup(profile, run_dir, device, seed, overrides, pretrained)  # run dir, config, device, RUN/results/
cfg = s.cfg
K, T, L = cfg.vqgan.codebook_size, cfg.prior.total_steps, cfg.latent_size ** 2

# %%
vq = session.vqgan(s)
v = cfg.vqgan
print(f"this run's VQGAN: {cfg.vqgan_train.steps} steps at lr {cfg.vqgan_train.lr:g} | GAN term: "
      + (f"on from step {v.disc_start_step}" if v.disc_start_step < cfg.vqgan_train.steps else "off")
      + f" | LPIPS perceptual weight {v.perceptual_weight:g}" + (" (off)" if v.perceptual_weight == 0 else "")
      + f" | DiffAugment {'on' if v.diff_aug else 'off'} | codebook start: {v.code_init} | dead codes restarted "
      + (f"every {v.code_restart_every} steps" if v.code_restart_every else "never"))
held = "test" if measuring.has_test_split(s) else "val"  # images the VQGAN never trained on
held_name = {"test": "test images (families no model saw)",
             "val": "validation images (families the VQGAN did not train on)"}[held]
x = measuring.split_images(s, held, n_images).float().div(127.5).sub(1).to(s.device)  # (B, 3, H, W) in [-1, 1]

# %% [markdown]
# ## What this run's VQGAN is
#
# The paper's VQGAN (section 3.4) trains on L1 plus the LPIPS perceptual loss, and after 30,000 steps adds a
# patch-GAN term whose weight λ adapts (Eq. 9). The `demo` profile's VQGAN, built to train in about ten minutes
# on 2 CPU cores, is a smaller thing: **no GAN term and no LPIPS** (within minutes of training the GAN only hurt,
# L1 0.14 → 0.22 in 300 steps; LPIPS needs torchvision's 553 MB VGG16 file, which an offline machine lacks),
# codes that start on encoder outputs, and **dead codes restarted every 100 steps** (moved onto random encoder
# outputs). The paper's supplement tried that "code recycling" and found reconstructions "comparable or worse",
# so kept plain argmax quantisation; here it runs beside a data-dependent start of the codes (the usage plot below
# shows how many of the 256 are in use after 1,400 steps). The line above prints this run's settings; the `smoke` profile trains with a tiny GAN phase only to test
# the code path. The λ curve further down comes from two short GAN-phase continuations trained for it.
#
# ## The quantiser, from scratch (Eq. 4 and 5)
#
# The encoder maps an image x to a grid of vectors E(x) = {e_1, ..., e_L}. Each is replaced by its nearest
# codebook vector, and the index of that vector is the token the prior will model:
#
# $$z_q = \{q_1, \dots, q_L\}, \qquad q_i = \arg\min_{c_j \in \mathcal{C}} \lVert e_i - c_j \rVert. \tag{4}$$
#
# The argmin has no gradient. The straight-through estimator [Bengio et al. 2013] copies the gradient that
# reaches the decoder's input z_q onto the encoder's output: in code, z + sg[z_q − z], which has the value of
# z_q and the gradient of z (sg = stop-gradient, `.detach()`). The codes themselves are trained by
#
# $$\mathcal{L}_{VQ} = \mathcal{L}_{rec} + \lVert \mathrm{sg}[E(x)] - z_q \rVert_2^2
#   + \beta\, \lVert \mathrm{sg}[z_q] - E(x) \rVert_2^2 . \tag{5}$$
#
# The second term moves each code towards the encoder outputs that chose it; the third, the *commitment* term
# (β = 0.25), keeps the encoder's outputs near their codes. Where β sits matters: the paper puts it on the
# commitment term, as above, while the official code puts it on the codebook term. The value is the same,
# (1 + β)·mse, but the gradients differ: with β = 0.25 the paper's form moves the codes 4x harder and pulls the
# encoder 4x less than the official one. ulib follows the paper.
# Here are Eq. 4 and 5 with the straight-through trick, without the reconstruction term:

# %%
def quantise(z, codebook, beta):
    """Eq. 4 and 5. z = E(x) (B, D, h, w), codebook (K, D) -> (z_q with straight-through gradients, the codebook
    and commitment terms of L_VQ, token ids (B, h, w))."""
    B, D, h, w = z.shape
    e = z.permute(0, 2, 3, 1).reshape(-1, D)  # (N, D): one encoder output e_i per position
    # ||e_i - c_j||^2 = ||e_i||^2 + ||c_j||^2 - 2 e_i.c_j: all N x K distances without an (N, K, D) tensor
    dist = e.pow(2).sum(1, keepdim=True) + codebook.pow(2).sum(1) - 2 * e @ codebook.t()
    idx = dist.argmin(1)  # Eq. 4: the nearest code of every position
    z_q = codebook[idx].reshape(B, h, w, D).permute(0, 3, 1, 2)  # (B, D, h, w)
    codebook_term = (z.detach() - z_q).pow(2).mean()  # ||sg[E(x)] - z_q||^2: moves the codes
    commitment = (z_q.detach() - z).pow(2).mean()  # ||sg[z_q] - E(x)||^2: moves the encoder
    z_st = z + (z_q - z).detach()  # straight-through: the value of z_q, the gradient of z
    return z_st, codebook_term + beta * commitment, idx.reshape(B, h, w)


# %% [markdown]
# The same encoder outputs through ulib's `VectorQuantizer` (what `vq.encode` and training use): the same
# tokens, the same z_q and loss, and the same gradients to the encoder's output and to the codebook when an
# arbitrary gradient arrives from the decoder. The last line checks the straight-through property itself:
# the gradient that reaches z is exactly the one that arrived at z_q.

# %%
# NBVAL_CHECK_OUTPUT
with torch.no_grad():
    z = vq.encoder(x[:4])  # (4, D, h, w) encoder outputs
codebook = vq.quantize.embedding.weight  # (K, D), a trainable parameter
from_decoder = torch.randn(z.shape, generator=torch.Generator().manual_seed(seed)).to(z.device)


def run(quantiser):
    """z_q, L_VQ, tokens, and the gradients of <from_decoder, z_q> + L_VQ w.r.t. z and the codebook."""
    zz = z.clone().requires_grad_(True)
    z_q, loss, idx = quantiser(zz)
    grads = torch.autograd.grad((z_q * from_decoder).sum() + loss, [zz, codebook])
    return z_q.detach(), loss.detach(), idx, grads


ours = run(lambda zz: quantise(zz, codebook, cfg.vqgan.beta))
lib = run(lambda zz: (lambda out: (out[0], out[1], out[2]["indices"]))(vq.quantize(zz, stats=False)))
assert torch.equal(ours[2], lib[2]), "token ids differ from ulib's"
assert torch.allclose(ours[0], lib[0]) and torch.allclose(ours[1], lib[1]), "z_q or L_VQ differ from ulib's"
assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(ours[3], lib[3])), "gradients differ from ulib's"
ours_commitment_free = run(lambda zz: quantise(zz, codebook, 0.0))  # without the commitment term ...
assert torch.allclose(ours_commitment_free[3][0], from_decoder)  # ... z's gradient is exactly z_q's
print(f"tokens {tuple(ours[2].shape)}, z_q, L_VQ and both gradients match ulib's VectorQuantizer; "
      "straight-through gradient = the decoder's gradient: True")

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
outputs.show(outputs.save_grid(s, torch.cat([x, x_rec]), "02_reconstructions", nrow=len(x)))
print(f"rows: {len(x)} {held_name}, chosen at random (seeded), then their reconstructions")

# %% [markdown]
# How well does the VQGAN reconstruct images it never saw, and how much better does it do on its training
# images? The mean L1 error per image (pixels in [-1, 1], after rounding to 8 bits as a saved image would be)
# over every held-out image, against as many training images.

# %%
from ulib.app.prose import two_means_sentence

held_all = measuring.split_images(s, held)  # every held-out image, uint8
train_same = measuring.split_images(s, "train", len(held_all))  # as many training images, in a seeded random order
l1 = lambda u: (measuring.reconstruct(vq, u, s.device).float() - u.float()).abs().div(127.5).flatten(1).mean(1)
l1_held, l1_train = l1(held_all), l1(train_same)
outputs.write_table(s, [{"images": held_name, "n": len(l1_held), "l1_mean": l1_held.mean().item()},
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
tokens = session.latents(s)["val"].long()  # every validation image as tokens (N, h, w)
hist = readings.code_histogram(tokens, K)  # (K,) share of tokens per code
used = int((hist > 0).sum())
perplexity = math.exp(-torch.special.xlogy(hist, hist).sum().item())
fig, ax = plt.subplots(figsize=(7, 2.5))
ax.bar(range(K), hist.sort(descending=True).values.numpy(), width=1.0)
ax.set(xlabel="code (sorted by frequency)", ylabel="share of tokens",
       title=f"{used} of {K} codes used, perplexity {perplexity:.1f}")
outputs.save_figure(s, fig, "02_codebook_usage")
outputs.write_table(s, [{"codebook_size": K, "codes_used": used, "perplexity": perplexity}], "02_codebook_usage")
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
fig, axes = plt.subplots(1, 2, figsize=(9, 3))
axes[0].plot(steps, [r["l1"] for r in rows])
axes[0].set(title="L1 reconstruction (training batches)", xlabel="step")
axes[1].plot(steps, [r["codes_used"] for r in rows])
axes[1].set(title=f"codes used per batch (of K = {K})", xlabel="step")
fig.tight_layout()
outputs.save_figure(s, fig, "02_training_curves")
plt.show()

# %% [markdown]
# ## The adaptive weight along a GAN phase
#
# The toy shows the formula; what does λ do in training? Two short continuations of this run's VQGAN with the
# GAN term switched on (`gan_variants.gan_phase`: at `demo` 100 steps at a tenth of the VQGAN's learning rate, the
# setting notebook 13 uses for Table 5), identical but for the clamp: taming's *default* (λ clamped only at 10⁴)
# and the paper's λmax = 1. Same seed, same batches, same fresh discriminator: the two runs stay identical until
# λ first exceeds 1. They go into `RUN/gan_phase_*/`, logged every few steps, and never replace the run's VQGAN.

# %%
from ulib.config import apply_overrides

gan_steps, gan_lr = gan_variants.gan_phase(cfg)
variants = gan_variants.vqgan_variant_configs(cfg, gan_steps, with_control=False, lr=gan_lr)
every = {"vqgan_train.log_every": max(1, gan_steps // 25)}
phase = {name: gan_variants.train_child_vqgan(s, f"gan_phase_{slug}", apply_overrides(variants[name], every))
         for name, slug in (("default", "default"), ("lambda_max=1", "lambdamax1"))}
fig, axes = plt.subplots(1, 2, figsize=(11, 3))
lambda_stats = {}  # variant: (median, max) of the logged λ
for name, child in phase.items():
    log = [r for r in MetricsLog.read(child.vqgan_log)
           if r["step"] > cfg.vqgan_train.steps and r.get("d_weight") is not None]
    cap = variants[name].vqgan.disc_weight_max
    lam = [r["d_weight"] for r in log]
    axes[0].semilogy([r["step"] for r in log], lam, "o-", ms=3, label=f"{name} (clamp at {cap:g})")
    axes[1].plot([r["step"] for r in log], [r["l1"] for r in log], "o-", ms=3, label=name)
    lambda_stats[name] = (float(np.median(lam)), max(lam))
    print(f"{name:13s} clamp {cap:<8g} λ over {len(lam)} logged steps: median {np.median(lam):.3g}, "
          f"max {max(lam):.3g}, above 1 at {sum(v > 1 for v in lam)} of them")
axes[0].axhline(1.0, ls="--", c="gray", label="λmax = 1")
axes[0].set(title=f"adaptive weight λ (Eq. 9c), {gan_steps} GAN steps at lr {gan_lr:g}", xlabel="step")
axes[1].set(title="L1 reconstruction (training batches)", xlabel="step")
for ax in axes:
    ax.legend(fontsize=8)
fig.tight_layout()
outputs.save_figure(s, fig, "02_gan_phase_lambda")
plt.show()

# %% [markdown]
# ## DiffAugment
#
# With `vqgan.diff_aug` on, every image the discriminator sees, real or reconstructed, is augmented
# (colour, translation) with operations that are differentiable in the pixels, so the generator is
# trained *through* them and the discriminator cannot tell real from fake by the augmentation (the run's
# settings, printed at the top, say whether its GAN term and DiffAugment were on). Rows: the input, then three
# augmentations of it.

# %%
from ulib.vq.diffaug import diff_augment

g = s.generator()
x4 = x[:4].clone().requires_grad_(True)
augmented = [diff_augment(x4, "color,translation", generator=g) for _ in range(3)]
outputs.show(outputs.save_grid(s, torch.cat([x4.detach()] + [a.detach() for a in augmented]), "02_diffaug", nrow=4))

# %%
# NBVAL_CHECK_OUTPUT
augmented[0].sum().backward()
print("gradient reaches the input pixels:", bool(x4.grad.abs().sum() > 0),
      "| shape kept:", tuple(augmented[0].shape) == tuple(x4.shape))

# %% [markdown]
# ## Reading
#
# **What to notice.** The quantiser is ten lines and one trick: the straight-through estimator lets the encoder learn
# through an argmin. The two halves of Eq. 5 pull in opposite directions, codes towards the encoder outputs and the
# encoder towards its codes, and where β sits decides how hard each is pulled. Codebook use is the health check of
# stage 1: a code nobody chooses is a symbol the prior never gets. In the GAN phase, watch λ: unclamped it grows as
# large as the ratio of the two gradients makes it (a demo GAN phase at the VQGAN's own learning rate, 1e-3, saw it
# swing between 0.08 and 11.5; see notebook 13), clamped at λmax = 1 the GAN term can never outweigh the
# reconstruction term. The table gives this run's λ along its two continuations.
#
# **Against the paper.** The paper reports codebook collapse on all its datasets, "often a fraction of the codes in
# use", and chose plain argmax quantisation after trying k-means initialisation and code recycling (supplement). This
# demo recycles dead codes, which at 1,400 steps keeps most codes alive (the table below). The paper's λ clamp is
# judged by reconstruction FID after 500k steps (Table 5, notebook 13); here it is shown along 100 steps.
#
# **Why it differs at this scale.** Without the GAN and LPIPS terms, the demo VQGAN optimises L1 alone, so its
# reconstructions are blurrier than the paper's, which matters more at 32 px where one token covers a quarter of an
# eye. Held-out reconstructions (families the VQGAN never saw) against training ones show how much of the decoder's
# skill transfers to unseen designs.

# %%
shown = readings.reading(s, "02_vqgan", [
    {"what": "codes in use", "paper": "collapse on every dataset, often a fraction of the 1,024 codes in use "
     "(supplement); argmax quantisation, no recycling",
     "this run": f"{used} of {K}, perplexity {perplexity:.1f}, dead codes restarted every {restart} steps"
     if restart else f"{used} of {K}, perplexity {perplexity:.1f}, no restarts"},
    {"what": "held-out reconstruction L1", "paper": "not reported (Table 5 gives reconstruction FID after 500k steps)",
     "this run": f"{l1_held.mean():.3f} on {held} images, {l1_train.mean():.3f} on training images"},
    *({"what": f"λ along the GAN phase ({name})", "paper": "clamped at λmax = 1 (Eq. 9c)",
       "this run": f"median {med:.3g}, max {top:.3g} over {gan_steps} steps"}
      for name, (med, top) in lambda_stats.items())])

# %% [markdown]
# ## Exercises
#
# 1. **Where does β go?** Write the official code's form of Eq. 5 (β on the codebook term) beside the paper's and
#    compare their values and gradients. *Expected:* the same value, (1 + β)·mse; with β = 0.25 the paper's form
#    gives the codebook a 4× larger gradient and the encoder a 4× smaller one.
#
#    <details><summary>Solution</summary>
#
#    ```python
#    zz = z.clone().requires_grad_(True)
#    zq = codebook[quantise(zz, codebook, 0.0)[2]].permute(0, 3, 1, 2)
#    paper = (zz.detach() - zq).pow(2).mean() + cfg.vqgan.beta * (zq.detach() - zz).pow(2).mean()
#    official = (zq.detach() - zz).pow(2).mean() + cfg.vqgan.beta * (zq - zz.detach()).pow(2).mean()
#    for name, loss in (("paper", paper), ("official", official)):
#        g_encoder, g_codebook = torch.autograd.grad(loss, [zz, codebook])
#        print(name, loss.item(), g_encoder.norm().item(), g_codebook.norm().item())
#    ```
#    </details>
#
# 2. **A dead code.** Move one code far away (`codebook[0] + 100`) and encode the held-out images again. *Expected:* code
#    0 is never chosen, so it receives no gradient from Eq. 5 and would stay dead without a restart
#    (`VectorQuantizer.restart_codes` is what `vqgan.code_restart_every` calls).
#
#    <details><summary>Solution</summary>
#
#    ```python
#    with torch.no_grad():
#        saved = vq.quantize.embedding.weight[0].clone()
#        vq.quantize.embedding.weight[0] += 100
#        print("code 0 used:", bool((vq.encode(x) == 0).any()))
#        vq.quantize.embedding.weight[0] = saved
#    ```
#    </details>
#
# 3. **λ by hand.** In the toy above, at which c does the clamp start to bite? *Expected:* λ = √20 / (c√2) = √10 / c
#    reaches 1 at c = √10 ≈ 3.16; for smaller c the clamp holds λ at 1.
#
#    <details><summary>Solution</summary>
#
#    ```python
#    for c in (2.0, 3.0, math.sqrt(10), 4.0):
#        print(c, adaptive_weight((w ** 2).sum(), c * w.sum(), w, max_weight=1.0).item())
#    ```
#    </details>

# %% [markdown]
# ## References
#
# - S. Bond-Taylor, P. Hessey, H. Sasaki, T. P. Breckon, C. G. Willcocks. *Unleashing Transformers: Parallel Token Prediction with Discrete Absorbing Diffusion for Fast High-Resolution Image Generation from Vector-Quantized Codes.* ECCV 2022. [arXiv:2111.12701](https://arxiv.org/abs/2111.12701)
# - A. van den Oord, O. Vinyals, K. Kavukcuoglu. *Neural Discrete Representation Learning* (VQ-VAE). NeurIPS 2017. [arXiv:1711.00937](https://arxiv.org/abs/1711.00937)
# - P. Esser, R. Rombach, B. Ommer. *Taming Transformers for High-Resolution Image Synthesis* (VQGAN). CVPR 2021. [arXiv:2012.09841](https://arxiv.org/abs/2012.09841)
# - Y. Bengio, N. Léonard, A. Courville. *Estimating or Propagating Gradients Through Stochastic Neurons for Conditional Computation* (the straight-through estimator). 2013. [arXiv:1308.3432](https://arxiv.org/abs/1308.3432)
# - P. Isola, J.-Y. Zhu, T. Zhou, A. A. Efros. *Image-to-Image Translation with Conditional Adversarial Networks* (the patch discriminator). CVPR 2017. [arXiv:1611.07004](https://arxiv.org/abs/1611.07004)
# - R. Zhang, P. Isola, A. A. Efros, E. Shechtman, O. Wang. *The Unreasonable Effectiveness of Deep Features as a Perceptual Metric* (LPIPS). CVPR 2018. [arXiv:1801.03924](https://arxiv.org/abs/1801.03924)
# - S. Zhao, Z. Liu, J. Lin, J.-Y. Zhu, S. Han. *Differentiable Augmentation for Data-Efficient GAN Training.* NeurIPS 2020. [arXiv:2006.10738](https://arxiv.org/abs/2006.10738)
# - P. Dhariwal, H. Jun, C. Payne, J. W. Kim, A. Radford, I. Sutskever. *Jukebox: A Generative Model for Music* (restarting dead codes). 2020. [arXiv:2005.00341](https://arxiv.org/abs/2005.00341)
# - OpenMoji, the open-source emoji and icon project (HfG Schwäbisch Gmünd), [openmoji.org](https://openmoji.org), CC BY-SA 4.0: the kit's built-in dataset.
