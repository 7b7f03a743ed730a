"""`python -m ulib evaluate`: a run's figures in the format of the paper's tables, with the recipe beside them.

- Samples (Tables 1, 2): FID, Precision, Recall, Density, Coverage (and KID, IS) of N samples against the
  training (or validation) split. Samples go in batches straight from the sampler into InceptionV3; no PNGs.
- `--vqgan` (Table 5): reconstruction FID, PSNR, SSIM, LPIPS on a split (validation by default), codebook usage.
- `--neighbours N`: the nearest training images of N samples by LPIPS, as RUN/nearest_neighbours.png
  (supplementary C).

Every evaluation appends one JSON record, holding the figures and the whole recipe (samples, steps, temperature,
seeds, reference split, image size and resize, checkpoints and steps, EMA, features and their weights file),
to RUN/evaluation.jsonl, and RUN/evaluation.md is rewritten from those records: one table per kind of figure
and per feature set, never mixing standard and random-inception figures. The paper's own figures appear beside
ours only for standard features on the paper's datasets (profiles ffhq, churches, bedrooms at 256x256).

Reference-set features are cached in RUN/eval_cache/, keyed by the dataset's fingerprint, the split, the subset
and the feature extractor (weights sha256 or random seed), and rebuilt when any of them changes
(`ulib.eval.reference`).

The fields every record shares and the paper's figures: `ulib.eval.recipe`; the records and their Markdown
tables: `ulib.eval.records`.
"""
from __future__ import annotations

import math
import time

import torch

from ulib.device import configure_matmul, resolve_device, sampling_dtype
from ulib.eval import records
from ulib.eval import scoring as S
from ulib.eval.extractors import extract_features, load_inception
from ulib.eval.memorisation import memorisation as memorisation_figures
from ulib.eval.metrics import fid_against, fid_method, nearest_neighbours, save_neighbours_grid
from ulib.eval.recipe import PAPER_N_SAMPLES, checkpoint_step, common_record, paper_results
from ulib.eval.reconstruction import codebook_usage, lpips_distance, psnr, ssim
from ulib.eval.reference import REFERENCE_SUBSET_SEED, reference_indices, reference_set, split_loader
from ulib.models import load_run, load_vqgan
from ulib.sample.api import sample_images
from ulib.train.common import progress
from ulib.vq.chunked import decode_chunked, encode_chunked
from ulib.vq.perceptual import load_lpips

PRDC_K = 5  # Naeem et al. (2020) recommend k = 5; the official calc_PRDC.py used nearest_k=3 (PAPER_PRDC_K)
CUDA_BATCH_SIZE = 256  # default images per sampling / feature batch on a GPU (32 elsewhere)
SAMPLER = "random-order absorbing reverse process with even step skipping (ulib.sample.api.sample_images)"
BATCH_SEEDS = ("batch i samples with seed s_i, s = torch.randint(2**62, (n_batches,), "
               "generator=torch.Generator().manual_seed(seed))")
SSIM_RECIPE = "Gaussian window 11 (sigma 1.5, shrunk to fit), K1 0.01, K2 0.03, [0, 1] scale, valid positions only"
PSNR_RECIPE = "per image on the [0, 1] scale (capped at 100 dB), averaged over images"

HELP = "FID/PRDC/KID/IS of samples, or rFID/PSNR/SSIM/LPIPS of the VQGAN (paper Tables 1, 2, 5)"
DESCRIPTION = (
    "Evaluate a run as the paper's tables do. Without --vqgan: sample N images (default 50,000, as in the paper) "
    "and compute FID, Precision, Recall, Density, Coverage, KID and IS against the reference split on "
    "InceptionV3 features (torch-fidelity, prdc). With --vqgan: reconstruction FID, PSNR, SSIM, LPIPS and "
    "codebook usage on a split. Appends a record to RUN/evaluation.jsonl and rewrites RUN/evaluation.md. "
    "Nothing is downloaded: the InceptionV3 file weights-inception-2015-12-05-6726825d.pth (and LPIPS's "
    "vgg16-397923af.pth) come from --weights-dir, $ULIB_WEIGHTS_DIR or the torch hub cache, and must be the "
    "released files (SHA-256 checked; --allow-unverified-weights loads another copy as plain tensors, labelled "
    "official_weights: false); --features random-inception needs no file (figures labelled as such, not "
    "comparable with the paper).")


def _load_lpips(weights_dir, device, notes: list, what: str, allow_unverified: bool = False):
    """LPIPS, or None with a note when its file is missing (a file that is there but refused still raises)."""
    try:
        return load_lpips(weights_dir, device, allow_unverified=allow_unverified)
    except FileNotFoundError as e:
        notes.append(f"{what} skipped: {e}")
        return None


# ---- samples (Tables 1, 2) ---------------------------------------------------------------------------
def evaluate_samples(run, cfg, *, n: int = PAPER_N_SAMPLES, steps: int | None = None, temperature: float | None = None,
                     features: str = "inception", reference: str = "train", weights_dir=None, seed: int = 0,
                     batch_size: int = 32, use_ema: bool = True, prdc_k: int = PRDC_K, max_reference: int | None = None,
                     neighbours: int = 0, neighbours_k: int = 10, device=None, show_progress: bool = True,
                     allow_unverified: bool = False, memorisation: bool = False) -> dict:
    """Sample n images from the run's prior in batches, straight into InceptionV3, and compare them with the
    reference split: one record (see the module docstring). allow_unverified: accept weights files that are not
    the released ones (`ulib.io.weights`). memorisation: also how close the samples come to the training images
    against how close the validation images (never trained on) come (`ulib.eval.memorisation`: near-copy share,
    distance ratio, Meehan et al.'s C_T), and the FID against the validation split beside the training split's."""
    t0 = time.perf_counter()
    absorbing = cfg.prior.kind == "absorbing"
    T = cfg.prior.total_steps
    steps = (steps or cfg.sample.steps or T) if absorbing else None
    temperature = temperature if temperature is not None else cfg.sample.temperature
    if absorbing and not 1 <= steps <= T:
        raise ValueError(f"--steps={steps}; allowed: 1..T={T}")
    if memorisation and reference != "train":
        raise ValueError(f"--memorisation compares samples with the training images; --reference={reference} "
                         "cannot be used with it (allowed: train, the default)")
    if temperature <= 0:
        raise ValueError(f"--temperature={temperature}; must be > 0")
    if n <= prdc_k + 1:  # each point's k-th neighbour other than itself: k + 1 others at least
        raise ValueError(f"--samples={n}; PRDC with k={prdc_k} needs at least {prdc_k + 2} samples")

    # first: a missing or refused weights file stops us early
    inception = load_inception(features, weights_dir, device, allow_unverified=allow_unverified)
    lp = load_lpips(weights_dir, device, allow_unverified=allow_unverified) if neighbours > 0 else None
    prior_path = run.prior_ckpt_for(cfg.prior.kind)
    models = load_run(run, device, use_ema=use_ema, cfg=cfg)  # before the reference: a mismatched pair stops here
    real, ref_key, real_moments = reference_set(run, cfg, inception, reference, max_reference, batch_size,
                                                     show_progress)

    n_batches = math.ceil(n / batch_size)
    seeds = torch.randint(2**62, (n_batches,), generator=torch.Generator().manual_seed(seed)).tolist()
    kept: list[torch.Tensor] = []  # the first samples, for the nearest-neighbour grid

    def batches():
        for i, s in enumerate(seeds):
            images = sample_images(models, min(batch_size, n - i * batch_size), seed=s, steps=steps,
                                   temperature=temperature)
            if sum(len(k) for k in kept) < neighbours:
                kept.append(images.cpu())
            yield images

    with progress(n, 0, "samples -> features", show_progress) as bar:
        fake = extract_features(inception, batches(), bar)

    # PRDC compares equal-sized sets, as the official script did: the first n of a fixed shuffle of the reference
    g = torch.Generator().manual_seed(REFERENCE_SUBSET_SEED)
    real_prdc = real[torch.randperm(len(real), generator=g)[: len(fake[inception.pool])]]
    recipe = S.Recipe(real, real_moments, real_prdc, fake[inception.pool], fake[inception.logits], prdc_k)
    record = common_record("samples", run, cfg, inception, ref_key, device, use_ema)
    record.update({
        "prior_kind": cfg.prior.kind, "prior_checkpoint": str(prior_path), "prior_step": checkpoint_step(prior_path),
        "n_samples": n, "steps": steps, "total_steps": T, "temperature": temperature,
        "sampler": SAMPLER if absorbing else "autoregressive, raster order", "seed": seed, "batch_size": batch_size,
        "batch_seeds": BATCH_SEEDS,
        "n_reference_features": len(real), "sampling_dtype": str(sampling_dtype(torch.device(device))),
        **S.record_figures(recipe, inception.features),  # FID, PRDC (the paper's), then KID, IS
        "paper": paper_results(cfg, features),
    })
    if memorisation:
        record.update(_memorisation(run, cfg, inception, fake[inception.pool], real, batch_size, show_progress))
    if neighbours > 0:
        record.update(_neighbours(run, cfg, torch.cat(kept)[:neighbours], reference, ref_key, neighbours_k, lp,
                                  device, batch_size, show_progress))
    record["wall_s"] = round(time.perf_counter() - t0, 2)
    return record


MEMORISATION_KEYS = ("n_test_used", "sample_to_train_median", "test_to_train_median", "median_ratio",
                     "sample_exact_copies", "test_exact_copies", "near_copy_share", "near_copy_share_lo",
                     "near_copy_share_hi", "near_copy_share_p5", "near_copy_share_p5_lo", "near_copy_share_p5_hi",
                     "c_t", "c_t_cells_used")


def _memorisation(run, cfg, inception, fake, train, batch_size, show_progress) -> dict:
    """Memorisation in the feature space: the samples' nearest training images (the training reference's
    features) against the held-out split's (test when the run has one, else validation), and the FID against
    that split beside the one against train."""
    held = "test" if cfg.data.test_fraction > 0 else "val"
    ref, ref_key, ref_moments = reference_set(run, cfg, inception, held, None, batch_size, show_progress)
    m = memorisation_figures(fake, train, ref)
    out = {f"memorisation_{k}": m[k] for k in MEMORISATION_KEYS}
    split = {"family": "family split: an emoji's variants and identical renders share a side",
             "group": f"group split: files with one data.group_pattern={cfg.data.group_pattern!r} key share a side",
             }.get(cfg.data.split_by, "random split: variants of one design may sit on both sides")
    what = "test split, images no model saw" if held == "test" else "validation split, images never trained on"
    out.update({"memorisation_baseline": f"{what}: {ref_key['n']} ({split})", "memorisation_split": held,
                f"n_{held}_reference": len(ref), f"fid_vs_{held}": fid_against(ref, ref_moments, fake)})
    return out


def _neighbours(run, cfg, queries, split, ref_key, k, lp, device, batch_size, show_progress) -> dict:
    """Supplementary C: the k reference images nearest to each query by LPIPS, as RUN/nearest_neighbours.png."""
    indices = reference_indices(ref_key["n_split"], ref_key["n"] if ref_key["subset_seed"] is not None else None)
    with progress(len(indices), 0, "nearest neighbours (LPIPS)", show_progress) as bar:
        nn = nearest_neighbours(queries.to(device), split_loader(cfg, split, indices, batch_size),
                                lambda x, y: lpips_distance(lp, x, y), k=k, progress=bar)
    png = run.path / "nearest_neighbours.png"
    save_neighbours_grid(queries, nn, png)
    return {"neighbours_png": str(png), "neighbours_k": k, "neighbours_n": len(queries),
            "neighbours_distance": "LPIPS-VGG (ulib.vq.perceptual.load_lpips)",
            "neighbours_lpips_mean": float(nn.distances[:, 0].mean())}


# ---- the VQGAN (Table 5) -----------------------------------------------------------------------------
def evaluate_vqgan(run, cfg, *, n: int | None = None, features: str = "inception", reference: str = "val",
                   weights_dir=None, batch_size: int = 32, use_ema: bool = True, max_reference: int | None = None,
                   device=None, show_progress: bool = True, allow_unverified: bool = False) -> dict:
    """Reconstruct n images of `reference` (default all of it): rFID (originals vs reconstructions), PSNR, SSIM,
    LPIPS (skipped with a note without its weights) and codebook usage; one record. allow_unverified: accept
    weights files that are not the released ones (`ulib.io.weights`)."""
    t0 = time.perf_counter()
    if n is not None and max_reference is not None and n != max_reference:
        raise ValueError("with --vqgan, --samples is the number of images of the split; drop --max-reference")
    n = n or max_reference
    inception = load_inception(features, weights_dir, device, allow_unverified=allow_unverified)
    lpips_notes: list[str] = []  # LPIPS before the reference features too: a refused file stops us early
    lp = _load_lpips(weights_dir, device, lpips_notes, "LPIPS", allow_unverified)
    real, ref_key, real_moments = reference_set(run, cfg, inception, reference, n, batch_size, show_progress)
    vqgan = load_vqgan(run, device, use_ema, cfg=cfg)
    record = common_record("vqgan", run, cfg, inception, ref_key, device, use_ema)
    record["notes"] += lpips_notes
    indices = reference_indices(ref_key["n_split"], ref_key["n"])  # the reference's own images
    counts = torch.zeros(cfg.vqgan.codebook_size, dtype=torch.long)
    per_image: dict[str, list] = {"psnr": [], "ssim": [], "lpips": []}
    recon = []
    with torch.no_grad(), progress(len(indices), 0, "reconstructions", show_progress) as bar:
        for x in split_loader(cfg, reference, indices, batch_size):
            x = x.to(device)
            tokens = encode_chunked(vqgan, x)  # (B, h, w), in chunks that fit the free memory
            x_hat = decode_chunked(vqgan, tokens).clamp(-1, 1)
            counts += torch.bincount(tokens.flatten().cpu(), minlength=cfg.vqgan.codebook_size)
            per_image["psnr"].append(psnr(x_hat, x).cpu())
            per_image["ssim"].append(ssim(x_hat, x).cpu())
            if lp is not None:
                per_image["lpips"].append(lpips_distance(lp, x_hat, x).cpu())
            recon.append(inception(x_hat)[inception.pool])
            bar.update(x.shape[0])
    means = {k: (float(torch.cat(v).mean()) if v else None) for k, v in per_image.items()}
    record.update({
        "n_images": len(indices), "batch_size": batch_size, "rfid": fid_against(real, real_moments, torch.cat(recon)),
        "fid_method": "streamed moments" if real_moments else fid_method(len(real), len(real), real.shape[1]),
        "psnr": means["psnr"], "ssim": means["ssim"], "lpips": means["lpips"],
        "psnr_recipe": PSNR_RECIPE, "ssim_recipe": SSIM_RECIPE,
        "lpips_net": "vgg" if lp is not None else None, **codebook_usage(counts),
    })
    record["wall_s"] = round(time.perf_counter() - t0, 2)
    return record


def evaluate_and_record(run, cfg, *, vqgan: bool = False, samples: int | None = None, steps: int | None = None,
                        temperature: float | None = None, features: str = "inception", weights_dir=None,
                        allow_unverified: bool = False, batch_size: int | None = None, use_ema: bool = True,
                        max_reference=None, device=None, reference: str | None = None, seed: int = 0,
                        prdc_k: int = PRDC_K, neighbours: int = 0, neighbours_k: int = 10, memorisation: bool = False,
                        show_progress: bool = True, log=print) -> dict:
    """`python -m ulib evaluate`: the VQGAN's reconstructions (vqgan=True) or the prior's samples measured, the
    record appended to RUN/evaluation.jsonl and its table, and a summary said by `log`. Returns the record."""
    device = resolve_device(device or cfg.device)
    configure_matmul(device)  # TF32 on CUDA
    batch_size = batch_size or (CUDA_BATCH_SIZE if device.type == "cuda" else 32)
    common = dict(features=features, weights_dir=weights_dir, allow_unverified=allow_unverified,
                  batch_size=batch_size, use_ema=use_ema, max_reference=max_reference, device=device,
                  show_progress=show_progress)
    if vqgan and memorisation:
        raise ValueError("--memorisation measures samples; with --vqgan there are none (drop one of them)")
    if vqgan:
        record = evaluate_vqgan(run, cfg, n=samples, reference=reference or "val", **common)
    else:
        record = evaluate_samples(run, cfg, n=samples or PAPER_N_SAMPLES, steps=steps, temperature=temperature,
                                  reference=reference or "train", seed=seed, prdc_k=prdc_k, neighbours=neighbours,
                                  neighbours_k=neighbours_k, memorisation=memorisation, **common)
    jsonl, md = records.record_evaluation(run.path, record)
    log(records.summary(record))
    if "memorisation_c_t" in record:
        log(records.memorisation_summary(record))
    for note in record["notes"]:
        log(f"note: {note}")
    log(f"records: {jsonl}; table: {md}")
    return record
