"""The LPIPS perceptual loss (Zhang et al. 2018) of the VQGAN's reconstruction term (Eq. 9a), loaded offline.

`lpips.LPIPS(net='vgg')` has two parts: small linear heads, shipped inside the `lpips` package, and a
VGG16 backbone that torchvision normally downloads to the torch hub cache as `vgg16-397923af.pth`.
`load_lpips` never downloads: it builds LPIPS with a random backbone (`pnet_rand=True`), then loads the
backbone from a local copy of that file, checking every key and shape, and fails loudly if there is none.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
import torch.nn as nn

VGG16_FILE = "vgg16-397923af.pth"  # torchvision's ImageNet VGG16 weights, as named in the hub cache
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


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:  # memory-map new-format files: only the ~15M backbone weights are read, not the 120M classifier's
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # the file torchvision publishes predates the zip format, which mmap needs
        return torch.load(path, map_location="cpu", weights_only=True)


def load_lpips(weights_dir: str | None = None, device: torch.device | str | None = None) -> nn.Module:
    """LPIPS-VGG with ImageNet backbone weights from a local file; eval mode, no trainable parameters.

    Call it as `lpips_model(x, y)` with x, y (B, 3, H, W) in [-1, 1]; it returns (B, 1, 1, 1) distances.
    Raises FileNotFoundError (saying where to put the file) when no copy of vgg16-397923af.pth is found.
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

    import lpips  # imported here: only this function needs the package

    with warnings.catch_warnings():  # lpips builds the random backbone through torchvision's deprecated `pretrained=`
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net="vgg", pretrained=True, pnet_rand=True, verbose=False)

    state = _read_state_dict(found)
    # lpips.pretrained_networks.vgg16 splits torchvision's `features` (indices 0..29) into slice1..slice5,
    # keeping each layer's index as its name: features.N.weight -> net.sliceK.N.weight.
    backbone = {}
    for name, param in model.net.named_parameters():  # name like 'slice2.5.weight'
        key = "features." + name.split(".", 1)[1]
        if key not in state:
            raise ValueError(f"{found} is not a torchvision VGG16 state dict: key {key!r} is missing")
        if tuple(state[key].shape) != tuple(param.shape):
            raise ValueError(
                f"{found}: {key} has shape {tuple(state[key].shape)}; VGG16 needs {tuple(param.shape)}"
            )
        backbone[name] = state[key]
    model.net.load_state_dict(backbone, strict=True)  # strict: every backbone parameter was assigned

    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model.to(device) if device is not None else model
