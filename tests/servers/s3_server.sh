#!/usr/bin/env bash
# The S3 servers the remote tests run against, each on a free loopback port (CTest starts them
# once per run as the fixture `s3_server`, and stops them after):
# - a throwaway single-node Ceph RADOS Gateway (plain HTTP), described in DIR/env
#   ("export NAME=value" lines: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, S3_ENDPOINT);
# - s3rver, a second implementation from npm, over TLS with a certificate made for the run,
#   described in DIR/s3rver.env (S3RVER_ENDPOINT, S3RVER_CA); its keys are the profile [s3rver]
#   of the credentials file DIR/credentials.
#
#   tests/servers/s3_server.sh start DIR   start both
#   tests/servers/s3_server.sh stop DIR    stop both and remove DIR
#
# Ceph comes from ../shared/ceph/ceph-rgw.sh (the workplace's Ceph starter; MYBACKUP_CEPH_RGW names
# another copy) and Debian's ceph-mon ceph-osd radosgw ceph-common; s3rver from
# tests/servers/node_modules (npm ci). `scripts/bootstrap --servers` installs both.
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

start_s3rver() {
  local dir="$1" s3rver="$root/tests/servers/node_modules/.bin/s3rver" port attempt
  if [[ ! -x "$s3rver" ]]; then
    echo "s3_server: $s3rver is missing: run scripts/bootstrap --servers (npm ci in tests/servers)" >&2
    return 1
  fi
  mkdir -p "$dir/s3rver/data"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:s3.localhost,DNS:*.s3.localhost" \
    -keyout "$dir/s3rver/key.pem" -out "$dir/s3rver/cert.pem" 2>/dev/null
  for attempt in 1 2 3; do
    port="$(free_port)"
    # s3rver 3.7.1 makes its listing page tokens with DES, which Node's OpenSSL 3 has only in its
    # legacy provider: without it every truncated listing is an HTTP 500.
    # --service-endpoint: BUCKET.s3.localhost is the bucket, virtual-hosted (curl resolves
    # *.localhost to loopback by itself).
    NODE_OPTIONS=--openssl-legacy-provider setsid "$s3rver" -d "$dir/s3rver/data" -a 127.0.0.1 -p "$port" -s \
      --service-endpoint localhost \
      --key "$dir/s3rver/key.pem" --cert "$dir/s3rver/cert.pem" > "$dir/s3rver/log" 2>&1 < /dev/null &
    echo $! > "$dir/s3rver/pid"
    for _ in $(seq 100); do
      if curl -s -o /dev/null --cacert "$dir/s3rver/cert.pem" "https://127.0.0.1:$port/"; then
        printf 'export S3RVER_ENDPOINT=https://127.0.0.1:%s\nexport S3RVER_CA=%s\n' "$port" "$dir/s3rver/cert.pem" > "$dir/s3rver.env"
        printf '[s3rver]\naws_access_key_id = S3RVER\naws_secret_access_key = S3RVER\n' > "$dir/credentials"
        echo "s3_server: s3rver on https://127.0.0.1:$port"
        return 0
      fi
      kill -0 "$(cat "$dir/s3rver/pid")" 2>/dev/null || break
      sleep 0.1
    done
    stop_s3rver "$dir"
    echo "s3_server: s3rver attempt $attempt failed:" >&2
    tail -5 "$dir/s3rver/log" >&2
  done
  return 1
}

stop_s3rver() {
  local pid_file="$1/s3rver/pid"
  if [[ -f "$pid_file" ]]; then
    kill "$(cat "$pid_file")" 2>/dev/null || true
    rm -f "$pid_file"
  fi
}

case "${1:-}" in
  start)
    dir="${2:?usage: s3_server.sh start DIR}"
    starter="$(find_starter)"
    "$0" stop "$dir" 2>/dev/null || true
    mkdir -p "$dir"
    start_s3rver "$dir" || { "$0" stop "$dir"; exit 1; }
    for attempt in 1 2 3; do
      mkdir -p "$dir"
      port="$(free_port)"
      if CEPH_RGW_MGR=0 CEPH_RGW_STORE_MB="${CEPH_RGW_STORE_MB:-8192}" "$starter" start "$dir/ceph" "$port" > "$dir.env.tmp" 2> "$dir.log"; then
        mv "$dir.env.tmp" "$dir/env"
        echo "s3_server: Ceph RGW on 127.0.0.1:$port (state in $dir)"
        exit 0
      fi
      echo "s3_server: Ceph attempt $attempt failed:" >&2
      tail -5 "$dir.log" >&2
      "$starter" stop "$dir/ceph" 2>/dev/null || true
      rm -rf "$dir/ceph"
    done
    "$0" stop "$dir"
    exit 1
    ;;
  stop)
    dir="${2:?usage: s3_server.sh stop DIR}"
    stop_s3rver "$dir"
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
