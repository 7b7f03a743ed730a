"""The VQGAN's codebook (ulib.vq.quantizer): the nearest code, L_VQ (Eq. 5), straight-through gradients, the
data-dependent start and dead-code restarts."""
import pytest
import torch

from ulib.vq.quantizer import VectorQuantizer


def test_quantizer_picks_the_true_nearest_code():
    vq = VectorQuantizer(codebook_size=3, emb_dim=2, beta=0.25)
    with torch.no_grad():
        vq.embedding.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]]))
    # three latents, laid out as (B=1, D=2, h=1, w=3)
    points = torch.tensor([[0.9, 0.1], [0.1, 1.2], [-0.1, 0.3]])  # nearest: c1, c2 (0.65 < 1.45), c0
    z = points.t().reshape(1, 2, 1, 3)
    assert vq.nearest(z).tolist() == [[[1, 2, 0]]]
    z_q, _, stats = vq(z)
    torch.testing.assert_close(z_q, vq.embedding.weight[[1, 2, 0]].t().reshape(1, 2, 1, 3))
    assert stats["codes_used"] == 3
    torch.testing.assert_close(stats["perplexity"], torch.tensor(3.0))  # three codes used equally


def test_vq_loss_value_and_beta_on_the_commitment_term():
    beta = 0.25
    vq = VectorQuantizer(codebook_size=1, emb_dim=2, beta=beta)
    with torch.no_grad():
        vq.embedding.weight.zero_()  # the only code is c = (0, 0)
    z = torch.tensor([1.0, 3.0]).reshape(1, 2, 1, 1).requires_grad_()
    _, loss, stats = vq(z)
    # mse(z, c) = (1 + 9) / 2 = 5; L_VQ = 5 + beta * 5
    torch.testing.assert_close(loss, torch.tensor(5.0 * (1 + beta)))
    loss.backward()
    # Eq. 5: the codebook term has weight 1: d/dc mean((c - z)^2) = 2 (c - z) / 2 = -(1, 3)
    torch.testing.assert_close(vq.embedding.weight.grad, torch.tensor([[-1.0, -3.0]]))
    # the commitment term has weight beta: d/dz beta * mean((z - c)^2) = beta * (z - c)
    torch.testing.assert_close(z.grad.flatten(), beta * torch.tensor([1.0, 3.0]))
    assert stats["perplexity"].item() == pytest.approx(1.0) and stats["codes_used"] == 1


def test_straight_through_gradient():
    torch.manual_seed(0)
    vq = VectorQuantizer(codebook_size=8, emb_dim=4)
    z = torch.randn(2, 4, 3, 3, requires_grad=True)
    z_q, _, _ = vq(z)
    w = torch.randn_like(z)
    loss = (z_q * w).sum() + (z_q**2).sum()
    dz_q = torch.autograd.grad(loss, z_q, retain_graph=True)[0]
    dz = torch.autograd.grad(loss, z)[0]
    torch.testing.assert_close(dz, dz_q)


def test_codebook_data_init_and_dead_code_restart():
    torch.manual_seed(0)
    q = VectorQuantizer(codebook_size=6, emb_dim=3)
    z = torch.randn(2, 3, 2, 2)  # 8 latent vectors
    flat = z.permute(0, 2, 3, 1).reshape(-1, 3)
    q.init_from_latents(z, torch.Generator().manual_seed(0))
    for row in q.embedding.weight:  # every code now sits on one of the latents
        assert (flat - row).abs().sum(1).min() < 1e-6
    assert len({tuple(r.tolist()) for r in q.embedding.weight}) == 6, "distinct latents picked"
    with pytest.raises(ValueError, match="at least codebook_size=6"):
        q.init_from_latents(torch.randn(1, 3, 2, 2))

    before = q.embedding.weight.detach().clone()
    dead = torch.tensor([True, False, False, True, False, False])
    z2 = torch.randn(1, 3, 2, 2) + 10.0  # far from the current codes
    assert q.restart_codes(dead, z2, torch.Generator().manual_seed(1)) == 2
    after = q.embedding.weight.detach()
    torch.testing.assert_close(after[~dead], before[~dead])
    flat2 = z2.permute(0, 2, 3, 1).reshape(-1, 3)
    for row in after[dead]:
        assert (flat2 - row).abs().sum(1).min() < 1e-6
    assert q.restart_codes(torch.zeros(6, dtype=torch.bool), z2) == 0
