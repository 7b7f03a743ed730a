"""torch-fidelity's InceptionV3, the network of the paper's sample-quality figures: its standard weights file, found
offline and checked, and a fixed-seed random stand-in for machines without it.

- 'inception': the file `weights-inception-2015-12-05-6726825d.pth`, looked for in a weights folder and the torch hub
  cache (`find_inception_weights`; nothing is downloaded), refused unless its SHA-256 is the released file's (or
  `allow_unverified`), read by us with weights_only=True and checked against the architecture's keys and shapes
  (`read_inception_weights`);
- 'random-inception': the same architecture, randomly initialised from a fixed seed (`random_inception_state_dict`).
`ulib.eval.extractors` loads either as a feature space, handing torch-fidelity our in-memory copy (`saved`) of the
plain tensors, never the user's file.
"""
from __future__ import annotations

import functools
import io
import os
from pathlib import Path

import torch
import torch.nn as nn

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
RANDOM_INIT = ("torch-fidelity InceptionV3 architecture; conv weights Kaiming-normal (fan_in, ReLU gain), fc weights "
               "N(0, 1/2048), biases 0, BatchNorm identity; drawn from torch.Generator().manual_seed(seed)")


# ---- the weights file ---------------------------------------------------------------------------------
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


def saved(obj) -> io.BytesIO:
    """`torch.save(obj)` into an in-memory file, rewound to its start."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return buf


def _unloaded_inception() -> nn.Module:
    """torch-fidelity's InceptionV3 with its constructor's fresh layers (no weights file read)."""
    return _torch_fidelity_inception()(EXTRACTOR, ["2048"], feature_extractor_weights_path=saved({}))


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


# ---- the random stand-in ------------------------------------------------------------------------------
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
def random_inception_bytes(seed: int) -> bytes:
    """`random_inception_state_dict(seed)` serialised; cached, so loading the random space again draws nothing."""
    return saved(random_inception_state_dict(seed)).getvalue()

