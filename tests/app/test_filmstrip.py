"""Pictures of the reverse process (notebooks 03 and 04): kept states, the network's belief, the reveal order."""
import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from ulib.app.filmstrip import believed_images, filmstrip, reveal_order, reverse_states  # noqa: E402
from ulib.prior.transformer import Transformer  # noqa: E402
from ulib.sample.absorbing import AbsorbingSampler  # noqa: E402
from ulib.sample.maskgit import ConfidenceSampler  # noqa: E402
from ulib.sample.remask import RemaskSampler  # noqa: E402
from ulib.vq.model import VQAutoEncoder  # noqa: E402

K, H = 8, 4  # codebook, token grid side
L, T = H * H, 8


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    vq = VQAutoEncoder(img_size=16, nf=8, ch_mult=(1, 1, 2), res_blocks=1, attn_resolutions=(), codebook_size=K,
                       emb_dim=4, norm_groups=4).eval()
    net = Transformer(codebook_size=K, block_size=L, n_emb=16, n_head=2, n_layers=1).eval()
    return vq, net


def test_reverse_states_keep_the_start_the_end_and_evenly_spaced_steps(models):
    _, net = models
    sampler = AbsorbingSampler.of(net, num_timesteps=T, mask_id=K, length=L, generator=torch.Generator().manual_seed(0),
                                  skip_empty_steps=False)  # every schedule step, as the paper writes the process
    states = reverse_states(sampler, sampler.initial_state(2, "cpu"), frames=5)
    assert [s[0] for s in states] == [0, 2, 4, 6, 8] and all(s[1] == T for s in states)
    assert bool((states[0][2] == K).all()) and not bool((states[-1][2] == K).any())
    masked = [int((s[2] == K).sum()) for s in states]
    assert masked == sorted(masked, reverse=True)
    with pytest.raises(ValueError, match="frames"):
        reverse_states(sampler, sampler.initial_state(1, "cpu"), frames=1)


def test_believed_images_fill_masks_with_the_argmax_and_dim_only_masked_cells(models):
    vq, net = models
    x = torch.randint(0, K, (1, L), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        plain = vq.decode(x).clamp(-1, 1)
        torch.testing.assert_close(believed_images(vq, net, x, K), plain)  # nothing masked: the decoding
        x_t = x.clone()
        x_t[0, 0] = K  # the top-left token masked
        filled = torch.where(x_t == K, net(x_t).argmax(-1), x_t)
        out = believed_images(vq, net, x_t, K, dim=0.5)
        expected = vq.decode(filled).clamp(-1, 1)
    f = 16 // H  # pixels per token
    torch.testing.assert_close(out[..., :f, :f], expected[..., :f, :f] * 0.5)
    torch.testing.assert_close(out[..., f:, :], expected[..., f:, :])


def test_reveal_order_records_the_step_that_wrote_each_position(models):
    _, net = models
    start = torch.full((2, L), K)
    start[:, :3] = 1  # given tokens: never written
    for cls in (AbsorbingSampler, ConfidenceSampler):
        sampler = cls.of(net, num_timesteps=T, mask_id=K, length=L, steps=4, generator=torch.Generator().manual_seed(0))
        tokens, when = reveal_order(sampler, start)
        assert bool((when[:, :3] == -1).all()) and bool((when[:, 3:] >= 0).all()) and int(when.max()) <= 3
        assert torch.equal(tokens[:, :3], start[:, :3]) and not bool((tokens == K).any())
    tokens, when = reveal_order(RemaskSampler.of(net, num_timesteps=T, mask_id=K, length=L, steps=4,
                                                 generator=torch.Generator().manual_seed(0)), start)
    assert bool((when[:, 3:] >= 0).all()) and bool((when[:, :3] == -1).all())


def test_filmstrip_draws_two_rows_one_column_per_state(models):
    vq, net = models
    sampler = AbsorbingSampler.of(net, num_timesteps=T, mask_id=K, length=L, generator=torch.Generator().manual_seed(0),
                                  skip_empty_steps=False)
    states = reverse_states(sampler, sampler.initial_state(1, "cpu"), frames=3)
    fig = filmstrip(vq, net, states, K, K, title="t")
    assert len(fig.axes) == 6
    assert fig.axes[0].get_title().startswith("step 0/8") and f"{L} of {L} masked" in fig.axes[0].get_title()
