"""Exact speculative sampling of the AR model, with the absorbing prior as the draft (method 'speculative').

Speculative sampling (Leviathan et al., ICML 2023, Algorithm 1; Chen et al. 2023, Algorithm 2) draws from a
target p with fewer sequential calls of it: a cheap proposal q drafts a block of tokens, the target scores the
whole block in one pass, and a rule keeps a prefix of the draft so that the result follows p exactly. Here p is
the AR baseline, p_j(v) = p(x_j = v | x_<j) = softmax(top_k(logits_j) / temperature), and q the kit's absorbing
prior, which can fill several masked positions in one call.

One round, from the accepted prefix x_<n of an image (n < L):
1. Draft the positions n..e-1 (e = min(n + block, L)) in `draft_steps` chunks in raster order. Chunk c's
   positions are drawn independently, each from q_j = softmax(draft logits_j / draft_temperature) of the
   absorbing network given x_<n and the chunks before c, every later position still masked.
2. Score: one teacher-forced pass of the AR model over x_<n and the draft gives p_j for j = n..e (the key/value
   cache holds x_<n-1 already, so the pass runs the new positions only).
3. For j = n, n+1, ...: accept the draft token v_j with probability min(1, p_j(v_j) / q_j(v_j)). At the first
   rejection draw x_j from the residual r_j = max(0, p_j - q_j) / sum(max(0, p_j - q_j)) and drop the rest of the
   draft. If every draft token is accepted (and e < L), draw one bonus token x_e from p_e.

Why the tokens follow p exactly. Fix a position j the round reaches (all draft tokens before it accepted). Given
everything drawn before j, v_j ~ q_j: chunk c's tokens are independent given the prefix and the chunks before c,
so v_j depends on tokens at positions < j only, and on randomness independent of the accept/reject uniforms
before j. Then P(x_j = v) = q_j(v) min(1, p_j(v)/q_j(v)) + (1 - beta_j) r_j(v) = min(q_j(v), p_j(v))
+ max(0, p_j(v) - q_j(v)) = p_j(v), with beta_j = sum_v min(p_j(v), q_j(v)) the acceptance probability (1 - beta_j =
the residual's mass). So every token is drawn from p_j(. | x_<j) given all that came before, which is the AR law
(the chain rule); whether a position is kept or dropped is decided by what happened before it. This is why the
draft reveals its block in raster-order chunks, NOT in random order: a token drawn given a later position's
draft would make v_j depend on a token after j, and the accepted tokens would follow the draft's joint law
instead. q may be anything else: the draft's temperature only changes how many tokens are accepted.

A batch runs in lockstep (one AR pass per round for all images, through one key/value cache). Each round drafts
up to one common end e = min(n_min + block, L), n_min the shortest prefix of the batch; an image further ahead
drafts fewer tokens (none when it has reached e, then it takes the bonus x_e if it can). Whether a position is
drafted still depends only on what came before it, so the rule stays exact. (Letting an image that is ahead
draft its full block would not save passes: the batch needs as many as its slowest image, which always drafts a
full block.) The cache is rolled back to x_<n_min-1 at the next round by `forward_cached`'s rewind (it
overwrites from `start` on), so rejected draft tokens never reach a later score.

The start state (B, L) holds the draft's mask id where tokens are to be drawn; they must form a suffix of each
row (a prefix is kept). `start` returns L - n_min, a bound on the rounds (each adds a token to the shortest
prefix at least); `sample` stops once every image is complete. Every random draw is a float64 uniform of the
context's generator: one per drafted position (inverse CDF), one per scored position (accept test), one per image.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from ulib.device import exact_float
from ulib.sample.autoregressive import check_causal_model, tempered_probs
from ulib.sample.base import Sampler, SampleStep, SamplingContext, categorical, uniforms
from ulib.sample.cpu_step import CachedForward
from ulib.sample.network import logits_at


# ---- the rule ------------------------------------------------------------------------------------------
def acceptance(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """min(1, p / q) elementwise: the chance of keeping a draft token v with target p(v) and proposal q(v) > 0."""
    return torch.where(q > 0, (p / q).clamp(max=1.0), torch.ones_like(p))


def residual(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """r = max(0, p - q) / sum(max(0, p - q)) over the last axis: where a rejection draws from. Where p <= q
    everywhere (p == q up to rounding: a rejection then has probability ~0) it returns p."""
    r = (p - q).clamp(min=0.0)
    mass = r.sum(-1, keepdim=True)
    return torch.where(mass > 0, r / mass.clamp(min=torch.finfo(r.dtype).tiny), p)


# ---- the sampler ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SpeculativeOptions:
    """Speculative sampling's settings."""

    draft: object = None  # the draft network: tokens (B, L) with mask ids -> logits (B, L, K) (an absorbing prior)
    block: int = 4  # tokens drafted per round (per AR pass)
    draft_steps: int = 1  # draft calls per round: the block revealed in this many raster-order chunks
    draft_temperature: float | None = None  # divides the draft's logits; None: the target's temperature
    top_k: int | None = None  # the target's top-k restriction (as the AR sampler's); None: the whole softmax
    use_cache: bool = True  # score with the AR model's key/value cache; False: the whole prefix every round

    def __post_init__(self):
        if self.draft is not None and not callable(self.draft):  # None: given later (the sampler needs it)
            raise ValueError(f"draft={self.draft!r}; allowed: the draft network, a callable tokens -> logits")
        for name in ("block", "draft_steps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}={v!r}; allowed: an integer >= 1")
        if self.draft_steps > self.block:
            raise ValueError(f"draft_steps={self.draft_steps}; allowed: 1..block={self.block}")
        if self.draft_temperature is not None and not self.draft_temperature > 0:
            raise ValueError(f"draft_temperature={self.draft_temperature!r}; allowed: None or > 0")
        if self.top_k is not None and (isinstance(self.top_k, bool) or not isinstance(self.top_k, int)
                                       or self.top_k < 1):
            raise ValueError(f"top_k={self.top_k!r}; allowed: None or an integer >= 1")


@dataclass
class SpeculativeStats:
    """What a run cost and kept (summed over the batch)."""

    ar_passes: int = 0  # AR passes (rounds): each scores one block for every image at once
    draft_passes: int = 0  # draft network calls
    drafted: int = 0  # draft tokens proposed
    accepted: int = 0  # draft tokens kept
    tokens: int = 0  # tokens drawn (accepted + residual + bonus)
    image_rounds: int = 0  # (image, round) pairs with the image still incomplete
    per_round: list[int] = field(default_factory=list)  # tokens drawn per round, batch total

    @property
    def acceptance_rate(self) -> float:
        """Share of the draft tokens kept."""
        return self.accepted / self.drafted if self.drafted else float("nan")

    @property
    def tokens_per_pass(self) -> float:
        """Tokens an image gains per AR pass it takes part in (1 for the plain AR sampler)."""
        return self.tokens / self.image_rounds if self.image_rounds else float("nan")


class SpeculativeSampler(Sampler):
    """Speculative sampling of the AR model (module docstring), one round per step.

    The context's net: the causal `Transformer` (with `forward_cached`/`new_cache` when use_cache), sampled at
    the context's temperature and the options' top_k; the options' draft: a network over the same codebook with
    a mask id (its `mask_id`, else the context's). Both in eval() mode. extras of each `SampleStep`: 'draft'
    ((B, L) the drafted tokens, the mask id elsewhere), 'drafted' and 'accepted' ((B,) long counts),
    'window' ((first, last) positions the AR pass scored). `stats`: a `SpeculativeStats` of the current run.
    """

    Options = SpeculativeOptions

    def __init__(self, ctx: SamplingContext, steps: int | None = None, options: SpeculativeOptions | None = None):
        super().__init__(ctx, steps, options)
        o, model = self.options, self.model
        if o.draft is None:
            raise ValueError("draft=None; speculative sampling needs the draft network (a callable tokens -> logits, "
                             "e.g. the run's absorbing prior)")
        self.draft_net = o.draft
        self.draft_temperature = self.temperature if o.draft_temperature is None else o.draft_temperature
        draft_mask = getattr(o.draft, "mask_id", None)
        if draft_mask is not None and ctx.mask_id is not None and draft_mask != ctx.mask_id:
            raise ValueError(f"the draft's mask_id={draft_mask} differs from the context's mask_id={ctx.mask_id}")
        self.mask_id = draft_mask if draft_mask is not None else ctx.mask_id
        if self.mask_id is None:
            raise ValueError("the draft network has no mask_id attribute; give the context's mask_id (its "
                             "absorbing state's id)")
        self.K = check_causal_model(model, ctx.length, o.top_k, o.use_cache)
        if self.K is not None and self.mask_id < self.K:
            raise ValueError(f"mask_id={self.mask_id} is one of the AR model's codes 0..{self.K - 1}; the draft's "
                             f"mask id lies past them")
        self.forward_cached = CachedForward(model) if o.use_cache else None
        self.cache, self._last = None, None  # the cache and the x it belongs to
        self.stats = SpeculativeStats()

    # ---- the protocol ------------------------------------------------------------------------------------
    def prefix_lengths(self, x: torch.Tensor) -> torch.Tensor:
        """(B,) long n_b: the tokens before the first mask id of each row; ValueError unless the masks are a suffix."""
        if x.dim() != 2 or x.shape[1] != self.ctx.length:
            raise ValueError(f"x of shape {tuple(x.shape)}; expected (B, L) with L = length={self.ctx.length}")
        given = x != self.mask_id
        n = given.long().cumprod(1).sum(1)
        if not torch.equal(n, given.sum(1)):
            raise ValueError("speculative sampling draws in raster order: the mask ids of each row must form a "
                             "suffix (a given prefix, then masks)")
        return n

    def start(self, x: torch.Tensor) -> int:
        """A new run from x (B, L): resets `stats`; returns L - n_min, a bound on the rounds."""
        self.stats = SpeculativeStats()
        return self.ctx.length - int(self.prefix_lengths(x).min()) if x.shape[0] else 0

    @torch.no_grad()
    def sample(self, x: torch.Tensor, callback=None, progress: bool = False) -> torch.Tensor:
        """Rounds from x until every row is complete; callback(k, SampleStep) after each."""
        bound = self.start(x)
        bar = tqdm(total=bound, desc=type(self).__name__, leave=False) if progress else None
        for k in range(bound):
            if bool((x != self.mask_id).all()):
                break
            res = self.step(x, k)
            x = res.x
            if bar is not None:
                bar.update(1)
            if callback is not None:
                callback(k, res)
        if bar is not None:
            bar.close()
        return x

    # ---- one round -----------------------------------------------------------------------------------------
    def chunks(self, n: torch.Tensor, todo: torch.Tensor) -> torch.Tensor:
        """(B, L) long: the draft call 0..draft_steps-1 that drafts each position of `todo` (-1 elsewhere). Raster
        order: offset r = j - n_b in the row's block goes to chunk floor(r * draft_steps / block)."""
        block, s = self.options.block, self.options.draft_steps
        rel = torch.arange(todo.shape[1], device=todo.device) - n[:, None]  # (B, L)
        return torch.where(todo, rel * s // block, torch.full_like(rel, -1))

    def draft(self, x: torch.Tensor, n: torch.Tensor, todo: torch.Tensor, first: int, width: int):
        """Draft the positions `todo` (B, L) (n_b..end-1 of each row) in `draft_steps` raster-order chunks.
        Returns the tokens (B, L) with the draft written in and q (B, width, K) in exact_float: the draft's law at
        positions first..first+width-1 (zero where nothing was drafted), or None when nothing was."""
        chunk = self.chunks(n, todo)
        xd, q = x.clone(), None
        for c in range(self.options.draft_steps):
            where = chunk == c  # (B, L)
            rows = where.any(1)
            if not rows.any():
                continue
            self.stats.draft_passes += 1
            logits = logits_at(self.draft_net, xd[rows], where[rows])  # (N, K), rows without positions skipped
            if q is None:
                if self.K is not None and logits.shape[-1] != self.K:
                    raise ValueError(f"the draft predicts {logits.shape[-1]} codes; the AR model {self.K}")
                q = torch.zeros(x.shape[0], width, logits.shape[-1], dtype=exact_float(x.device), device=x.device)
            probs = torch.softmax(logits.to(q.dtype) / self.draft_temperature, dim=-1)
            xd[where] = categorical(probs, uniforms(probs.shape[0], self.generator, x.device))
            q[where[:, first:first + width]] = probs  # row-major: the same order as xd[where]
        return xd, q

    def score(self, xd: torch.Tensor, first: int, last: int, fresh: bool) -> torch.Tensor:
        """Logits (B, last - first + 1, K) of p(x_j | x_<j), j = first..last: one teacher-forced AR pass over
        xd[:, :last]. With the cache (fresh=False: it holds x_<first-1) the pass runs positions first-1..last-1
        only, overwriting the cache from there on (the rollback); fresh=True rebuilds it from the start token."""
        self.forward_passes += 1
        self.stats.ar_passes += 1
        model = self.model
        if self.forward_cached is None:  # start token + x_0..x_{last-1}: (B, last + 1, K) predicting x_0..x_last
            if hasattr(model, "features") and hasattr(model, "head"):
                return model.head(model.features(xd[:, :last])[:, first:])
            return model(xd[:, :last])[:, first:]
        if fresh or first == 0:  # x_0's logits come from the start token: a new sequence
            self.cache = model.new_cache()
            return self.forward_cached(xd[:, :last], self.cache, 0)[:, first:]
        return self.forward_cached(xd[:, first - 1:last], self.cache, first - 1)

    @torch.no_grad()
    def step(self, x: torch.Tensor, k: int | None = None) -> SampleStep:
        """One round (module docstring): draft, one AR pass, accept or reject. k is not needed."""
        L, B, dev = self.ctx.length, x.shape[0], x.device
        n = self.prefix_lengths(x)  # (B,) tokens drawn so far
        first = int(n.min())
        if first >= L:
            return SampleStep(x, torch.zeros_like(x, dtype=torch.bool), ran_network=False)
        end = min(first + self.options.block, L)  # the common end of this round's drafts
        last = min(end, L - 1)  # the last position scored: the bonus position end, where it exists
        pos = torch.arange(L, device=dev)
        todo = (pos >= n[:, None]) & (pos < end)  # (B, L) drafted: n_b..end-1
        xd, q = self.draft(x, n, todo, first, last - first + 1)
        p = tempered_probs(self.score(xd, first, last, fresh=x is not self._last), self.temperature,
                           self.options.top_k, dtype=exact_float(dev))  # (B, W, K) over first..last
        q = torch.zeros_like(p) if q is None else q  # nothing drafted (every row at or past end): bonus draws only
        win = slice(first, last + 1)
        drafted = todo[:, win]  # (B, W)
        v = xd[:, win].clamp(max=p.shape[-1] - 1)[..., None]  # (B, W, 1) draft tokens (a clamped mask id: unused)
        p_v, q_v = p.gather(-1, v).squeeze(-1), q.gather(-1, v).squeeze(-1)
        u = uniforms((B, p.shape[1]), self.generator, dev)
        accept = drafted & (u < acceptance(p_v, q_v))  # (B, W): kept with probability min(1, p/q)
        final = (pos[win] < n[:, None]) | accept  # given or accepted
        e = first + final.long().cumprod(1).sum(1)  # (B,) first position not final: the rejection, or the bonus
        draws = e <= last
        rows = torch.arange(B, device=dev)
        at = (e - first).clamp(max=last - first)
        p_e, q_e = p[rows, at], q[rows, at]  # (B, K)
        law = torch.where((draws & (e < end))[:, None], residual(p_e, q_e), p_e)  # rejected: residual; else p
        token = categorical(law, uniforms(B, self.generator, dev))
        x_new = x.clone()
        kept = todo & (pos < e[:, None])  # (B, L) accepted draft tokens
        x_new[kept] = xd[kept]
        x_new[rows[draws], e[draws]] = token[draws]
        n_new = e + draws.long()
        self._last = x_new
        st, gained = self.stats, int((n_new - n).sum())
        st.drafted, st.accepted, st.tokens = st.drafted + int(todo.sum()), st.accepted + int(kept.sum()), \
            st.tokens + gained
        st.image_rounds += int((n < L).sum())
        st.per_round.append(gained)
        wrote = (pos >= n[:, None]) & (pos < n_new[:, None])
        extras = {"draft": torch.where(todo, xd, self.mask_id), "drafted": todo.sum(1), "accepted": kept.sum(1),
                  "window": (first, last)}
        return SampleStep(x_new, wrote, extras=extras)


# ---- the front function ------------------------------------------------------------------------------------
def speculative_sample(ar_net, draft_net, n: int, *, block: int = 4, draft_steps: int = 1, temperature: float = 1.0,
                       draft_temperature: float | None = None, top_k: int | None = None,
                       generator: torch.Generator | None = None, length: int | None = None, device=None,
                       use_cache: bool = True, callback=None) -> tuple[torch.Tensor, SpeculativeStats]:
    """n sequences (n, L) long from the AR model `ar_net` by speculative sampling with `draft_net` as the draft
    (module docstring; the settings are `SpeculativeOptions`'), and the run's `SpeculativeStats`. length defaults
    to the AR model's block_size, device to its parameters'. The same law as `sample_ar(ar_net, n, L,
    temperature=..., top_k=...)`."""
    length, device = length or ar_net.block_size, device or next(ar_net.parameters()).device
    ctx = SamplingContext(ar_net, 0, None, length, temperature=temperature, generator=generator)
    options = SpeculativeOptions(draft_net, block, draft_steps, draft_temperature, top_k, use_cache)
    sampler = SpeculativeSampler(ctx, options=options)
    tokens = sampler.sample(sampler.initial_state(n, device), callback=callback)
    return tokens, sampler.stats
