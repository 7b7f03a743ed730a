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
# # 09 · Inpainting: regenerate the masked part of an image
#
# **Reproduces:** Fig. 7 of the paper (section 4.5): an image is encoded, the tokens under a mask are replaced by the mask token, and the reverse process fills them in while the others stay fixed (asserted), with the autoregressive prior's fill beside where the run has one; then "consistent with the rest of the image" measured: inpainted centres against centres taken from another image (FID, with a verdict).
#
# **Needs:** notebook 01's run directory (VQGAN and prior; trained here when missing); notebook 05's `prior_ar.pt` for the autoregressive fill (skipped without it).
#
# **Time:** `smoke` seconds; `demo` about 2.5 min (149 s measured on 2 cores, 2026-12-07, before the varied pictures and the autoregressive fill). GPU, paper profiles: seconds per image (estimate).
#
# **Writes:** figures (PNG), tables (CSV: the masks, the quality check) and the verdict row (`verdicts_09_inpainting.json`) into `RUN/results/`.

# %% tags=["parameters"]
profile = "smoke"  # smoke (CI, seconds) | demo (CPU, minutes) | ffhq, churches, bedrooms (GPU, the paper's settings)
run_dir = "../runs/nb-smoke"  # run directory shared by every notebook (relative to notebooks/); one per profile
device = "auto"  # 'auto' (cuda, then mps, then cpu), 'cpu', 'cuda', ...
seed = 0  # seed of this notebook's sampling and figures (training uses the config's own seed)
overrides = []  # config overrides, each written as for `--set` on the command line (see the README)
pretrained = ""  # "tutorial" loads the kit's ready-trained model instead of training (with run_dir "../runs/tutorial")
masks = ["centre", "left", "bottom"]  # regions to regenerate: centre square, left half, bottom half
n_images = 4  # held-out images to edit and show (test split; validation in runs without one)
scored_mask = "centre"  # the mask of the quality check (an internal region, as in the paper's Fig. 7)
n_scored = 100  # held-out images inpainted for the quality check; at most the profile's n_samples (smoke 40)
steps = 0  # sampling steps; 0: one step per time from the start time
temperature = None  # None: the profile's sample.temperature
paste_back = True  # keep the original pixels outside the mask

# %%
import torch

from ulib.app import measuring, outputs, readings, session

s = session.setup(profile, run_dir, device, seed, overrides, pretrained)  # run dir, config, device, RUN/results/
cfg = s.cfg
K, T, L = cfg.vqgan.codebook_size, cfg.prior.total_steps, cfg.latent_size ** 2

temp = temperature or cfg.sample.temperature
size = cfg.data.img_size


# %% [markdown]
# ## From a pixel mask to a token mask and a start time
#
# Token (i, j) is decoded from an f x f pixel block, f = img_size / h; it is regenerated when its
# block touches the mask. With m of L tokens masked, the grid looks like x_t at t/T = m/L, so the
# reverse process starts at t₀ = round(T m / L) instead of T.

# %%
def pixel_mask(kind: str, size: int) -> torch.Tensor:
    m = torch.zeros(size, size, dtype=torch.bool)
    q = size // 4
    if kind == "centre":
        m[q: size - q, q: size - q] = True
    elif kind == "left":
        m[:, : size // 2] = True
    elif kind == "bottom":
        m[size // 2:, :] = True
    else:
        raise ValueError(f"mask {kind!r}; allowed: 'centre', 'left', 'bottom'")
    return m


# %%
from ulib.sample.inpaint import inpaint

vq, net = session.vqgan(s), session.prior(s)
held = "test" if measuring.has_test_split(s) else "val"  # images no model trained on
held_name = {"test": "test images (families no model saw)",
             "val": "validation images (families the models did not train on)"}[held]
if cfg.data.dataset == "openmoji":  # varied subjects: smileys & emotion, an animal, a food, an object
    picked, subjects = measuring.varied_images(s, held, per_category=-(-n_images // 4))
    picked, subjects = picked[:n_images], subjects[:n_images]
else:
    picked, subjects = measuring.split_images(s, held, n_images), ["image"] * n_images
x = picked.float().div(127.5).sub(1).to(s.device)  # (B, 3, H, W) in [-1, 1]
results, rows, pictures = {}, [], [x]
for kind in masks:
    pm = pixel_mask(kind, size).to(s.device)
    res, seconds = readings.timed(lambda: inpaint(
        vq, net, x, pm, num_timesteps=T, mask_id=cfg.mask_id, steps=steps or None, temperature=temp,
        paste_back=paste_back, generator=s.generator()), s.device)
    results[kind] = res
    pictures += [torch.where(pm, torch.full_like(x, 0.5), x), res.images.clamp(-1, 1)]
    rows.append({"mask": kind, "tokens_regenerated": int(res.latent_mask[0].sum()), "tokens": L,
                 "start_time": res.start_times[0], "T": T, "seconds_per_image": seconds / len(x)})
outputs.write_table(s, rows, "fig7_inpainting")
outputs.show(outputs.save_grid(s, torch.cat(pictures), "fig7_inpainting", nrow=len(x)))
print(f"columns: {len(x)} {held_name}: {', '.join(subjects)} (the first of each category in a seeded order); "
      f"rows: input, then for each mask {masks}: masked input (grey), result")

# %%
# NBVAL_CHECK_OUTPUT
for kind, res in results.items():
    keep = ~res.latent_mask
    unchanged = torch.equal(res.tokens[keep], res.original_tokens[keep])
    assert unchanged, f"{kind}: tokens outside the mask changed"
    print(f"{kind:6s}: {int(res.latent_mask[0].sum())} of {L} tokens regenerated, start time "
          f"t0 = {res.start_times[0]} of T = {T}, tokens outside the mask unchanged: {unchanged}")

# %% [markdown]
# ## The autoregressive prior's fill, beside
#
# Notebook 05's autoregressive baseline can inpaint too, without retraining, but only in its own order: each masked
# token is drawn from p(x_i | x_<i), which sees the rows above and the left part of its own row, never the kept
# tokens below or to the right (`ulib.sample.autoregressive.fill_ar`). The absorbing prior sees every kept token
# at every step: that is the paper's argument for it in section 4.5. Rows: input, masked input, the absorbing
# prior's fill, the autoregressive prior's fill (same mask, same temperature).

# %%
from ulib.sample.autoregressive import fill_ar

if s.run.prior_ckpt_for("autoregressive").exists():
    net_ar = session.prior(s, "autoregressive")
    kind = "centre" if "centre" in masks else masks[0]
    edit, pm = results[kind], pixel_mask(kind, size).to(s.device)
    given, where = edit.original_tokens.flatten(1), edit.latent_mask.flatten(1)
    ar_tokens = fill_ar(net_ar, given, where, temp, s.generator(2))
    assert torch.equal(ar_tokens[~where], given[~where]), "the AR fill changed a kept token"
    with torch.no_grad():
        ar_images = vq.decode(ar_tokens.view_as(edit.tokens)).clamp(-1, 1)
    if paste_back:
        ar_images = torch.where(pm, ar_images, x)
    masked_input = torch.where(pm, torch.full_like(x, 0.5), x)
    outputs.show(outputs.save_grid(s, torch.cat([x, masked_input, edit.images.clamp(-1, 1), ar_images]),
                           "09_absorbing_vs_ar_fill", nrow=len(x)))
    print(f"rows: input, {kind} mask, absorbing prior, autoregressive prior ({int(where[0].sum())} of {L} tokens "
          f"filled, temperature {temp:g}); kept tokens unchanged by both: True")
else:
    print("this run has no autoregressive prior (notebook 05 trains it): the comparison is skipped")

# %% [markdown]
# ## Is the filled region consistent with the rest of the image? Measured
#
# The paper shows edits (Fig. 7: alternative towers, water replaced) and does not measure them; its point
# (section 4.5) is that a bidirectional prior fills an internal region in a way consistent with what
# surrounds it. A measurable reading: regenerate the `scored_mask` region of n held-out images and score
# the results as images, against the reference training images and beside the floor, next to two
# controls made from the same n images, which differ from the inpainted ones only in the region's tokens:
# the image's own tokens (no edit: what the VQGAN alone makes of the region, so the difference is what
# the edit costs), and the tokens of *another* held-out image there (real content that ignores its
# surroundings). Every set is decoded from a full token grid and, with `paste_back`, keeps the original
# pixels outside the mask. If the prior uses the context, its fills look more like data (lower FID) than
# the swapped fills. Each image gives one item to every set, so the differences resample the items in pairs
# (`QualityMeter.difference(..., paired=True)`) on shared resamples of the reference.

# %%
from ulib.app.prose import difference_sentence
from ulib.eval.extractors import to_uint8
from ulib.eval.stats import verdict_of_difference

sizes = measuring.quality_sizes(s)
meter = measuring.quality_meter(s, sizes["n_reference"])
n = min(n_scored, sizes["n_samples"])
real = meter.holdout[:n]  # uint8: the floor's images, the first n of the held-out split (test when the run has one)
xr = real.float().div(127.5).sub(1).to(s.device)
pm = pixel_mask(scored_mask, size).to(s.device)
with torch.no_grad():
    res = inpaint(vq, net, xr, pm, num_timesteps=T, mask_id=cfg.mask_id, steps=steps or None, temperature=temp,
                  paste_back=paste_back, generator=s.generator(1))
    fill = lambda tok: to_uint8((torch.where(pm, vq.decode(tok), xr) if paste_back else vq.decode(tok))
                                .clamp(-1, 1).cpu())  # decoded as `inpaint` decodes its result
    donor = res.original_tokens.roll(1, dims=0)  # image i gets the region's tokens of image i - 1
    named = {"inpainted": to_uint8(res.images.clamp(-1, 1).cpu()),
             "region from another image": fill(torch.where(res.latent_mask, donor, res.original_tokens)),
             "region's own tokens (no edit)": fill(res.original_tokens)}
quality = measuring.score_sets(s, meter, named, sizes["draws"], "fig7_inpainting_quality", "fig7_inpainting_sets",
                         mask=scored_mask)
print(f"images: the first {n} of {meter.holdout_name} | reference: {meter.reference_name} | "
      f"±: bootstrap std over {sizes['draws']} draws | {int(res.latent_mask[0].sum())} of {L} tokens regenerated "
      f"from t0 = {res.start_times[0]}, t = {temp}")

# %%
context = meter.difference(named["inpainted"], named["region from another image"], draws=sizes["draws"],
                           seed=s.seed, paired=True)
readings.claim(s, "09_inpainting", "consistent_fill", "A bidirectional prior fills an internal region consistently "
          "with the rest of the image", "Fig. 7 and section 4.5: shown, not measured",
          verdict_of_difference(context, "fid", better="lower", label="FID inpainted - region from another image"))
cost = meter.difference(named["inpainted"], named["region's own tokens (no edit)"], draws=sizes["draws"],
                        seed=s.seed, paired=True)
print(difference_sentence(cost, "fid", "the inpainted images", "the same images with the region's own tokens") + ".")

# %% [markdown]
# ## Reading
#
# **What to notice.** Inpainting is sampling with part of the grid given: the kept tokens are never masked, so the
# reverse process starts at the time whose masked share matches the hole (t₀ = round(T m / L)) and fills only the
# hole, every step seeing everything kept around it. Compare the absorbing prior's fill with the autoregressive one
# row by row: the AR model draws the hole in raster order and knows nothing of what lies below or right of each
# token, so its fill can ignore the bottom edge of the hole.
#
# **Against the paper.** Fig. 7 shows edits on FFHQ and LSUN images and section 4.5 calls the result consistent with
# the rest of the image; nothing is measured there. The verdict below makes it a measured question: are inpainted
# centres closer to real images (in the feature space) than the same images with the centre taken from another image?
#
# **Why it differs at this scale.** A centre mask on an 8×8 grid regenerates 16 tokens, a quarter of a small emoji
# and often all of its face or its symbol; there is little left to be consistent with, and the decoder's blur at
# 32 px softens the seam that a mismatched fill would leave.

# %%
shown = readings.reading(s, "09_inpainting")

# %% [markdown]
# ## Exercises
#
# 1. **Start time by hand.** For each mask, compute t₀ = round(T m / L) from the number m of regenerated tokens and
#    compare with `res.start_times`. *Expected:* equal; the centre mask regenerates about a quarter of the tokens, so
#    t₀ ≈ T/4.
#
#    <details><summary>Solution</summary>
#
#    ```python
#    for kind, r in results.items():
#        m = int(r.latent_mask[0].sum())
#        print(kind, m, (2 * T * m + L) // (2 * L), r.start_times[0])
#    ```
#    </details>
#
# 2. **Your own mask.** Write a mask for the top-right quarter and inpaint the same images. *Expected:* a quarter of
#    the tokens regenerated, the kept tokens unchanged (check it as the cell above does).
#
#    <details><summary>Solution</summary>
#
#    ```python
#    pm = torch.zeros(size, size, dtype=torch.bool)
#    pm[: size // 2, size // 2:] = True
#    r = inpaint(vq, net, x, pm.to(s.device), num_timesteps=T, mask_id=cfg.mask_id, temperature=temp,
#                paste_back=True, generator=s.generator(5))
#    print(int(r.latent_mask[0].sum()), "of", L, torch.equal(r.tokens[~r.latent_mask], r.original_tokens[~r.latent_mask]))
#    outputs.show(outputs.save_grid(s, torch.cat([x, r.images.clamp(-1, 1)]), "ex09_top_right", nrow=len(x)))
#    ```
#    </details>
#
# 3. **The AR model's blind side.** Inpaint the *top* half with the AR model (`fill_ar`). *Expected:* its fill
#    cannot see the kept bottom half at all (every masked token lies before every kept one in raster order), so it is
#    an unconditional AR sample of the top; the absorbing prior's fill is conditioned on the bottom.
#
#    <details><summary>Solution</summary>
#
#    ```python
#    pm = torch.zeros(size, size, dtype=torch.bool)
#    pm[: size // 2] = True
#    r = inpaint(vq, net, x, pm.to(s.device), num_timesteps=T, mask_id=cfg.mask_id, temperature=temp,
#                generator=s.generator(6))
#    ar = fill_ar(session.prior(s, "autoregressive"), r.original_tokens.flatten(1), r.latent_mask.flatten(1), temp,
#                 s.generator(6))
#    with torch.no_grad():
#        ar_img = vq.decode(ar.view_as(r.tokens)).clamp(-1, 1)
#    outputs.show(outputs.save_grid(s, torch.cat([x, r.images.clamp(-1, 1), ar_img]), "ex09_top_half", nrow=len(x)))
#    ```
#    </details>

# %% [markdown]
# ## References
#
# - S. Bond-Taylor, P. Hessey, H. Sasaki, T. P. Breckon, C. G. Willcocks. *Unleashing Transformers: Parallel Token Prediction with Discrete Absorbing Diffusion for Fast High-Resolution Image Generation from Vector-Quantized Codes.* ECCV 2022. [arXiv:2111.12701](https://arxiv.org/abs/2111.12701)
# - J. Austin, D. D. Johnson, J. Ho, D. Tarlow, R. van den Berg. *Structured Denoising Diffusion Models in Discrete State-Spaces* (D3PM, the absorbing state). NeurIPS 2021. [arXiv:2107.03006](https://arxiv.org/abs/2107.03006)
# - H. Chang, H. Zhang, L. Jiang, C. Liu, W. T. Freeman. *MaskGIT: Masked Generative Image Transformer.* CVPR 2022. [arXiv:2202.04200](https://arxiv.org/abs/2202.04200)
# - M. Heusel, H. Ramsauer, T. Unterthiner, B. Nessler, S. Hochreiter. *GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium* (FID). NeurIPS 2017. [arXiv:1706.08500](https://arxiv.org/abs/1706.08500)
