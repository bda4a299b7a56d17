#!/usr/bin/env bash
# The whole test suite: unit, property and integration tests against the real
# PostgreSQL and RabbitMQ on this machine, on SQLite and the in-process bus, then the
# tests that restart RabbitMQ on their own (the broker-restart tests and the small torture
# profile), which would disturb other tests.
#
# Needs PostgreSQL on 127.0.0.1:5432 (TANDEM_TEST_PG_URL) and RabbitMQ on
# 127.0.0.1:5672 (TANDEM_TEST_AMQP_URL); tests that cannot reach them fail and say so.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo nextest run --workspace --locked --no-fail-fast -E 'not (test(/^broker_restart::/) or test(/^torture_small::/))'
cargo nextest run --locked --test it -E 'test(/^broker_restart::/) or test(/^torture_small::/)' -j 1
