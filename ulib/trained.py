"""A run's trained models: rebuilt from its Config and loaded from its checkpoints (the paper's released files:
`ulib.official`)."""
from __future__ import annotations

from pathlib import Path

from ulib.config import Config
from ulib.io.checkpoint import check_state_dict, load_checkpoint
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


def _load(build, cfg: Config, path: Path, device, use_ema: bool, what: str):
    """Build the model from the run's config (which training stored, with the checkpoint's own settings) and
    load the weights; a config that disagrees with the checkpoint is a ValueError naming the keys."""
    state = load_checkpoint(path)
    _check_codebook(cfg, state, path)
    model = build(cfg)
    weights = _weights(state, use_ema)
    check_state_dict(model, weights, f"{what} checkpoint {path} does not match the config")
    model.load_state_dict(weights)
    return model.to(device).eval()


def load_run_vqgan(cfg: Config, path: Path, device, use_ema: bool = True) -> VQAutoEncoder:
    """The trained VQGAN autoencoder of a run, in eval mode on `device`."""
    return _load(vqgan_from_config, cfg, path, device, use_ema, "VQGAN")


def load_run_prior(cfg: Config, path: Path, device, use_ema: bool = True) -> Transformer:
    """The trained prior transformer of a run, in eval mode on `device`."""
    return _load(prior_from_config, cfg, path, device, use_ema, "prior")
