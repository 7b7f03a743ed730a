"""The VQGAN's codebook (ulib.vq.quantizer): the nearest code, L_VQ (Eq. 5), straight-through gradients, the
data-dependent start and dead-code restarts, and the argmin at full fp32 precision under TF32 (issue 26)."""
import pytest
import torch

from ulib.vq.model import VQAutoEncoder
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


def tf32(x: torch.Tensor) -> torch.Tensor:
    """x rounded to TF32 (10 explicit mantissa bits, to nearest): what CUDA's tensor cores read under "high"."""
    bits = x.float().contiguous().view(torch.int32)
    return ((bits + 0x1000) & ~0x1FFF).view(torch.float32)


@pytest.fixture
def tf32_matmuls(monkeypatch, matmul_setting):
    """`a @ b` as CUDA runs it under the process's precision: inputs rounded to TF32 while "high" is set (a CPU
    ignores the setting, so without this stand-in the tests below could not fail here). Returns the list of the
    precisions the matmuls ran under."""
    real, seen = torch.Tensor.__matmul__, []

    def matmul(a, b):
        seen.append(torch.get_float32_matmul_precision())
        return real(tf32(a), tf32(b)) if seen[-1] == "high" else real(a, b)

    monkeypatch.setattr(torch.Tensor, "__matmul__", matmul)
    return seen


def squared_distances(points: torch.Tensor, codes: torch.Tensor, round_to_tf32: bool = False) -> torch.Tensor:
    """Eq. 4's ||z||^2 + ||c||^2 - 2 z.c as `nearest` sums it, optionally with TF32-rounded matmul inputs."""
    a, b = (tf32(points), tf32(codes)) if round_to_tf32 else (points, codes)
    return points.pow(2).sum(1, keepdim=True) + codes.pow(2).sum(1) - 2.0 * torch.mm(a, b.t())


def exact_nearest(points: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Eq. 4's argmin in float64 from the differences themselves (no matmul, no rounding that matters)."""
    return ((points.double()[:, None] - codes.double()[None]) ** 2).sum(-1).argmin(1)


def tokens_at_both_precisions(encode) -> dict:
    """{'highest': encode(), 'high': encode()} with the process-wide float32 matmul precision set to each."""
    tokens = {}
    for precision in ("highest", "high"):
        torch.set_float32_matmul_precision(precision)
        tokens[precision] = encode()
    return tokens


def test_the_distance_matmul_runs_at_full_precision_whatever_the_process_set(tf32_matmuls):
    torch.set_float32_matmul_precision("high")  # what configure_matmul sets on CUDA
    VectorQuantizer(codebook_size=4, emb_dim=3).nearest(torch.randn(2, 3, 2, 2))
    assert tf32_matmuls == ["highest"]
    assert torch.get_float32_matmul_precision() == "high"  # and the caller's setting is back


def test_near_tie_tokens_are_the_same_with_tf32_on_and_off(tf32_matmuls):
    """16 codes within 0.01 of each other around a point near 0, 512 latents among them: many distances differ
    by less than TF32's rounding of z.c (about 4e-3 here) and much more than fp32's (about 1e-6)."""
    g = torch.Generator().manual_seed(0)
    D, K = 8, 16
    centre = torch.randn(D, generator=g)
    codes, points = centre + 0.01 * torch.randn(K, D, generator=g), centre + 0.01 * torch.randn(512, D, generator=g)
    vq = VectorQuantizer(codebook_size=K, emb_dim=D)
    with torch.no_grad():
        vq.embedding.weight.copy_(codes)
    z = points.reshape(1, 16, 32, D).permute(0, 3, 1, 2)  # (B, D, h, w) whose positions are the rows of points
    exact = exact_nearest(points, codes).reshape(1, 16, 32)
    tokens = tokens_at_both_precisions(lambda: vq.nearest(z))
    assert torch.equal(tokens["high"], tokens["highest"]) and torch.equal(tokens["highest"], exact)
    # the data can tell: the same sum with TF32-rounded inputs moves many tokens
    moved = squared_distances(points, codes, round_to_tf32=True).argmin(1).reshape(1, 16, 32) != exact
    assert int(moved.sum()) > 100


@torch.no_grad()
def test_encoded_tokens_are_the_same_with_tf32_on_and_off(tf32_matmuls):
    """`VQAutoEncoder.encode` (the encoder, then `nearest`) with a codebook packed around its latents' mean."""
    torch.manual_seed(0)
    vq = VQAutoEncoder(img_size=16, nf=16, ch_mult=(1, 2), res_blocks=1, attn_resolutions=(), codebook_size=16,
                       emb_dim=8, norm_groups=4).eval()
    x = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    points = vq.encoder(x).permute(0, 2, 3, 1).reshape(-1, 8)  # (256, D)
    codes = points.mean(0) + 0.001 * points.std() * torch.randn(16, 8, generator=torch.Generator().manual_seed(2))
    vq.quantize.embedding.weight.copy_(codes)
    exact = exact_nearest(points, codes).reshape(4, 8, 8)
    tokens = tokens_at_both_precisions(lambda: vq.encode(x))
    assert torch.equal(tokens["high"], tokens["highest"]) and torch.equal(tokens["highest"], exact)
    assert (squared_distances(points, codes, round_to_tf32=True).argmin(1).reshape(4, 8, 8) != exact).any()
