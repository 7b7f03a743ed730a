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
# # 04 · Step skipping: sample quality and time against the number of sampling steps
#
# **Reproduces:** Table 3 of the paper (FID against sampling steps, evenly spaced, temperature 1.0), measured in the kit's offline feature space with the noise floor beside it; then the same question for the two other decoding methods (MaskGIT's confidence and the official code's remask) at equal numbers of network calls: how few network calls cost less than a stated FID margin against T steps? Every setting is compared with random order at T steps as a paired difference (common sample seeds, shared reference resamples); the paper's two claims about Table 3 get a verdict each (`nbu.claim`); the samples at T steps get memorisation figures (nearest training images against test images').
#
# **Needs:** notebook 01's run directory (VQGAN and prior; trained here when missing); for the built-in dataset the shipped OpenMoji feature weights (notebook 12). Every stage is *load if present, else train*: the notebook reuses what the run
# directory holds and trains only what is missing, so the notebooks chain (run them in order, or let
# `python -m ulib reproduce` do it).
#
# **Time:** CPU: about 1.5 min with `smoke` (with its training, 3.5 min; estimate); with `demo` about 6 min (estimate: 3.4 min measured on 2 cores with 5 bootstrap draws and 300 samples for each of 11 settings, plus about 2.6 min for 200 draws per setting of FID and PRDC, 10 paired FID differences and the memorisation figures, each timed alone on one core at demo size). GPU, paper profiles: minutes for 2,000 samples per setting (estimate); the paper's own figures use 50,000 samples (`python -m ulib evaluate --steps S`).
#
# **Writes:** figures (PNG) and tables (CSV) into `RUN/results/`, and the verdicts on the paper's claims into `RUN/results/verdicts_04_step_skipping.json`.

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
fid_margin = 0.0  # "costs little": FID(S) - FID(T) below this; 0: the paper's largest relative rise at 100 of 256 steps x FID(T)

# %%
import matplotlib.pyplot as plt
import numpy as np
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
# independently given the same x_t: S network passes instead of T, and tokens revealed in the same
# step cannot see each other, which is where coherence can suffer.
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
# FID depends on n, so each setting is read against the **noise floor at the same n**: n test images
# (design families no model saw) scored exactly as samples are. `±` is a bootstrap standard
# deviation over `sizes['draws']` resamples of both the samples and the reference (KID's value is
# shown without one: its draws would cost most of the bootstrap's time). Notebook 12 checks how this
# feature space ranks blur, noise and patch shuffling.
#
# **Comparisons are paired.** Every setting samples from the same generator seed, and the random
# order draws all its randomness up front (one uniform per position for its reveal time, one per
# position for its token), so sample i of every random-order row starts from the same numbers (the
# cell below prints how many tokens sample i shares across rows, against two unrelated samples).
# Each setting is compared with random order at T steps by `meter.difference` (the two sets share
# every resample of the reference, and their samples are resampled as pairs), which gives the
# difference in FID with its 95 % bootstrap interval and p. The other two methods draw their
# randomness as they go, so their sample i is no closer to random order's than any other sample,
# and resampling them as pairs is then the same in law as resampling each set on its own.
#
# **What "costs little" means here.** The paper calls the rise in FID at 100 of 256 steps minor:
# +9 % (Churches), +8 % (Bedroom), +11 % (FFHQ). We take the largest of these, times our FID at T
# steps, as the margin (`fid_margin` overrides it), and say a setting costs less than the margin
# only when the upper end of its interval lies below it (a non-inferiority test); an interval that
# straddles the margin is "not resolved at this n", never "equal".

# %%
from ulib.eval import stats
from ulib.eval.quality import PRDC, with_floor
from ulib.paper import TABLE3_STEPS, table3_relative

DRAWN = ("fid", *PRDC)  # the figures whose ± the table quotes
vq, net = nbu.vqgan(s), nbu.prior(s)
meter = nbu.quality_meter(s, sizes["n_reference"], features)
floor = meter.floor(n, draws=sizes["draws"], seed=seed, figures=DRAWN)
print(f"feature space {meter.features} | reference: {meter.reference_name} | noise floor: the first {n} images of "
      f"{meter.holdout_name}: FID {floor['fid']:.2f} ± {floor['fid_std']:.2f} ({sizes['draws']} bootstrap draws)")
paper_rise = max(r["fid_ratio"] for r in table3_relative() if r["steps"] == 100) - 1  # FFHQ: 7.90 / 7.12 - 1

# %%
nbu.sample_set(s, vq, net, 8, steps=steps_list[-1], temperature=temperature)  # warm-up
rows, grids, shared = [], [], {}
settings = [("random", S) for S in steps_list] + [(m, S) for m in other_methods for S in other_list]
for method, S in settings:  # every setting from the same seed: common random numbers
    images, tokens, sec = nbu.sample_set(s, vq, net, n, steps=S, temperature=temperature, method=method)
    r = with_floor({"method": method, "steps": S, "network_calls": S, "seconds_per_image": sec,
                    "temperature": temperature, **meter.score(images, draws=sizes["draws"], seed=seed,
                                                              figures=DRAWN)}, floor)
    if not rows:  # the first setting, random order at T steps: the baseline of every comparison
        base, base_images, base_tokens = r, images, tokens
        margin = fid_margin or paper_rise * base["fid"]
    else:
        d = meter.difference(images, base_images, draws=sizes["draws"], seed=seed, paired=True, figures=("fid",))
        v = stats.verdict_of_difference(d, "fid", better="lower", label=f"FID {method} {S} - random {T}")
        cost = stats.non_inferiority(v, margin)[0]  # 'reproduced': costs less than the margin
        r.update(fid_minus_T=d["fid"], fid_minus_T_lo=d["fid_lo"], fid_minus_T_hi=d["fid_hi"], fid_minus_T_p=d["fid_p"],
                 vs_T=stats.direction(v), cost_below_margin={"reproduced": "yes", "not reproduced": "no"}.get(cost, cost),
                 difference=d, verdict=v)
    r["fid_ratio_to_T"] = r["fid"] / base["fid"]
    rows.append(r)
    if method == "random":
        grids.append(images[:8])
    if rows[1:]:  # share of positions where sample i has the token sample i has at T steps
        shared[(method, S)] = (tokens == base_tokens).float().mean().item()
chance = (base_tokens.roll(1, 0) == base_tokens).float().mean().item()  # sample i against sample i - 1
print("common random numbers: tokens sample i shares with sample i at T steps: "
      + ", ".join(f"{m} {S}: {v:.0%}" for (m, S), v in shared.items()) + f"; two different samples share {chance:.0%}")
print(f"baseline: random order at T = {T} steps, FID {base['fid']:.2f} ± {base['fid_std']:.2f}; margin for "
      f"'costs little': {margin:.2f} FID" + ("" if fid_margin else f" (the paper's largest rise at 100 of 256 steps, "
                                                                   f"+{100 * paper_rise:.0f} %, of our FID at T)"))

# %% [markdown]
# ## Memorisation at T steps
#
# FID does not see copying: the samples at T steps are set beside the training images (every image of
# the training split) in the feature space and in pixels. A near-copy is a sample closer to its nearest
# training image than the closest test image is to its own; the median ratio is the samples' median
# distance to the training set over the test images' (about 1 for fresh data, below 1 for samples that
# sit closer to training images than unseen data does); C_T (Meehan et al. 2020) below about -3 flags
# data-copying. (A run made before the test split compares with its validation images instead, and
# says so.) Below: the closest samples above their nearest training images.

# %%
from ulib.eval.memorisation import nearest_pairs_grid

report, train_images = nbu.memorisation(s, meter, base_images, seed=seed)
mem, held = report.row, "test" if nbu.has_test_split(s) else "validation"  # runs made before the test split: val
base.update(near_copy_share=mem["feat_near_copy_share"], near_copy_share_lo=mem["feat_near_copy_share_lo"],
            near_copy_share_hi=mem["feat_near_copy_share_hi"], median_ratio=mem["feat_median_ratio"],
            pix_near_copy_share=mem["pix_near_copy_share"], pix_median_ratio=mem["pix_median_ratio"], c_t=mem["feat_c_t"])
print(f"{n} samples (random, T = {T} steps) against all {mem['feat_n_train']} training images, baseline "
      f"{mem['feat_n_test_used']} {held} images: near-copies {mem['feat_near_copy_share']:.1%} "
      f"[{mem['feat_near_copy_share_lo']:.1%}, {mem['feat_near_copy_share_hi']:.1%}] in {meter.features} features, "
      f"{mem['pix_near_copy_share']:.1%} in pixels; median ratio {mem['feat_median_ratio']:.2f} (features), "
      f"{mem['pix_median_ratio']:.2f} (pixels); C_T {mem['feat_c_t']:.2f}; FID against train "
      f"{mem['feat_fid_train']:.1f}, against {held} {mem['feat_fid_test']:.1f} ({held} against train "
      f"{mem['feat_fid_test_to_train']:.1f})")
pairs = s.results / "table3_nearest_training.png"
nearest_pairs_grid(base_images, train_images, report.feat.indices, 16, distances=report.feat.distances,
                   upscale=nbu.upscale_for(cfg.data.img_size), path=pairs)
nbu.show(pairs)
print("top: the 16 samples nearest a training image (features), closest first; under each, that training image")

# %%
table = [{k: r.get(k) for k in ("method", "steps", "network_calls", "seconds_per_image", "n", "fid", "fid_std",
                                "floor_fid", "kid", "precision", "recall", "density", "coverage", "coverage_std",
                                "fid_ratio_to_T", "fid_minus_T", "fid_minus_T_lo", "fid_minus_T_hi", "fid_minus_T_p",
                                "vs_T", "cost_below_margin", "near_copy_share", "near_copy_share_lo",
                                "near_copy_share_hi", "median_ratio", "pix_near_copy_share", "pix_median_ratio",
                                "c_t", "features")}
         for r in rows]
nbu.write_table(s, table, "table3_steps")
nbu.show_table(table, ["method", "steps", "seconds_per_image", "fid", "fid_std", "floor_fid", "kid", "precision",
                       "recall", "coverage", "fid_minus_T", "fid_minus_T_lo", "fid_minus_T_hi", "fid_minus_T_p", "vs_T",
                       "cost_below_margin", "near_copy_share", "median_ratio"])

# %%
# NBVAL_CHECK_OUTPUT
print("settings measured:", [(r["method"], r["steps"]) for r in rows])
print("every setting has n samples and a bootstrap ±:", all(r["n"] == n and r["fid_std"] > 0 for r in rows))
print("every setting but the baseline has a paired difference with it:",
      all(r["difference"]["paired"] and r["difference"]["bootstrap_draws"] == sizes["draws"] for r in rows[1:]))

# %% [markdown]
# ## Quality against network calls
#
# Left: FID against the number of network calls for the three decoding methods (±: bootstrap std;
# grey: the noise floor at the same n). Middle: each setting's FID minus random order's at T steps,
# paired, with its 95 % interval; dashed: the margin for "costs little". Right: the shape of the paper's
# claim, FID(S) / FID(T) against S / T, ours (random, the paper's method) beside the paper's three
# datasets (Table 3, T = 256).

# %%
fig, (a, m, b) = plt.subplots(1, 3, figsize=(16, 3.8))
for j, method in enumerate(["random", *other_methods]):
    rs = [r for r in rows if r["method"] == method]
    a.errorbar([r["network_calls"] for r in rs], [r["fid"] for r in rs], yerr=[r["fid_std"] for r in rs],
               fmt="o-", capsize=3, label=method)
    rd = [r for r in rs if "fid_minus_T" in r]
    x = np.array([r["network_calls"] for r in rd]) * (1 + 0.04 * (j - 1))  # side by side on the log axis
    y = np.array([r["fid_minus_T"] for r in rd])
    m.errorbar(x, y, yerr=[y - [r["fid_minus_T_lo"] for r in rd], [r["fid_minus_T_hi"] for r in rd] - y],
               fmt="o", capsize=3, label=method)
a.axhspan(floor["fid"] - floor["fid_std"], floor["fid"] + floor["fid_std"], color="gray", alpha=0.3,
          label=f"noise floor (n = {n} test images)")
a.set(xlabel="network calls (steps)", ylabel=f"FID ({meter.features} features)",
      title=f"n = {n} per point, temperature {temperature}, seed {seed}")
a.legend(fontsize=8)
calls = sorted({r["network_calls"] for r in rows})
for ax in (a, m):
    ax.set_xscale("log")
    ax.set_xticks(calls, [str(c) for c in calls])
    ax.minorticks_off()
m.axhline(0, c="k", lw=0.8)
m.axhline(margin, c="gray", ls="--", label=f"margin +{margin:.1f}")
m.set(xlabel="network calls (steps)", ylabel=f"FID - FID(random, {T} steps)",
      title="paired differences, 95 % bootstrap intervals")
m.legend(fontsize=8)
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
    mine = [r for r in rows if r["method"] == method]
    ok = [r["steps"] for r in mine if r.get("cost_below_margin") == "yes"]
    print(f"{method:10s}: fewest network calls shown to cost less than +{margin:.1f} FID against random at T = {T} "
          f"(upper end of the 95 % interval below the margin): {min(ok) if ok else 'none at this n'} "
          f"(of {[r['steps'] for r in mine]})")
print(f"time per image at T steps: {base['seconds_per_image'] * 1000:.1f} ms on {s.device} "
      f"(the paper: {TABLE3_STEPS['seconds_per_image_at_256']} s at 256 steps, 256 px, one RTX 2080 Ti)")
nbu.show(nbu.save_grid(s, torch.cat(grids), "table3_samples", nrow=len(grids[0])))
print("rows of samples (random), top to bottom:", steps_list, "steps")

# %% [markdown]
# ## Verdicts on the paper's claims
#
# Two claims of the paper's Sect. 4.2.1 about Table 3, each judged by the paired difference above:
# that FID rises with fewer steps (at our step count nearest the paper's fewest, 50 of 256), and that
# the rise is minor, judged at about half the steps (the paper: "similar FID ... using half the
# number of steps") against the margin stated above.

# %%
by_steps = {r["steps"]: r for r in rows if r["method"] == "random" and r is not base}
if by_steps:
    paper = {d: dict(zip(TABLE3_STEPS["steps"], f)) for d, f in TABLE3_STEPS["fid"].items()}
    few = min(by_steps, key=lambda S: abs(np.log(S / T) - np.log(50 / 256)))  # nearest the paper's 50 of 256
    nbu.claim(s, "04_step_skipping", "fewer_steps_raise_fid", "FID increases with fewer sampling steps",
              "Table 3, 50 vs 256 steps: " + ", ".join(f"{d} {f[50]} vs {f[256]}" for d, f in paper.items()),
              stats.verdict_of_difference(by_steps[few]["difference"], "fid", better="higher",
                                          label=f"FID {few} - {T} steps (n = {n} each, paired)"))
    half = min(by_steps, key=lambda S: abs(np.log(S / T) - np.log(0.5)))
    nbu.claim(s, "04_step_skipping", "half_steps_cost_little",
              "The rise in FID with fewer steps is minor: about half the steps give similar FID",
              "Sect. 4.2.1 and Table 3: " + ", ".join(f"{d} +{100 * (f[100] / f[256] - 1):.0f} %"
                                                     for d, f in paper.items()) + " at 100 of 256 steps",
              stats.non_inferiority(by_steps[half]["verdict"], margin))
else:
    print("only one step count of random order measured: no verdict on Table 3's claims")
