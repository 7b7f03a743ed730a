"""A run's trained models: rebuilt from its Config and loaded from its checkpoints (the paper's released files:
`ulib.official`)."""
from __future__ import annotations

import warnings
from pathlib import Path

from ulib.config import Config
from ulib.io.checkpoint import check_state_dict, load_checkpoint
from ulib.io.files import file_sha256
from ulib.prior.transformer import Transformer
from ulib.vq.model import VQAutoEncoder


def vqgan_from_config(cfg: Config) -> VQAutoEncoder:
    return VQAutoEncoder.from_config(cfg.vqgan, cfg.data.img_size)


def prior_from_config(cfg: Config) -> Transformer:
    return Transformer.from_config(cfg.prior, codebook_size=cfg.vqgan.codebook_size,
                                   block_size=cfg.latent_size**2)


def _weights(state: dict, use_ema: bool) -> dict:
    return state["ema"] if use_ema and state.get("ema") is not None else state["model"]


def _check_codebook(cfg: Config, state: dict, path: Path) -> None:
    saved = state.get("config", {}).get("vqgan", {}).get("codebook_size")
    if saved is not None and saved != cfg.vqgan.codebook_size:
        raise ValueError(
            f"{path} was trained with vqgan.codebook_size={saved}, but the config says "
            f"{cfg.vqgan.codebook_size}; use the run's own config (drop that --set)"
        )


def vqgan_digest(path: Path) -> str:
    """16 hex digits of the SHA-256 of a VQGAN checkpoint's bytes: the VQGAN a prior checkpoint records as the
    one whose tokens it was trained on (its `vqgan_digest`), and part of the latent cache's fingerprint."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"no VQGAN checkpoint at {path}; run `python -m ulib train-vqgan` first")
    return file_sha256(path)[:16]


def retrain_prior_hint(path: Path, kind: str) -> str:
    """The command that trains the prior checkpoint `path` (of a run folder) again from scratch."""
    flag = " --set prior.kind=autoregressive" if kind == "autoregressive" else ""
    return f"python -m ulib train-prior --run {Path(path).parent} --force{flag}"


def check_prior_pairing(state: dict, path: Path, vqgan_ckpt: Path) -> None:
    """A prior models the tokens of the one VQGAN it was trained on; decoded by another VQGAN its samples are
    noise. ValueError when the prior checkpoint `path` (loaded as `state`) records another `vqgan_digest` than
    `vqgan_ckpt` has now; a warning when it records none (saved before ulib recorded it), so old runs still load."""
    saved = state.get("vqgan_digest")
    if saved is None:
        warnings.warn(f"{path} does not record which VQGAN it was trained on (saved before ulib recorded it): "
                      f"whether it fits {vqgan_ckpt} cannot be checked", stacklevel=2)
        return
    now = vqgan_digest(vqgan_ckpt)
    if saved != now:
        kind = state.get("config", {}).get("prior", {}).get("kind", "absorbing")
        raise ValueError(f"{path} was trained on tokens of a different {vqgan_ckpt} (digest {saved}, now {now}); "
                         f"retrain it: {retrain_prior_hint(path, kind)}")


def _load(build, cfg: Config, path: Path, device, use_ema: bool, what: str, check=None):
    """Build the model from the run's config (which training stored, with the checkpoint's own settings) and
    load the weights; a config that disagrees with the checkpoint is a ValueError naming the keys. `check(state)`
    runs first, on the loaded checkpoint."""
    state = load_checkpoint(path)
    if check is not None:
        check(state)
    _check_codebook(cfg, state, path)
    model = build(cfg)
    weights = _weights(state, use_ema)
    check_state_dict(model, weights, f"{what} checkpoint {path} does not match the config")
    model.load_state_dict(weights)
    return model.to(device).eval()


def load_run_vqgan(cfg: Config, path: Path, device, use_ema: bool = True) -> VQAutoEncoder:
    """The trained VQGAN autoencoder of a run, in eval mode on `device`."""
    return _load(vqgan_from_config, cfg, path, device, use_ema, "VQGAN")


def load_run_prior(cfg: Config, path: Path, device, use_ema: bool = True, *,
                   vqgan_ckpt: Path | None) -> Transformer:
    """The trained prior transformer of a run, in eval mode on `device`.

    vqgan_ckpt: the VQGAN that will decode its tokens (the run's vqgan.pt): a ValueError when the prior was
    trained on another VQGAN's tokens (`check_prior_pairing`); None loads the prior alone, unchecked."""
    check = None if vqgan_ckpt is None else (lambda state: check_prior_pairing(state, Path(path), Path(vqgan_ckpt)))
    return _load(prior_from_config, cfg, path, device, use_ema, "prior", check)
