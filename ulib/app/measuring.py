"""What the notebooks measure with: sample sets, the quality meter with its noise floor on held-out images,
memorisation checks, and image sets scored side by side (`ulib.eval.quality` underneath). The images they measure
come from the run's splits, named in `ulib.app.splits`."""
from __future__ import annotations

import time

import torch

from ulib.app.outputs import save_grid, show, show_table, write_table
from ulib.app.session import Session
from ulib.app.splits import has_test_split, split_images, split_name, split_names, split_tokens, varied_images
from ulib.data.datasets import build_dataset
from ulib.data.openmoji import load_openmoji
from ulib.eval import extractors as X
from ulib.eval import features as EF
from ulib.eval.extractors import to_uint8
from ulib.eval.intervals import DEFAULT_DRAWS
from ulib.eval.memorisation import memorisation_report
from ulib.eval.quality import QualityMeter, extract, with_floor
from ulib.sample.api import sample_tokens
from ulib.vq.chunked import decode_chunked

# the split helpers are re-exported for the notebooks (measuring.split_images, ...); their home is ulib.app.splits
__all__ = ["reconstruct", "QUALITY_SIZES", "QUALITY_SIZES_GPU", "TEMPERATURE_SAMPLES", "quality_sizes", "sample_set",
           "run_quality", "SET_COLUMNS", "score_sets", "feature_space_name", "quality_meter", "outside_reference",
           "openmoji_space", "memorisation", "quality_meter_on_test",
           "has_test_split", "split_images", "split_name", "split_names", "split_tokens", "varied_images"]


@torch.no_grad()
def reconstruct(vq, images: torch.Tensor, device, batch_size: int = 100) -> torch.Tensor:
    """VQGAN reconstructions (encode, quantise, decode) of uint8 images (N, 3, H, W), as uint8 on the CPU."""
    out = [vq(images[i: i + batch_size].float().div(127.5).sub(1).to(device))[0].clamp(-1, 1).float().cpu()
           for i in range(0, len(images), batch_size)]
    return to_uint8(torch.cat(out))


# ---- sample quality (ulib.eval.quality) ---------------------------------------------------------------
# Samples per setting, reference images and bootstrap draws of the quality notebooks (04, 05, 07, 12), by
# profile: smoke keeps CI in seconds; demo fits the CPU (a few minutes per notebook on 2 cores); the paper
# profiles, on a GPU, use more (the paper's own figures use 50,000 samples: `python -m ulib evaluate`).
# n_half: images in each half of the real set for notebook 12's metric checks.
# draws: bootstrap resamples behind every ± and p (features are computed once, so a draw costs about one FID;
# smoke keeps CI fast, every other profile uses ulib.eval.intervals.DEFAULT_DRAWS = 200).
QUALITY_SIZES = {"smoke": dict(n_samples=40, n_reference=400, draws=20, n_half=200),
                 "demo": dict(n_samples=300, n_reference=2000, draws=DEFAULT_DRAWS, n_half=500),
                 "study": dict(n_samples=300, n_reference=2000, draws=DEFAULT_DRAWS, n_half=500)}


QUALITY_SIZES_GPU = dict(n_samples=2000, n_reference=10_000, draws=DEFAULT_DRAWS, n_half=800)


# Samples per temperature in Fig. 6 (notebook 07), more than n_samples where the CPU allows: its bias figures are
# shares, whose 95 % Wilson interval near 55 % is about ±3.4 points at n = 800 (±5.6 at 300); the demo's test
# split (1,108 images) holds a floor of that n. Demo: 6 temperatures x 800 samples at 64 steps cost about 5.5 min
# of sampling on 2 cores (94 ms per image measured on one core, about 70 ms on two: an estimate); 1,000 would
# take about 7 min of sampling and keep the notebook near 10 min.
TEMPERATURE_SAMPLES = {"smoke": 40, "demo": 800, "study": 800}


def quality_sizes(s: Session, n_samples: int = 0) -> dict:
    """{'n_samples', 'n_reference', 'draws', 'n_half', 'n_temperature'} for the session's profile; n_samples > 0
    overrides the profile's n_samples and n_temperature."""
    sizes = dict(QUALITY_SIZES.get(s.cfg.profile, QUALITY_SIZES_GPU))
    sizes["n_temperature"] = TEMPERATURE_SAMPLES.get(s.cfg.profile, sizes["n_samples"])
    if n_samples:
        sizes["n_samples"] = sizes["n_temperature"] = n_samples
    return sizes


@torch.no_grad()
def sample_set(s: Session, vq, net, n: int, *, steps: int, temperature: float, method: str = "random",
               seed_offset: int = 0, batch_size: int = 250) -> tuple[torch.Tensor, torch.Tensor, float]:
    """n samples of the prior `net` decoded by `vq`: (images (n, 3, H, W) in [-1, 1] on the CPU, tokens (n, L),
    seconds per image), drawn in batches with `ulib.sample.api.sample_tokens`, seeded by the session's seed +
    seed_offset (one generator for the whole set). An autoregressive prior samples token by token (its kind
    decides; steps and method do not apply to it), so the same seed_offset gives two priors common seeds."""
    cfg, g = s.cfg, s.generator(seed_offset)
    images, tokens = [], []
    t0 = time.perf_counter()
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        tok = sample_tokens(net, method=method, n=b, length=cfg.latent_size ** 2,
                            num_timesteps=cfg.prior.total_steps,
                            mask_id=cfg.mask_id, steps=steps, temperature=temperature, generator=g, device=s.device)
        images.append(decode_chunked(vq, tok).clamp(-1, 1).float().cpu())
        tokens.append(tok.cpu())
    if s.device.type == "cuda":
        torch.cuda.synchronize(s.device)
    return torch.cat(images), torch.cat(tokens), (time.perf_counter() - t0) / n


def run_quality(s: Session, vq, net, meter, n: int, draws: int) -> tuple[list[dict], dict]:
    """The run's quality in one table (notebooks 01 and 12): n held-out real images (the noise floor: the first
    n of `meter.holdout`, the test split when the run has one), their VQGAN reconstructions, and n prior samples
    at the profile's sampling settings, each scored by `meter` (a `ulib.eval.quality.QualityMeter`) with `draws`
    bootstrap draws and the floor's figures beside. Each row names its images exactly ('images', from
    `meter.holdout_name`) and the reference they are scored against ('reference', `meter.reference_name`).
    Returns (rows, {set: uint8 images}) in the rows' order: floor, reconstructions, samples."""
    real = meter.holdout[:n]  # uint8
    recon = reconstruct(vq, real, s.device)
    temp, steps = s.cfg.sample.temperature, s.cfg.sample.steps or s.cfg.prior.total_steps
    samples, _, _ = sample_set(s, vq, net, n, steps=steps, temperature=temp)
    floor = meter.floor(n, draws=draws, seed=s.seed)
    held = getattr(meter, "holdout_name", "held-out real images")
    real_set = "test images (the floor)" if has_test_split(s) else "held-out real images (the floor)"
    sets = ((real_set, f"the first {n} of {held}", real),
            ("VQGAN reconstructions", f"the VQGAN's reconstructions of those {n} images", recon),
            (f"prior samples (t = {temp}, {steps} steps)",
             f"{n} samples of the prior (seed {s.seed}), decoded by the VQGAN", to_uint8(samples)))
    reference = getattr(meter, "reference_name", f"{meter.n_reference} reference images")
    scored = [floor] + [meter.score(x, draws=draws, seed=s.seed) for _, _, x in sets[1:]]  # the floor: row 0
    rows = [with_floor({"set": name, "images": what, "reference": reference, **score}, floor)
            for (name, what, _), score in zip(sets, scored)]
    for r in rows:  # the samples' row: how much the prior loses on top of the decoder
        r["fid_over_reconstructions"] = r["fid"] / rows[1]["fid"]
    return rows, {name: x for name, _, x in sets}


SET_COLUMNS = ("set", "n", "fid", "fid_std", "floor_fid", "precision", "recall", "density", "coverage")


def score_sets(s: Session, meter, sets: dict, draws: int, table: str, picture: str, **fields) -> list[dict]:
    """Score image sets of one size n side by side (notebooks 08 and 09): each of `sets` {name: uint8 images
    (n, 3, H, W)} by `meter` with `draws` bootstrap draws, beside the noise floor at n; `fields` are copied into
    every row. Writes RUN/results/TABLE.csv and shows it, and RUN/results/PICTURE.png: the first 8 images of each
    set, one row per set."""
    sizes = {name: len(x) for name, x in sets.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"score_sets: sets of different sizes {sizes}; the floor is scored at one n")
    floor = meter.floor(next(iter(sizes.values())), draws=draws, seed=s.seed)
    rows = [with_floor({"set": name, **fields, **meter.score(x, draws=draws, seed=s.seed)}, floor)
            for name, x in sets.items()]
    write_table(s, rows, table)
    show_table(rows, [*SET_COLUMNS[:1], *fields, *SET_COLUMNS[1:]])
    show(save_grid(s, torch.cat([x[:8] for x in sets.values()]).float().div(127.5).sub(1), picture, nrow=8))
    print("picture rows: " + "; ".join(sets))
    return rows


def feature_space_name(s: Session, features: str = "auto") -> str:
    """'auto': the kit's offline 'openmoji' space for the built-in dataset, else standard 'inception'."""
    if features != "auto":
        return features
    return "openmoji" if s.cfg.data.dataset == "openmoji" else "inception"


def quality_meter(s: Session, n_reference: int = 2000, features: str = "auto", *, space=None):
    """A `ulib.eval.quality.QualityMeter` for the run's data. The reference is a fixed random subset of
    n_reference training images (the paper scores samples against the training set). The held-out images of
    the noise floor (`meter.floor(n)`) are the test split, in a seeded order: families of emoji no model (VQGAN or
    prior) ever saw and that no checkpoint was chosen on. A run without a test split (data.test_fraction = 0,
    runs made before #22) falls back to the training images outside the reference, then the validation
    images, which the VQGAN saw: `meter.holdout_name` says which it is. Seeded by the session's seed.
    space: a `ulib.eval.extractors.FeatureSpace` to measure in instead of `features` (e.g. `openmoji_space`)."""
    train = build_dataset(s.cfg.data, "train", train_transforms=False)
    if n_reference >= len(train):
        raise ValueError(f"n_reference={n_reference}: the training split has only {len(train)} images; "
                         f"leave some out")
    perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(s.seed)).tolist()
    images = lambda ds, idx: X.to_uint8(torch.stack([ds[i] for i in idx]))
    reference = images(train, perm[:n_reference])
    if has_test_split(s):
        holdout = split_images(s, "test")
        name = f"the test split ({len(holdout)} images of families no model saw)"
    else:
        val = build_dataset(s.cfg.data, "val", train_transforms=False)
        holdout = torch.cat([images(train, perm[n_reference:]), images(val, range(len(val)))])
        name = (f"{len(train) - n_reference} training images outside the reference, then {len(val)} validation "
                "images (no test split in this run: the VQGAN saw them, so the floor is optimistic)")
    space = space if space is not None else X.load_inception(feature_space_name(s, features), device=s.device)
    meter = QualityMeter(space, reference, holdout)
    meter.holdout_name = name
    meter.reference_index = perm[:n_reference]  # indices into the training split
    meter.outside_reference_index = perm[n_reference:]  # `outside_reference`: the reference's mix, not in it
    meter.reference_name = f"{n_reference} training images (a fixed random subset, seed {s.seed})"
    return meter


def outside_reference(s: Session, meter, n: int) -> torch.Tensor:
    """n training images outside `meter`'s reference (uint8, the seeded order `quality_meter` drew the reference
    from): real images of the reference's own category mix at the same n. The floor for a bias figure (a share
    of categories): test images are whole families, so their mix may differ from the training split's by
    more than sampling noise, which a bias read against them would count. (The models saw these images: use
    them for category shares, never for FID.)"""
    index = getattr(meter, "outside_reference_index", None)
    if index is None:
        raise ValueError("outside_reference: this meter was not made by measuring.quality_meter (it has no "
                         "outside_reference_index)")
    if n > len(index):
        raise ValueError(f"outside_reference: n={n}, but only {len(index)} training images lie outside the "
                         f"reference of {meter.n_reference}; lower n or n_reference")
    train = build_dataset(s.cfg.data, "train", train_transforms=False)
    return X.to_uint8(torch.stack([train[i] for i in index[:n]]))


def _memorisation_sets(s: Session, meter) -> tuple[torch.Tensor, torch.Tensor]:
    """(every training image, every test image (or, without a test split, every validation image)), uint8, loaded
    once per meter: the same two splits for every sample set of a notebook."""
    cached = getattr(meter, "_memorisation_sets", None)
    if cached is None:
        cached = meter._memorisation_sets = (split_images(s, "train"),
                                             split_images(s, "test" if has_test_split(s) else "val"))
    return cached


def openmoji_space(s: Session, recipe: EF.FeatureRecipe, without: tuple[str, ...] = ("test",),
                   show_progress: bool = False):
    """The OpenMoji feature space trained by `recipe` on every emoji except those of the run's `without` splits
    (() : every emoji, test families included, as the shipped weights), in RUN/features/<all | without_test>/, and
    trained once: again only when the recipe or the emoji it would train on differ. Returns (FeatureSpace, the
    training report, with 'train_seconds': how long the training took, where it was trained)."""
    _, all_names = load_openmoji(recipe.size, s.cfg.data.cache_dir)
    left_out = {n for split in without for n in split_names(s, split)}
    names = [n for n in all_names if n not in left_out] if without else None
    digest = EF.names_digest([all_names[i] for i in EF.training_items(all_names, names, recipe.limit)])
    folder = s.run.path / "features" / ("without_" + "_".join(without) if without else "all")
    path = folder / EF.WEIGHTS_FILE
    report = EF.load_feature_net(path)[1] if path.exists() else None
    if report is None or report.get("recipe") != recipe.to_dict() or report.get("names_sha256") != digest:
        t0 = time.perf_counter()
        net, report = EF.train_feature_net(recipe, s.cfg.data.cache_dir, show_progress=show_progress, names=names)
        report["train_seconds"] = time.perf_counter() - t0
        EF.save_feature_net(net, report, path)
        print(f"feature net in {folder.name}: trained on {report['n_emoji']} emoji ({report['train_seconds']:.0f}s)")
    return X.load_inception("openmoji", weights_dir=folder, device=s.device), report


def memorisation(s: Session, meter, images: torch.Tensor, *, seed: int = 0):
    """`ulib.eval.memorisation.memorisation_report` of a sample set: every sample's nearest training image (all
    of the run's training split) in the meter's feature space and in pixels, against the same distances of the
    test images (or, without a test split, the validation images), with FID against train and against that
    held-out split. Returns (report, training images) so that `nearest_pairs_grid` can show the pairs. The two
    splits, their features, the test-to-train distances and the k-means cells of C_T are cached on the meter: a
    further sample set costs its own features and distances only."""
    train, held = _memorisation_sets(s, meter)
    feats = getattr(meter, "_memorisation_features", None)  # extracted once, for every sample set scored
    if feats is None:
        feats = meter._memorisation_features = (extract(meter.space, train)[0], extract(meter.space, held)[0], {})
    report = memorisation_report(meter.space, images, train, held, seed=seed, train_features=feats[0],
                                 test_features=feats[1], cache=feats[2])
    return report, train


def quality_meter_on_test(s: Session, meter) -> QualityMeter:
    """A second `QualityMeter` in `meter`'s feature space whose reference is every test image (families no model
    saw; without a test split, every validation image): FID against images no model trained on, where a sample
    earns nothing for matching one particular training image, only for resembling the distribution (as a copy
    also does: read it beside `memorisation`). Its `reference_name` names the set.
    Differences between sample sets (`difference`) are read within one meter: FID falls as the reference grows,
    so figures of this meter and of `meter` (another reference size) are not compared with each other."""
    test = QualityMeter(meter.space, _memorisation_sets(s, meter)[1])
    test.reference_name = split_name(s, "test" if has_test_split(s) else "val")
    return test
