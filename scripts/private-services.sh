#!/usr/bin/env bash
# A RabbitMQ node and a PostgreSQL cluster of your own, in a directory of your own, for
# `tandem torture --profile full`, which restarts both: the machine's own broker and
# database serve everyone else on it. Prints the settings and restart commands to use,
# e.g.
#
#   eval "$(scripts/private-services.sh start /tmp/trial)"
#   ./target/release/tandem torture --profile full \
#     --restart-rabbitmq "$TRIAL_RESTART_RABBITMQ" --restart-postgres "$TRIAL_RESTART_POSTGRES"
#   scripts/private-services.sh stop /tmp/trial
#
# Needs Debian's rabbitmq-server and postgresql packages (the scripts in
# /usr/lib/rabbitmq/bin and /usr/lib/postgresql/<version>/bin). PostgreSQL refuses to
# run as root, so as root its cluster runs as the `postgres` user.
set -euo pipefail

action=${1:?usage: private-services.sh start|stop DIR}
dir=${2:?usage: private-services.sh start|stop DIR}
rabbit_scripts=${TANDEM_RABBITMQ_SCRIPTS:-/usr/lib/rabbitmq/bin}
pg_bin=${TANDEM_POSTGRES_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}
amqp_port=${TRIAL_AMQP_PORT:-56720}
dist_port=${TRIAL_DIST_PORT:-$((amqp_port + 1))}
pg_port=${TRIAL_PG_PORT:-55432}
node="trial_$(echo "$dir" | tr -c 'a-zA-Z0-9\n' '_')@localhost"

as_postgres() {
  if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi
}

rabbit_env() {
  printf 'env -u RABBITMQ_NODENAME HOME=%q RABBITMQ_NODENAME=%q RABBITMQ_CONF_ENV_FILE=%q ERL_EPMD_ADDRESS=127.0.0.1' \
    "$dir/rabbitmq" "$node" "$dir/rabbitmq/rabbitmq-env.conf"
}

pg_ctl_command() {
  printf '%q -D %q -w -l %q -o %q' "$pg_bin/pg_ctl" "$dir/postgres" "$dir/postgres-log/postgres.log" \
    "-p $pg_port -k $dir/postgres -c listen_addresses=127.0.0.1 -c max_connections=300"
}

case "$action" in
  start)
    mkdir -p "$dir/rabbitmq" "$dir/postgres" "$dir/postgres-log"
    printf '[].\n' > "$dir/rabbitmq/enabled_plugins"
    : > "$dir/rabbitmq/rabbitmq-env.conf"
    printf 'loopback_users.guest = true\n' > "$dir/rabbitmq/rabbitmq.conf"
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$dir/rabbitmq/.erlang.cookie"
    chmod 400 "$dir/rabbitmq/.erlang.cookie"
    eval "$(rabbit_env)" \
      RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$amqp_port" \
      RABBITMQ_DIST_PORT="$dist_port" RABBITMQ_MNESIA_BASE="$dir/rabbitmq/mnesia" \
      RABBITMQ_LOG_BASE="$dir/rabbitmq/log" RABBITMQ_PID_FILE="$dir/rabbitmq/pid" \
      RABBITMQ_ENABLED_PLUGINS_FILE="$dir/rabbitmq/enabled_plugins" \
      RABBITMQ_CONFIG_FILE="$dir/rabbitmq/rabbitmq.conf" \
      nohup "$rabbit_scripts/rabbitmq-server" > "$dir/rabbitmq/server.log" 2>&1 &
    # The node registers with epmd a moment after it is launched; until then
    # await_startup finds no node at all and gives up at once.
    for _ in $(seq 60); do
      if eval "$(rabbit_env)" "$rabbit_scripts/rabbitmqctl" -q -n "$node" await_startup --timeout 120 >/dev/null 2>&1; then
        break
      fi
      sleep 2
    done
    eval "$(rabbit_env)" "$rabbit_scripts/rabbitmqctl" -q -n "$node" await_startup --timeout 120
    if [ "$(id -u)" = 0 ]; then chown -R postgres "$dir/postgres" "$dir/postgres-log"; fi
    as_postgres "$pg_bin/initdb -A trust -U postgres -D $dir/postgres" >/dev/null
    as_postgres "$(pg_ctl_command) start" >/dev/null
    ctl="$(rabbit_env) $rabbit_scripts/rabbitmqctl -q -n $node"
    if [ "$(id -u)" = 0 ]; then
      pg_restart="su postgres -s /bin/sh -c '$(pg_ctl_command) restart'"
    else
      pg_restart="$(pg_ctl_command) restart"
    fi
    echo "export TANDEM_AMQP_URL='amqp://guest:guest@127.0.0.1:$amqp_port/%2f'"
    echo "export TANDEM_DATABASE_URL='postgres://postgres@127.0.0.1:$pg_port/postgres'"
    printf 'export TRIAL_RESTART_RABBITMQ=%q\n' "$ctl stop_app && $ctl start_app"
    printf 'export TRIAL_RESTART_POSTGRES=%q\n' "$pg_restart"
    ;;
  stop)
    eval "$(rabbit_env)" "$rabbit_scripts/rabbitmqctl" -q -n "$node" stop >/dev/null 2>&1 || true
    as_postgres "$(pg_ctl_command) stop -m fast" >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
  *)
    echo "usage: private-services.sh start|stop DIR" >&2
    exit 2
    ;;
esac
