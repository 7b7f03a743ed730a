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
# # 12 · An offline metric for emoji: FID, KID and PRDC in an OpenMoji feature space
#
# **Reproduces:** the measuring stick for the paper's Tables 1-5 at CPU scale. The paper computes FID and PRDC on Inception features, which cannot be downloaded offline and know nothing of emoji; this notebook explains the kit's own feature network, shows that it behaves as a metric, and then measures the run's reconstructions and samples against the real noise floor.
#
# **Needs:** the shipped weights `ulib/assets/openmoji_features.pt` (made by `python -m ulib train-features`), and notebook 01's run directory (VQGAN and prior; trained here when missing). Every stage is *load if present, else train*: the notebook reuses what the run
# directory holds and trains only what is missing, so the notebooks chain (run them in order, or let
# `python -m ulib reproduce` do it).
#
# **Time:** CPU: about 1.5 min with `smoke`, 2 min with `demo` once the run exists (measured on 2 cores). GPU: seconds.
#
# **Writes:** figures (PNG) and tables (CSV) into `RUN/results/`.

# %% tags=["parameters"]
profile = "smoke"  # smoke (CI, seconds) | demo (CPU, minutes) | ffhq, churches, bedrooms (GPU, the paper's settings)
run_dir = "../runs/nb-smoke"  # run directory shared by every notebook (relative to notebooks/); one per profile
device = "auto"  # 'auto' (cuda, then mps, then cpu), 'cpu', 'cuda', ...
seed = 0  # seed of this notebook's sampling and figures (training uses the config's own seed)
overrides = []  # config overrides, each written as for `--set` on the command line (see the README)
n_half = 0  # images in each half of the real set for the metric checks; 0: by profile (smoke 200, demo 800)
n_samples = 0  # prior samples and reconstructions measured at the end; 0: by profile (smoke 40, demo 300)
draws = 0  # bootstrap resamples behind every ±; 0: by profile (smoke 2, demo 5)

# %%
import matplotlib.pyplot as plt
import torch

from ulib.app import notebook as nbu

s = nbu.setup(profile, run_dir, device, seed, overrides)  # absolute run dir, config, device; RUN/results/
cfg = s.cfg
K, T, L = cfg.vqgan.codebook_size, cfg.prior.total_steps, cfg.latent_size ** 2
print(f"profile {cfg.profile} | device {s.device} | {cfg.data.dataset} {cfg.data.img_size}px -> "
      f"{cfg.latent_size}x{cfg.latent_size} = {L} tokens, K = {K} codes, T = {T}")

sizes = nbu.quality_sizes(s, n_samples)
n_half, draws = n_half or sizes["n_half"], draws or sizes["draws"]
print(f"metric checks: {n_half} images per half | run quality: {sizes['n_samples']} images | "
      f"bootstrap draws: {draws}")

# %% [markdown]
# ## The feature network and its recipe
#
# A small CNN (32 → 16 → 8 → 4 px, global average pool to 256 features), trained once on every
# rendered OpenMoji emoji with two heads: *exemplar* (each emoji is its own class, seen under random
# shifts, zooms and flips) and *category* (the emoji's CLDR group, e.g. Smileys & Emotion, Flags;
# OpenMoji's own extras are one more). The augmentations are geometric only, so blur, noise and colour
# changes move the features. It is independent of the models under test: neither the VQGAN nor the
# prior saw it, nor it them. All emojis designed by OpenMoji (CC BY-SA 4.0).

# %%
# NBVAL_CHECK_OUTPUT
from ulib.eval import features as EF

feature_net, report = EF.load_feature_net()
print(f"trained on {report['n_emoji']} emoji (OpenMoji {report['openmoji_version']}), "
      f"{report['recipe']['epochs']} epochs, {sum(p.numel() for p in feature_net.parameters()):,} parameters")
print(f"exemplar accuracy on augmented views {report['exemplar_accuracy_augmented']:.3f}, "
      f"category accuracy {report['category_accuracy']:.3f}")
print(dict(zip(report["categories"], report["category_counts"])))

# %% [markdown]
# ## FID from scratch, checked against ulib
#
# FID $= \lVert \mu_1 - \mu_2 \rVert^2 + \operatorname{tr}(\Sigma_1 + \Sigma_2 - 2 (\Sigma_1 \Sigma_2)^{1/2})$
# on the features of two image sets. We split the emoji into two disjoint halves, compute it with numpy
# and scipy, and check it against `ulib.eval.metrics.fid` (torch-fidelity's statistics).

# %%
import numpy as np
import scipy.linalg

from ulib.data.openmoji import load_openmoji
from ulib.eval import compare as C
from ulib.eval import extractors as X
from ulib.eval import metrics as M

space = X.load_inception("openmoji", device=s.device)
emoji, _ = load_openmoji(32, cfg.data.cache_dir)
x = torch.from_numpy(emoji).permute(0, 3, 1, 2).contiguous()
perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
half_a, half_b = x[perm[:n_half]], x[perm[n_half: 2 * n_half]]
fa, fb = C.image_features(space, half_a), C.image_features(space, half_b)

a, b = fa.double().numpy(), fb.double().numpy()
mu1, mu2, s1, s2 = a.mean(0), b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)
covmean = scipy.linalg.sqrtm(s1 @ s2).real
fid_by_hand = float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))
print(f"FID real half vs real half (n = {n_half} each): by hand {fid_by_hand:.3f}, ulib {M.fid(fa, fb):.3f}")
assert abs(fid_by_hand - M.fid(fa, fb)) < 1e-3 * max(1.0, fid_by_hand)

# %% [markdown]
# ## Is it a metric?
#
# Half A against half B corrupted at growing strength. Strength 0 is the noise floor (real against
# real at the same n). A metric must get monotonically worse with blur, noise and patch shuffling, and
# a collapsed set (20 distinct images repeated) must lose recall and coverage while keeping precision.
# Error bars: bootstrap std over `draws` resamples of both sets.

# %%
from ulib.eval import metric_checks as MC

sweep = MC.sanity_sweep(lambda im: C.image_features(space, im), half_a, half_b, seed=seed, draws=draws)
nbu.write_table(s, sweep, "12_metric_sanity")
nbu.show_table(sweep, ["corruption", "strength", "unit", "n", "fid", "fid_std", "precision", "recall",
                       "density", "coverage", "coverage_std"])
fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
for ax, name in zip(axes, MC.CORRUPTIONS):
    rows = [r for r in sweep if r["corruption"] == name]
    ax.errorbar([r["strength"] for r in rows], [r["fid"] for r in rows],
                yerr=[r["fid_std"] for r in rows], fmt="o-", capsize=3, label="corrupted half B")
    ax.axhline(rows[0]["fid"], ls="--", c="gray", label="noise floor (real vs real)")
    ax.set(xlabel=rows[0]["unit"], ylabel="FID (openmoji features)", title=f"{name}, n = {rows[0]['n']}",
           yscale="log")
    ax.legend(fontsize=8)
fig.tight_layout()
nbu.save_figure(s, fig, "12_metric_sanity")
plt.show()

# %%
# NBVAL_CHECK_OUTPUT
for name in MC.CORRUPTIONS:
    fids = [r["fid"] for r in sweep if r["corruption"] == name]
    print(f"{name}: FID monotone in strength: {fids == sorted(fids)}")
col = next(r for r in sweep if r["corruption"] == "collapse")
print("collapsed set: recall below 0.25 and coverage below 0.25:", col["recall"] < 0.25, col["coverage"] < 0.25)

# %% [markdown]
# ## The run, measured
#
# Reference: a fixed random subset of the run's training images (`nbu.quality_meter`, as in notebooks
# 04 and 07). Rows: held-out real images (the noise floor at this n), their VQGAN reconstructions, and
# samples from the prior at the profile's sampling settings. A good VQGAN sits near the floor; samples
# sit above the reconstructions (the prior cannot beat its decoder).

# %%
vq, net = nbu.vqgan(s), nbu.prior(s)
meter = nbu.quality_meter(s, sizes["n_reference"])
quality, sets = nbu.run_quality(s, vq, net, meter, sizes["n_samples"], draws)
nbu.write_table(s, quality, "12_run_quality")
nbu.show_table(quality, ["set", "n_reference", "n", "fid", "fid_std", "kid", "precision", "recall",
                         "density", "coverage", "category_kl_bits", "features"])
print(f"samples' FID / reconstructions' FID = {quality[2]['fid_over_reconstructions']:.2f} "
      f"(the aim for the demo: at most 2)")
grid = torch.cat([x[:8] for x in sets.values()]).float().div(127.5).sub(1)  # uint8 -> [-1, 1]
nbu.show(nbu.save_grid(s, grid, "12_real_recon_samples", nrow=8))
print("rows: held-out real images, their reconstructions, prior samples")
