"""The bench's opt-in speculative group (ulib/eval/bench.py): never in the default run, and when named it times
the cached AR sampler and speculative sampling per block size and draft steps, with the counts beside them."""
from dataclasses import replace

import pytest

from ulib.eval import bench

TINY = bench.BenchConfig(n_layers=1, n_emb=16, n_head=2, side=3, codebook_size=6, batch=2, spec_blocks=(1, 3),
                         spec_draft_steps=(1, 2), spec_images=2, spec_repeats=2, only=("speculative",))


def test_the_speculative_group_runs_only_when_named():
    assert bench.selected_groups(()) == bench.GROUPS and "speculative" not in bench.GROUPS
    assert bench.selected_groups(("ar", "speculative")) == ("ar", "speculative")
    bench.check_groups(("speculative",))
    with pytest.raises(ValueError, match="allowed: forward, absorbing, ar, bigimage, training, speculative"):
        bench.check_groups(("spec",))


def test_it_times_every_setting_against_the_cached_ar_sampler():
    rows = bench.run(TINY, "cpu", progress=lambda line: None)
    names = [r["name"] for r in rows]
    assert names[0] == "AR sampling, KV cache (speculative's baseline)"
    timed = [r["configuration"] for r in rows if r["name"] == "speculative AR sampling"]
    # draft_steps 2 > block 1 is skipped
    assert [(c["block"], c["draft_steps"]) for c in timed] == [(1, 1), (3, 1), (3, 2)]
    assert all(c["repeats"] == 2 and c["images"] == 2 and c["length"] == 9 for c in timed)
    for name in ("  tokens per AR pass (batch)", "  tokens per AR pass (per image)", "  drafted tokens accepted",
                 "  speed-up over the cached AR sampler"):
        assert names.count(name) == 3
    assert all(r["value"] > 0 for r in rows)
    per_pass = [r for r in rows if r["name"] == "  tokens per AR pass (batch)"]
    assert all(r["value"] == 9 / r["configuration"]["ar_passes"] for r in per_pass)
    assert all(1 <= r["value"] <= r["configuration"]["block"] + 1 for r in per_pass)


def test_the_paths_group_times_each_pair_in_turn(monkeypatch):
    """--only paths: the forward with q/k/v fused and not, and random sampling by passes and at a fixed shape, each
    pair with its ratio; the forward ends with the fused path on again."""
    from ulib.eval import bench_paths
    from ulib.prior.transformer import SelfAttention

    order = []
    real = bench_paths.interleaved
    monkeypatch.setattr(bench_paths, "interleaved", lambda fns, d, r: order.append((tuple(fns), r)) or real(fns, d, r))
    rows = bench.run(replace(TINY, only=("paths",), steps=(4, 2)), "cpu", progress=lambda line: None)
    assert order == [(("fused", "three"), 5), (("default", "fixed"), 5), (("default", "fixed"), 5)]  # CPU: no bf16
    names = [r["name"] for r in rows]
    assert names[:3] == ["forward, q/k/v one product", "forward, q/k/v three products", "  one product's speed-up"]
    assert [r["configuration"]["steps"] for r in rows if r["name"] == "  fixed shape's speed-up"] == [4, 2]
    assert all(r["value"] > 0 for r in rows)
    assert SelfAttention.fused is True
