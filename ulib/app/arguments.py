"""The flags of every subcommand of `python -m ulib`, one function per subcommand (`ulib.app.cli` lists them).

Each `add_NAME(sub)` adds the subcommand's parser to `sub` (argparse subparsers) with its help, description and
arguments; the shared groups (a run, training, sampling) are in `ulib.app.flags`. Help texts are read by users and
by tests: change them deliberately.
"""
from __future__ import annotations

import argparse

from ulib.app import flags as F
from ulib.app import reproduce
from ulib.app.commands import BATCH_SIZE, MAX_GRID
from ulib.device import PRECISIONS
from ulib.eval import compare, evaluate, extractors, recipe, records, reference
from ulib.profiles import PROFILES
from ulib.sample import registry


def add_train_vqgan(sub) -> None:
    p = sub.add_parser("train-vqgan", help="stage 1: train the VQGAN (codebook, encoder, decoder)",
                       description="Stage 1: train the VQGAN of a run (paper section 3.1).")
    F.training(p)


def add_encode(sub) -> None:
    p = sub.add_parser("encode", help="encode the dataset into token grids with the trained VQGAN",
                       description="Encode train/validation images into cached token grids (run/latents.pt).")
    F.common(p, data=True)
    p.add_argument("--force", action="store_true", help="re-encode even if the cache is up to date")


def add_train_prior(sub) -> None:
    p = sub.add_parser("train-prior", help="stage 2: train the absorbing diffusion prior",
                       description="Stage 2: train the absorbing diffusion prior on the run's token grids.")
    F.training(p)


def add_sample(sub) -> None:
    p = sub.add_parser("sample", help="draw images from the trained prior and decode them",
                       description="Sample token grids with the reverse absorbing process and decode them. "
                                   "Models come from --run DIR, or from the paper's released files "
                                   "(--official-vqgan and --official-sampler).")
    F.common(p, run_required=False)
    F.sampling(p)
    p.add_argument("--n", type=int, default=None, help="number of images (default: sample.n)")
    p.add_argument("--method", choices=registry.choices() + registry.choices("autoregressive"), default="random",
                   help=registry.method_help("random"))
    p.add_argument("--option", dest="options", action="append", default=[], metavar="KEY=VALUE",
                   help="a setting of the chosen --method, e.g. --method halton --option shift=false or --method eb "
                        "--option gamma=2 (repeatable; the settings and their defaults are listed under --method)")
    p.add_argument("--canvas", default=None, metavar="HxW",
                   help="sample a latent canvas larger than the training grid, e.g. 24x32 (Eq. 8: predictions "
                        "averaged over every window)")
    p.add_argument("--stride", type=int, default=1, help="window stride for --canvas (default 1)")
    p.add_argument("--top-k", type=int, default=None, help="top-k filtering (autoregressive prior only)")
    p.add_argument("--compile", action="store_true",
                   help="run the prior through torch.compile(dynamic=False), one graph per input shape: pair it with "
                        "--method random --option fixed_shape=true (every pass at one shape); compiling takes a while "
                        "and needs a C compiler on a CPU")
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE,
                   help=f"images per call of the sampler (default {BATCH_SIZE}); the same seed gives the same images "
                        "for the same batch size")
    p.add_argument("--npz", default=None, metavar="FILE",
                   help=f"also write all images as uint8 (n, H, W, 3) under 'images' (what `compare` reads); needed "
                        f"for --n above {MAX_GRID}, the most one PNG grid shows")


def add_inpaint(sub) -> None:
    p = sub.add_parser("inpaint", help="regenerate the masked region of an image (paper Fig. 7)",
                       description="Encode an image, mask the tokens under the white part of --mask, regenerate "
                                   "them with the absorbing prior and decode. Writes input | masked | result.")
    F.common(p, run_required=False)
    F.sampling(p)
    p.add_argument("--image", required=True, metavar="FILE",
                   help="the image to edit (resized/cropped to the model's size)")
    p.add_argument("--mask", required=True, metavar="FILE", help="a mask image: white (> 50%% grey) = regenerate")
    p.add_argument("--dilate", type=int, default=0, help="grow the latent mask by this many cells (default 0)")
    p.add_argument("--paste-back", action="store_true", help="keep the original pixels outside the mask")


def add_elbo(sub) -> None:
    p = sub.add_parser("elbo", help="validation likelihood in bits per token (ELBO, or the AR model's exact NLL)",
                       description="Negative ELBO (Eq. 6) of the run's prior on the validation token grids, in bits "
                                   "per token: the full sum over t = 1..T, or a Monte-Carlo estimate with --mc N "
                                   "(with its standard error). For an autoregressive run, the exact NLL. The figure "
                                   "is also written to RUN/likelihood.json.")
    F.common(p)
    p.add_argument("--mc", type=int, default=None, metavar="N",
                   help="draw N random t per grid instead of summing all T terms (T/N times cheaper)")
    p.add_argument("--max-items", type=int, default=None, help="evaluate at most this many validation grids")
    p.add_argument("--batch-size", type=int, default=64, help="grids per forward pass (default 64)")
    p.add_argument("--seed", type=int, default=0, help="seed of the x_t (and t) draws (default 0)")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA weights")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="the prior's forward passes: bf16 autocast, fp32, or auto (default: bf16 on GPUs with native "
                        "bf16, else fp32); the cross-entropies are taken in fp32 either way, and fp32 matmuls use "
                        "TF32 on CUDA as in training. Recorded in RUN/likelihood.json")


def add_bench(sub) -> None:
    p = sub.add_parser("bench", help="speed figures of the prior's samplers and training, as a table (and JSON)",
                       description="Time per image of absorbing sampling (several step counts and methods, "
                                   "against the paper's sampler written plainly), AR sampling with and without "
                                   "the KV cache, big-image sampling, training steps/s, and the machine's matmul "
                                   "rate, at a mid-size model (8 layers, width 256, 16x16 latents, codebook 1024).")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the figures as a list of records")
    p.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda', ... (default auto)")
    p.add_argument("--quick", action="store_true", help="a tiny model: checks the bench runs (numbers meaningless)")
    p.add_argument("--only", nargs="+", metavar="GROUP",
                   help="run only these groups: forward (matmul rate, forward pass), absorbing (samplers vs the "
                        "paper's), ar (KV cache), bigimage (Eq. 8 canvases), training (default: all of these), "
                        "speculative (opt-in: speculative AR sampling by block size, see --spec-run), paths "
                        "(opt-in: q/k/v fused or not, random sampling's fixed_shape pass, bf16 on CUDA)")
    p.add_argument("--spec-run", default=None, metavar="RUN",
                   help="with --only speculative: time the priors of this run (its prior_ar.pt, and prior.pt as the "
                        "draft) instead of random models")
    p.add_argument("--no-ar-plain", action="store_true",
                   help="skip the uncached AR sampler (minutes on a CPU at L=256)")


def add_gpu_check(sub) -> None:
    p = sub.add_parser("gpu-check", help="every CUDA path once at the paper's sizes, with throughput and memory "
                                         "as JSON (make gpu-check)",
                       description="Train both stages a few steps (GAN on, stop and resume), encode, sample with "
                                   "each method in fp32 and bf16, the sampler alone at batch 16 and 256, a decode "
                                   "of 256 images, the AR cache, a big canvas, inpainting, evaluation features and "
                                   "a one-process NCCL group with DDP, on synthetic 256x256 images at the paper's "
                                   "model sizes; prints images/s, tokens/s, samples/s, peak memory, FLOPs per "
                                   "forward, passes per image, achieved TFLOP/s and its fraction of the measured "
                                   "and nominal bf16 peak, the torch/CUDA used and the fallbacks taken, as JSON "
                                   "(about 5 minutes on one H200). Runs on a GPU machine's own torch (README: "
                                   "GPUs). --tiny: smoke sizes, for CPUs and tests.")

    p.add_argument("--tiny", action="store_true", help="smoke sizes (CPU, seconds): checks the script runs")
    p.add_argument("--device", default="auto", help="'auto', 'cuda', 'cpu', ... (default auto)")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the record to FILE")
    p.add_argument("--workdir", default=None, metavar="DIR",
                   help="where the synthetic images and the run go (default: a temporary folder, removed)")


def add_pipeline(sub) -> None:
    p = sub.add_parser("pipeline", help="run every stage: train-vqgan, encode, train-prior, sample (make demo)",
                       description="Run the whole method; stages whose outputs exist are reused.")
    F.common(p, data=True)
    p.add_argument("--resume", action="store_true", help="continue unfinished checkpoints")
    p.add_argument("--force", action="store_true", help="retrain every stage from scratch")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help=evaluate.HELP)
    p.description = evaluate.DESCRIPTION
    p.add_argument("--run", "--run-dir", dest="run", required=True, metavar="DIR", help="the run to evaluate")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set prior.kind=autoregressive (repeatable)")
    p.add_argument("--vqgan", action="store_true", help="reconstruction metrics of the VQGAN instead of samples")
    p.add_argument("--samples", type=int, default=None, metavar="N",
                   help=f"samples to draw (default {recipe.PAPER_N_SAMPLES:,}, the paper's); with --vqgan, images of "
                        "the split to reconstruct (default all)")
    p.add_argument("--steps", type=int, default=None, help="reverse steps (default: sample.steps, else T)")
    p.add_argument("--temperature", type=float, default=None,
                   help="sampling temperature (default: sample.temperature; the paper's tables use 0.9)")
    p.add_argument("--features", choices=tuple(extractors.SPACES), default="inception",
                   help="standard InceptionV3 weights (default), a fixed-seed random InceptionV3 for machines "
                        "without the weights file, or 'openmoji': the kit's own OpenMoji feature network, "
                        "shipped with it (the offline metric for the built-in dataset); each labelled, never mixed")
    p.add_argument("--reference", choices=("train", "val"), default=None,
                   help="reference split (default: train for samples, as the paper; val for --vqgan)")
    p.add_argument("--max-reference", type=F.max_reference, default=None, metavar="N",
                   help=f"use a fixed random subset of N reference images, or 'all' (default: the whole split, at "
                        f"most {reference.DEFAULT_MAX_REFERENCE:,}, the paper's; larger sets stream their FID "
                        "statistics)")
    p.add_argument("--weights-dir", default=None, metavar="DIR",
                   help="folder holding weights-inception-2015-12-05-6726825d.pth and vgg16-397923af.pth "
                        "(default: $ULIB_WEIGHTS_DIR, then the torch hub cache)")
    F.allow_unverified(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the samples (default 0)")
    p.add_argument("--batch-size", type=int, default=None,
                   help=f"images per sampling / feature batch (default 32; {evaluate.CUDA_BATCH_SIZE} on a GPU)")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights instead of the EMA weights")
    p.add_argument("--prdc-k", type=int, default=evaluate.PRDC_K,
                   help=f"k of the PRDC nearest-neighbour balls (default {evaluate.PRDC_K}, Naeem et al.; the official "
                        f"script used {records.PAPER_PRDC_K})")
    p.add_argument("--neighbours", type=int, default=0, metavar="N",
                   help="also write RUN/nearest_neighbours.png: N samples and their nearest reference images "
                        "by LPIPS (needs vgg16-397923af.pth, checked before sampling; default 0 = off)")
    p.add_argument("--neighbours-k", type=int, default=10, metavar="K", help="neighbours per sample (default 10)")
    p.add_argument("--memorisation", action="store_true",
                   help="also measure memorisation: each sample's distance to its nearest training image against "
                        "the validation images' (near-copy share, distance ratio, Meehan et al.'s C_T) and the FID "
                        "against the validation split (FID alone does not see a model that copies its training set)")
    p.add_argument("--device", default=None, help="'auto', 'cpu', 'cuda', ... (default: the run's device)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_compare(sub) -> None:
    p = sub.add_parser("compare", help=compare.HELP)
    p.description = compare.__doc__
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("real", metavar="REAL", help="folder of images or .npz of uint8 images: the reference set")
    p.add_argument("fake", metavar="FAKE", help="folder of images or .npz of uint8 images: the set to judge")
    p.add_argument("--features", choices=tuple(extractors.SPACES), default="openmoji",
                   help="feature space (default openmoji: the kit's OpenMoji network, for emoji; inception needs "
                        "its weights file; see `python -m ulib evaluate --help`)")
    p.add_argument("--json", metavar="FILE", default=None, help="also write every figure as JSON here")
    p.add_argument("--bootstrap", type=int, default=10, metavar="B",
                   help="bootstrap resamples for the ± column (default 10; 0 turns it off)")
    p.add_argument("--prdc-k", type=int, default=5, help="k of PRDC's nearest-neighbour balls (default 5)")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="use only the first N images of each set")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap and the noise-floor split")
    p.add_argument("--weights-dir", default=None, metavar="DIR",
                   help="folder holding the feature network's weights file (default: the usual places)")
    F.allow_unverified(p)
    p.add_argument("--device", default="cpu", help="device for the feature network (default cpu)")


def add_train_features(sub) -> None:
    p = sub.add_parser("train-features", help="train the OpenMoji feature network of --features openmoji",
                       description="Train the OpenMoji feature network (ulib.eval.features) by its fixed recipe "
                                   "and write its weights; the defaults made the file that ships in ulib/assets/.")
    p.add_argument("--out", required=True, metavar="FILE", help="where to write the weights (.pt)")
    p.add_argument("--epochs", type=int, default=None, help="passes over the emoji (default: the recipe's)")
    p.add_argument("--limit", type=int, default=0, metavar="N", help="train on the first N emoji only (tests)")
    p.add_argument("--cache-dir", default="data/cache", help="OpenMoji render cache (default data/cache)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_pretrained(sub) -> None:
    p = sub.add_parser("pretrained", help="the ready-trained models that ship with the kit: list, install, pack",
                       description="Models trained once by a recorded recipe and shipped in ulib/assets/pretrained/ "
                                   "(float16 EMA weights with their SHA-256): `list` them, `install` one into a run "
                                   "directory (then every command and notebook reuses it instead of training), or "
                                   "`pack` a finished run into one (what `make tutorial` does).")
    p.add_argument("action", choices=("list", "install", "pack"), help="what to do")
    p.add_argument("name", nargs="?", default="tutorial", help="the model's name (default tutorial)")
    p.add_argument("--run", default=None, metavar="DIR",
                   help="install: the run directory to put it in (default runs/NAME); pack: the finished run")


def add_reproduce(sub) -> None:
    p = sub.add_parser("reproduce", help="run the numbered notebooks with papermill and gather tables and figures",
                       description="Execute notebooks/NN_*.ipynb in order with papermill into RUN/notebooks/ "
                                   "(parameters injected), skip finished ones, and write RUN/results/ "
                                   "(tables as CSV + Markdown beside the paper's values, figures as PNG).")

    p.add_argument("--profile", choices=sorted(PROFILES), default=None,
                   help="profile the notebooks run with (smoke: CI-sized, demo: CPU, ffhq/churches/bedrooms: GPU)")
    p.add_argument("--run", "--run-dir", dest="run", default=None, metavar="DIR",
                   help="run directory shared by all notebooks (default runs/PROFILE); executed notebooks go "
                        "to DIR/notebooks, figures and tables to DIR/results")
    p.add_argument("--only", nargs="+", default=None, metavar="NN",
                   help="run only these notebooks, e.g. --only 04 05 (their inputs must exist or be trainable)")
    p.add_argument("--force", action="store_true",
                   help="execute notebooks again even if they finished before (checkpoints are still reused)")
    p.add_argument("--device", default="auto", help="'auto', 'cpu', 'cuda', ... (default auto)")
    p.add_argument("--seed", type=int, default=0, help="seed of the notebooks' sampling and figures (default 0)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override passed to every notebook, e.g. --set prior_train.steps=50 (repeatable)")
    p.add_argument("--kernel", default=reproduce.KERNEL, help=f"Jupyter kernel name (default {reproduce.KERNEL})")
    p.add_argument("--export", default=None, metavar="DIR",
                   help="afterwards copy the executed notebooks (paths made relative) and the results to DIR "
                        "(make docs-notebooks: docs/notebooks)")
    p.add_argument("--pretrained", default=None, metavar="NAME",
                   help="first install the ready-trained model NAME (python -m ulib pretrained list) in the run "
                        "directory (default runs/NAME), so the notebooks reuse it; --profile defaults to its own")
    p.add_argument("--list", action="store_true", help="list the notebooks and exit")
