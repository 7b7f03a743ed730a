"""ulib.train.ema: the exponential moving average of the weights, by hand and through (fake and real) DDP."""
import pytest
import torch

from ulib.io.checkpoint import unwrap
from ulib.train.ema import EMA

from helpers import FakeDDP, small_net


# ---- EMA ---------------------------------------------------------------------------------------------
class One(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.register_buffer("count", torch.zeros(1))


def test_ema_hand_computed():
    model = One()
    ema = EMA(model, decay=0.9)
    assert ema.decay == 0.9
    assert not ema.model.training and not ema.model.w.requires_grad
    with torch.no_grad():
        model.w.fill_(1.0)
        model.count.fill_(5.0)
    ema.update(model)
    assert ema.model.w.item() == pytest.approx(0.1)  # 0.9 * 0 + 0.1 * 1
    assert ema.model.count.item() == 5.0  # buffers copied, not averaged
    ema.update(model)
    assert ema.model.w.item() == pytest.approx(0.19)  # 0.9 * 0.1 + 0.1 * 1
    with torch.no_grad():
        model.w.fill_(-1.0)
    ema.update(model)
    assert ema.model.w.item() == pytest.approx(0.9 * 0.19 - 0.1)
    assert model.w.item() == -1.0  # the trained model is untouched


def test_ema_is_an_independent_copy():
    model = One()
    model.w.grad = torch.ones(1)
    ema = EMA(model, 0.5)
    assert ema.model is not model and ema.model.w.grad is None
    with torch.no_grad():
        model.w.fill_(2.0)
    assert ema.model.w.item() == 0.0


def test_ema_through_ddp_like_wrapper_and_state_dict():
    model = One()
    ema = EMA(FakeDDP(model), 0.9)
    with torch.no_grad():
        model.w.fill_(1.0)
    ema.update(FakeDDP(model))
    assert ema.model.w.item() == pytest.approx(0.1)
    assert set(ema.state_dict()) == {"w", "count"}  # shadow's names, no 'module.' prefix

    other = EMA(One(), 0.9)
    other.load_state_dict(ema.state_dict())
    assert other.model.w.item() == pytest.approx(0.1)


def test_ema_decay_range_and_model_mismatch():
    with pytest.raises(ValueError, match="decay=1.5"):
        EMA(One(), 1.5)
    ema = EMA(One(), 0.9)
    with pytest.raises(ValueError, match="not the one the EMA was built from"):
        ema.update(small_net())


def test_ema_matches_formula_on_a_real_network():
    torch.manual_seed(0)
    model = small_net()
    ema = EMA(model, 0.99)
    start = {k: v.clone() for k, v in ema.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    model.train()(torch.randn(8, 3))  # BatchNorm running stats change
    ema.update(model)
    for name, p in model.named_parameters():
        assert torch.allclose(ema.state_dict()[name], 0.99 * start[name] + 0.01 * p.detach())
    assert torch.equal(ema.model[1].running_mean, model[1].running_mean)


def test_unwrap_and_ema_with_real_single_process_ddp(tmp_path):
    dist = torch.distributed
    if not dist.is_available() or not dist.is_gloo_available() or dist.is_initialized():
        pytest.skip("needs torch.distributed with gloo and no process group already running")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        model = One()
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        assert unwrap(ddp) is model
        ema = EMA(ddp, 0.9)
        with torch.no_grad():
            model.w.fill_(1.0)
        ema.update(ddp)
        assert ema.model.w.item() == pytest.approx(0.1)
    finally:
        dist.destroy_process_group()
