#!/usr/bin/env bash
# mybackup beside restic, backing up to and restoring from a remote destination on loopback:
# an S3 bucket on a throwaway Ceph RADOS Gateway (tests/servers/s3_server.sh), or an SFTP folder
# on OpenSSH's sshd (the tests' server, as the program mybackup_test_sshd).
#
#   bench/run_remote.sh [--protocol s3|sftp] [--profile small|mixed|tiny] [--out FILE.md]
#
# For each tool, on a fresh repository: (a) the initial backup, (b) a backup with no change,
# (c) a full restore into an empty folder, checked against the source with verify_tree.py: the
# mean of two, see below.
# Wall seconds and peak RSS from /usr/bin/time; the servers run on this machine too, so their CPU
# competes with the tools' (both tools alike). Corpora are generated once under
# ${BENCH_CORPUS_DIR:-/tmp}. Needs scripts/bootstrap --bench --servers.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
kit="${BENCH_KIT:-$root/../shared/bench}"
[[ -f "$kit/make_corpus.py" ]] || kit=/work/shared/bench
protocol=s3 profile=small out=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --protocol) protocol="$2"; shift 2 ;;
    --profile) profile="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
bin="$root/build/release/apps/mybackup/mybackup"
[[ -x "$bin" ]] || "$root/scripts/build" release >/dev/null
corpus="${BENCH_CORPUS_DIR:-/tmp}/corpus-$profile"
[[ -d "$corpus" ]] || python3 "$kit/make_corpus.py" "$corpus" --profile "$profile" >/dev/null

work="$(mktemp -d "${TMPDIR:-/tmp}/mybackup-remote-bench.XXXXXX")"
servers="$work/servers"
cleanup() {
  case "$protocol" in
    s3) "$root/tests/servers/s3_server.sh" stop "$servers" >/dev/null 2>&1 || true ;;
    sftp) [[ -n "${sshd_pid:-}" ]] && kill "$sshd_pid" 2>/dev/null && wait "$sshd_pid" 2>/dev/null || true ;;
  esac
  rm -rf "$work"
}
trap cleanup EXIT

case "$protocol" in
  s3)
    "$root/tests/servers/s3_server.sh" start "$servers" >/dev/null
    # shellcheck disable=SC1091
    source "$servers/env"
    host_port="${S3_ENDPOINT#http://}"
    mybackup_url="s3+http://$host_port/bench-mybackup/repo"
    restic_repo="s3:http://$host_port/bench-restic/repo"
    ;;
  sftp)
    sshd="$root/build/release/tests/mybackup_test_sshd"
    [[ -x "$sshd" ]] || cmake --build "$root/build/release" --target mybackup_test_sshd >/dev/null
    mkdir -p "$servers"
    "$sshd" "$servers/env" &
    sshd_pid=$!
    for _ in $(seq 100); do [[ -s "$servers/env" ]] && break; sleep 0.1; done
    # shellcheck disable=SC1091
    source "$servers/env"  # SSHD_PORT, SSHD_USER, SSHD_IDENTITY, SSHD_KNOWN_HOSTS
    mkdir -p "$work/remote"
    mybackup_url="sftp://$SSHD_USER@127.0.0.1:$SSHD_PORT$work/remote/mybackup?identity=$SSHD_IDENTITY&known_hosts=$SSHD_KNOWN_HOSTS"
    restic_repo="sftp:restic-bench:$work/remote/restic"
    printf 'Host restic-bench\n  HostName 127.0.0.1\n  Port %s\n  User %s\n  IdentityFile %s\n  UserKnownHostsFile %s\n  IdentitiesOnly yes\n' \
      "$SSHD_PORT" "$SSHD_USER" "$SSHD_IDENTITY" "$SSHD_KNOWN_HOSTS" > "$work/ssh_config"
    restic_sftp=(-o "sftp.command=ssh -F $work/ssh_config restic-bench -s sftp")
    ;;
  *) echo "unknown protocol $protocol (s3 or sftp)" >&2; exit 2 ;;
esac

# measure NAME TOOL STEP COMMAND...: appends "tool step seconds MiB" to the results.
results="$work/results"
measure() {
  local tool="$1" step="$2"
  shift 2
  /usr/bin/time -f '%e %M' -o "$work/time" "$@" > "$work/$tool-$step.log" 2>&1 ||
    { echo "$tool $step failed:" >&2; tail -5 "$work/$tool-$step.log" >&2; exit 1; }
  read -r seconds kib < "$work/time"
  echo "$tool $step $seconds $((kib / 1024))" >> "$results"
}
warm() { find "$corpus" -type f -exec cat {} + > /dev/null; }
# Before a restore: what earlier steps left is written back first, so that no restore competes
# with the writeback of another.
settle() { sync; sleep 20; }

# The backups, mybackup's then restic's.
export MYBACKUP_HOME="$work/mybackup-home"
"$bin" init > /dev/null
"$bin" add "$corpus" > /dev/null
"$bin" config set destination "$mybackup_url" > /dev/null
warm
measure mybackup initial "$bin" backup --quiet
measure mybackup no-change "$bin" backup --quiet

export RESTIC_REPOSITORY="$restic_repo" RESTIC_PASSWORD=bench-password RESTIC_CACHE_DIR="$work/restic-cache"
restic_args=(${restic_sftp[@]+"${restic_sftp[@]}"})
restic "${restic_args[@]}" init --repository-version 2 > /dev/null 2>&1
warm
measure restic initial restic "${restic_args[@]}" backup -q "$corpus"
measure restic no-change restic "${restic_args[@]}" backup -q "$corpus"

# Two restores each, in the order mybackup, restic, restic, mybackup (ABBA), each into a new
# folder and checked against the source; the mean of each tool's two counts, which cancels a
# drift of the machine over the run. Restores on this machine vary more than the tools differ:
# ext4 without a journal, as here, skips inodes freed in the last minute (an earlier run's
# cleanup) when it makes new ones, and writeback competes; both times are printed below the table.
restore_mybackup() {
  settle
  measure mybackup "restore$1" "$bin" restore --directory "$corpus" --destination "$work/restore-mybackup$1"
  python3 "$kit/verify_tree.py" "$corpus" "$work/restore-mybackup$1" > /dev/null
}
restore_restic() {
  settle
  measure restic "restore$1" restic "${restic_args[@]}" restore latest --target "$work/restore-restic$1"
  python3 "$kit/verify_tree.py" "$corpus" "$work/restore-restic$1$corpus" > /dev/null
}
restore_mybackup 1
restore_restic 1
restore_restic 2
restore_mybackup 2
for tool in mybackup restic; do
  grep -E "^$tool restore[12] " "$results" |
    awk -v tool="$tool" '{ s += $3; if ($4 > m) m = $4 } END { printf "%s restore %.2f %d\n", tool, s / NR, m }' >> "$results"
done

files=$(find "$corpus" -type f | wc -l)
mib=$(du -sm "$corpus" | cut -f1)
{
  echo "$protocol, profile $profile ($files files, $mib MiB), $(date -u +%F), one run; $(restic version | cut -d' ' -f1-2)"
  echo
  echo "| step | mybackup s | restic s | ratio | mybackup MiB | restic MiB |"
  echo "|---|---:|---:|---:|---:|---:|"
  for step in initial no-change restore; do
    read -r _ _ ms mm < <(grep "^mybackup $step " "$results")
    read -r _ _ rs rm < <(grep "^restic $step " "$results")
    ratio=$(python3 -c "print(f'{$rs / max($ms, 0.01):.2f}x')")
    echo "| $step | $ms | $rs | $ratio | $mm | $rm |"
  done
  echo
  echo "restore: the mean of two (ABBA); mybackup $(grep -E '^mybackup restore[12] ' "$results" | cut -d' ' -f3 | paste -sd/) s," \
    "restic $(grep -E '^restic restore[12] ' "$results" | cut -d' ' -f3 | paste -sd/) s; peak MiB the larger"
} | tee "${out:-/dev/null}"
