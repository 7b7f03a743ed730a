"""The feature extractors the sample-quality figures are computed in, and images -> features.

Features come in three kinds that are never mixed:
- 'inception': the standard weights file `weights-inception-2015-12-05-6726825d.pth`, found offline (below),
  refused unless its SHA-256 is the released file's (or `allow_unverified`), read by us with weights_only=True and
  checked against the architecture's keys and shapes; torch-fidelity only ever sees our clean copy;
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
from ulib.eval.features import WEIGHTS_FILE, shipped_weights
from ulib.eval.metrics import FeatureMoments
from ulib.io.files import file_sha256
from ulib.io.weights import check_digest, check_state_dict, read_state_dict, shapes_of
from ulib.vq.perceptual import WEIGHTS_ENV, weight_candidates

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's converted TF InceptionV3
# SHA-256 of torch-fidelity's release file (github.com/toshas/torch-fidelity/releases/download/v0.2.0/, 95,628,359
# bytes). torch hub names files by the first 8 digits of their sha256; the full digest is the one pinned for this
# file by several independent public projects that verify it, and by genforce's FID code for pytorch-fid's
# pt_inception-2015-12-05-6726825d.pth (`_MODEL_URL_SHA256['tf_inception_v3']`): the same bytes under two names.
INCEPTION_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
EXTRACTOR = "inception-v3-compat"  # torch-fidelity's registry name
LAYERS = ("2048", "logits_unbiased")  # pool features (FID, KID, PRDC); logits without bias (IS)
RANDOM_SEED = 0
RESIZE = ("uint8 (B, 3, H, W) -> 299x299 inside torch-fidelity's InceptionV3: TF-1.x-compatible bilinear "
          "(interpolate_bilinear_2d_like_tensorflow1x, align_corners=False), then (x - 128) / 128")
QUANTISE = "uint8 u = round((clamp(x, -1, 1) + 1) * 127.5), as when saving a PNG"
RANDOM_INIT = ("torch-fidelity InceptionV3 architecture; conv weights Kaiming-normal (fan_in, ReLU gain), fc weights "
               "N(0, 1/2048), biases 0, BatchNorm identity; drawn from torch.Generator().manual_seed(seed)")


# ---- the feature extractor ---------------------------------------------------------------------------
def inception_url() -> str:
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    return URL_INCEPTION_V3


def inception_candidates(weights_dir: str | os.PathLike | None = None) -> list[Path]:
    """Where the standard InceptionV3 weights are looked for (see `ulib.vq.perceptual.weight_candidates`)."""
    return weight_candidates(INCEPTION_FILE, weights_dir)


def find_inception_weights(weights_dir: str | os.PathLike | None = None) -> Path:
    """The local InceptionV3 weights file; FileNotFoundError naming the file, the places and the URL if none."""
    places = inception_candidates(weights_dir)
    found = next((p for p in places if p.is_file()), None)
    if found is None:
        raise FileNotFoundError(
            f"standard Inception features need torch-fidelity's InceptionV3 weights file {INCEPTION_FILE!r}, which "
            f"was not found; looked in: {', '.join(str(p) for p in places)}. Download it on a machine with internet "
            f"from {inception_url()} and put it in a folder given by --weights-dir or ${WEIGHTS_ENV}, or in the "
            f"torch hub cache ({places[-1].parent}). Nothing is downloaded at run time. Without weights, "
            "--features random-inception gives fixed-seed random features (labelled, not comparable with the paper)."
        )
    return found


def _torch_fidelity_inception():
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class Unloaded(FeatureExtractorInceptionV3):
        """torch-fidelity's InceptionV3 whose constructor keeps its fresh layers: it is handed an empty dict."""

        def load_state_dict(self, state_dict, *args, **kwargs):
            if len(state_dict) == 0:
                return None
            return super().load_state_dict(state_dict, *args, **kwargs)

    return Unloaded


def _saved(obj) -> io.BytesIO:
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return buf


def _unloaded_inception() -> nn.Module:
    """torch-fidelity's InceptionV3 with its constructor's fresh layers (no weights file read)."""
    return _torch_fidelity_inception()(EXTRACTOR, ["2048"], feature_extractor_weights_path=_saved({}))


@functools.lru_cache(maxsize=1)
def inception_shapes() -> dict[str, tuple[int, ...]]:
    """{key: shape} of torch-fidelity's InceptionV3 state dict: exactly what its weights file must hold."""
    with torch.random.fork_rng(devices=[]):
        return shapes_of(_unloaded_inception())


def read_inception_weights(path: str | os.PathLike, allow_unverified: bool = False) -> tuple[dict, str, bool]:
    """(state dict, sha256, official) of an InceptionV3 weights file: its digest checked against the released
    file's (refused if different, unless allow_unverified), read with weights_only=True, every key and shape
    checked (`ulib.io.weights`). Raises UnverifiedWeightsError (a ValueError) naming the file."""
    sha, official = check_digest(path, INCEPTION_SHA256, allow_unverified)
    state = read_state_dict(path)
    check_state_dict(state, inception_shapes(), path)
    return state, sha, official


def random_inception_state_dict(seed: int = RANDOM_SEED) -> dict[str, torch.Tensor]:
    """A fixed-seed random state dict for torch-fidelity's InceptionV3 (same keys and shapes as the real file).

    Kaiming init keeps activations O(1) through the ~20 conv layers, so the features neither vanish nor blow up.
    """
    with torch.random.fork_rng(devices=[]):  # the constructor's default init must not move the caller's RNG
        net = _unloaded_inception()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu", generator=g)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=m.in_features**-0.5, generator=g)
                nn.init.zeros_(m.bias)
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


@functools.lru_cache(maxsize=2)
def _random_inception_bytes(seed: int) -> bytes:
    return _saved(random_inception_state_dict(seed)).getvalue()


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
        source = _saved(state)  # our own serialisation of plain tensors, not the user's bytes
        del state
    else:
        info.update(seed=seed, init=RANDOM_INIT)
        source = io.BytesIO(_random_inception_bytes(seed))
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
                          "comparable with the paper's Inception figures", class_names=EF.CATEGORIES),
}


def paper_scale(features: str) -> bool:
    """Whether figures in the space `features` are on the paper's scale (False for a name not registered)."""
    return features in SPACES and SPACES[features].paper_scale


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
