"""The LPIPS perceptual loss (Zhang et al. 2018) of the VQGAN's reconstruction term (Eq. 9a), loaded offline.

`lpips.LPIPS(net='vgg')` has two parts: small linear heads, shipped inside the `lpips` package, and a
VGG16 backbone that torchvision normally downloads to the torch hub cache as `vgg16-397923af.pth`.
`load_lpips` never downloads: it builds LPIPS with a random backbone (`pnet_rand=True`), then loads the
backbone from a local copy of that file, and fails loudly if there is none. The copy is checked before it is
read (`ulib.io.weights`): its SHA-256 must be the released file's (else refused, unless `allow_unverified`),
it is read with weights_only=True, and every key and shape must be VGG16's.
The linear heads (`lpips/weights/v0.1/vgg.pth`) ship inside the installed `lpips` package and are loaded by
it: they come with the package we installed, not from a folder a user names.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from ulib.io.weights import check_digest, check_state_dict, read_state_dict, shapes_of

VGG16_FILE = "vgg16-397923af.pth"  # torchvision's ImageNet VGG16 weights, as named in the hub cache
# SHA-256 of https://download.pytorch.org/models/vgg16-397923af.pth (553,433,881 bytes). torchvision gives only
# its first 8 digits (the file name, torch hub's convention); the full digest is the one pinned beside that URL by
# several independent public projects that verify the download (weights manifests, LPIPS reproductions running
# `sha256sum`), which all agree and all start with the name's 397923af.
VGG16_SHA256 = "397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0"
WEIGHTS_ENV = "ULIB_WEIGHTS_DIR"


def weight_candidates(filename: str, weights_dir: str | os.PathLike | None = None) -> list[Path]:
    """Where a pretrained-weights file is looked for, in order: weights_dir (else $ULIB_WEIGHTS_DIR), then
    the torch hub cache (where torchvision's and torch-fidelity's own downloads put them)."""
    places = []
    chosen = weights_dir if weights_dir is not None else os.environ.get(WEIGHTS_ENV)
    if chosen:
        places.append(Path(chosen) / filename)
    places.append(Path(torch.hub.get_dir()) / "checkpoints" / filename)
    return places


def vgg16_candidates(weights_dir: str | None = None) -> list[Path]:
    """Where `load_lpips` looks for the VGG16 backbone file."""
    return weight_candidates(VGG16_FILE, weights_dir)


def vgg16_shapes() -> dict[str, tuple[int, ...]]:
    """{key: shape} of torchvision's VGG16 state dict (built on the meta device: no memory, no download)."""
    import torchvision  # imported here: only LPIPS needs it, and gpu-check runs where it may be absent

    with torch.device("meta"):
        return shapes_of(torchvision.models.vgg16(weights=None))


def load_lpips(weights_dir: str | None = None, device: torch.device | str | None = None,
               allow_unverified: bool = False) -> nn.Module:
    """LPIPS-VGG with ImageNet backbone weights from a local file; eval mode, no trainable parameters.

    Call it as `lpips_model(x, y)` with x, y (B, 3, H, W) in [-1, 1]; it returns (B, 1, 1, 1) distances.
    Raises FileNotFoundError (saying where to put the file) when no copy of vgg16-397923af.pth is found, and
    `ulib.io.weights.UnverifiedWeightsError` (a ValueError) when the copy is not torchvision's released file,
    unless allow_unverified: then any file holding VGG16 tensors (the `features` ones at least) is loaded, with a
    warning; the model's `official_weights` attribute says which it was.
    """
    places = vgg16_candidates(weights_dir)
    found = next((p for p in places if p.is_file()), None)
    if found is None:
        hub = places[-1].parent
        raise FileNotFoundError(
            f"LPIPS needs torchvision's VGG16 weights file {VGG16_FILE!r}, which was not found; looked in: "
            + ", ".join(str(p) for p in places)
            + f". Put a copy in a folder given as weights_dir or by ${WEIGHTS_ENV}, or in the torch hub cache "
            f"({hub}; `torchvision.models.vgg16(weights='IMAGENET1K_V1')` puts it there on a machine with internet). "
            "Profiles meant to run offline set vqgan.perceptual_weight=0, which needs no LPIPS at all."
        )

    _, official = check_digest(found, VGG16_SHA256, allow_unverified)  # before anything reads the file

    import lpips  # imported here: only this function needs the package

    with warnings.catch_warnings():  # lpips builds the random backbone through torchvision's deprecated `pretrained=`
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net="vgg", pretrained=True, pnet_rand=True, verbose=False)

    # memory-mapped where the format allows: only the ~15M backbone weights are read, not the 120M classifier's
    state = read_state_dict(found, mmap=True)
    shapes = vgg16_shapes()
    # only the backbone is used: a file may leave out the classifier, but nothing may be foreign to VGG16
    check_state_dict(state, shapes, found, required={k for k in shapes if k.startswith("features.")})
    # lpips.pretrained_networks.vgg16 splits torchvision's `features` (indices 0..29) into slice1..slice5,
    # keeping each layer's index as its name: features.N.weight -> net.sliceK.N.weight.
    backbone = {name: state["features." + name.split(".", 1)[1]] for name, _ in model.net.named_parameters()}
    model.net.load_state_dict(backbone, strict=True)  # strict: every backbone parameter was assigned

    model.official_weights = official
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model.to(device) if device is not None else model
