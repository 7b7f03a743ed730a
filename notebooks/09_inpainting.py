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
# # 09 · Inpainting: regenerate the masked part of an image
#
# **Reproduces:** Fig. 7 of the paper (section 4.5): an image is encoded, the tokens under a mask are replaced by the mask token, and the reverse process fills them in while the others stay fixed.
#
# **Needs:** notebook 01's run directory (VQGAN and prior; trained here when missing). Every stage is *load if present, else train*: the notebook reuses what the run
# directory holds and trains only what is missing, so the notebooks chain (run them in order, or let
# `python -m ulib reproduce` do it).
#
# **Time:** CPU: about 4 s with `smoke` (measured on 2 cores), 4 s with `demo` (measured on 2 cores, trained run present). GPU, paper profiles: seconds per image (estimate).
#
# **Writes:** figures (PNG) and tables (CSV) into `RUN/results/`.

# %% tags=["parameters"]
profile = "smoke"  # smoke (CI, seconds) | demo (CPU, minutes) | ffhq, churches, bedrooms (GPU, the paper's settings)
run_dir = "../runs/nb-smoke"  # run directory shared by every notebook (relative to notebooks/); one per profile
device = "auto"  # 'auto' (cuda, then mps, then cpu), 'cpu', 'cuda', ...
seed = 0  # seed of this notebook's sampling and figures (training uses the config's own seed)
overrides = []  # config overrides, each written as for `--set` on the command line (see the README)
masks = ["centre", "left", "bottom"]  # regions to regenerate: centre square, left half, bottom half
n_images = 4  # validation images to edit
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
from ulib.data.datasets import build_dataset
from ulib.sample.inpaint import inpaint

vq, net = nbu.vqgan(s), nbu.prior(s)
val = build_dataset(cfg.data, "val", train_transforms=False)
x = torch.stack([val[i] for i in range(min(n_images, len(val)))]).to(s.device)
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
print("rows: input, then for each mask", masks, ": masked input (grey), result")

# %%
# NBVAL_CHECK_OUTPUT
for kind, res in results.items():
    keep = ~res.latent_mask
    print(f"{kind:6s}: {int(res.latent_mask[0].sum())} of {L} tokens regenerated, start time "
          f"t0 = {res.start_times[0]} of T = {T}, tokens outside the mask unchanged: "
          f"{torch.equal(res.tokens[keep], res.original_tokens[keep])}")
