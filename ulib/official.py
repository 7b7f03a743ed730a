"""Load the checkpoints released with the official code (samb-t/unleashing-transformers) into ulib's modules.

The official code saves `model.state_dict()` to `logs/<log_dir>/saved_models/<name>_<step>.th`
(utils/log_utils.py `save_model`). The released files come in three layouts:

- VQGAN (`vqgan_ema_<step>.th`, `vqgan_<step>.th`): the whole `VQGAN` training module. Its `ae.*` keys are
  the autoencoder, which is `ulib.vq.model.VQAutoEncoder` key for key; `disc.*` (patch discriminator) and
  `perceptual.*` (LPIPS) are training-only and ignored here.
- absorbing sampler (`absorbing_ema_<step>.th`): the whole `AbsorbingDiffusion` module. `_denoise_fn.*` is the
  transformer (`ulib.prior.transformer.Transformer`, causal=False); the buffers `Lt_history`, `Lt_count`,
  `loss_history` (length diffusion_steps+1) are training statistics for importance sampling, ignored here.
- autoregressive sampler (`autoregressive_ema_<step>.th`): `net.*` is the transformer (causal=True). Its attention
  layers also hold a buffer `net.blocks.N.attn.mask` = tril(ones(n, n)) viewed (1, 1, n, n), n = prod(latent_shape);
  ours gets the same masking from `scaled_dot_product_attention(is_causal=True)`, so the buffers are checked
  (lower-triangular pattern, shape) and dropped.

Hyper-parameters use the official names (`nf`, `ch_mult`, ..., `bert_n_emb`, ...) and default to the paper's
configuration, so a released file loads with no arguments. `to_official_state_dict` writes the other way, which
the tests use for round trips (and which lets the official scripts read a ulib-trained model).
"""
from __future__ import annotations

import math
import numbers
import re
import warnings

import torch
import torch.nn as nn

from ulib.io.checkpoint import check_state_dict, load_checkpoint, unwrap
from ulib.io.files import is_int
from ulib.prior.transformer import Transformer
from ulib.vq.model import VQAutoEncoder

__all__ = [
    "PAPER_VQGAN_HPARAMS",
    "PAPER_SAMPLER_HPARAMS",
    "PAPER_TOTAL_STEPS",
    "SAMPLER_KINDS",
    "build_vqgan",
    "build_sampler",
    "load_vqgan",
    "load_sampler",
    "to_official_state_dict",
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
PAPER_TOTAL_STEPS = 256  # diffusion steps T: the absorbing file's buffers have length T + 1
SAMPLER_KINDS = ("absorbing", "autoregressive")

_PREFIX = {"vqgan": "ae", "absorbing": "_denoise_fn", "autoregressive": "net"}
_ABSORBING_BUFFERS = ("Lt_history", "Lt_count", "loss_history")
_VQGAN_TRAINING_ONLY = ("disc.", "perceptual.")
_MASK_KEY = re.compile(r"net\.blocks\.(\d+)\.attn\.mask")
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


def _check_kind(kind, allowed=SAMPLER_KINDS) -> str:
    if kind not in allowed:
        raise ValueError(f"kind={kind!r}; allowed: {', '.join(map(repr, allowed))}")
    return kind


def build_vqgan(**hparams) -> VQAutoEncoder:
    """A freshly initialised `VQAutoEncoder` from official hparam names (defaults: the paper's)."""
    hp = _merge(PAPER_VQGAN_HPARAMS, _VQGAN_TYPES, hparams, "VQGAN")
    return VQAutoEncoder(hp["img_size"], n_channels=hp["n_channels"], nf=hp["nf"], ch_mult=hp["ch_mult"],
                         res_blocks=hp["res_blocks"], attn_resolutions=hp["attn_resolutions"],
                         codebook_size=hp["codebook_size"], emb_dim=hp["emb_dim"], beta=float(hp["beta"]))


def build_sampler(kind: str, **hparams) -> Transformer:
    """A freshly initialised `Transformer` for `kind` ('absorbing' or 'autoregressive'), official hparam names."""
    _check_kind(kind)
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
    for kind, prefix in _PREFIX.items():
        if any(k.startswith(prefix + ".") for k in state):
            return f"an official {kind} file (keys under '{prefix}.')"
    if "encoder.blocks.0.weight" in state:
        return "a bare autoencoder state dict"
    if "tok_emb.weight" in state:
        return "a bare transformer state dict (no '_denoise_fn.' / 'net.' prefix)"
    return None


def _wrong_file(path, state: dict, kind: str) -> ValueError:
    guess = _looks_like(state)
    msg = f"{str(path)!r} is not an official {kind} file: it has no '{_PREFIX[kind]}.' keys"
    if kind == "vqgan":
        msg += " (nor bare autoencoder keys such as 'encoder.blocks.0.weight')"
    if guess:
        msg += f"; it looks like {guess}"
        if guess.startswith("a ulib"):
            msg += f"; load it with {_ULIB[kind]}"
        for other in _PREFIX:
            if other != kind and guess.startswith(f"an official {other}"):
                msg += ("; use load_vqgan(path)" if other == "vqgan" else f"; use load_sampler(path, {other!r})")
    else:
        msg += f"; first keys: {list(state)[:5]}"
    return ValueError(msg)


def _under(prefix: str, module: nn.Module) -> nn.Module:
    """A holder whose state-dict keys are `prefix.` + module's, so checks and errors use the official names."""
    holder = nn.Module()
    holder.add_module(prefix, module)
    return holder


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
        layout, prefix = _under("ae", model), "ae."
    elif "encoder.blocks.0.weight" in state:
        layout, prefix = model, ""
    else:
        raise _wrong_file(path, state, "vqgan")
    weights = {k: v for k, v in state.items() if not k.startswith(_VQGAN_TRAINING_ONLY)}
    head = f"{prefix}generator.logsigma."
    if not any(k.startswith(head) for k in weights):
        warnings.warn(f"{str(path)!r} has no {head}* weights (the ELBO fine-tuning head, unused by encode/decode); "
                      "keeping freshly initialised ones", stacklevel=2)
        weights.update({k: v for k, v in layout.state_dict().items() if k.startswith(head)})
    check_state_dict(layout, weights, f"official VQGAN file {str(path)!r} does not fit the model built from "
                     f"hparams ({_describe(hp)})", ignore_prefixes=_VQGAN_TRAINING_ONLY)
    layout.load_state_dict(weights)
    return model.to(device).eval()


def _mask_problems(state: dict, n_layers: int, n: int) -> tuple[dict, list[str]]:
    """Split off the AR attention masks; list any missing, unexpected, mis-shaped or non-causal ones."""
    masks = {k: v for k, v in state.items() if _MASK_KEY.fullmatch(k)}
    expected = {f"net.blocks.{i}.attn.mask" for i in range(n_layers)}
    problems = [f"missing {k}" for k in sorted(expected - set(masks))]
    problems += [f"unexpected {k}" for k in sorted(set(masks) - expected)]
    for k in sorted(set(masks) & expected):
        m = masks[k]
        if not isinstance(m, torch.Tensor) or tuple(m.shape) != (1, 1, n, n):
            problems.append(f"{k}: shape {tuple(getattr(m, 'shape', ()))}, expected (1, 1, {n}, {n}) with "
                            f"n = prod(latent_shape)")
        elif not torch.equal(m[0, 0] != 0, torch.ones(n, n, dtype=torch.bool).tril()):
            # the official forward masks exactly where the buffer is 0: it must be zero above the diagonal only
            problems.append(f"{k}: not lower-triangular ones (nonzero exactly on and below the diagonal)")
    return {k: v for k, v in state.items() if k not in masks}, problems


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
    _check_kind(kind)
    hp = _sampler_hparams(hparams, f"load_sampler({kind!r})")
    state = _read(path, f"{kind} sampler")
    prefix = _PREFIX[kind]
    if not any(k.startswith(prefix + ".") for k in state):
        raise _wrong_file(path, state, kind)
    model = build_sampler(kind, **hp)
    layout = _under(prefix, model)
    problems: list[str] = []
    if kind == "absorbing":
        weights = {k: v for k, v in state.items() if k not in _ABSORBING_BUFFERS}
    else:
        weights, problems = _mask_problems(state, len(model.blocks), math.prod(hp["latent_shape"]))
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


# ---- writing the official layout ---------------------------------------------------------------------
def to_official_state_dict(model: nn.Module, kind: str, total_steps: int = PAPER_TOTAL_STEPS,
                           latent_shape=None) -> dict:
    """`model`'s weights in the layout of an official file of `kind` ('vqgan', 'absorbing', 'autoregressive').

    vqgan: `ae.` + the VQAutoEncoder keys (no disc./perceptual.: the official samplers read only `ae.*`).
    absorbing: zero buffers Lt_history, Lt_count, loss_history of length total_steps + 1, then `_denoise_fn.` keys.
    autoregressive: `net.` keys with a tril(ones) (1, 1, n, n) `attn.mask` buffer in every block, n =
    prod(latent_shape) if given, else the model's block_size (equal in every official configuration).
    Tensors are shared with the model, as with `state_dict()`; torch.save copies them.
    """
    _check_kind(kind, ("vqgan",) + SAMPLER_KINDS)
    model = unwrap(model)
    if kind == "vqgan":
        if not isinstance(model, VQAutoEncoder):
            raise ValueError(f"kind='vqgan' needs a VQAutoEncoder, got {type(model).__name__}")
        return {f"ae.{k}": v for k, v in model.state_dict().items()}
    if not isinstance(model, Transformer) or model.causal != (kind == "autoregressive"):
        got = f"Transformer(causal={model.causal})" if isinstance(model, Transformer) else type(model).__name__
        raise ValueError(f"kind={kind!r} needs a Transformer(causal={kind == 'autoregressive'}), got {got}")
    sd = model.state_dict()
    device = model.pos_emb.device
    if kind == "absorbing":
        if not is_int(total_steps) or total_steps < 1:
            raise ValueError(f"total_steps={total_steps!r} must be an int >= 1")
        out = {name: torch.zeros(total_steps + 1, device=device) for name in _ABSORBING_BUFFERS}
        out.update({f"_denoise_fn.{k}": v for k, v in sd.items()})
        return out
    n = math.prod(latent_shape) if latent_shape is not None else model.block_size
    out = {}
    for k, v in sd.items():
        m = re.fullmatch(r"blocks\.(\d+)\.attn\.key\.weight", k)
        if m:  # the official attention registers its buffer before its Linear layers
            out[f"net.blocks.{m.group(1)}.attn.mask"] = torch.ones(n, n, device=device).tril().view(1, 1, n, n)
        out[f"net.{k}"] = v
    return out
