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
# # 14 · The decoding lab: every sampling method on one quality-against-network-calls frontier
#
# **Reproduces:** beyond the paper: the methods of masked-token decoding published since (Halton order, ReMDM's re-masking, the entropy-bounded EB-sampler, first-hitting sampling) beside the paper's random order with step skipping (the setting of Table 3) and MaskGIT's confidence decoding, all on the same trained prior, no retraining. Every setting is scored against the random order at T steps as a paired difference; then exact speculative sampling of the AR baseline (Table 4's other prior) with the absorbing prior drafting.
#
# **Needs:** notebook 01's run directory (VQGAN and prior; trained here when missing) and notebook 05's autoregressive prior (`prior_ar.pt`, trained here when missing); for the built-in dataset the shipped OpenMoji feature weights (notebook 12).
#
# **Time:** `smoke` about 2 min (estimate); `demo` about 10 min (600 s measured on 2 cores shared with other jobs, 2026-12-07). GPU, paper profiles: minutes per setting for 2,000 samples (estimate).
#
# **Writes:** figures (PNG) and tables (CSV) into `RUN/results/`: `decoding_frontier.csv`, `decoding_frontier.png`, `decoding_reveal_order.png`, `speculative_ar.csv`.

# %% tags=["parameters"]
profile = "smoke"  # smoke (CI, seconds) | demo (CPU, minutes) | ffhq, churches, bedrooms (GPU, the paper's settings)
run_dir = "../runs/nb-smoke"  # run directory shared by every notebook (relative to notebooks/); one per profile
device = "auto"  # 'auto' (cuda, then mps, then cpu), 'cpu', 'cuda', ...
seed = 0  # seed of this notebook's sampling and figures (training uses the config's own seed)
overrides = []  # config overrides, each written as for `--set` on the command line (see the README)
pretrained = ""  # "tutorial" loads the kit's ready-trained model instead of training (with run_dir "../runs/tutorial")
settings = []  # [method, steps, {option name, value}] triples to measure; empty means the grid of the next cell
n_samples = 0  # samples per setting; 0 means by profile (smoke 40, demo 300, GPU 2000)
temperature = 1.0  # the sampling temperature of every setting (Table 3's)
features = "auto"  # feature space, 'auto' (openmoji for the built-in dataset), 'inception', ...
spec_blocks = [2, 4, 8]  # draft block sizes of speculative AR sampling
spec_images = 8  # images per speculative measurement

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from ulib.app import measuring, outputs, readings, session
from ulib.eval import frontier
from ulib.sample import registry

s = session.setup(profile, run_dir, device, seed, overrides, pretrained)  # run dir, config, device, RUN/results/
cfg = s.cfg
K, T, L = cfg.vqgan.codebook_size, cfg.prior.total_steps, cfg.latent_size ** 2
m = session.models(s)  # the run's VQGAN and absorbing prior, with T, the mask id and the grid
sizes = measuring.quality_sizes(s, n_samples)
n = sizes["n_samples"]


def grid_of(T):
    """Each method over a range of settings, by the profile's T (the frontier's default grid)."""
    fractions = sorted({max(1, T // d) for d in (1, 2, 4, 8, 16)}, reverse=True)
    return ([("random", S, {}) for S in fractions] + [("confidence", S, {}) for S in fractions[2:]]
            + [("halton", S, {}) for S in fractions[1:]] + [("remdm", S, {"eta": 0.05}) for S in fractions[:2]]
            + [("remdm", fractions[1], {"loop_steps": fractions[1]})]
            + [("eb", None, {"gamma": g}) for g in (2.0, 5.0, 10.0, 20.0)] + [("first_hitting", None, {})])


points = [frontier.Setting.of(method, steps, **options) for method, steps, options in (settings or grid_of(T))]
print(f"T = {T}, L = {L} tokens, n = {n} samples per setting, temperature {temperature}, seed {seed}")
print("methods:", sorted({p.method for p in points}), "| settings:", len(points))

# %% [markdown]
# ## One protocol, seven methods
#
# Every method is a sampler of `ulib.sample.registry`, stepping the same network (tokens -> logits) one call at a
# time; they differ only in which masked positions a call reveals and whether a revealed token may change:
#
# | method | reveals at each call | steps mean |
# |---|---|---|
# | `random` (the paper) | each masked token with probability (t − s)/t (Eq. 12, step skipping) | 1..T schedule steps |
# | `confidence` (MaskGIT) | the most confident candidates, as many as a cosine schedule says | 1..T |
# | `halton` (Besnier et al.) | the next cells of a 2-D Halton sequence, arccos schedule, no confidence | 1..T |
# | `remdm` (Wang et al.) | as `random`, but a revealed token is masked again with probability σ_t | 1..T (+ loop) |
# | `eb` (Ben-Hamu et al.) | the lowest-entropy positions while their summed entropy minus the largest stays ≤ γ | a cap |
# | `first_hitting` (Zheng et al.) | exactly one uniformly chosen position, at an analytically drawn time | unused |
#
# The registry lists them with their settings:

# %%
# NBVAL_CHECK_OUTPUT
for name in registry.choices():
    entry = registry.get(name)
    print(f"{name:14s} steps: {entry.steps:9s} options: {entry.options or '-'}")

# %% [markdown]
# ## The Halton order, from scratch
#
# The radical inverse φ_b(k) mirrors the base-b digits of k about the radix point (φ_2(6) = φ_2(110₂) = 0.011₂ =
# 3/8). The 2-D Halton points (φ_2(k), φ_3(k)), k = 1, 2, ..., fill the unit square evenly at every prefix; on an
# h × w grid point k falls in cell (⌊h φ_2(k)⌋, ⌊w φ_3(k)⌋), and the order visits each cell at its first hit.
# Positions revealed early are therefore spread over the image, not clustered, and every image gets the same
# order up to a random cyclic shift.

# %%
def radical_inverse_scratch(k, base):
    """The digits of k in `base`, mirrored about the radix point."""
    x, f = 0.0, 1.0 / base
    while k:
        k, digit = divmod(k, base)
        x, f = x + digit * f, f / base
    return x


def halton_order_scratch(h, w):
    """Every cell of an h x w grid once, in the order the 2-D Halton points (bases 2, 3) first land in it."""
    seen, order, k = set(), [], 1
    while len(order) < h * w:
        cell = int(h * radical_inverse_scratch(k, 2)) * w + int(w * radical_inverse_scratch(k, 3))
        if cell not in seen:
            seen.add(cell)
            order.append(cell)
        k += 1
    return tuple(order)


# %%
# NBVAL_CHECK_OUTPUT
from ulib.sample.halton import halton_order

assert radical_inverse_scratch(6, 2) == 3 / 8
for h, w in ((2, 3), (4, 4), (8, 8)):
    assert halton_order_scratch(h, w) == halton_order(h, w), (h, w)
print("the first 8 cells of the 4x4 Halton order:", halton_order_scratch(4, 4)[:8], "(same as ulib's)")

# %% [markdown]
# ## Entropy-bounded steps, from scratch
#
# With p_i the network's prediction at masked position i and H_i its entropy, drawing a set U of positions
# independently in one call errs from their joint law by KL(p(x^U) ‖ ∏ p(x^i)) = Σ H_i − H(x^U) ≤ Σ_{i∈U} H_i −
# max_{i∈U} H_i. The EB-sampler sorts the positions by entropy and reveals the longest prefix that keeps this
# bound at most γ: confident positions come cheap, so an easy image takes few calls and a hard one many. The
# number of calls is a result.

# %%
def eb_reveal_scratch(entropies, gamma):
    """How many of the positions, sorted by entropy, one call reveals: the longest prefix with sum - max <= gamma."""
    h = sorted(entropies)
    k = 1
    while k < len(h) and sum(h[: k + 1]) - h[k] <= gamma:
        k += 1
    return k


# %%
# NBVAL_CHECK_OUTPUT
from ulib.sample.entropy_bounded import entropy_prefix

g = torch.Generator().manual_seed(seed)
for gamma in (0.0, 0.5, 2.0, 10.0):
    ent = torch.rand(12, generator=g, dtype=torch.float64) * 3
    order = ent.argsort()
    ours = eb_reveal_scratch(ent.tolist(), gamma)
    assert int(entropy_prefix(ent[order][None], gamma).sum()) == ours, gamma
print("entropies 0.1, 0.2, 0.3, 2.0 at gamma 0.5 reveal", eb_reveal_scratch([0.1, 0.2, 0.3, 2.0], 0.5),
      "positions (0.1 + 0.2 + 0.3 - 0.3 = 0.3 <= 0.5, adding 2.0 gives 0.6)")

# %% [markdown]
# ## The frontier
#
# Each setting draws n samples from the same seed (common random numbers), the VQGAN decodes them, and the
# kit's metric scores them (FID ± its bootstrap std, the noise floor of n real images beside). Each setting's FID
# minus the random order's at T steps is a **paired** difference (both sets resampled together), with its 95 %
# interval. **Network calls per image** are counted from the steps themselves: the calls in which the network ran
# and the image had a position written (a batch pays its slowest image; an image alone pays its own).

# %%
meter = measuring.quality_meter(s, sizes["n_reference"], features)
rows, drawn = frontier.measure(m, meter, points, n, seed=seed, temperature=temperature, draws=sizes["draws"])
columns = ["method", "setting", "calls_per_image", "calls_min", "calls_max", "seconds_per_image", "n", "fid",
           "fid_std", "floor_fid", "fid_minus_base", "fid_minus_base_lo", "fid_minus_base_hi", "fid_minus_base_p",
           "vs_base"]
outputs.write_table(s, [{k: r.get(k) for k in columns} for r in rows], "decoding_frontier")
outputs.show_table(rows, columns)

# %%
fig, (a, b) = plt.subplots(1, 2, figsize=(13, 4))
frontier.plot_frontier(rows, a, b)
a.set_title(f"n = {n} per point, temperature {temperature:g}, seed {seed}; band: ± 1.96 bootstrap std")
b.set_title(f"sampling time per image on {s.device}")
fig.tight_layout()
outputs.save_figure(s, fig, "decoding_frontier")
plt.show()

# %% [markdown]
# ## Read off the frontier
#
# For each method: the fewest calls per image whose FID is not worse than the random order at T steps within
# the uncertainty (the paired difference's 95 % interval reaches 0), and the best FID any method reaches at 8
# calls or fewer.

# %%
base = rows[0]
best = frontier.fewest_calls(rows)
for method, r in best.items():
    said = (f"{r['calls_per_image']:.1f} calls ({r['setting']}), FID {r['fid']:.1f} ± {r['fid_std']:.1f}"
            if r else "none of its settings at this n")
    print(f"{method:14s} fewest calls matching random at T = {T}: {said}")
cheap = frontier.best_within(rows, 8)
print("best FID at <= 8 calls per image: " + (f"{cheap['setting']} ({cheap['calls_per_image']:.1f} calls), FID "
                                                f"{cheap['fid']:.1f} ± {cheap['fid_std']:.1f}" if cheap else "none"))
print(f"baseline: {base['setting']}, {base['calls_per_image']:.1f} calls per image (empty steps skipped), "
      f"FID {base['fid']:.1f} ± {base['fid_std']:.1f}; noise floor {base['floor_fid']:.1f}")

# %% [markdown]
# ## A verdict on the Halton order's claim
#
# Besnier et al. report the Halton order about 2 FID better than confidence decoding at equal steps (MaskGIT on
# ImageNet 256). Here: the two at T/4 steps, the same seed, as a paired difference on shared resamples.

# %%
from ulib.eval import stats

S4 = max(1, T // 4)
halton_, confidence_ = frontier.Setting("halton", S4), frontier.Setting("confidence", S4)
if halton_ in drawn and confidence_ in drawn:
    d = meter.difference(frontier.decode(m, drawn[halton_].tokens), frontier.decode(m, drawn[confidence_].tokens),
                         draws=sizes["draws"], seed=seed, paired=True, figures=("fid",))
    readings.claim(s, "14_decoding_lab", "halton_beats_confidence",
                   "The Halton order gives a lower FID than confidence decoding at equal steps",
                   "Besnier et al. 2025: about 2 FID lower (MaskGIT, ImageNet 256, equal steps)",
                   stats.verdict_of_difference(d, "fid", better="lower",
                                               label=f"FID halton - confidence at {S4} steps (n = {n} each, paired)"))
else:
    print(f"halton and confidence were not both measured at {S4} steps: no verdict")

# %%
# NBVAL_CHECK_OUTPUT
print("every setting has n samples, a bootstrap ± and its calls counted:",
      all(r["n"] == n and r["fid_std"] > 0 and r["calls_per_image"] >= 1 for r in rows))
print("every setting but the baseline is paired with it:", all("vs_base" in r for r in rows[1:]))
fh = [d for p, d in drawn.items() if p.method == "first_hitting"]
print("first-hitting reveals one token per call:", all(bool((d.calls == L).all()) for d in fh))

# %% [markdown]
# ## The order each method reveals
#
# The step at which each position was first written, as a fraction of its image's run (0: the first call that
# wrote anything, 1: the last), for one setting per method; top: the mean over the n samples, bottom: sample 0
# alone; one colour scale for all. No position is favoured on average by random order, first-hitting, or Halton
# (each image's Halton order is shifted at random), so their means come out flat; one image shows each order
# itself. Confidence and EB reveal first what the network is surest of, so even their means have structure.

# %%
from ulib.sample.trace import reveal_map


def run_fraction(steps):
    """(B, L) reveal steps as a fraction of each image's last one (0: first, 1: last); -1 (a given position) kept."""
    last = steps.double().amax(1, keepdim=True).clamp(min=1)
    return torch.where(steps < 0, -1.0, steps.double() / last)


shown = {}
for p, d in drawn.items():  # one setting per method: the one with the most calls
    if p.method not in shown or d.calls.double().mean() > drawn[shown[p.method]].calls.double().mean():
        shown[p.method] = p
fig, axes = plt.subplots(2, len(shown), figsize=(2.4 * len(shown), 5.0), squeeze=False)
for col, (method, p) in enumerate(shown.items()):
    frac = run_fraction(drawn[p].reveal_step)
    for row, (maps, what) in enumerate(((frac, f"mean of {len(frac)}"), (frac[:1], "sample 0"))):
        ax = axes[row, col]
        im = ax.imshow(reveal_map(maps, m.latent_shape), cmap="viridis", vmin=0.0, vmax=1.0)
        setting = p.label.split(", ", 1)[-1] if ", " in p.label else ""
        ax.set_title(f"{method} {setting}\n{what}", fontsize=8)
        ax.axis("off")
fig.colorbar(im, ax=axes, shrink=0.7, label="fraction of the run at first write")
fig.suptitle("when each position was first written (dark: early); top: mean over the samples, bottom: one sample",
             fontsize=9)
outputs.save_figure(s, fig, "decoding_reveal_order")
plt.show()

# %% [markdown]
# ## Exact speculative sampling of the AR baseline
#
# The AR prior (notebook 05) draws one token per network call. Speculative sampling lets the absorbing prior
# draft a block of the next tokens in one parallel call, then the AR model scores the whole block in one
# teacher-forced pass and keeps a prefix: draft token v with proposal q(v) and target p(v) is kept with
# probability min(1, p(v)/q(v)); at the first rejection the token is drawn from the residual
# max(0, p − q) / Σ max(0, p − q) and the rest of the block is dropped. Then every token follows the AR model's
# law exactly: P(x = v) = min(q(v), p(v)) + max(0, p(v) − q(v)) = p(v).

# %%
def speculative_keep_scratch(p, q):
    """The rule for one drafted position: (the chance of keeping each draft token, the residual to draw from)."""
    keep = torch.where(q > 0, (p / q).clamp(max=1.0), torch.ones_like(p))
    r = (p - q).clamp(min=0)
    return keep, r / r.sum() if r.sum() > 0 else p


# %%
# NBVAL_CHECK_OUTPUT
from ulib.sample.speculative import acceptance, residual

p, q = torch.tensor([0.5, 0.5, 0.0]), torch.tensor([0.9, 0.1, 0.0])
keep, r = speculative_keep_scratch(p, q)
assert torch.allclose(keep, acceptance(p, q)) and torch.allclose(r, residual(p, q))
law = q * keep + (1 - (q * keep).sum()) * r  # kept, or rejected and redrawn
assert torch.allclose(law, p)
print("keep:", keep.tolist(), "| residual:", r.tolist(), "| the law of the kept-or-redrawn token:", law.tolist())

# %%
from ulib.sample.api import sample_tokens
from ulib.sample.speculative import speculative_sample

ar = session.prior(s, "autoregressive")  # trained with the same settings when missing (notebook 05)


def timed_ar(seed_):
    t0 = time.perf_counter()
    sample_tokens(ar, spec_images, grid=m.latent_shape, temperature=temperature, generator=s.generator(seed_))
    return time.perf_counter() - t0


spec_rows = []
timed_ar(0)  # warm-up
for block in spec_blocks:
    t_ar, t_spec, stats_ = [], [], None
    for rep in range(3):  # interleaved: the AR sampler, then speculative, three times
        t_ar.append(timed_ar(rep))
        t0 = time.perf_counter()
        _, stats_ = speculative_sample(ar, m.prior, spec_images, block=block, temperature=temperature,
                                       generator=s.generator(100 + rep), length=L)
        t_spec.append(time.perf_counter() - t0)
    spec_rows.append({"block": block, "images": spec_images, "acceptance_rate": stats_.acceptance_rate,
                      "tokens_per_ar_pass": stats_.tokens_per_pass, "ar_passes": stats_.ar_passes,
                      "seconds_ar": float(np.median(t_ar)), "seconds_speculative": float(np.median(t_spec)),
                      "speed_up": float(np.median(t_ar) / np.median(t_spec))})
outputs.write_table(s, spec_rows, "speculative_ar")
outputs.show_table(spec_rows)
print(f"the cached AR sampler: {L} passes per image; medians of 3 interleaved repeats on {s.device}")

# %% [markdown]
# ## Reading
#
# **What to notice.** All methods use the same network; only the order and the number of tokens revealed per
# call differ, so the frontier shows what a decoding rule alone buys. Read each method's paired difference
# against random order at T steps, not its raw FID, and the floor beside it: at a few hundred samples a
# difference of a few FID points is often "not resolved at this n". Methods that choose what to reveal
# (confidence, EB) spend calls where the network is unsure; Halton spreads its reveals so that tokens drawn
# together are far apart; ReMDM lets a token change its mind, which costs calls but no retraining.
# Speculative sampling changes nothing in the AR model's samples (they follow its law exactly): it only trades
# draft calls for fewer sequential AR passes, and pays off when the draft agrees with the target often.
#
# **Against the paper.** The paper samples by random order with evenly skipped steps (Table 3; FFHQ FID 7.12 at
# 256 steps, 7.90 at 100) and compares it with an AR prior (Table 4). The methods here came later and were
# reported on ImageNet-scale models: Halton about −2 FID against confidence at equal steps; EB 2–3 × fewer calls
# at equal quality; ReMDM's quality rising as steps grow past the token count. The table below holds the Halton
# claim to a verdict on this prior; the frontier above shows where the other methods land, each against the
# paper's own random order at T steps.
#
# **Why it differs at this scale.** With L = 64 tokens and T = 64, random order at T steps already reveals about
# one token per call (after skipping empty steps about 0.63 L calls per image), so "fewer calls" means a few
# dozen, not hundreds; the demo prior is small and its predictions are broad (entropies of a few nats), so EB's
# γ must be large before it saves calls; and OpenMoji emoji have flat backgrounds that any order gets right.

# %%
shown_rows = readings.reading(s, "14_decoding_lab", [
    {"what": f"FID, random order at T = {T} steps (t = {temperature:g}), the baseline",
     "paper": "FFHQ 7.12 at 256 steps (Table 3)",
     "this run": f"{base['fid']:.1f} ± {base['fid_std']:.1f} (n = {n}; floor {base['floor_fid']:.1f}; "
                 f"{base['calls_per_image']:.1f} calls per image)"},
    {"what": "best FID at <= 8 calls per image", "paper": "not in the paper (later methods)",
     "this run": (f"{cheap['setting']}: {cheap['fid']:.1f} ± {cheap['fid_std']:.1f}" if cheap else "none")},
    {"what": f"speculative AR sampling, block {spec_rows[-1]['block']}", "paper": "not in the paper",
     "this run": f"{spec_rows[-1]['tokens_per_ar_pass']:.2f} tokens per AR pass, acceptance "
                 f"{spec_rows[-1]['acceptance_rate']:.0%}, speed-up {spec_rows[-1]['speed_up']:.2f}x"},
    *readings.scale_rows(s)[:2]])

# %% [markdown]
# ## Exercises
#
# 1. **A method of your own.** Register a sampler that reveals positions in raster order, a fixed number per
#    call, and put it on the frontier. *Expected:* it appears in `registry.choices()`, `frontier.measure` scores
#    it like the others, and its FID is worse than Halton's at equal calls (neighbours drawn together disagree).
#
#    <details><summary>Solution</summary>
#
#    ```python
#    from dataclasses import dataclass
#    from ulib.sample.base import Sampler, SampleStep, draw
#
#    @dataclass(frozen=True)
#    class RasterOptions:
#        per_call: int = 8
#
#    class Raster(Sampler):
#        Options = RasterOptions
#        def start(self, x):
#            return -(-int((x == self.mask_id).sum(1).max()) // self.options.per_call)
#        def step(self, x, k):
#            masked = x == self.mask_id
#            reveal = masked & (masked.long().cumsum(1) <= self.options.per_call)
#            if not reveal.any():
#                return SampleStep(x, reveal, ran_network=False)
#            x = x.clone()
#            x[reveal] = draw(torch.softmax(self.logits_at(x, reveal).float() / self.temperature, -1), self.generator)
#            return SampleStep(x, reveal)
#
#    registry.register(registry.Method("raster", Raster, "raster order", steps="unused"))
#    extra, _ = frontier.measure(m, meter, [frontier.Setting.of("raster", None, per_call=8)], n, seed=seed,
#                                temperature=temperature, draws=sizes["draws"])
#    print(extra[-1]["setting"], extra[-1]["calls_per_image"], extra[-1]["fid"], extra[-1]["vs_base"])
#    ```
#    </details>
#
# 2. **How large must γ be?** Measure the entropies the prior predicts on the all-masked grid and halfway.
#    *Expected:* a few nats per position (near ln K for a broad prediction), so γ = 1 reveals one or two positions
#    per call and EB only saves calls at γ of several nats.
#
#    <details><summary>Solution</summary>
#
#    ```python
#    x = torch.full((4, L), m.mask_id, device=s.device)
#    with torch.no_grad():
#        p = torch.softmax(m.prior(x).float() / temperature, -1)
#    ent = -(p * p.clamp_min(1e-12).log()).sum(-1)
#    print("entropy on the all-masked grid:", ent.mean().item(), "nats; ln K =", np.log(K))
#    ```
#    </details>
#
# 3. **Exact means exact.** Compare the token histogram of 64 speculative samples with 64 plain AR samples.
#    *Expected:* the two histograms agree within sampling noise (a chi-square test does not reject), whatever the
#    block size; only the number of AR passes changes.
#
#    <details><summary>Solution</summary>
#
#    ```python
#    a = sample_tokens(ar, 64, grid=m.latent_shape, temperature=temperature, generator=s.generator(7)).flatten()
#    b, st = speculative_sample(ar, m.prior, 64, block=4, temperature=temperature, generator=s.generator(8), length=L)
#    ha, hb = torch.bincount(a.cpu(), minlength=K), torch.bincount(b.flatten().cpu(), minlength=K)
#    print("most common codes:", ha.topk(5).indices.tolist(), hb.topk(5).indices.tolist(), "| AR passes:", st.ar_passes)
#    ```
#    </details>

# %% [markdown]
# ## References
#
# - S. Bond-Taylor, P. Hessey, H. Sasaki, T. P. Breckon, C. G. Willcocks. *Unleashing Transformers: Parallel Token Prediction with Discrete Absorbing Diffusion for Fast High-Resolution Image Generation from Vector-Quantized Codes.* ECCV 2022. [arXiv:2111.12701](https://arxiv.org/abs/2111.12701)
# - H. Chang, H. Zhang, L. Jiang, C. Liu, W. T. Freeman. *MaskGIT: Masked Generative Image Transformer.* CVPR 2022. [arXiv:2202.04200](https://arxiv.org/abs/2202.04200)
# - V. Besnier, M. Chen, D. Hurych, E. Valle, M. Cord. *Halton Scheduler for Masked Generative Image Transformer.* ICLR 2025. [arXiv:2503.17076](https://arxiv.org/abs/2503.17076)
# - G. Wang, Y. Schiff, S. S. Sahoo, V. Kuleshov. *Remasking Discrete Diffusion Models with Inference-Time Scaling* (ReMDM). NeurIPS 2025. [arXiv:2503.00307](https://arxiv.org/abs/2503.00307)
# - H. Ben-Hamu, I. Gat, D. Severo, N. Nolte, B. Karrer. *Accelerated Sampling from Masked Diffusion Models via Entropy Bounded Unmasking* (EB-sampler). NeurIPS 2025. [arXiv:2505.24857](https://arxiv.org/abs/2505.24857)
# - K. Zheng, Y. Chen, H. Mao, M.-Y. Liu, J. Zhu, Q. Zhang. *Masked Diffusion Models are Secretly Time-Agnostic Masked Models and Exploit Inaccurate Categorical Sampling* (first-hitting sampling). ICLR 2025. [arXiv:2409.02908](https://arxiv.org/abs/2409.02908)
# - Y. Leviathan, M. Kalman, Y. Matias. *Fast Inference from Transformers via Speculative Decoding.* ICML 2023. [arXiv:2211.17192](https://arxiv.org/abs/2211.17192)
# - C. Chen, S. Borgeaud, G. Irving, J.-B. Lespiau, L. Sifre, J. Jumper. *Accelerating Large Language Model Decoding with Speculative Sampling.* 2023. [arXiv:2302.01318](https://arxiv.org/abs/2302.01318)
