#!/usr/bin/env bash
# Runs ../shared/bench/run_bench.sh for mybackup beside restic and borg on one corpus profile.
#   bench/run_macro.sh [--profile small|mixed|tiny] [--runs N] [--tools LIST] [--out PATH]
# Corpora are generated once under ${BENCH_CORPUS_DIR:-/tmp} (outside the checkout).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
kit="${BENCH_KIT:-$root/../shared/bench}"
[[ -x "$kit/run_bench.sh" ]] || { echo "bench kit not found at $kit (set BENCH_KIT)" >&2; exit 2; }
profile=mixed runs=1 tools=restic,borg,mybackup out=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --profile) profile="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --tools) tools="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,4p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
bin="$root/build/release/apps/mybackup/mybackup"
[[ -x "$bin" ]] || "$root/scripts/build" release >/dev/null
corpus="${BENCH_CORPUS_DIR:-/tmp}/corpus-$profile"
[[ -d "$corpus" ]] || python3 "$kit/make_corpus.py" "$corpus" --profile "$profile"
args=(--profile "$profile" --corpus "$corpus" --runs "$runs" --tools "$tools")
[[ -n "$out" ]] && args+=(--out "$out")
MYBACKUP_BIN="$bin" "$kit/run_bench.sh" "${args[@]}"
