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
# # 04 · Step skipping: sample quality and time against the number of sampling steps
#
# **Reproduces:** Table 3 of the paper (FID against sampling steps, evenly spaced, temperature 1.0), measured in the kit's offline feature space with the noise floor beside it; then the same question for the two other decoding methods (MaskGIT's confidence and the official code's remask) at equal numbers of network calls: how far below T steps can one go at equal quality?
#
# **Needs:** notebook 01's run directory (VQGAN and prior; trained here when missing); for the built-in dataset the shipped OpenMoji feature weights (notebook 12). Every stage is *load if present, else train*: the notebook reuses what the run
# directory holds and trains only what is missing, so the notebooks chain (run them in order, or let
# `python -m ulib reproduce` do it).
#
# **Time:** CPU: about 1 min with `smoke` (with its training, 3 min), 4.5 min with `demo` (measured on 2 cores, trained run present: 300 samples for each of 11 settings). GPU, paper profiles: minutes for 2,000 samples per setting (estimate); the paper's own figures use 50,000 samples (`python -m ulib evaluate --steps S`).
#
# **Writes:** figures (PNG) and tables (CSV) into `RUN/results/`.

# %% tags=["parameters"]
profile = "smoke"  # smoke (CI, seconds) | demo (CPU, minutes) | ffhq, churches, bedrooms (GPU, the paper's settings)
run_dir = "../runs/nb-smoke"  # run directory shared by every notebook (relative to notebooks/); one per profile
device = "auto"  # 'auto' (cuda, then mps, then cpu), 'cpu', 'cuda', ...
seed = 0  # seed of this notebook's sampling and figures (training uses the config's own seed)
overrides = []  # config overrides, each written as for `--set` on the command line (see the README)
steps = []  # sampling steps to compare; empty: T, T/2, T/4, T/8, T/16 of the profile's T
other_methods = ["confidence", "remask"]  # compared with 'random' at equal network calls
other_steps = []  # steps for the other methods; empty: the three smallest of `steps`
n_samples = 0  # samples per setting; 0: by profile (smoke 40, demo 300, GPU 2000)
temperature = 1.0  # the paper's Table 3 temperature
features = "auto"  # feature space: 'auto' (openmoji for the built-in dataset), 'inception', ...

# %%
import matplotlib.pyplot as plt
import torch

from ulib.app import notebook as nbu

s = nbu.setup(profile, run_dir, device, seed, overrides)  # absolute run dir, config, device; RUN/results/
cfg = s.cfg
K, T, L = cfg.vqgan.codebook_size, cfg.prior.total_steps, cfg.latent_size ** 2
print(f"profile {cfg.profile} | device {s.device} | {cfg.data.dataset} {cfg.data.img_size}px -> "
      f"{cfg.latent_size}x{cfg.latent_size} = {L} tokens, K = {K} codes, T = {T}")

steps_list = steps or sorted({max(1, T // d) for d in (1, 2, 4, 8, 16)}, reverse=True)
other_list = other_steps or steps_list[-3:]
sizes = nbu.quality_sizes(s, n_samples)
n = sizes["n_samples"]
print("steps:", steps_list, "| other methods at", other_list, "| temperature:", temperature,
      "| samples per setting:", n)

# %% [markdown]
# ## Skipping steps
#
# The reverse process walks an evenly spaced schedule T = t_0 > t_1 > ... > t_S = 0. From t to s
# each still-masked token is unmasked with probability (t − s)/t, its value drawn from the
# network's prediction. With S < T steps, more tokens are revealed per step and drawn
# independently given the same x_t: S network passes instead of T, at some cost in coherence.
# `time_schedule` gives the schedule:

# %%
# NBVAL_CHECK_OUTPUT
from ulib.sample.absorbing import time_schedule

print("T = 16 in 4 steps:", time_schedule(16, 4))
print("T = 16 in 3 steps:", time_schedule(16, 3))
s_, t_ = 16, 12  # from t = 16 to s = 12: each masked token is revealed with probability (t - s) / t
print("reveal probability from 16 to 12:", (s_ - t_) / s_)

# %% [markdown]
# ## The measuring stick
#
# FID, KID and precision/recall/density/coverage against a fixed random subset of the training
# images (the paper scores against the training set), in the feature space named in every table.
# FID depends on n, so each setting is read against the **noise floor at the same n**: n held-out
# real images scored exactly as samples are. `±` is a bootstrap standard deviation (resampling
# both the samples and the reference). Notebook 12 shows that this feature space ranks blur,
# noise and patch shuffling monotonically.

# %%
from ulib.eval.quality import with_floor, within_noise

vq, net = nbu.vqgan(s), nbu.prior(s)
meter = nbu.quality_meter(s, sizes["n_reference"], features)
floor = meter.floor(n, draws=sizes["draws"], seed=seed)
print(f"feature space {meter.features} | reference: {meter.n_reference} training images | "
      f"noise floor at n = {n}: FID {floor['fid']:.2f} ± {floor['fid_std']:.2f}")

# %%
nbu.sample_set(s, vq, net, 8, steps=steps_list[-1], temperature=temperature)  # warm-up
rows, grids = [], []
settings = [("random", S) for S in steps_list] + [(m, S) for m in other_methods for S in other_list]
for i, (method, S) in enumerate(settings):
    images, tokens, sec = nbu.sample_set(s, vq, net, n, steps=S, temperature=temperature, method=method,
                                         seed_offset=i)
    r = meter.score(images, draws=sizes["draws"], seed=seed)
    rows.append(with_floor({"method": method, "steps": S, "network_calls": S, "seconds_per_image": sec,
                            "temperature": temperature, **r}, floor))
    if method == "random":
        grids.append(images[:8])
base = rows[0]  # random at T steps
for r in rows:
    r["fid_ratio_to_T"] = r["fid"] / base["fid"]
    r["within_noise_of_T"] = within_noise(r, base)
table = [{k: r[k] for k in ("method", "steps", "network_calls", "seconds_per_image", "n", "fid", "fid_std",
                            "floor_fid", "kid", "precision", "recall", "density", "coverage",
                            "coverage_std", "fid_ratio_to_T", "within_noise_of_T", "features")}
         for r in rows]
nbu.write_table(s, table, "table3_steps")
nbu.show_table(table)

# %%
# NBVAL_CHECK_OUTPUT
print("settings measured:", [(r["method"], r["steps"]) for r in rows])
print("every setting has n samples and a bootstrap ±:", all(r["n"] == n and r["fid_std"] > 0 for r in rows))

# %% [markdown]
# ## Quality against network calls
#
# Left: FID against the number of network calls for the three decoding methods (±: bootstrap std;
# grey: the noise floor at the same n). Right: the shape of the paper's claim, FID(S) / FID(T)
# against S / T, ours (random, the paper's method) beside the paper's three datasets (Table 3, T = 256).

# %%
from ulib.paper import TABLE3_STEPS, table3_relative

fig, (a, b) = plt.subplots(1, 2, figsize=(12, 3.8))
for method in ["random", *other_methods]:
    rs = [r for r in rows if r["method"] == method]
    a.errorbar([r["network_calls"] for r in rs], [r["fid"] for r in rs], yerr=[r["fid_std"] for r in rs],
               fmt="o-", capsize=3, label=method)
a.axhspan(floor["fid"] - floor["fid_std"], floor["fid"] + floor["fid_std"], color="gray", alpha=0.3,
          label=f"noise floor (n = {n})")
a.set(xscale="log", xlabel="network calls (steps)", ylabel=f"FID ({meter.features} features)",
      title=f"n = {n} per point, temperature {temperature}, seed {seed}")
a.legend(fontsize=8)
rs = [r for r in rows if r["method"] == "random"]
b.plot([r["steps"] / T for r in rs], [r["fid_ratio_to_T"] for r in rs], "o-", c="k", label=f"ours (T = {T})")
for d in TABLE3_STEPS["fid"]:
    p = [r for r in table3_relative() if r["dataset"] == d]
    b.plot([r["steps_fraction"] for r in p], [r["fid_ratio"] for r in p], "s--", label=f"paper, {d}")
b.set(xscale="log", xlabel="S / T", ylabel="FID(S) / FID(T)", title="the paper's Table 3, relative")
b.legend(fontsize=8)
fig.tight_layout()
nbu.save_figure(s, fig, "table3_steps")
plt.show()
for method in ["random", *other_methods]:
    ok = [r["steps"] for r in rows if r["method"] == method and r["within_noise_of_T"]]
    print(f"{method:10s}: fewest steps within 2 bootstrap std of random at T = {T}: "
          f"{min(ok) if ok else 'none measured'} (of {[r['steps'] for r in rows if r['method'] == method]})")
print(f"time per image at T steps: {base['seconds_per_image'] * 1000:.1f} ms on {s.device} "
      f"(the paper: {TABLE3_STEPS['seconds_per_image_at_256']} s at 256 steps, 256 px, one RTX 2080 Ti)")
nbu.show(nbu.save_grid(s, torch.cat(grids), "table3_samples", nrow=len(grids[0])))
print("rows of samples (random), top to bottom:", steps_list, "steps")
