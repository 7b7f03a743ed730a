"""The feature extractors the sample-quality figures are computed in, and images -> features.

Features come in three kinds that are never mixed:
- 'inception': the standard weights file `weights-inception-2015-12-05-6726825d.pth`, found offline, refused
  unless its SHA-256 is the released file's (or `allow_unverified`), read by us with weights_only=True and checked
  against the architecture's keys and shapes (`ulib.eval.inception`); torch-fidelity only ever sees our clean copy;
- 'random-inception': the same architecture, randomly initialised from a fixed seed, for machines without the
  file (CI, CPUs). Naeem et al. (2020, section 5) show PRDC on randomly initialised embeddings remains
  informative, but its numbers are not comparable with standard-feature numbers or with the paper's;
- 'openmoji': a small CNN trained on OpenMoji by the kit's own recipe, shipped with it (`ulib.eval.features`);
  the offline metric for the built-in dataset. Its numbers are on their own scale, not the paper's.
Each kind names its layers (`FeatureSpace.layers`: pool features first, then logits). The kinds are plugins,
registered once in `SPACES` (name -> `SpaceKind`: how to load it and how its records are labelled); `--features`
offers their names, and a figure may belong to some of them (`ulib.eval.scoring`).
Images go in as uint8 (B, 3, H, W) (`to_uint8` from [-1, 1]); `extract_features` and `stream_features` run
batches through a `FeatureSpace` (the figures themselves: `ulib.eval.metrics`).
"""
from __future__ import annotations

import functools
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import torch
import torch.nn as nn

from ulib.eval import features as EF
from ulib.eval.categories import CATEGORIES
from ulib.eval.features import WEIGHTS_FILE, shipped_weights
from ulib.eval.inception import (
    EXTRACTOR,
    LAYERS,
    RANDOM_INIT,
    RANDOM_SEED,
    RESIZE,
    find_inception_weights,
    random_inception_bytes,
    read_inception_weights,
    saved,
)
from ulib.eval.metrics import FeatureMoments
from ulib.io.files import file_sha256

QUANTISE = "uint8 u = round((clamp(x, -1, 1) + 1) * 127.5), as when saving a PNG"


# ---- feature spaces, registered once ----------------------------------------------------------------
@dataclass
class FeatureSpace:
    """A torch-fidelity feature extractor and what it was loaded from. Call it on images to get their features."""

    net: nn.Module  # a torch-fidelity FeatureExtractorBase with features `layers`, eval mode
    features: str  # its kind's name in SPACES: 'inception', 'random-inception' or 'openmoji'
    info: dict  # recorded beside every figure: extractor, weights file and sha256, or the random seed
    layers: tuple = LAYERS  # (pool features for FID/KID/PRDC, logits for IS)

    @property
    def pool(self) -> str:
        return self.layers[0]

    @property
    def logits(self) -> str:
        return self.layers[1]

    @property
    def key(self) -> str:
        """Identity of the features for caches: the weights' sha256, or the random seed."""
        return self.info.get("sha256") or f"random-seed{self.info['seed']}"

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Images (B, 3, H, W), uint8 or float in [-1, 1] -> {layer: (B, D)}, float32 on the CPU; for Inception
        {'2048': (B, 2048), 'logits_unbiased': (B, 1008)}, for openmoji (B, 256) features and (B, 11) logits."""
        if images.dtype != torch.uint8:
            images = to_uint8(images)
        device = next(self.net.parameters()).device
        out = self.net(images.to(device))
        return {name: f.float().cpu() for name, f in zip(self.layers, out)}


Inception = FeatureSpace  # the name of the Inception-only days


def load_inception(features: str = "inception", weights_dir: str | os.PathLike | None = None, device=None,
                   seed: int = RANDOM_SEED, allow_unverified: bool = False) -> Inception:
    """The feature space registered as `features` in SPACES, loaded by its kind (`SpaceKind.load`); each is
    built by torch-fidelity's `create_feature_extractor` with `feature_extractor_weights_path` always given, so
    torch-fidelity never downloads."""
    if features not in SPACES:
        raise ValueError(f"features={features!r}; allowed: {', '.join(SPACES)}")
    return SPACES[features].load(weights_dir, device, seed=seed, allow_unverified=allow_unverified)


def _load_inception_kind(features: str, weights_dir, device, *, seed: int, allow_unverified: bool) -> FeatureSpace:
    """'inception' reads the standard file (see `find_inception_weights`) ourselves (`read_inception_weights`:
    a file that is not the released one is refused unless allow_unverified, which records
    official_weights: False and warns) and hands torch-fidelity an in-memory copy of the checked tensors, so
    torch-fidelity (which unpickles with weights_only=False) never opens the user's file. 'random-inception'
    goes through the same call with the state dict of `random_inception_state_dict(seed)`.
    """
    import torch_fidelity
    from torch_fidelity.utils import create_feature_extractor

    info = {"features": features, "extractor": f"torch-fidelity {torch_fidelity.__version__} {EXTRACTOR}",
            "layers": list(LAYERS), "resize": RESIZE}
    if features == "inception":
        path = find_inception_weights(weights_dir)
        state, sha, official = read_inception_weights(path, allow_unverified)
        info.update(weights=str(path), sha256=sha, official_weights=official)
        source = saved(state)  # our own serialisation of plain tensors, not the user's bytes
        del state
    else:
        info.update(seed=seed, init=RANDOM_INIT)
        source = io.BytesIO(random_inception_bytes(seed))
    with torch.random.fork_rng(devices=[]):
        net = create_feature_extractor(EXTRACTOR, list(LAYERS), cuda=False, verbose=False,
                                       feature_extractor_weights_path=source)
    return Inception(net.to(device) if device is not None else net, features, info)


def openmoji_weights(weights_dir: str | os.PathLike | None = None) -> Path:
    """The OpenMoji feature weights: WEIGHTS_DIR/openmoji_features.pt when that file exists, else the shipped file."""
    if weights_dir is not None and (Path(weights_dir) / WEIGHTS_FILE).is_file():
        return Path(weights_dir) / WEIGHTS_FILE
    return shipped_weights()


def _load_openmoji_features(weights_dir, device, **_) -> FeatureSpace:
    """The 'openmoji' space through torch-fidelity's registry (`ulib.eval.features.register_with_torch_fidelity`)."""
    import torch_fidelity
    from torch_fidelity.utils import create_feature_extractor

    EF.register_with_torch_fidelity()
    path = openmoji_weights(weights_dir)
    with torch.random.fork_rng(devices=[]):
        net = create_feature_extractor(EF.NAME, list(EF.LAYERS), cuda=False, verbose=False,
                                       feature_extractor_weights_path=str(path))
    report = net.report
    info = {"features": EF.NAME, "extractor": f"torch-fidelity {torch_fidelity.__version__} {EF.NAME} (ulib)",
            "layers": list(EF.LAYERS), "weights": str(path), "sha256": file_sha256(path),
            "resize": f"uint8 (B, 3, H, W) -> {EF.INPUT_SIZE}x{EF.INPUT_SIZE} bilinear, antialiased; x / 127.5 - 1",
            "recipe": report.get("recipe"), "trained_on": f"OpenMoji {report.get('openmoji_version')} "
            f"({report.get('n_emoji')} emoji; CC BY-SA 4.0)"}
    return FeatureSpace(net.to(device) if device is not None else net, EF.NAME, info, tuple(EF.LAYERS))


@dataclass(frozen=True)
class SpaceKind:
    """A kind of feature space, as a plugin: how to load one and how figures computed in it are labelled."""

    load: Callable[..., FeatureSpace]  # (weights_dir, device, *, seed, allow_unverified) -> FeatureSpace
    title: str  # evaluation.md's heading: 'features: NAME (title)'
    paper_scale: bool = False  # the paper's own features: the paper's figures may stand beside ours
    class_names: tuple[str, ...] | None = None  # what its head's classes are (None: numbered classes)


# --features NAME -> its kind; everything that lists feature spaces (the CLI's choices, records) reads this
SPACES: dict[str, SpaceKind] = {
    "inception": SpaceKind(functools.partial(_load_inception_kind, "inception"),
                           "standard InceptionV3 weights, torch-fidelity", paper_scale=True),
    "random-inception": SpaceKind(functools.partial(_load_inception_kind, "random-inception"),
                                  "fixed-seed RANDOMLY INITIALISED InceptionV3: not comparable with the paper or "
                                  "with standard-feature figures"),
    "openmoji": SpaceKind(_load_openmoji_features,
                          "the kit's OpenMoji feature network, ulib/assets/openmoji_features.pt: its own scale, not "
                          "comparable with the paper's Inception figures", class_names=CATEGORIES),
}


def paper_scale(features: str) -> bool:
    """Whether figures in the space `features` are on the paper's scale (False for a name not registered)."""
    return features in SPACES and SPACES[features].paper_scale


# ---- images -> features -------------------------------------------------------------------------------
def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) float in [-1, 1] -> uint8 (B, 3, H, W): u = round((clamp(x) + 1) * 127.5)."""
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def extract_features(inception: Inception, batches: Iterable[torch.Tensor], progress=None) -> dict[str, torch.Tensor]:
    """Concatenated features of every batch (uint8 or [-1, 1] images); `progress.update(b)` after each batch."""
    layers = getattr(inception, "layers", LAYERS)
    parts: dict[str, list[torch.Tensor]] = {name: [] for name in layers}
    for images in batches:
        for name, f in inception(images).items():
            parts[name].append(f)
        if progress is not None:
            progress.update(images.shape[0])
    if not parts[layers[0]]:
        raise ValueError("extract_features: no images")
    return {name: torch.cat(fs) for name, fs in parts.items()}


def stream_features(inception: Inception, batches: Iterable[torch.Tensor], keep: torch.Tensor | None = None,
                    progress=None) -> tuple[torch.Tensor, FeatureMoments | None]:
    """Pool features of every batch, streamed: (the features of the items where `keep` (N,) bool is True, in
    order, and the moments of all of them). keep=None keeps every feature and gives no moments."""
    kept, moments, seen = [], None, 0
    for images in batches:
        f = inception(images)[inception.pool]  # (b, d): 2048 for InceptionV3, 256 for openmoji
        if keep is None:
            kept.append(f)
        else:
            moments = (moments or FeatureMoments(f.shape[1])).update(f)
            kept.append(f[keep[seen: seen + len(f)]])
        seen += len(f)
        if progress is not None:
            progress.update(images.shape[0])
    if seen == 0:
        raise ValueError("stream_features: no images")
    return torch.cat(kept), moments
