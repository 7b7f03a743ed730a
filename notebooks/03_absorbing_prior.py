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
# **Reproduces:** section 3.2: the absorbing forward process q(x_t | x_0), the ELBO (Eq. 6) and the reweighted loss (Eq. 7); one training step written out and checked against ulib, with the loss a prior must start from; the reverse process as a filmstrip; the prior's training curves.
#
# **Needs:** notebook 01's run directory (VQGAN, token cache and prior; trained here when missing).
#
# **Time:** `smoke` about 5 s; `demo` about 15 s once the prior exists (estimate: 12 s measured on 2 cores on 2026-12-07 before the filmstrip). GPU, paper profiles: minutes once trained (estimate).
#
# **Writes:** figures (PNG) and tables (CSV) into `RUN/results/`.

# %% tags=["parameters"]
profile = "smoke"  # smoke (CI, seconds) | demo (CPU, minutes) | ffhq, churches, bedrooms (GPU, the paper's settings)
run_dir = "../runs/nb-smoke"  # run directory shared by every notebook (relative to notebooks/); one per profile
device = "auto"  # 'auto' (cuda, then mps, then cpu), 'cpu', 'cuda', ...
seed = 0  # seed of this notebook's sampling and figures (training uses the config's own seed)
overrides = []  # config overrides, each written as for `--set` on the command line (see the README)
pretrained = ""  # "tutorial" loads the kit's ready-trained model instead of training (with run_dir "../runs/tutorial")
times = [0.0, 0.25, 0.5, 0.75, 1.0]  # t/T of the forward-process pictures
n_grids = 4  # token grids for the q_sample check

# %%
import math

import matplotlib.pyplot as plt
import torch

from ulib.app import measuring, outputs, readings, session

s = session.setup(profile, run_dir, device, seed, overrides, pretrained)  # run dir, config, device, RUN/results/
cfg = s.cfg
K, T, L = cfg.vqgan.codebook_size, cfg.prior.total_steps, cfg.latent_size ** 2

tok = session.val_tokens(s)  # (N, L) validation token grids


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
same = torch.equal(ours[0], theirs[0]) and torch.equal(ours[1], theirs[1])
assert same, "q_sample differs from ulib's AbsorbingDiffusion.q_sample"
print("same x_t and mask as ulib:", same)
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
vq = session.vqgan(s)
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
    ax.imshow(outputs.token_picture(x_t.view(h, h), K, cfg.mask_id))
    ax.set_title(f"t = {t.item()} (t/T = {t.item() / T:.2f})")
for ax in axes:
    ax.axis("off")
outputs.save_figure(s, fig, "03_forward_process")
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
outputs.save_figure(s, fig, "03_loss_weights")
plt.show()

# %% [markdown]
# ## One training step, from scratch
#
# Everything above fits in one step of training: draw t uniformly, mask with q(x_t | x_0), run the network on
# x_t, and weight the cross-entropy at the masked positions by Eq. 7's (T − t + 1)/T, a one-draw estimate of
#
# $$\mathbb{E}_{q(x_0)}\Big[\sum_{t=1}^{T} \frac{T - t + 1}{T}\, \mathbb{E}_{q(x_t|x_0)}
#   \Big[\sum_{[x_t]_i = m} -\log p_\theta([x_0]_i \mid x_t)\Big]\Big], \tag{7}$$
#
# in bits per token (nats divided by L ln 2), as ulib logs it. The official code weights by 1 − t/T = (T − t)/T instead, the
# paper's weight minus 1/T, which gives no weight at all to t = T, the all-masked grid every sampling run
# starts from; ulib keeps the paper's form.

# %%
import torch.nn.functional as F


def training_loss(net, x0, T, mask_id, generator=None):
    """Eq. 7 for a batch of token grids x0 (B, L), one draw of t and masks: (loss, negative-ELBO estimate,
    cross-entropy per masked token), all in bits."""
    B, L = x0.shape
    t = torch.randint(1, T + 1, (B,), device=x0.device, generator=generator)  # t ~ Uniform{1, ..., T}
    masked = torch.rand(x0.shape, device=x0.device, generator=generator) < (t.float() / T)[:, None]
    x_t = torch.where(masked, torch.full_like(x0, mask_id), x0)  # q(x_t | x_0)
    logits = net(x_t)  # (B, L, K): p(x_0 | x_t) at every position
    nats = F.cross_entropy(logits.float().transpose(1, 2), x0, reduction="none")  # (B, L)
    ce = (nats * masked).sum(1) / (L * math.log(2))  # CE(x_0, x_t) in bits per token: masked positions only
    loss = ((T - t + 1) / T * ce).mean()  # Eq. 7's weight
    elbo = (T / t * ce).mean()  # Eq. 6's one-draw estimate
    return loss, elbo, (nats * masked).sum() / masked.sum() / math.log(2)


# %% [markdown]
# What should the first step print? A network that knows nothing predicts every code with probability 1/K, so
# each masked token costs log₂ K bits, and the negative ELBO of Eq. 6 is log₂ K bits per token whatever t is
# (T/t masked-token weight times t/T of the tokens masked). Eq. 7's loss is smaller: its expectation over t is
# log₂ K · (1/T) Σ_t ((T − t + 1)/T)(t/T) = log₂ K · (T + 1)(T + 2) / (6T²), about a sixth of it. A freshly
# initialised prior of this run's size (small random weights, so nearly uniform predictions) on validation grids,
# its loss and gradients checked against ulib's `AbsorbingDiffusion.training_losses` on the same random draws,
# then one AdamW step:

# %%
# NBVAL_CHECK_OUTPUT
from ulib.trained import prior_from_config

with torch.random.fork_rng():  # seeded weights, without touching the notebook's own random stream
    torch.manual_seed(seed)
    fresh = prior_from_config(cfg).to(s.device).eval()  # the run's architecture, untrained; eval: no dropout
x0 = tok[:64]
ours = training_loss(fresh, x0, T, cfg.mask_id, s.generator(3))
lib = AbsorbingDiffusion(T, cfg.mask_id, "reweighted_elbo").training_losses(fresh, x0, s.generator(3))
assert torch.allclose(ours[0], lib["loss"]) and torch.allclose(ours[1], lib["elbo_bpt"])
params = [p for p in fresh.parameters() if p.requires_grad]  # (the AR baseline's start token is frozen here)
grad_ours = torch.autograd.grad(ours[0], params, retain_graph=True)  # graph kept for the step below
grad_lib = torch.autograd.grad(lib["loss"], params)
assert all(torch.allclose(a, b, atol=1e-7) for a, b in zip(grad_ours, grad_lib))
print("loss, ELBO estimate and every parameter's gradient match ulib's training_losses: True")
print(f"at initialisation (log2 K = {math.log2(K):.3f} bits):")
print(f"  cross-entropy per masked token {ours[2].item():.3f} bits   (expected: about log2 K)")
print(f"  negative ELBO estimate {ours[1].item():.3f} bits/token    (expected: about log2 K; one draw of t per grid)")
print(f"  Eq. 7 loss {ours[0].item():.3f} bits/token               (expected about "
      f"{math.log2(K) * (T + 1) * (T + 2) / (6 * T * T):.3f}; one draw of t per grid)")
init_ce = ours[2].item()  # bits per masked token at initialisation
assert abs(init_ce - math.log2(K)) < 0.1 * math.log2(K), "an untrained prior should cost about log2 K bits"
opt = torch.optim.AdamW(params, lr=cfg.prior_train.lr)
opt.zero_grad()
ours[0].backward()
opt.step()
after = training_loss(fresh, x0, T, cfg.mask_id, s.generator(3))[0]  # the same draws, after one step
print(f"one AdamW step at lr {cfg.prior_train.lr:g}: the same draws' loss {ours[0].item():.3f} -> {after.item():.3f}")

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

net = session.prior(s)
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
print(f"the run's prior (trained on {cfg.prior.loss_type}), one draw per grid on {measuring.split_name(s, 'val', len(x0))}:")
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
outputs.save_figure(s, fig, "03_training_curves")
plt.show()
for key, where in (("elbo_bpt", "the step's training batch"), ("val_elbo_bpt", measuring.split_name(s, "val", VALIDATION_GRIDS))):
    last = next(((r["step"], r[key]) for r in reversed(rows) if r.get(key) is not None), None)
    if last:
        print(f"last {key}: {last[1]:.3f} bits/token at step {last[0]}, on {where}")

# %% [markdown]
# ## The reverse process, in pictures
#
# Sampling runs the process backwards from the all-masked x_T. The model predicts x_0, not x_{t−1}; the reverse
# step follows from the forward process (the paper's supplement, Eq. 12): a token masked at time t is still masked
# at t − 1 with probability (t − 1)/t, and otherwise revealed, its value drawn from p_θ([x_0]_i | x_t). At t = 1
# every remaining mask is revealed. Notebook 04 writes this sampler out and skips steps with it; here is one run
# of ulib's, all T steps, at the profile's temperature. Top row: the token grid at a few steps (masked cells
# black). Bottom row: what the network believes at that moment, every masked position filled with its most
# likely code under p_θ(x_0 | x_t) and dimmed, so the unmasked part is what is already decided.

# %%
from ulib.app.filmstrip import filmstrip, reverse_states
from ulib.sample.absorbing import AbsorbingSampler

sampler = AbsorbingSampler.of(net, num_timesteps=T, mask_id=cfg.mask_id, length=L, temperature=cfg.sample.temperature,
                              generator=s.generator(4), skip_empty_steps=False)  # every one of the T steps
states = reverse_states(sampler, sampler.initial_state(1, s.device), frames=7)
fig = filmstrip(vq, net, states, cfg.mask_id, K,
                title=f"one reverse run, T = {T} steps, temperature {cfg.sample.temperature:g}")
outputs.save_figure(s, fig, "03_reverse_filmstrip")
plt.show()

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
outputs.save_figure(s, fig, "03_accuracy_by_mask_ratio")
outputs.write_table(s, acc, "03_accuracy_by_mask_ratio")
plt.show()
common = baseline["accuracy"]
print(f"on {measuring.split_name(s, 'val', len(tok[:256]))}; the commonest code's share of all {tok.numel()} validation "
      f"tokens: {common:.3f}")
for row in (acc[0], acc[-1]):
    if row["n_masked"]:
        pi = proportion_interval(round(row["accuracy"] * row["n_masked"]), row["n_masked"], against=common)
        side = "above" if pi.lo > common else "below" if pi.hi < common else "not resolved from"
        print(f"mask ratio {row['mask_ratio']:.1f}: accuracy {pi.share:.3f} (95 % Wilson interval {pi.lo:.3f} to "
              f"{pi.hi:.3f} over {pi.n} masked tokens, {format_p(pi.p)}): {side} the commonest code's share")

# %% [markdown]
# ## Reading
#
# **What to notice.** Training is one line of maths, mask then predict, and the check at initialisation tells you
# whether it is wired right before any training: log₂ K bits per masked token, the negative ELBO at log₂ K bits per
# token for every t, Eq. 7's loss near a sixth of that. The two weightings differ only in how they spread the loss
# over t: Eq. 6's T/t puts weights up to T on the few tokens masked at small t, Eq. 7's (T − t + 1)/T never exceeds 1.
# The filmstrip shows what sampling does with the trained network: the grid fills in at random places, and the
# network's belief about the masked part sharpens as more is revealed.
#
# **Against the paper.** The paper's validation negative ELBO for its absorbing models is 5.96 (FFHQ) and 6.01
# (Churches) bits per token of 1,024 codes (Table 4, log₂ 1024 = 10 bits at initialisation); the table below sets this
# run's beside it, with the same starting point log₂ K. The paper motivates Eq. 7 by the reparameterisation of
# continuous diffusion; whether it trains better is notebook 06's question (Fig. 5).
#
# **Why it differs at this scale.** With K = 256 codes, an untrained prior starts at 8 bits per token; how far below
# it training gets depends on how predictable tokens are from their neighbours, which at 8×8 tokens per image leaves
# little context, and on 2,000 steps against the paper's 2M.

# %%
val_last = next((r["val_elbo_bpt"] for r in reversed(rows) if r.get("val_elbo_bpt") is not None), None)
shown = readings.reading(s, "03_absorbing_prior", [
    {"what": "untrained prior, bits per masked token", "paper": "log2 1024 = 10 (uniform over K codes)",
     "this run": f"{init_ce:.3f} (log2 K = {math.log2(K):.3f})"},
    {"what": "validation negative ELBO after training (bits/token)",
     "paper": "FFHQ 5.96, Churches 6.01 (Table 4; K = 1024)",
     "this run": "not logged" if val_last is None else f"{val_last:.3f} (K = {K}, {cfg.prior_train.steps:,} steps)"},
    {"what": "one-draw relative spread std/mean, Eq. 6 vs Eq. 7", "paper": "not reported (Eq. 7 motivated by the "
     "reparameterisation of continuous diffusion)", "this run": f"{rel(est['elbo']):.2f} vs "
     f"{rel(est['reweighted_elbo']):.2f}: {noisier}"}])

# %% [markdown]
# ## Exercises
#
# 1. **The official weight.** Change `training_loss` to the official code's weight 1 − t/T and evaluate both on the
#    same draws at t = T only. *Expected:* the official loss is exactly 0 at t = T (the all-masked grid sampling starts
#    from gets no training signal), the paper's is the full masked cross-entropy.
#
#    <details><summary>Solution</summary>
#
#    ```python
#    x0 = tok[:64]
#    t = torch.full((len(x0),), T, device=s.device)
#    x_t, mask = diffusion.q_sample(x0, t, s.generator(0))
#    with torch.no_grad():
#        ce = diffusion.masked_cross_entropy(net(x_t), x0, mask)
#    print("paper:", ((T - t + 1) / T * ce).mean().item(), "official:", ((1 - t / T) * ce).mean().item())
#    ```
#    </details>
#
# 2. **The expected Eq. 7 loss at initialisation.** Check (T + 1)(T + 2)/(6T²) by summing the weight over t exactly.
#    *Expected:* (1/T) Σ_t ((T − t + 1)/T)(t/T) equals the closed form to rounding; about 0.172 at T = 64.
#
#    <details><summary>Solution</summary>
#
#    ```python
#    exact = sum((T - t + 1) / T * t / T for t in range(1, T + 1)) / T
#    print(exact, (T + 1) * (T + 2) / (6 * T * T))
#    ```
#    </details>
#
# 3. **Where is the prior sure?** At t/T = 0.5, compute the entropy of p(x_0 | x_t) at every masked position of a few
#    validation grids and compare it with log₂ K. *Expected:* far below log₂ K on average for a trained prior, lowest
#    where the neighbours are unmasked background.
#
#    <details><summary>Solution</summary>
#
#    ```python
#    x0 = tok[:16]
#    x_t, mask = diffusion.q_sample(x0, torch.full((16,), T // 2, device=s.device), s.generator(0))
#    with torch.no_grad():
#        logp = torch.log_softmax(net(x_t).float(), -1)
#    entropy_bits = -(logp.exp() * logp).sum(-1) / math.log(2)
#    print(entropy_bits[mask].mean().item(), "bits against log2 K =", math.log2(K))
#    ```
#    </details>

# %% [markdown]
# ## References
#
# - S. Bond-Taylor, P. Hessey, H. Sasaki, T. P. Breckon, C. G. Willcocks. *Unleashing Transformers: Parallel Token Prediction with Discrete Absorbing Diffusion for Fast High-Resolution Image Generation from Vector-Quantized Codes.* ECCV 2022. [arXiv:2111.12701](https://arxiv.org/abs/2111.12701)
# - J. Austin, D. D. Johnson, J. Ho, D. Tarlow, R. van den Berg. *Structured Denoising Diffusion Models in Discrete State-Spaces* (D3PM, the absorbing state). NeurIPS 2021. [arXiv:2107.03006](https://arxiv.org/abs/2107.03006)
# - E. Hoogeboom, A. A. Gritsenko, J. Bastings, B. Poole, R. van den Berg, T. Salimans. *Autoregressive Diffusion Models* (ARDM: any-order models and their relation to absorbing diffusion). ICLR 2022. [arXiv:2110.02037](https://arxiv.org/abs/2110.02037)
# - S. S. Sahoo, M. Arriola, Y. Schiff, A. Gokaslan, E. Marroquin, J. T. Chiu, A. Rush, V. Kuleshov. *Simple and Effective Masked Diffusion Language Models* (MDLM: the continuous-time absorbing ELBO). NeurIPS 2024. [arXiv:2406.07524](https://arxiv.org/abs/2406.07524)
# - J. Devlin, M.-W. Chang, K. Lee, K. Toutanova. *BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding.* NAACL 2019. [arXiv:1810.04805](https://arxiv.org/abs/1810.04805)
# - J. Ho, A. Jain, P. Abbeel. *Denoising Diffusion Probabilistic Models.* NeurIPS 2020. [arXiv:2006.11239](https://arxiv.org/abs/2006.11239)
