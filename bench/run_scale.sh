#!/usr/bin/env bash
# run_scale.sh - mybackup beside restic on a tree of many small files: wall time and peak memory
# of every operation that has to handle each file, and the latency of the catalog's lookups.
#
#   bench/run_scale.sh --files 1000000 [--tools mybackup,restic] [--corpora DIR] [--out FILE.md]
#
# The corpus is `../shared/bench/scale.sh`'s: N files made of `small` corpora (20,000 files each,
# seeds 1001, 1002, ...), generated once into DIR/corpus-many-N. For each tool, in one run:
#   initial       first backup
#   no-change     the same tree again
#   incremental   1% more files: a folder of 1% of N hard links to existing files (new paths, known
#                 content), removed again afterwards
#   restore       the whole tree into an empty folder (verified against the corpus for mybackup)
#   clean         mybackup clean --keep-versions 1 --keep-days 0 | restic forget --keep-last 1 --prune
#   verify        mybackup verify | restic check (both: metadata and index, not the data)
#   init --from   mybackup only: a new home rebuilt from the destination
# and, for mybackup, `status`, `list FILE` and `restore --list` (the first 10 lines) in ms.
# Each measure is one run, warm cache, with `sync` and a pause before it. Run as root, each
# restore writes into a fresh ext4 file system on a loop device: on a file system where many
# files were just deleted, ext4 takes several times longer to create new ones (recently_deleted),
# whatever the tool. Needs: python3, restic,
# /usr/bin/time, and a release build (MYBACKUP_BIN, default build/release/apps/mybackup/mybackup).
# Disk: about 6 GB at 1,000,000 files for the corpus, as much again per tool while it runs.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
SHARED="$ROOT/../shared/bench"
FILES="" TOOLS="mybackup,restic" CORPORA="${TMPDIR:-/tmp}" OUT=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --files) FILES="$2"; shift 2 ;;
    --tools) TOOLS="$2"; shift 2 ;;
    --corpora) CORPORA="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run_scale.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ -n $FILES && $((FILES % 20000)) -eq 0 && $FILES -gt 0 ]] || { echo "run_scale.sh: --files must be a positive multiple of 20000" >&2; exit 2; }
[[ -x /usr/bin/time ]] || { echo "run_scale.sh: needs /usr/bin/time (apt-get install time)" >&2; exit 2; }
B="${MYBACKUP_BIN:-$ROOT/build/release/apps/mybackup/mybackup}"

C="$CORPORA/corpus-many-$FILES"
if [[ ! -f $C/.complete ]]; then
  rm -rf "$C"; mkdir -p "$C"
  for ((s = 1; s <= FILES / 20000; s++)); do
    python3 "$SHARED/make_corpus.py" "$C/part$(printf %03d $s)" --profile small --seed $((1000 + s)) >/dev/null
  done
  touch "$C/.complete"
fi
W=$(mktemp -d "$CORPORA/run-scale.XXXXXX")
cleanup() { umount "$W/t/out" 2>/dev/null || true; rm -rf "$W" "$C/zz-incremental"; }
trap cleanup EXIT
CORPUS_BYTES=$(du -sb "$C" | cut -f1)
# restore_target: $W/t/out, an empty fresh ext4 file system when we may make one.
restore_target() {
  mkdir -p "$W/t/out"
  if [[ $(id -u) -eq 0 ]] && command -v mkfs.ext4 >/dev/null; then
    rm -f "$W/fs.img"
    truncate -s $((CORPUS_BYTES * 3 + (1 << 30))) "$W/fs.img"
    mkfs.ext4 -q -F -N $((FILES + FILES / 4 + 100000)) "$W/fs.img" && mount -o loop "$W/fs.img" "$W/t/out" && rmdir "$W/t/out/lost+found"
  fi
}
release_target() { umount "$W/t/out" 2>/dev/null || true; rm -rf "$W/t/out" "$W/fs.img"; }

settle() { sync; sleep "${SETTLE_SECONDS:-10}"; }
# The corpus read once before each tool: "warm cache" for both (a million small files read cold
# from this disk take minutes, and the second tool would get the first one's cache).
warm() { tar cf - -C "$C" . | cat >/dev/null; }
# measure COMMAND... -> "seconds peakMiB" (the command's output goes to $W/out.txt)
measure() {
  settle
  if ! /usr/bin/time -o "$W/time.txt" -f "%e %M" "$@" >"$W/out.txt" 2>"$W/err.txt"; then
    echo "run_scale.sh: FAILED: $* ($(tail -n1 "$W/err.txt"))" >&2
    echo "- -"; return
  fi
  awk '{printf "%.2f %.0f\n", $1, $2 / 1024}' "$W/time.txt"
}
# millis COMMAND... -> milliseconds of one run
millis() {
  local start end
  start=$(date +%s%N); "$@" >/dev/null 2>&1; end=$(date +%s%N)
  echo $(((end - start) / 1000000))
}
# The 1% incremental: hard links (new paths, known content) to the first files of part001.
make_incremental() {
  local count=$((FILES / 100)) made=0
  mkdir -p "$C/zz-incremental"
  while IFS= read -r -d '' f; do
    ln "$f" "$C/zz-incremental/f$made"
    made=$((made + 1)); [[ $made -lt $count ]] || break
  done < <(find "$C/part001" -type f -print0)
}

rows=() lookups=""
for tool in ${TOOLS//,/ }; do
  rm -rf "$W/t" "$C/zz-incremental"; mkdir -p "$W/t"
  warm
  case "$tool" in
    mybackup)
      [[ -x $B ]] || { echo "run_scale.sh: no mybackup at $B (scripts/build release)" >&2; continue; }
      export MYBACKUP_HOME="$W/t/home"
      "$B" init >/dev/null; "$B" add "$C" --exclude .complete >/dev/null
      "$B" config set destination "$W/t/repo" >/dev/null
      read -r ti mi < <(measure "$B" backup)
      read -r tn mn < <(measure "$B" backup)
      make_incremental
      read -r tc mc < <(measure "$B" backup)
      rm -rf "$C/zz-incremental"
      "$B" backup >/dev/null  # records the folder's removal
      restore_target
      read -r tr mr < <(measure "$B" restore --directory "$C" --destination "$W/t/out")
      diff -rq --exclude=.complete "$C" "$W/t/out" >/dev/null || { echo "run_scale.sh: mybackup's restore differs from the corpus" >&2; exit 1; }
      release_target
      read -r tk mk < <(measure "$B" clean --keep-versions 1 --keep-days 0)
      read -r tv mv < <(measure "$B" verify)
      "$B" key export --output "$W/t/key" >/dev/null
      read -r tf mf < <(MYBACKUP_HOME="$W/t/home2" measure "$B" init --from "$W/t/repo" --key-file "$W/t/key")
      some_file=$(find "$C/part001" -type f -print -quit)
      lookups="status $(millis "$B" status) ms, list FILE $(millis "$B" list "$some_file") ms, restore --list (first 10 lines) $(millis sh -c "'$B' restore --list | head -n 10") ms; catalog $(du -m "$W/t/home/backups.db" | cut -f1) MiB"
      version=$("$B" --version | head -n1) ;;
    restic)
      command -v restic >/dev/null || { echo "run_scale.sh: restic not installed (scripts/bootstrap --bench)" >&2; continue; }
      export RESTIC_REPOSITORY="$W/t/repo" RESTIC_PASSWORD=bench RESTIC_CACHE_DIR="$W/t/cache"
      restic init >/dev/null 2>&1
      read -r ti mi < <(measure restic backup -q --exclude .complete "$C")
      read -r tn mn < <(measure restic backup -q --exclude .complete "$C")
      make_incremental
      read -r tc mc < <(measure restic backup -q --exclude .complete "$C")
      rm -rf "$C/zz-incremental"
      restic backup -q --exclude .complete "$C" >/dev/null
      restore_target
      read -r tr mr < <(measure restic restore -q latest --target "$W/t/out")
      release_target
      read -r tk mk < <(measure restic forget -q --keep-last 1 --prune)
      read -r tv mv < <(measure restic check -q)
      tf="n/a" mf="n/a"
      version=$(restic version | cut -d' ' -f1-2) ;;
    *) echo "run_scale.sh: unknown tool $tool" >&2; continue ;;
  esac
  rows+=("| $version | $ti / $mi | $tn / $mn | $tc / $mc | $tr / $mr | $tk / $mk | $tv / $mv | $tf / $mf |")
  echo "run_scale.sh: ${rows[-1]}" >&2
  rm -rf "$W/t"
done
{
  echo
  echo "### $FILES files ($(du -sh --exclude=.complete "$C" | cut -f1)): seconds / peak MiB, one run, warm cache"
  echo
  echo "| tool | initial | no-change | incremental (+1%) | restore | clean | verify | init --from |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${rows[@]}"
  [[ -z $lookups ]] || { echo; echo "mybackup lookups: $lookups"; }
} | tee ${OUT:+"$OUT"}
