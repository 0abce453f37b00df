"""FID-vs-cost comparisons between a NAT and a peer family, saying exactly what was measured.

Points are dicts with `fid`, `seconds_per_image` and `flops_per_image` (what `autonat evaluate
--json` and the frontier bench write). For a NAT point and a peer frontier:

* if some peer point reaches the NAT's FID, the equal-FID peer cost is the cheapest such point,
  or a log-linear interpolation in time between the two points around the FID (`equal_fid_cost`),
  and the ratio is peer / NAT;
* if none does, no equal-FID ratio exists: the NAT is compared with three *named* peer points -
  the fastest, the first point inside the plateau (the cheapest point within `PLATEAU` of the
  best FID), and the best - each with its FID, its time ratio and its FLOP ratio
  (`named_points`). Nothing is extrapolated.
"""
from __future__ import annotations

import math

PLATEAU = 1.10          # a point is "inside the plateau" when its FID <= 1.10 x the best FID

PEER_FAMILIES = {  # name in the tables -> the series stem of its points ("ar", "ar-...", never "arccos-...")
    "pixel diffusion": "diffusion",
    "latent diffusion": "latent",
    "autoregressive": "ar",
}


def peer_family(series: str) -> str | None:
    """The peer family a series belongs to (its name is the stem or starts with stem + "-"), or
    None for a NAT series."""
    return next((name for name, stem in PEER_FAMILIES.items() if series == stem or series.startswith(stem + "-")),
                None)


def equal_fid_cost(fid: float, peer: list[dict], key: str = "seconds_per_image") -> float | None:
    """The peer cost (`key`) needed to reach `fid`: the cheapest point at or below it, or a
    log-linear interpolation between the two points around it; None if no peer point reaches it."""
    pts = sorted((r[key], r["fid"]) for r in peer)
    best = [p for p in pts if p[1] <= fid]
    if not best:
        return None
    cheapest = min(best)
    worse = [p for p in pts if p[0] < cheapest[0] and p[1] > fid]
    if not worse:
        return cheapest[0]
    (t0, f0), (t1, f1) = max(worse), cheapest                 # f0 > fid >= f1, t0 < t1
    a = (f0 - fid) / (f0 - f1)
    return math.exp(math.log(t0) + a * (math.log(t1) - math.log(t0)))


def named_points(peer: list[dict]) -> dict[str, dict]:
    """The peer's fastest point, first point inside the plateau, and best point."""
    best = min(peer, key=lambda r: r["fid"])
    inside = [r for r in peer if r["fid"] <= PLATEAU * best["fid"]]
    return {"fastest": min(peer, key=lambda r: r["seconds_per_image"]),
            "plateau": min(inside, key=lambda r: r["seconds_per_image"]), "best": best}


def compare(nat: dict, peer: list[dict]) -> dict:
    """How a NAT point compares with a peer frontier (see module docstring)."""
    out = {"fid": nat["fid"], "seconds_per_image": nat["seconds_per_image"],
           "flops_per_image": nat.get("flops_per_image")}
    need = equal_fid_cost(nat["fid"], peer)
    if need is not None:
        flops = equal_fid_cost(nat["fid"], peer, "flops_per_image") if all("flops_per_image" in r for r in peer) \
            else None
        out["equal_fid"] = {"seconds_per_image": need, "time_ratio": need / nat["seconds_per_image"],
                            "flop_ratio": flops / nat["flops_per_image"] if flops and nat.get("flops_per_image")
                            else None}
    out["named"] = {}
    for name, r in named_points(peer).items():
        out["named"][name] = {"fid": r["fid"], "steps": r.get("steps"), "label": r.get("label", ""),
                              "contended": contended(r), "latency_ms_b1": r.get("latency_ms_b1"),
                              "time_ratio": r["seconds_per_image"] / nat["seconds_per_image"],
                              "flop_ratio": (r["flops_per_image"] / nat["flops_per_image"]
                                             if r.get("flops_per_image") and nat.get("flops_per_image") else None),
                              "nat_better_fid": nat["fid"] < r["fid"]}
    return out


def contended(r: dict) -> bool:
    """Was this point timed under contention? Its record says so (`contended`), or the 1-minute load
    it recorded exceeds the threads it ran on by more than half a core."""
    if r.get("contended"):
        return True
    load, threads = r.get("loadavg_1m"), r.get("threads")
    return load is not None and threads is not None and load > threads + 0.5


def _name(r: dict) -> str:
    return r.get("label") or f"T={r.get('steps')}"


def _ratio(x: float | None) -> str:
    return f"{x:.2f}x" if x is not None and x < 0.995 else (f"{x:.1f}x" if x is not None else "-")


def _latency(peer: dict, nat: dict) -> str:
    a, b = peer.get("latency_ms_b1"), nat.get("latency_ms_b1")
    return f"{a:.0f} / {b:.0f} ms = {_ratio(a / b)}" if a and b else "-"


def _mark(contended_: bool) -> str:
    return " \u2020" if contended_ else ""


def comparison_table(nats: dict[str, dict], families: dict[str, list[dict]]) -> str:
    """Markdown: ONE table, a row per (NAT point, peer family). Columns: does any peer point reach
    the NAT's FID (then the equal-FID peer / NAT ratios, time and FLOPs), the time and FLOP ratios
    against the peer's fastest point, first point inside the plateau and best point, each with its
    FID, and the batch-1 latency of the peer's best point against the NAT's. Ratios are peer / NAT
    (above 1: the NAT is cheaper). A point timed under contention is marked with a dagger."""
    lines = ["| NAT point | FID | ms / image | GFLOPs / image | peer family (points) | equal FID: peer / NAT time, "
             "FLOPs | vs the peer's fastest point | vs its first plateau point | vs its best point | "
             "batch-1 latency, peer's best point / NAT |", "|---|---|---|---|---|---|---|---|---|---|"]

    def fmt(p: dict) -> str:
        return (f"{_name(p)}{_mark(p['contended'])}: FID {p['fid']:.2f}; {_ratio(p['time_ratio'])} time, "
                f"{_ratio(p['flop_ratio'])} FLOPs")
    for name, nat in sorted(nats.items(), key=lambda kv: kv[1]["fid"]):
        for fam, peer in families.items():
            if not peer:
                continue
            c = compare(nat, peer)
            eq = c.get("equal_fid")
            eq_s = (f"reached: {_ratio(eq['time_ratio'])} time, {_ratio(eq['flop_ratio'])} FLOPs" if eq
                    else "not reached: no peer point has this FID")
            flops = f"{nat['flops_per_image'] / 1e9:.2f}" if nat.get("flops_per_image") else "-"
            lines.append(f"| {name} ({_name(nat)}){_mark(contended(nat))} | {nat['fid']:.2f} | "
                         f"{nat['seconds_per_image'] * 1000:.1f} | {flops} | {fam} ({len(peer)}) | {eq_s} | "
                         + " | ".join(fmt(c["named"][k]) for k in ("fastest", "plateau", "best"))
                         + f" | {_latency(c['named']['best'], nat)} |")
    return "\n".join(lines) + "\n"


SETTING_KEYS = ("series", "steps", "guidance", "temperature", "top_k", "n", "seed")


def setting(r: dict) -> tuple:
    """What makes two evaluations the same point: series, sampler setting, n and sampling seed
    (everything but the weights)."""
    return tuple(r.get(k) for k in SETTING_KEYS)


def seed_table(base: list[dict], repeats: list[dict], base_seed: int = 0) -> str:
    """Markdown, a row per setting evaluated in `repeats` (weights of another training seed): FID
    and precision / recall per training seed, and the FID spread (max - min, and as a share of the
    mean FID) across the seeds. `base` rows without a `train_seed` field count as trained with
    `base_seed` (the frontier's models); a repeat must name its seed. A repeat with no base point
    at the same setting (series, sampler setting, n, sampling seed) says so rather than vanishing;
    a point measured twice with one training seed is an error (it would pass as a seed spread).
    Empty string without repeats."""
    wanted = {setting(r) for r in repeats}
    by: dict[tuple, dict[int, dict]] = {}
    for r, default in [(r, base_seed) for r in base if setting(r) in wanted] + [(r, None) for r in repeats]:
        seed = r.get("train_seed", default)
        if seed is None:
            raise ValueError(f"repeat row {setting(r)} does not say which training seed made it (train_seed)")
        seeds = by.setdefault(setting(r), {})
        if seed in seeds:
            raise ValueError(f"{setting(r)} is evaluated twice with training seed {seed}")
        seeds[seed] = r
    seeds_seen = sorted({base_seed} | {s for v in by.values() for s in v})
    lines = ["| point | " + " | ".join(f"train seed {s}: FID, P / R" for s in seeds_seen) + " | FID spread |",
             "|---|" + "---|" * len(seeds_seen) + "---|"]

    def order(kv):                      # numbers as numbers (T=8 before T=16), None and text after
        return tuple((0, x) if isinstance(x, (int, float)) else (1, str(x)) for x in kv[0])
    for _, v in sorted(by.items(), key=order):
        r0 = next(iter(v.values()))
        cells = [(f"{v[s]['fid']:.2f}, " + (f"{v[s]['precision']:.3f} / {v[s]['recall']:.3f}"
                                             if "precision" in v[s] else "-")) if s in v else "-" for s in seeds_seen]
        fids = [x["fid"] for x in v.values()]
        d = max(fids) - min(fids)
        spread = (f"{d:.2f} ({100 * d * len(fids) / sum(fids):.0f}% of the mean)" if len(v) > 1
                  else "no other training seed at this setting")
        lines.append(f"| {r0['series']} ({_name(r0)}, n = {r0['n']}) | " + " | ".join(cells) + f" | {spread} |")
    return "\n".join(lines) + "\n" if len(lines) > 2 else ""
