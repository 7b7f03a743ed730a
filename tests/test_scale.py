"""The paper's scale on GPUs (issue 14), checked on the CPU: process-group timeout, sharded encode, streamed
reference statistics, resume across devices, no float64 on MPS, global batch with accumulation, bench
synchronisation, bf16 without emulation, fp32 where fp16 overflows, sampling precision, host syncs per step,
coalesced gradient all-reduce."""
import shutil

import numpy as np
import pytest
import torch
import torch.distributed as dist

from ulib import device as D
from ulib.io.checkpoint import load_checkpoint
from ulib.io.rundir import RunDir
from ulib.profiles import get_profile
from ulib.train import distributed as dist_utils

from helpers import TINY


def _cfg(extra=()):
    return get_profile("smoke", [*TINY, *extra])


# ---- 1. process-group timeout, encode split across processes -------------------------------------------
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
    assert seen == {"backend": "gloo", "timeout": __import__("datetime").timedelta(minutes=90)}
    monkeypatch.delenv(dist_utils.TIMEOUT_ENV)
    assert dist_utils.process_group_timeout().total_seconds() == 60 * dist_utils.DEFAULT_TIMEOUT_MIN
    monkeypatch.setenv(dist_utils.TIMEOUT_ENV, "soon")
    with pytest.raises(ValueError, match="ULIB_DIST_TIMEOUT_MIN='soon'"):
        dist_utils.process_group_timeout()


@pytest.fixture(scope="module")
def vqgan_run(tmp_path_factory):
    from ulib.train.vqgan import train_vqgan

    run = RunDir(tmp_path_factory.mktemp("scale") / "run")
    train_vqgan(run, _cfg(["vqgan_train.steps=2", "data.flip=true"]), show_progress=False)
    return run


@pytest.mark.slow
def test_sharded_encode_equals_one_process(vqgan_run, tmp_path):
    from ulib.train import latents

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


# ---- 2. streamed mean and covariance of reference features ------------------------------------------
def test_streamed_moments_equal_the_batch_formulas():
    from ulib.eval.metrics import FeatureMoments

    x = torch.randn(203, 7, generator=torch.Generator().manual_seed(0)) * 3 + 10  # a large mean: no cancellation
    m = FeatureMoments(7)
    for part in x.split([1, 50, 0, 100, 52]):
        m.update(part)
    assert m.n == 203
    np.testing.assert_allclose(m.mean.numpy(), x.double().mean(0).numpy(), rtol=1e-12)
    np.testing.assert_allclose(m.cov.numpy(), np.cov(x.double().numpy(), rowvar=False), rtol=1e-10, atol=1e-12)
    again = FeatureMoments.from_state_dict(m.state_dict())
    assert torch.equal(again.cov, m.cov)
    with pytest.raises(ValueError, match="dimension 3"):
        m.update(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="at least 2"):
        FeatureMoments.of(torch.zeros(1, 7)).cov


def test_fid_from_moments_equals_fid_on_the_features():
    from ulib.eval.metrics import FeatureMoments, fid, fid_against, fid_from_moments, fid_method

    g = torch.Generator().manual_seed(1)
    real, fake = torch.randn(300, 16, generator=g), torch.randn(200, 16, generator=g) * 1.3 + 0.2
    assert fid_method(300, 200, 16) == "torch-fidelity"
    want = fid(real, fake)  # torch-fidelity's statistics of float32 features: float32 precision
    assert fid_from_moments(FeatureMoments.of(real), FeatureMoments.of(fake)) == pytest.approx(want, rel=1e-6)
    streamed = FeatureMoments(16)
    for part in real.split(64):
        streamed.update(part)
    assert fid_against(real[:10], streamed, fake) == pytest.approx(want, rel=1e-6)
    assert fid_against(real, None, fake) == want


class FakeInception:
    """Stands in for InceptionV3: 'features' are the images' first pixels (2048 of them)."""
    features, key = "random-inception", "fake"
    layers, pool, logits = ("2048", "logits_unbiased"), "2048", "logits_unbiased"

    def __call__(self, images):
        f = images.flatten(1)[:, :2048].float()
        return {"2048": f, "logits_unbiased": f[:, :8]}


def test_reference_larger_than_the_kept_set_is_streamed(vqgan_run, monkeypatch):
    import ulib.eval.evaluate as E
    from ulib.eval.metrics import FeatureMoments

    cfg = _cfg(["data.img_size=32"])  # 3 x 32 x 32 > 2048 values per image
    monkeypatch.setattr(E, "REFERENCE_KEEP", 10)
    feats, key, moments = E.reference_set(vqgan_run, cfg, FakeInception(), "val", "all", 8, False)
    assert key["n"] == key["n_split"] > 10 and len(feats) == 10 and key["limit"] == "all"
    monkeypatch.setattr(E, "REFERENCE_KEEP", 1000)
    full, _, none = E.reference_set(vqgan_run, cfg, FakeInception(), "val", key["n"] + 5, 8, False)
    monkeypatch.setattr(E, "REFERENCE_KEEP", 10)
    assert none is None and len(full) == key["n"]
    exact = FeatureMoments.of(full)
    assert moments.n == key["n"] and torch.allclose(moments.cov, exact.cov, atol=1e-10)
    again = E.reference_set(vqgan_run, cfg, FakeInception(), "val", "all", 8, False)  # from the cache
    assert torch.equal(again[0], feats) and torch.equal(again[2].m2, moments.m2)
    # the default takes every image of a split up to the paper's 50,000, and says so in the record
    _, key, _ = E.reference_set(vqgan_run, cfg, FakeInception(), "val", None, 8, False)
    assert key["n"] == key["n_split"] and key["limit"] == "default: at most 50000"
    assert E.DEFAULT_MAX_REFERENCE == E.PAPER_N_SAMPLES == 50_000
    assert E.reference_indices(3_000_000, E.DEFAULT_MAX_REFERENCE)[:3] == sorted(E.reference_indices(
        3_000_000, 50_000))[:3] and len(E.reference_indices(3_000_000, E.DEFAULT_MAX_REFERENCE)) == 50_000


def test_evaluate_parser_takes_max_reference_all_and_a_device_batch_default():
    from ulib.app.cli import build_parser

    args = build_parser().parse_args(["evaluate", "--run", "r", "--max-reference", "all"])
    assert args.max_reference == "all" and args.batch_size is None
    assert build_parser().parse_args(["evaluate", "--run", "r", "--max-reference", "7"]).max_reference == 7


# ---- 3. resume across device types; no float64 on MPS ----------------------------------------------
def test_generator_state_from_another_device_reseeds_deterministically():
    from ulib.train.common import restore_generator

    cpu_state = torch.Generator().manual_seed(5).get_state()
    g = torch.Generator()
    restore_generator(g, cpu_state, "cpu")
    assert torch.equal(g.get_state(), cpu_state)
    philox = torch.arange(16, dtype=torch.uint8)  # what a CUDA generator's state looks like
    a, b = torch.Generator(), torch.Generator()
    with pytest.warns(UserWarning, match="written on cuda"):
        restore_generator(a, philox, "cuda")
    with pytest.warns(UserWarning):
        restore_generator(b, philox, "cuda")
    assert torch.equal(torch.rand(4, generator=a), torch.rand(4, generator=b))


def test_scaler_and_fused_optimizer_states_cross_devices():
    from ulib.train.common import load_optimizer_state

    enabled = torch.amp.GradScaler("cpu", enabled=True)  # as CUDA fp16 would be
    D.load_scaler_state(enabled, {})  # what a CPU run (disabled scaler) saved: start afresh, no error
    assert enabled.get_scale() == 65536.0
    disabled = torch.amp.GradScaler("cpu", enabled=False)
    D.load_scaler_state(disabled, enabled.state_dict())
    w = torch.nn.Parameter(torch.ones(3))
    fused = torch.optim.AdamW([w], fused=True)  # as on CUDA
    w.grad = torch.ones(3)
    fused.step()
    plain = torch.optim.AdamW([w])
    load_optimizer_state(plain, fused.state_dict())
    assert not plain.param_groups[0]["fused"] and plain.state[w]["step"].device.type == "cpu"
    plain.step()
    assert float(plain.state[w]["step"]) == 2.0


@pytest.mark.slow
def test_prior_resumes_from_a_checkpoint_of_another_device(vqgan_run, tmp_path):
    from ulib.train.prior import train_prior

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


def test_exact_float_has_no_float64_on_mps():
    assert D.exact_float(torch.device("mps")) == torch.float32
    assert D.exact_float("cpu") == D.exact_float(torch.device("cuda")) == torch.float64


def test_mps_paths_create_no_float64(monkeypatch):
    """With exact_float answering as on MPS, the samplers, schedules and metrics make no float64 tensor."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from ulib.eval import metrics
    from ulib.sample import absorbing as sampling
    from ulib.sample import api, maskgit
    from ulib.train import distributed

    for mod in (maskgit, distributed, metrics, sampling):
        monkeypatch.setattr(mod, "exact_float", lambda device: torch.float32)
    monkeypatch.setattr(sampling, "_exact_float", lambda device: torch.float32)

    class NoDouble(TorchDispatchMode):
        made = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, (tuple, list)) else [out]:
                if isinstance(t, torch.Tensor) and t.dtype == torch.float64:
                    self.made.append(str(func))
            return out

    x, y = torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 3, 16, 16) * 2 - 1
    net = lambda t: torch.zeros(*t.shape, 5)  # noqa: E731  tokens -> uniform logits
    with NoDouble():
        metrics.psnr(x, y), metrics.ssim(x, y), metrics.codebook_usage(torch.tensor([3, 0, 1]))
        maskgit.confidence_schedule(torch.tensor([16, 9]), 4)
        for method in ("random", "confidence"):
            api.sample_tokens(net, method=method, n=2, length=6, num_timesteps=4, mask_id=5,
                                   generator=torch.Generator().manual_seed(0), device="cpu")
        distributed.all_mean_dict({"a": 1.0}, torch.device("cpu"))
    assert NoDouble.made == []


# ---- 4. the global batch, with gradient accumulation ------------------------------------------------
def test_batch_plan_and_its_errors():
    from ulib.train.common import batch_plan

    p = batch_plan(20, 5, 2, "prior_train")
    assert (p.global_batch, p.processes, p.micro_batch, p.accumulation, p.per_process) == (20, 2, 5, 2, 10)
    assert batch_plan(20, 0, 4, "x").accumulation == 1
    with pytest.raises(ValueError, match="prior_train.batch_size=20 is the global batch.*3 processes"):
        batch_plan(20, 0, 3, "prior_train")
    with pytest.raises(ValueError, match=r"micro_batch=4 must divide the per-process batch 10"):
        batch_plan(20, 4, 2, "prior_train")
    with pytest.raises(ValueError, match="micro_batch=3 must divide prior_train.batch_size=20"):
        get_profile("smoke", ["prior_train.batch_size=20", "prior_train.micro_batch=3"])


def test_global_batch_does_not_depend_on_the_number_of_processes():
    from ulib.data.batches import StepBatches

    one = StepBatches(100, 12, seed=3)
    three = [StepBatches(100, 4, seed=3, rank=r, world=3) for r in range(3)]
    for step in (0, 5, 8, 20):
        assert sum((b.indices(step) for b in three), []) == one.indices(step)


def _weights(path):
    return load_checkpoint(path)["model"]


@pytest.mark.slow
def test_prior_accumulation_equals_one_big_batch(vqgan_run, tmp_path):
    """The AR loss draws nothing at random, so 2 passes of 4 must give the step one pass of 8 gives."""
    from ulib.train.prior import train_prior

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
    import json

    rec = json.loads(runs[4].batch_file.read_text())["prior_ar"]
    assert rec == {"global_batch": 8, "processes": 1, "micro_batch": 4, "accumulation": 2, "per_process": 8}


@pytest.mark.slow
def test_vqgan_accumulation_equals_one_big_batch(tmp_path):
    """Before the GAN starts the loss is a mean over pixels, so 2 passes of 2 give the step 1 pass of 4 gives.
    Compared through the logged losses: conv biases in front of a GroupNorm get a zero gradient up to rounding,
    which Adam's g / sqrt(v) turns into +-lr steps either way; they leave every output (and loss) unchanged."""
    from ulib.io.logs import MetricsLog
    from ulib.train.vqgan import train_vqgan

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


# ---- 5. bench synchronises the device around every timing -------------------------------------------
def test_bench_synchronises_cuda_around_each_timed_run(monkeypatch):
    from ulib.eval import bench

    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(device))
    bench._timed(lambda: None, torch.device("cuda"), repeat=3)
    assert len(calls) == 6, "before and after each of 3 runs"
    calls.clear()
    bench._timed(lambda: None, torch.device("cpu"), repeat=3)
    assert calls == []


@pytest.mark.slow
def test_every_bench_timing_goes_through_synchronize(monkeypatch):
    from dataclasses import replace

    from ulib.eval import bench

    timed, synced = [], []
    real = bench._timed
    monkeypatch.setattr(bench, "_timed", lambda fn, device, repeat=1: timed.append(repeat) or real(fn, device, repeat))
    monkeypatch.setattr(bench, "synchronize", lambda device: synced.append(device))
    bench.run(replace(bench.QUICK, only=("forward", "training", "bigimage")), torch.device("cpu"),
              progress=lambda m: None)
    assert timed and len(synced) >= 2 * sum(timed)


# ---- 6. bf16 without emulation; fp32 where fp16 would overflow --------------------------------------
def test_amp_asks_for_native_bf16(monkeypatch):
    asked = []
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: asked.append(
        including_emulation) or False)
    assert D.amp_dtype(torch.device("cuda"), True) == torch.float16
    assert asked == [False], "emulated bf16 (T4, V100) does not count"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: not including_emulation)
    assert D.amp_dtype(torch.device("cuda"), True) == torch.bfloat16
    assert D.sampling_dtype(torch.device("cuda")) == torch.bfloat16
    assert D.sampling_dtype(torch.device("cuda"), "fp32") is None
    assert D.sampling_dtype(torch.device("cpu")) is None and D.sampling_dtype(
        torch.device("cpu"), "bf16") == torch.bfloat16
    with pytest.raises(ValueError, match="precision='fp16'; allowed: auto, fp32, bf16"):
        D.sampling_dtype(torch.device("cpu"), "fp16")


def test_decoder_runs_in_fp32_under_fp16():
    from ulib.io.models import vqgan_from_config
    from ulib.train.vqgan import autoencode

    assert D.decoder_dtype(torch.float16) is None and D.decoder_dtype(torch.bfloat16) == torch.bfloat16
    ae = vqgan_from_config(_cfg())
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    cpu = torch.device("cpu")
    try:
        x_hat, _, q = autoencode(ae, x, cpu, torch.float16)
    except RuntimeError as e:  # a torch without CPU fp16 autocast
        pytest.skip(f"CPU fp16 autocast unavailable: {e}")
    assert x_hat.dtype == torch.float32 and set(q) == {"indices"}
    assert autoencode(ae, x, cpu, torch.bfloat16)[0].dtype == torch.bfloat16


def test_adaptive_weight_survives_fp16_underflow_with_the_loss_scale():
    from ulib.vq.loss import adaptive_weight

    w = torch.nn.Parameter(torch.ones(64))

    def losses():  # gradients of 1e-8 per weight in fp16: below its smallest subnormal (6e-8)
        rec = (w.half() * 1e-4).sum() * 1e-4
        gan = (w.half() * 2e-4).sum() * 1e-4
        return rec.float(), gan.float()

    want = 0.5  # ||d rec|| / ||d gan|| with delta negligible
    assert float(adaptive_weight(*losses(), w, delta=1e-12, scale=2.0**10)) == pytest.approx(want, rel=1e-2)
    assert float(adaptive_weight(*losses(), w, delta=1e-12)) != pytest.approx(want, rel=1e-2)
    r, g = (w * 3.0).sum(), (w * 6.0).sum()
    assert float(adaptive_weight(r, g, w, scale=1024.0)) == pytest.approx(float(adaptive_weight(r, g, w)))


# ---- 7. sampling precision and TF32 --------------------------------------------------------------
def test_tf32_only_on_cuda(monkeypatch):
    set_to = []
    monkeypatch.setattr(torch, "set_float32_matmul_precision", set_to.append)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", torch.backends.cudnn.allow_tf32)
    D.configure_matmul(torch.device("cpu"))
    assert set_to == []
    D.configure_matmul(torch.device("cuda"))
    assert set_to == ["high"] and torch.backends.cudnn.allow_tf32


def test_sampling_runs_the_prior_under_the_chosen_autocast(monkeypatch):
    from ulib import sample_images
    from ulib.prior.transformer import Transformer
    from ulib.sample.models import SamplingModels
    from ulib.vq.model import VQAutoEncoder

    seen = []
    prior = Transformer(8, 16, 16, 2, 1).eval()
    real = prior.features
    monkeypatch.setattr(prior, "features", lambda x: seen.append(torch.get_autocast_dtype("cpu") if
                                                                   torch.is_autocast_enabled("cpu") else None)
                                                  or real(x))
    vq = VQAutoEncoder(16, nf=16, ch_mult=(1, 2, 2), codebook_size=8, emb_dim=4, norm_groups=4,
                       attn_resolutions=()).eval()
    m = SamplingModels(vq, prior, "absorbing", 4, 8, (4, 4), 4, 1.0, 2, "test")
    for precision, want in (("bf16", torch.bfloat16), ("fp32", None), ("auto", None)):
        seen.clear()
        images = sample_images(m, 2, steps=4, temperature=1.0, seed=0, precision=precision)
        assert seen and set(seen) == {want} and images.dtype == torch.float32, precision


# ---- 8. the prior's step: no host sync between log steps; compile is opt-in ---------------------------
def _count_host_reads(monkeypatch):
    """Count Python-level reads of tensor values (.item(), bool(), float(), int()) made by ulib's code; reads
    inside torch itself are left out (a non-fused optimiser's step counter lives on the host even on CUDA)."""
    import sys
    from pathlib import Path

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
    from ulib.train.prior import train_prior
    from ulib.train.vqgan import train_vqgan

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
    from ulib.train.prior import train_prior

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
    from ulib.train.common import make_adamw

    tc = _cfg().prior_train
    w = torch.nn.Parameter(torch.ones(2))
    assert not make_adamw([w], tc, torch.device("cpu")).param_groups[0]["fused"]


# ---- 10. coalesced all-reduce of gradients, one all-reduce for logged statistics ------------------------
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
