"""Loading the official (samb-t/unleashing-transformers) checkpoints: layout, errors, round trips, and equivalence.

The equivalence tests hold a reference forward pass written here from the official code's facts, with explicit
ops on the raw official-layout state dict (no ulib module involved):
- models/transformer.py: tok_emb(idx); AR: start_tok repeated over the batch and concatenated *before* the
  tokens; + pos_emb[:, :T] (the first T positions, also for the absorbing model); pre-LN blocks
  x + attn(ln1(x)), x + mlp(ln2(x)); attention softmax(q k^T / sqrt(head_dim)), AR masked where the
  tril buffer is 0; nn.GELU() (exact erf); nn.LayerNorm (eps 1e-5); ln_f; head without bias.
- models/vqgan.py: GroupNorm(32 groups, eps 1e-6); swish x*sigmoid(x); ResBlock norm-swish-conv twice plus
  conv_out(x) on the skip only when channels change; AttnBlock scale int(c)**-0.5; Downsample pad (0,1,0,1)
  then 3x3 stride-2 conv; Upsample nearest x2 then 3x3 conv; encoder/generator end with GroupNorm then conv,
  NO swish between; codes by argmin of ||z||^2 + ||e||^2 - 2 z.e; decoding through one_hot(idx) @ codebook.
"""
import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from ulib.official import (
    PAPER_SAMPLER_HPARAMS,
    PAPER_VQGAN_HPARAMS,
    build_sampler,
    build_vqgan,
    load_sampler,
    load_vqgan,
)
from ulib.official_layout import to_official_state_dict
from ulib.prior.transformer import Transformer
from ulib.vq.model import VQAutoEncoder

from helpers import OFFICIAL_KEYS_OF

SMALL_VQ = dict(n_channels=3, nf=32, ch_mult=(1, 1, 2), res_blocks=2, img_size=16, attn_resolutions=(8,),
                codebook_size=16, emb_dim=8)
SMALL_T = dict(bert_n_emb=32, bert_n_head=4, bert_n_layers=2, codebook_size=24, latent_shape=(1, 4, 4))  # block 16
FAKE_TRAINING_KEYS = {"disc.main.0.weight": (64, 3, 4, 4), "disc.main.0.bias": (64,),
                      "perceptual.net.slice1.0.weight": (64, 3, 3, 3), "perceptual.lin0.model.1.weight": (1, 64, 1, 1)}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny ops: with the cores shared, OpenMP hand-offs cost more than the maths (47 ms vs 0.2 ms a conv)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def ref(official_keys):
    return official_keys


def save(tmp_path, name, sd):
    path = tmp_path / name
    torch.save(sd, path)
    return path


# ---- official layouts, written from the official constructors ----------------------------------------
def official_transformer_shapes(kind, n_emb, n_layers, block_size, codebook_size, mask_side=None, total_steps=256):
    """Key -> shape of an official sampler file (models/transformer.py, absorbing_diffusion.py, autoregressive.py)."""
    C, ar = n_emb, kind == "autoregressive"
    shapes = {} if ar else {name: (total_steps + 1,) for name in ("Lt_history", "Lt_count", "loss_history")}
    p = "net." if ar else "_denoise_fn."
    shapes.update({p + "pos_emb": (1, block_size, C), p + "start_tok": (1, 1, C),
                   p + "tok_emb.weight": (codebook_size if ar else codebook_size + 1, C)})
    for i in range(n_layers):
        b = f"{p}blocks.{i}."
        shapes.update({b + "ln1.weight": (C,), b + "ln1.bias": (C,), b + "ln2.weight": (C,), b + "ln2.bias": (C,)})
        if ar:
            n = mask_side or block_size
            shapes[b + "attn.mask"] = (1, 1, n, n)
        for lin in ("key", "query", "value", "proj"):
            shapes.update({f"{b}attn.{lin}.weight": (C, C), f"{b}attn.{lin}.bias": (C,)})
        shapes.update({b + "mlp.0.weight": (4 * C, C), b + "mlp.0.bias": (4 * C,),
                       b + "mlp.2.weight": (C, 4 * C), b + "mlp.2.bias": (C,)})
    shapes.update({p + "ln_f.weight": (C,), p + "ln_f.bias": (C,), p + "head.weight": (codebook_size, C)})
    return shapes


def official_vqgan_blocks(hp):
    """The official Encoder / Generator `blocks` lists as specs: (op, in_channels, out_channels)."""
    nf, mult, n_res, attn = hp["nf"], tuple(hp["ch_mult"]), hp["res_blocks"], tuple(hp["attn_resolutions"])
    enc, res, ch = [("conv", hp["n_channels"], nf)], hp["img_size"], nf
    for i, m in enumerate(mult):
        ch = nf * ((1,) + mult)[i]
        for _ in range(n_res):
            enc.append(("res", ch, nf * m))
            ch = nf * m
            if res in attn:
                enc.append(("attn", ch, ch))
        if i != len(mult) - 1:
            enc.append(("down", ch, ch))
            res //= 2
    enc += [("res", ch, ch), ("attn", ch, ch), ("res", ch, ch), ("norm", ch, ch), ("conv", ch, hp["emb_dim"])]
    ch = nf * mult[-1]
    gen = [("conv", hp["emb_dim"], ch), ("res", ch, ch), ("attn", ch, ch), ("res", ch, ch)]
    for i in reversed(range(len(mult))):
        for _ in range(n_res):
            gen.append(("res", ch, nf * mult[i]))
            ch = nf * mult[i]
            if res in attn:
                gen.append(("attn", ch, ch))
        if i != 0:
            gen.append(("up", ch, ch))
            res *= 2
    gen += [("norm", ch, ch), ("conv", ch, hp["n_channels"])]
    return enc, gen, ch


def official_vqgan_shapes(hp):
    """Key -> shape of the `ae.*` part of an official VQGAN file (models/vqgan.py)."""
    def conv(name, cin, cout, k):
        return {name + ".weight": (cout, cin, k, k), name + ".bias": (cout,)}

    def norm(name, c):
        return {name + ".weight": (c,), name + ".bias": (c,)}

    def blocks(prefix, specs):
        out = {}
        for i, (op, cin, cout) in enumerate(specs):
            p = f"{prefix}.blocks.{i}"
            if op == "conv":
                out.update(conv(p, cin, cout, 3))
            elif op == "norm":
                out.update(norm(p, cin))
            elif op in ("down", "up"):
                out.update(conv(p + ".conv", cin, cin, 3))
            elif op == "res":
                out.update({**norm(p + ".norm1", cin), **conv(p + ".conv1", cin, cout, 3), **norm(p + ".norm2", cout),
                            **conv(p + ".conv2", cout, cout, 3), **conv(p + ".conv_out", cin, cout, 1)})
            else:  # attn
                out.update(norm(p + ".norm", cin))
                for name in ("q", "k", "v", "proj_out"):
                    out.update(conv(f"{p}.{name}", cin, cin, 1))
        return out

    enc, gen, ch = official_vqgan_blocks(hp)
    shapes = blocks("ae.encoder", enc)
    shapes["ae.quantize.embedding.weight"] = (hp["codebook_size"], hp["emb_dim"])
    shapes.update(blocks("ae.generator", gen))
    shapes.update({**conv("ae.generator.logsigma.0", ch, ch, 3),
                   **conv("ae.generator.logsigma.2", ch, hp["n_channels"], 1)})
    return shapes


def random_values(shapes, gen, scale=None):
    """Random tensors for `shapes`; attention masks are tril ones. scale=None: sizes that keep activations O(1)."""
    out = {}
    for k, shape in shapes.items():
        if k.endswith("attn.mask"):
            n = shape[-1]
            out[k] = torch.ones(n, n).tril().view(1, 1, n, n)
        elif scale is not None:
            out[k] = torch.randn(shape, generator=gen) * scale
        elif k in ("Lt_history", "Lt_count", "loss_history"):
            out[k] = torch.rand(shape, generator=gen)
        elif k.endswith("bias"):
            out[k] = 0.1 * torch.randn(shape, generator=gen)
        elif len(shape) == 1:  # LayerNorm / GroupNorm scale
            out[k] = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        elif k.endswith(("tok_emb.weight", "embedding.weight", "start_tok")):
            out[k] = torch.randn(shape, generator=gen)
        elif k.endswith("pos_emb"):
            out[k] = 0.5 * torch.randn(shape, generator=gen)
        else:  # Linear (out, in) or Conv (out, in, k, k): unit-variance outputs
            out[k] = torch.randn(shape, generator=gen) / math.sqrt(math.prod(shape[1:]))
    return out


def strip(sd, prefix):
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


# ---- reference forward passes: explicit ops on the official state dict --------------------------------
def softmax(a):
    e = torch.exp(a - a.amax(dim=-1, keepdim=True))
    return e / e.sum(dim=-1, keepdim=True)


def layer_norm(x, w, b, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * w + b


def gelu(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def official_transformer_forward(sd, idx, n_head, causal):
    """sd: official transformer keys (prefix removed); idx (B, L) -> logits (B, L(+1 if causal), K)."""
    def linear(x, name):
        return x @ sd[name + ".weight"].t() + sd[name + ".bias"]

    x = sd["tok_emb.weight"][idx]  # (B, L, C)
    if causal:
        x = torch.cat([sd["start_tok"].repeat(idx.shape[0], 1, 1), x], dim=1)
    B, T, C = x.shape
    x = x + sd["pos_emb"][:, :T, :]
    hs = C // n_head
    n_layers = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
    for i in range(n_layers):
        p = f"blocks.{i}."
        h = layer_norm(x, sd[p + "ln1.weight"], sd[p + "ln1.bias"])
        q, k, v = (linear(h, p + "attn." + n).view(B, T, n_head, hs).transpose(1, 2) for n in ("query", "key", "value"))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))  # (B, nh, T, T)
        if causal:
            att = att.masked_fill(sd[p + "attn.mask"][:, :, :T, :T] == 0, float("-inf"))
        y = (softmax(att) @ v).transpose(1, 2).reshape(B, T, C)
        x = x + linear(y, p + "attn.proj")
        h = layer_norm(x, sd[p + "ln2.weight"], sd[p + "ln2.bias"])
        x = x + linear(gelu(linear(h, p + "mlp.0")), p + "mlp.2")
    x = layer_norm(x, sd["ln_f.weight"], sd["ln_f.bias"])
    return x @ sd["head.weight"].t()


def group_norm(x, w, b, groups=32, eps=1e-6):
    B, C, H, W = x.shape
    g = x.reshape(B, groups, -1)
    mean = g.mean(-1, keepdim=True)
    var = ((g - mean) ** 2).mean(-1, keepdim=True)
    x = ((g - mean) / torch.sqrt(var + eps)).reshape(B, C, H, W)
    return x * w[None, :, None, None] + b[None, :, None, None]


def swish(x):
    return x * torch.sigmoid(x)


def run_blocks(sd, prefix, specs, x):
    def conv(x, name, stride=1):
        w = sd[name + ".weight"]
        return F.conv2d(x, w, sd[name + ".bias"], stride=stride, padding=w.shape[-1] // 2 if stride == 1 else 0)

    def gn(x, name):
        return group_norm(x, sd[name + ".weight"], sd[name + ".bias"])

    for i, (op, cin, cout) in enumerate(specs):
        p = f"{prefix}.blocks.{i}"
        if op == "conv":
            x = conv(x, p)
        elif op == "norm":  # no swish follows: the next block is the final conv
            x = gn(x, p)
        elif op == "down":
            x = conv(F.pad(x, (0, 1, 0, 1)), p + ".conv", stride=2)
        elif op == "up":
            x = conv(x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3), p + ".conv")
        elif op == "res":
            h = conv(swish(gn(x, p + ".norm1")), p + ".conv1")
            h = conv(swish(gn(h, p + ".norm2")), p + ".conv2")
            x = (conv(x, p + ".conv_out") if cin != cout else x) + h
        else:  # attn
            h = gn(x, p + ".norm")
            q, k, v = (conv(h, f"{p}.{n}") for n in ("q", "k", "v"))
            b, c, hh, ww = q.shape
            w_ = torch.bmm(q.reshape(b, c, -1).permute(0, 2, 1), k.reshape(b, c, -1)) * (c ** -0.5)  # (b, hw, hw)
            w_ = softmax(w_)
            h = torch.bmm(v.reshape(b, c, -1), w_.permute(0, 2, 1)).reshape(b, c, hh, ww)
            x = x + conv(h, p + ".proj_out")
    return x


def official_encode(sd, hp, x):
    enc, _, _ = official_vqgan_blocks(hp)
    z = run_blocks(sd, "encoder", enc, x)  # (B, D, h, w)
    B, D, h, w = z.shape
    flat = z.permute(0, 2, 3, 1).reshape(-1, D)
    e = sd["quantize.embedding.weight"]
    d = (flat ** 2).sum(dim=1, keepdim=True) + (e ** 2).sum(1) - 2 * flat @ e.t()
    return z, d.argmin(dim=1).reshape(B, h, w)


def official_decode(sd, hp, idx):
    _, gen, _ = official_vqgan_blocks(hp)
    B, h, w = idx.shape
    e = sd["quantize.embedding.weight"]
    z_q = (F.one_hot(idx.reshape(-1), e.shape[0]).float() @ e).view(B, h, w, -1).permute(0, 3, 1, 2)
    return run_blocks(sd, "generator", gen, z_q)


# ---- (0) constants and layouts agree with the reference file -----------------------------------------
def test_paper_hparams_match_the_reference_file(ref):
    hp = ref["paper_hparams"]
    for k, v in PAPER_VQGAN_HPARAMS.items():
        assert list(v) == hp["vqgan"][k] if isinstance(v, tuple) else v == hp["vqgan"][k], k
    for kind in ("absorbing", "autoregressive"):
        for k, v in PAPER_SAMPLER_HPARAMS.items():
            expected = hp["vqgan"]["latent_shape"] if k == "latent_shape" else hp[kind][k]
            assert (list(v) if isinstance(v, tuple) else v) == expected, (kind, k)
    assert hp["absorbing"]["mask_token_id"] == PAPER_SAMPLER_HPARAMS["codebook_size"]


def test_hand_written_layouts_equal_the_reference_file(ref):
    """The layouts the reference forward passes assume are those of the released files (keys, order, shapes)."""
    vq = official_vqgan_shapes(PAPER_VQGAN_HPARAMS)
    assert list(vq.items()) == [(k, tuple(v)) for k, v in ref[OFFICIAL_KEYS_OF["vqgan"]].items()]
    hp = PAPER_SAMPLER_HPARAMS
    for kind in ("absorbing", "autoregressive"):
        shapes = official_transformer_shapes(kind, hp["bert_n_emb"], hp["bert_n_layers"], hp["block_size"],
                                             hp["codebook_size"])
        assert list(shapes.items()) == [(k, tuple(v)) for k, v in ref[OFFICIAL_KEYS_OF[kind]].items()], kind


# ---- (1) the paper configuration loads with nothing missing or unexpected ----------------------------
@pytest.mark.parametrize("kind", ["vqgan", "absorbing", "autoregressive"])
def test_paper_size_files_load_completely(ref, tmp_path, kind):
    gen = torch.Generator().manual_seed(0)
    shapes = {k: tuple(v) for k, v in ref[OFFICIAL_KEYS_OF[kind]].items()}
    if kind == "vqgan":
        shapes.update(FAKE_TRAINING_KEYS)
    sd = random_values(shapes, gen, scale=0.02)
    path = save(tmp_path, f"{kind}_ema_1.th", sd)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = load_vqgan(path) if kind == "vqgan" else load_sampler(path, kind)
    assert not model.training
    assert isinstance(model, VQAutoEncoder if kind == "vqgan" else Transformer)
    prefix = {"vqgan": "ae.", "absorbing": "_denoise_fn.", "autoregressive": "net."}[kind]
    loaded = model.state_dict()
    assert set(loaded) == {k[len(prefix):] for k in sd if k.startswith(prefix) and not k.endswith("attn.mask")}
    for k, v in loaded.items():
        assert torch.equal(v, sd[prefix + k]), k


# ---- (2) extra, missing and mis-shaped keys are named ------------------------------------------------
def small_file(kind):
    gen = torch.Generator().manual_seed(1)
    if kind == "vqgan":
        shapes = {**official_vqgan_shapes(SMALL_VQ), **FAKE_TRAINING_KEYS}
    else:
        shapes = official_transformer_shapes(kind, SMALL_T["bert_n_emb"], SMALL_T["bert_n_layers"], 16,
                                             SMALL_T["codebook_size"])
    return random_values(shapes, gen)


def load_small(path, kind, **hp):
    return load_vqgan(path, **SMALL_VQ, **hp) if kind == "vqgan" else load_sampler(path, kind, **SMALL_T, **hp)


CASES = {  # kind: (an unknown extra key, a key to delete, a key to give a wrong shape)
    "vqgan": ("ae.encoder.blocks.1.extra.weight", "ae.quantize.embedding.weight", "ae.generator.blocks.0.weight"),
    "absorbing": ("_denoise_fn.blocks.0.attn.mask", "_denoise_fn.head.weight", "_denoise_fn.tok_emb.weight"),
    "autoregressive": ("Lt_history", "net.ln_f.bias", "net.pos_emb"),
}


@pytest.mark.parametrize("kind", list(CASES))
@pytest.mark.parametrize("fault", ["extra", "missing", "shape"])
def test_bad_keys_are_named(tmp_path, kind, fault):
    sd = small_file(kind)
    extra, missing, shaped = CASES[kind]
    key = {"extra": extra, "missing": missing, "shape": shaped}[fault]
    if fault == "extra":
        sd[key] = torch.zeros(3)
    elif fault == "missing":
        del sd[key]
    else:
        sd[key] = torch.zeros(*(s + 1 for s in sd[key].shape))
    path = save(tmp_path, "bad.th", sd)
    with pytest.raises(ValueError) as err:
        load_small(path, kind)
    assert key in str(err.value) and str(path) in str(err.value)
    assert {"extra": "unexpected", "missing": "missing", "shape": "shape mismatch"}[fault] in str(err.value)


def test_unknown_top_level_keys_are_named(tmp_path):
    for kind in CASES:
        sd = small_file(kind)
        sd["step"] = torch.tensor(5)
        path = save(tmp_path, f"{kind}.th", sd)
        with pytest.raises(ValueError, match=r"unexpected[\s\S]*step"):
            load_small(path, kind)


def test_autoregressive_mask_buffers_are_checked(tmp_path):
    mask = "net.blocks.1.attn.mask"
    for change, words in [("ones", "not lower-triangular"), ("upper", "not lower-triangular"),
                          ("shape", "expected (1, 1, 16, 16)"), ("missing", "missing"), ("extra", "unexpected")]:
        sd = small_file("autoregressive")
        key = mask
        if change == "ones":
            sd[key] = torch.ones(1, 1, 16, 16)
        elif change == "upper":
            sd[key] = torch.ones(16, 16).triu().view(1, 1, 16, 16)
        elif change == "shape":
            sd[key] = torch.ones(8, 8).tril().view(1, 1, 8, 8)
        elif change == "missing":
            del sd[key]
        else:
            key = "net.blocks.2.attn.mask"
            sd[key] = sd[mask]
        path = save(tmp_path, "ar.th", sd)
        with pytest.raises(ValueError) as err:
            load_small(path, "autoregressive")
        assert key in str(err.value) and words in str(err.value), change
    # any nonzero value counts as "attend" in the official forward; 0/1 booleans-as-float are what it saves
    sd = small_file("autoregressive")
    sd[mask] = sd[mask] * 2.0
    load_small(save(tmp_path, "ar2.th", sd), "autoregressive")


def test_wrong_hparams_and_wrong_files_are_explained(tmp_path):
    path = save(tmp_path, "absorbing_ema_1.th", small_file("absorbing"))
    with pytest.raises(ValueError, match=r"bert_n_layers=3[\s\S]*missing[\s\S]*_denoise_fn\.blocks\.2\.ln1\.weight"):
        load_sampler(path, "absorbing", **{**SMALL_T, "bert_n_layers": 3})
    with pytest.raises(ValueError, match=r"looks like an official absorbing file.*load_sampler\(path, 'absorbing'\)"):
        load_sampler(path, "autoregressive", **SMALL_T)
    with pytest.raises(ValueError, match=r"looks like an official absorbing file.*load_sampler"):
        load_vqgan(path, **SMALL_VQ)
    vq = save(tmp_path, "vqgan_ema_1.th", small_file("vqgan"))
    with pytest.raises(ValueError, match=r"looks like an official vqgan file.*load_vqgan\(path\)"):
        load_sampler(vq, "absorbing", **SMALL_T)
    ulib_ckpt = save(tmp_path, "vqgan.pt", {"config": {}, "model": {"encoder.blocks.0.weight": torch.zeros(1)}})
    with pytest.raises(ValueError, match=r"ulib training checkpoint.*ulib\.trained\.load_run_vqgan"):
        load_vqgan(ulib_ckpt, **SMALL_VQ)


def test_bare_autoencoder_keys_and_a_missing_logsigma_head_are_accepted(tmp_path):
    sd = small_file("vqgan")
    bare = strip(sd, "ae.")
    model = load_vqgan(save(tmp_path, "bare.th", bare), **SMALL_VQ)
    assert torch.equal(model.quantize.embedding.weight, bare["quantize.embedding.weight"])
    no_head = {k: v for k, v in sd.items() if ".logsigma." not in k}
    with pytest.warns(UserWarning, match="logsigma"):
        model = load_vqgan(save(tmp_path, "old.th", no_head), **SMALL_VQ)
    assert torch.equal(model.generator.blocks[0].weight, sd["ae.generator.blocks.0.weight"])
    partial = {k: v for k, v in sd.items() if k != "ae.generator.logsigma.2.bias"}
    with pytest.raises(ValueError, match=r"ae\.generator\.logsigma\.2\.bias"):
        load_vqgan(save(tmp_path, "partial.th", partial), **SMALL_VQ)


# ---- (3) round trips ---------------------------------------------------------------------------------
def randomise(model, seed):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return model


def test_vqgan_round_trip(tmp_path):
    model = randomise(build_vqgan(**SMALL_VQ), 2).eval()
    sd = to_official_state_dict(model, "vqgan")
    assert all(k.startswith("ae.") for k in sd)
    loaded = load_vqgan(save(tmp_path, "vqgan_ema_7.th", sd), **SMALL_VQ)
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(3)) * 2 - 1
    idx = model.encode(x)
    assert torch.equal(loaded.encode(x), idx)
    with torch.no_grad():
        assert torch.equal(loaded.decode(idx), model.decode(idx))


@pytest.mark.parametrize("kind", ["absorbing", "autoregressive"])
def test_sampler_round_trip(tmp_path, kind):
    model = randomise(build_sampler(kind, **SMALL_T), 4).eval()
    sd = to_official_state_dict(model, kind, total_steps=10)
    if kind == "absorbing":
        assert all(sd[k].shape == (11,) and not sd[k].any() for k in ("Lt_history", "Lt_count", "loss_history"))
    else:
        assert torch.equal(sd["net.blocks.1.attn.mask"], torch.ones(16, 16).tril().view(1, 1, 16, 16))
    loaded = load_sampler(save(tmp_path, f"{kind}_ema_7.th", sd), kind, **SMALL_T)
    x = torch.randint(0, 24, (3, 16), generator=torch.Generator().manual_seed(5))
    if kind == "absorbing":
        x[:, ::3] = 24  # mask tokens
    else:
        x = x[:, :-1]
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


# ---- (4) equivalence with the official computation ---------------------------------------------------
@pytest.mark.parametrize("kind", ["absorbing", "autoregressive"])
def test_transformer_computes_the_official_forward(tmp_path, kind):
    sd = small_file(kind)
    model = load_sampler(save(tmp_path, f"{kind}.th", sd), kind, **SMALL_T)
    net = strip(sd, "net." if kind == "autoregressive" else "_denoise_fn.")
    gen = torch.Generator().manual_seed(6)
    tokens = torch.randint(0, 24, (3, 16), generator=gen)
    causal = kind == "autoregressive"
    if causal:
        inputs = [tokens[:, :-1], tokens[:, :5], tokens[:, :0]]  # training input, a prefix, the first sampling step
    else:
        masked = tokens.clone()
        masked[torch.rand(3, 16, generator=gen) < 0.5] = 24  # mask id = codebook_size
        inputs = [masked, torch.full((3, 16), 24), masked[:, :7]]  # partly masked, all masked, first 7 positions
    with torch.no_grad():
        for x in inputs:
            got = model(x)
            want = official_transformer_forward(net, x, SMALL_T["bert_n_head"], causal)
            assert got.shape == (3, x.shape[1] + causal, 24)
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    if causal:  # logits at position i use the start token and tokens < i only
        with torch.no_grad():
            a, b = model(tokens[:, :-1]), model(torch.cat([tokens[:, :8], (tokens[:, 8:-1] + 1) % 24], dim=1))
        torch.testing.assert_close(a[:, :9], b[:, :9], atol=0, rtol=0)
        assert not torch.allclose(a[:, 9:], b[:, 9:])


def test_vqgan_computes_the_official_forward(tmp_path):
    sd = small_file("vqgan")
    model = load_vqgan(save(tmp_path, "vqgan.th", sd), **SMALL_VQ)
    ae = strip(sd, "ae.")
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(7)) * 2 - 1
    with torch.no_grad():
        z_ref, idx_ref = official_encode(ae, SMALL_VQ, x)
        torch.testing.assert_close(model.encoder(x), z_ref, atol=1e-5, rtol=1e-5)
        idx = model.encode(x)
        assert idx.shape == (2, 4, 4) and torch.equal(idx, idx_ref)
        assert idx.unique().numel() > 3  # the argmin is exercised, not one code everywhere
        x_ref = official_decode(ae, SMALL_VQ, idx_ref)
        torch.testing.assert_close(model.decode(idx), x_ref, atol=1e-5, rtol=1e-5)
        x_hat, _, stats = model(x)
        torch.testing.assert_close(x_hat, x_ref, atol=1e-5, rtol=1e-5)


def test_module_constants_match_the_official_ones():
    """Constants too small to show in the logits at float32 tolerance, checked directly (official defaults)."""
    t = build_sampler("absorbing", **SMALL_T)
    assert all(m.eps == 1e-5 for m in t.modules() if isinstance(m, torch.nn.LayerNorm))
    assert all(m.approximate == "none" for m in t.modules() if isinstance(m, torch.nn.GELU))
    assert t.head.bias is None
    v = build_vqgan(**SMALL_VQ)
    norms = [m for m in v.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert norms and all(m.eps == 1e-6 and m.num_groups == 32 and m.affine for m in norms)


# ---- (5) missing files, (6) bad arguments ------------------------------------------------------------
def test_missing_file_names_it_and_says_where_released_files_go(tmp_path):
    (tmp_path / "vqgan_ema_100.th").write_bytes(b"")
    for call in (lambda p: load_vqgan(p), lambda p: load_sampler(p, "absorbing")):
        path = tmp_path / "vqgan_ema_2200000.th"
        with pytest.raises(FileNotFoundError) as err:
            call(path)
        msg = str(err.value)
        assert str(path) in msg and "vqgan_ema_100.th" in msg
        assert "logs/" in msg and "saved_models" in msg and "samb-t/unleashing-transformers" in msg


def test_bad_kind_and_hparams_raise_value_errors(tmp_path):
    path = tmp_path / "missing.th"  # arguments are checked before the file is read
    with pytest.raises(ValueError, match=r"kind='bert'.*'absorbing', 'autoregressive'"):
        load_sampler(path, "bert")
    with pytest.raises(ValueError, match=r"unknown hparam\(s\) \['n_f'\].*'nf'"):
        load_vqgan(path, n_f=64)
    with pytest.raises(ValueError, match=r"unknown hparam\(s\) \['n_emb'\].*'bert_n_emb'"):
        load_sampler(path, "absorbing", n_emb=32)
    with pytest.raises(ValueError, match=r"nf='128' must be an int"):
        load_vqgan(path, nf="128")
    with pytest.raises(ValueError, match=r"ch_mult=2 must be a list/tuple of ints"):
        load_vqgan(path, ch_mult=2)
    with pytest.raises(ValueError, match=r"bert_n_layers=True must be an int"):
        load_sampler(path, "autoregressive", bert_n_layers=True)


def test_block_size_follows_latent_shape_unless_given():
    assert build_sampler("absorbing", **SMALL_T).block_size == 16
    assert build_sampler("absorbing", **SMALL_T, block_size=20).block_size == 20
    with torch.device("meta"):
        assert build_sampler("autoregressive").block_size == 256
