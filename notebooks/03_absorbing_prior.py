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
# # 03 · The absorbing diffusion prior: forward process, ELBO and its reweighting
#
# **Reproduces:** section 3.2: the absorbing forward process q(x_t | x_0), the ELBO (Eq. 6) and the reweighted training loss (Eq. 7); the prior's training curves.
#
# **Needs:** notebook 01's run directory (VQGAN, token cache and prior; trained here when missing). Every stage is *load if present, else train*: the notebook reuses what the run
# directory holds and trains only what is missing, so the notebooks chain (run them in order, or let
# `python -m ulib reproduce` do it).
#
# **Time:** CPU: about 5 s with `smoke` (measured on 2 cores), 10 s with `demo` (measured on 2 cores, trained run present), once the prior exists. GPU, paper profiles: a few minutes once trained (estimate).
#
# **Writes:** figures (PNG) and tables (CSV) into `RUN/results/`.

# %% tags=["parameters"]
profile = "smoke"  # smoke (CI, seconds) | demo (CPU, minutes) | ffhq, churches, bedrooms (GPU, the paper's settings)
run_dir = "../runs/nb-smoke"  # run directory shared by every notebook (relative to notebooks/); one per profile
device = "auto"  # 'auto' (cuda, then mps, then cpu), 'cpu', 'cuda', ...
seed = 0  # seed of this notebook's sampling and figures (training uses the config's own seed)
overrides = []  # config overrides, each written as for `--set` on the command line (see the README)
times = [0.0, 0.25, 0.5, 0.75, 1.0]  # t/T of the forward-process pictures
n_grids = 4  # token grids for the q_sample check

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

tok = nbu.val_tokens(s)  # (N, L) validation token grids


# %% [markdown]
# ## The forward process, in ten lines
#
# q(x_t | x_0) replaces every token independently by the absorbing *mask* token m (id K) with
# probability t/T. At t = T everything is masked, so x_T is known and needs no learned prior:
#
# $$q([x_t]_i = m \mid x_0) = t/T, \qquad q([x_t]_i = [x_0]_i \mid x_0) = 1 - t/T.$$

# %%
def q_sample(x0, t, T, mask_id, generator=None):
    """x_t ~ q(x_t | x_0): every token of x0 (B, L) becomes the mask m with probability t/T."""
    u = torch.rand(x0.shape, device=x0.device, generator=generator)  # (B, L) uniforms
    absorbed = u < (t.float() / T)[:, None]  # (B, L) True with probability t/T
    x_t = torch.where(absorbed, torch.full_like(x0, mask_id), x0)  # m = mask_id = K
    return x_t, absorbed


# %% [markdown]
# The same random numbers give the same x_t as ulib's `AbsorbingDiffusion.q_sample`, and the
# masked fraction matches t/T. From here on (and in every later notebook) we use ulib's.

# %%
# NBVAL_CHECK_OUTPUT
from ulib.prior.absorbing import AbsorbingDiffusion

diffusion = AbsorbingDiffusion(T, cfg.mask_id, cfg.prior.loss_type)
x0 = tok[:n_grids]
t = torch.arange(1, len(x0) + 1, device=s.device) * T // len(x0)  # a few times up to T
ours, theirs = q_sample(x0, t, T, cfg.mask_id, s.generator()), diffusion.q_sample(x0, t, s.generator())
print("same x_t and mask as ulib:", torch.equal(ours[0], theirs[0]) and torch.equal(ours[1], theirs[1]))
many = torch.zeros(1000, 256, dtype=torch.long, device=s.device)
for frac in (0.25, 0.5, 1.0):
    tt = torch.full((len(many),), max(1, round(frac * T)), device=s.device)
    _, absorbed = diffusion.q_sample(many, tt, s.generator())
    print(f"t/T = {tt[0].item() / T:.2f}: masked fraction {absorbed.float().mean().item():.2f}")

# %% [markdown]
# ## The forward process on a real token grid
#
# One validation image (left) and its token grid at growing t, one colour per code, masked cells
# black. The same uniforms are used for every t, so the masked set only grows: one path of the
# forward process.

# %%
vq = nbu.vqgan(s)
x0 = tok[:1]
h = cfg.latent_size
with torch.no_grad():
    image = vq.decode(x0.view(1, h, h)).clamp(-1, 1)[0]
fig, axes = plt.subplots(1, len(times) + 1, figsize=(2.2 * (len(times) + 1), 2.4))
axes[0].imshow(((image.permute(1, 2, 0).cpu() + 1) / 2).numpy())
axes[0].set_title("decoded x_0")
for ax, frac in zip(axes[1:], times):
    t = torch.full((1,), round(frac * T), device=s.device)
    x_t, _ = diffusion.q_sample(x0, t, s.generator())  # same seed: nested masks
    ax.imshow(nbu.token_picture(x_t.view(h, h), K, cfg.mask_id))
    ax.set_title(f"t = {t.item()} (t/T = {t.item() / T:.2f})")
for ax in axes:
    ax.axis("off")
nbu.save_figure(s, fig, "03_forward_process")
plt.show()

# %% [markdown]
# ## The ELBO (Eq. 6) and the reweighted loss (Eq. 7)
#
# With CE(x_0, x_t) = Σ over masked i of −log p([x_0]_i | x_t), the negative ELBO is
#
# $$-\text{ELBO} = \sum_{t=1}^{T} \frac{1}{t}\, \mathbb{E}_{q(x_t|x_0)}\big[\text{CE}(x_0, x_t)\big],$$
#
# trained by drawing one t uniformly: loss = (T/t) · CE (Eq. 6, unbiased). At small t few tokens are
# masked (a binomial count, L t/T on average) and each carries the weight T/t: at t = 1 one draw's loss
# rests on about L/T tokens. The paper trains on ((T − t + 1)/T) · CE instead (Eq. 7), to mimic the
# reparameterisation that lets continuous diffusion models minimise their loss near t = T easily: the
# terms near T are weighted less than earlier ones (Sec. 3.2). Its weight also falls with t, but is
# bounded by 1. ulib's `AbsorbingDiffusion.weight` holds both; checked by hand at T = 4:

# %%
# NBVAL_CHECK_OUTPUT
t4 = torch.arange(1, 5)
print("T = 4, Eq. 6 weights T/t:         ", [round(v, 4) for v in AbsorbingDiffusion(4, 0, "elbo").weight(t4).tolist()])
print("T = 4, Eq. 7 weights (T-t+1)/T:   ", AbsorbingDiffusion(4, 0, "reweighted_elbo").weight(t4).tolist())

# %%
ts = torch.arange(1, T + 1)
w6 = AbsorbingDiffusion(T, cfg.mask_id, "elbo").weight(ts)
w7 = AbsorbingDiffusion(T, cfg.mask_id, "reweighted_elbo").weight(ts)
fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3))
a.semilogy(ts, w6, label="Eq. 6: T/t")
a.semilogy(ts, w7, label="Eq. 7: (T-t+1)/T")
a.set(xlabel="t", ylabel="weight on CE(x_0, x_t)", title="weight per sampled t")
# E[number masked] = L t/T: the weight times t/T is the expected loss per token and per CE unit
b.plot(ts, w6 * ts / T, label="Eq. 6")
b.plot(ts, w7 * ts / T, label="Eq. 7")
b.set(xlabel="t", ylabel="weight x t/T", title="expected weight per token")
a.legend()
b.legend()
fig.tight_layout()
nbu.save_figure(s, fig, "03_loss_weights")
plt.show()

# %% [markdown]
# On the trained prior: one draw of t and masks per validation grid, both weights on the same draws, so
# the two losses compare paired. Their scales differ (Eq. 6's mean estimates the negative ELBO, Eq. 7's
# is no likelihood), so their standard deviations do not compare as they stand; the scale-free figure is
# the relative spread std/mean. Its difference Eq. 6 − Eq. 7, with a bootstrap interval over the grids
# (both losses on the same resampled grids), says which loss is the noisier per unit of loss; the ratio
# of the means says how much larger Eq. 6's loss is on the same draws (why notebook 06 trains both without
# gradient clipping). The paper motivates Eq. 7 by the reparameterisation above, not by its variance;
# whether it trains better is Fig. 5's question (notebook 06).

# %%
from ulib.eval.stats import DEFAULT_DRAWS, bootstrap_p, bootstrap_summary, format_p

net = nbu.prior(s)
x0 = tok[:256]
g = s.generator(1)
t = diffusion.sample_time(len(x0), s.device, g)
x_t, mask = diffusion.q_sample(x0, t, g)
with torch.no_grad():
    ce = diffusion.masked_cross_entropy(net(x_t), x0, mask)  # (B,) nats
to_bits = 1 / (L * math.log(2))
est = {lt: (AbsorbingDiffusion(T, cfg.mask_id, lt).weight(t) * ce * to_bits).double().cpu()  # (B,) bits/token
       for lt in ("elbo", "reweighted_elbo")}
rel = lambda e: float(e.std() / e.mean())  # relative spread std/mean: free of the loss's scale
print(f"the run's prior (trained on {cfg.prior.loss_type}), one draw per grid on {nbu.split_name(s, 'val', len(x0))}:")
for lt, e in est.items():
    print(f"  {lt:16s} one-draw loss: mean {e.mean():.3f}, std {e.std():.3f} bits/token, std/mean {rel(e):.2f}")
idx = torch.randint(len(x0), (DEFAULT_DRAWS, len(x0)), generator=torch.Generator().manual_seed(seed))  # resampled grids
draws = [rel(est["elbo"][i]) - rel(est["reweighted_elbo"][i]) for i in idx]
b = bootstrap_summary(draws, rel(est["elbo"]) - rel(est["reweighted_elbo"]))
noisier = ("Eq. 6's one-draw loss is the noisier per unit of loss" if b.lo > 0 else
           "Eq. 7's one-draw loss is the noisier per unit of loss" if b.hi < 0 else "not resolved at this n")
p = bootstrap_p(draws)  # floored at 1 / draws: no smaller p can be seen
print(f"std/mean of Eq. 6 − Eq. 7: {b.estimate:+.2f} (95 % bootstrap interval over the grids, {b.draws} draws: "
      f"{b.lo:+.2f} to {b.hi:+.2f}, {f'p <= {p:.2g}' if p <= 1 / b.draws else format_p(p)}): {noisier}")
print(f"Eq. 6's loss on the same draws: {est['elbo'].mean() / est['reweighted_elbo'].mean():.1f} times Eq. 7's "
      f"mean, {est['elbo'].std() / est['reweighted_elbo'].std():.1f} times its std")

# %% [markdown]
# ## Training curves
#
# From `metrics_prior.csv`: the training loss (the chosen weighting), the one-draw negative-ELBO
# estimate on training batches, and the validation negative ELBO logged with every image grid (on the
# validation images the cell names).

# %%
from ulib.io.logs import MetricsLog
from ulib.train.prior import VALIDATION_GRIDS

rows = MetricsLog.read(s.run.prior_log)
fig, ax = plt.subplots(figsize=(7, 3))
for key, style in (("loss", "-"), ("elbo_bpt", "-"), ("val_elbo_bpt", "o-")):
    pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
    if pts:
        ax.plot(*zip(*pts), style, label=key)
ax.set(xlabel="step", ylabel="bits per token", title=f"prior training ({cfg.prior.loss_type})")
ax.legend()
nbu.save_figure(s, fig, "03_training_curves")
plt.show()
for key, where in (("elbo_bpt", "the step's training batch"), ("val_elbo_bpt", nbu.split_name(s, "val", VALIDATION_GRIDS))):
    last = next(((r["step"], r[key]) for r in reversed(rows) if r.get(key) is not None), None)
    if last:
        print(f"last {key}: {last[1]:.3f} bits/token at step {last[0]}, on {where}")

# %% [markdown]
# ## Did it learn anything?
#
# Token accuracy and cross-entropy at growing mask ratios on validation grids, against a prior that
# ignores the context (always the commonest code of the validation grids; their code histogram's
# entropy). A prior that uses the context can beat the commonest code where few tokens are masked; once
# every token is masked only the position is left to use (the commonest code at each position can still
# beat the commonest code overall). The printed lines test both ends: the accuracy's 95 % Wilson interval
# against the commonest code's share (the masked tokens counted as independent, though tokens of one grid
# are not, so the interval is on the narrow side).

# %%
from ulib.eval.diagnostics import accuracy_by_mask_ratio, marginal_baseline, plot_accuracy_by_mask_ratio
from ulib.eval.stats import proportion_interval

acc = accuracy_by_mask_ratio(net, tok[:256], cfg.mask_id, generator=s.generator(2))
baseline = marginal_baseline(tok, K)
fig = plot_accuracy_by_mask_ratio(acc, baseline)
nbu.save_figure(s, fig, "03_accuracy_by_mask_ratio")
nbu.write_table(s, acc, "03_accuracy_by_mask_ratio")
plt.show()
common = baseline["accuracy"]
print(f"on {nbu.split_name(s, 'val', len(tok[:256]))}; the commonest code's share of all {tok.numel()} validation "
      f"tokens: {common:.3f}")
for row in (acc[0], acc[-1]):
    if row["n_masked"]:
        pi = proportion_interval(round(row["accuracy"] * row["n_masked"]), row["n_masked"], against=common)
        side = "above" if pi.lo > common else "below" if pi.hi < common else "not resolved from"
        print(f"mask ratio {row['mask_ratio']:.1f}: accuracy {pi.share:.3f} (95 % Wilson interval {pi.lo:.3f} to "
              f"{pi.hi:.3f} over {pi.n} masked tokens, {format_p(pi.p)}): {side} the commonest code's share")
