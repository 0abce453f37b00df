#!/usr/bin/env bash
# The paper's ablations at our scale, run after a full search (Algorithm 1) on the tiny
# proxy has finished:
#
#   autonat search --tokens runs/tokens/train --model tiny --steps 4 --method spsa --n 2000 \
#     --n-final 10000 --max-updates 16 --max-trainings 6 --max-alternations 3 --train-steps 800 \
#     --lr-other 0.05 --lr-ratio 0.002 --out runs/search-alt-tiny
#   bash bench/ablations.sh runs/search-alt-tiny [OUT_DIR]          (~40 min on 2 CPU cores)
#
# Table 2  : p(r) = fixed 0.8 vs the arccos heuristic vs the searched Beta, same proxy training
#            budget (the search's own template), all sampled with maskgit at T = 4.
# Table 6d : the generation strategy found on `tiny` transferred to the shipped `small` U-ViT
#            (compare with the small model's own searched strategy and maskgit, docs/RESULTS.md).
# Table 6e : leave one knob out - generation-only searches of the arccos proxy model with the same
#            budget and seeds as the full search's first generation phase, one knob frozen at its
#            maskgit value, and a reference with every knob (it replays that phase from the
#            cache). The full search's trial store is copied into each, so evaluations they
#            share (the start point, the fresh-seed baseline) are not paid twice.
# Every FID in the summary is a fresh-seed (seed 1000000) number on 10k samples.
set -euo pipefail
search=${1:?usage: bench/ablations.sh SEARCH_DIR [OUT_DIR]}
out=${2:-runs/ablations}
n=${N:-10000}
seed=1000000
mkdir -p "$out"
summary="$out/summary.jsonl"
: > "$summary"

# The arccos proxy and the searched p(r) (if the search kept arccos: the best Beta candidate of
# its last line search), with their training directories, from the search's trial store.
read -r arccos_dir found_dist found_dir < <(python - "$search" <<'EOF'
import json, sqlite3, sys
d = sys.argv[1]
dist = json.load(open(f"{d}/best_strategy.json"))["mask_dist"]
with sqlite3.connect(f"{d}/trials.sqlite") as db:
    rows = dict(db.execute("select mask_dist, path from trainings").fetchall())
    if not dist.startswith("beta:"):
        last = json.loads(db.execute("select payload from events where kind = 'training_search' "
                                     "order by id desc limit 1").fetchone()[0])
        dist = f"beta:{last['alpha']:g},{last['beta']:g}"
print(rows["arccos"], dist, rows[dist])
EOF
)
template="$arccos_dir/train_config.json"
cfg() { python -c "import json,sys; print(json.load(open('$template'))['$1'])"; }

ev() {  # name model strategy
  autonat evaluate --model "$2" --strategy "$3" --steps 4 --n "$n" --seed "$seed" --no-pr --json --quiet \
    | tail -n 1 | python -c "import json,sys; r=json.load(sys.stdin); r['name']='$1'; print(json.dumps(r))" >> "$summary"
  tail -n 1 "$summary" | python -c "import json,sys; r=json.load(sys.stdin); print(f\"{r['name']}: FID {r['fid']:.3f}\")"
}

# --- Table 2: same proxy training as the search's candidates, only p(r) differs -------------
proxy() {  # out_dir p(r) seed: one proxy training under the search's template (skipped if done)
  [ -f "$1/model.safetensors" ] || autonat train --tokens "$(cfg tokens)" --model tiny --mask-dist "$2" \
    --steps "$(cfg steps)" --batch-size "$(cfg batch_size)" --lr "$(cfg lr)" --warmup "$(cfg warmup)" \
    --ema "$(cfg ema)" --seed "$3" --log-every 100 --out "$1" --quiet
}
fixed_dir="$out/tiny-fixed0.8"
proxy "$fixed_dir" fixed:0.8 "$(cfg seed)"
# the same trainings with another seed: how much of a p(r) difference is training noise
seed1_dir="$out/tiny-arccos-seed1"
proxy "$seed1_dir" arccos 1
ev "table2 arccos" "$arccos_dir" maskgit
ev "table2 arccos (training seed 1)" "$seed1_dir" maskgit
ev "table2 fixed:0.8" "$fixed_dir" maskgit
ev "table2 best Beta $found_dist" "$found_dir" maskgit
proxy "$out/tiny-beta-seed1" "$found_dist" 1
ev "table2 best Beta $found_dist (training seed 1)" "$out/tiny-beta-seed1" maskgit
ev "table6a best Beta $found_dist + found strategy" "$found_dir" "$search/best_strategy.json"

# --- Table 6d: tiny-found strategy on the shipped small model -------------------------------
ev "table6d small + tiny-found strategy" fashion-mnist "$search/best_strategy.json"

# --- Table 6e: leave one knob out (generation-only, arccos proxy) ---------------------------
for drop in none r tau1 tau2 s; do    # none = every knob (reference: replays the first phase)
  knobs=$(echo r,tau1,tau2,s | tr ',' '\n' | grep -vx "$drop" | paste -sd,)
  d="$out/knobs-no-$drop"
  mkdir -p "$d"
  [ -f "$d/trials.sqlite" ] || cp "$search/trials.sqlite" "$d/trials.sqlite"
  autonat search --only generation --model "$arccos_dir" --steps 4 --method spsa --n 2000 --n-final "$n" \
    --final-seed "$seed" --max-updates 16 --lr-other 0.05 --lr-ratio 0.002 --knobs "$knobs" --out "$d" --quiet \
    | tail -n 1 | python -c "import json,sys; r=json.load(sys.stdin); f=r['final']; print(json.dumps({'name': 'table6e without $drop', 'fid': f['found'], 'baseline': f['baseline'], 'evaluations': r['evaluations']}))" >> "$summary"
  tail -n 1 "$summary"
done
echo "summary: $summary"
