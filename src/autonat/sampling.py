"""The NAT decoding loop (paper Sec. 3.1) as a pure function.

    sample(model, strategy, cond, noise) -> SampleOutput(ids [B, N], trace)

`model` fulfils the decoding half of `autonat.models.contract.NATModel`: `seq_len`,
`codebook_size`, `mask_id` and `decode_step(ids, cond, query, cache) -> (logits [B, M, K], cache)`
(the cache, if any, is threaded through explicitly and manipulated only through its own `rows` /
`cat` / `same_state`). `cond` is a Condition of B rows (`autonat.conditioning`: class ids today);
the sampler only slices, stacks and nulls it. Nothing else is read or mutated.

Step t (all rows of a batch have the same number M of [MASK] tokens, since all start at N):
  1. logits at the M masked positions; with guidance s > 0, l = l_c + s (l_c - l_u) from a
     conditional and an unconditional (`cond.null()`) pass; s = 0 runs the conditional pass only
     (unless the strategy says `always_uncond`).
  2. sample x ~ softmax(l / tau1) by inverse CDF with one uniform per position (tau1 = 0: argmax);
  3. confidence C = log softmax(l)[x] (guided, not temperature-scaled); decoded tokens: +inf;
  4. re-mask the k = strategy.masked_counts(N)[t] lowest of C + tau2 * Gumbel (Gumbel-top-k
     sampling without replacement from softmax(C / tau2); tau2 = 0: deterministic), or, with a
     fixed token order (`order="halton"`), the k masked positions that come last in that order
     (`halton-random`: that order cyclically shifted by a random start per image, drawn once
     before step 1 from the noise, purpose 2).

Randomness comes only from `noise`: a `torch.Generator` (draws in call order), or an
`IndexedNoise` whose numbers for sample i at step t are a pure function of (seed, i, t, position):
common random numbers that stay identical when the strategy, batch size or batch composition
changes, so two strategies evaluated on the same indices differ only by the strategy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import torch

from .conditioning import Condition
from .io import AutonatError
from .models.contract import cache_cat, cache_rows, caches_aligned, masked_positions
from .rng import mix64
from .strategy import Strategy

_U_EPS = 1e-7


# ----------------------------------------------------------------------------------------------
# Noise
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class IndexedNoise:
    """Common random numbers: the uniforms of sample `sample_ids[b]` at step t for purpose
    `kind` (0 = token sampling, 1 = re-masking Gumbel) come from a generator seeded with
    hash(seed, sample id, t, kind), one uniform per token position."""
    seed: int
    sample_ids: tuple[int, ...]

    def rows(self, lo: int, hi: int) -> "IndexedNoise":
        """The noise of samples lo:hi of this set (the same numbers, whatever the batching)."""
        return IndexedNoise(self.seed, self.sample_ids[lo:hi])

    def uniforms(self, step: int, kind: int, n: int) -> torch.Tensor:
        out = torch.empty(len(self.sample_ids), n)
        g = torch.Generator()
        for b, i in enumerate(self.sample_ids):
            g.manual_seed(mix64(self.seed, i, step, kind))
            out[b] = torch.rand(n, generator=g)
        return out


Noise = torch.Generator | IndexedNoise


def _uniforms(noise: Noise, batch: int, step: int, kind: int, n: int) -> torch.Tensor:
    if isinstance(noise, IndexedNoise):
        if len(noise.sample_ids) != batch:
            raise AutonatError(f"IndexedNoise has {len(noise.sample_ids)} sample ids for a batch of {batch}")
        return noise.uniforms(step, kind, n)
    return torch.rand(batch, n, generator=noise)


# ----------------------------------------------------------------------------------------------
# Pieces (pure, unit-tested)
# ----------------------------------------------------------------------------------------------

def guided_logits(cond: torch.Tensor, uncond: torch.Tensor | None, scale: float, form: str = "logits"
                  ) -> torch.Tensor:
    """l = l_c + s (l_c - l_u). With s = 0 (or no unconditional logits) this is exactly l_c.
    form `muse`: the same l computed as Muse / aMUSEd do, l_u + (1 + s) (l_c - l_u)."""
    if scale == 0 or uncond is None:
        return cond
    if form == "muse":
        return uncond + (1 + scale) * (cond - uncond)
    return cond + scale * (cond - uncond)


def sample_tokens(logits: torch.Tensor, temperature: float, u: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF draw from softmax(logits / temperature) with uniforms u (same leading shape).
    temperature = 0 -> argmax."""
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    cdf = probs.cumsum(-1)
    target = u.unsqueeze(-1) * cdf[..., -1:]
    idx = torch.searchsorted(cdf, target).squeeze(-1)
    return idx.clamp_max(logits.shape[-1] - 1)


def gumbel_from_uniform(u: torch.Tensor) -> torch.Tensor:
    return -torch.log(-torch.log(u.clamp(_U_EPS, 1 - _U_EPS)))


def choose_remask(confidence: torch.Tensor, temperature: float, k: int, u: torch.Tensor | None = None,
                  gumbel: torch.Tensor | None = None) -> torch.Tensor:
    """Indices (into the last dim) of the k entries to re-mask: the k lowest of C + tau2 * G, with
    G = Gumbel noise from uniforms `u` (or given as `gumbel`)."""
    if temperature <= 0:
        score = confidence
    else:
        score = confidence + temperature * (gumbel if gumbel is not None else gumbel_from_uniform(u))
    return score.argsort(dim=-1, stable=True)[..., :k]


def halton_order(num_tokens: int) -> torch.Tensor:
    """Token positions (row-major over a square h x h grid) in the order of the 2-D Halton
    sequence: point i = 1, 2, ... is (phi_2(i), phi_3(i)) (radical inverses in bases 2 and 3),
    cell (floor(h phi_2), floor(h phi_3)) = (row, column); a cell is placed at its first visit."""
    h = math.isqrt(num_tokens)
    if h * h != num_tokens:
        raise AutonatError(f"the Halton order needs a square token grid, got {num_tokens} tokens")

    def radical_inverse(i: int, base: int) -> float:
        f, x = 1.0, 0.0
        while i > 0:
            f /= base
            x += f * (i % base)
            i //= base
        return x

    seen, order, i = set(), [], 1
    while len(order) < num_tokens:
        cell = int(h * radical_inverse(i, 2)) * h + int(h * radical_inverse(i, 3))
        if cell not in seen:
            seen.add(cell)
            order.append(cell)
        i += 1
    return torch.tensor(order)


def token_priority(order: str, num_tokens: int, shifts: torch.Tensor | None = None) -> torch.Tensor | None:
    """Per position, how early a fixed order reveals it (higher = earlier); None = by confidence.
    `halton-random` needs `shifts` (one integer in [0, N) per image): image b's order is the
    Halton order rolled by shifts[b] (entry i moves to place (i + shift) mod N), so the result
    is [B, N]; `halton` gives [N], shared by every image."""
    if order == "confidence":
        return None
    if order not in ("halton", "halton-random"):
        raise AutonatError(f"unknown token order {order!r}")
    pos = halton_order(num_tokens)
    place = torch.arange(num_tokens)
    if order == "halton":
        return torch.empty(num_tokens).scatter_(0, pos, -place.float())
    if shifts is None:
        raise AutonatError("the halton-random order needs one shift per image")
    rolled = (place.unsqueeze(0) + shifts.long().view(-1, 1)) % num_tokens        # [B, N] new places
    return torch.empty(len(shifts), num_tokens).scatter_(1, pos.expand(len(shifts), -1), -rolled.float())


def order_shifts(noise: "Noise", batch: int, num_tokens: int) -> torch.Tensor:
    """The random start of each image's `halton-random` order: floor(u N) for one uniform per
    image (purpose 2 of the noise, so a common-random-number set gives every image its own
    start whatever the batching)."""
    u = _uniforms(noise, batch, 0, 2, 1)[:, 0]
    return (u * num_tokens).long().clamp_max(num_tokens - 1)


def _call(model, ids, cond, query, cache, chunk: int | None):
    """model.decode_step, optionally over row chunks of `chunk` sequences. On CPU, chunks of a
    few dozen sequences keep every activation in cache and run ~1.7x faster than one big batch
    (elementwise ops are memory-bound here); results are the same per row."""
    b = ids.shape[0]
    if chunk is None or b <= chunk:
        return model.decode_step(ids, cond, query, cache)
    logits, caches = [], []
    for lo in range(0, b, chunk):
        hi = min(lo + chunk, b)
        lg, c = model.decode_step(ids[lo:hi], cond.rows(lo, hi), query[lo:hi], cache_rows(cache, lo, hi))
        logits.append(lg)
        caches.append(c)
    return torch.cat(logits), cache_cat(caches)


# ----------------------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------------------

@dataclass
class SampleOutput:
    ids: torch.Tensor                          # [B, N] token ids, all in [0, K)
    masked_counts: list[int]                   # N, then masked count after each step, ..., 0
    trace: list[dict] = field(default_factory=list)  # per step: ids, mask, confidence (if asked)


@torch.inference_mode()
def check_steps(steps: int, num_tokens: int) -> None:
    """Every step decodes at least one token, so a strategy fits a model only if T <= N."""
    if steps > num_tokens:
        raise AutonatError(f"{steps} steps for {num_tokens} tokens: every step decodes at least one "
                           f"token, so the number of steps must be <= {num_tokens}")


@torch.inference_mode()
def sample(model, strategy: Strategy, cond: Condition, noise: Noise, *, trace: bool = False,
           chunk: int | None = None, on_step: Callable[[int], None] | None = None) -> SampleOutput:
    """Decode B = len(cond) images' tokens in `strategy.steps` steps from an all-[MASK] canvas
    (see the module docstring); `cond.null()` is the unconditional pass of guidance.
    chunk: run the model over row chunks of this many sequences (a speed knob; same result).
    on_step: called with t after each step (progress display; it cannot change the result)."""
    device = next(iter(model.parameters())).device
    cond = cond.to(device)
    B, N, K, MASK = len(cond), model.seq_len, model.codebook_size, model.mask_id
    check_steps(strategy.steps, N)
    ids = torch.full((B, N), MASK, dtype=torch.long, device=device)
    counts = strategy.masked_counts(N)
    shifts = order_shifts(noise, B, N) if strategy.order == "halton-random" else None
    priority = token_priority(strategy.order, N, shifts)
    if priority is not None:
        priority = priority.to(device).expand(B, N)
    both = type(cond).cat([cond, cond.null()])
    null = both.rows(B, 2 * B)
    cache_c = cache_u = None
    steps_trace: list[dict] = []
    for t in range(strategy.steps):
        # 1. logits at the masked positions: conditional, and unconditional when guided
        query = masked_positions(ids == MASK, counts[t])
        s = strategy.s[t]
        uncond = s != 0 or strategy.always_uncond
        if uncond and caches_aligned(cache_c, cache_u):      # both passes as one batch
            logits, cache = _call(model, torch.cat([ids, ids]), both, torch.cat([query, query]),
                                  cache_cat([cache_c, cache_u]), chunk)
            cache_c, cache_u = cache_rows(cache, 0, B), cache_rows(cache, B, 2 * B)
            lc, lu = logits.float().chunk(2)
        else:
            lc, cache_c = _call(model, ids, cond, query, cache_c, chunk)
            lc, lu = lc.float(), None
            if uncond:
                lu, cache_u = _call(model, ids, null, query, cache_u, chunk)
                lu = lu.float()
        logits = guided_logits(lc, lu, s, strategy.guidance)
        # 2-3. sample every masked position, score it
        if hasattr(noise, "draw_tokens"):    # a noise mode that draws its own way (autonat.muse.AmusedNoise)
            x, conf = noise.draw_tokens(logits, strategy.tau1[t], query, N)
            u_tok = None
        else:
            u_tok = _uniforms(noise, B, t, 0, N).to(device).gather(1, query)
            x = sample_tokens(logits, strategy.tau1[t], u_tok)
            conf = torch.log_softmax(logits, dim=-1).gather(-1, x.unsqueeze(-1)).squeeze(-1)
        ids = ids.scatter(1, query, x)
        # 4. re-mask the k least confident (or, with a fixed order, the k latest in the order)
        k = counts[t + 1]
        if k > 0:
            if priority is None:
                if hasattr(noise, "gumbel"):
                    g = noise.gumbel(B, N).to(device).gather(1, query)
                    drop = choose_remask(conf, strategy.tau2[t], k, gumbel=g)
                else:
                    u_g = _uniforms(noise, B, t, 1, N).to(device).gather(1, query)
                    drop = choose_remask(conf, strategy.tau2[t], k, u_g)
            else:
                drop = choose_remask(priority.gather(1, query), 0.0, k)
            ids = ids.scatter(1, query.gather(1, drop), MASK)
        if trace:
            full_conf = torch.full((B, N), float("inf"), device=device).scatter(1, query, conf)
            steps_trace.append({"ids": ids.cpu(), "mask": (ids == MASK).cpu(), "confidence": full_conf.cpu(),
                                "sampled": x.cpu(), "query": query.cpu()})
        if on_step is not None:
            on_step(t)
    if bool((ids == MASK).any()) or int(ids.max()) >= K:
        raise AssertionError("decoding left [MASK] tokens: the strategy must end with r = 0")
    return SampleOutput(ids=ids, masked_counts=counts, trace=steps_trace)
