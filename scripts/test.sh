#!/usr/bin/env bash
# Run the whole test suite as `make test` does: lint and types, then pytest on SQLite and on a
# real PostgreSQL, with the page tests in a real headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh

.venv/bin/ruff check appliance tests scripts
.venv/bin/mypy

export APPLIANCE_TEST_POSTGRES_URL
APPLIANCE_TEST_POSTGRES_URL=$(scripts/test-postgres.sh start)
trap 'scripts/test-postgres.sh stop' EXIT
# The slowest tests are listed at the end, so a CI log shows where the time goes.
# Two worker processes (pytest-xdist), each with its own PostgreSQL database; a module's tests
# stay on one worker so its servers start once. Pass -n 0 to run in one process.
.venv/bin/pytest -n 2 --dist loadscope --durations=15 "$@"
