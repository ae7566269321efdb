#!/usr/bin/env bash
# Load benchmark of latchkey's hot endpoints beside the ceilings of this machine.
#
#   bench/run.sh                       # full run: 2 s warm-up + 10 s per scenario, 32 connections
#   DURATION=3 WARMUP=1 bench/run.sh   # a quick run
#
# Env: DURATION (s, default 10), WARMUP (s, default 2), CONNS (default 32), THREADS (wrk
# threads, default 2), WORKERS (latchkey --workers; default: latchkey's own default),
# POOL_SECONDS (s spent minting the refresh-token pool, default 20), KEEP=1 (keep the temp dir).
# Prints one Markdown table and writes it to bench/results/<date>-<shorthash>.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CONNS=${CONNS:-32}
THREADS=${THREADS:-2}
WORKERS=${WORKERS:-}
POOL_SECONDS=${POOL_SECONDS:-20}
CLK_TCK=$(getconf CLK_TCK)
PASSWORD='bench-password-correct-horse'

log() { printf '>> %s\n' "$*" >&2; }

# --- wrk -----------------------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
  log "installing wrk"
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get install -y wrk >/dev/null 2>&1 || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y wrk >/dev/null; }
fi

# --- build -----------------------------------------------------------------------------------
log "cargo build --release (latchkey, the ceiling examples and sign_cost)"
cargo build --release --bin latchkey --example ceiling_json --example ceiling_es256 \
  --example sign_cost >&2
BIN=$ROOT/target/release/latchkey
EX=$ROOT/target/release/examples

TMP=$(mktemp -d "${TMPDIR:-/tmp}/latchkey-bench.XXXXXX")
DATA=$TMP/data
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "${KEEP:-0}" = 1 ]; then log "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Seconds.micros now, without a fork.
now() { echo "${EPOCHREALTIME/,/.}"; }

# Polls GET /healthz on 127.0.0.1:$1 until it answers 200 (bash /dev/tcp, no fork per try).
wait_healthz() {
  local port=$1 line deadline=$((EPOCHSECONDS + 30))
  while ((EPOCHSECONDS < deadline)); do
    if { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null; then
      printf 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
      line=
      read -r line <&3 || true
      exec 3<&- 3>&-
      [[ $line == *" 200"* ]] && return 0
    fi
  done
  return 1
}

# Starts latchkey serve on a free port; sets LK_PID, PORT, BASE, STARTUP_MS.
start_latchkey() {
  PORT=$(free_port)
  BASE=http://127.0.0.1:$PORT
  local args=(--data-dir "$DATA" serve --listen "127.0.0.1:$PORT" --log-level warn)
  [ -n "$WORKERS" ] && args+=(--workers "$WORKERS")
  local t0; t0=$(now)
  "$BIN" "${args[@]}" >>"$TMP/latchkey.log" 2>&1 &
  LK_PID=$!
  PIDS+=("$LK_PID")
  wait_healthz "$PORT" || { cat "$TMP/latchkey.log" >&2; log "latchkey did not answer /healthz"; exit 1; }
  local t1; t1=$(now)
  STARTUP_MS=$(python3 -c "print(f'{($t1 - $t0) * 1000:.1f}')")
}

stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# Starts a ceiling example; sets C_PID and C_URL.
start_ceiling() {
  local port; port=$(free_port)
  "$EX/$1" --listen "127.0.0.1:$port" --workers "${WORKERS:-$(( $(nproc) * 2 ))}" >"$TMP/$1.log" 2>&1 &
  C_PID=$!
  PIDS+=("$C_PID")
  C_URL=http://127.0.0.1:$port/
  for _ in $(seq 200); do grep -q "listening on" "$TMP/$1.log" && return 0; sleep 0.02; done
  log "$1 did not start"; exit 1
}

status_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
# utime + stime of a process, in clock ticks.
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat"; }

# Polls VmRSS of $1 every 50 ms into file $2 (the maximum seen).
rss_poll() {
  local pid=$1 out=$2 max=0 k v _
  while [ -e "/proc/$pid" ]; do
    while read -r k v _; do
      if [ "$k" = VmRSS: ]; then ((v > max)) && max=$v; break; fi
    done <"/proc/$pid/status"
    echo "$max" >"$out"
    sleep 0.05
  done
}

# measure KEY LABEL CEILING UNIT PID URL [wrk args…]: warm-up, then the measured run.
# NOWARMUP=1 skips the warm-up (for scenarios that spend a finite pool).
measure() {
  local key=$1 label=$2 ceil=$3 unit=$4 pid=$5 url=$6
  shift 6
  log "$label"
  if [ "${NOWARMUP:-0}" != 1 ] && [ "$WARMUP" != 0 ]; then
    wrk -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" --timeout 10s "$@" "$url" >"$TMP/warm.$key" 2>&1 || true
  fi
  # Reset the peak-RSS mark (VmHWM) so it covers only this run; also poll VmRSS.
  echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true
  echo 0 >"$TMP/rss.$key"
  rss_poll "$pid" "$TMP/rss.$key" &
  local poller=$!
  local c0; c0=$(cpu_ticks "$pid")
  wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --timeout 10s --latency "$@" "$url" >"$TMP/wrk.$key" 2>&1 || true
  local c1; c1=$(cpu_ticks "$pid")
  kill "$poller" 2>/dev/null || true
  wait "$poller" 2>/dev/null || true
  local polled hwm; polled=$(cat "$TMP/rss.$key"); hwm=$(status_kb "$pid" VmHWM)
  log "  peak RSS: polled VmRSS ${polled} kB, VmHWM ${hwm} kB"
  ((hwm > polled)) && polled=$hwm
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$key" "$label" "$ceil" "$unit" $((c1 - c0)) "$polled" >>"$TMP/rows"
  if ! grep -q "Requests/sec" "$TMP/wrk.$key"; then log "wrk failed for $key:"; cat "$TMP/wrk.$key" >&2; fi
}

FWD=(-H "X-Forwarded-Host: bench.test" -H "X-Forwarded-Uri: /" -H "X-Forwarded-Proto: http" -H "X-Forwarded-Method: GET")

# --- ceilings ----------------------------------------------------------------------------------
: >"$TMP/rows"
start_ceiling ceiling_json
measure ceil_json "ceiling: fixed JSON" ceil_json req/s "$C_PID" "$C_URL"
stop_pid "$C_PID"
start_ceiling ceiling_es256
measure ceil_es256 "ceiling: ES256 sign" ceil_es256 req/s "$C_PID" "$C_URL"
stop_pid "$C_PID"

# --- latchkey: first start (creates the database and both signing keys) ------------------------
mkdir -p "$DATA"
start_latchkey
FIRST_START_MS=$STARTUP_MS
stop_pid "$LK_PID"

# --- provisioning with the CLI (server stopped) --------------------------------------------------
log "provisioning"
lk() { "$BIN" --data-dir "$DATA" "$@"; }
jget() { python3 -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }
CC_JSON=$(lk client add bench-cc --grant client_credentials --scope bench:read --json)
CC_ID=$(jget client_id <<<"$CC_JSON")
CC_SECRET=$(jget client_secret <<<"$CC_JSON")
CC_BASIC=$(printf '%s:%s' "$CC_ID" "$CC_SECRET" | base64 -w0)
REDIRECT=http://127.0.0.1:9/callback
WEB_JSON=$(lk client add bench-web --grant authorization_code --grant refresh_token \
  --redirect-uri "$REDIRECT" --skip-consent --no-require-pkce --json)
WEB_ID=$(jget client_id <<<"$WEB_JSON")
WEB_SECRET=$(jget client_secret <<<"$WEB_JSON")
# The same client, but its ID tokens are ES256 (`--id-token-alg`): scenario 7b.
WEB_ES_JSON=$(lk client add bench-web-es256 --grant authorization_code --grant refresh_token \
  --redirect-uri "$REDIRECT" --skip-consent --no-require-pkce --id-token-alg ES256 --json)
WEB_ES_ID=$(jget client_id <<<"$WEB_ES_JSON")
WEB_ES_SECRET=$(jget client_secret <<<"$WEB_ES_JSON")
printf '%s\n' "$PASSWORD" | lk user add alice --group admins --password-stdin >/dev/null
API_JSON=$(lk apikey create bench-key --scope bench:read --json)
API_KEY=$(python3 -c "import json,sys; d=json.load(sys.stdin); print(d.get('key') or d.get('api_key') or d.get('secret'))" <<<"$API_JSON")
lk rule add --host bench.test --allow-group admins --scope bench:read >/dev/null

# --- latchkey: a normal start, measured ----------------------------------------------------------
start_latchkey
sleep 1
IDLE_RSS_KB=$(status_kb "$LK_PID" VmRSS)
log "latchkey pid $LK_PID on $BASE: first /healthz after ${STARTUP_MS} ms, idle RSS ${IDLE_RSS_KB} kB"

eval "$(python3 "$ROOT/bench/provision.py" "$BASE" alice "$PASSWORD" "$WEB_ID" "$WEB_SECRET" "$REDIRECT" http://bench.test/)"
AT=$(curl -fsS -u "$CC_ID:$CC_SECRET" -d grant_type=client_credentials "$BASE/token" | jget access_token)
# Sanity checks, so a broken setup fails here rather than as a table of errors.
check() { local code; code=$(curl -s -o /dev/null -w '%{http_code}' "$@"); [ "$code" = 200 ] || { log "setup check failed ($code): $*"; exit 1; }; }
check -u "$CC_ID:$CC_SECRET" -d "token=$AT" "$BASE/introspect"
check -H "X-API-Key: $API_KEY" "$BASE/v1/apikeys/verify"
check "${FWD[@]}" -H "X-API-Key: $API_KEY" "$BASE/api/forward-auth"
check "${FWD[@]}" -H "Cookie: latchkey-fa=$FA_COOKIE" "$BASE/api/forward-auth"

# Scenario 7b's requests: the signed-in user's authorize URL with the ES256 client's id, and its
# credentials; one flow here must yield an ES256 ID token.
FLOW_AUTHORIZE_ES=${FLOW_AUTHORIZE//client_id=$WEB_ID/client_id=$WEB_ES_ID}
FLOW_BASIC_ES="Basic $(printf '%s:%s' "$WEB_ES_ID" "$WEB_ES_SECRET" | base64 -w0)"
python3 - "$BASE" "$FLOW_AUTHORIZE_ES" "$SESSION_COOKIE" "$FLOW_BASIC_ES" "$REDIRECT" <<'PY' || { log "setup check failed: the ES256 client's flow"; exit 1; }
import base64, http.client, json, re, sys, urllib.parse
base, authorize, cookie, basic, redirect = sys.argv[1:]
c = http.client.HTTPConnection(urllib.parse.urlsplit(base).netloc)
c.request("GET", authorize, headers={"Cookie": "latchkey-session=" + cookie})
r = c.getresponse(); r.read()
code = re.search(r"[?&]code=([^&]+)", r.getheader("Location") or "")
assert r.status == 303 and code, (r.status, r.getheader("Location"))
body = urllib.parse.urlencode({"grant_type": "authorization_code", "redirect_uri": redirect,
                               "code": urllib.parse.unquote(code.group(1))})
c.request("POST", "/token", body, {"Authorization": basic,
                                   "Content-Type": "application/x-www-form-urlencoded"})
r = c.getresponse(); tok = json.loads(r.read())
head = tok["id_token"].split(".")[0]
alg = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))["alg"]
assert r.status == 200 and alg == "ES256", (r.status, alg)
PY

export WRK_BODY SESSION_COOKIE FLOW_AUTHORIZE FLOW_BASIC FLOW_REDIRECT_ENC POOL_OUT POOL_IN
S=$ROOT/bench

WRK_BODY="grant_type=client_credentials"
measure token_cc "1 POST /token client_credentials" ceil_es256 req/s "$LK_PID" "$BASE/token" \
  -s "$S/post.lua" -H "Authorization: Basic $CC_BASIC"
WRK_BODY="token=$AT"
measure introspect "2 POST /introspect" ceil_json req/s "$LK_PID" "$BASE/introspect" \
  -s "$S/post.lua" -H "Authorization: Basic $CC_BASIC"
measure apikey "3a GET /v1/apikeys/verify" ceil_json req/s "$LK_PID" "$BASE/v1/apikeys/verify" \
  -H "X-API-Key: $API_KEY"
measure fa_key "3b forward auth, API key" ceil_json req/s "$LK_PID" "$BASE/api/forward-auth" \
  "${FWD[@]}" -H "X-API-Key: $API_KEY"
measure fa_cookie "4 forward auth, session cookie" ceil_json req/s "$LK_PID" "$BASE/api/forward-auth" \
  "${FWD[@]}" -H "Cookie: latchkey-fa=$FA_COOKIE"
measure jwks "5a GET /jwks.json" ceil_json req/s "$LK_PID" "$BASE/jwks.json"
measure discovery "5b GET openid-configuration" ceil_json req/s "$LK_PID" "$BASE/.well-known/openid-configuration"

# The refresh-token pool: authorization-code flows without `openid` (no ID token to sign) for
# POOL_SECONDS, each leaving one refresh token in $TMP/pool.<wrk thread>.
log "minting the refresh-token pool (${POOL_SECONDS} s)"
POOL_OUT=$TMP/pool
FLOW_AUTHORIZE_OIDC=$FLOW_AUTHORIZE
FLOW_AUTHORIZE=${FLOW_AUTHORIZE//scope=openid+profile/scope=profile}
wrk -t"$THREADS" -c"$CONNS" -d"${POOL_SECONDS}s" -s "$S/flow.lua" "$BASE/authorize" >"$TMP/wrk.pool" 2>&1 || true
POOL_OUT=
FLOW_AUTHORIZE=$FLOW_AUTHORIZE_OIDC
POOL_SIZE=$(cat "$TMP"/pool.* 2>/dev/null | wc -l)
log "refresh-token pool: $POOL_SIZE tokens"

measure flow "7 authorization-code flow (authorize+token)" "" flows/s "$LK_PID" "$BASE/authorize" \
  -s "$S/flow.lua"
# What the two signatures of a flow cost right now, with the server idle: the machine's speed
# moves between runs, and scenario 7 is bound by it (mostly by the RS256 signature).
log "examples/sign_cost"
SIGN_COST=$("$EX/sign_cost")
POOL_IN=$TMP/pool
NOWARMUP=1 measure refresh "6 POST /token refresh rotation" "" rotations/s "$LK_PID" "$BASE/token" \
  -s "$S/refresh.lua"
# 7b: the same flow for a client whose ID tokens are ES256 — what the flow costs without RSA.
FLOW_AUTHORIZE=$FLOW_AUTHORIZE_ES FLOW_BASIC=$FLOW_BASIC_ES \
  measure flow_es256 "7b authorization-code flow, ES256 ID token" "" flows/s "$LK_PID" \
  "$BASE/authorize" -s "$S/flow.lua"
WRK_BODY=$LOGIN_BODY
measure login "8 POST /login (argon2id)" "" logins/s "$LK_PID" "$BASE/login" \
  -s "$S/post.lua" -H "Cookie: latchkey-csrf=$CSRF_COOKIE"

# --- connection layer: bench/conns.sh against this server (its own Markdown section) ------------
"$ROOT/bench/conns.sh" "$BASE" "$LK_PID" >"$TMP/conns.md" || CONNS_FAILED=1

# --- report ------------------------------------------------------------------------------------
BIN_SIZE=$(stat -c %s "$BIN")
STAMP=$(date -u +%Y-%m-%d)
HASH=$(git rev-parse --short HEAD 2>/dev/null || echo nogit)
DIRTY=$(git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null | grep -q . && echo "+dirty" || true)
OUT=$ROOT/bench/results/$STAMP-$(date -u +%H%M%S)-$HASH.md
mkdir -p "$ROOT/bench/results"
{
  echo "## latchkey benchmark $STAMP $HASH$DIRTY"
  echo
  echo "$(nproc) cores, $(uname -sr); wrk -t$THREADS -c$CONNS, ${WARMUP} s warm-up + ${DURATION} s per scenario;" \
    "latchkey workers: ${WORKERS:-default}; refresh pool: $POOL_SIZE tokens."
  echo
  python3 "$S/report.py" "$TMP/rows" "$TMP" "$CLK_TCK"
  echo
  echo "- idle RSS after start: $((IDLE_RSS_KB / 1024)).$(((IDLE_RSS_KB % 1024) * 10 / 1024)) MB ($IDLE_RSS_KB kB)"
  echo "- process start to first 200 from /healthz: ${STARTUP_MS} ms (first start, creating the database and both signing keys: ${FIRST_START_MS} ms)"
  echo "- signatures (examples/sign_cost, right after scenario 7): $(sed -n 's/ sign: \([0-9.]*\) µs.*/ \1 µs/p' <<<"$SIGN_COST" | paste -sd, - | sed 's/,/, /g'); $(sed -n 's/^code flow bound by its two signatures alone on \([0-9]*\) cores: \([0-9]*\) flows\/s/their sum bounds scenario 7 at \2 flows\/s on \1 cores/p' <<<"$SIGN_COST")"
  echo "- release binary (stripped): $BIN_SIZE bytes ($((BIN_SIZE / 1048576)).$(((BIN_SIZE % 1048576) * 10 / 1048576)) MB)"
  echo "- rate = requests/s, except flows/s (one flow = GET /authorize + POST /token; latency is per request), rotations/s (valid refresh tokens spent, over the time the pool lasted: "run s" < the duration means the pool ran out and the run was cut short) and logins/s."
  echo "- non-2xx/3xx: wrk's count of 4xx/5xx (303 redirects count as success); for the flow, plus redirects without a code."
  echo "- CPU µs/req: server utime+stime over the measured run / rate unit (tick = $((1000000 / CLK_TCK)) µs)."
  echo; cat "$TMP/conns.md"  # bench/conns.sh
} | tee "$OUT"
log "written to ${OUT#"$ROOT"/}"
[ -z "${CONNS_FAILED:-}" ] || { log "bench/conns.sh failed: see its messages above"; exit 1; }  # bench/conns.sh
