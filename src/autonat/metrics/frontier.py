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
                              "time_ratio": r["seconds_per_image"] / nat["seconds_per_image"],
                              "flop_ratio": (r["flops_per_image"] / nat["flops_per_image"]
                                             if r.get("flops_per_image") and nat.get("flops_per_image") else None),
                              "nat_better_fid": nat["fid"] < r["fid"]}
    return out


def comparison_table(nats: dict[str, dict], peer: list[dict], peer_name: str = "peer") -> str:
    """Markdown: per NAT series (its best point), the equal-FID ratio when it exists, else
    'not reached', and the time / FLOP ratios against the peer's named points."""
    lines = [f"| NAT (best point) | FID | ms / image | equal-FID {peer_name} ratio (time / FLOPs) | "
             f"vs fastest {peer_name} point | vs first plateau point | vs best point |", "|---|---|---|---|---|---|---|"]

    def fmt(p: dict) -> str:
        flop = f"{p['flop_ratio']:.1f}x" if p["flop_ratio"] else "-"
        return f"T={p['steps']}: FID {p['fid']:.2f}; {p['time_ratio']:.1f}x time, {flop} FLOPs"
    for name, r in sorted(nats.items(), key=lambda kv: kv[1]["fid"]):
        c = compare(r, peer)
        eq = c.get("equal_fid")
        eq_s = (f"{eq['time_ratio']:.1f}x / " + (f"{eq['flop_ratio']:.1f}x" if eq["flop_ratio"] else "-")) if eq \
            else "not reached: no point has this FID"
        n = c["named"]
        lines.append(f"| {name} (T={r.get('steps')}) | {r['fid']:.2f} | {r['seconds_per_image'] * 1000:.1f} | {eq_s} | "
                     f"{fmt(n['fastest'])} | {fmt(n['plateau'])} | {fmt(n['best'])} |")
    return "\n".join(lines) + "\n"
