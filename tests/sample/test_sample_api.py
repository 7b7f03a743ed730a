"""The front door for sampling (`from ulib import load_run, sample_tokens, sample_images`): one call for every
method, the AR baseline by the prior's kind, inpainting via x_start, canvases, and the same tokens as the
samplers it dispatches to."""
import pytest
import torch

import ulib
from ulib import load_run, sample_images, sample_tokens
from ulib.app.pipeline import run_pipeline
from ulib.io.rundir import RunDir
from ulib.models import from_modules
from ulib.prior.transformer import Transformer
from ulib.profiles import get_profile
from ulib.sample.absorbing import AbsorbingSampler
from ulib.sample.autoregressive import sample_ar
from ulib.sample.base import SampleStep
from ulib.sample.canvas import sample_canvas
from ulib.sample.maskgit import ConfidenceSampler
from ulib.sample.network import network_device
from ulib.sample.remask import RemaskSampler

from helpers import AR_L, TINY, tiny_ar

K, SIDE, T = 16, 4, 8
L = SIDE * SIDE


def _absorbing():
    torch.manual_seed(0)
    return Transformer(codebook_size=K, block_size=L, n_emb=32, n_head=2, n_layers=2).eval()


def _g(seed=0):
    return torch.Generator().manual_seed(seed)


def test_the_package_exports_the_front_door():
    assert ulib.__all__ == ["load_run", "sample_images", "sample_tokens"]
    assert ulib.sample_tokens is sample_tokens


def test_each_method_gives_the_tokens_of_its_sampler():
    net = _absorbing()
    with torch.no_grad():
        x = torch.full((3, L), K)
        want = {
            name: cls.of(net, num_timesteps=T, mask_id=K, length=L, steps=4, temperature=0.9, generator=_g()).sample(x)
            for name, cls in (("random", AbsorbingSampler), ("confidence", ConfidenceSampler),
                              ("remask", RemaskSampler))
        }
        for method, tokens in want.items():
            got = sample_tokens(net, 3, method=method, steps=4, temperature=0.9, generator=_g(), num_timesteps=T)
            assert torch.equal(got, tokens), method
            assert got.shape == (3, L) and int(got.max()) < K  # no mask token left


def test_any_callable_tokens_to_logits_serves_as_the_prior():
    """The samplers see the network only as tokens -> logits (ulib.sample.network): a lambda around it draws
    the same tokens as the network itself (whose head then runs at every position instead of some)."""
    net = _absorbing()
    calls = []

    def plain(x):
        calls.append(tuple(x.shape))
        return net(x)

    assert not hasattr(plain, "features") and network_device(plain) == torch.device("cpu")
    with torch.no_grad():
        for method in ("random", "confidence", "remask"):
            want = sample_tokens(net, 3, method=method, steps=4, temperature=0.9, generator=_g(1), num_timesteps=T)
            got = sample_tokens(plain, 3, method=method, steps=4, temperature=0.9, generator=_g(1), num_timesteps=T,
                                mask_id=K, length=L)
            assert torch.equal(got, want), method
        want = sample_tokens(net, 2, canvas=(4, 6), grid=(SIDE, SIDE), steps=4, generator=_g(2), num_timesteps=T)
        got = sample_tokens(plain, 2, canvas=(4, 6), grid=(SIDE, SIDE), steps=4, generator=_g(2), num_timesteps=T,
                            mask_id=K)
        assert torch.equal(got, want) and got.shape == (2, 4, 6)
    assert calls and all(shape[1] == L for shape in calls)  # the callable was what ran, on whole windows
    with pytest.raises(ValueError, match="mask_id=None.*plain callable"):
        sample_tokens(plain, 1, num_timesteps=T, length=L)


def test_the_ar_prior_is_sampled_token_by_token_by_its_kind():
    net = tiny_ar()
    with torch.no_grad():
        got = sample_tokens(net, 2, temperature=0.8, generator=_g(5), top_k=4)
        assert torch.equal(got, sample_ar(net, 2, AR_L, "cpu", temperature=0.8, top_k=4, generator=_g(5)))
    for bad in (dict(method="confidence"), dict(canvas=(3, 8)), dict(x_start=torch.zeros(2, AR_L, dtype=torch.long))):
        with pytest.raises(ValueError, match="AR prior"):
            sample_tokens(net, 2, **bad)


def test_inpainting_keeps_the_given_tokens_and_a_grid_shapes_the_result():
    net = _absorbing()
    x_start = torch.arange(L).remainder(K).view(1, SIDE, SIDE).repeat(2, 1, 1)
    x_start[:, 1:3, 1:3] = K  # regenerate the middle
    with torch.no_grad():
        got = sample_tokens(net, x_start=x_start, num_timesteps=T, generator=_g(1))
    assert got.shape == (2, SIDE, SIDE)
    keep = x_start != K
    assert torch.equal(got[keep], x_start[keep]) and int(got.max()) < K


def test_a_canvas_goes_through_eq8_and_needs_the_window():
    net = _absorbing()
    with torch.no_grad():
        got = sample_tokens(net, 2, canvas=(SIDE, SIDE + 3), grid=(SIDE, SIDE), steps=4, num_timesteps=T,
                            generator=_g(3))
        want = sample_canvas(net, (SIDE, SIDE + 3), (SIDE, SIDE), num_timesteps=T, mask_id=K, steps=4, batch=2,
                             generator=_g(3))
    assert got.shape == (2, SIDE, SIDE + 3) and torch.equal(got, want)
    with pytest.raises(ValueError, match="training window"):
        sample_tokens(net, 1, canvas=(SIDE, 8), num_timesteps=T)
    with pytest.raises(ValueError, match="random-order"):
        sample_tokens(net, 1, canvas=(SIDE, 8), grid=(SIDE, SIDE), method="confidence", num_timesteps=T)


def test_bad_arguments_are_named():
    net = _absorbing()
    with pytest.raises(ValueError, match="num_timesteps"):
        sample_tokens(net, 2)
    with pytest.raises(ValueError, match="top_k"):
        sample_tokens(net, 2, num_timesteps=T, top_k=3)
    with pytest.raises(ValueError, match="n=0"):
        sample_tokens(net, 0, num_timesteps=T)
    with pytest.raises(ValueError, match="temperature"):
        sample_tokens(net, 2, num_timesteps=T, temperature=0.0)


def test_models_carry_their_sampling_facts_into_tokens_and_images(tmp_path):
    run = RunDir(tmp_path / "run")
    cfg = get_profile("smoke", TINY)
    run_pipeline(run, cfg, show_progress=False)
    models = load_run(run.path)
    s = cfg.latent_size
    assert (models.kind, models.num_timesteps, models.latent_shape) == ("absorbing", cfg.prior.total_steps, (s, s))
    tokens = sample_tokens(models, 3, steps=4, generator=_g(2))
    assert tokens.shape == (3, s, s)
    images, again = sample_images(models, 3, steps=4, temperature=1.0, seed=2, return_tokens=True)
    assert images.shape == (3, 3, cfg.data.img_size, cfg.data.img_size) and images.abs().max() <= 1
    assert torch.equal(again, tokens)  # seed 2 on the models' device = the same generator
    same = from_modules(models.vqgan, models.prior, cfg)
    assert torch.equal(sample_images(same, 3, steps=4, temperature=1.0, seed=2), images)
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_run(tmp_path / "nothing")


def test_every_sampler_reports_its_steps_as_one_type():
    net, ar = _absorbing(), tiny_ar()
    seen = {}

    def record(name):
        return lambda k, step: seen.setdefault(name, []).append(step)

    with torch.no_grad():
        for method in ("random", "confidence", "remask"):
            sample_tokens(net, 2, method=method, steps=4, num_timesteps=T, generator=_g(), callback=record(method))
        sample_tokens(net, 1, canvas=(SIDE, SIDE + 2), grid=(SIDE, SIDE), steps=4, num_timesteps=T, generator=_g(),
                      callback=record("canvas"))
        sample_tokens(ar, 2, generator=_g(), callback=record("ar"))
    assert sorted(seen) == ["ar", "canvas", "confidence", "random", "remask"]
    for name, steps in seen.items():
        assert steps and all(type(s) is SampleStep for s in steps), name
        assert all(s.unmasked.shape == s.x.shape and s.unmasked.dtype == torch.bool for s in steps), name
    # each token is written exactly once by the random-order, confidence and AR samplers
    for name in ("random", "confidence", "ar"):
        written = sum(s.unmasked[:, -1].long() if name == "ar" else s.unmasked.long() for s in seen[name])
        assert (written == 1).all() if name != "ar" else (written == AR_L).all(), name
