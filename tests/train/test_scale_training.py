"""Training at the paper's scale, checked on the CPU (issue 14): process-group timeout, the encode split across
processes, resume across device types, the global batch with gradient accumulation, no host reads between log
steps, opt-in compile, fused AdamW on CUDA only, gradients all-reduced in a few flat buckets."""
import datetime
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from ulib.data.batches import StepBatches
from ulib.io.checkpoint import load_checkpoint
from ulib.io.logs import MetricsLog
from ulib.io.rundir import RunDir
from ulib.train import distributed as dist_utils
from ulib.train import latents
from ulib.train.common import make_adamw
from ulib.train.prior import train_prior
from ulib.train.vqgan import train_vqgan

from helpers import tiny_config as _cfg


# ---- 1. process-group timeout, encode split across processes -----------------------------------------
def test_process_group_gets_an_explicit_timeout(monkeypatch):
    seen = {}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv(dist_utils.TIMEOUT_ENV, "90")
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda **kw: seen.update(kw))
    monkeypatch.setattr(dist, "get_rank", lambda: 0)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    assert dist_utils.init_from_env(torch.device("cpu")) == (0, 2, torch.device("cpu"))
    assert seen == {"backend": "gloo", "timeout": datetime.timedelta(minutes=90)}
    monkeypatch.delenv(dist_utils.TIMEOUT_ENV)
    assert dist_utils.process_group_timeout().total_seconds() == 60 * dist_utils.DEFAULT_TIMEOUT_MIN
    monkeypatch.setenv(dist_utils.TIMEOUT_ENV, "soon")
    with pytest.raises(ValueError, match="ULIB_DIST_TIMEOUT_MIN='soon'"):
        dist_utils.process_group_timeout()


@pytest.mark.slow
def test_sharded_encode_equals_one_process(vqgan_run, tmp_path):
    cfg = _cfg(["data.flip=true"])
    one = latents.encode_dataset(cfg, vqgan_run.vqgan_ckpt, tmp_path / "one.pt", "cpu", progress=False)
    out = tmp_path / "two.pt"
    for rank in (0, 1):  # what the two processes of a torchrun job do, one after the other
        latents.encode_dataset(cfg, vqgan_run.vqgan_ckpt, out, "cpu", progress=False, rank=rank, world=2)
    assert not out.exists() and latents.shard_path(out, 1, 2).exists()
    two = latents.merge_shards(out, 2)
    assert not latents.shard_path(out, 0, 2).exists(), "shards are removed once merged"
    assert set(one) == set(two) >= {"train", "train_flipped", "val"}
    for k in ("train", "train_flipped", "val"):
        assert two[k].dtype == torch.uint8 and torch.equal(one[k], two[k]), k
    assert not torch.equal(one["train"], one["train_flipped"]), "mirrored images give other tokens"
    assert torch.equal(load_checkpoint(out)["train"], one["train"])


# ---- 2. resume across device types -------------------------------------------------------------------
@pytest.mark.slow
def test_prior_resumes_from_a_checkpoint_of_another_device(vqgan_run, tmp_path):
    run = RunDir(tmp_path / "r")
    run.make()
    shutil.copy(vqgan_run.vqgan_ckpt, run.vqgan_ckpt)
    cfg = _cfg()
    train_prior(run, cfg, stop_at=3, show_progress=False)
    state = load_checkpoint(run.prior_ckpt)
    state["generators"] = [torch.arange(16, dtype=torch.uint8)]  # a CUDA (Philox) generator's state
    state["generator_device"] = "cuda"
    state["scaler"] = {"scale": 1024.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000,
                       "_growth_tracker": 0}  # an fp16 scaler's state
    torch.save(state, run.prior_ckpt)
    with pytest.warns(UserWarning, match="written on cuda"):
        train_prior(run, cfg, resume=True, show_progress=False)
    assert load_checkpoint(run.prior_ckpt)["step"] == cfg.prior_train.steps


# ---- 3. the global batch, with gradient accumulation -------------------------------------------------
def test_global_batch_does_not_depend_on_the_number_of_processes():
    one = StepBatches(100, 12, seed=3)
    three = [StepBatches(100, 4, seed=3, rank=r, world=3) for r in range(3)]
    for step in (0, 5, 8, 20):
        assert sum((b.indices(step) for b in three), []) == one.indices(step)


def _weights(path):
    return load_checkpoint(path)["model"]


@pytest.mark.slow
def test_prior_accumulation_equals_one_big_batch(vqgan_run, tmp_path):
    """The AR loss draws nothing at random, so 2 passes of 4 must give the step one pass of 8 gives."""
    runs = {}
    for micro in (0, 4):
        run = RunDir(tmp_path / f"m{micro}")
        run.make()
        shutil.copy(vqgan_run.vqgan_ckpt, run.vqgan_ckpt)
        cfg = _cfg(["prior.kind=autoregressive", "prior_train.batch_size=8", f"prior_train.micro_batch={micro}",
                    "prior_train.steps=3"])
        train_prior(run, cfg, show_progress=False)
        runs[micro] = run
    a, b = _weights(runs[0].prior_ckpt_for("autoregressive")), _weights(runs[4].prior_ckpt_for("autoregressive"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)
    assert load_checkpoint(runs[4].prior_ckpt_for("autoregressive"))["batch"]["accumulation"] == 2

    rec = json.loads(runs[4].batch_file.read_text())["prior_ar"]
    assert rec == {"global_batch": 8, "processes": 1, "micro_batch": 4, "accumulation": 2, "per_process": 8}


@pytest.mark.slow
def test_vqgan_accumulation_equals_one_big_batch(tmp_path):
    """Before the GAN starts the loss is a mean over pixels, so 2 passes of 2 give the step 1 pass of 4 gives.
    Compared through the logged losses: conv biases in front of a GroupNorm get a zero gradient up to rounding,
    which Adam's g / sqrt(v) turns into +-lr steps either way; they leave every output (and loss) unchanged."""

    rows = []
    for micro in (0, 2):
        run = RunDir(tmp_path / f"m{micro}")
        train_vqgan(run, _cfg(["vqgan.disc_start_step=100", "vqgan_train.batch_size=4", "vqgan_train.steps=5",
                               "vqgan_train.log_every=1", f"vqgan_train.micro_batch={micro}"]), show_progress=False)
        rows.append(MetricsLog.read(run.vqgan_log))
    assert len(rows[0]) == len(rows[1]) == 5
    for a, b in zip(*rows):
        for k in ("l1", "vq", "loss", "perplexity"):
            assert b[k] == pytest.approx(a[k], rel=1e-4, abs=1e-6), (a["step"], k)


# ---- 4. the prior's step: no host sync between log steps; compile is opt-in; fused AdamW -------------
def _count_host_reads(monkeypatch):
    """Count Python-level reads of tensor values (.item(), bool(), float(), int()) made by ulib's code; reads
    inside torch itself are left out (a non-fused optimiser's step counter lives on the host even on CUDA)."""

    torch_dir = str(Path(torch.__file__).parent)
    counts = {"n": 0}
    for name in ("item", "__bool__", "__float__", "__int__"):
        real = getattr(torch.Tensor, name)

        def wrapped(self, *a, _real=real, **k):
            if not sys._getframe(1).f_code.co_filename.startswith(torch_dir):
                counts["n"] += 1
            return _real(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, wrapped)
    return counts


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["prior", "vqgan"])
def test_training_steps_between_logs_read_nothing_back(stage, vqgan_run, tmp_path, monkeypatch):
    """Runs of 4 and 8 steps that log, save and draw images only at their last step read the same number of
    values back to the host: the extra steps read none (a CUDA sync each, otherwise)."""

    reads = []
    for steps in (4, 8):
        run = RunDir(tmp_path / f"s{steps}")
        run.make()
        shutil.copy(vqgan_run.vqgan_ckpt, run.vqgan_ckpt)
        section = "prior_train" if stage == "prior" else "vqgan_train"
        cfg = _cfg([f"{section}.steps={steps}", f"{section}.log_every=100", f"{section}.image_every=100",
                    f"{section}.ckpt_every=100", "data.flip=true", "vqgan.disc_start_step=1"])
        train = train_prior if stage == "prior" else train_vqgan
        counts = _count_host_reads(monkeypatch)
        train(run, cfg, show_progress=False, force=True)
        monkeypatch.undo()
        reads.append(counts["n"])
    assert reads[0] == reads[1], reads


@pytest.mark.slow
def test_compile_is_opt_in(vqgan_run, tmp_path, monkeypatch):
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda m, **kw: compiled.append(m) or m)
    run = RunDir(tmp_path / "r")
    run.make()
    shutil.copy(vqgan_run.vqgan_ckpt, run.vqgan_ckpt)
    train_prior(run, _cfg(["prior_train.steps=1"]), show_progress=False)
    assert compiled == []
    train_prior(run, _cfg(["prior_train.steps=1", "prior_train.compile=true"]), show_progress=False, force=True)
    assert len(compiled) == 1
    with pytest.raises(ValueError, match="vqgan_train.compile=true is not supported"):
        _cfg(["vqgan_train.compile=true"])


def test_fused_adamw_on_cuda_only():
    tc = _cfg().prior_train
    w = torch.nn.Parameter(torch.ones(2))
    assert not make_adamw([w], tc, torch.device("cpu")).param_groups[0]["fused"]


# ---- 5. coalesced all-reduce of gradients, one all-reduce for logged statistics ----------------------
def test_gradients_are_averaged_in_a_few_flat_buckets(monkeypatch):
    net = torch.nn.Sequential(*[torch.nn.Linear(8, 8) for _ in range(10)])  # 20 gradient tensors
    for p in net.parameters():
        p.grad = torch.randn_like(p)
    before = [p.grad.clone() for p in net.parameters()]
    calls = []
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(dist, "all_reduce", lambda t: calls.append(t.numel()) or t.mul_(2))  # two equal ranks
    dist_utils.average_gradients(net)
    assert calls == [sum(t.numel() for t in before)], "one bucket, one all-reduce"
    for p, b in zip(net.parameters(), before):
        assert torch.equal(p.grad, b)
    calls.clear()
    dist_utils.average_gradients(net, bucket_bytes=8 * 9 * 4)  # a weight and its bias per bucket
    assert len(calls) == 10
    calls.clear()
    stats = dist_utils.all_mean_dict({"l1": torch.tensor(3.0), "codes": 5.0}, torch.device("cpu"))
    assert stats == {"l1": 3.0, "codes": 5.0} and len(calls) == 1


def test_gradient_buckets_keep_dtypes_apart():
    a, b, c = torch.zeros(4), torch.zeros(4, dtype=torch.float16), torch.zeros(4)
    assert [[t.dtype for t in bk] for bk in dist_utils.gradient_buckets([a, b, c])] == [
        [torch.float32, torch.float32], [torch.float16]]
