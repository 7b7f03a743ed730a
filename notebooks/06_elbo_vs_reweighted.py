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
# # 06 · Training on the ELBO vs the reweighted ELBO
#
# **Reproduces:** Fig. 5 of the paper: the validation negative ELBO during training with the plain ELBO (Eq. 6) and with the reweighted loss (Eq. 7). Short trainings from scratch, identical except for the loss, repeated over three training seeds.
#
# **Needs:** notebook 01's run directory (its VQGAN and token cache; the priors go into `RUN/fig5_<loss>/` (seed 0) and `RUN/fig5_<loss>_seed<N>/` and never replace `RUN/prior.pt`). Every stage is *load if present, else train*: the notebook reuses what the run
# directory holds and trains only what is missing, so the notebooks chain (run them in order, or let
# `python -m ulib reproduce` do it).
#
# **Time:** CPU: about 20 s with `smoke` (measured on 2 cores), about 30 min with `demo` (measured on 2 cores: six 2,000-step trainings of about 5 min each; 34 min with another job on the cores for part of it). GPU, paper profiles: set `train_steps` to a fraction of the 2M steps (tens of thousands give a readable curve in hours; estimate).
#
# **Writes:** figures (PNG) and tables (CSV) into `RUN/results/`.

# %% tags=["parameters"]
profile = "smoke"  # smoke (CI, seconds) | demo (CPU, minutes) | ffhq, churches, bedrooms (GPU, the paper's settings)
run_dir = "../runs/nb-smoke"  # run directory shared by every notebook (relative to notebooks/); one per profile
device = "auto"  # 'auto' (cuda, then mps, then cpu), 'cpu', 'cuda', ...
seed = 0  # seed of this notebook's sampling and figures (training uses the config's own seed)
overrides = []  # config overrides, each written as for `--set` on the command line (see the README)
train_steps = 0  # steps of each training; 0: the profile's prior_train.steps
eval_every = 0  # steps between validation points; 0: train_steps / 8
losses = ["elbo", "reweighted_elbo"]  # loss types to compare (Eq. 6, Eq. 7)
seeds = [0, 1, 2]  # training seeds (initial weights, t, masks, batch order); one training per loss and seed

# %%
import matplotlib.pyplot as plt

from ulib.app import notebook as nbu

s = nbu.setup(profile, run_dir, device, seed, overrides)  # absolute run dir, config, device; RUN/results/
cfg = s.cfg
K, T, L = cfg.vqgan.codebook_size, cfg.prior.total_steps, cfg.latent_size ** 2
print(f"profile {cfg.profile} | device {s.device} | {cfg.data.dataset} {cfg.data.img_size}px -> "
      f"{cfg.latent_size}x{cfg.latent_size} = {L} tokens, K = {K} codes, T = {T}")

n_steps = train_steps or cfg.prior_train.steps
every = eval_every or max(1, n_steps // 8)

# %% [markdown]
# Every training logs the same figure, the one-draw negative ELBO on validation grids (bits per
# token), whatever its loss. EMA is switched off here: in short runs the EMA weights lag far
# behind the trained ones and would hide the difference. Each seed changes the initial weights, the
# masks and times drawn, and the batch order, the same for both losses: so the two losses are compared
# seed by seed (a paired difference), and the spread over seeds is the run-to-run noise.

# %%
from ulib.config import apply_overrides

configs = {(loss, sd): apply_overrides(cfg, {
    "seed": sd, "prior.kind": "absorbing", "prior.loss_type": loss, "prior_train.steps": n_steps,
    "prior_train.log_every": every, "prior_train.image_every": every, "prior_train.ckpt_every": n_steps,
    "prior_train.ema_decay": 0.0}) for loss in losses for sd in seeds}
name = lambda loss, sd: f"fig5_{loss}" if sd == 0 else f"fig5_{loss}_seed{sd}"
runs = {key: nbu.train_child_prior(s, name(*key), c) for key, c in configs.items()}

# %%
# NBVAL_CHECK_OUTPUT
from ulib.config import Config


def flat(c: Config) -> dict:
    return {f"{sec}.{k}": v for sec, d in c.to_dict().items() if isinstance(d, dict) for k, v in d.items()}


a, b = (flat(configs[(loss, seeds[0])]) for loss in losses[:2])
print("the trainings of one seed differ only in:", sorted(k for k in a if a[k] != b[k]))

# %%
import numpy as np

from ulib.eval.quality import paired_difference
from ulib.io.logs import MetricsLog

table, curves = [], {}
for (loss, sd), run in runs.items():
    rows = MetricsLog.read(run.prior_log)
    curves[(loss, sd)] = {r["step"]: r["val_elbo_bpt"] for r in rows if r.get("val_elbo_bpt") is not None}
    table += [{"loss_type": loss, "step": st, "val_elbo_bpt": v, "seed": sd} for st, v in curves[(loss, sd)].items()]
steps = sorted(curves[(losses[0], seeds[0])])
summary = []
fig, ax = plt.subplots(figsize=(7, 3.5))
for loss, colour in zip(losses, ("C0", "C1")):
    per_seed = np.array([[curves[(loss, sd)][st] for st in steps] for sd in seeds])  # (seeds, points)
    mean, std = per_seed.mean(0), per_seed.std(0, ddof=1) if len(seeds) > 1 else np.zeros(len(steps))
    for line in per_seed:
        ax.plot(steps, line, c=colour, alpha=0.25, lw=0.8)
    ax.plot(steps, mean, "o-", c=colour, label=f"{loss}: mean of {len(seeds)} seeds")
    ax.fill_between(steps, mean - std, mean + std, color=colour, alpha=0.2)
    summary += [{"loss_type": loss, "step": st, "seeds": len(seeds), "val_elbo_bpt_mean": m,
                 "val_elbo_bpt_std": sd_} for st, m, sd_ in zip(steps, mean, std)]
ax.set(xlabel="step", ylabel="validation negative ELBO (bits per token)",
       title=f"Fig. 5: ELBO vs reweighted ELBO ({len(seeds)} seeds: mean, ±1 std band, thin: each seed)")
ax.legend()
nbu.save_figure(s, fig, "fig5_val_elbo")
nbu.write_table(s, table, "fig5_val_elbo")
nbu.write_table(s, summary, "fig5_seed_summary")
plt.show()

# %% [markdown]
# ## The paper's claim, seed by seed
#
# The paper: the reweighted ELBO reaches a lower validation ELBO than training on the ELBO itself. At
# every validation point, the difference reweighted − ELBO per seed, its mean and standard error
# over seeds (n = the number of seeds; each point uses the same validation grids and draws).

# %%
if len(losses) == 2:
    diffs = []
    for st in steps:
        d = paired_difference([curves[(losses[1], sd)][st] for sd in seeds],
                              [curves[(losses[0], sd)][st] for sd in seeds]) if len(seeds) > 1 else None
        diffs.append({"step": st, "seeds": len(seeds),
                      "difference_bpt": d["mean_difference"] if d else curves[(losses[1], seeds[0])][st] - curves[(losses[0], seeds[0])][st],
                      "stderr": d["se"] if d else None})
    nbu.show_table(diffs)
    last = diffs[-1]
    if last["stderr"]:
        z = last["difference_bpt"] / last["stderr"]
        print(f"after {steps[-1]} steps: {losses[1]} - {losses[0]} = {last['difference_bpt']:+.3f} ± "
              f"{last['stderr']:.3f} bits/token over {len(seeds)} seeds ({z:+.1f} SE): "
              + ("the paper's ordering holds" if z < -2 else "not separated from noise" if z < 2 else "reversed"))
