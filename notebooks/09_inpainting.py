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
# **Reproduces:** Fig. 7 of the paper (section 4.5): an image is encoded, the tokens under a mask are replaced by the mask token, and the reverse process fills them in while the others stay fixed (asserted); then a measured reading of "consistent with the rest of the image": inpainted centres against centres taken from another image (FID, with a verdict).
#
# **Needs:** notebook 01's run directory (VQGAN and prior; trained here when missing). Every stage is *load if present, else train*: the notebook reuses what the run
# directory holds and trains only what is missing, so the notebooks chain (run them in order, or let
# `python -m ulib reproduce` do it).
#
# **Time:** CPU: seconds with `smoke`; about 1.5-2 min with `demo` (estimate: 15 s measured on 2 cores with a trained run before the quality check; inpainting its 100 test images about 5 s, scoring 4 sets and 2 paired differences with 200 bootstrap draws about 1.5 min). GPU, paper profiles: seconds per image (estimate).
#
# **Writes:** figures (PNG), tables (CSV: the masks, the quality check) and the verdict row (`verdicts_09_inpainting.json`) into `RUN/results/`.

# %% tags=["parameters"]
profile = "smoke"  # smoke (CI, seconds) | demo (CPU, minutes) | ffhq, churches, bedrooms (GPU, the paper's settings)
run_dir = "../runs/nb-smoke"  # run directory shared by every notebook (relative to notebooks/); one per profile
device = "auto"  # 'auto' (cuda, then mps, then cpu), 'cpu', 'cuda', ...
seed = 0  # seed of this notebook's sampling and figures (training uses the config's own seed)
overrides = []  # config overrides, each written as for `--set` on the command line (see the README)
masks = ["centre", "left", "bottom"]  # regions to regenerate: centre square, left half, bottom half
n_images = 4  # held-out images to edit and show (test split; validation in runs without one)
scored_mask = "centre"  # the mask of the quality check (an internal region, as in the paper's Fig. 7)
n_scored = 100  # held-out images inpainted for the quality check; at most the profile's n_samples (smoke 40)
steps = 0  # sampling steps; 0: one step per time from the start time
temperature = None  # None: the profile's sample.temperature
paste_back = True  # keep the original pixels outside the mask

# %%
import torch

from ulib.app import notebook as nbu

s = nbu.setup(profile, run_dir, device, seed, overrides)  # absolute run dir, config, device; RUN/results/
cfg = s.cfg
K, T, L = cfg.vqgan.codebook_size, cfg.prior.total_steps, cfg.latent_size ** 2
print(f"profile {cfg.profile} | device {s.device} | {cfg.data.dataset} {cfg.data.img_size}px -> "
      f"{cfg.latent_size}x{cfg.latent_size} = {L} tokens, K = {K} codes, T = {T}")

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

vq, net = nbu.vqgan(s), nbu.prior(s)
held = "test" if nbu.has_test_split(s) else "val"  # images no model trained on
held_name = {"test": "test images (families no model saw)",
             "val": "validation images (families the models did not train on)"}[held]
x = nbu.split_images(s, held, n_images).float().div(127.5).sub(1).to(s.device)  # (B, 3, H, W) in [-1, 1]
results, rows, pictures = {}, [], [x]
for kind in masks:
    pm = pixel_mask(kind, size).to(s.device)
    res, seconds = nbu.timed(lambda: inpaint(
        vq, net, x, pm, num_timesteps=T, mask_id=cfg.mask_id, steps=steps or None, temperature=temp,
        paste_back=paste_back, generator=s.generator()), s.device)
    results[kind] = res
    pictures += [torch.where(pm, torch.full_like(x, 0.5), x), res.images.clamp(-1, 1)]
    rows.append({"mask": kind, "tokens_regenerated": int(res.latent_mask[0].sum()), "tokens": L,
                 "start_time": res.start_times[0], "T": T, "seconds_per_image": seconds / len(x)})
nbu.write_table(s, rows, "fig7_inpainting")
nbu.show(nbu.save_grid(s, torch.cat(pictures), "fig7_inpainting", nrow=len(x)))
print(f"columns: {len(x)} {held_name}, chosen at random (seeded); rows: input, then for each mask {masks}: "
      "masked input (grey), result")

# %%
# NBVAL_CHECK_OUTPUT
for kind, res in results.items():
    keep = ~res.latent_mask
    unchanged = torch.equal(res.tokens[keep], res.original_tokens[keep])
    assert unchanged, f"{kind}: tokens outside the mask changed"
    print(f"{kind:6s}: {int(res.latent_mask[0].sum())} of {L} tokens regenerated, start time "
          f"t0 = {res.start_times[0]} of T = {T}, tokens outside the mask unchanged: {unchanged}")

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

sizes = nbu.quality_sizes(s)
meter = nbu.quality_meter(s, sizes["n_reference"])
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
quality = nbu.score_sets(s, meter, named, sizes["draws"], "fig7_inpainting_quality", "fig7_inpainting_sets",
                         mask=scored_mask)
print(f"images: the first {n} of {meter.holdout_name} | reference: {meter.reference_name} | "
      f"±: bootstrap std over {sizes['draws']} draws | {int(res.latent_mask[0].sum())} of {L} tokens regenerated "
      f"from t0 = {res.start_times[0]}, t = {temp}")

# %%
context = meter.difference(named["inpainted"], named["region from another image"], draws=sizes["draws"],
                           seed=s.seed, paired=True)
nbu.claim(s, "09_inpainting", "consistent_fill", "A bidirectional prior fills an internal region consistently "
          "with the rest of the image", "Fig. 7 and section 4.5: shown, not measured",
          verdict_of_difference(context, "fid", better="lower", label="FID inpainted - region from another image"))
cost = meter.difference(named["inpainted"], named["region's own tokens (no edit)"], draws=sizes["draws"],
                        seed=s.seed, paired=True)
print(difference_sentence(cost, "fid", "the inpainted images", "the same images with the region's own tokens") + ".")
