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
# # 07 · Sampling temperature: quality, diversity and dataset bias (Fig. 6, Tables 1 and 2)
#
# **Reproduces:** Fig. 6 of the paper (the effect of the sampling temperature) and the t = 1.0 / t = 0.9 rows of its Tables 1 and 2 (FID, precision, recall, density, coverage). Lower temperatures sharpen p(x_0 | x_t): cleaner, more alike samples; the paper warns that they also amplify the data's biases. We measure that rather than describe it: the category histogram of the samples (the OpenMoji feature network's category head) against the data's, as KL divergence, entropy and the share of the data's commonest category.
#
# **Needs:** notebook 01's run directory (VQGAN and prior; trained here when missing); the shipped OpenMoji feature weights for the built-in dataset (notebook 12). Every stage is *load if present, else train*: the notebook reuses what the run
# directory holds and trains only what is missing, so the notebooks chain (run them in order, or let
# `python -m ulib reproduce` do it).
#
# **Time:** CPU: about 40 s with `smoke`, 3.5 min with `demo` (measured on 2 cores, trained run present: 300 samples per temperature). GPU, paper profiles: minutes for 2,000 samples per temperature (estimate).
#
# **Writes:** figures (PNG) and tables (CSV) into `RUN/results/`.

# %% tags=["parameters"]
profile = "smoke"  # smoke (CI, seconds) | demo (CPU, minutes) | ffhq, churches, bedrooms (GPU, the paper's settings)
run_dir = "../runs/nb-smoke"  # run directory shared by every notebook (relative to notebooks/); one per profile
device = "auto"  # 'auto' (cuda, then mps, then cpu), 'cpu', 'cuda', ...
seed = 0  # seed of this notebook's sampling and figures (training uses the config's own seed)
overrides = []  # config overrides, each written as for `--set` on the command line (see the README)
temperatures = [0.5, 0.7, 0.8, 0.9, 1.0, 1.2]  # softmax temperatures to compare (0.9 and 1.0: Tables 1, 2)
n_samples = 0  # samples per temperature; 0: by profile (smoke 40, demo 300, GPU 2000)
steps = 0  # sampling steps; 0: the profile's sample.steps (or T)
features = "auto"  # feature space: 'auto' (openmoji for the built-in dataset), 'inception', ...

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

sizes = nbu.quality_sizes(s, n_samples)
n, n_steps = sizes["n_samples"], steps or cfg.sample.steps or T
print("temperatures:", temperatures, "| samples per temperature:", n, "| steps:", n_steps)

# %% [markdown]
# ## Temperature
#
# Each prediction is drawn from softmax(logits / τ). Checked by hand for logits (2, 1, 0): τ < 1
# moves probability onto the likeliest code, τ > 1 spreads it out.

# %%
# NBVAL_CHECK_OUTPUT
logits = torch.tensor([2.0, 1.0, 0.0])
for tau in (0.5, 1.0, 2.0):
    print(f"tau = {tau}:", [round(p, 4) for p in torch.softmax(logits / tau, 0).tolist()])

# %% [markdown]
# ## Bias, measured
#
# The feature network's category head sorts each image into one of its categories (for emoji: the
# Unicode CLDR groups, e.g. Smileys & Emotion, Flags). With $p$ the samples' category histogram and
# $q$ the reference's, bias amplification shows as a lower entropy $H(p) = -\sum_c p_c \log_2 p_c$ than
# the data's and a growing $\mathrm{KL}(p \,\|\, q) = \sum_c p_c \log_2 (p_c / q_c)$. By hand, and
# checked against `ulib`:

# %%
# NBVAL_CHECK_OUTPUT
import numpy as np

from ulib.eval.features import histogram_entropy, histogram_kl

p, q = np.array([0.5, 0.5, 0.0, 0.0]), np.array([0.25, 0.25, 0.25, 0.25])
kl_by_hand = sum(pc * math.log2(pc / qc) for pc, qc in zip(p, q) if pc > 0)
print(f"H(p) = {histogram_entropy(p):.4f} bits (by hand 1), H(q) = {histogram_entropy(q):.4f} (by hand 2)")
print(f"KL(p || q) = {histogram_kl(p, q):.4f} bits (by hand {kl_by_hand:.4f})")

# %%
from ulib.eval.diversity import token_entropy
from ulib.eval.quality import extract, with_floor

vq, net = nbu.vqgan(s), nbu.prior(s)
meter = nbu.quality_meter(s, sizes["n_reference"], features)
floor = meter.floor(n, draws=sizes["draws"], seed=seed)
rows, grids, histograms = [], [], {}
for i, tau in enumerate(temperatures):
    images, tokens, sec = nbu.sample_set(s, vq, net, n, steps=n_steps, temperature=tau, seed_offset=i)
    feats, logits = extract(meter.space, images)
    r = meter.score_features(feats, logits, draws=sizes["draws"], seed=seed)
    histograms[tau] = np.bincount(logits.argmax(1).numpy(), minlength=logits.shape[1]) / len(logits)
    rows.append(with_floor({"temperature": tau, "steps": n_steps, "token_entropy_bits": token_entropy(tokens, K),
                            **r}, floor))
    grids.append(images[:8])
columns = ["temperature", "n", "fid", "fid_std", "floor_fid", "precision", "precision_std", "recall",
           "recall_std", "density", "coverage", "coverage_std", "category_entropy_bits",
           "category_entropy_bits_std", "reference_entropy_bits", "category_kl_bits", "category_kl_bits_std",
           "top_category_share", "top_category_share_std", "reference_top_category_share",
           "token_entropy_bits", "features"]
fig6 = [{c: r[c] for c in columns} for r in rows]
nbu.write_table(s, fig6, "fig6_temperature")
nbu.show_table(fig6, ["temperature", "n", "fid", "fid_std", "floor_fid", "precision", "recall", "density",
                      "coverage", "category_entropy_bits", "reference_entropy_bits", "category_kl_bits",
                      "top_category_share", "reference_top_category_share"])

# %%
# NBVAL_CHECK_OUTPUT
print("temperatures measured:", [r["temperature"] for r in rows])
print("each row: n samples, a bootstrap ± and the floor at the same n:",
      all(r["n"] == n and r["fid_std"] > 0 and r["floor_fid"] == floor["fid"] for r in rows))

# %%
from ulib.eval.features import CATEGORIES

fig, axes = plt.subplots(2, 3, figsize=(13, 6.5))
ts = [r["temperature"] for r in rows]

def panel(ax, keys, title, floor_keys=()):
    for key in keys:
        ax.errorbar(ts, [r[key] for r in rows], yerr=[r.get(key + "_std", 0) for r in rows], fmt="o-",
                    capsize=3, label=key.replace("_bits", ""))
    for key in floor_keys:
        ax.axhline(floor[key], ls=":", c="gray")
    ax.set(xlabel="temperature", title=title)
    ax.legend(fontsize=8)

panel(axes[0, 0], ["fid"], f"FID ({meter.features}); dotted: noise floor, n = {n}", ["fid"])
panel(axes[0, 1], ["precision", "recall"], "precision, recall (dotted: floor)", ["precision", "recall"])
panel(axes[0, 2], ["density", "coverage"], "density, coverage (dotted: floor)", ["density", "coverage"])
top = CATEGORIES[meter.top_category] if meter.features == "openmoji" else f"class {meter.top_category}"
panel(axes[1, 0], ["top_category_share"], f"share of the data's commonest category ({top})")
axes[1, 0].axhline(rows[0]["reference_top_category_share"], ls="--", c="gray", label="data")
axes[1, 0].legend(fontsize=8)
panel(axes[1, 1], ["category_kl_bits"], "KL(samples || data) of categories (bits)", ["category_kl_bits"])
names = CATEGORIES if meter.features == "openmoji" else [str(c) for c in range(len(meter.ref_histogram))]
x = np.arange(len(meter.ref_histogram))
for j, (label, h) in enumerate([("data", meter.ref_histogram), (f"t = {ts[0]}", histograms[ts[0]]),
                                (f"t = {ts[-1]}", histograms[ts[-1]])]):
    axes[1, 2].bar(x + (j - 1) * 0.27, h, width=0.27, label=label)
axes[1, 2].set_xticks(x, names, rotation=75, fontsize=7)
axes[1, 2].set(title="category histograms", ylabel="fraction")
axes[1, 2].legend(fontsize=8)
fig.suptitle(f"Fig. 6 at {cfg.profile} scale: n = {n} samples per temperature, seed {seed}, "
             f"± bootstrap std ({sizes['draws']} draws)", fontsize=10)
fig.tight_layout()
nbu.save_figure(s, fig, "fig6_temperature")
plt.show()
nbu.show(nbu.save_grid(s, torch.cat(grids), "fig6_temperature_samples", nrow=len(grids[0])))
print("rows of samples, top to bottom: temperature", temperatures)

# %% [markdown]
# ## Tables 1 and 2: t = 1.0 and t = 0.9
#
# The paper reports both temperatures for its final models; its figures (256 px photographs,
# Inception features, 50,000 samples) are not comparable in value with ours, but the direction of
# each column between the two temperatures is.

# %%
from ulib.paper import table1_2_rows

ours = [dict({"data": cfg.data.dataset}, **{k: r[k] for k in ("temperature", "n", "fid", "fid_std",
        "precision", "recall", "density", "coverage", "features")}) for r in rows if r["temperature"] in (1.0, 0.9)]
nbu.write_table(s, ours, "table1_2_temperature")
nbu.show_table(ours)
paper = table1_2_rows(1.0) + table1_2_rows(0.9)
nbu.show_table(paper)
by_t = {r["temperature"]: r for r in ours}
if {1.0, 0.9} <= set(by_t):
    for key in ("fid", "precision", "recall", "density", "coverage"):
        ours_dir = by_t[0.9][key] - by_t[1.0][key]
        paper_dirs = [p9[key] - p1[key] for p1, p9 in zip(table1_2_rows(1.0), table1_2_rows(0.9))]
        print(f"{key:9s}: 0.9 - 1.0 ours {ours_dir:+.3f} | paper {', '.join(f'{d:+.2f}' for d in paper_dirs)}")
