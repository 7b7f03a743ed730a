"""Stage 2: transformer, absorbing forward process and losses (Eq. 6, 7), reverse sampler."""
import math

import pytest
import torch

from ulib.prior.absorbing import AbsorbingDiffusion
from ulib.prior.transformer import Transformer
from ulib.sample.absorbing import AbsorbingSampler, time_schedule

from helpers import CountingCalls, Oracle


def tiny_transformer(K=16, L=12, causal=False):
    torch.manual_seed(0)
    return Transformer(codebook_size=K, block_size=L, n_emb=32, n_head=4, n_layers=2, causal=causal).eval()


class ConstantLogits(torch.nn.Module):
    """A 'network' with uniform predictions over K codes: CE = ln K per masked token."""

    def __init__(self, K):
        super().__init__()
        self.K = K
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return torch.zeros(*x.shape, self.K)



# ---- transformer ---------------------------------------------------------------------------------
def test_transformer_shapes_and_mask_vocab():
    net = tiny_transformer(K=16, L=12)
    x = torch.randint(0, 17, (3, 12))  # 16 is the mask id
    assert net(x).shape == (3, 12, 16)
    assert net.tok_emb.num_embeddings == 17 and net.mask_id == 16
    with pytest.raises(ValueError, match="block_size"):
        net(torch.zeros(1, 13, dtype=torch.long))


def test_bidirectional_vs_causal_attention():
    x = torch.randint(0, 16, (1, 12))
    y = x.clone()
    y[0, -1] = (x[0, -1] + 1) % 16
    bi = tiny_transformer()
    assert not torch.allclose(bi(x)[0, 0], bi(y)[0, 0]), "the first position must see the last token"
    ar = tiny_transformer(causal=True)
    # causal: input is x[:, :-1] after the start token; output i depends on tokens < i only
    xa = x[:, :-1]
    xb = xa.clone()
    xb[0, -1] = (xa[0, -1] + 1) % 16  # change the last input token
    out_x, out_y = ar(xa), ar(xb)
    torch.testing.assert_close(out_x[0, :-1], out_y[0, :-1])
    assert not torch.allclose(out_x[0, -1], out_y[0, -1])


def test_features_then_head_equals_forward():
    net = tiny_transformer()
    x = torch.randint(0, 17, (2, 12))
    torch.testing.assert_close(net.head(net.features(x)), net(x))


# ---- forward process -----------------------------------------------------------------------------
def test_masking_rate_is_t_over_T():
    diff = AbsorbingDiffusion(num_timesteps=10, mask_id=99)
    g = torch.Generator().manual_seed(0)
    x0 = torch.zeros(200, 500, dtype=torch.long)
    for t in (1, 3, 7, 10):
        x_t, mask = diff.q_sample(x0, torch.full((200,), t), g)
        rate = mask.float().mean().item()
        assert abs(rate - t / 10) < 0.01, (t, rate)
        assert torch.equal(x_t == 99, mask)
    assert mask.all(), "at t = T every token is absorbed"


def test_sample_time_is_uniform_on_1_to_T():
    diff = AbsorbingDiffusion(num_timesteps=5, mask_id=9)
    t = diff.sample_time(50_000, "cpu", torch.Generator().manual_seed(1))
    assert t.min() == 1 and t.max() == 5
    counts = torch.bincount(t, minlength=6)[1:].float() / 50_000
    assert torch.allclose(counts, torch.full((5,), 0.2), atol=0.01)


@pytest.mark.parametrize("loss_type", ["elbo", "reweighted_elbo", "mlm"])
def test_loss_weights_on_hand_computed_example(loss_type):
    # K = 2 with uniform logits: every masked token costs ln 2 nats = 1 bit.
    T, L, B, t = 4, 8, 3, 2
    diff = AbsorbingDiffusion(num_timesteps=T, mask_id=2, loss_type=loss_type)
    x0 = torch.zeros(B, L, dtype=torch.long)
    g = torch.Generator().manual_seed(3)
    out = diff.training_losses(ConstantLogits(2), x0, generator=g, t=torch.full((B,), t))
    # recompute the mask the same generator drew
    _, mask = diff.q_sample(x0, torch.full((B,), t), torch.Generator().manual_seed(3))
    n = mask.sum(1).float()  # masked tokens per sample; CE = n bits
    expected = {
        "elbo": (T / t) * n / L,  # Eq. 6: T * (1/t) * CE / L
        "reweighted_elbo": ((T - t + 1) / T) * n / L,  # Eq. 7: (T-t+1)/T * CE / L
        "mlm": torch.where(n > 0, torch.ones(B), torch.zeros(B)),  # 1 bit per masked token
    }[loss_type]
    assert out["loss"].item() == pytest.approx(expected.mean().item(), rel=1e-5)
    assert out["elbo_bpt"].item() == pytest.approx(((T / t) * n / L).mean().item(), rel=1e-5)
    assert out["ce_masked"].item() == pytest.approx(math.log(2), rel=1e-5)


def test_reweighting_values():
    diff = AbsorbingDiffusion(num_timesteps=4, mask_id=0, loss_type="reweighted_elbo")
    assert diff.weight(torch.tensor([1, 2, 3, 4])).tolist() == [1.0, 0.75, 0.5, 0.25]
    diff = AbsorbingDiffusion(num_timesteps=4, mask_id=0, loss_type="elbo")
    assert diff.weight(torch.tensor([1, 2, 4])).tolist() == [4.0, 2.0, 1.0]


def test_perfect_model_has_zero_elbo_and_uniform_has_log_K():
    T, L, K = 6, 10, 4
    diff = AbsorbingDiffusion(num_timesteps=T, mask_id=K)
    x0 = torch.randint(0, K, (5, L), generator=torch.Generator().manual_seed(0))
    assert diff.full_elbo(Oracle(x0, K), x0).abs().max().item() < 1e-6
    # uniform model: sum_t (1/t) * E[#masked] * log2 K / L = sum_t (1/t)(t/T) L log2 K / L = log2 K
    big = torch.zeros(400, 50, dtype=torch.long)
    est = diff.full_elbo(ConstantLogits(K), big, torch.Generator().manual_seed(0)).mean().item()
    assert est == pytest.approx(math.log2(K), rel=0.02)


def test_bad_loss_type_and_T():
    with pytest.raises(ValueError, match="loss_type"):
        AbsorbingDiffusion(4, 0, loss_type="l2")
    with pytest.raises(ValueError, match="num_timesteps"):
        AbsorbingDiffusion(0, 0)


# ---- reverse process -----------------------------------------------------------------------------
def test_time_schedule():
    assert time_schedule(8, 8) == list(range(8, -1, -1))
    assert time_schedule(8, 4) == [8, 6, 4, 2, 0]
    assert time_schedule(256, 1) == [256, 0]
    s = time_schedule(256, 100)
    assert s[0] == 256 and s[-1] == 0 and len(s) == 101 and all(a > b for a, b in zip(s, s[1:]))
    for bad in (0, 9, -1):
        with pytest.raises(ValueError, match="steps"):
            time_schedule(8, bad)


@pytest.mark.parametrize("steps", [1, 3, 16])
def test_every_position_unmasked_exactly_once(steps):
    K, L, B = 16, 12, 6
    net = tiny_transformer(K, L)
    sampler = AbsorbingSampler.of(net, num_timesteps=16, mask_id=K, length=L, steps=steps,
                                  generator=torch.Generator().manual_seed(0), skip_empty_steps=False)
    times_unmasked = torch.zeros(B, L, dtype=torch.long)
    history = []

    def record(k, res):
        times_unmasked.add_(res.unmasked.long())
        history.append(res)

    x = sampler.sample(sampler.initial_state(B, "cpu"), callback=record)
    assert torch.equal(times_unmasked, torch.ones(B, L, dtype=torch.long))
    assert (x != K).all() and x.min() >= 0 and x.max() < K
    # an unmasked token never changes again
    for k in range(1, len(history)):
        prev = history[k - 1].x != K
        assert torch.equal(history[k].x[prev], history[k - 1].x[prev])
    assert len(history) == steps
    # one forward pass per step that unmasked something, never more than `steps`
    assert sampler.forward_passes == sum(r.ran_network for r in history) <= steps



def test_forward_pass_count_under_step_skipping():
    net = CountingCalls(tiny_transformer(16, 12))  # no `features`: full forward each time
    for steps in (1, 4, 16):
        net.calls = 0
        sampler = AbsorbingSampler.of(net, num_timesteps=16, mask_id=16, length=12, steps=steps,
                                      generator=torch.Generator().manual_seed(1), skip_empty_steps=False)
        sampler.sample(sampler.initial_state(64, "cpu"))
        # with 64 x 12 masked tokens every step unmasks something (a skipped step would have p ~ 1e-100)
        assert net.calls == steps == sampler.forward_passes


def test_step_unmask_probability_is_t_minus_s_over_t():
    K, L, B = 4, 1000, 20
    sampler = AbsorbingSampler.of(ConstantLogits(K), num_timesteps=10, mask_id=K, length=L, steps=5,
                                  generator=torch.Generator().manual_seed(0))
    x = sampler.initial_state(B, "cpu")
    res = sampler.schedule_step(x, 0)  # 10 -> 8: probability 2/10
    assert abs(res.unmasked.float().mean().item() - 0.2) < 0.01
    res2 = sampler.schedule_step(res.x, 1)  # 8 -> 6: probability 2/8 of the still-masked
    frac = res2.unmasked.sum().item() / (res.x == K).sum().item()
    assert abs(frac - 0.25) < 0.01


def test_temperature_draws_follow_softmax():
    class Fixed(torch.nn.Module):
        def forward(self, x):
            return torch.log(torch.tensor([0.7, 0.2, 0.1])).expand(*x.shape, 3)

    for temp in (1.0, 0.5):
        sampler = AbsorbingSampler.of(Fixed(), num_timesteps=1, mask_id=3, length=60_000, temperature=temp,
                                      generator=torch.Generator().manual_seed(0))
        x = sampler.sample(sampler.initial_state(1, "cpu"))
        freq = torch.bincount(x.flatten(), minlength=3).float() / x.numel()
        p = torch.softmax(torch.log(torch.tensor([0.7, 0.2, 0.1])) / temp, 0)
        assert torch.allclose(freq, p, atol=0.01), (temp, freq, p)


def test_seeded_sampling_is_deterministic():
    net = tiny_transformer()
    x_T = torch.full((4, 12), 16)
    def run(seed, **kw):
        return AbsorbingSampler.of(net, num_timesteps=16, mask_id=16, length=12, steps=8,
                                   generator=torch.Generator().manual_seed(seed), **kw).sample(x_T)

    for kw in ({}, {"skip_empty_steps": False}):  # both walks of the schedule
        a, b, c = run(7, **kw), run(7, **kw), run(8, **kw)
        assert torch.equal(a, b) and not torch.equal(a, c)


def test_sampler_rejects_bad_settings():
    net = tiny_transformer()
    with pytest.raises(ValueError, match="steps"):
        AbsorbingSampler.of(net, num_timesteps=16, mask_id=16, length=12, steps=17)
    with pytest.raises(ValueError, match="temperature"):
        AbsorbingSampler.of(net, num_timesteps=16, mask_id=16, length=12, temperature=0.0)
