"""ulib.device: the float for exact sums (no float64 on MPS), native bf16 only, fp32 where fp16 would overflow,
TF32 on CUDA only, full-precision matmuls in a block (`full_precision_matmul`, issue 26), and the sampling
precision (issue 14; CUDA and MPS behaviour checked on the CPU by standing in for their answers)."""
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ulib import device as D
from ulib import sample_images
from ulib.eval import reconstruction
from ulib.models import SamplingModels
from ulib.prior.transformer import Transformer
from ulib.sample import absorbing as sampling
from ulib.sample import api, base, maskgit
from ulib.train import distributed
from ulib.train.vqgan import autoencode
from ulib.trained import vqgan_from_config
from ulib.vq.model import VQAutoEncoder

from helpers import tiny_config as _cfg


def test_exact_float_has_no_float64_on_mps():
    assert D.exact_float(torch.device("mps")) == torch.float32
    assert D.exact_float("cpu") == D.exact_float(torch.device("cuda")) == torch.float64


def test_mps_paths_create_no_float64(monkeypatch):
    """With exact_float answering as on MPS, the samplers, schedules and metrics make no float64 tensor."""

    for mod in (maskgit, distributed, reconstruction, sampling, base):  # base: the categorical draw
        monkeypatch.setattr(mod, "exact_float", lambda device: torch.float32)

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
        reconstruction.psnr(x, y), reconstruction.ssim(x, y), reconstruction.codebook_usage(torch.tensor([3, 0, 1]))
        maskgit.confidence_schedule(torch.tensor([16, 9]), 4)
        for method in ("random", "confidence", "remdm", "first_hitting"):
            api.sample_tokens(net, method=method, n=2, length=6, num_timesteps=4, mask_id=5,
                                   generator=torch.Generator().manual_seed(0), device="cpu")
        distributed.all_mean_dict({"a": 1.0}, torch.device("cpu"))
    assert NoDouble.made == []


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


def test_tf32_only_on_cuda(monkeypatch):
    set_to = []
    monkeypatch.setattr(torch, "set_float32_matmul_precision", set_to.append)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", torch.backends.cudnn.allow_tf32)
    D.configure_matmul(torch.device("cpu"))
    assert set_to == []
    D.configure_matmul(torch.device("cuda"))
    assert set_to == ["high"] and torch.backends.cudnn.allow_tf32


def test_sampling_runs_the_prior_in_the_chosen_precision():
    """bf16: the prior's weights and activations in bf16 (a cast copy, no autocast; ulib.sample.precision), the
    caller's prior left in fp32; fp32 and auto (on a CPU): the prior as it is."""
    seen = []
    prior = Transformer(8, 16, 16, 2, 1).eval()
    prior.ln_f.register_forward_hook(lambda m, i, o: seen.append((m.weight.dtype, o.dtype,
                                                                  torch.is_autocast_enabled("cpu"))))
    vq = VQAutoEncoder(16, nf=16, ch_mult=(1, 2, 2), codebook_size=8, emb_dim=4, norm_groups=4,
                       attn_resolutions=()).eval()
    m = SamplingModels(vq, prior, "absorbing", 4, 8, (4, 4), 4, 1.0, 2, "test")
    for precision, want in (("bf16", torch.bfloat16), ("fp32", torch.float32), ("auto", torch.float32)):
        seen.clear()
        images = sample_images(m, 2, steps=4, temperature=1.0, seed=0, precision=precision)
        assert seen and set(seen) == {(want, want, False)} and images.dtype == torch.float32, precision
        assert all(p.dtype == torch.float32 for p in prior.parameters())


def test_resolve_device_names_what_is_allowed(monkeypatch):
    """Bad device strings are ValueErrors naming the string (#21 item 6); a CUDA index past the machine's
    devices is one too (checked on the CPU by standing in for CUDA's answers)."""
    with pytest.raises(ValueError, match="device='banana' is not a torch device"):
        D.resolve_device("banana")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(ValueError, match=r"device='cuda:99': this machine has 2 CUDA device\(s\); allowed: 'cuda', "
                                         r"'cuda:0'..'cuda:1'"):
        D.resolve_device("cuda:99")
    assert D.resolve_device("cuda:1") == torch.device("cuda:1")


@pytest.mark.parametrize("previous", ["high", "highest", "medium"])
def test_full_precision_matmul_restores_the_previous_setting(previous, matmul_setting):
    torch.set_float32_matmul_precision(previous)
    per_backend = [ns.fp32_precision for ns in D._matmul_backends()]
    with D.full_precision_matmul():
        assert torch.get_float32_matmul_precision() == "highest"
    assert torch.get_float32_matmul_precision() == previous
    assert [ns.fp32_precision for ns in D._matmul_backends()] == per_backend
    with pytest.raises(KeyError, match="inside"):
        with D.full_precision_matmul():
            assert torch.get_float32_matmul_precision() == "highest"
            raise KeyError("inside")
    assert torch.get_float32_matmul_precision() == previous


def test_full_precision_matmul_restores_a_setting_made_through_the_per_backend_api(matmul_setting):
    """torch's newer per-backend switch alone (TF32 for cuBLAS only): the legacy getter refuses to read that mix,
    so the context saves and restores the per-backend values themselves."""
    if not D._matmul_backends():
        pytest.skip("this torch has no per-backend fp32_precision")
    cuda, cpu = torch.backends.cuda.matmul, torch.backends.mkldnn.matmul
    torch.set_float32_matmul_precision("highest")
    cuda.fp32_precision, cpu.fp32_precision = "tf32", "none"
    with D.full_precision_matmul():
        assert (cuda.fp32_precision, cpu.fp32_precision) == ("ieee", "ieee")
    assert (cuda.fp32_precision, cpu.fp32_precision) == ("tf32", "none")
