#!/usr/bin/env bash
# NAB evaluation of the monitor's generic detector, beside the plain windowed-Gaussian baseline
# scored the same way in the same run.
#
#   benches/nab.sh NAB_DIR SCORER [THRESHOLD]
#
# NAB_DIR holds data/<category>/<file>.csv and labels/combined_windows.json (the layout of the
# Numenta Anomaly Benchmark); SCORER is a NAB scorer taking --data --labels --results --profile
# --threshold and printing JSON (in this project: ../shared/tools/nab_score.py). THRESHOLD is the
# fixed production alarm level (default 0.40). Every series is scored by `syncwarden monitor
# score`, point by point with the live detector code; the scorer then reports the three NAB
# profiles at its own (oracle) threshold and the standard profile at THRESHOLD.
set -euo pipefail
nab=${1:?usage: benches/nab.sh NAB_DIR SCORER [THRESHOLD]}
scorer=${2:?usage: benches/nab.sh NAB_DIR SCORER [THRESHOLD]}
threshold=${3:-0.40}
nab=$(cd "$nab" && pwd)
scorer=$(cd "$(dirname "$scorer")" && pwd)/$(basename "$scorer")
cd "$(dirname "$0")/.."
cargo build --release --quiet
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for detector in ensemble windowed-gaussian; do
    ./target/release/syncwarden monitor score --detector "$detector" \
        --input-dir "$nab/data" --output-dir "$work/$detector" 2>/dev/null >"$work/$detector.cost.json"
    score() {
        python3 "$scorer" --data "$nab/data" --labels "$nab/labels/combined_windows.json" \
            --results "$work/$detector" "$@"
    }
    score --profile all >"$work/$detector.oracle.json"
    score --profile all --threshold "$threshold" >"$work/$detector.fixed.json"
done
python3 - "$work" "$threshold" <<'PY'
import json, sys
work, threshold = sys.argv[1], sys.argv[2]
load = lambda name: json.load(open(f"{work}/{name}.json"))
ours, base = "ensemble", "windowed-gaussian"
print(f"{'profile':<20} {'threshold':<17} {'ensemble':>9} {'baseline':>9} {'ratio':>6}  tp/fn/fp (ensemble)")
for mode in ("oracle", "fixed"):
    o, b = load(f"{ours}.{mode}")["profiles"], load(f"{base}.{mode}")["profiles"]
    for profile, r in o.items():
        if mode == "oracle":
            label = f"optimised {r['threshold']:.4f}"
            baseline = f"{b[profile]['score']:9.2f}"
            ratio = f"{r['score'] / b[profile]['score']:6.2f}" if b[profile]["score"] > 0 else "     -"
        else:
            # The baseline's scores live on another scale: a fixed level of ours means nothing to it.
            label, baseline, ratio = f"fixed {threshold}", "        -", "     -"
        print(f"{profile:<20} {label:<17} {r['score']:9.2f} {baseline} {ratio}  "
              f"{r['tp_windows']}/{r['fn_windows']}/{r['fp_points']}")
for det in (ours, base):
    c = load(f"{det}.cost")
    print(f"cost {det}: {c['points']} points in {c['files']} series, "
          f"{c['ns_per_point']:.0f} ns/point, {c['points_per_sec']:,.0f} points/s")
PY
