"""Stand-ins the sampler tests share: a seeded generator, a tiny transformer, `CountModel` (a deterministic
'network' whose logits depend on what is already revealed), the paper's reverse process written plainly, and
chi-square checks of sampled counts."""
import math

import torch

from ulib.prior.transformer import Transformer
from ulib.sample.absorbing import time_schedule


def gen(seed):
    return torch.Generator().manual_seed(seed)


def tiny_transformer(K=16, L=12):
    torch.manual_seed(0)
    return Transformer(codebook_size=K, block_size=L, n_emb=32, n_head=4, n_layers=2).eval()


class CountModel(torch.nn.Module):
    """A deterministic 'network' whose logits depend on x_t, so the order of reveals matters:
    logits[b, i, c] = bias[i, c] + a * (number of tokens c already in row b). Row-wise and exact, so a row
    gets the same logits whatever else is in the batch. Records every row it is shown."""

    def __init__(self, K, L, a=1.5, seed=0):
        super().__init__()
        self.K, self.a = K, a
        self.bias = torch.randn(L, K, generator=gen(seed))
        self.calls, self.rows = 0, []

    def forward(self, x):
        self.calls += 1
        self.rows += [tuple(r) for r in x.tolist()]
        counts = (x[:, :, None] == torch.arange(self.K)).sum(1)  # (B, K), mask id never counted
        return self.bias[: x.shape[1]] + self.a * counts[:, None, :].float()  # (B, L, K)


def plain_reverse_process(model, T, steps, mask_id, B, L, temperature=1.0, generator=None):
    """The paper's sampler written plainly (like the official code): the full network and a categorical
    draw at every position at every step, then each masked position unmasks with probability (t - s)/t.
    Returns the tokens (B, L) and the step (B, L) at which each position was revealed."""
    x = torch.full((B, L), mask_id, dtype=torch.long)
    step_of = torch.full((B, L), -1, dtype=torch.long)
    times = time_schedule(T, steps)
    for k, (t, s) in enumerate(zip(times, times[1:])):
        probs = torch.softmax(model(x).float() / temperature, dim=-1)  # (B, L, K)
        draws = torch.multinomial(probs.view(B * L, -1), 1, generator=generator).view(B, L)
        unmask = (x == mask_id) & (torch.rand(B, L, generator=generator) < (t - s) / t)
        x = torch.where(unmask, draws, x)
        step_of[unmask] = k
    return x, step_of


def chi2_same_law(a, b):
    """Two-sample chi-square statistic on counts a, b (n,) and its critical value at p = 0.001
    (Wilson-Hilferty approximation of the chi-square quantile)."""
    table = torch.stack([a, b]).double()
    table = table[:, table.sum(0) > 0]
    expected = table.sum(1, keepdim=True) * table.sum(0, keepdim=True) / table.sum()
    stat = ((table - expected) ** 2 / expected).sum().item()
    return stat, _chi2_critical(table.shape[1] - 1)


def chi2_fits(counts, p):
    """Goodness-of-fit chi-square of counts (n,) against probabilities p (n,), and the p = 0.001 critical value."""
    expected = counts.sum().double() * p.double()
    return ((counts.double() - expected) ** 2 / expected).sum().item(), _chi2_critical(len(p) - 1)


def _chi2_critical(dof, z=3.090):
    return dof * (1 - 2 / (9 * dof) + z * math.sqrt(2 / (9 * dof))) ** 3
