"""The sampler registry (ulib/sample/registry.py) and the protocol (ulib/sample/base.py): a new method is one file
plus its test. Here the file is this test: a tiny method registered at run time, which sample_tokens, the CLI's
--method, the widgets' dropdown, bench and gpu-check then offer with no other edit."""
from __future__ import annotations

import pytest
import torch

from ulib import sample_tokens
from ulib.app import cli
from ulib.eval import bench
from ulib.prior.transformer import Transformer
from ulib.sample import registry
from ulib.sample.base import SamplingContext

from helpers import EXAMPLE_METHOD as EXAMPLE
from helpers import RasterSampler

K, L, T = 6, 8, 8


@pytest.fixture
def example():
    registry.register(EXAMPLE)
    yield EXAMPLE
    registry.unregister(EXAMPLE.name)


def _net():
    torch.manual_seed(0)
    return Transformer(codebook_size=K, block_size=L, n_emb=16, n_head=2, n_layers=1).eval()


def test_a_registered_method_samples_through_the_front_door_with_its_options(example):
    seen = []
    x = sample_tokens(_net(), 3, method="raster_test", num_timesteps=T, generator=torch.Generator().manual_seed(0),
                      per_step=3, callback=lambda k, r: seen.append(r))
    assert x.shape == (3, L) and int(x.max()) < K
    assert [int(r.unmasked[0].sum()) for r in seen] == [3, 3, 2]  # raster order, 3 at a time
    assert torch.equal(seen[0].unmasked[0], torch.arange(L) < 3)
    start = torch.full((1, L), K)
    start[0, :5] = 1
    kept = sample_tokens(_net(), method="raster_test", x_start=start, num_timesteps=T)
    assert torch.equal(kept[0, :5], start[0, :5])
    with pytest.raises(ValueError, match=r"option\(s\) \['schedule'\] not known to method='raster_test'; "
                                         r"allowed: \('per_step',\)"):
        sample_tokens(_net(), 1, method="raster_test", num_timesteps=T, schedule="linear")


def test_the_cli_widgets_bench_and_gpu_check_offer_it_without_other_edits(example):
    sample = next(a for a in cli.build_parser()._subparsers._group_actions[0].choices["sample"]._actions
                  if "--method" in a.option_strings)
    assert sample.choices == ("random", "confidence", "remask", "raster_test")
    assert sample.help.endswith("or a test's raster order")
    args = cli.build_parser().parse_args(["sample", "--run", "r", "--method", "raster_test"])
    assert args.method == "raster_test"
    assert "raster_test" in registry.choices()  # what gpu-check loops over (the widgets: tests/app/test_widgets.py)
    tiny = bench.BenchConfig(n_layers=1, n_emb=16, n_head=2, side=3, codebook_size=K, batch=2, steps=(4, 2),
                             only=("absorbing",))
    rows = bench.run(tiny, "cpu", progress=lambda line: None)
    timed = [r for r in rows if r["name"] == "absorbing sampling, raster_test"]
    assert len(timed) == 1 and timed[0]["value"] > 0 and timed[0]["configuration"]["steps"] == 2


def test_without_it_everything_is_as_before():
    assert registry.choices() == ("random", "confidence", "remask")
    assert registry.method_help() == ("decoding method: the paper's random-order reverse process (default), "
                                      "MaskGIT-style confidence, or the official code's re-masking ('mlm') sampler")


def test_names_are_unique_and_built_ins_stay(example):
    with pytest.raises(ValueError, match="exists already"):
        registry.register(registry.Method("raster_test", RasterSampler, "another"))
    with pytest.raises(ValueError, match="built-in"):
        registry.unregister("random")
    with pytest.raises(TypeError, match="Sampler subclass"):
        registry.register(registry.Method("bad", dict, "not a sampler"))
    with pytest.raises(ValueError, match=r"method='nope'; allowed: \('random', 'confidence', 'remask', 'raster_te"):
        registry.get("nope")


def test_the_protocol_checks_its_options_and_context():
    ctx = SamplingContext(_net(), T, K, L)
    with pytest.raises(TypeError, match="takes RasterOptions"):
        RasterSampler(ctx, options=registry.get("confidence").sampler.Options())
    with pytest.raises(ValueError, match="per_step=0"):
        RasterSampler.of(_net(), num_timesteps=T, mask_id=K, length=L, per_step=0)
    with pytest.raises(ValueError, match="temperature"):
        SamplingContext(_net(), T, K, L, temperature=0.0)
    with pytest.raises(ValueError, match="give length"):
        RasterSampler.of(_net(), num_timesteps=T, mask_id=K)
    assert registry.get("confidence").options == {"schedule": "cosine", "choice_temperature": 4.5}
    assert registry.get("random").options == {"skip_empty_steps": True}
    assert registry.get("remask").options == {}
