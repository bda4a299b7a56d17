#!/usr/bin/env bash
# The whole test suite: unit, property and integration tests against this machine's
# PostgreSQL and RabbitMQ, and on SQLite and the in-process bus; then, one at a time
# because they are heavy and timed, the tests that stop and start a broker (each on a
# private RabbitMQ node it starts itself) and the small torture profile.
#
# What it needs is listed in the README ("Running the tests"); it installs what a
# package manager can (cargo-nextest, Chromium and chromedriver). At the end it checks
# that this machine's RabbitMQ and PostgreSQL were not restarted while it ran, that no
# test left queues on that RabbitMQ, and that the work tree is as it was, and fails if not: the tests must never restart services
# that others share, nor rewrite committed files.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

if ! command -v cargo-nextest >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi
if [ ! -x /usr/bin/chromium ] || ! command -v chromedriver >/dev/null 2>&1; then
  echo "==> installing Chromium and chromedriver (the dashboard's browser test)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
fi

# Modules that import each other in a circle fail the run before anything builds.
python3 scripts/import_circles.py src sim/src

pg_url=${TANDEM_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}

# Changes when the VM restarts (a new OS process) and when only the broker application
# is stopped and started (`rabbitmqctl stop_app`/`start_app` gives it a new supervisor).
# The VM's start time is shown for people, not compared: it is derived from the clock.
rabbitmq_fingerprint() {
  rabbitmqctl -q eval 'lists:flatten(io_lib:format("OS pid ~s, broker supervisor ~w",
    [os:getpid(), whereis(rabbit_sup)])).' 2>/dev/null | tr -d '"' || echo unreachable
}

rabbitmq_started() {
  rabbitmqctl -q eval 'W = erlang:convert_time_unit(
      erlang:system_info(start_time) + erlang:time_offset(), native, second),
    calendar:system_time_to_rfc3339(W, [{offset, "Z"}]).' 2>/dev/null | tr -d '"' || true
}

postgres_fingerprint() {
  psql "$pg_url" -XAtc 'select pg_postmaster_start_time()' 2>/dev/null || echo unreachable
}

# The broker's queues: every test deletes the queues it declared.
queues() { rabbitmqctl -q list_queues --no-table-headers name 2>/dev/null | sort || true; }

# The work tree too: the tests write under target/ only.
work_tree() { git status --porcelain 2>/dev/null || true; }

work_tree_before=$(work_tree)
queues_before=$(queues)
rabbitmq_before=$(rabbitmq_fingerprint)
postgres_before=$(postgres_fingerprint)
echo "==> this machine's RabbitMQ: $rabbitmq_before, VM started $(rabbitmq_started)"
echo "==> this machine's PostgreSQL: started $postgres_before"

status=0
cargo nextest run --workspace --locked --no-fail-fast \
  -E 'not (test(/^broker_restart::/) or test(/^torture_small::/))' || status=$?
cargo nextest run --locked --test it --no-fail-fast -j 1 \
  -E 'test(/^broker_restart::/) or test(/^torture_small::/)' || status=$?

rabbitmq_after=$(rabbitmq_fingerprint)
postgres_after=$(postgres_fingerprint)
echo "==> this machine's RabbitMQ: $rabbitmq_after, VM started $(rabbitmq_started)"
echo "==> this machine's PostgreSQL: started $postgres_after"
if [ "$rabbitmq_before" = unreachable ]; then
  echo "==> not checked: rabbitmqctl cannot reach this machine's RabbitMQ" >&2
elif [ "$rabbitmq_before" != "$rabbitmq_after" ]; then
  echo "!!! this machine's RabbitMQ was restarted while the tests ran (by a test, or by" >&2
  echo "!!! something else on the machine: see its log)" >&2
  status=1
fi
if [ "$postgres_before" = unreachable ]; then
  echo "==> not checked: psql cannot reach $pg_url" >&2
elif [ "$postgres_before" != "$postgres_after" ]; then
  echo "!!! this machine's PostgreSQL was restarted while the tests ran (by a test, or by" >&2
  echo "!!! something else on the machine: see its log)" >&2
  status=1
fi
left_queues=$(comm -13 <(printf '%s\n' "$queues_before") <(queues) | grep -v '^$' || true)
if [ -n "$left_queues" ]; then
  echo "!!! the tests left $(printf '%s\n' "$left_queues" | wc -l) queue(s) on this machine's RabbitMQ:" >&2
  printf '%s\n' "$left_queues" | head -20 >&2
  status=1
fi
if [ "$(work_tree)" != "$work_tree_before" ]; then
  echo "!!! the tests changed the work tree (they should write under target/ only):" >&2
  work_tree >&2
  status=1
fi
exit "$status"
