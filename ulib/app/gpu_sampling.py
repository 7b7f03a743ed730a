"""The gpu-check's sampling phases (`ulib.app.gpu_check`): every method in both precisions, the random-order
sampler timed alone at two batch sizes, a decode at evaluation batch size, the AR cache, a big canvas, inpainting.

Throughput is samples (or images) per second; for the absorbing prior also passes_per_image (the sampler's network
passes), forward_rows (rows through the prior's trunk, counted by a hook) and the achieved TFLOP/s with its
fraction of the card's peak (`ulib.app.gpu_peak`).
"""
from __future__ import annotations

import torch

from ulib.app.gpu_peak import achieved, timed
from ulib.app.gpu_phases import ForwardCounter, Phases
from ulib.data.datasets import build_dataset
from ulib.io.rundir import RunDir
from ulib.models import load_run
from ulib.sample import registry
from ulib.sample.api import sample_images, sample_tokens
from ulib.sample.inpaint import inpaint
from ulib.sample.trace import StepTrace
from ulib.vq.chunked import decode_chunked, vqgan_chunk_size


def sample_phases(ph: Phases, models, cfg, n: int, fpf: int) -> None:
    """sample_{method}_{precision}: n images with each method, T steps; passes counted by StepTrace, rows through
    the trunk by a hook, achieved TFLOP/s over the phase's wall time (the decode included)."""
    T = cfg.prior.total_steps
    for method in registry.choices():
        for precision in ("fp32", "bf16"):
            with ph.phase(f"sample_{method}_{precision}") as rec:
                trace = StepTrace(torch.zeros(n, cfg.latent_size**2))
                with ForwardCounter(models.prior) as count:
                    sample_images(models, n, steps=T, temperature=0.9, seed=0, method=method,
                                  precision=precision, callback=trace)
                rec["rates"] = {"samples_per_s": n}
                rec["steps"], rec["passes_per_image"], rec["forward_rows"] = T, trace.passes, count.rows
                rec["flops"] = fpf * count.rows


def sampler_batch_phases(ph: Phases, models, cfg, batches: tuple, repeats: int, fpf: int) -> None:
    """sampler_b{B}: the random-order sampler's tokens (no decode) in bf16, one untimed call then `repeats` timed."""
    T = cfg.prior.total_steps
    device = ph.device
    for b in batches:
        with ph.phase(f"sampler_b{b}") as rec:
            g = torch.Generator(device=device).manual_seed(0)

            def draw():  # as sample_images runs the prior in bf16: a bf16 copy (ulib.sample.precision)
                return sample_tokens(models, b, steps=T, temperature=0.9, generator=g, device=device,
                                     precision="bf16")

            with ForwardCounter(models.prior) as count:
                t = timed(draw, device, repeats)
            calls = t["warmup"] + t["repeats"]
            rec.update(batch=b, method="random", precision="bf16", steps=T, **t)
            rec["passes_per_image"] = count.calls / calls  # mean over the calls (empty steps are skipped)
            rec["forward_rows"] = count.rows / calls
            rec["samples_per_s"] = round(b / max(t["median_s"], 1e-12), 3)
            rec.update(achieved(fpf * rec["forward_rows"], t["median_s"], ph.peak))


def decode_phase(ph: Phases, models, cfg, b: int) -> None:
    """decode_b{B}: B token grids -> images at once, as evaluation decodes a batch (after a one-image warm-up)."""
    s, device = cfg.latent_size, ph.device
    with ph.phase(f"decode_b{b}") as rec:
        tokens = torch.randint(cfg.vqgan.codebook_size, (b, s, s), generator=torch.Generator().manual_seed(0))
        tokens = tokens.to(device)
        rec["chunk"] = vqgan_chunk_size(models.vqgan, b, None)

        def decode(t):  # as evaluation decodes: in chunks sized from free memory (ulib.vq.chunked), in fp32
            return decode_chunked(models.vqgan, t)

        with torch.inference_mode():
            decode(tokens[:1])
            t = timed(lambda: decode(tokens), device, repeats=1, warmup=0)
        rec.update(batch=b, **t)
        rec["images_per_s"] = round(b / max(t["median_s"], 1e-12), 3)


def other_sampling_phases(ph: Phases, run: RunDir, models, cfg, n: int) -> None:
    """ar_cache_{fp32,bf16}, big_canvas, inpaint."""
    T, L, s, size = cfg.prior.total_steps, cfg.latent_size**2, cfg.latent_size, cfg.data.img_size
    device = ph.device
    ar = load_run(run, device, kind="autoregressive", cfg=cfg)
    for precision in ("fp32", "bf16"):
        with ph.phase(f"ar_cache_{precision}") as rec:
            sample_images(ar, n, steps=T, temperature=0.9, seed=0, precision=precision)
            rec["rates"] = {"samples_per_s": n, "tokens_per_s": n * L}

    with ph.phase("big_canvas") as rec:
        img = sample_images(models, 2, steps=min(T, 32), temperature=0.9, seed=0, canvas=(s, 2 * s),
                            stride=max(1, s // 4))
        rec["rates"] = {"samples_per_s": 2}
        rec["canvas"], rec["image_shape"] = f"{s}x{2 * s}", list(img.shape[1:])

    with ph.phase("inpaint") as rec:
        ds = build_dataset(cfg.data, "val", train_transforms=False)
        x = torch.stack([ds[i] for i in range(2)]).to(device)
        mask = torch.zeros(size, size, dtype=torch.bool, device=device)
        mask[:, size // 2:] = True  # regenerate the right half
        res = inpaint(models.vqgan, models.prior, x, mask, num_timesteps=T, mask_id=models.mask_id,
                      steps=min(T, 64), generator=torch.Generator(device=device).manual_seed(0),
                      precision="auto")  # as `python -m ulib inpaint` runs it
        rec["rates"] = {"samples_per_s": 2}
        rec["start_times"] = res.start_times
