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
# # 13 · Table 5: DiffAug and the λ clamp in the VQGAN's GAN phase
#
# **Reproduces:** Table 5 of the paper: reconstruction FID of four VQGANs that differ only in the GAN term of Eq. 9: *default* (taming's recipe: λ clamped only at 10⁴, no augmentation), λmax = 1 (Eq. 9c), DiffAug on every discriminator input, and both.
#
# **Needs:** notebook 01's run directory (its trained VQGAN is the shared starting point; the four variants and a no-GAN control go into `RUN/table5_*/` and never replace `RUN/vqgan.pt`). Every stage is *load if present, else train*: the notebook reuses what the run
# directory holds and trains only what is missing, so the notebooks chain (run them in order, or let
# `python -m ulib reproduce` do it).
#
# **Time:** CPU: about 2 min with `smoke` (measured on 2 cores), about 7 min with `demo` (estimate from the measured 1.7 min per 100-step continuation on 2 cores: five of them, 800 reconstructions each; `study` runs 400 steps each, about 30 min). GPU, paper profiles: the paper trains each variant 500k steps; set `gan_steps` to what the budget allows (estimate: 1-2 s per step at 256 px).
#
# **Writes:** figures (PNG) and tables (CSV) into `RUN/results/`.

# %% tags=["parameters"]
profile = "smoke"  # smoke (CI, seconds) | demo (CPU, minutes) | ffhq, churches, bedrooms (GPU, the paper's settings)
run_dir = "../runs/nb-smoke"  # run directory shared by every notebook (relative to notebooks/); one per profile
device = "auto"  # 'auto' (cuda, then mps, then cpu), 'cpu', 'cuda', ...
seed = 0  # seed of this notebook's sampling and figures (training uses the config's own seed)
overrides = []  # config overrides, each written as for `--set` on the command line (see the README)
gan_steps = 0  # steps of each continuation with the GAN on; 0: by profile (smoke 4, demo 100, GPU 20,000)
gan_lr = 0.0  # learning rate of the continuations (both players); 0: by profile (demo 1e-4, else the profile's own)
n_images = 0  # held-out images reconstructed by every variant; 0: by profile (smoke 200, demo 800)
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

sizes = nbu.quality_sizes(s)
gan_steps = gan_steps or {"smoke": 4, "demo": 100, "study": 400}.get(cfg.profile, 20_000)
gan_lr = gan_lr or {"demo": 1e-4, "study": 1e-4}.get(cfg.profile, cfg.vqgan_train.lr)
n_images, draws = n_images or sizes["n_half"], draws or sizes["draws"]
print(f"GAN phase: {gan_steps} steps per variant at lr {gan_lr:g}, from step {cfg.vqgan_train.steps} | "
      f"{n_images} reconstructions per variant | bootstrap draws: {draws}")

# %% [markdown]
# ## The four variants, and a control
#
# The paper switches the GAN term on after a reconstruction-only phase (its `disc_start_step` is
# 30,001), so the four VQGANs of Table 5 share that phase. Here each variant continues the run's
# trained VQGAN for `gan_steps` steps with a fresh discriminator; only two settings differ between
# them (printed below). A fifth run, *no GAN*, continues for the same steps without the
# discriminator: the GAN's effect is measured against more training alone, not against a VQGAN
# that trained less.
#
# The learning rate of the continuation: the paper trains at a constant 1.35e-5 throughout; the
# demo's VQGAN is trained fast at 1e-3, and at that rate the GAN phase wrecked every variant (measured
# on the demo run: training L1 rose from 0.09 to 0.46-0.78 within 250 steps, the adaptive weight
# swinging between 0.08 and 11.5). So `demo` continues at 1e-4, ten times lower, every variant and the
# control alike.

# %%
# NBVAL_CHECK_OUTPUT
configs = nbu.vqgan_variant_configs(cfg, gan_steps, lr=gan_lr)
for name, c in configs.items():
    gan = c.vqgan.disc_start_step < c.vqgan_train.steps
    print(f"{name:13s} steps {cfg.vqgan_train.steps} -> {c.vqgan_train.steps} | GAN on: {gan} | "
          f"lambda_max {c.vqgan.disc_weight_max:g} | DiffAug {c.vqgan.diff_aug}")

# %%
import time

slug = lambda name: "table5_" + name.lower().replace(" ", "_").replace("=", "").replace("_max", "max")
t0 = time.perf_counter()
children = {name: nbu.train_child_vqgan(s, slug(name), c) for name, c in configs.items()}
print(f"{len(children)} continuations ready in {time.perf_counter() - t0:.0f}s")

# %% [markdown]
# ## Reconstruction FID
#
# The paper's Table 5 is the FID of reconstructions (encode, quantise, decode) against real images.
# Here: `n_images` held-out images (never trained on by the feature network's test, nor by the
# reference subset), reconstructed by each VQGAN, scored in the OpenMoji feature space against the
# reference subset of training images, beside the noise floor (the same held-out images
# themselves). Differences from *default* are paired: both sets are reconstructions of the same
# images, resampled together, so the images' own spread cancels.

# %%
from ulib import paper as PV
from ulib.eval.quality import with_floor
from ulib.io.logs import MetricsLog
from ulib.trained import load_run_vqgan

meter = nbu.quality_meter(s, sizes["n_reference"])
real = meter.holdout[:n_images]
floor = meter.floor(n_images, draws=draws, seed=seed)
recons = {"before the GAN phase": nbu.reconstruct(nbu.vqgan(s), real, s.device)}
for name, child in children.items():
    recons[name] = nbu.reconstruct(load_run_vqgan(configs[name], child.vqgan_ckpt, s.device), real, s.device)
paper = PV.TABLE5_RECON_FID["rows"]
table = []
for name, x in recons.items():
    row = with_floor({"variant": name, **meter.score(x, draws=draws, seed=seed)}, floor)
    if name in configs:
        log = [r for r in MetricsLog.read(children[name].vqgan_log) if r["step"] > cfg.vqgan_train.steps]
        weights = [r["d_weight"] for r in log if r.get("d_weight") is not None]
        row["gan_steps"] = gan_steps if name != "no GAN" else 0
        row["extra_steps"] = gan_steps
        row["mean_adaptive_weight"] = sum(weights) / len(weights) if weights else None
        row["l1_train_last"] = log[-1].get("l1") if log else None
    row["l1_heldout"] = (x.float() - real.float()).abs().mean().item() / 127.5
    table.append(row)
by = {r["variant"]: r for r in table}
for name in configs:  # paired differences from "default" (negative: better than default)
    if name != "default":
        d = meter.difference(recons[name], recons["default"], draws=draws, seed=seed, paired=True)
        by[name]["fid_minus_default"], by[name]["fid_minus_default_std"] = d["fid"], d.get("fid_std")
nbu.write_table(s, table, "table5_recon_fid")  # reproduce's Markdown adds the paper's columns
shown = [{**r, **dict(zip(("paper_churches_fid", "paper_ffhq_fid"), paper.get(r["variant"], (None, None))))}
         for r in table]
nbu.show_table(shown, ["variant", "n", "fid", "fid_std", "floor_fid", "fid_minus_default",
                       "fid_minus_default_std", "l1_heldout", "mean_adaptive_weight",
                       "paper_churches_fid", "paper_ffhq_fid"])
print(f"features: {meter.features} | reference: {meter.n_reference} training images | seed {seed}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 3.5))
names = [r["variant"] for r in table]
axes[0].bar(range(len(table)), [r["fid"] for r in table], yerr=[r.get("fid_std", 0) for r in table], capsize=3)
axes[0].axhline(floor["fid"], ls="--", c="gray", label=f"noise floor (real vs real, n = {n_images})")
axes[0].set_xticks(range(len(table)), names, rotation=20, fontsize=8)
axes[0].set(ylabel=f"reconstruction FID ({meter.features} features)",
            title=f"Table 5 at {cfg.profile} scale: {gan_steps} GAN steps, n = {n_images}, ± bootstrap std")
axes[0].legend(fontsize=8)
for name, child in children.items():
    log = [r for r in MetricsLog.read(child.vqgan_log) if r["step"] > cfg.vqgan_train.steps and r.get("l1")]
    axes[1].plot([r["step"] for r in log], [r["l1"] for r in log], "o-", label=name, ms=3)
axes[1].set(xlabel="step", ylabel="L1 (training batches)", title="the GAN phase, per variant")
axes[1].legend(fontsize=8)
fig.tight_layout()
nbu.save_figure(s, fig, "table5_recon_fid")
plt.show()
grid = torch.cat([real[:8]] + [x[:8] for x in recons.values()]).float().div(127.5).sub(1)
nbu.show(nbu.save_grid(s, grid, "table5_reconstructions", nrow=8))
print("rows: held-out images, then the reconstructions of:", ", ".join(recons))

# %% [markdown]
# ## Does the paper's ordering hold here?
#
# The paper's claim: each technique alone can hurt, both together help (*both* is best on Churches and
# FFHQ). A difference counts only when it exceeds two bootstrap stds of the paired difference.

# %%
for name in ("lambda_max=1", "DiffAug", "both"):
    r = by[name]
    d, sd = r["fid_minus_default"], r.get("fid_minus_default_std") or 0.0
    verdict = "within noise" if abs(d) <= 2 * sd else ("better than default" if d < 0 else "worse than default")
    print(f"{name:13s}: FID - default = {d:+.2f} ± {sd:.2f} -> {verdict} "
          f"(paper: {paper[name][0] - paper['default'][0]:+.2f} Churches, {paper[name][1] - paper['default'][1]:+.2f} FFHQ)")
print(f"no GAN (the control): FID {by['no GAN']['fid']:.2f} vs default {by['default']['fid']:.2f}")
