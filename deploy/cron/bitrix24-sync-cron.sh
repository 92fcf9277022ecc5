#!/bin/sh
# One scheduled incremental sync, for cron (or a systemd timer): runs from the project folder, so
# .dlt/config.toml and .dlt/secrets.toml there configure it; appends its output to a log; exits with the
# sync's own exit code (see `bitrix24-sync --help`), so cron's mail or your monitoring sees failures.
#
#   crontab -e
#   */30 * * * * /opt/bitrix24-sync/deploy/cron/bitrix24-sync-cron.sh
#   15 3 * * 0   /opt/bitrix24-sync/deploy/cron/bitrix24-sync-cron.sh --reconcile   # weekly: deletions
#
# Arguments are passed to `bitrix24-sync run`. Environment (all optional):
#   BITRIX24_SYNC_HOME  the project folder (default: two levels above this script)
#   BITRIX24_SYNC_BIN   the CLI (default: $BITRIX24_SYNC_HOME/.venv/bin/bitrix24-sync)
#   BITRIX24_SYNC_LOG   the log file (default: $BITRIX24_SYNC_HOME/logs/bitrix24-sync.log)
# A run that starts while the previous one is still going exits 6 at once and changes nothing.
set -u
home="${BITRIX24_SYNC_HOME:-$(cd "$(dirname "$0")/../.." && pwd)}"
bin="${BITRIX24_SYNC_BIN:-$home/.venv/bin/bitrix24-sync}"
log="${BITRIX24_SYNC_LOG:-$home/logs/bitrix24-sync.log}"
mkdir -p "$(dirname "$log")"
cd "$home" || exit 2
echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) bitrix24-sync run $*" >>"$log"
"$bin" run "$@" >>"$log" 2>&1
code=$?
echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) exit $code" >>"$log"
exit "$code"
