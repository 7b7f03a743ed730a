"""The gpu-check's parts on hand-checked cases: FLOPs per forward, the nominal peak table, achieved TFLOP/s, the
timing of repeats, the fallbacks for missing packages and weights, the pass counter and the one-process group."""
import sys

import pytest
import torch
import torch.distributed as dist

from ulib.app import gpu_dist
from ulib.app.gpu_peak import achieved, flops_per_forward, matmul_ceiling, nominal_peak, timed
from ulib.app.gpu_phases import ForwardCounter, missing_package, try_inception, try_lpips
from ulib.io.weights import UnverifiedWeightsError
from ulib.prior.transformer import Transformer
from ulib.sample.precision import prior_for_sampling


def test_flops_per_forward_by_hand():
    # n=1, C=2, L=3, K=5: qkv 3*2*3*2^2 = 72, attention 2*2*3^2*2 = 72, proj 2*3*2^2 = 24, MLP 2*2*3*2*8 = 192
    # -> 360 per layer; head 2*3*2*5 = 60
    assert flops_per_forward(1, 2, 3, 5) == 420
    assert flops_per_forward(2, 2, 3, 5) == 780  # a second layer adds its 360, the head stays
    # the paper's prior (24 layers, width 512, 16x16 tokens, K = 1024): about 42 GFLOP per image and pass
    assert flops_per_forward(24, 512, 256, 1024) == 24 * (6 * 256 * 512**2 + 4 * 256**2 * 512 + 2 * 256 * 512**2
                                                        + 16 * 256 * 512**2) + 2 * 256 * 512 * 1024
    with pytest.raises(ValueError, match=r"width=0; must be an integer >= 1"):
        flops_per_forward(1, 0, 3, 5)


def test_flops_match_the_matmuls_of_the_network():
    """The formula against a count of every Linear and attention product the network really does (batch 1)."""
    n, C, L, K = 2, 16, 9, 7
    net = Transformer(codebook_size=K, block_size=L, n_emb=C, n_head=2, n_layers=n).eval()
    linear = sum(2 * L * m.in_features * m.out_features for m in net.modules() if isinstance(m, torch.nn.Linear))
    attention = n * 2 * 2 * L * L * C  # Q K^T and A V
    assert flops_per_forward(n, C, L, K) == linear + attention


@pytest.mark.parametrize("name, tflops", [("NVIDIA H100 PCIe", 756.0), ("NVIDIA H100 80GB HBM3", 989.0),
                                          ("NVIDIA H200", 989.0), ("NVIDIA A100-SXM4-80GB", 312.0),
                                          ("NVIDIA GeForce RTX 2080 Ti", 107.0)])
def test_nominal_peak_by_device_name(name, tflops):
    value, note = nominal_peak(name)
    assert value == tflops and "vendor datasheet, dense" in note


def test_an_unknown_card_has_no_nominal_peak_and_says_so():
    value, note = nominal_peak("NVIDIA Some Future GPU")
    assert value is None and "no nominal peak for 'NVIDIA Some Future GPU'" in note


def test_achieved_and_its_fraction_of_both_peaks():
    peak = {"measured_bf16_matmul": {"tflops": 500.0}, "nominal_bf16_tflops": 1000.0}
    out = achieved(2e14, 2.0, peak)  # 1e14 FLOP/s = 100 TFLOP/s
    assert out == {"achieved_tflops": 100.0, "fraction_of_peak": {"measured_matmul": 0.2, "nominal": 0.1}}
    out = achieved(2e14, 2.0, {"measured_bf16_matmul": {"tflops": 500.0}, "nominal_bf16_tflops": None})
    assert out["fraction_of_peak"]["nominal"] is None
    assert achieved(1e12, 1.0, None) == {"achieved_tflops": 1.0}


def test_timed_warms_up_then_times_each_repeat():
    calls = []
    t = timed(lambda: calls.append(1), torch.device("cpu"), repeats=3, warmup=2)
    assert len(calls) == 5 and len(t["seconds"]) == 3 and t["repeats"] == 3 and t["warmup"] == 2
    assert sorted(t["seconds"])[1] == t["median_s"]
    assert t["spread_s"] == pytest.approx(max(t["seconds"]) - min(t["seconds"]), rel=1e-5, abs=1e-9)
    with pytest.raises(ValueError, match="repeats=0; must be >= 1"):
        timed(lambda: None, torch.device("cpu"), repeats=0)


def test_timed_reports_the_median_and_spread_of_the_seconds_it_records(monkeypatch):
    """The JSON's seconds are rounded to 6 figures; median and spread are taken of those, so a reader recomputing
    them gets the same (raw 1.0000049 s and 1.5 s: recorded 1.0 and 1.5, spread 0.5, not 0.499995)."""
    clock = iter([0.0, 1.0000049, 10.0, 11.5])
    monkeypatch.setattr("ulib.app.gpu_peak.time.perf_counter", lambda: next(clock))
    t = timed(lambda: None, torch.device("cpu"), repeats=2, warmup=0)
    assert t["seconds"] == [1.0, 1.5] and t["median_s"] == 1.25 and t["spread_s"] == 0.5


def test_matmul_ceiling_counts_two_n_cubed():
    m = matmul_ceiling(torch.device("cpu"), 32, repeats=2)
    assert m["flops"] == 2 * 32**3 and m["dtype"] == "bfloat16" and m["tflops"] > 0


def test_missing_packages_and_weights_are_fallbacks_with_reasons(monkeypatch):
    assert missing_package("torch") is None
    assert missing_package("no_such_package_here") == "package no_such_package_here not installed"
    monkeypatch.setitem(sys.modules, "lpips", None)  # what `import lpips` fails on
    assert try_lpips(lambda: None) == (False, "package lpips not installed")

    def no_file(kind="inception"):
        raise FileNotFoundError("LPIPS needs the file 'x.pth', which was not found; looked in: a, b")

    def refused():
        raise UnverifiedWeightsError("x.pth is not the released file. Its SHA-256 is 00")

    monkeypatch.setattr("ulib.app.gpu_phases.missing_package", lambda name: None)  # as if installed
    assert try_lpips(no_file) == (False, "weights not found: LPIPS needs the file 'x.pth', which was not found")
    assert try_lpips(refused) == (False, "weights refused: x.pth is not the released file")
    assert try_lpips(lambda: None) == (True, None)
    loaded = []

    def load(kind):
        loaded.append(kind)
        return no_file() if kind == "inception" else "random features"

    space, kind, why = try_inception(load)
    assert (space, kind, loaded) == ("random features", "random-inception", ["inception", "random-inception"])
    assert why == "weights not found: LPIPS needs the file 'x.pth', which was not found; random-inception"
    assert try_inception(lambda kind: "standard") == ("standard", "inception", None)


def test_without_torch_fidelity_the_features_phase_is_skipped(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_fidelity", None)
    assert try_inception(lambda kind: pytest.fail("nothing is loaded")) == (
        None, "none", "package torch_fidelity not installed: features phase skipped")


def test_without_torchvision_the_features_phase_is_skipped(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # torch-fidelity imports it
    assert try_inception(lambda kind: pytest.fail("nothing is loaded")) == (
        None, "none", "package torchvision not installed: features phase skipped")
    assert try_lpips(lambda: pytest.fail("nothing is loaded")) == (False, "package torchvision not installed")


def test_forward_counter_counts_passes_and_rows_through_the_trunk():
    net = Transformer(codebook_size=5, block_size=4, n_emb=8, n_head=2, n_layers=1).eval()
    with torch.no_grad(), ForwardCounter(net) as count:
        for b in (3, 1, 2):
            net(torch.zeros(b, 4, dtype=torch.long))
    assert (count.calls, count.rows) == (3, 6)
    net(torch.zeros(1, 4, dtype=torch.long))
    assert count.calls == 3, "the hook is removed on leaving"


def test_forward_counter_counts_the_bf16_copy_the_sampler_runs():
    """bf16 sampling runs a deep copy of the prior (`ulib.sample.precision`), which carries the hook: the passes
    through the copy count on the counter (a bound-method hook would count on a copy of the counter)."""
    net = Transformer(codebook_size=5, block_size=4, n_emb=8, n_head=2, n_layers=1).eval()
    with torch.no_grad(), ForwardCounter(net) as count:
        copy = prior_for_sampling(net, torch.bfloat16)
        assert copy is not net and copy.tok_emb.weight.dtype == torch.bfloat16
        copy(torch.zeros(2, 4, dtype=torch.long))
    assert (count.calls, count.rows) == (1, 2)


def test_one_process_group_runs_the_collectives_and_ddp_then_is_gone():
    out = gpu_dist.distributed_check(torch.device("cpu"), tiny=True)
    assert not dist.is_initialized()
    assert out["backend"] == "gloo" and out["world_size"] == 1
    assert out["all_reduce_ok"] and out["broadcast_ok"] and out["all_gather_ok"]
    assert out["ddp"]["grad_max_abs_diff"] <= 1e-6 and out["ddp"]["micro_batches"] == 2
    assert out["ddp"]["plain_ms"] > 0 and out["ddp"]["ddp_no_sync_ms"] > 0 and out["ddp"]["grad_max_abs"] > 0
    assert gpu_dist.agrees(out)
    assert not gpu_dist.agrees({**out, "broadcast_ok": False})


def test_a_failing_step_still_destroys_the_group(monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("collective broke")

    monkeypatch.setattr(gpu_dist, "ddp_no_sync", broken)
    with pytest.raises(RuntimeError, match="collective broke"):
        gpu_dist.distributed_check(torch.device("cpu"), tiny=True)
    assert not dist.is_initialized()


def test_no_sync_accumulation_is_compared_for_real(monkeypatch):
    """A DDP whose gradients differ from plain accumulation shows up in grad_max_abs_diff (the check can fail)."""
    real = gpu_dist.DistributedDataParallel

    def doubled(module, **kw):
        ddp = real(module, **kw)
        for p in ddp.module.parameters():
            p.register_hook(lambda g: 2 * g)
        return ddp

    monkeypatch.setattr(gpu_dist, "DistributedDataParallel", doubled)
    out = gpu_dist.distributed_check(torch.device("cpu"), tiny=True)
    assert out["ddp"]["grad_max_abs_diff"] > 1e-4 and not gpu_dist.agrees(out)
    assert not dist.is_initialized()
