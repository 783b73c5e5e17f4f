#!/usr/bin/env bash
# Run the appliance as `make demo` does: migrate, seed, then web (gunicorn) and the scheduler,
# the same commands the systemd units run. Ctrl-C (or SIGTERM) stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
export APPLIANCE_DATA_DIR="${APPLIANCE_DATA_DIR:-$PWD/var}"
bind="${APPLIANCE_BIND:-127.0.0.1:8080}"
# Lumen Goods' order system: `demo seed` points the brand's tools at this address.
retail_port="${APPLIANCE_DEMO_RETAIL_PORT:-8090}"
export APPLIANCE_DEMO_RETAIL_URL="http://127.0.0.1:$retail_port"
# Rho-Bank's systems, likewise.
bank_port="${APPLIANCE_DEMO_BANK_PORT:-8091}"
export APPLIANCE_DEMO_BANK_URL="http://127.0.0.1:$bank_port"
appliance=.venv/bin/appliance

$appliance db migrate
credentials=$($appliance demo seed)

pids=()
stop() {
  trap - INT TERM EXIT
  if [ ${#pids[@]} -gt 0 ]; then
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
}
trap stop INT TERM EXIT

$appliance serve --bind "$bind" &
pids+=($!)
$appliance scheduler &
pids+=($!)
# Lumen Goods' order system, which its agent's workflow tools call (a separate service, as a
# brand's own systems would be). Its data file persists; POST /reset restores the seed.
$appliance demo-backend retail --port "$retail_port" --db "$APPLIANCE_DATA_DIR/demo-retail.db" &
pids+=($!)
$appliance demo-backend bank --port "$bank_port" --db "$APPLIANCE_DATA_DIR/demo-bank.db" &
pids+=($!)

# Wait until the web app is ready (its workers have warmed up: models, indexes and classifiers
# loaded) and the brands' systems answer.
.venv/bin/python - "http://$bind/readyz" "$APPLIANCE_DEMO_RETAIL_URL/health" \
  "$APPLIANCE_DEMO_BANK_URL/health" <<'PY'
import sys, time, urllib.request
for url in sys.argv[1:]:
    for _ in range(1200):
        try:
            urllib.request.urlopen(url, timeout=5)
            break
        except OSError:
            time.sleep(0.25)
PY

cat <<TXT

Switchboard is running (data in $APPLIANCE_DATA_DIR).
  Chat:   http://$bind/chat/lumen-goods   http://$bind/chat/rho-bank
  Admin:  http://$bind/admin/
  API:    http://$bind/v1/openapi.json
  Lumen Goods' order system: $APPLIANCE_DEMO_RETAIL_URL (appliance eval run --brand lumen-goods)
  Rho-Bank's systems:        $APPLIANCE_DEMO_BANK_URL (one-time codes: GET /demo/otp/USER_ID)
$credentials

Press Ctrl-C to stop.
TXT
# Exit (and stop the others) as soon as any process ends.
wait -n "${pids[@]}"
