"""An OpenMoji feature space for FID, KID and PRDC offline: a small CNN trained once, by a fixed recipe, on emoji.

Why. The standard Inception features cannot be downloaded on an offline machine, and random features have not
been shown to rank models. This network is trained on the rendered OpenMoji set only, independently of every
model under test (not the VQGAN, not the prior), and its weights ship with the kit (`ulib/assets/`), made by
`python -m ulib train-features` (the recipe below; same command, same file up to float rounding).

Recipe (`FeatureRecipe`). Two heads on one 256-d feature vector, trained together with cross-entropy:
- exemplar (Dosovitskiy et al. 2014): every emoji is its own class, seen under random small shifts, scalings
  and horizontal flips. The features must tell ~4,500 emoji apart, so they see shape, colour and detail;
  the augmentations are only geometric, so blur, noise and colour changes move the features (a metric must
  see them);
- category: the emoji's CLDR group, or OpenMoji's extras (`ulib.eval.categories`). This head also labels
  samples for the bias measure of Fig. 6 (`ulib.eval.categories.category_histogram`).

Held out? The shipped weights saw every emoji, so also the families of any run's test split (as Inception saw
ImageNet, on which FID's users then score ImageNet models). `train_feature_net(names=...)` trains on a subset, so
notebook 12 can measure whether that matters (`ulib.app.measuring.openmoji_space`: a space without the test split).

Input: uint8 images (B, 3, H, W) of any size, resized to 32x32 (bilinear, antialiased) inside the network;
white background as rendered. Output: 'openmoji_features' (B, 256), 'openmoji_category_logits' (B, 11).
OpenMoji: "All emojis designed by OpenMoji – the open-source emoji and icon project. License: CC BY-SA 4.0".
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import os
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from ulib.data.openmoji import load_openmoji, openmoji_version
from ulib.eval.categories import CATEGORIES, emoji_categories, histogram_entropy, histogram_kl
from ulib.io.files import atomic_write

NAME = "openmoji"  # the feature space's name: --features openmoji, torch-fidelity's registry name
LAYERS = ("openmoji_features", "openmoji_category_logits")
INPUT_SIZE = 32
WEIGHTS_FILE = "openmoji_features.pt"

__all__ = ["CATEGORIES", "histogram_entropy", "histogram_kl",  # re-exported for the notebooks (ulib.eval.categories)
           "NAME", "LAYERS", "INPUT_SIZE", "WEIGHTS_FILE", "shipped_weights", "EmojiFeatureNet", "prepare",
           "FeatureRecipe", "augment", "names_digest", "training_items", "train_feature_net", "save_feature_net",
           "load_feature_net", "register_with_torch_fidelity", "train_and_save"]


def shipped_weights() -> Path:
    """The weights that ship with the kit: ulib/assets/openmoji_features.pt."""
    return Path(str(resources.files("ulib") / "assets" / WEIGHTS_FILE))


# ---- the network ----------------------------------------------------------------------------------------
def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class EmojiFeatureNet(nn.Module):
    """Conv net 32 -> 16 -> 8 -> 4 px (two 3x3 conv-BN-ReLU per scale), global average pool to `dim` features,
    and a linear category head. `forward` takes float images in [-1, 1] at INPUT_SIZE."""

    def __init__(self, width: int = 24, dim: int = 256, n_categories: int = len(CATEGORIES)):
        super().__init__()
        w = width
        self.body = nn.Sequential(
            _block(3, w), _block(w, w), nn.MaxPool2d(2),
            _block(w, 2 * w), _block(2 * w, 2 * w), nn.MaxPool2d(2),
            _block(2 * w, 4 * w), _block(4 * w, 4 * w), nn.MaxPool2d(2),
            _block(4 * w, dim),
        )
        self.category = nn.Linear(dim, n_categories)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return f, self.category(f)


def prepare(images: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """uint8 (B, 3, H, W) (or float in [-1, 1]) -> float (B, 3, size, size) in [-1, 1], antialiased resize."""
    x = images.float() / 127.5 - 1 if images.dtype == torch.uint8 else images.float()
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x


# ---- the recipe -----------------------------------------------------------------------------------------
@dataclass
class FeatureRecipe:
    size: int = INPUT_SIZE  # render size of the training emoji (= INPUT_SIZE for the shipped weights)
    width: int = 24  # channels of the first scale
    dim: int = 256  # feature dimension
    epochs: int = 24
    batch_size: int = 128
    lr: float = 2e-3  # AdamW, cosine decay to 0 after a one-epoch linear warm-up
    weight_decay: float = 5e-4
    max_shift: float = 0.12  # translation, fraction of half the image side (0.12: about 2 px at 32 px)
    scale: tuple = (0.85, 1.15)  # zoom range
    label_smoothing: float = 0.1
    seed: int = 0
    limit: int = 0  # use only the first `limit` emoji trained on (0: all); for tests

    def to_dict(self) -> dict:
        d = asdict(self)
        d["scale"] = list(self.scale)
        return d


def augment(x: torch.Tensor, recipe: FeatureRecipe, g: torch.Generator) -> torch.Tensor:
    """Random shift, zoom and horizontal flip of images in [-1, 1]; uncovered pixels become white (1)."""
    b = x.shape[0]
    lo, hi = recipe.scale
    zoom = torch.empty(b).uniform_(lo, hi, generator=g)
    flip = torch.where(torch.rand(b, generator=g) < 0.5, -1.0, 1.0)
    shift = torch.empty(b, 2).uniform_(-recipe.max_shift, recipe.max_shift, generator=g)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = flip / zoom  # the grid maps output to input coordinates, so zoom in = shrink the grid
    theta[:, 1, 1] = 1 / zoom
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x - 1, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + 1


def names_digest(names) -> str:
    """SHA-256 of a set of emoji names (sorted, joined by newlines): which emoji a network was trained on."""
    return hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()


def training_items(all_names: list[str], names=None, limit: int = 0) -> list[int]:
    """Indices into `all_names` (load_openmoji's order) of the emoji a recipe trains on: those in `names` (None:
    every emoji), in load order, then the first `limit` of them (0: all). Unknown names are an error."""
    if names is not None:
        names = set(names)
        unknown = sorted(names - set(all_names))
        if unknown:
            raise ValueError(f"train_feature_net: {len(unknown)} names are not OpenMoji emoji of this version, e.g. "
                             f"{unknown[:3]}; allowed: names as load_openmoji gives them ('1F600', '1F469-200D-1F52C')")
        if not names:
            raise ValueError("train_feature_net: names is empty; pass None to train on every emoji")
    keep = [i for i, name in enumerate(all_names) if names is None or name in names]
    return keep[:limit] if limit else keep


def train_feature_net(recipe: FeatureRecipe = FeatureRecipe(), cache_dir: str | os.PathLike | None = "data/cache",
                      show_progress: bool = True, names=None) -> tuple[EmojiFeatureNet, dict]:
    """Train the feature network on rendered OpenMoji (exemplar + category heads); returns it and a report.

    names: train only on these emoji (OpenMoji names, e.g. the families of a run's training and validation
    splits, to measure what having seen the test families does to the metric); `recipe.limit` then takes the
    first of them. None: every emoji (the shipped weights). The report records how many and `names_digest`."""
    images, all_names = load_openmoji(recipe.size, cache_dir)
    keep = training_items(all_names, names, recipe.limit)
    images, names = images[keep], [all_names[i] for i in keep]
    n = len(images)
    x_all = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    cats = torch.from_numpy(emoji_categories(names))
    torch.manual_seed(recipe.seed)
    g = torch.Generator().manual_seed(recipe.seed)
    net = EmojiFeatureNet(recipe.width, recipe.dim).to(memory_format=torch.channels_last)  # ~1.3x faster on CPU
    exemplar = nn.Linear(recipe.dim, n)  # one class per emoji; used in training only, not shipped
    params = list(net.parameters()) + list(exemplar.parameters())
    opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    per_epoch = math.ceil(n / recipe.batch_size)
    total = recipe.epochs * per_epoch

    def lr_at(step: int) -> float:  # linear warm-up for one epoch, then cosine to 0
        if step < per_epoch:
            return recipe.lr * (step + 1) / per_epoch
        return recipe.lr * 0.5 * (1 + math.cos(math.pi * (step - per_epoch) / max(1, total - per_epoch)))

    history, step = [], 0
    bar = tqdm(total=total, desc="feature net", disable=not show_progress)
    for epoch in range(recipe.epochs):
        net.train()
        order = torch.randperm(n, generator=g)
        sums = torch.zeros(3)
        for i in range(0, n, recipe.batch_size):
            idx = order[i: i + recipe.batch_size]
            x = augment(prepare(x_all[idx], INPUT_SIZE), recipe, g).contiguous(memory_format=torch.channels_last)
            f, cat_logits = net(x)
            loss_id = F.cross_entropy(exemplar(f), idx, label_smoothing=recipe.label_smoothing)
            loss_cat = F.cross_entropy(cat_logits, cats[idx], label_smoothing=recipe.label_smoothing)
            for group in opt.param_groups:
                group["lr"] = lr_at(step)
            opt.zero_grad(set_to_none=True)
            (loss_id + loss_cat).backward()
            opt.step()
            step += 1
            bar.update(1)
            sums += torch.tensor([loss_id.item() * len(idx), loss_cat.item() * len(idx), len(idx)])
        history.append({"epoch": epoch + 1, "loss_exemplar": float(sums[0] / sums[2]),
                        "loss_category": float(sums[1] / sums[2])})
        bar.set_postfix(exemplar=f"{history[-1]['loss_exemplar']:.2f}", category=f"{history[-1]['loss_category']:.2f}")
    bar.close()
    net.eval()
    # accuracy on one fresh augmented view of every emoji (exemplar) and on the plain renders (category)
    with torch.no_grad():
        x = prepare(x_all, INPUT_SIZE)
        f_aug, _ = net(augment(x, recipe, torch.Generator().manual_seed(recipe.seed + 1)))
        _, cat_logits = net(x)
        acc_id = float((exemplar(f_aug).argmax(1) == torch.arange(n)).float().mean())
        acc_cat = float((cat_logits.argmax(1) == cats).float().mean())
    report = {"recipe": recipe.to_dict(), "n_emoji": n, "names_sha256": names_digest(names),
              "openmoji_version": openmoji_version(), "categories": list(CATEGORIES),
              "category_counts": torch.bincount(cats, minlength=len(CATEGORIES)).tolist(),
              "exemplar_accuracy_augmented": acc_id, "category_accuracy": acc_cat, "history": history,
              "torch": str(torch.__version__)}
    return net, report


def save_feature_net(net: EmojiFeatureNet, report: dict, path: str | os.PathLike) -> Path:
    """{'state_dict', 'config', 'report'} written atomically."""
    path = Path(path)
    cfg = {"width": report["recipe"]["width"], "dim": report["recipe"]["dim"], "n_categories": len(CATEGORIES)}
    blob = {"state_dict": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
            "config": cfg, "report": report, "format": "ulib-openmoji-features-1"}
    atomic_write(path, lambda f: torch.save(blob, f))
    return path


def load_feature_net(path: str | os.PathLike | None = None) -> tuple[EmojiFeatureNet, dict]:
    """The network and its training report from a weights file (default: the shipped one)."""
    path = Path(path) if path is not None else shipped_weights()
    if not path.is_file():
        raise FileNotFoundError(
            f"OpenMoji feature weights {path} not found; they ship with the kit in ulib/assets/{WEIGHTS_FILE} "
            f"(a broken checkout?). `python -m ulib train-features --out {path}` makes them again (minutes on a CPU).")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or blob.get("format") != "ulib-openmoji-features-1":
        raise ValueError(f"{path} is not an OpenMoji feature-weights file (no 'format': 'ulib-openmoji-features-1')")
    net = EmojiFeatureNet(**blob["config"])
    net.load_state_dict(blob["state_dict"])
    return net.eval().requires_grad_(False), blob["report"]


# ---- torch-fidelity -------------------------------------------------------------------------------------
def _extractor_class():
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase

    class FeatureExtractorOpenMoji(FeatureExtractorBase):
        """torch-fidelity feature extractor 'openmoji': uint8 (B, 3, H, W) -> (features (B, 256), category
        logits (B, 11)). `feature_extractor_weights_path`: a weights file (default: the shipped one)."""

        def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
            super().__init__(name, features_list)
            self.net, self.report = load_feature_net(feature_extractor_weights_path)

        @staticmethod
        def get_provided_features_list():
            return LAYERS

        @staticmethod
        def get_default_feature_layer_for_metric(metric):
            return {"isc": LAYERS[1]}.get(metric, LAYERS[0])

        @staticmethod
        def can_be_compiled():
            return False

        @staticmethod
        def get_dummy_input_for_compile():
            return torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE, dtype=torch.uint8)

        def forward(self, x):
            feats, logits = self.net(prepare(x.to(next(self.net.parameters()).device)))
            out = {LAYERS[0]: feats, LAYERS[1]: logits}
            return tuple(out[name] for name in self.features_list)

    return FeatureExtractorOpenMoji


def register_with_torch_fidelity() -> None:
    """Register the extractor as 'openmoji' (idempotent): torch_fidelity.calculate_metrics(...,
    feature_extractor='openmoji') then works like any of its own extractors."""
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

    if NAME not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(NAME, _extractor_class())


def train_and_save(out, *, epochs: int | None = None, limit: int = 0, cache_dir="data/cache",
                   show_progress: bool = True, log=print) -> dict:
    """`python -m ulib train-features`: the network trained by its recipe (with `epochs` and `limit` if given)
    and written to `out`; returns its report."""
    recipe = FeatureRecipe(limit=limit)
    if epochs is not None:
        recipe = dataclasses.replace(recipe, epochs=epochs)
    net, report = train_feature_net(recipe, cache_dir, show_progress=show_progress)
    save_feature_net(net, report, out)
    log(f"wrote {out}: {report['n_emoji']} emoji, {recipe.epochs} epochs; exemplar accuracy on augmented "
        f"views {report['exemplar_accuracy_augmented']:.3f}, category accuracy {report['category_accuracy']:.3f}")
    return report
