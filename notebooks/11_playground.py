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
# **Needs:** notebook 01's run directory (VQGAN and prior; trained here when missing). Move the sliders in JupyterLab; run headless (papermill), the notebook presses the buttons itself once and shows the pictures it saved.
#
# **Time:** `smoke` seconds; `demo` about 7 s (measured on 2 cores, 2026-12-07, trained run present). GPU, paper profiles: seconds per Generate at 256 steps (estimate).
#
# **Writes:** the pictures of the buttons it presses (PNG) into `RUN/results/`, nothing else.

# %% tags=["parameters"]
profile = "smoke"  # smoke (CI, seconds) | demo (CPU, minutes) | ffhq, churches, bedrooms (GPU, the paper's settings)
run_dir = "../runs/nb-smoke"  # run directory shared by every notebook (relative to notebooks/); one per profile
device = "auto"  # 'auto' (cuda, then mps, then cpu), 'cpu', 'cuda', ...
seed = 0  # seed of this notebook's sampling and figures (training uses the config's own seed)
overrides = []  # config overrides, each written as for `--set` on the command line (see the README)
pretrained = ""  # "tutorial" loads the kit's ready-trained model instead of training (with run_dir "../runs/tutorial")
n_images = 4  # images per Generate
steps = 0  # reverse steps; 0: the profile's sample.steps (else T)
temperature = None  # None: the profile's sample.temperature

# %%
import torch

from ulib.app import outputs, readings, session

s = session.setup(profile, run_dir, device, seed, overrides, pretrained)  # run dir, config, device, RUN/results/
cfg = s.cfg
K, T, L = cfg.vqgan.codebook_size, cfg.prior.total_steps, cfg.latent_size ** 2

from ulib.app.widgets import Playground
from ulib.data.datasets import build_dataset
from ulib.models import load_run

session.prior(s)  # load if present, else train (and the VQGAN and latents before it)
models = load_run(s.run, s.device, cfg=cfg)
val = build_dataset(cfg.data, "val", train_transforms=False)

# %% [markdown]
# ## The playground
#
# Three tabs, all calling ulib: **Sample** (`ulib.sample.api.sample_tokens` with the method, steps,
# temperature and seed of the sliders; a canvas wider than the training grid goes through
# `ulib.sample.canvas.sample_canvas`, Eq. 8), **Inpaint** (`ulib.sample.inpaint.inpaint` on a validation image
# or the last sample, inside a rectangle given in pixels) and **Steps** (one image drawn with the Sample tab's
# method and settings through the same `sample_tokens`, every state kept by `ulib.sample.trace.StepTrace`; the
# slider walks over the states, from all masked to none, beside a heat map of the step at which each position took
# its token and the entropy of the network's predictions at every step). Every method of
# `ulib.sample.registry` is in the menu, with its options (`KEY=VALUE`) in the box below it.
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
(s.results / "11_playground_step_tokens.png").write_bytes(pg.token_map.value)
(s.results / "11_playground_step_decoded.png").write_bytes(pg.step_image.value)
(s.results / "11_playground_reveal_order.png").write_bytes(pg.reveal_image.value)
_ = (s.results / "11_playground_entropy.png").write_bytes(pg.entropy_image.value)  # _: not the byte count

# %% [markdown]
# What the three tabs showed, as saved (widgets do not render in a static copy of this notebook): the Sample tab's
# grid; the Inpaint tab's image before and after; the Steps tab at its middle step, the token grid (masked cells
# black) and its decoding (masked cells grey), then the run's reveal order and its entropy per step.

# %%
for name in ("samples", "inpaint_before", "inpaint_after", "step_tokens", "step_decoded", "reveal_order",
             "entropy"):
    print(name.replace("_", " "))
    outputs.show(s.results / f"11_playground_{name}.png")

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

# %% [markdown]
# ## Reading
#
# **What to notice.** Every button calls the same ulib functions the other notebooks measure: the Sample tab is
# notebook 04's and 07's sampling, the wide canvas is notebook 08's Eq. 8, Inpaint is notebook 09's, and Steps is
# the reverse process of notebook 03 one state at a time. Try the settings the other notebooks found to matter: few
# steps (04), low and high temperature (07), confidence decoding at a handful of steps (04).
#
# **Against the paper.** Nothing new is measured here; the paper's settings for its own models are temperature 0.9
# (Tables 1, 2) and 256 steps (Table 3), and its wide images use temperature 0.8 (Fig. 4). The table below sets this
# run's scale beside the paper's.
#
# **Why it differs at this scale.** A sample of this run takes a fraction of a second on 2 CPU cores because the model
# is tiny; the paper's 256-step sample took 3.8 s on an RTX 2080 Ti.

# %%
shown = readings.reading(s, "11_playground", readings.scale_rows(s))

# %% [markdown]
# ## Exercises
#
# 1. **Steps against time.** In the Sample tab, time Generate at steps T, T/4 and T/16 (the timing line under the
#    picture). *Expected:* time roughly proportional to the network calls, so about 4× and 16× faster.
#
#    <details><summary>Solution</summary>
#
#    ```python
#    for st in (T, max(1, T // 4), max(1, T // 16)):
#        pg.steps.value = st
#        pg.generate_button.click()
#        pg.wait()
#        print(st, pg.timing.value)
#    ```
#    </details>
#
# 2. **Watch a token appear.** In the Steps tab, move the slider one step at a time from 0 and count how many tokens
#    each step reveals. *Expected:* about L/T per step on average at the full schedule, some steps none.
#
#    <details><summary>Solution</summary>
#
#    ```python
#    masked = [int((x == cfg.mask_id).sum()) for x in pg.states]
#    print([a - b for a, b in zip(masked, masked[1:])])
#    ```
#    </details>

# %% [markdown]
# ## References
#
# - S. Bond-Taylor, P. Hessey, H. Sasaki, T. P. Breckon, C. G. Willcocks. *Unleashing Transformers: Parallel Token Prediction with Discrete Absorbing Diffusion for Fast High-Resolution Image Generation from Vector-Quantized Codes.* ECCV 2022. [arXiv:2111.12701](https://arxiv.org/abs/2111.12701)
# - H. Chang, H. Zhang, L. Jiang, C. Liu, W. T. Freeman. *MaskGIT: Masked Generative Image Transformer.* CVPR 2022. [arXiv:2202.04200](https://arxiv.org/abs/2202.04200)
# - OpenMoji, the open-source emoji and icon project (HfG Schwäbisch Gmünd), [openmoji.org](https://openmoji.org), CC BY-SA 4.0: the kit's built-in dataset.
