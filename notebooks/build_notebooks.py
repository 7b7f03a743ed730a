"""Write the numbered notebooks from this one reviewable file: `python notebooks/build_notebooks.py`.

The .ipynb files are generated, committed without outputs or execution counts, and checked against this
script by the tests (`--check` exits 1 when a notebook differs from what this file would write). Edit the
cells here, never in the .ipynb files, then run the script again.

Every notebook: a header (what it reproduces, what it needs, how long it takes), ONE cell tagged
`parameters` holding plain literals only (papermill injects its overrides after it), a setup cell that
derives everything else, then the idea, shown with ulib's code. Logic lives in ulib; a notebook shows an
idea's full implementation once, where it is taught. Cells starting with `# NBVAL_CHECK_OUTPUT` print only
deterministic things (shapes, parameter counts, hand-checked numbers): nbval compares them.
"""
from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent

COMMON_PARAMETERS = '''\
profile = "smoke"  # smoke (CI, seconds) | demo (CPU, minutes) | ffhq, churches, bedrooms (GPU, the paper's settings)
run_dir = "../runs/nb-smoke"  # run directory shared by every notebook (relative to notebooks/); one per profile
device = "auto"  # 'auto' (cuda, then mps, then cpu), 'cpu', 'cuda', ...
seed = 0  # seed of this notebook's sampling and figures (training uses the config's own seed)
overrides = []  # config overrides, each written as for `--set` on the command line (see the README)
'''

SETUP = '''\
import math

import matplotlib.pyplot as plt
import torch

from ulib.app import notebook as nbu

s = nbu.setup(profile, run_dir, device, seed, overrides)  # absolute run dir, config, device; RUN/results/
cfg = s.cfg
K, T, L = cfg.vqgan.codebook_size, cfg.prior.total_steps, cfg.latent_size ** 2
print(f"profile {cfg.profile} | device {s.device} | {cfg.data.dataset} {cfg.data.img_size}px -> "
      f"{cfg.latent_size}x{cfg.latent_size} = {L} tokens, K = {K} codes, T = {T}")
'''


def md(text: str):
    return nbformat.v4.new_markdown_cell(textwrap.dedent(text).strip("\n"))


def code(text: str, tags: tuple[str, ...] = ()):
    cell = nbformat.v4.new_code_cell(textwrap.dedent(text).strip("\n"))
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def header(title: str, reproduces: str, needs: str, cpu: str, gpu: str):
    return md(f"""\
        # {title}

        **Reproduces:** {reproduces}

        **Needs:** {needs} Every stage is *load if present, else train*: the notebook reuses what the run
        directory holds and trains only what is missing, so the notebooks chain (run them in order, or let
        `python -m ulib reproduce` do it).

        **Time:** {cpu} {gpu}

        **Writes:** figures (PNG) and tables (CSV) into `RUN/results/`.
        """)


def parameters(extra: str = ""):
    return code(COMMON_PARAMETERS + textwrap.dedent(extra).strip("\n"), tags=("parameters",))


def setup(derived: str = ""):
    return code(SETUP + ("\n" + textwrap.dedent(derived).strip("\n") if derived else ""))


# ==== 01 ==================================================================================================
def nb01():
    return [
        header("01 · Quickstart: images → tokens → a prior over tokens → new images",
               "the method of section 3 end to end: a VQGAN turns images into grids of codebook tokens "
               "(section 3.1), an absorbing diffusion prior learns those grids (section 3.2), and sampling "
               "the prior and decoding gives new images (the kind of samples shown in the paper's figures).",
               "nothing: this notebook trains both stages when the run directory has none.",
               "CPU: about 1.5 min with `smoke` (measured on 2 cores: VQGAN ~50 s, encoding the dataset ~35 s; "
               "the pictures are meaningless), about 13 min with `demo` (the same work as `make demo`, measured at "
               "12.5 min; recognisable 32x32 emoji), 6 s once that run exists.",
               "GPU, paper profiles: days (500k VQGAN steps, then 2M prior steps; the paper trained on one RTX "
               "2080 Ti). An estimate from the step counts, not a measurement."),
        parameters("""\
            n_samples = 16  # images to sample at the end
            """),
        setup(),
        md("""\
            ## Stage 1: the VQGAN

            An encoder maps an image to an h x w grid of vectors; each is replaced by its nearest codebook
            vector (Eq. 4) and a generator decodes the result. What the second stage sees is the grid of
            *indices*: an image becomes L = h*w tokens out of a codebook of K. Notebook 02 looks inside.
            """),
        code("""\
            vq = nbu.vqgan(s)  # load if present, else train (the profile's vqgan_train settings)
            """),
        code("""\
            # NBVAL_CHECK_OUTPUT
            n_params = lambda m: sum(p.numel() for p in m.parameters())
            print(f"image {cfg.data.img_size}x{cfg.data.img_size} -> tokens {cfg.latent_size}x{cfg.latent_size}, "
                  f"codebook K = {K}, mask token id = {cfg.mask_id}")
            print(f"VQGAN parameters: {n_params(vq):,}")
            """),
        md("""\
            ## Stage 2: the absorbing diffusion prior

            Training masks each token with probability t/T (t uniform in 1..T) and asks a bidirectional
            transformer for the originals; sampling starts from the all-masked grid and unmasks tokens in
            parallel. Notebook 03 builds this up.
            """),
        code("""\
            net = nbu.prior(s)  # trains the prior (after encoding the dataset into tokens) if the run has none
            """),
        code("""\
            # NBVAL_CHECK_OUTPUT
            print(f"prior parameters: {n_params(net):,} | T = {T} diffusion steps, sequence length L = {L}")
            """),
        md("""\
            ## Sampling

            `sample_images`, the kit's front door for sampling (`from ulib import load_run, sample_tokens,
            sample_images`), runs the reverse process (`cfg.sample.steps` steps, temperature
            `cfg.sample.temperature`) and decodes the tokens with the VQGAN's generator. The settings come from
            the run's `config.json`, written from the profile when the run was made; if the profile has changed
            since, `setup` above warned and names the `--set` that follows the profile.
            """),
        code("""\
            from ulib import sample_images

            print(f"sampling: {cfg.sample.steps or T} steps, temperature {cfg.sample.temperature} "
                  f"(from {s.run.config_file.name}, profile {cfg.profile!r})")

            models = nbu.models(s)  # the VQGAN and prior above, with the run's sampling settings
            images, tokens = sample_images(models, n_samples, seed=s.seed, return_tokens=True)
            nbu.show(nbu.save_grid(s, images, "01_samples"))
            """),
        code("""\
            # NBVAL_CHECK_OUTPUT
            print("tokens:", tuple(tokens.shape), "| every token a real code:",
                  bool(((tokens >= 0) & (tokens < K)).all()), "| images:", tuple(images.shape))
            """),
        md("""\
            ## How good is it? Samples, reconstructions and the noise floor in one table

            Scored in a feature space (for the built-in dataset: the kit's own OpenMoji network, offline;
            notebook 12 explains it and shows it is a metric) against a fixed subset of the training images.
            The floor is n held-out real images scored the same way: nothing can do better than it at this n.
            The VQGAN's reconstructions bound what the prior's samples can reach (the prior only chooses
            tokens), so the ratio of the two FIDs is how much the prior loses on top of the decoder.
            """),
        code("""\
            sizes = nbu.quality_sizes(s)
            meter = nbu.quality_meter(s, sizes["n_reference"])
            quality, _ = nbu.run_quality(s, vq, net, meter, sizes["n_samples"], sizes["draws"])
            nbu.write_table(s, quality, "01_quality")
            nbu.show_table(quality, ["set", "n", "fid", "fid_std", "kid", "precision", "recall", "density",
                                     "coverage", "features"])
            print(f"reference: {meter.n_reference} training images | ±: bootstrap std over {sizes['draws']} draws | "
                  f"seed {s.seed} | samples' FID / reconstructions' FID = {quality[2]['fid_over_reconstructions']:.2f}")
            """),
        md("""\
            ## Next

            02 the VQGAN (reconstructions, codebook usage, the λ clamp, DiffAugment) · 03 the absorbing
            prior (forward process, ELBO and its reweighting) · 04 step skipping (Table 3) · 05 AR vs
            absorbing (Table 4) · 06 ELBO vs reweighted ELBO (Fig. 5) · 07 temperature (Fig. 6) ·
            08 images larger than the training grid (Fig. 4) · 09 inpainting (Fig. 7) · 10 the released
            checkpoints · 11 the playground · 12 the OpenMoji metric.
            """),
    ]


# ==== 02 ==================================================================================================
def nb02():
    return [
        header("02 · The VQGAN: reconstructions, codebook usage, the λ clamp and DiffAugment",
               "section 3.1 of the paper: the vector-quantised autoencoder (Eq. 4, 5) and its adversarial "
               "loss with the adaptive weight clamped at λmax (Eq. 9) and differentiable augmentation.",
               "notebook 01's run directory (the VQGAN is trained here if it is missing).",
               "CPU: about 5 s with `smoke` (measured on 2 cores) once the VQGAN exists (training it: see 01); "
               "4 s with `demo` (measured on 2 cores, trained run present).",
               "GPU, paper profiles: a minute once trained (estimate)."),
        parameters("""\
            n_images = 16  # validation images to reconstruct
            """),
        setup(),
        code("""\
            from ulib.data.datasets import build_dataset

            vq = nbu.vqgan(s)
            val = build_dataset(cfg.data, "val", train_transforms=False)
            x = torch.stack([val[i] for i in range(min(n_images, len(val)))]).to(s.device)  # (B, 3, H, W) in [-1, 1]
            """),
        md("""\
            ## Reconstructions

            `encode` is the encoder followed by the nearest-code lookup (Eq. 4); `decode` looks the codes up
            and runs the generator. The top row is the input, the bottom row its reconstruction from tokens
            alone: whatever the bottom row loses, the prior can never produce.
            """),
        code("""\
            with torch.no_grad():
                codes = vq.encode(x)  # (B, h, w) token ids: the image as the prior sees it
                x_rec = vq.decode(codes).clamp(-1, 1)  # (B, 3, H, W)
            nbu.show(nbu.save_grid(s, torch.cat([x, x_rec]), "02_reconstructions", nrow=len(x)))
            print(f"mean L1 error on these images: {(x - x_rec).abs().mean().item():.3f} (pixel range [-1, 1])")
            """),
        code("""\
            # NBVAL_CHECK_OUTPUT
            print("images", tuple(x.shape), "-> tokens", tuple(codes.shape), "-> reconstructions", tuple(x_rec.shape))
            print(f"VQGAN parameters: {sum(p.numel() for p in vq.parameters()):,}")
            """),
        md("""\
            ## Codebook usage

            A code that never wins the nearest-neighbour search gets no gradient and stays dead; the prior
            then has fewer symbols to work with. Perplexity exp(H) of the code histogram is K when every code
            is used equally and 1 when one code is used for everything.
            """),
        code("""\
            tokens = nbu.latents(s)["val"].long()  # every validation image as tokens (N, h, w)
            hist = nbu.code_histogram(tokens, K)  # (K,) share of tokens per code
            used = int((hist > 0).sum())
            perplexity = math.exp(-torch.special.xlogy(hist, hist).sum().item())
            fig, ax = plt.subplots(figsize=(7, 2.5))
            ax.bar(range(K), hist.sort(descending=True).values.numpy(), width=1.0)
            ax.set(xlabel="code (sorted by frequency)", ylabel="share of tokens",
                   title=f"{used} of {K} codes used, perplexity {perplexity:.1f}")
            nbu.save_figure(s, fig, "02_codebook_usage")
            nbu.write_table(s, [{"codebook_size": K, "codes_used": used, "perplexity": perplexity}], "02_codebook_usage")
            plt.show()
            """),
        md("""\
            ## The adaptive weight and its clamp (Eq. 9c)

            The GAN term is weighted by λ = ‖∇_last L_rec‖ / (‖∇_last L_GAN‖ + δ), gradients taken at the
            generator's last layer, so the adversarial gradient never swamps the reconstruction gradient.
            When the discriminator's gradient is tiny (early, or when it is confused), λ explodes; the paper
            clamps it at λmax = 1. A two-weight "last layer" makes the numbers checkable by hand:
            ∇(w₁² + w₂²) = (2, 4) has norm √20, and ∇(c·(w₁ + w₂)) = (c, c) has norm c√2.
            """),
        code("""\
            # NBVAL_CHECK_OUTPUT
            from ulib.vq.loss import adaptive_weight

            w = torch.tensor([1.0, 2.0], requires_grad=True)  # stands for the generator's last layer
            rec = (w ** 2).sum()  # reconstruction loss: gradient (2, 4), norm sqrt(20)
            for c in (10.0, 1.0):
                gan = c * w.sum()  # GAN loss: gradient (c, c), norm c * sqrt(2)
                lam = adaptive_weight(rec, gan, w, max_weight=1.0)
                print(f"c = {c:4.1f}: lambda = {lam.item():.4f}   unclamped sqrt(20) / (c sqrt(2)) = "
                      f"{math.sqrt(20) / (c * math.sqrt(2)):.4f}")
            """),
        code("""\
            from ulib.io.logs import MetricsLog

            rows = MetricsLog.read(s.run.vqgan_log)
            steps = [r["step"] for r in rows]
            fig, axes = plt.subplots(1, 3, figsize=(12, 3))
            axes[0].plot(steps, [r["l1"] for r in rows])
            axes[0].set(title="L1 reconstruction (train)", xlabel="step")
            axes[1].plot(steps, [r["codes_used"] for r in rows])
            axes[1].set(title="codes used per batch", xlabel="step")
            gan = [r for r in rows if r["step"] > cfg.vqgan.disc_start_step and r.get("d_weight") is not None]
            axes[2].plot([r["step"] for r in gan], [r["d_weight"] for r in gan], "o-")
            axes[2].axhline(cfg.vqgan.disc_weight_max, ls="--", c="gray", label="λmax")
            axes[2].set(title=f"adaptive weight λ (GAN on from step {cfg.vqgan.disc_start_step})", xlabel="step")
            axes[2].legend()
            fig.tight_layout()
            nbu.save_figure(s, fig, "02_training_curves")
            plt.show()
            """),
        md("""\
            ## DiffAugment

            Every image the discriminator sees, real or reconstructed, is augmented (colour, translation)
            with operations that are differentiable in the pixels, so the generator is trained *through*
            them and the discriminator cannot tell real from fake by the augmentation. Rows: the input, then
            three augmentations of it.
            """),
        code("""\
            from ulib.vq.diffaug import diff_augment

            g = s.generator()
            x4 = x[:4].clone().requires_grad_(True)
            augmented = [diff_augment(x4, "color,translation", generator=g) for _ in range(3)]
            nbu.show(nbu.save_grid(s, torch.cat([x4.detach()] + [a.detach() for a in augmented]), "02_diffaug", nrow=4))
            """),
        code("""\
            # NBVAL_CHECK_OUTPUT
            augmented[0].sum().backward()
            print("gradient reaches the input pixels:", bool(x4.grad.abs().sum() > 0),
                  "| shape kept:", tuple(augmented[0].shape) == tuple(x4.shape))
            """),
    ]


# ==== 03 ==================================================================================================
def nb03():
    return [
        header("03 · The absorbing diffusion prior: forward process, ELBO and its reweighting",
               "section 3.2: the absorbing forward process q(x_t | x_0), the ELBO (Eq. 6) and the reweighted "
               "training loss (Eq. 7); the prior's training curves.",
               "notebook 01's run directory (VQGAN, token cache and prior; trained here when missing).",
               "CPU: about 5 s with `smoke` (measured on 2 cores), 10 s with `demo` (measured on 2 cores, trained run present), once "
               "the prior exists.",
               "GPU, paper profiles: a few minutes once trained (estimate)."),
        parameters("""\
            times = [0.0, 0.25, 0.5, 0.75, 1.0]  # t/T of the forward-process pictures
            n_grids = 4  # token grids for the q_sample check
            """),
        setup("""\
            tok = nbu.val_tokens(s)  # (N, L) validation token grids
            """),
        md("""\
            ## The forward process, in ten lines

            q(x_t | x_0) replaces every token independently by the absorbing *mask* token m (id K) with
            probability t/T. At t = T everything is masked, so x_T is known and needs no learned prior:

            $$q([x_t]_i = m \\mid x_0) = t/T, \\qquad q([x_t]_i = [x_0]_i \\mid x_0) = 1 - t/T.$$
            """),
        code('''\
            def q_sample(x0, t, T, mask_id, generator=None):
                """x_t ~ q(x_t | x_0): every token of x0 (B, L) becomes the mask m with probability t/T."""
                u = torch.rand(x0.shape, device=x0.device, generator=generator)  # (B, L) uniforms
                absorbed = u < (t.float() / T)[:, None]  # (B, L) True with probability t/T
                x_t = torch.where(absorbed, torch.full_like(x0, mask_id), x0)  # m = mask_id = K
                return x_t, absorbed
            '''),
        md("""\
            The same random numbers give the same x_t as ulib's `AbsorbingDiffusion.q_sample`, and the
            masked fraction matches t/T. From here on (and in every later notebook) we use ulib's.
            """),
        code("""\
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
            """),
        md("""\
            ## The forward process on a real token grid

            One validation image (left) and its token grid at growing t, one colour per code, masked cells
            black. The same uniforms are used for every t, so the masked set only grows: one path of the
            forward process.
            """),
        code("""\
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
            """),
        md("""\
            ## The ELBO (Eq. 6) and the reweighted loss (Eq. 7)

            With CE(x_0, x_t) = Σ over masked i of −log p([x_0]_i | x_t), the negative ELBO is

            $$-\\text{ELBO} = \\sum_{t=1}^{T} \\frac{1}{t}\\, \\mathbb{E}_{q(x_t|x_0)}\\big[\\text{CE}(x_0, x_t)\\big],$$

            trained by drawing one t uniformly: loss = (T/t) · CE (Eq. 6, unbiased). At small t few tokens
            are masked and the weight T/t is large, so single draws vary wildly. The paper trains on
            ((T − t + 1)/T) · CE instead (Eq. 7): still larger for small t, where few tokens carry the loss,
            but bounded by 1. ulib's `AbsorbingDiffusion.weight` holds both; checked by hand at T = 4:
            """),
        code("""\
            # NBVAL_CHECK_OUTPUT
            t4 = torch.arange(1, 5)
            print("T = 4, Eq. 6 weights T/t:         ", [round(v, 4) for v in AbsorbingDiffusion(4, 0, "elbo").weight(t4).tolist()])
            print("T = 4, Eq. 7 weights (T-t+1)/T:   ", AbsorbingDiffusion(4, 0, "reweighted_elbo").weight(t4).tolist())
            """),
        code("""\
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
            """),
        md("""\
            On the trained prior: one draw of t per validation grid, both weights on the same draws. The
            Eq. 6 estimate is the noisier one; that variance is why the paper trains on Eq. 7.
            """),
        code("""\
            net = nbu.prior(s)
            x0 = tok[:256]
            g = s.generator(1)
            t = diffusion.sample_time(len(x0), s.device, g)
            x_t, mask = diffusion.q_sample(x0, t, g)
            with torch.no_grad():
                ce = diffusion.masked_cross_entropy(net(x_t), x0, mask)  # (B,) nats
            to_bits = 1 / (L * math.log(2))
            for loss_type in ("elbo", "reweighted_elbo"):
                est = AbsorbingDiffusion(T, cfg.mask_id, loss_type).weight(t) * ce * to_bits
                print(f"{loss_type:16s} one-draw loss over {len(x0)} grids: mean {est.mean():.3f}, std {est.std():.3f} bits/token")
            """),
        md("""\
            ## Training curves

            From `metrics_prior.csv`: the training loss (the chosen weighting), the one-draw negative-ELBO
            estimate on training batches, and the validation negative ELBO logged with every image grid.
            """),
        code("""\
            from ulib.io.logs import MetricsLog

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
            """),
        md("""\
            ## Did it learn anything?

            Token accuracy and cross-entropy at growing mask ratios, against a prior that ignores the context
            (always the commonest code; the code histogram's entropy). A useful prior is far better when
            few tokens are masked and tends to the marginal as the mask ratio reaches 1.
            """),
        code("""\
            from ulib.eval.diagnostics import accuracy_by_mask_ratio, marginal_baseline, plot_accuracy_by_mask_ratio

            acc = accuracy_by_mask_ratio(net, tok[:256], cfg.mask_id, generator=s.generator(2))
            fig = plot_accuracy_by_mask_ratio(acc, marginal_baseline(tok, K))
            nbu.save_figure(s, fig, "03_accuracy_by_mask_ratio")
            nbu.write_table(s, acc, "03_accuracy_by_mask_ratio")
            plt.show()
            """),
    ]


# ==== 04 ==================================================================================================
def nb04():
    return [
        header("04 · Step skipping: sample quality and time against the number of sampling steps",
               "Table 3 of the paper (FID against sampling steps, evenly spaced, temperature 1.0), measured in "
               "the kit's offline feature space with the noise floor beside it; then the same question for the "
               "two other decoding methods (MaskGIT's confidence and the official code's remask) at equal "
               "numbers of network calls: how far below T steps can one go at equal quality?",
               "notebook 01's run directory (VQGAN and prior; trained here when missing); for the built-in "
               "dataset the shipped OpenMoji feature weights (notebook 12).",
               "CPU: about 1 min with `smoke` (with its training, 3 min), 4.5 min with `demo` (measured on 2 "
               "cores, trained run present: 300 samples for each of 11 settings).",
               "GPU, paper profiles: minutes for 2,000 samples per setting (estimate); the paper's own figures "
               "use 50,000 samples (`python -m ulib evaluate --steps S`)."),
        parameters("""\
            steps = []  # sampling steps to compare; empty: T, T/2, T/4, T/8, T/16 of the profile's T
            other_methods = ["confidence", "remask"]  # compared with 'random' at equal network calls
            other_steps = []  # steps for the other methods; empty: the three smallest of `steps`
            n_samples = 0  # samples per setting; 0: by profile (smoke 40, demo 300, GPU 2000)
            temperature = 1.0  # the paper's Table 3 temperature
            features = "auto"  # feature space: 'auto' (openmoji for the built-in dataset), 'inception', ...
            """),
        setup("""\
            steps_list = steps or sorted({max(1, T // d) for d in (1, 2, 4, 8, 16)}, reverse=True)
            other_list = other_steps or steps_list[-3:]
            sizes = nbu.quality_sizes(s, n_samples)
            n = sizes["n_samples"]
            print("steps:", steps_list, "| other methods at", other_list, "| temperature:", temperature,
                  "| samples per setting:", n)
            """),
        md("""\
            ## Skipping steps

            The reverse process walks an evenly spaced schedule T = t_0 > t_1 > ... > t_S = 0. From t to s
            each still-masked token is unmasked with probability (t − s)/t, its value drawn from the
            network's prediction. With S < T steps, more tokens are revealed per step and drawn
            independently given the same x_t: S network passes instead of T, at some cost in coherence.
            `time_schedule` gives the schedule:
            """),
        code("""\
            # NBVAL_CHECK_OUTPUT
            from ulib.sample.absorbing import time_schedule

            print("T = 16 in 4 steps:", time_schedule(16, 4))
            print("T = 16 in 3 steps:", time_schedule(16, 3))
            s_, t_ = 16, 12  # from t = 16 to s = 12: each masked token is revealed with probability (t - s) / t
            print("reveal probability from 16 to 12:", (s_ - t_) / s_)
            """),
        md("""\
            ## The measuring stick

            FID, KID and precision/recall/density/coverage against a fixed random subset of the training
            images (the paper scores against the training set), in the feature space named in every table.
            FID depends on n, so each setting is read against the **noise floor at the same n**: n held-out
            real images scored exactly as samples are. `±` is a bootstrap standard deviation (resampling
            both the samples and the reference). Notebook 12 shows that this feature space ranks blur,
            noise and patch shuffling monotonically.
            """),
        code("""\
            from ulib.eval.quality import with_floor, within_noise

            vq, net = nbu.vqgan(s), nbu.prior(s)
            meter = nbu.quality_meter(s, sizes["n_reference"], features)
            floor = meter.floor(n, draws=sizes["draws"], seed=seed)
            print(f"feature space {meter.features} | reference: {meter.n_reference} training images | "
                  f"noise floor at n = {n}: FID {floor['fid']:.2f} ± {floor['fid_std']:.2f}")
            """),
        code("""\
            nbu.sample_set(s, vq, net, 8, steps=steps_list[-1], temperature=temperature)  # warm-up
            rows, grids = [], []
            settings = [("random", S) for S in steps_list] + [(m, S) for m in other_methods for S in other_list]
            for i, (method, S) in enumerate(settings):
                images, tokens, sec = nbu.sample_set(s, vq, net, n, steps=S, temperature=temperature, method=method,
                                                     seed_offset=i)
                r = meter.score(images, draws=sizes["draws"], seed=seed)
                rows.append(with_floor({"method": method, "steps": S, "network_calls": S, "seconds_per_image": sec,
                                        "temperature": temperature, **r}, floor))
                if method == "random":
                    grids.append(images[:8])
            base = rows[0]  # random at T steps
            for r in rows:
                r["fid_ratio_to_T"] = r["fid"] / base["fid"]
                r["within_noise_of_T"] = within_noise(r, base)
            table = [{k: r[k] for k in ("method", "steps", "network_calls", "seconds_per_image", "n", "fid", "fid_std",
                                        "floor_fid", "kid", "precision", "recall", "density", "coverage",
                                        "coverage_std", "fid_ratio_to_T", "within_noise_of_T", "features")}
                     for r in rows]
            nbu.write_table(s, table, "table3_steps")
            nbu.show_table(table)
            """),
        code("""\
            # NBVAL_CHECK_OUTPUT
            print("settings measured:", [(r["method"], r["steps"]) for r in rows])
            print("every setting has n samples and a bootstrap ±:", all(r["n"] == n and r["fid_std"] > 0 for r in rows))
            """),
        md("""\
            ## Quality against network calls

            Left: FID against the number of network calls for the three decoding methods (±: bootstrap std;
            grey: the noise floor at the same n). Right: the shape of the paper's claim, FID(S) / FID(T)
            against S / T, ours (random, the paper's method) beside the paper's three datasets (Table 3, T = 256).
            """),
        code("""\
            from ulib.paper import TABLE3_STEPS, table3_relative

            fig, (a, b) = plt.subplots(1, 2, figsize=(12, 3.8))
            for method in ["random", *other_methods]:
                rs = [r for r in rows if r["method"] == method]
                a.errorbar([r["network_calls"] for r in rs], [r["fid"] for r in rs], yerr=[r["fid_std"] for r in rs],
                           fmt="o-", capsize=3, label=method)
            a.axhspan(floor["fid"] - floor["fid_std"], floor["fid"] + floor["fid_std"], color="gray", alpha=0.3,
                      label=f"noise floor (n = {n})")
            a.set(xscale="log", xlabel="network calls (steps)", ylabel=f"FID ({meter.features} features)",
                  title=f"n = {n} per point, temperature {temperature}, seed {seed}")
            a.legend(fontsize=8)
            rs = [r for r in rows if r["method"] == "random"]
            b.plot([r["steps"] / T for r in rs], [r["fid_ratio_to_T"] for r in rs], "o-", c="k", label=f"ours (T = {T})")
            for d in TABLE3_STEPS["fid"]:
                p = [r for r in table3_relative() if r["dataset"] == d]
                b.plot([r["steps_fraction"] for r in p], [r["fid_ratio"] for r in p], "s--", label=f"paper, {d}")
            b.set(xscale="log", xlabel="S / T", ylabel="FID(S) / FID(T)", title="the paper's Table 3, relative")
            b.legend(fontsize=8)
            fig.tight_layout()
            nbu.save_figure(s, fig, "table3_steps")
            plt.show()
            for method in ["random", *other_methods]:
                ok = [r["steps"] for r in rows if r["method"] == method and r["within_noise_of_T"]]
                print(f"{method:10s}: fewest steps within 2 bootstrap std of random at T = {T}: "
                      f"{min(ok) if ok else 'none measured'} (of {[r['steps'] for r in rows if r['method'] == method]})")
            print(f"time per image at T steps: {base['seconds_per_image'] * 1000:.1f} ms on {s.device} "
                  f"(the paper: {TABLE3_STEPS['seconds_per_image_at_256']} s at 256 steps, 256 px, one RTX 2080 Ti)")
            nbu.show(nbu.save_grid(s, torch.cat(grids), "table3_samples", nrow=len(grids[0])))
            print("rows of samples (random), top to bottom:", steps_list, "steps")
            """),
    ]


# ==== 05 ==================================================================================================
def nb05():
    return [
        header("05 · Autoregressive vs absorbing diffusion: likelihood, sample quality and sampling time",
               "Table 4 of the paper: the absorbing prior's negative ELBO (an upper bound on its NLL) against "
               "the exact NLL of an autoregressive transformer of the same size on the same tokens, in bits "
               "per token, compared per validation grid (paired); the FID of both priors' samples (offline "
               "feature space, noise floor beside); and the time each takes to sample an image.",
               "notebook 01's run directory; the autoregressive baseline (`prior_ar.pt`, same transformer "
               "made causal) is trained here when missing.",
               "CPU: about 1 min with `smoke` including training the AR baseline (measured on 2 cores); with "
               "`demo` 9.6 min, 8 of them training the AR baseline (measured on 2 cores).",
               "GPU, paper profiles: training the AR baseline takes as long as the prior (days); the ELBO's "
               "full sum over T = 256 takes minutes (estimates)."),
        parameters("""\
            n_samples = 8  # images per timing
            elbo_mc = 0  # 0: the full sum over every t in 1..T (T passes per batch); N > 0: N random t per grid
            max_items = 256  # validation grids evaluated
            fast_steps = 0  # an extra absorbing row with this many sampling steps; 0: T/4
            temperature = None  # None: the profile's sample.temperature (timings and pictures)
            fid_temperature = 1.0  # temperature of the FID comparison (the paper's Table 4 figures are at 1.0)
            n_fid = 0  # samples of each prior for FID; 0: by profile (smoke 40, demo 300, GPU 2000)
            features = "auto"  # feature space: 'auto' (openmoji for the built-in dataset), 'inception', ...
            checkpoint = "auto"  # 'auto': each prior at its best validation checkpoint when the run kept one (study), else 'final'
            """),
        setup("""\
            temp = temperature or cfg.sample.temperature
            fast = fast_steps or max(1, T // 4)
            sizes = nbu.quality_sizes(s, n_fid)
            """),
        code("""\
            net_abs = nbu.prior(s, "absorbing", checkpoint=checkpoint)
            net_ar = nbu.prior(s, "autoregressive", checkpoint=checkpoint)  # trained with the same settings
            used = {k: (s.run.prior_best_for(k) if (checkpoint == "best" or (checkpoint == "auto" and cfg.prior_train.keep_best))
                        else s.run.prior_ckpt_for(k)) for k in ("absorbing", "autoregressive")}
            print({k: f"{p.name} (step {nbu.checkpoint_step(p)} of {cfg.prior_train.steps})" for k, p in used.items()})
            """),
        code("""\
            # NBVAL_CHECK_OUTPUT
            count = lambda m: sum(p.numel() for p in m.parameters())
            print(f"absorbing prior: {count(net_abs):,} parameters | autoregressive prior: {count(net_ar):,} parameters")
            print(f"sequence length L = {L}: the AR sampler needs {L} sequential steps, the absorbing one at most T = {T}")
            """),
        md("""\
            ## Likelihoods

            Absorbing: the negative ELBO of Eq. 6, the sum over t of (1/t) E[CE], computed with every t
            (or a Monte-Carlo subset). AR: the exact −log p(x) = Σ_i −log p(x_i | x_<i) in one teacher-forced
            pass. Both in bits per token, so they are comparable; the ELBO is a bound, the AR figure exact.
            """),
        code("""\
            from ulib.prior.absorbing import AbsorbingDiffusion
            from ulib.prior.likelihood import absorbing_elbo, ar_nll

            val = nbu.val_tokens(s, max_items)
            diffusion = AbsorbingDiffusion(T, cfg.mask_id, cfg.prior.loss_type)
            elbo = absorbing_elbo(diffusion, net_abs, val, mc=elbo_mc or None, generator=s.generator())
            nll = ar_nll(net_ar, val)
            print(f"absorbing: negative ELBO {elbo.bits_per_token:.4f} bits/token ({elbo.n_items} grids, {elbo.n_passes} passes)")
            print(f"autoregressive: exact NLL {nll.bits_per_token:.4f} ± {nll.stderr:.4f} bits/token")
            """),
        md("""\
            One error convention for the comparison: **paired per-grid differences**. Both models score the
            same validation grids, so the difference of their means has the standard error of the per-grid
            differences, std(d) / sqrt(n): grids that are hard for one model are hard for the other, and that
            shared difficulty cancels. (It also carries the ELBO estimate's own noise: one x_t draw per t.)
            """),
        code("""\
            from ulib.eval.quality import paired_difference

            paired = paired_difference(elbo.per_item, nll.per_item)
            print(f"absorbing bound - AR NLL, per grid: {paired['mean_difference']:+.4f} ± {paired['se']:.4f} "
                  f"bits/token (n = {paired['n']} validation grids, paired standard error)")
            """),
        code("""\
            # NBVAL_CHECK_OUTPUT
            print("the paired difference is the difference of the means:",
                  abs(paired["mean_difference"] - (elbo.bits_per_token - nll.bits_per_token)) < 1e-4)
            """),
        md("""\
            ## Training and validation curves: does the AR model overfit?

            The paper credits the absorbing model's lead to regularisation: predicting many masked tokens at once
            is a harder task that "prevents overfitting which is prevalent with autoregressive models". The
            test: both priors' likelihood on their training batches and on the validation grids during
            training (bits per token; the absorbing figure is a one-draw ELBO, the AR one exact). Overfitting
            is a validation curve that turns up while the training curve keeps falling; the marker is each
            model's best validation point. The `study` profile trains both 2.5x longer than `demo` and keeps
            each at its best validation checkpoint.
            """),
        code("""\
            from ulib.io.logs import MetricsLog

            fig, ax = plt.subplots(figsize=(8, 3.8))
            gap = []
            for kind, train_key, val_key, colour in (("absorbing", "elbo_bpt", "val_elbo_bpt", "C0"),
                                                     ("autoregressive", "nll_bpt", "val_nll_bpt", "C1")):
                rows = MetricsLog.read(s.run.prior_log_for(kind))
                tr = [(r["step"], r[train_key]) for r in rows if r.get(train_key) is not None]
                va = [(r["step"], r[val_key]) for r in rows if r.get(val_key) is not None]
                ax.plot(*zip(*tr), c=colour, alpha=0.35, label=f"{kind}: training batches")
                ax.plot(*zip(*va), "o-", c=colour, label=f"{kind}: validation")
                best_step, best_val = min(va, key=lambda p: p[1])
                ax.plot([best_step], [best_val], "*", c="k", ms=12)
                last_train = sum(v for _, v in tr[-3:]) / len(tr[-3:])
                gap.append({"model": kind, "steps": tr[-1][0], "train_bpt_last": last_train, "val_bpt_last": va[-1][1],
                            "generalisation_gap_bpt": va[-1][1] - last_train, "best_val_bpt": best_val,
                            "best_val_step": best_step, "val_rise_since_best_bpt": va[-1][1] - best_val})
            ax.set(xlabel="step", ylabel="bits per token", title=f"both priors during training ({cfg.profile}; ★ best validation)")
            ax.legend(fontsize=8)
            nbu.save_figure(s, fig, "table4_training_curves")
            nbu.write_table(s, gap, "table4_overfitting")
            nbu.show_table(gap)
            plt.show()
            """),
        md("""\
            ## Sample quality

            FID, precision, recall, density and coverage of each prior's samples against the same reference
            (notebook 04's measuring stick), at the paper's temperature for this table. The difference
            absorbing − AR gets a bootstrap std in which both share each resample of the reference.
            """),
        code("""\
            from ulib import sample_tokens
            from ulib.eval.quality import with_floor

            vq = nbu.vqgan(s)
            meter = nbu.quality_meter(s, sizes["n_reference"], features)
            n = sizes["n_samples"]
            floor = meter.floor(n, draws=sizes["draws"], seed=seed)
            img_abs, _, _ = nbu.sample_set(s, vq, net_abs, n, steps=T, temperature=fid_temperature)
            g = s.generator(1)
            with torch.no_grad():
                tok = torch.cat([sample_tokens(net_ar, min(250, n - i), temperature=fid_temperature, generator=g)
                                 for i in range(0, n, 250)])  # the AR prior: token by token (its kind decides)
                img_ar = torch.cat([vq.decode(tok[i: i + 250]).clamp(-1, 1).cpu() for i in range(0, n, 250)])
            quality = [with_floor({"model": name, "temperature": fid_temperature,
                                   **meter.score(x, draws=sizes["draws"], seed=seed)}, floor)
                       for name, x in (("absorbing", img_abs), ("autoregressive", img_ar))]
            diff = meter.difference(img_abs, img_ar, draws=sizes["draws"], seed=seed)
            quality_table = [{k: r[k] for k in ("model", "temperature", "n", "fid", "fid_std", "floor_fid", "precision",
                                                "recall", "density", "coverage", "features")} for r in quality]
            nbu.write_table(s, quality_table, "table4_quality")
            nbu.show_table(quality_table)
            print(f"FID absorbing - AR: {diff['fid']:+.2f} ± {diff['fid_std']:.2f} (n = {n} each, {meter.features} features)")
            """),
        md("""\
            ## Sampling time

            Tokens only (the VQGAN decoder costs the same for both). The AR sampler uses its key/value cache.
            """),
        code("""\
            from ulib import sample_tokens


            def absorbing(n_steps):
                return sample_tokens(net_abs, n_samples, steps=n_steps, temperature=temp, num_timesteps=T,
                                     generator=s.generator(), device=s.device)


            def autoregressive():  # the same call: the prior's kind picks the AR sampler
                return sample_tokens(net_ar, n_samples, temperature=temp, generator=s.generator(), device=s.device)


            absorbing(fast), autoregressive()  # warm-up
            tok_abs, sec_abs = nbu.timed(lambda: absorbing(T), s.device)
            tok_fast, sec_fast = nbu.timed(lambda: absorbing(fast), s.device)
            tok_ar, sec_ar = nbu.timed(autoregressive, s.device)
            rows = [
                {"model": "absorbing", "bits_per_token": elbo.bits_per_token, "estimate": "negative ELBO (bound)",
                 "stderr": elbo.stderr, "sampling_steps": T, "seconds_per_image": sec_abs / n_samples},
                {"model": f"absorbing ({fast} steps)", "bits_per_token": elbo.bits_per_token,
                 "estimate": "negative ELBO (bound)", "stderr": elbo.stderr, "sampling_steps": fast,
                 "seconds_per_image": sec_fast / n_samples},
                {"model": "autoregressive", "bits_per_token": nll.bits_per_token, "estimate": "exact NLL",
                 "stderr": nll.stderr, "sampling_steps": L, "seconds_per_image": sec_ar / n_samples},
            ]
            nbu.write_table(s, rows, "table4_ar_vs_absorbing")
            nbu.show_table(rows)
            """),
        code("""\
            vq = nbu.vqgan(s)
            h = cfg.latent_size
            with torch.no_grad():
                pics = [vq.decode(t.view(-1, h, h)).clamp(-1, 1) for t in (tok_abs, tok_fast, tok_ar)]
            nbu.show(nbu.save_grid(s, torch.cat(pics), "table4_samples", nrow=n_samples))
            print(f"rows: absorbing ({T} steps), absorbing ({fast} steps), autoregressive")
            fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3))
            names = [r["model"] for r in rows]
            a.bar(names, [r["bits_per_token"] for r in rows])
            a.set(ylabel="bits per token", title="validation likelihood (lower is better)")
            b.bar(names, [r["seconds_per_image"] * 1000 for r in rows])
            b.set(ylabel="ms per image", title="sampling time (tokens)")
            fig.tight_layout()
            nbu.save_figure(s, fig, "table4_ar_vs_absorbing")
            plt.show()
            """),
        md("""\
            ## Reading the table, beside the paper's

            The paper (Table 4, LSUN Churches and FFHQ at 256 px, 80M-parameter transformers trained for
            days) has the absorbing prior ahead on both columns. Printed below: the paper's rows, then ours
            with the direction of each difference.
            """),
        code("""\
            from ulib.paper import table4_rows

            nbu.show_table(table4_rows())
            def verdict(d, se):  # lower is better for both columns
                if abs(d) <= 2 * se:
                    return "no difference resolved at 2 standard errors"
                return ("absorbing" if d < 0 else "AR") + f" ahead ({abs(d) / se:.1f} standard errors)"


            print(f"ours, likelihood: absorbing bound - AR = {paired['mean_difference']:+.3f} ± {paired['se']:.3f} "
                  f"bits/token -> {verdict(paired['mean_difference'], paired['se'])}")
            print(f"ours, FID: absorbing - AR = {diff['fid']:+.2f} ± {diff['fid_std']:.2f} -> "
                  f"{verdict(diff['fid'], diff['fid_std'])}")
            print("paper: absorbing ahead on both (Churches NLL 6.01 vs 6.24, FID 5.58 vs 5.93; "
                  "FFHQ 5.96 vs 6.18, 7.12 vs 8.15)")
            for r in gap:
                print(f"{r['model']}: validation - training = {r['generalisation_gap_bpt']:+.2f} bits/token after "
                      f"{r['steps']} steps; best validation {r['best_val_bpt']:.3f} at step {r['best_val_step']}, "
                      f"{r['val_rise_since_best_bpt']:+.3f} since")
            """),
        md("""\
            - **Likelihood.** The AR figure is exact; the absorbing one is an upper bound (Eq. 6), so the
              true gap between the two models is smaller than the gap in the table, by an amount nobody can
              compute exactly. Whether the paper's ordering holds depends on the regime: the paper credits
              the absorbing model with avoiding the AR model's overfitting over a long training. The curves
              above show how far each model is into that regime here: a large validation − training gap for
              the AR model is memorisation starting; a validation curve that turns up is overfitting proper,
              and the best-validation checkpoints (the `study` profile) give the AR model its best case.
              (On text, MDLM reports the AR model ahead of masked diffusion: LM1B perplexity 20.09 against
              23.00.)
            - **Time.** With a key/value cache the AR sampler runs L one-token passes; the absorbing sampler
              runs at most `steps` passes over all L tokens. At the CPU profiles' 64 tokens the AR sampler
              is therefore cheap; the absorbing sampler's advantage is in the number of *sequential* steps,
              which it can cut far below L (notebook 04) and which matters at the paper's 256+ tokens on a
              GPU, where a full pass costs little more than a one-token pass.
            """),
    ]


# ==== 06 ==================================================================================================
def nb06():
    return [
        header("06 · Training on the ELBO vs the reweighted ELBO",
               "Fig. 5 of the paper: the validation negative ELBO during training with the plain ELBO "
               "(Eq. 6) and with the reweighted loss (Eq. 7). Short trainings from scratch, identical "
               "except for the loss, repeated over three training seeds.",
               "notebook 01's run directory (its VQGAN and token cache; the priors go into "
               "`RUN/fig5_<loss>/` (seed 0) and `RUN/fig5_<loss>_seed<N>/` and never replace `RUN/prior.pt`).",
               "CPU: about 20 s with `smoke` (measured on 2 cores), 40 min with `demo` (measured on 2 cores: six "
               "1,000-step trainings, about 6.5 min each).",
               "GPU, paper profiles: set `train_steps` to a fraction of the 2M steps (tens of thousands "
               "give a readable curve in hours; estimate)."),
        parameters("""\
            train_steps = 0  # steps of each training; 0: the profile's prior_train.steps
            eval_every = 0  # steps between validation points; 0: train_steps / 8
            losses = ["elbo", "reweighted_elbo"]  # loss types to compare (Eq. 6, Eq. 7)
            seeds = [0, 1, 2]  # training seeds (initial weights, t, masks, batch order); one training per loss and seed
            """),
        setup("""\
            n_steps = train_steps or cfg.prior_train.steps
            every = eval_every or max(1, n_steps // 8)
            """),
        md("""\
            Every training logs the same figure, the one-draw negative ELBO on validation grids (bits per
            token), whatever its loss. EMA is switched off here: in short runs the EMA weights lag far
            behind the trained ones and would hide the difference. Each seed changes the initial weights, the
            masks and times drawn, and the batch order, the same for both losses: so the two losses are compared
            seed by seed (a paired difference), and the spread over seeds is the run-to-run noise.
            """),
        code("""\
            from ulib.config import apply_overrides

            configs = {(loss, sd): apply_overrides(cfg, {
                "seed": sd, "prior.kind": "absorbing", "prior.loss_type": loss, "prior_train.steps": n_steps,
                "prior_train.log_every": every, "prior_train.image_every": every, "prior_train.ckpt_every": n_steps,
                "prior_train.ema_decay": 0.0}) for loss in losses for sd in seeds}
            name = lambda loss, sd: f"fig5_{loss}" if sd == 0 else f"fig5_{loss}_seed{sd}"
            runs = {key: nbu.train_child_prior(s, name(*key), c) for key, c in configs.items()}
            """),
        code("""\
            # NBVAL_CHECK_OUTPUT
            from ulib.config import Config


            def flat(c: Config) -> dict:
                return {f"{sec}.{k}": v for sec, d in c.to_dict().items() if isinstance(d, dict) for k, v in d.items()}


            a, b = (flat(configs[(loss, seeds[0])]) for loss in losses[:2])
            print("the trainings of one seed differ only in:", sorted(k for k in a if a[k] != b[k]))
            """),
        code("""\
            import numpy as np

            from ulib.io.logs import MetricsLog
            from ulib.eval.quality import paired_difference

            table, curves = [], {}
            for (loss, sd), run in runs.items():
                rows = MetricsLog.read(run.prior_log)
                curves[(loss, sd)] = {r["step"]: r["val_elbo_bpt"] for r in rows if r.get("val_elbo_bpt") is not None}
                table += [{"loss_type": loss, "step": st, "val_elbo_bpt": v, "seed": sd} for st, v in curves[(loss, sd)].items()]
            steps = sorted(curves[(losses[0], seeds[0])])
            summary = []
            fig, ax = plt.subplots(figsize=(7, 3.5))
            for loss, colour in zip(losses, ("C0", "C1")):
                per_seed = np.array([[curves[(loss, sd)][st] for st in steps] for sd in seeds])  # (seeds, points)
                mean, std = per_seed.mean(0), per_seed.std(0, ddof=1) if len(seeds) > 1 else np.zeros(len(steps))
                for line in per_seed:
                    ax.plot(steps, line, c=colour, alpha=0.25, lw=0.8)
                ax.plot(steps, mean, "o-", c=colour, label=f"{loss}: mean of {len(seeds)} seeds")
                ax.fill_between(steps, mean - std, mean + std, color=colour, alpha=0.2)
                summary += [{"loss_type": loss, "step": st, "seeds": len(seeds), "val_elbo_bpt_mean": m,
                             "val_elbo_bpt_std": sd_} for st, m, sd_ in zip(steps, mean, std)]
            ax.set(xlabel="step", ylabel="validation negative ELBO (bits per token)",
                   title=f"Fig. 5: ELBO vs reweighted ELBO ({len(seeds)} seeds: mean, ±1 std band, thin: each seed)")
            ax.legend()
            nbu.save_figure(s, fig, "fig5_val_elbo")
            nbu.write_table(s, table, "fig5_val_elbo")
            nbu.write_table(s, summary, "fig5_seed_summary")
            plt.show()
            """),
        md("""\
            ## The paper's claim, seed by seed

            The paper: the reweighted ELBO reaches a lower validation ELBO than training on the ELBO itself. At
            every validation point, the difference reweighted − ELBO per seed, its mean and standard error
            over seeds (n = the number of seeds; each point uses the same validation grids and draws).
            """),
        code("""\
            if len(losses) == 2:
                diffs = []
                for st in steps:
                    d = paired_difference([curves[(losses[1], sd)][st] for sd in seeds],
                                          [curves[(losses[0], sd)][st] for sd in seeds]) if len(seeds) > 1 else None
                    diffs.append({"step": st, "seeds": len(seeds),
                                  "difference_bpt": d["mean_difference"] if d else curves[(losses[1], seeds[0])][st] - curves[(losses[0], seeds[0])][st],
                                  "stderr": d["se"] if d else None})
                nbu.show_table(diffs)
                last = diffs[-1]
                if last["stderr"]:
                    z = last["difference_bpt"] / last["stderr"]
                    print(f"after {steps[-1]} steps: {losses[1]} - {losses[0]} = {last['difference_bpt']:+.3f} ± "
                          f"{last['stderr']:.3f} bits/token over {len(seeds)} seeds ({z:+.1f} SE): "
                          + ("the paper's ordering holds" if z < -2 else "not separated from noise" if z < 2 else "reversed"))
            """),
    ]


# ==== 07 ==================================================================================================
def nb07():
    return [
        header("07 · Sampling temperature: quality, diversity and dataset bias (Fig. 6, Tables 1 and 2)",
               "Fig. 6 of the paper (the effect of the sampling temperature) and the t = 1.0 / t = 0.9 rows of its "
               "Tables 1 and 2 (FID, precision, recall, density, coverage). Lower temperatures sharpen "
               "p(x_0 | x_t): cleaner, more alike samples; the paper warns that they also amplify the data's "
               "biases. We measure that rather than describe it: the category histogram of the samples (the "
               "OpenMoji feature network's category head) against the data's, as KL divergence, entropy and the "
               "share of the data's commonest category.",
               "notebook 01's run directory (VQGAN and prior; trained here when missing); the shipped OpenMoji "
               "feature weights for the built-in dataset (notebook 12).",
               "CPU: about 40 s with `smoke`, 3.5 min with `demo` (measured on 2 cores, trained run present: "
               "300 samples per temperature).",
               "GPU, paper profiles: minutes for 2,000 samples per temperature (estimate)."),
        parameters("""\
            temperatures = [0.5, 0.7, 0.8, 0.9, 1.0, 1.2]  # softmax temperatures to compare (0.9 and 1.0: Tables 1, 2)
            n_samples = 0  # samples per temperature; 0: by profile (smoke 40, demo 300, GPU 2000)
            steps = 0  # sampling steps; 0: the profile's sample.steps (or T)
            features = "auto"  # feature space: 'auto' (openmoji for the built-in dataset), 'inception', ...
            """),
        setup("""\
            sizes = nbu.quality_sizes(s, n_samples)
            n, n_steps = sizes["n_samples"], steps or cfg.sample.steps or T
            print("temperatures:", temperatures, "| samples per temperature:", n, "| steps:", n_steps)
            """),
        md("""\
            ## Temperature

            Each prediction is drawn from softmax(logits / τ). Checked by hand for logits (2, 1, 0): τ < 1
            moves probability onto the likeliest code, τ > 1 spreads it out.
            """),
        code("""\
            # NBVAL_CHECK_OUTPUT
            logits = torch.tensor([2.0, 1.0, 0.0])
            for tau in (0.5, 1.0, 2.0):
                print(f"tau = {tau}:", [round(p, 4) for p in torch.softmax(logits / tau, 0).tolist()])
            """),
        md(r"""
            ## Bias, measured

            The feature network's category head sorts each image into one of its categories (for emoji: the
            Unicode CLDR groups, e.g. Smileys & Emotion, Flags). With $p$ the samples' category histogram and
            $q$ the reference's, bias amplification shows as a lower entropy $H(p) = -\sum_c p_c \log_2 p_c$ than
            the data's and a growing $\mathrm{KL}(p \,\|\, q) = \sum_c p_c \log_2 (p_c / q_c)$. By hand, and
            checked against `ulib`:
            """),
        code("""\
            # NBVAL_CHECK_OUTPUT
            import numpy as np

            from ulib.eval.features import histogram_entropy, histogram_kl

            p, q = np.array([0.5, 0.5, 0.0, 0.0]), np.array([0.25, 0.25, 0.25, 0.25])
            kl_by_hand = sum(pc * math.log2(pc / qc) for pc, qc in zip(p, q) if pc > 0)
            print(f"H(p) = {histogram_entropy(p):.4f} bits (by hand 1), H(q) = {histogram_entropy(q):.4f} (by hand 2)")
            print(f"KL(p || q) = {histogram_kl(p, q):.4f} bits (by hand {kl_by_hand:.4f})")
            """),
        code("""\
            from ulib.eval.diversity import token_entropy
            from ulib.eval.quality import extract, with_floor

            vq, net = nbu.vqgan(s), nbu.prior(s)
            meter = nbu.quality_meter(s, sizes["n_reference"], features)
            floor = meter.floor(n, draws=sizes["draws"], seed=seed)
            rows, grids, histograms = [], [], {}
            for i, tau in enumerate(temperatures):
                images, tokens, sec = nbu.sample_set(s, vq, net, n, steps=n_steps, temperature=tau, seed_offset=i)
                feats, logits = extract(meter.space, images)
                r = meter.score_features(feats, logits, draws=sizes["draws"], seed=seed)
                histograms[tau] = np.bincount(logits.argmax(1).numpy(), minlength=logits.shape[1]) / len(logits)
                rows.append(with_floor({"temperature": tau, "steps": n_steps, "token_entropy_bits": token_entropy(tokens, K),
                                        **r}, floor))
                grids.append(images[:8])
            columns = ["temperature", "n", "fid", "fid_std", "floor_fid", "precision", "precision_std", "recall",
                       "recall_std", "density", "coverage", "coverage_std", "category_entropy_bits",
                       "category_entropy_bits_std", "reference_entropy_bits", "category_kl_bits", "category_kl_bits_std",
                       "top_category_share", "top_category_share_std", "reference_top_category_share",
                       "token_entropy_bits", "features"]
            fig6 = [{c: r[c] for c in columns} for r in rows]
            nbu.write_table(s, fig6, "fig6_temperature")
            nbu.show_table(fig6, ["temperature", "n", "fid", "fid_std", "floor_fid", "precision", "recall", "density",
                                  "coverage", "category_entropy_bits", "reference_entropy_bits", "category_kl_bits",
                                  "top_category_share", "reference_top_category_share"])
            """),
        code("""\
            # NBVAL_CHECK_OUTPUT
            print("temperatures measured:", [r["temperature"] for r in rows])
            print("each row: n samples, a bootstrap ± and the floor at the same n:",
                  all(r["n"] == n and r["fid_std"] > 0 and r["floor_fid"] == floor["fid"] for r in rows))
            """),
        code("""\
            from ulib.eval.features import CATEGORIES

            fig, axes = plt.subplots(2, 3, figsize=(13, 6.5))
            ts = [r["temperature"] for r in rows]

            def panel(ax, keys, title, floor_keys=()):
                for key in keys:
                    ax.errorbar(ts, [r[key] for r in rows], yerr=[r.get(key + "_std", 0) for r in rows], fmt="o-",
                                capsize=3, label=key.replace("_bits", ""))
                for key in floor_keys:
                    ax.axhline(floor[key], ls=":", c="gray")
                ax.set(xlabel="temperature", title=title)
                ax.legend(fontsize=8)

            panel(axes[0, 0], ["fid"], f"FID ({meter.features}); dotted: noise floor, n = {n}", ["fid"])
            panel(axes[0, 1], ["precision", "recall"], "precision, recall (dotted: floor)", ["precision", "recall"])
            panel(axes[0, 2], ["density", "coverage"], "density, coverage (dotted: floor)", ["density", "coverage"])
            top = CATEGORIES[meter.top_category] if meter.features == "openmoji" else f"class {meter.top_category}"
            panel(axes[1, 0], ["top_category_share"], f"share of the data's commonest category ({top})")
            axes[1, 0].axhline(rows[0]["reference_top_category_share"], ls="--", c="gray", label="data")
            axes[1, 0].legend(fontsize=8)
            panel(axes[1, 1], ["category_kl_bits"], "KL(samples || data) of categories (bits)", ["category_kl_bits"])
            names = CATEGORIES if meter.features == "openmoji" else [str(c) for c in range(len(meter.ref_histogram))]
            x = np.arange(len(meter.ref_histogram))
            for j, (label, h) in enumerate([("data", meter.ref_histogram), (f"t = {ts[0]}", histograms[ts[0]]),
                                            (f"t = {ts[-1]}", histograms[ts[-1]])]):
                axes[1, 2].bar(x + (j - 1) * 0.27, h, width=0.27, label=label)
            axes[1, 2].set_xticks(x, names, rotation=75, fontsize=7)
            axes[1, 2].set(title="category histograms", ylabel="fraction")
            axes[1, 2].legend(fontsize=8)
            fig.suptitle(f"Fig. 6 at {cfg.profile} scale: n = {n} samples per temperature, seed {seed}, "
                         f"± bootstrap std ({sizes['draws']} draws)", fontsize=10)
            fig.tight_layout()
            nbu.save_figure(s, fig, "fig6_temperature")
            plt.show()
            nbu.show(nbu.save_grid(s, torch.cat(grids), "fig6_temperature_samples", nrow=len(grids[0])))
            print("rows of samples, top to bottom: temperature", temperatures)
            """),
        md("""\
            ## Tables 1 and 2: t = 1.0 and t = 0.9

            The paper reports both temperatures for its final models; its figures (256 px photographs,
            Inception features, 50,000 samples) are not comparable in value with ours, but the direction of
            each column between the two temperatures is.
            """),
        code("""\
            from ulib.paper import table1_2_rows

            ours = [dict({"data": cfg.data.dataset}, **{k: r[k] for k in ("temperature", "n", "fid", "fid_std",
                    "precision", "recall", "density", "coverage", "features")}) for r in rows if r["temperature"] in (1.0, 0.9)]
            nbu.write_table(s, ours, "table1_2_temperature")
            nbu.show_table(ours)
            paper = table1_2_rows(1.0) + table1_2_rows(0.9)
            nbu.show_table(paper)
            by_t = {r["temperature"]: r for r in ours}
            if {1.0, 0.9} <= set(by_t):
                for key in ("fid", "precision", "recall", "density", "coverage"):
                    ours_dir = by_t[0.9][key] - by_t[1.0][key]
                    paper_dirs = [p9[key] - p1[key] for p1, p9 in zip(table1_2_rows(1.0), table1_2_rows(0.9))]
                    print(f"{key:9s}: 0.9 - 1.0 ours {ours_dir:+.3f} | paper {', '.join(f'{d:+.2f}' for d in paper_dirs)}")
            """),
    ]


# ==== 08 ==================================================================================================
def nb08():
    return [
        header("08 · Images larger than the training grid",
               "Fig. 4 of the paper (section 3.3, Eq. 8): sampling a token canvas larger than the h x w grid "
               "the prior was trained on, by running the prior on overlapping windows and mixing their "
               "predictions at every position.",
               "notebook 01's run directory (VQGAN and prior; trained here when missing).",
               "CPU: about 4 s with `smoke` (measured on 2 cores), 7 s with `demo` (measured on 2 cores, trained run present).",
               "GPU, paper profiles: about a minute per 2x-wide canvas at stride 1 (estimate: 17 windows "
               "per step, 256 steps)."),
        parameters("""\
            canvas_scale = [1, 2]  # canvas size in training windows (rows, cols); [1, 2] is twice as wide
            stride = 2  # window stride in tokens (1..h); smaller: more windows per step, better coherence
            n_samples = 4  # canvases to sample
            steps = 0  # sampling steps; 0: the profile's sample.steps (or T)
            temperature = None  # None: the profile's sample.temperature
            """),
        setup("""\
            h = w = cfg.latent_size
            canvas = (h * canvas_scale[0], w * canvas_scale[1])
            n_steps = steps or cfg.sample.steps or T
            temp = temperature or cfg.sample.temperature
            """),
        md("""\
            ## Windows and Eq. 8

            Windows of the training size h x w are placed every `stride` tokens (plus the last row/column so
            the edges are covered). A position i covered by the windows R_i gets the mixture
            p̄_i = (1/|R_i|) Σ_r p_θ(x_0^i | x_t^(r)), sharpened by the temperature τ: p ∝ p̄^(1/τ). The map shows
            |R_i|, how many windows see each position.
            """),
        code("""\
            # NBVAL_CHECK_OUTPUT
            from ulib.sample.canvas import coverage, decode_canvas, window_offsets

            offsets = window_offsets(canvas, (h, w), stride)  # (Nw, 2) top-left corners
            cover = coverage(canvas, (h, w), offsets)  # (a, b) windows per position
            print(f"canvas {canvas[0]}x{canvas[1]} tokens, window {h}x{w}, stride {stride}: {len(offsets)} windows, "
                  f"each position seen by {int(cover.min())} to {int(cover.max())} of them")
            """),
        code("""\
            fig, ax = plt.subplots(figsize=(2 + 0.25 * canvas[1], 1 + 0.25 * canvas[0]))
            im = ax.imshow(cover.numpy(), cmap="viridis")
            fig.colorbar(im, ax=ax, label="|R_i|")
            ax.set_title("windows covering each token")
            nbu.save_figure(s, fig, "08_window_coverage")
            plt.show()
            """),
        code("""\
            from ulib import sample_images, sample_tokens

            models = nbu.models(s)
            vq = models.vqgan
            tokens, seconds = nbu.timed(lambda: sample_tokens(
                models, n_samples, canvas=canvas, stride=stride, steps=n_steps, temperature=temp,
                generator=s.generator(), device=s.device), s.device)
            with torch.no_grad():
                big = decode_canvas(vq, tokens).clamp(-1, 1)  # (n, 3, a*f, b*f): the generator is convolutional
            nbu.write_table(s, [{"canvas": f"{canvas[0]}x{canvas[1]}", "window": f"{h}x{w}", "stride": stride,
                                 "windows": len(offsets), "steps": n_steps,
                                 "seconds_per_image": seconds / n_samples}], "fig4_big_images")
            nbu.show(nbu.save_grid(s, big, "fig4_big_images", nrow=1))
            print(f"{seconds / n_samples:.2f} s per canvas")
            """),
        md("""\
            Without Eq. 8: independent training-size samples side by side. Nothing ties the tiles together,
            so the seams show; the windowed sampler makes every overlap agree.
            """),
        code("""\
            tiles = canvas_scale[0] * canvas_scale[1]
            images = sample_images(models, n_samples * tiles, seed=s.seed, steps=n_steps, temperature=temp)
            rows = images.view(n_samples, canvas_scale[0], canvas_scale[1], *images.shape[1:])
            naive = torch.cat([torch.cat(r.unbind(1), dim=-1) for r in rows.unbind(1)], dim=-2)  # (n, 3, a*f, b*f)
            nbu.show(nbu.save_grid(s, naive, "fig4_independent_tiles", nrow=1))
            """),
    ]


# ==== 09 ==================================================================================================
def nb09():
    return [
        header("09 · Inpainting: regenerate the masked part of an image",
               "Fig. 7 of the paper (section 4.5): an image is encoded, the tokens under a mask are replaced "
               "by the mask token, and the reverse process fills them in while the others stay fixed.",
               "notebook 01's run directory (VQGAN and prior; trained here when missing).",
               "CPU: about 4 s with `smoke` (measured on 2 cores), 4 s with `demo` (measured on 2 cores, trained run present).",
               "GPU, paper profiles: seconds per image (estimate)."),
        parameters("""\
            masks = ["centre", "left", "bottom"]  # regions to regenerate: centre square, left half, bottom half
            n_images = 4  # validation images to edit
            steps = 0  # sampling steps; 0: one step per time from the start time
            temperature = None  # None: the profile's sample.temperature
            paste_back = True  # keep the original pixels outside the mask
            """),
        setup("""\
            temp = temperature or cfg.sample.temperature
            size = cfg.data.img_size
            """),
        md("""\
            ## From a pixel mask to a token mask and a start time

            Token (i, j) is decoded from an f x f pixel block, f = img_size / h; it is regenerated when its
            block touches the mask. With m of L tokens masked, the grid looks like x_t at t/T = m/L, so the
            reverse process starts at t₀ = round(T m / L) instead of T.
            """),
        code("""\
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
            """),
        code("""\
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
            """),
        code("""\
            # NBVAL_CHECK_OUTPUT
            for kind, res in results.items():
                keep = ~res.latent_mask
                print(f"{kind:6s}: {int(res.latent_mask[0].sum())} of {L} tokens regenerated, start time "
                      f"t0 = {res.start_times[0]} of T = {T}, tokens outside the mask unchanged: "
                      f"{torch.equal(res.tokens[keep], res.original_tokens[keep])}")
            """),
    ]


# ==== 10 ==================================================================================================
def nb10():
    return [
        header("10 · Sampling from the paper's released checkpoints",
               "samples, larger-than-training images and inpainting (Figs. 1, 4, 7) with the models the authors "
               "trained (FFHQ, LSUN Churches, LSUN Bedroom), loaded into ulib's modules.",
               "the released `logs/` folder (not included: see below). Without it this notebook says so and "
               "skips every cell that needs it.",
               "CPU: seconds when the files are absent; with them, about a minute per image at 256 steps "
               "(estimate: 24-layer transformer over 256 tokens plus a 256x256 decoder).",
               "GPU: seconds per image (estimate)."),
        parameters("""\
            released_dir = "../logs"  # the downloaded logs/ folder (relative to notebooks/)
            dataset = "churches"  # churches | bedrooms | ffhq: which released pair to use
            n_samples = 2  # images to sample
            steps = 64  # reverse steps (the paper's tables use 256; fewer is faster, Table 3)
            temperature = 0.9  # the paper's tables use 0.9
            canvas = "16x32"  # latent canvas of the wide image (training grid: 16x16)
            """),
        setup("""\
            from pathlib import Path

            root = (nbu.START_DIR / Path(released_dir).expanduser()).resolve()  # relative to the notebook's folder
            """),
        md("""\
            ## Where the files come from

            The official repository's README links a `logs/` folder (a Google Drive folder) holding, for each
            dataset, `logs/vqgan_<dataset>/saved_models/vqgan_ema_<step>.th` and
            `logs/absorbing_<dataset>/saved_models/absorbing_ema_<step>.th` (and the AR baseline's
            `autoregressive_ema_<step>.th`). Download it into this repository as `logs/` (beside `notebooks/`), or point
            `released_dir` at it. They are plain PyTorch state dicts; `ulib.official` maps them onto ulib's
            VQGAN and transformer, which compute exactly what the official modules compute (checked layer by
            layer in `tests/test_official.py`).
            """),
        code("""\
            from ulib.official import RELEASE_HINT

            def newest(pattern: str):  # the file matching `pattern` with the highest training step (..._STEP.th)
                step = lambda p: int(p.stem.rsplit("_", 1)[-1]) if p.stem.rsplit("_", 1)[-1].isdigit() else -1
                files = sorted(root.glob(pattern), key=step)
                return files[-1] if files else None

            vqgan_file = newest(f"vqgan_{dataset}/saved_models/vqgan_ema_*.th")
            sampler_file = newest(f"absorbing_{dataset}/saved_models/absorbing_ema_*.th")
            available = vqgan_file is not None and sampler_file is not None
            if available:
                print("using", vqgan_file.relative_to(root), "and", sampler_file.relative_to(root))
            else:
                print(f"The released checkpoints for {dataset!r} are not in {released_dir!r}: the cells below skip.")
                print(RELEASE_HINT)
            """),
        code("""\
            # NBVAL_CHECK_OUTPUT
            from ulib.official import PAPER_SAMPLER_HPARAMS, PAPER_VQGAN_HPARAMS

            print("paper VQGAN:", {k: PAPER_VQGAN_HPARAMS[k] for k in ("nf", "ch_mult", "codebook_size", "emb_dim")})
            print("paper sampler:", {k: PAPER_SAMPLER_HPARAMS[k] for k in ("bert_n_emb", "bert_n_layers", "block_size")})
            """),
        md("""\
            ## Samples

            The same command-line path as `python -m ulib sample --official-vqgan ... --official-sampler ...`.
            """),
        code("""\
            from ulib import sample_images
            from ulib.app.commands import parse_canvas
            from ulib.sample.models import from_official

            if available:
                m = from_official(vqgan_file, sampler_file, "absorbing", s.device)
                images = sample_images(m, n_samples, steps=steps, temperature=temperature, seed=s.seed)
                nbu.show(nbu.save_grid(s, images, f"10_released_{dataset}_samples"))
                wide = sample_images(m, 1, steps=steps, temperature=temperature, seed=s.seed, canvas=parse_canvas(canvas),
                                     stride=4)
                nbu.show(nbu.save_grid(s, wide, f"10_released_{dataset}_wide"))
            else:
                print("skipped: no released checkpoints")
            """),
    ]


# ==== 11 ==================================================================================================
def nb11():
    return [
        header("11 · Playground: sample, inpaint and watch the reverse process with widgets",
               "nothing new: an interactive view of sections 3.2-4.5 (decoding methods and step skipping as in "
               "Table 3, temperature as in Fig. 6, wide canvases as in Fig. 4, inpainting as in Fig. 7, and the "
               "reverse process one step at a time).",
               "notebook 01's run directory (VQGAN and prior; trained here when missing). Move the sliders "
               "in JupyterLab; run headless (papermill), the notebook presses the buttons itself once.",
               "CPU: seconds with `smoke`; 4 s with `demo` (measured on 2 cores, trained run present), a Generate of 2 images at 64 "
               "steps in well under a second (the widget shows the time of each).",
               "GPU, paper profiles: seconds per Generate at 256 steps (estimate)."),
        parameters("""\
            n_images = 4  # images per Generate
            steps = 0  # reverse steps; 0: the profile's sample.steps (else T)
            temperature = None  # None: the profile's sample.temperature
            """),
        setup("""\
            from ulib.data.datasets import build_dataset
            from ulib.sample.models import from_run
            from ulib.app.widgets import Playground

            nbu.prior(s)  # load if present, else train (and the VQGAN and latents before it)
            models = from_run(s.run, cfg, s.device)
            val = build_dataset(cfg.data, "val", train_transforms=False)
            """),
        md("""\
            ## The playground

            Three tabs, all calling ulib: **Sample** (`ulib.sample.api.sample_tokens` with the method, steps,
            temperature and seed of the sliders; a canvas wider than the training grid goes through
            `ulib.sample.canvas.sample_canvas`, Eq. 8), **Inpaint** (`ulib.sample.inpaint.inpaint` on a validation image
            or the last sample, inside a rectangle given in pixels) and **Steps** (`AbsorbingSampler.step`
            one step at a time; the slider walks over the kept states, from all masked to none).

            Generate samples in a background thread, so that **Stop** is handled while it runs: it sets a flag
            that the sampler's callback checks after every pass, which ends the sampling early. The buttons
            call plain methods (`generate`, `inpaint_region`, `compute_steps`), which the tests call too.
            """),
        code("""\
            pg = Playground(models, s.device, val)
            pg.n_images.value = n_images
            pg.steps.value = steps or pg.steps.value
            pg.temperature.value = temperature or pg.temperature.value
            pg.seed.value = s.seed
            pg
            """),
        md("""\
            Run headless, the notebook presses the buttons itself (in JupyterLab, use the widget above; its
            pictures update in place). The pictures are also saved to `RUN/results/`.
            """),
        code("""\
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
            """),
        code("""\
            # NBVAL_CHECK_OUTPUT
            masked = [int((x == cfg.mask_id).sum()) for x in pg.states]
            print(f"step slider 0..{pg.step_slider.max} over {len(pg.states)} states; masked tokens: first "
                  f"{masked[0]} of {L}, last {masked[-1]}; never increasing: {masked == sorted(masked, reverse=True)}")
            res = pg.inpaint_result
            keep = ~res.latent_mask
            print(f"inpainting: {int(res.latent_mask.sum())} of {L} tokens regenerated, tokens outside unchanged: "
                  f"{torch.equal(res.tokens[keep], res.original_tokens[keep])}")
            """),
    ]


# ==== 12 ==================================================================================================
def nb12():
    return [
        header("12 · An offline metric for emoji: FID, KID and PRDC in an OpenMoji feature space",
               "the measuring stick for the paper's Tables 1-5 at CPU scale. The paper computes FID and PRDC on "
               "Inception features, which cannot be downloaded offline and know nothing of emoji; this notebook "
               "explains the kit's own feature network, shows that it behaves as a metric, and then measures "
               "the run's reconstructions and samples against the real noise floor.",
               "the shipped weights `ulib/assets/openmoji_features.pt` (made by `python -m ulib train-features`), "
               "and notebook 01's run directory (VQGAN and prior; trained here when missing).",
               "CPU: about 1.5 min with `smoke`, 2 min with `demo` once the run exists (measured on 2 cores).",
               "GPU: seconds."),
        parameters("""\
            n_half = 0  # images in each half of the real set for the metric checks; 0: by profile (smoke 200, demo 800)
            n_samples = 0  # prior samples and reconstructions measured at the end; 0: by profile (smoke 40, demo 300)
            draws = 0  # bootstrap resamples behind every ±; 0: by profile (smoke 2, demo 5)
            """),
        setup("""\
            sizes = nbu.quality_sizes(s, n_samples)
            n_half, draws = n_half or sizes["n_half"], draws or sizes["draws"]
            print(f"metric checks: {n_half} images per half | run quality: {sizes['n_samples']} images | "
                  f"bootstrap draws: {draws}")
            """),
        md("""\
            ## The feature network and its recipe

            A small CNN (32 → 16 → 8 → 4 px, global average pool to 256 features), trained once on every
            rendered OpenMoji emoji with two heads: *exemplar* (each emoji is its own class, seen under random
            shifts, zooms and flips) and *category* (the emoji's CLDR group, e.g. Smileys & Emotion, Flags;
            OpenMoji's own extras are one more). The augmentations are geometric only, so blur, noise and colour
            changes move the features. It is independent of the models under test: neither the VQGAN nor the
            prior saw it, nor it them. All emojis designed by OpenMoji (CC BY-SA 4.0).
            """),
        code("""\
            # NBVAL_CHECK_OUTPUT
            from ulib.eval import features as EF

            feature_net, report = EF.load_feature_net()
            print(f"trained on {report['n_emoji']} emoji (OpenMoji {report['openmoji_version']}), "
                  f"{report['recipe']['epochs']} epochs, {sum(p.numel() for p in feature_net.parameters()):,} parameters")
            print(f"exemplar accuracy on augmented views {report['exemplar_accuracy_augmented']:.3f}, "
                  f"category accuracy {report['category_accuracy']:.3f}")
            print(dict(zip(report["categories"], report["category_counts"])))
            """),
        md(r"""
            ## FID from scratch, checked against ulib

            FID $= \lVert \mu_1 - \mu_2 \rVert^2 + \operatorname{tr}(\Sigma_1 + \Sigma_2 - 2 (\Sigma_1 \Sigma_2)^{1/2})$
            on the features of two image sets. We split the emoji into two disjoint halves, compute it with numpy
            and scipy, and check it against `ulib.eval.metrics.fid` (torch-fidelity's statistics).
            """),
        code("""\
            import numpy as np
            import scipy.linalg

            from ulib.eval import compare as C
            from ulib.eval import metrics as M
            from ulib.data.datasets import load_openmoji

            space = M.load_inception("openmoji", device=s.device)
            emoji, _ = load_openmoji(32, cfg.data.cache_dir)
            x = torch.from_numpy(emoji).permute(0, 3, 1, 2).contiguous()
            perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
            half_a, half_b = x[perm[:n_half]], x[perm[n_half: 2 * n_half]]
            fa, fb = C.image_features(space, half_a), C.image_features(space, half_b)

            a, b = fa.double().numpy(), fb.double().numpy()
            mu1, mu2, s1, s2 = a.mean(0), b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)
            covmean = scipy.linalg.sqrtm(s1 @ s2).real
            fid_by_hand = float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))
            print(f"FID real half vs real half (n = {n_half} each): by hand {fid_by_hand:.3f}, ulib {M.fid(fa, fb):.3f}")
            assert abs(fid_by_hand - M.fid(fa, fb)) < 1e-3 * max(1.0, fid_by_hand)
            """),
        md("""\
            ## Is it a metric?

            Half A against half B corrupted at growing strength. Strength 0 is the noise floor (real against
            real at the same n). A metric must get monotonically worse with blur, noise and patch shuffling, and
            a collapsed set (20 distinct images repeated) must lose recall and coverage while keeping precision.
            Error bars: bootstrap std over `draws` resamples of both sets.
            """),
        code("""\
            from ulib.eval import metric_checks as MC

            sweep = MC.sanity_sweep(lambda im: C.image_features(space, im), half_a, half_b, seed=seed, draws=draws)
            nbu.write_table(s, sweep, "12_metric_sanity")
            nbu.show_table(sweep, ["corruption", "strength", "unit", "n", "fid", "fid_std", "precision", "recall",
                                   "density", "coverage", "coverage_std"])
            fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
            for ax, name in zip(axes, MC.CORRUPTIONS):
                rows = [r for r in sweep if r["corruption"] == name]
                ax.errorbar([r["strength"] for r in rows], [r["fid"] for r in rows],
                            yerr=[r["fid_std"] for r in rows], fmt="o-", capsize=3, label="corrupted half B")
                ax.axhline(rows[0]["fid"], ls="--", c="gray", label="noise floor (real vs real)")
                ax.set(xlabel=rows[0]["unit"], ylabel="FID (openmoji features)", title=f"{name}, n = {rows[0]['n']}",
                       yscale="log")
                ax.legend(fontsize=8)
            fig.tight_layout()
            nbu.save_figure(s, fig, "12_metric_sanity")
            plt.show()
            """),
        code("""\
            # NBVAL_CHECK_OUTPUT
            for name in MC.CORRUPTIONS:
                fids = [r["fid"] for r in sweep if r["corruption"] == name]
                print(f"{name}: FID monotone in strength: {fids == sorted(fids)}")
            col = next(r for r in sweep if r["corruption"] == "collapse")
            print("collapsed set: recall below 0.25 and coverage below 0.25:", col["recall"] < 0.25, col["coverage"] < 0.25)
            """),
        md("""\
            ## The run, measured

            Reference: a fixed random subset of the run's training images (`nbu.quality_meter`, as in notebooks
            04 and 07). Rows: held-out real images (the noise floor at this n), their VQGAN reconstructions, and
            samples from the prior at the profile's sampling settings. A good VQGAN sits near the floor; samples
            sit above the reconstructions (the prior cannot beat its decoder).
            """),
        code("""\
            vq, net = nbu.vqgan(s), nbu.prior(s)
            meter = nbu.quality_meter(s, sizes["n_reference"])
            quality, sets = nbu.run_quality(s, vq, net, meter, sizes["n_samples"], draws)
            nbu.write_table(s, quality, "12_run_quality")
            nbu.show_table(quality, ["set", "n_reference", "n", "fid", "fid_std", "kid", "precision", "recall",
                                     "density", "coverage", "category_kl_bits", "features"])
            print(f"samples' FID / reconstructions' FID = {quality[2]['fid_over_reconstructions']:.2f} "
                  f"(the aim for the demo: at most 2)")
            grid = torch.cat([x[:8] for x in sets.values()]).float().div(127.5).sub(1)  # uint8 -> [-1, 1]
            nbu.show(nbu.save_grid(s, grid, "12_real_recon_samples", nrow=8))
            print("rows: held-out real images, their reconstructions, prior samples")
            """),
    ]

# ==== 13 ==================================================================================================
def nb13():
    return [
        header("13 · Table 5: DiffAug and the λ clamp in the VQGAN's GAN phase",
               "Table 5 of the paper: reconstruction FID of four VQGANs that differ only in the GAN term of "
               "Eq. 9: *default* (taming's recipe: λ clamped only at 10⁴, no augmentation), λmax = 1 (Eq. 9c), "
               "DiffAug on every discriminator input, and both.",
               "notebook 01's run directory (its trained VQGAN is the shared starting point; the four variants "
               "and a no-GAN control go into `RUN/table5_*/` and never replace `RUN/vqgan.pt`).",
               "CPU: about 2 min with `smoke` (measured on 2 cores), about 7 min with `demo` (estimate from "
               "the measured 1.7 min per 100-step continuation on 2 cores: five of them, 800 reconstructions "
               "each; `study` runs 400 steps each, about 30 min).",
               "GPU, paper profiles: the paper trains each variant 500k steps; set `gan_steps` to what the "
               "budget allows (estimate: 1-2 s per step at 256 px)."),
        parameters("""\
            gan_steps = 0  # steps of each continuation with the GAN on; 0: by profile (smoke 4, demo 100, GPU 20,000)
            gan_lr = 0.0  # learning rate of the continuations (both players); 0: by profile (demo 1e-4, else the profile's own)
            n_images = 0  # held-out images reconstructed by every variant; 0: by profile (smoke 200, demo 800)
            draws = 0  # bootstrap resamples behind every ±; 0: by profile (smoke 2, demo 5)
            """),
        setup("""\
            sizes = nbu.quality_sizes(s)
            gan_steps = gan_steps or {"smoke": 4, "demo": 100, "study": 400}.get(cfg.profile, 20_000)
            gan_lr = gan_lr or {"demo": 1e-4, "study": 1e-4}.get(cfg.profile, cfg.vqgan_train.lr)
            n_images, draws = n_images or sizes["n_half"], draws or sizes["draws"]
            print(f"GAN phase: {gan_steps} steps per variant at lr {gan_lr:g}, from step {cfg.vqgan_train.steps} | "
                  f"{n_images} reconstructions per variant | bootstrap draws: {draws}")
            """),
        md("""\
            ## The four variants, and a control

            The paper switches the GAN term on after a reconstruction-only phase (its `disc_start_step` is
            30,001), so the four VQGANs of Table 5 share that phase. Here each variant continues the run's
            trained VQGAN for `gan_steps` steps with a fresh discriminator; only two settings differ between
            them (printed below). A fifth run, *no GAN*, continues for the same steps without the
            discriminator: the GAN's effect is measured against more training alone, not against a VQGAN
            that trained less.

            The learning rate of the continuation: the paper trains at a constant 1.35e-5 throughout; the
            demo's VQGAN is trained fast at 1e-3, and at that rate the GAN phase wrecked every variant (measured
            on the demo run: training L1 rose from 0.09 to 0.46-0.78 within 250 steps, the adaptive weight
            swinging between 0.08 and 11.5). So `demo` continues at 1e-4, ten times lower, every variant and the
            control alike.
            """),
        code("""\
            # NBVAL_CHECK_OUTPUT
            configs = nbu.vqgan_variant_configs(cfg, gan_steps, lr=gan_lr)
            for name, c in configs.items():
                gan = c.vqgan.disc_start_step < c.vqgan_train.steps
                print(f"{name:13s} steps {cfg.vqgan_train.steps} -> {c.vqgan_train.steps} | GAN on: {gan} | "
                      f"lambda_max {c.vqgan.disc_weight_max:g} | DiffAug {c.vqgan.diff_aug}")
            """),
        code("""\
            import time

            slug = lambda name: "table5_" + name.lower().replace(" ", "_").replace("=", "").replace("_max", "max")
            t0 = time.perf_counter()
            children = {name: nbu.train_child_vqgan(s, slug(name), c) for name, c in configs.items()}
            print(f"{len(children)} continuations ready in {time.perf_counter() - t0:.0f}s")
            """),
        md("""\
            ## Reconstruction FID

            The paper's Table 5 is the FID of reconstructions (encode, quantise, decode) against real images.
            Here: `n_images` held-out images (never trained on by the feature network's test, nor by the
            reference subset), reconstructed by each VQGAN, scored in the OpenMoji feature space against the
            reference subset of training images, beside the noise floor (the same held-out images
            themselves). Differences from *default* are paired: both sets are reconstructions of the same
            images, resampled together, so the images' own spread cancels.
            """),
        code("""\
            from ulib import paper as PV
            from ulib.io.models import load_run_vqgan
            from ulib.io.logs import MetricsLog
            from ulib.eval.quality import with_floor

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
            """),
        code("""\
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
            """),
        md("""\
            ## Does the paper's ordering hold here?

            The paper's claim: each technique alone can hurt, both together help (*both* is best on Churches and
            FFHQ). A difference counts only when it exceeds two bootstrap stds of the paired difference.
            """),
        code("""\
            for name in ("lambda_max=1", "DiffAug", "both"):
                r = by[name]
                d, sd = r["fid_minus_default"], r.get("fid_minus_default_std") or 0.0
                verdict = "within noise" if abs(d) <= 2 * sd else ("better than default" if d < 0 else "worse than default")
                print(f"{name:13s}: FID - default = {d:+.2f} ± {sd:.2f} -> {verdict} "
                      f"(paper: {paper[name][0] - paper['default'][0]:+.2f} Churches, {paper[name][1] - paper['default'][1]:+.2f} FFHQ)")
            print(f"no GAN (the control): FID {by['no GAN']['fid']:.2f} vs default {by['default']['fid']:.2f}")
            """),
    ]


NOTEBOOKS = {
    "01_quickstart": nb01, "02_vqgan": nb02, "03_absorbing_prior": nb03, "04_step_skipping": nb04,
    "05_ar_vs_absorbing": nb05, "06_elbo_vs_reweighted": nb06, "07_temperature": nb07, "08_big_images": nb08,
    "09_inpainting": nb09, "10_released_checkpoints": nb10, "11_playground": nb11,
    "12_emoji_metric": nb12, "13_vqgan_ablations": nb13,
}


def build(name: str) -> str:
    """The notebook `name` as the JSON text this script writes."""
    nb = nbformat.v4.new_notebook()
    nb.cells = NOTEBOOKS[name]()
    for i, cell in enumerate(nb.cells):
        cell.id = f"{name[:2]}-{i:02d}"  # stable ids: regenerating gives the same file
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
        "language_info": {"name": "python"},
    }
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true", help="only check that the .ipynb files match; exit 1 if not")
    p.add_argument("--out", type=Path, default=HERE, help="folder to write to (default: this script's folder)")
    args = p.parse_args(argv)
    stale = []
    for name in NOTEBOOKS:
        path = args.out / f"{name}.ipynb"
        text = build(name)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print(f"out of date with build_notebooks.py: {stale}; run `python notebooks/build_notebooks.py`",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
