#!/usr/bin/env bash
# shellcheck disable=SC2317 # step functions are called indirectly via e2e_step
# The control socket under idle and slow clients: ten connections that send
# nothing and one that dribbles a byte a second never delay `lb-ctl status` or
# `lb-ctl -L -n` by more than 100 ms over their baseline; a 2 MiB request line
# is refused with "request too large"; the director closes the idle and slow
# clients once their request timeout (5 s) has passed; SIGHUP and SIGTERM are
# handled at once.
#
# Usage: tests/e2e/control_idle_clients.sh   (as root; env: see tests/e2e/lib.sh;
#   the lab prefix defaults to LAB=idle)
# Ends with "control_idle_clients: N passed, M failed".

LAB="${LAB:-idle}"
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CONFIG="$(e2e_abs "${CONTROL_CONFIG:-config/examples/lab-fullnat.yaml}")"
WORK="$LAB_STATE/control_idle_clients"
RUNS=10
SLACK_MS=100
IDLE_CLIENTS=10
# The director's request timeout, and how much later than it a close still counts.
REQUEST_TIMEOUT_S=5
CLOSE_GRACE_S=2

# ---------------------------------------------------------------- helpers

# elapsed_ms CMD...: run CMD (output discarded), print its wall time in ms;
# fails when CMD fails.
elapsed_ms() {
	local start end rc=0
	start=$(date +%s%N)
	"$@" >/dev/null 2>&1 || rc=$?
	end=$(date +%s%N)
	echo $(((end - start) / 1000000))
	return "$rc"
}

# slowest_ms CMD...: run CMD $RUNS times, print the slowest wall time in ms;
# fails as soon as one run fails.
slowest_ms() {
	local i ms max=0
	for ((i = 0; i < RUNS; i++)); do
		ms="$(elapsed_ms "$@")" || {
			echo "  run $i of '$*' failed" >&2
			return 1
		}
		((ms > max)) && max=$ms
	done
	echo "$max"
}

# within_slack BASELINE CMD...: every one of $RUNS runs of CMD exits 0 and takes
# at most BASELINE + SLACK_MS.
within_slack() {
	local baseline="$1" i ms limit
	shift
	limit=$((baseline + SLACK_MS))
	for ((i = 0; i < RUNS; i++)); do
		ms="$(elapsed_ms "$@")" || {
			echo "  run $i of '$*' failed (after $ms ms)" >&2
			return 1
		}
		echo "  run $i: $ms ms (limit $limit ms)"
		if ((ms > limit)); then
			echo "  '$*' took $ms ms, over $limit ms" >&2
			return 1
		fi
	done
}

# ------------------------------------------------------------------ steps

setup_lab() {
	lab_up || return 1
	mkdir -p "$WORK"
}

start_director() {
	echo "  config $CONFIG"
	e2e_start_director "$CONFIG"
}

BASE_STATUS=0
BASE_LIST=0
measure_baseline() {
	BASE_STATUS="$(slowest_ms e2e_ctl status)" || return 1
	BASE_LIST="$(slowest_ms e2e_ctl -L -n)" || return 1
	echo "  slowest of $RUNS: status $BASE_STATUS ms, -L -n $BASE_LIST ms"
}

# control_wakeups: voluntary context switches of the director's main (control)
# thread so far.
control_wakeups() {
	awk '$1 == "voluntary_ctxt_switches:" { print $2 }' \
		"/proc/$E2E_DIRECTOR_PID/task/$E2E_DIRECTOR_PID/status"
}

# An idle control thread sleeps in epoll: it wakes for the 2 s statistics sample,
# not every few milliseconds.
control_thread_sleeps() {
	local before after
	before="$(control_wakeups)" || return 1
	sleep 4
	after="$(control_wakeups)" || return 1
	echo "  $((after - before)) wake-ups in 4 s"
	((after - before <= 20))
}

HOLDER_PID=""
# open_idle_clients: a background process connects IDLE_CLIENTS clients that send
# nothing and one that sends a byte a second, then records for each when the
# director closed it (seconds after connecting) in $WORK/closed.
open_idle_clients() {
	rm -f "$WORK/closed" "$WORK/connected"
	python3 - "$LB_SOCKET" "$IDLE_CLIENTS" "$WORK" <<'PY' &
import os, select, socket, sys, time
path, idle, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]
clients = []
for i in range(idle + 1):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.setblocking(False)
    clients.append({"sock": s, "name": "idle%d" % i if i < idle else "slow", "at": time.monotonic()})
open(os.path.join(work, "connected"), "w").write("%d\n" % len(clients))
slow = clients[-1]
deadline = time.monotonic() + 15
next_byte = time.monotonic()
closed = []
while len(closed) < len(clients) and time.monotonic() < deadline:
    now = time.monotonic()
    if "closed" not in slow and now >= next_byte:
        try:
            slow["sock"].send(b"{")
        except OSError:
            pass
        next_byte = now + 1
    open_socks = [c["sock"] for c in clients if "closed" not in c]
    readable, _, _ = select.select(open_socks, [], [], 0.1)
    for c in clients:
        if c["sock"] in readable and "closed" not in c:
            try:
                data = c["sock"].recv(65536)
            except OSError:
                data = b""
            # The director answers a timed-out client with an error, then closes.
            while data:
                try:
                    more = c["sock"].recv(65536)
                except BlockingIOError:
                    select.select([c["sock"]], [], [], 1)
                    continue
                except OSError:
                    more = b""
                if not more:
                    break
                data += more
            c["closed"] = time.monotonic() - c["at"]
            closed.append(c)
with open(os.path.join(work, "closed"), "w") as f:
    for c in clients:
        f.write("%s %s\n" % (c["name"], "%.2f" % c["closed"] if "closed" in c else "open"))
PY
	HOLDER_PID=$!
	local i
	for ((i = 0; i < 50; i++)); do
		[[ -s "$WORK/connected" ]] && break
		sleep 0.1
	done
	[[ "$(cat "$WORK/connected" 2>/dev/null)" == "$((IDLE_CLIENTS + 1))" ]] || {
		echo "  the clients did not connect" >&2
		return 1
	}
	echo "  $IDLE_CLIENTS idle clients and one slow client connected"
}

status_not_delayed() {
	within_slack "$BASE_STATUS" e2e_ctl status
}

list_not_delayed() {
	within_slack "$BASE_LIST" e2e_ctl -L -n
}

oversized_request_refused() {
	local answer
	answer="$(python3 - "$LB_SOCKET" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
try:
    s.sendall(b"x" * (2 << 20) + b"\n")
except OSError:
    pass  # the director stops reading past the limit and closes
data = b""
while True:
    try:
        chunk = s.recv(65536)
    except ConnectionResetError:
        break  # after the answer: the director closed with our excess unread
    if not chunk:
        break
    data += chunk
print(data.decode())
PY
	)" || return 1
	echo "  answer: $answer"
	python3 -c '
import json, sys
r = json.loads(sys.argv[1])
sys.exit(0 if r.get("result") == "error" and r.get("message") == "request too large (limit 1048576 bytes)" else 1)
' "$answer"
}

idle_clients_closed_after_timeout() {
	wait "$HOLDER_PID" || return 1
	HOLDER_PID=""
	sed 's/^/  closed after (s): /' "$WORK/closed"
	awk -v lo="$REQUEST_TIMEOUT_S" -v hi="$((REQUEST_TIMEOUT_S + CLOSE_GRACE_S))" \
		'$2 == "open" || $2 < lo - 0.2 || $2 > hi { bad++ } END { exit (NR == 0 || bad > 0) }' \
		"$WORK/closed"
}

# log_count PATTERN: how many lines of the director log match PATTERN.
log_count() {
	grep -c -- "$1" "$E2E_DIRECTOR_LOG" || true
}

# within_ms LIMIT_MS CMD...: CMD succeeds within LIMIT_MS, retried every 10 ms;
# prints how long it took.
within_ms() {
	local limit="$1" start now
	shift
	start=$(date +%s%N)
	while true; do
		now=$(date +%s%N)
		if "$@"; then
			echo "  after $(((now - start) / 1000000)) ms"
			return 0
		fi
		if (((now - start) / 1000000 > limit)); then
			echo "  not within $limit ms" >&2
			return 1
		fi
		sleep 0.01
	done
}

reloads_before=0
reloaded() {
	(($(log_count "SIGHUP: configuration generation") > reloads_before))
}

sighup_reloads_promptly() {
	reloads_before=$(log_count "SIGHUP: configuration generation")
	kill -HUP "$E2E_DIRECTOR_PID" || return 1
	within_ms 100 reloaded
}

still_answers() {
	e2e_ctl -L -n >/dev/null
}

director_gone() {
	! kill -0 "$DIRECTOR_PID" 2>/dev/null
}

sigterm_stops_promptly() {
	DIRECTOR_PID="$E2E_DIRECTOR_PID"
	kill -TERM "$DIRECTOR_PID" || return 1
	within_ms 1000 director_gone || return 1
	e2e_stop_director
	grep -q "lb-director: stopped" "$E2E_DIRECTOR_LOG"
}

# ----------------------------------------------------------------- main

echo "control_idle_clients: lab '$LAB', director $LB_DIRECTOR, socket $LB_SOCKET"
e2e_require "lab up" setup_lab
e2e_require "director starts with $(basename "$CONFIG")" start_director
e2e_require "baseline: $RUNS runs each of lb-ctl status and -L -n" measure_baseline
e2e_check "the idle control thread wakes at most 20 times in 4 s" control_thread_sleeps
e2e_require "$IDLE_CLIENTS idle clients and a slow one connect" open_idle_clients
e2e_check "lb-ctl status: $RUNS runs within ${SLACK_MS} ms of the baseline" status_not_delayed
e2e_check "lb-ctl -L -n: $RUNS runs within ${SLACK_MS} ms of the baseline" list_not_delayed
e2e_check "SIGHUP with the clients connected: reload within 100 ms" sighup_reloads_promptly
e2e_check "a 2 MiB request line gets 'request too large'" oversized_request_refused
e2e_check "idle and slow clients closed ${REQUEST_TIMEOUT_S}-$((REQUEST_TIMEOUT_S + CLOSE_GRACE_S)) s after connecting" \
	idle_clients_closed_after_timeout
e2e_check "the director still answers" still_answers
e2e_check "SIGTERM stops the director within 1 s" sigterm_stops_promptly
e2e_finish
