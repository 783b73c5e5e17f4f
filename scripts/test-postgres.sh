#!/usr/bin/env bash
# Start (or stop) the PostgreSQL that the test suite's database matrix runs on.
#   scripts/test-postgres.sh start   -> prints the URL to use as APPLIANCE_TEST_POSTGRES_URL
#   scripts/test-postgres.sh stop    -> stops the cluster if this script started it
# Needs Debian's postgresql package and root (CI and the dev machines run as root).
set -euo pipefail
version=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1)
marker=/tmp/appliance-test-postgres.started
url="postgresql://appliance_ci:appliance_ci@127.0.0.1:5432/appliance_test"

start() {
  if [ -z "$version" ]; then echo "postgresql is not installed"; exit 1; fi
  if ! pg_lsclusters -h | grep -q "^$version main .* online"; then
    # The server outlives this script: it must hold none of our descriptors, or a caller
    # reading our stdout through $(...) waits for it forever.
    pg_ctlcluster "$version" main start </dev/null
    touch "$marker"
  fi
  for _ in $(seq 1 30); do
    su postgres -c "pg_isready -q -h 127.0.0.1 -p 5432" && break
    sleep 0.5
  done
  su postgres -c "psql -qtAc \"select 1 from pg_roles where rolname='appliance_ci'\"" | grep -q 1 \
    || su postgres -c "psql -qc \"create role appliance_ci login superuser password 'appliance_ci'\""
  su postgres -c "psql -qtAc \"select 1 from pg_database where datname='appliance_test'\"" | grep -q 1 \
    || su postgres -c "createdb -O appliance_ci appliance_test"
}

case "${1:-}" in
start)
  # Only the URL goes to stdout (callers capture it); the tools' chatter ("Removed stale pid
  # file." after an unclean shutdown) goes to stderr.
  start >&2
  echo "$url"
  ;;
stop)
  if [ -f "$marker" ] && [ -n "$version" ]; then
    pg_ctlcluster "$version" main stop || true
    rm -f "$marker"
  fi
  ;;
*)
  echo "usage: $0 start|stop" >&2
  exit 2
  ;;
esac
