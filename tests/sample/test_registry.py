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
from helpers import OWN_STEPS_METHOD, RasterSampler

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
    assert sample.choices == ("random", "confidence", "remask", "halton", "eb", "remdm", "first_hitting",
                              "raster_test", "speculative")  # the AR prior's method last
    assert "; raster_test: a test's raster order [per_step=2]. For an autoregressive prior" in sample.help
    args = cli.build_parser().parse_args(["sample", "--run", "r", "--method", "raster_test"])
    assert args.method == "raster_test"
    assert "raster_test" in registry.choices()  # what gpu-check loops over (the widgets: tests/app/test_widgets.py)
    tiny = bench.BenchConfig(n_layers=1, n_emb=16, n_head=2, side=3, codebook_size=K, batch=2, steps=(4, 2),
                             only=("absorbing",))
    rows = bench.run(tiny, "cpu", progress=lambda line: None)
    timed = [r for r in rows if r["name"] == "absorbing sampling, raster_test"]
    assert len(timed) == 1 and timed[0]["value"] > 0 and timed[0]["configuration"]["steps"] == 2


def test_without_it_everything_is_as_before():
    assert registry.choices() == ("random", "confidence", "remask", "halton", "eb", "remdm", "first_hitting")
    assert registry.method_help() == (
        "decoding method, each with its --option settings and their defaults: "
        "random: the paper's random-order reverse process (default) [skip_empty_steps=True, fixed_shape=False]; "
        "confidence: MaskGIT-style confidence [schedule='cosine', choice_temperature=4.5]; "
        "remask: the official code's re-masking ('mlm') sampler [no options]; "
        "halton: positions revealed in a 2-D Halton order (Besnier et al.) [shift=True]; "
        "eb: entropy-bounded adaptive steps (EB-sampler, Ben-Hamu et al.) [gamma=1.0; --steps caps its calls]; "
        "remdm: ReMDM (revealed tokens masked again with probability sigma_t, optionally in a loop at a fixed noise "
        "level) [schedule='cap', eta=0.05, loop_steps=0, loop_time=0.1]; "
        "first_hitting: first-hitting sampling (one uniformly chosen position per network call) "
        "[no options; sets its own calls, --steps unused]. For an autoregressive prior: random (raster order, the "
        "default) or speculative: exact speculative sampling of the AR model, an absorbing prior drafting "
        "[block=4, draft_steps=1, draft_temperature=None, use_cache=True; sets its own calls, --steps unused]; "
        "--method speculative samples the AR prior of --run (prior_ar.pt), its prior.pt drafting")


def test_names_are_unique_and_built_ins_stay(example):
    with pytest.raises(ValueError, match="exists already"):
        registry.register(registry.Method("raster_test", RasterSampler, "another"))
    with pytest.raises(ValueError, match="built-in"):
        registry.unregister("random")
    with pytest.raises(TypeError, match="Sampler subclass"):
        registry.register(registry.Method("bad", dict, "not a sampler"))
    with pytest.raises(ValueError, match=r"method='nope'; allowed: \('random', 'confidence', 'remask', 'halton', "
                                         r"'eb', 'remdm', 'first_hitting', 'raster_test'\)"):
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
    assert registry.get("random").options == {"skip_empty_steps": True, "fixed_shape": False}
    assert registry.get("remask").options == registry.get("first_hitting").options == {}
    assert registry.get("remdm").options == {"schedule": "cap", "eta": 0.05, "loop_steps": 0, "loop_time": 0.1}


# ---- what `steps` means to a method (registry.Method.steps, resolve_steps) --------------------------------------
class StepsSeen(RasterSampler):
    """The raster sampler, recording the steps each build receives."""

    seen: list = []

    def __init__(self, ctx, steps=None, options=None):
        super().__init__(ctx, steps, options)
        StepsSeen.seen.append(steps)


@pytest.fixture
def step_kinds():
    kinds = {kind: registry.Method(f"steps_{kind}_test", StepsSeen, f"a test's {kind}", steps=kind)
             for kind in registry.STEPS}
    for m in kinds.values():
        registry.register(m)
    StepsSeen.seen.clear()
    yield {kind: m.name for kind, m in kinds.items()}
    for m in kinds.values():
        registry.unregister(m.name)


def test_each_method_declares_what_steps_means():
    assert {m: registry.get(m).steps for m in registry.choices()} == {
        "random": "schedule", "confidence": "schedule", "remask": "schedule", "halton": "schedule", "eb": "cap",
        "remdm": "schedule", "first_hitting": "unused"}
    assert OWN_STEPS_METHOD.steps == "unused"
    with pytest.raises(ValueError, match=r"steps='sometimes'; allowed: \('schedule', 'total', 'cap', 'unused'\)"):
        registry.Method("bad_steps", RasterSampler, "a typo", steps="sometimes")


def test_resolve_steps_kind_by_kind(step_kinds):
    resolve = registry.resolve_steps
    schedule, total, cap, unused = (step_kinds[k] for k in ("schedule", "total", "cap", "unused"))
    # 'schedule': 1..T, default T (or the caller's default); today's wordings of sample_tokens and the CLI
    assert (resolve(schedule, None, 16), resolve(schedule, None, 16, default=8), resolve(schedule, 5, 16)) == (16, 8, 5)
    with pytest.raises(ValueError, match=r"^steps=17; allowed: 1..num_timesteps=16$"):
        resolve(schedule, 17, 16)
    with pytest.raises(ValueError, match=r"^--steps=0; allowed: 1..T=16$"):
        resolve(schedule, 0, 16, name="--steps", t_name="T")
    # 'total': any integer >= 1, above T too; default as 'schedule'
    assert (resolve(total, None, 16), resolve(total, 40, 16)) == (16, 40)
    with pytest.raises(ValueError, match=r"steps=0; allowed for method='steps_total_test': an integer >= 1"):
        resolve(total, 0, 16)
    # 'cap': None unless given (a run's default is not a cap), then any integer >= 1
    assert (resolve(cap, None, 16, default=8), resolve(cap, 40, 16)) == (None, 40)
    with pytest.raises(ValueError, match=r"steps=2.5; allowed for method='steps_cap_test': an integer >= 1 \(a cap"):
        resolve(cap, 2.5, 16)
    # 'unused': ignored, never rejected
    assert (resolve(unused, None, 16), resolve(unused, 5, 16), resolve(unused, -3, 16)) == (None, None, None)


def test_sample_tokens_gives_each_sampler_the_steps_it_declares(step_kinds):
    for kind, steps, got in (("schedule", None, T), ("total", 3 * T, 3 * T), ("cap", None, None), ("cap", 2, 2),
                             ("unused", 5, None)):
        StepsSeen.seen.clear()
        x = sample_tokens(_net(), 2, method=step_kinds[kind], num_timesteps=T, steps=steps)
        assert StepsSeen.seen == [got], kind
        assert (x < K).all()
