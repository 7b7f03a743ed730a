"""Load the checkpoints released with the official code (samb-t/unleashing-transformers) into ulib's modules.

The released files are state dicts in three layouts (VQGAN, absorbing sampler, autoregressive sampler), described
and mapped key for key in `ulib/official_layout.py`, which also writes them (`to_official_state_dict`).

Hyper-parameters use the official names (`nf`, `ch_mult`, ..., `bert_n_emb`, ...) and default to the paper's
configuration, so a released file loads with no arguments: `load_vqgan(path)`, `load_sampler(path, kind)`.
"""
from __future__ import annotations

import math
import numbers
import warnings

from ulib.io.checkpoint import check_state_dict, load_checkpoint
from ulib.io.files import is_int
from ulib.official_layout import (
    ABSORBING_BUFFERS,
    PREFIXES,
    VQGAN_TRAINING_ONLY,
    check_kind,
    mask_problems,
    under_prefix,
)
from ulib.prior.transformer import Transformer
from ulib.vq.model import VQAutoEncoder

__all__ = [
    "PAPER_VQGAN_HPARAMS",
    "PAPER_SAMPLER_HPARAMS",
    "build_vqgan",
    "build_sampler",
    "load_vqgan",
    "load_sampler",
]

# Paper configuration, official names (hparams defaults of the official code; supplementary A).
PAPER_VQGAN_HPARAMS = {
    "n_channels": 3,
    "nf": 128,
    "ch_mult": (1, 1, 2, 2, 4),
    "res_blocks": 2,
    "img_size": 256,
    "attn_resolutions": (16,),
    "codebook_size": 1024,
    "emb_dim": 256,
    "beta": 0.25,  # only used by the training loss; accepted so a full official hparam set can be passed
}
PAPER_SAMPLER_HPARAMS = {
    "bert_n_emb": 512,
    "bert_n_head": 8,
    "bert_n_layers": 24,
    "block_size": 256,  # when not given, prod(latent_shape)
    "codebook_size": 1024,
    "latent_shape": (1, 16, 16),  # (1, h, w), as the official H.latent_shape
}
_ULIB = {"vqgan": "ulib.trained.load_run_vqgan", "absorbing": "ulib.trained.load_run_prior",
         "autoregressive": "ulib.trained.load_run_prior"}

RELEASE_HINT = (
    "The released checkpoints are the `logs/` folder linked from the official README "
    "(https://github.com/samb-t/unleashing-transformers#pre-trained-models, a Google Drive folder: "
    "https://drive.google.com/drive/folders/1pjTYcm-2NNzuAiNEO24gSt9dXu_kGQ6b); download that folder and pass a "
    "file inside it. The official code writes logs/<log_dir>/saved_models/<name>_<step>.th, e.g. (the names the "
    "README's commands use) logs/vqgan_churches/saved_models/vqgan_ema_2200000.th for the VQGAN and "
    "logs/absorbing_churches/saved_models/absorbing_ema_2000000.th for the absorbing sampler."
)


# ---- hyper-parameters --------------------------------------------------------------------------------
_INT, _INTS, _REAL = "an int", "a list/tuple of ints", "a number"
_VQGAN_TYPES = {"n_channels": _INT, "nf": _INT, "ch_mult": _INTS, "res_blocks": _INT, "img_size": _INT,
                "attn_resolutions": _INTS, "codebook_size": _INT, "emb_dim": _INT, "beta": _REAL}
_SAMPLER_TYPES = {"bert_n_emb": _INT, "bert_n_head": _INT, "bert_n_layers": _INT, "block_size": _INT,
                  "codebook_size": _INT, "latent_shape": _INTS}


def _merge(defaults: dict, types: dict, given: dict, what: str) -> dict:
    """defaults updated by `given`; unknown name or wrong type -> ValueError saying what is allowed."""
    unknown = sorted(set(given) - set(types))
    if unknown:
        raise ValueError(f"{what}: unknown hparam(s) {unknown}; allowed (official names): {sorted(types)}")
    out = dict(defaults)
    for name, value in given.items():
        kind = types[name]
        if name == "block_size" and value is None:
            pass  # None = prod(latent_shape)
        elif kind == _INT and not is_int(value):
            raise ValueError(f"{what}: {name}={value!r} must be {kind}")
        elif kind == _REAL and not (isinstance(value, numbers.Real) and not isinstance(value, bool)):
            raise ValueError(f"{what}: {name}={value!r} must be {kind}")
        elif kind == _INTS:
            if not (isinstance(value, (list, tuple)) and all(is_int(v) for v in value)):
                raise ValueError(f"{what}: {name}={value!r} must be {kind}")
            value = tuple(int(v) for v in value)
        out[name] = value
    return out


def _sampler_hparams(given: dict, what: str) -> dict:
    hp = _merge(PAPER_SAMPLER_HPARAMS, _SAMPLER_TYPES, given, what)
    if not hp["latent_shape"] or any(s < 1 for s in hp["latent_shape"]):
        raise ValueError(f"{what}: latent_shape={hp['latent_shape']} must be non-empty with every size >= 1")
    if given.get("block_size") is None:  # not given (or None): the official default, one position per latent
        hp["block_size"] = math.prod(hp["latent_shape"])
    return hp


def build_vqgan(**hparams) -> VQAutoEncoder:
    """A freshly initialised `VQAutoEncoder` from official hparam names (defaults: the paper's)."""
    hp = _merge(PAPER_VQGAN_HPARAMS, _VQGAN_TYPES, hparams, "VQGAN")
    return VQAutoEncoder(hp["img_size"], n_channels=hp["n_channels"], nf=hp["nf"], ch_mult=hp["ch_mult"],
                         res_blocks=hp["res_blocks"], attn_resolutions=hp["attn_resolutions"],
                         codebook_size=hp["codebook_size"], emb_dim=hp["emb_dim"], beta=float(hp["beta"]))


def build_sampler(kind: str, **hparams) -> Transformer:
    """A freshly initialised `Transformer` for `kind` ('absorbing' or 'autoregressive'), official hparam names."""
    check_kind(kind)
    hp = _sampler_hparams(hparams, f"{kind} sampler")
    return Transformer(codebook_size=hp["codebook_size"], block_size=hp["block_size"], n_emb=hp["bert_n_emb"],
                       n_head=hp["bert_n_head"], n_layers=hp["bert_n_layers"], dropout=0.0,
                       causal=kind == "autoregressive")


# ---- files -------------------------------------------------------------------------------------------
def _read(path, what: str) -> dict:
    """The state dict in `path` (torch.load weights_only=True); a missing file says where released files go."""
    state = load_checkpoint(path, what=f"official {what} checkpoint", hint=RELEASE_HINT)
    odd = [k for k in state if not isinstance(k, str)]
    if odd:
        raise ValueError(f"{str(path)!r} is not a state dict: it has non-string keys {odd[:5]}")
    return state


def _looks_like(state: dict) -> str | None:
    """What kind of file `state` seems to be, for error hints."""
    if isinstance(state.get("model"), dict) and ("config" in state or "ema" in state):
        return "a ulib training checkpoint (keys model/ema/config)"
    for kind, prefix in PREFIXES.items():
        if any(k.startswith(prefix + ".") for k in state):
            return f"an official {kind} file (keys under '{prefix}.')"
    if "encoder.blocks.0.weight" in state:
        return "a bare autoencoder state dict"
    if "tok_emb.weight" in state:
        return "a bare transformer state dict (no '_denoise_fn.' / 'net.' prefix)"
    return None


def _wrong_file(path, state: dict, kind: str) -> ValueError:
    guess = _looks_like(state)
    msg = f"{str(path)!r} is not an official {kind} file: it has no '{PREFIXES[kind]}.' keys"
    if kind == "vqgan":
        msg += " (nor bare autoencoder keys such as 'encoder.blocks.0.weight')"
    if guess:
        msg += f"; it looks like {guess}"
        if guess.startswith("a ulib"):
            msg += f"; load it with {_ULIB[kind]}"
        for other in PREFIXES:
            if other != kind and guess.startswith(f"an official {other}"):
                msg += ("; use load_vqgan(path)" if other == "vqgan" else f"; use load_sampler(path, {other!r})")
    else:
        msg += f"; first keys: {list(state)[:5]}"
    return ValueError(msg)


def _describe(hp: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in hp.items())


def load_vqgan(path, *, device="cpu", **hparams) -> VQAutoEncoder:
    """The autoencoder of an official VQGAN file (vqgan_ema_STEP.th / vqgan_STEP.th), in eval mode on `device`.

    `hparams`: official names (n_channels, nf, ch_mult, res_blocks, img_size, attn_resolutions, codebook_size,
    emb_dim, beta), defaulting to PAPER_VQGAN_HPARAMS. The file's `ae.*` keys load with the prefix removed;
    `disc.*` and `perceptual.*` are ignored; any other extra key, any missing key or shape mismatch raises a
    ValueError listing them. Also accepted: a file holding bare autoencoder keys (no `ae.` prefix), and a file
    without the `generator.logsigma.*` head (the ELBO fine-tuning head, never used by encode/decode; the
    official scripts load generators with strict=False for this reason) - those weights then stay freshly
    initialised and a warning says so.
    """
    hp = _merge(PAPER_VQGAN_HPARAMS, _VQGAN_TYPES, hparams, "load_vqgan")
    state = _read(path, "VQGAN")
    model = build_vqgan(**hp)
    if any(k.startswith("ae.") for k in state):
        layout, prefix = under_prefix("ae", model), "ae."
    elif "encoder.blocks.0.weight" in state:
        layout, prefix = model, ""
    else:
        raise _wrong_file(path, state, "vqgan")
    weights = {k: v for k, v in state.items() if not k.startswith(VQGAN_TRAINING_ONLY)}
    head = f"{prefix}generator.logsigma."
    if not any(k.startswith(head) for k in weights):
        warnings.warn(f"{str(path)!r} has no {head}* weights (the ELBO fine-tuning head, unused by encode/decode); "
                      "keeping freshly initialised ones", stacklevel=2)
        weights.update({k: v for k, v in layout.state_dict().items() if k.startswith(head)})
    check_state_dict(layout, weights, f"official VQGAN file {str(path)!r} does not fit the model built from "
                     f"hparams ({_describe(hp)})", ignore_prefixes=VQGAN_TRAINING_ONLY)
    layout.load_state_dict(weights)
    return model.to(device).eval()


def load_sampler(path, kind: str, *, device="cpu", **hparams) -> Transformer:
    """The transformer of an official sampler file, in eval mode on `device`; `model(x)` -> (B, L, codebook_size).

    kind 'absorbing' (absorbing_ema_STEP.th): `_denoise_fn.*` keys; Lt_history, Lt_count, loss_history ignored.
    x may hold the mask id (= codebook_size).
    kind 'autoregressive' (autoregressive_ema_STEP.th): `net.*` keys; the `net.blocks.N.attn.mask` buffers must
    be the (1, 1, n, n) lower-triangular ones (n = prod(latent_shape)) and are then dropped. x is the token
    sequence without its last token; the start token is prepended inside, so output position i predicts x_i.
    `hparams`: bert_n_emb, bert_n_head, bert_n_layers, block_size (default prod(latent_shape)), codebook_size,
    latent_shape; defaults PAPER_SAMPLER_HPARAMS. Extra, missing or mis-shaped keys raise a ValueError naming them.
    """
    check_kind(kind)
    hp = _sampler_hparams(hparams, f"load_sampler({kind!r})")
    state = _read(path, f"{kind} sampler")
    prefix = PREFIXES[kind]
    if not any(k.startswith(prefix + ".") for k in state):
        raise _wrong_file(path, state, kind)
    model = build_sampler(kind, **hp)
    layout = under_prefix(prefix, model)
    problems: list[str] = []
    if kind == "absorbing":
        weights = {k: v for k, v in state.items() if k not in ABSORBING_BUFFERS}
    else:
        weights, problems = mask_problems(state, len(model.blocks), math.prod(hp["latent_shape"]))
    what = f"official {kind} sampler file {str(path)!r} does not fit the model built from hparams ({_describe(hp)})"
    try:
        check_state_dict(layout, weights, what)
    except ValueError as e:
        if problems:
            raise ValueError(f"{e}\n  attention mask buffers:\n" + "\n".join(f"    {p}" for p in problems)) from None
        raise
    if problems:
        raise ValueError(f"{what}:\n  attention mask buffers:\n" + "\n".join(f"    {p}" for p in problems))
    layout.load_state_dict(weights)
    return model.to(device).eval()
