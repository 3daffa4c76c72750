#!/usr/bin/env bash
# Round robin of minimax, random and three LLM bots reading their moves STRICTLY (an occupied
# cell forfeits): unsteered, the fixed vector, the learned policy. Everything is played through
# one arena server on a free loopback port; the LLM bots are remote bots (own processes).
#
#   scripts/llm_tournament.sh [GAMES_PER_PAIRING] [OUT_DIR] [SEED]
#
# Writes OUT_DIR/tournament.json and .md (Elo with 95 % bootstrap intervals; docs/TOURNAMENTS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
GAMES=${1:-40}
OUT=${2:-docs/results/tournament_llm}
SEED=${3:-0}
PY=${PYTHON:-.venv/bin/python}
ART=bots/llm/artifacts
LEARNED=${LEARNED:-$ART/learned_policy.json}
[ -f "$LEARNED" ] || { echo "no learned policy at $LEARNED (autosteer-train ppo ships it)" >&2; exit 2; }
PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
URL=ws://127.0.0.1:$PORT
DB=$(mktemp -d)/tournament.sqlite3
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
echo "tournament: server on $URL (records in $DB)"
$PY -m server.cli serve --port "$PORT" --db "$DB" --quiet --seed "$SEED" & pids+=($!)
for _ in $(seq 100); do  # wait for /healthz
    $PY -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/healthz', timeout=1)" 2>/dev/null && break
    sleep 0.2
done
for spec in "llm-unsteered:none" "llm-fixed:$ART/policy.json" "llm-learned:$LEARNED"; do
    name=${spec%%:*}; policy=${spec#*:}
    $PY -m bots.cli run --kind llm --mode strict --policy "$policy" --name "$name" --server "$URL" \
        --max-games 16 --seed "$SEED" --log-level WARNING & pids+=($!)
done
$PY -m server.cli tournament --server "$URL" --bots minimax,random,llm-unsteered,llm-fixed,llm-learned \
    --games "$GAMES" --seed "$SEED" --wait 180 --out "$OUT" --id "llm-strict-seed$SEED"
echo "tournament: done, see $OUT/tournament.md"
