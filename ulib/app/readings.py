"""A notebook's verdicts and its reading: the paper's claims judged by this run's numbers (`ulib.app.verdicts`), the
reading's table, this run's scale beside the paper's, timing, and simple token statistics."""
from __future__ import annotations

import math
import time

import torch

from ulib.app.outputs import show_markdown
from ulib.app.session import Session
from ulib.app.verdicts import write_notebook_rows
from ulib.io.logs import (
    markdown_table,
)
from ulib.profiles import get_profile
from ulib.trained import prior_from_config


# ---- verdicts: the paper's claims, judged by the numbers (ulib.app.verdicts) -----------------------------
def claim(s: Session, notebook: str, key: str, claim: str, paper: str, result, *, show: bool = True) -> dict:
    """Record the verdict on one of the paper's claims and print its sentence (prose generated from numbers).

    notebook: the notebook's stem ('04_step_skipping'); key: a short id unique in the notebook; claim: what the
    paper says, one line; paper: the paper's figure/table and value; result: a `ulib.eval.stats.Verdict`, or a
    (verdict word, statistic sentence) pair for claims judged otherwise (a proportion, a trend test). Every
    call rewrites RUN/results/verdicts_<notebook>.json with the rows recorded so far in this kernel for that
    notebook (the first call of a kernel starts the file afresh), so a re-run replaces its rows."""
    if isinstance(result, tuple):
        word, statistic = result
    else:
        word = result.verdict.replace("±margin", f"±{result.margin:g}") if result.margin is not None else result.verdict
        statistic = result.sentence
    row = {"notebook": notebook, "key": key, "claim": claim, "paper": paper, "verdict": word, "statistic": statistic}
    rows = _CLAIMS.setdefault((str(s.results), notebook), {})
    rows[key] = row
    write_notebook_rows(s.results, notebook, list(rows.values()))
    if show:
        show_markdown(f"**{claim}** ({paper}): **{word}**. {statistic}")
    return row


_CLAIMS: dict[tuple[str, str], dict[str, dict]] = {}


READING_COLUMNS = ("what", "paper", "this run", "verdict")


def reading(s: Session, notebook: str, rows=()) -> list[dict]:
    """The table a notebook's reading ends with: every verdict `claim` recorded in this kernel for `notebook`
    (the claim, the paper's value, the measured sentence, the verdict), then `rows`, figures without a claimed
    direction given as dicts with the keys READING_COLUMNS ('verdict' may be left out). Shown as Markdown and
    returned."""
    table = [{"what": r["claim"], "paper": r["paper"], "this run": r["statistic"], "verdict": r["verdict"]}
             for r in _CLAIMS.get((str(s.results), notebook), {}).values()]
    for r in rows:
        unknown = set(r) - set(READING_COLUMNS)
        if unknown or not {"what", "paper", "this run"} <= set(r):
            raise ValueError(f"reading row {r}: keys must be {READING_COLUMNS} ('verdict' optional)")
        table.append({"verdict": "measured", **r})
    if not table:
        raise ValueError(f"no verdicts recorded for {notebook!r} in this kernel and no rows given")
    show_markdown(markdown_table(table, list(READING_COLUMNS)))
    return table


def scale_rows(s: Session, paper_profile: str = "ffhq") -> list[dict]:
    """`reading` rows that set this run's scale beside the paper's (its `paper_profile` settings: 256 px images,
    16x16 tokens, K = 1024, an 80M-parameter transformer trained 2M steps): why numbers differ at this scale."""
    ours, paper = s.cfg, get_profile(paper_profile)
    count = lambda c: sum(p.numel() for p in prior_from_config(c).parameters())  # noqa: E731
    pair = lambda c: {  # noqa: E731
        "images": f"{c.data.img_size}x{c.data.img_size} px -> {c.latent_size}x{c.latent_size} = "
                  f"{c.latent_size ** 2} tokens",
        "codebook and T": f"K = {c.vqgan.codebook_size}, T = {c.prior.total_steps}",
        "prior": f"{c.prior.n_layers} layers x width {c.prior.n_emb}, {count(c) / 1e6:.1f}M parameters",
        "training": f"VQGAN {c.vqgan_train.steps:,} steps x batch {c.vqgan_train.batch_size}; prior "
                    f"{c.prior_train.steps:,} steps x batch {c.prior_train.batch_size}"}
    return [{"what": what, "paper": theirs, "this run": pair(ours)[what], "verdict": "scale"}
            for what, theirs in pair(paper).items()]


# ---- timing -----------------------------------------------------------------------------------------
def timed(fn, device):
    """(fn(), seconds), waiting for the device's queued work so GPU timings are real."""
    def sync():
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize(device)

    sync()
    t0 = time.perf_counter()
    out = fn()
    sync()
    return out, time.perf_counter() - t0


# ---- simple sample statistics (quality/diversity proxies on CPU-sized runs) -----------------------------
def code_histogram(tokens: torch.Tensor, codebook_size: int) -> torch.Tensor:
    """Normalised histogram (K,) float64 of the codes in `tokens` (any shape)."""
    counts = torch.bincount(tokens.flatten().long().cpu(), minlength=codebook_size).double()
    return counts / counts.sum().clamp(min=1)


def unigram_js(tokens: torch.Tensor, reference: torch.Tensor, codebook_size: int) -> float:
    """Jensen-Shannon divergence (bits, 0..1) between the code histograms of samples and of reference data.

    A cheap stand-in for FID on runs too small for Inception features: 0 when the samples use the codes as
    often as the data does; it rises when sampling collapses onto a few codes or spreads onto rare ones.
    It sees code frequencies only, not how codes are arranged, so it is a proxy, not a quality measure.
    """
    p, q = code_histogram(tokens, codebook_size), code_histogram(reference, codebook_size)
    m = (p + q) / 2

    def kl(a, b):
        return (torch.special.xlogy(a, a) - torch.special.xlogy(a, b)).sum().item() / math.log(2)

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)
