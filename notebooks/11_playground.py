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
# # 11 · Playground: sample, inpaint and watch the reverse process with widgets
#
# **Reproduces:** nothing new: an interactive view of sections 3.2-4.5 (decoding methods and step skipping as in Table 3, temperature as in Fig. 6, wide canvases as in Fig. 4, inpainting as in Fig. 7, and the reverse process one step at a time).
#
# **Needs:** notebook 01's run directory (VQGAN and prior; trained here when missing). Move the sliders in JupyterLab; run headless (papermill), the notebook presses the buttons itself once. Every stage is *load if present, else train*: the notebook reuses what the run
# directory holds and trains only what is missing, so the notebooks chain (run them in order, or let
# `python -m ulib reproduce` do it).
#
# **Time:** CPU: seconds with `smoke`; about 14 s with `demo` (measured on 2 cores, trained run present; the widget prints the time of each Generate). GPU, paper profiles: seconds per Generate at 256 steps (estimate).
#
# **Writes:** the pictures of the buttons it presses (PNG) into `RUN/results/`, nothing else.

# %% tags=["parameters"]
profile = "smoke"  # smoke (CI, seconds) | demo (CPU, minutes) | ffhq, churches, bedrooms (GPU, the paper's settings)
run_dir = "../runs/nb-smoke"  # run directory shared by every notebook (relative to notebooks/); one per profile
device = "auto"  # 'auto' (cuda, then mps, then cpu), 'cpu', 'cuda', ...
seed = 0  # seed of this notebook's sampling and figures (training uses the config's own seed)
overrides = []  # config overrides, each written as for `--set` on the command line (see the README)
n_images = 4  # images per Generate
steps = 0  # reverse steps; 0: the profile's sample.steps (else T)
temperature = None  # None: the profile's sample.temperature

# %%
import torch

from ulib.app import notebook as nbu

s = nbu.setup(profile, run_dir, device, seed, overrides)  # absolute run dir, config, device; RUN/results/
cfg = s.cfg
K, T, L = cfg.vqgan.codebook_size, cfg.prior.total_steps, cfg.latent_size ** 2
print(f"profile {cfg.profile} | device {s.device} | {cfg.data.dataset} {cfg.data.img_size}px -> "
      f"{cfg.latent_size}x{cfg.latent_size} = {L} tokens, K = {K} codes, T = {T}")

from ulib.app.widgets import Playground
from ulib.data.datasets import build_dataset
from ulib.sample.models import from_run

nbu.prior(s)  # load if present, else train (and the VQGAN and latents before it)
models = from_run(s.run, cfg, s.device)
val = build_dataset(cfg.data, "val", train_transforms=False)

# %% [markdown]
# ## The playground
#
# Three tabs, all calling ulib: **Sample** (`ulib.sample.api.sample_tokens` with the method, steps,
# temperature and seed of the sliders; a canvas wider than the training grid goes through
# `ulib.sample.canvas.sample_canvas`, Eq. 8), **Inpaint** (`ulib.sample.inpaint.inpaint` on a validation image
# or the last sample, inside a rectangle given in pixels) and **Steps** (`AbsorbingSampler.step`
# one step at a time; the slider walks over the kept states, from all masked to none).
#
# Generate samples in a background thread, so that **Stop** is handled while it runs: it sets a flag
# that the sampler's callback checks after every pass, which ends the sampling early. The buttons
# call plain methods (`generate`, `inpaint_region`, `compute_steps`), which the tests call too.

# %%
pg = Playground(models, s.device, val)
pg.n_images.value = n_images
pg.steps.value = steps or pg.steps.value
pg.temperature.value = temperature or pg.temperature.value
pg.seed.value = s.seed
pg

# %% [markdown]
# Run headless, the notebook presses the buttons itself (in JupyterLab, use the widget above; its
# pictures update in place). The pictures are also saved to `RUN/results/`.

# %%
pg.generate_button.click()
pg.wait()  # Generate runs in a background thread
print(pg.message.value, "|", pg.timing.value)
(s.results / "11_playground_samples.png").write_bytes(pg.image.value)

pg.regenerate_button.click()  # inpaint the default rectangle of validation image 0
print(pg.inpaint_message.value)
(s.results / "11_playground_inpaint_before.png").write_bytes(pg.before.value)
(s.results / "11_playground_inpaint_after.png").write_bytes(pg.after.value)

pg.steps_button.click()  # the reverse process step by step, for one image
pg.step_slider.value = pg.step_slider.max // 2
print(pg.step_label.value)

# %%
# NBVAL_CHECK_OUTPUT
masked = [int((x == cfg.mask_id).sum()) for x in pg.states]
never_up = masked == sorted(masked, reverse=True)
assert masked[0] == L and masked[-1] == 0 and never_up, masked  # from all masked to none, never re-masking
print(f"step slider 0..{pg.step_slider.max} over {len(pg.states)} states; masked tokens: first "
      f"{masked[0]} of {L}, last {masked[-1]}; never increasing: {never_up}")
res = pg.inpaint_result
keep = ~res.latent_mask
unchanged = torch.equal(res.tokens[keep], res.original_tokens[keep])
assert unchanged, "inpainting changed tokens outside the mask"
print(f"inpainting: {int(res.latent_mask.sum())} of {L} tokens regenerated, tokens outside unchanged: {unchanged}")
