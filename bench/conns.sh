#!/usr/bin/env bash
# The connection layer under many connections, against a running `latchkey serve`:
# 1000 idle keep-alive connections, a burst of 256, 64 slow clients beside wrk, and an overload
# of 512 wrk connections; each with threads and RSS of the server at its peak and after it.
#
#   bench/conns.sh BASE_URL PID       # e.g. bench/conns.sh http://127.0.0.1:8080 12345
#
# Prints a Markdown section on stdout (progress on stderr). Exits non-zero, with a message,
# when the server is not up before or after the scenarios. The server's http.* settings are
# read with its own binary (/proc/PID/exe) from its data directory; MAX_CONNECTIONS,
# HEADER_TIMEOUT and IDLE_TIMEOUT override them. IDLE_CONNS, HOLD, BURST_CONNS and SLOW_CONNS
# change the sizes (see bench/conns.py); ONLY=idle,burst,slow,overload picks scenarios. Takes
# about a minute.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)

die() { printf '>> conns: FAILED: %s\n' "$*" >&2; exit 1; }
log() { printf '>> conns: %s\n' "$*" >&2; }

[ $# = 2 ] || die "usage: $0 BASE_URL PID"
BASE=${1%/}
PID=$2
[[ $PID =~ ^[0-9]+$ ]] || die "PID must be a number, got '$PID'"
[ -e "/proc/$PID/status" ] || die "no process $PID"
command -v wrk >/dev/null || die "wrk is not on PATH (apt-get install wrk)"

# 1000 client sockets in one process, plus wrk's 512: the client must not be the bottleneck.
ulimit -n 4096 2>/dev/null || die "cannot raise the open-file limit to 4096 (hard limit $(ulimit -Hn))"

# One GET /healthz on a new connection (bash /dev/tcp); prints the status line.
healthz() {
  local hostport=${BASE#http://} line=''
  hostport=${hostport%%/*}
  { exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}"; } 2>/dev/null || { echo "no connection"; return 1; }
  printf 'GET /healthz HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$hostport" >&3
  read -r -t 5 line <&3 || true
  exec 3<&- 3>&-
  echo "${line%$'\r'}"
  [[ $line == *" 200"* ]]
}

[[ $BASE == http://* ]] || die "BASE_URL must be http://HOST:PORT (plain HTTP), got '$BASE'"
status=$(healthz) || die "the server at $BASE does not answer GET /healthz with 200 before the run ($status)"

# The server's http.* settings: its own binary on its own data directory (from its command line,
# else LATCHKEY_DATA_DIR from its environment, else the binary's default).
setting() {
  local exe=/proc/$PID/exe data='' prev='' arg
  while IFS= read -r -d '' arg; do
    case $prev in --data-dir) data=$arg ;; esac
    case $arg in --data-dir=*) data=${arg#--data-dir=} ;; esac
    prev=$arg
  done <"/proc/$PID/cmdline"
  if [ -z "$data" ] && [ -r "/proc/$PID/environ" ]; then
    data=$(tr '\0' '\n' <"/proc/$PID/environ" | sed -n 's/^LATCHKEY_DATA_DIR=//p')
  fi
  "$exe" ${data:+--data-dir "$data"} settings get "$1" 2>/dev/null | grep -Eo '[0-9]+' | head -n1
}
MAX_CONNECTIONS=${MAX_CONNECTIONS:-$(setting http.max_connections || true)}
HEADER_TIMEOUT=${HEADER_TIMEOUT:-$(setting http.header_timeout || true)}
IDLE_TIMEOUT=${IDLE_TIMEOUT:-$(setting http.idle_timeout || true)}
if [ -z "$MAX_CONNECTIONS" ] || [ -z "$HEADER_TIMEOUT" ] || [ -z "$IDLE_TIMEOUT" ]; then
  log "could not read the server's http.* settings; assuming the defaults for those missing"
fi
MAX_CONNECTIONS=${MAX_CONNECTIONS:-1024}
HEADER_TIMEOUT=${HEADER_TIMEOUT:-10}
IDLE_TIMEOUT=${IDLE_TIMEOUT:-60}
log "pid $PID at $BASE: http.max_connections $MAX_CONNECTIONS, http.header_timeout ${HEADER_TIMEOUT} s, http.idle_timeout ${IDLE_TIMEOUT} s"

rc=0
python3 "$HERE/conns.py" "$BASE" "$PID" --max-connections "$MAX_CONNECTIONS" \
  --header-timeout "$HEADER_TIMEOUT" --idle-timeout "$IDLE_TIMEOUT" \
  --only "${ONLY:-idle,burst,slow,overload}" || rc=$?

# The verdict that matters most: is the server still up?
[ -e "/proc/$PID/status" ] || die "the server process $PID is gone after the run"
status=$(healthz) || die "the server at $BASE does not answer GET /healthz with 200 after the run ($status)"
[ "$rc" = 0 ] || die "conns.py failed (exit $rc)"
log "server still up: $status"
