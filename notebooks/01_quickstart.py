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
# # 01 · Quickstart: images → tokens → a prior over tokens → new images
#
# **Reproduces:** the method of section 3 end to end: images → VQGAN tokens (section 3.1) → an absorbing diffusion prior over the tokens (section 3.2) → new images; then the run's quality beside the noise floor, and a memorisation check of its samples (nearest training images, as in the paper's supplement C, here counted).
#
# **Needs:** nothing: this notebook trains both stages when the run directory has none.
#
# **Time:** `smoke` about 1.5 min (the pictures are meaningless); `demo` about 17.5 min of training (the same work as `make demo`) and 2 min of scoring (measured on 2 cores, 2026-12-07). GPU, paper profiles: days (estimate from the step counts).
#
# **Writes:** `01_samples.png`, `01_quality.csv`, `01_memorisation.csv`, `01_nearest_training.png` and the near-copy verdict (`verdicts_01_quickstart.json`) into `RUN/results/`.

# %% tags=["parameters"]
profile = "smoke"  # smoke (CI, seconds) | demo (CPU, minutes) | ffhq, churches, bedrooms (GPU, the paper's settings)
run_dir = "../runs/nb-smoke"  # run directory shared by every notebook (relative to notebooks/); one per profile
device = "auto"  # 'auto' (cuda, then mps, then cpu), 'cpu', 'cuda', ...
seed = 0  # seed of this notebook's sampling and figures (training uses the config's own seed)
overrides = []  # config overrides, each written as for `--set` on the command line (see the README)
pretrained = ""  # "tutorial" loads the kit's ready-trained model instead of training (with run_dir "../runs/tutorial")
n_samples = 16  # images to sample at the end

# %%
from ulib.app import measuring, outputs, readings, session

s = session.setup(profile, run_dir, device, seed, overrides, pretrained)  # run dir, config, device, RUN/results/
cfg = s.cfg
K, T, L = cfg.vqgan.codebook_size, cfg.prior.total_steps, cfg.latent_size ** 2

# %% [markdown]
# ## Stage 1: the VQGAN
#
# An encoder maps an image to an h x w grid of vectors; each is replaced by its nearest codebook
# vector (Eq. 4) and a generator decodes the result. What the second stage sees is the grid of
# *indices*: an image becomes L = h*w tokens out of a codebook of K. Notebook 02 looks inside.

# %%
vq = session.vqgan(s)  # load if present, else train (the profile's vqgan_train settings)

# %%
# NBVAL_CHECK_OUTPUT
n_params = lambda m: sum(p.numel() for p in m.parameters())
print(f"image {cfg.data.img_size}x{cfg.data.img_size} -> tokens {cfg.latent_size}x{cfg.latent_size}, "
      f"codebook K = {K}, mask token id = {cfg.mask_id}")
print(f"VQGAN parameters: {n_params(vq):,}")

# %% [markdown]
# ## Stage 2: the absorbing diffusion prior
#
# Training masks each token with probability t/T (t uniform in 1..T) and asks a bidirectional
# transformer for the originals; sampling starts from the all-masked grid and unmasks tokens in
# parallel. Notebook 03 builds this up.

# %%
net = session.prior(s)  # trains the prior (after encoding the dataset into tokens) if the run has none

# %%
# NBVAL_CHECK_OUTPUT
print(f"prior parameters: {n_params(net):,} | T = {T} diffusion steps, sequence length L = {L}")

# %% [markdown]
# ## Sampling
#
# `sample_images`, the kit's front door for sampling (`from ulib import load_run, sample_tokens,
# sample_images`), runs the reverse process (`cfg.sample.steps` steps, temperature
# `cfg.sample.temperature`) and decodes the tokens with the VQGAN's generator. The settings come from
# the run's `config.json`, written from the profile when the run was made; if the profile has changed
# since, `setup` above warned and names the `--set` that follows the profile.

# %%
from ulib import sample_images

print(f"sampling: {cfg.sample.steps or T} steps, temperature {cfg.sample.temperature} "
      f"(from {s.run.config_file.name}, profile {cfg.profile!r})")

models = session.models(s)  # the VQGAN and prior above, with the run's sampling settings
images, tokens = sample_images(models, n_samples, seed=s.seed, return_tokens=True)
outputs.show(outputs.save_grid(s, images, "01_samples"))

# %%
# NBVAL_CHECK_OUTPUT
print("tokens:", tuple(tokens.shape), "| every token a real code:",
      bool(((tokens >= 0) & (tokens < K)).all()), "| images:", tuple(images.shape))

# %% [markdown]
# ## How good is it? Samples, reconstructions and the noise floor in one table
#
# Scored in a feature space (for the built-in dataset: the kit's own OpenMoji network, offline;
# notebook 12 explains it and checks it) against a fixed random subset of the training images (the
# reference; the paper, too, scores samples against its training set). The floor is n real images that
# no model saw, scored the same way (the line under the table names them): with the profiles' split by
# design family (an emoji and its skin-tone, gender and hair variants share one side), the test split's
# families are unseen by the VQGAN and the prior, and no checkpoint was chosen on them. They are also emoji the reference does not hold,
# so a set can score below the floor by resembling the training families more closely than unseen
# families do; the memorisation check below looks at that. The VQGAN's reconstructions of the same
# test images show what the decoder alone loses on images it never saw; the prior's samples go through
# the same decoder (the prior only chooses tokens), so the samples' FID over the reconstructions' says
# how much the prior adds on top of the decoder (the samples model the training families, the
# reconstructions are of unseen ones, so this is a reading, not a bound). The table names each set exactly.

# %%
sizes = measuring.quality_sizes(s)
meter = measuring.quality_meter(s, sizes["n_reference"])
quality, sets = measuring.run_quality(s, vq, net, meter, sizes["n_samples"], sizes["draws"])
outputs.write_table(s, quality, "01_quality")
outputs.show_table(quality, ["set", "n", "fid", "fid_std", "kid", "precision", "recall", "density",
                         "coverage", "features"])
for r in quality:
    print(f"{r['set']}: {r['images']}")
print(f"reference: {meter.reference_name} | floor images: {meter.holdout_name} | ±: bootstrap std over "
      f"{sizes['draws']} draws (reference and set resampled) | samples' FID / reconstructions' FID = "
      f"{quality[2]['fid_over_reconstructions']:.2f}")

# %% [markdown]
# ## Are the samples copies? Memorisation, measured
#
# FID does not see overfitting (the paper's supplement C says so, and shows nearest training neighbours
# by LPIPS for its models): a prior that replays training images scores well. So each sample's
# distance to its nearest training image (all of the run's training split, in the same feature space
# and in pixels) is set against the same distance for the test images, whose families no model saw.
# A *near-copy* is a sample closer to a training image than the closest test image is; C_T (Meehan et
# al. 2020) compares the two distance sets cell by cell (well below 0, about −3: data-copying). Read
# with care: the test images are of unseen families, so samples of a prior that models the training
# families well lie closer to the training set than they do even without copying; the picture below
# shows the closest pairs, to judge by eye whether they are copies.

# %%
from ulib.app.prose import memorisation_sentence, memorisation_summary, near_copy_text
from ulib.eval.memorisation import nearest_pairs_grid

real, recon, samples = sets.values()  # uint8, in the table's order
report, train_images = measuring.memorisation(s, meter, samples, seed=s.seed)
held = "test" if measuring.has_test_split(s) else "validation"
mem = memorisation_summary(report.row, quality[2]["set"], held)
outputs.write_table(s, [mem], "01_memorisation")
outputs.show_table([mem], ["samples", "n_samples", "n_train", "n_baseline_used", "feat_near_copy_share",
                       "feat_near_copy_share_lo", "feat_near_copy_share_hi", "feat_median_ratio", "feat_c_t",
                       "pix_near_copy_share", "pix_median_ratio", "feat_fid_train", "feat_fid_test",
                       "feat_fid_test_to_train"])
print(memorisation_sentence(mem))
nearest_pairs_grid(samples, train_images, report.feat.indices, n=16, distances=report.feat.distances,
                   path=s.results / "01_nearest_training.png", upscale=outputs.upscale_for(cfg.data.img_size))
outputs.show(s.results / "01_nearest_training.png")
print("rows: the 16 samples closest to a training image (closest first), each above its nearest training image")

# %%
row = readings.claim(
    s, "01_quickstart", "near_copies",
    "The absorbing prior's samples are not copies of its training images",
    "supplement C, Figs. 8-10: nearest training neighbours by LPIPS, shown, not counted",
    ("measured", f"near-copies in the {mem['features']} feature space (closer to a training image than any of "
                 f"{mem['n_baseline_used']} {held} images is): {near_copy_text(mem)} median distance ratio "
                 f"{mem['feat_median_ratio']:.2f}, C_T = {mem['feat_c_t']:+.1f}"))

# %% [markdown]
# ## Reading
#
# **What to notice.** The whole method is four calls: `session.vqgan` (stage 1), `session.prior` (stage 2), `sample_images`,
# and a score against the floor. Read the quality table before any later notebook's verdict, because every verdict
# is read against it: the floor row is what a set of real, unseen emoji scores at this n; the reconstructions say
# what the VQGAN alone loses on images it never saw; the samples say what the prior adds on top of that decoder.
# The nearest-training picture is the memorisation check: judge the pairs by eye as a sceptic would.
#
# **Against the paper.** The paper's best FFHQ model scores FID 6.11 at temperature 0.9 (Table 2: 50,000 samples,
# Inception features). No number here is comparable with it: other data, another feature space, a few hundred
# samples and a prior about eighty times smaller (the table below). What carries over is the *shape* of a result
# (an ordering, a ratio, a difference between two settings of one model), which is why the later notebooks compare
# settings with each other, paired, beside a floor, and print the paper's value beside ours only as context.
#
# **Why it differs at this scale.** A 32-pixel emoji becomes 64 tokens from a codebook of 256, trained for minutes on
# 2 CPU cores; the paper's 256-pixel images become 256 tokens from 1,024 codes after days on a GPU. The decoder bounds
# what samples can look like (the prior only chooses tokens), so the reconstructions' row is the ceiling to read the
# samples' row against.

# %%
shown = readings.reading(s, "01_quickstart", [
    {"what": f"sample FID (t = {cfg.sample.temperature:g})",
     "paper": "FFHQ 6.11 at t = 0.9 (Table 2: 50k samples, Inception features)",
     "this run": f"{quality[2]['fid']:.1f} ± {quality[2]['fid_std']:.1f} (n = {quality[2]['n']}, {meter.features} "
                 f"features; floor {quality[0]['fid']:.1f}, reconstructions {quality[1]['fid']:.1f})"},
    *readings.scale_rows(s)])

# %% [markdown]
# ## Exercises
#
# 1. **How much does the VQGAN compress?** Compute the bits of one image (3 channels of 8 bits per pixel) and of its
#    token grid (L tokens of log₂ K bits each). *Expected:* at `demo` 24,576 bits against 64 × 8 = 512 bits, a factor
#    of 48; the paper's 256-px images with 16×16 tokens of 1,024 codes: 1,572,864 against 2,560 bits, a factor of 614.
#
#    <details><summary>Solution</summary>
#
#    ```python
#    import math
#    image_bits = 3 * cfg.data.img_size ** 2 * 8
#    token_bits = L * math.log2(K)
#    print(image_bits, token_bits, image_bits / token_bits)
#    ```
#    </details>
#
# 2. **Sample colder and hotter.** Draw 16 images at temperature 0.5 and at 1.2 from the same seed and put them beside
#    the grid above. *Expected:* at 0.5 flatter, more alike images (the likeliest codes win more often); at 1.2 more
#    varied and noisier ones. Notebook 07 measures this (Fig. 6).
#
#    <details><summary>Solution</summary>
#
#    ```python
#    for temp in (0.5, 1.2):
#        outputs.show(outputs.save_grid(s, sample_images(models, 16, seed=s.seed, temperature=temp), f"ex01_t{temp}"))
#    ```
#    </details>
#
# 3. **Score against unseen emoji instead.** The table scores against training images, as the paper does. Score the
#    samples against the test images (`measuring.quality_meter_on_test`). *Expected:* a different FID, not comparable with
#    the table's (another reference, another size); a prior that models its training families scores worse against
#    families it never saw, and a copying prior would score much worse.
#
#    <details><summary>Solution</summary>
#
#    ```python
#    on_test = measuring.quality_meter_on_test(s, meter)
#    print(on_test.reference_name, on_test.score(samples, draws=0)["fid"])
#    ```
#    </details>

# %% [markdown]
# ## References
#
# - S. Bond-Taylor, P. Hessey, H. Sasaki, T. P. Breckon, C. G. Willcocks. *Unleashing Transformers: Parallel Token Prediction with Discrete Absorbing Diffusion for Fast High-Resolution Image Generation from Vector-Quantized Codes.* ECCV 2022. [arXiv:2111.12701](https://arxiv.org/abs/2111.12701)
# - P. Esser, R. Rombach, B. Ommer. *Taming Transformers for High-Resolution Image Synthesis* (VQGAN). CVPR 2021. [arXiv:2012.09841](https://arxiv.org/abs/2012.09841)
# - J. Austin, D. D. Johnson, J. Ho, D. Tarlow, R. van den Berg. *Structured Denoising Diffusion Models in Discrete State-Spaces* (D3PM, the absorbing state). NeurIPS 2021. [arXiv:2107.03006](https://arxiv.org/abs/2107.03006)
# - H. Chang, H. Zhang, L. Jiang, C. Liu, W. T. Freeman. *MaskGIT: Masked Generative Image Transformer.* CVPR 2022. [arXiv:2202.04200](https://arxiv.org/abs/2202.04200)
# - E. Hoogeboom, A. A. Gritsenko, J. Bastings, B. Poole, R. van den Berg, T. Salimans. *Autoregressive Diffusion Models* (ARDM: any-order models and their relation to absorbing diffusion). ICLR 2022. [arXiv:2110.02037](https://arxiv.org/abs/2110.02037)
# - S. S. Sahoo, M. Arriola, Y. Schiff, A. Gokaslan, E. Marroquin, J. T. Chiu, A. Rush, V. Kuleshov. *Simple and Effective Masked Diffusion Language Models* (MDLM: the continuous-time absorbing ELBO). NeurIPS 2024. [arXiv:2406.07524](https://arxiv.org/abs/2406.07524)
# - M. Heusel, H. Ramsauer, T. Unterthiner, B. Nessler, S. Hochreiter. *GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium* (FID). NeurIPS 2017. [arXiv:1706.08500](https://arxiv.org/abs/1706.08500)
# - C. Meehan, K. Chaudhuri, S. Dasgupta. *A Non-Parametric Test to Detect Data-Copying in Generative Models* (C_T). AISTATS 2020. [arXiv:2004.05675](https://arxiv.org/abs/2004.05675)
# - OpenMoji, the open-source emoji and icon project (HfG Schwäbisch Gmünd), [openmoji.org](https://openmoji.org), CC BY-SA 4.0: the kit's built-in dataset.

# %% [markdown]
# ## Next
#
# 02 the VQGAN (reconstructions, codebook usage, the λ clamp, DiffAugment) · 03 the absorbing
# prior (forward process, ELBO and its reweighting) · 04 step skipping (Table 3) · 05 AR vs
# absorbing (Table 4) · 06 ELBO vs reweighted ELBO (Fig. 5) · 07 temperature (Fig. 6) ·
# 08 images larger than the training grid (Fig. 4) · 09 inpainting (Fig. 7) · 10 the released
# checkpoints · 11 the playground · 12 the OpenMoji metric · 13 the VQGAN ablations (Table 5).
