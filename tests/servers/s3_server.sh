#!/usr/bin/env bash
# The S3 server the remote tests run against: a throwaway single-node Ceph RADOS Gateway on a
# free loopback port (CTest starts it once per run as the fixture `s3_server`, and stops it after).
#
#   tests/servers/s3_server.sh start DIR   start; writes DIR/env ("export NAME=value" lines:
#                                          AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, S3_ENDPOINT)
#   tests/servers/s3_server.sh stop DIR    stop it and remove DIR
#
# It drives ../shared/ceph/ceph-rgw.sh (the workplace's Ceph starter; MYBACKUP_CEPH_RGW names
# another copy). Needs Debian's ceph-mon ceph-osd radosgw ceph-common (scripts/bootstrap --remote).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

find_starter() {
  local candidate
  for candidate in "${MYBACKUP_CEPH_RGW:-}" "$root/../shared/ceph/ceph-rgw.sh" /work/shared/ceph/ceph-rgw.sh; do
    if [[ -n "$candidate" && -x "$candidate" ]]; then
      echo "$candidate"
      return
    fi
  done
  echo "s3_server: ceph-rgw.sh not found (looked at \$MYBACKUP_CEPH_RGW, $root/../shared/ceph/ and /work/shared/ceph/)" >&2
  exit 1
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

case "${1:-}" in
  start)
    dir="${2:?usage: s3_server.sh start DIR}"
    starter="$(find_starter)"
    "$0" stop "$dir" 2>/dev/null || true
    for attempt in 1 2 3; do
      mkdir -p "$dir"
      port="$(free_port)"
      if CEPH_RGW_MGR=0 CEPH_RGW_STORE_MB="${CEPH_RGW_STORE_MB:-8192}" "$starter" start "$dir/ceph" "$port" > "$dir.env.tmp" 2> "$dir.log"; then
        mv "$dir.env.tmp" "$dir/env"
        echo "s3_server: Ceph RGW on 127.0.0.1:$port (state in $dir)"
        exit 0
      fi
      echo "s3_server: attempt $attempt failed:" >&2
      tail -5 "$dir.log" >&2
      "$starter" stop "$dir/ceph" 2>/dev/null || true
      rm -rf "$dir"
    done
    exit 1
    ;;
  stop)
    dir="${2:?usage: s3_server.sh stop DIR}"
    if [[ -d "$dir/ceph" ]]; then
      "$(find_starter)" stop "$dir/ceph" >/dev/null 2>&1 || true
    fi
    rm -rf "$dir" "$dir.env.tmp" "$dir.log"
    ;;
  *)
    echo "usage: tests/servers/s3_server.sh start|stop DIR" >&2
    exit 2
    ;;
esac
