#!/usr/bin/env bash
# Common helpers for the end-to-end tests. Source it from a test script:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# It sources lab/lab.sh, sets `set -euo pipefail`, and installs an EXIT trap
# that always stops the director, prints its log tail on failure, tears the
# lab down (lab_down) and prints the summary line
# "<test>: N passed, M failed".
#
# Environment (relative paths are taken from the repository root):
#   LAB                    namespace prefix (default lb), see lab/lab.sh
#   LB_DIRECTOR            director binary (default target/release/lb-director)
#   LB_CTL                 control client  (default target/release/lb-ctl)
#   LB_SOCKET              control socket  (default lab/run/$LAB/lb.sock; passed to
#                          the director with --socket, overriding the config)
#   E2E_DIRECTOR_LOG       director log (default lab/run/$LAB/director.log)
#   E2E_DIRECTOR_TIMEOUT   seconds to wait for the control socket (default 30)
#   E2E_KEEP_LAB=1         leave the lab (and servers) up after the test
#
# The director is started from the repository root as
#   ip netns exec ${LAB}-dir $LB_DIRECTOR --config CONFIG
# with stdout+stderr in $E2E_DIRECTOR_LOG, and is ready when
#   $LB_CTL --socket $LB_SOCKET -L -n
# exits 0 (lb-ctl runs in the caller's namespace; the socket is a file).

set -euo pipefail

# shellcheck source=SCRIPTDIR/../../lab/lab.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../../lab" && pwd -P)/lab.sh"

REPO_ROOT="$LAB_REPO_ROOT"

# e2e_abs PATH: absolute path, relative ones taken from the repo root.
e2e_abs() {
	case "$1" in
	/*) printf '%s\n' "$1" ;;
	*) printf '%s/%s\n' "$REPO_ROOT" "$1" ;;
	esac
}

LB_DIRECTOR="$(e2e_abs "${LB_DIRECTOR:-target/release/lb-director}")"
LB_CTL="$(e2e_abs "${LB_CTL:-target/release/lb-ctl}")"
LB_SOCKET="$(e2e_abs "${LB_SOCKET:-lab/run/$LAB/lb.sock}")"
E2E_DIRECTOR_TIMEOUT="${E2E_DIRECTOR_TIMEOUT:-30}"
E2E_KEEP_LAB="${E2E_KEEP_LAB:-0}"
E2E_DIRECTOR_LOG="$(e2e_abs "${E2E_DIRECTOR_LOG:-lab/run/$LAB/director.log}")"
E2E_DIRECTOR_PID=""
_E2E_LOG_FRESH=0
E2E_NAME="${E2E_NAME:-$(basename "$0" .sh)}"
E2E_PASSED=0
E2E_FAILED=0
E2E_STEP=0
_E2E_SUMMARY_DONE=0

export LAB LB_DIRECTOR LB_CTL LB_SOCKET

# The test's own stdout/stderr, so the EXIT trap reports there even when it
# fires inside a redirected command (bash runs traps in that context).
exec {E2E_STDOUT}>&1 {E2E_STDERR}>&2

# e2e_wait CMD...: run CMD in the background and wait for it, so that a
# SIGTERM/SIGINT to the test is handled at once instead of after CMD ends
# (CMD keeps its stdout/stderr; its stdin is /dev/null unless redirected).
# Use for long commands; anything left in a lab namespace dies in lab_down.
e2e_wait() {
	"$@" &
	wait "$!"
}

# ------------------------------------------------------------ director

# e2e_ctl ARGS...: run lb-ctl against the lab's control socket.
e2e_ctl() {
	"$LB_CTL" --socket "$LB_SOCKET" "$@"
}

# e2e_director_log_tail [N]: print the last N (default 40) lines of the log.
e2e_director_log_tail() {
	local n="${1:-40}"
	if [[ -s "$E2E_DIRECTOR_LOG" ]]; then
		echo "---- last $n lines of $E2E_DIRECTOR_LOG ----" >&2
		tail -n "$n" "$E2E_DIRECTOR_LOG" >&2 || true
		echo "---- end of director log ----" >&2
	else
		echo "(director log $E2E_DIRECTOR_LOG is empty or missing)" >&2
	fi
}

# e2e_start_director CONFIG [EXTRA_ARGS...]: start the director in the dir
# namespace (cwd = repo root) and wait until `lb-ctl -L -n` answers.
# Returns 1 (after printing the log) if it dies or times out.
e2e_start_director() {
	local config i rc
	config="$(e2e_abs "$1")"
	shift
	if [[ ! -x "$LB_DIRECTOR" ]]; then
		echo "director binary $LB_DIRECTOR not found (build it: cargo build --release)" >&2
		return 1
	fi
	if [[ ! -x "$LB_CTL" ]]; then
		echo "lb-ctl binary $LB_CTL not found (build it: cargo build --release)" >&2
		return 1
	fi
	if [[ ! -f "$config" ]]; then
		echo "config $config not found" >&2
		return 1
	fi
	mkdir -p "$(dirname "$E2E_DIRECTOR_LOG")" "$(dirname "$LB_SOCKET")"
	rm -f "$LB_SOCKET"
	if [[ $_E2E_LOG_FRESH == 0 ]]; then
		: >"$E2E_DIRECTOR_LOG" # one log per test run; later starts append
		_E2E_LOG_FRESH=1
	fi
	{
		echo "=== $(date '+%F %T') starting: ip netns exec $(lab_ns dir) $LB_DIRECTOR --config $config $*"
	} >>"$E2E_DIRECTOR_LOG"
	# `ip netns exec` execs the command, so $! is the director's pid.
	(cd "$REPO_ROOT" && exec ip netns exec "$(lab_ns dir)" "$LB_DIRECTOR" --config "$config" --socket "$LB_SOCKET" "$@") \
		</dev/null >>"$E2E_DIRECTOR_LOG" 2>&1 {E2E_STDOUT}>&- {E2E_STDERR}>&- &
	E2E_DIRECTOR_PID=$!
	echo "  director pid $E2E_DIRECTOR_PID, log $E2E_DIRECTOR_LOG"
	for ((i = 0; i < E2E_DIRECTOR_TIMEOUT * 5; i++)); do
		if ! kill -0 "$E2E_DIRECTOR_PID" 2>/dev/null; then
			rc=0
			wait "$E2E_DIRECTOR_PID" 2>/dev/null || rc=$?
			echo "director exited early (status $rc)" >&2
			E2E_DIRECTOR_PID=""
			e2e_director_log_tail 60
			return 1
		fi
		if [[ -S "$LB_SOCKET" ]] && e2e_ctl -L -n >/dev/null 2>&1; then
			echo "  director ready after $((i / 5)).$((i % 5 * 2)) s"
			return 0
		fi
		sleep 0.2
	done
	echo "director not ready after ${E2E_DIRECTOR_TIMEOUT}s ($LB_CTL --socket $LB_SOCKET -L -n fails)" >&2
	e2e_ctl -L -n >&2 || true
	e2e_director_log_tail 60
	return 1
}

# e2e_port_mac NAME: the MAC of the director's port NAME (from lb-ctl status).
e2e_port_mac() {
	e2e_ctl status --json | python3 -c '
import json, sys
print(next(p["mac"] for p in json.load(sys.stdin)["ports"] if p["name"] == sys.argv[1]))
' "$1"
}

# e2e_wait_http URL: wait up to 10 s until the client's curl of URL succeeds.
e2e_wait_http() {
	local i
	for ((i = 0; i < 50; i++)); do
		lab_exec client curl -s -o /dev/null --max-time 1 "$1" && return 0
		sleep 0.2
	done
	echo "  $1 does not answer" >&2
	return 1
}

# e2e_stop_director: SIGTERM, wait up to 10 s, then SIGKILL. Never fails.
e2e_stop_director() {
	local pid="$E2E_DIRECTOR_PID" i rc=0
	[[ -z "$pid" ]] && return 0
	E2E_DIRECTOR_PID=""
	if kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < 100; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "director did not stop on SIGTERM within 10 s; killing it" >&2
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	wait "$pid" 2>/dev/null || rc=$?
	echo "=== $(date '+%F %T') director exited with status $rc" >>"$E2E_DIRECTOR_LOG" 2>/dev/null || true
	return 0
}

# ------------------------------------------------------------ steps

# e2e_step DESC CMD...: run one check; counts it as passed or failed.
# CMD runs in a `||` list, so `set -e` does not apply inside it: make it
# return non-zero explicitly on failure.
e2e_step() {
	local desc="$1"
	shift
	E2E_STEP=$((E2E_STEP + 1))
	echo
	echo "== [$E2E_STEP] $desc"
	local ok=0
	"$@" || ok=$?
	if ((ok == 0)); then
		E2E_PASSED=$((E2E_PASSED + 1))
		echo "   PASS [$E2E_STEP] $desc"
	else
		E2E_FAILED=$((E2E_FAILED + 1))
		echo "   FAIL [$E2E_STEP] $desc" >&2
	fi
	_e2e_director_alive || exit 1
	return "$ok"
}

# A director that was started must still run after every step; if it died,
# show why and end the test (counted as one more failure).
_e2e_director_alive() {
	[[ -z "$E2E_DIRECTOR_PID" ]] && return 0
	kill -0 "$E2E_DIRECTOR_PID" 2>/dev/null && return 0
	local rc=0
	wait "$E2E_DIRECTOR_PID" 2>/dev/null || rc=$?
	E2E_DIRECTOR_PID=""
	E2E_FAILED=$((E2E_FAILED + 1))
	echo "   FAIL: the director died during step [$E2E_STEP] (status $rc)" >&2
	e2e_director_log_tail 60
	return 1
}

# e2e_require DESC CMD...: like e2e_step, but a failure ends the test.
e2e_require() {
	e2e_step "$@" || exit 1
}

# e2e_check DESC CMD...: e2e_step that never stops a `set -e` script.
e2e_check() {
	e2e_step "$@" || true
}

e2e_summary() {
	[[ $_E2E_SUMMARY_DONE == 1 ]] && return 0
	_E2E_SUMMARY_DONE=1
	echo
	echo "$E2E_NAME: $E2E_PASSED passed, $E2E_FAILED failed"
}

# e2e_finish: print the summary and exit 0 only if every step passed.
e2e_finish() {
	if ((E2E_FAILED > 0 || E2E_PASSED == 0)); then
		exit 1
	fi
	exit 0
}

_e2e_on_exit() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	exec 1>&"$E2E_STDOUT" 2>&"$E2E_STDERR"
	if ((rc != 0 && E2E_FAILED == 0)); then
		E2E_FAILED=1 # aborted outside a step
	fi
	# (a director that died early had its log printed already)
	if [[ -n "$E2E_DIRECTOR_PID" ]]; then
		if ((rc != 0 || E2E_FAILED > 0)); then
			e2e_director_log_tail 40
		fi
		e2e_stop_director
	fi
	if [[ "$E2E_KEEP_LAB" == 1 ]]; then
		echo "E2E_KEEP_LAB=1: lab '$LAB' left up (lab/lab.sh down to remove it)" >&2
	else
		lab_down
	fi
	e2e_summary
	if ((rc == 0 && E2E_FAILED > 0)); then
		rc=1
	fi
	exit "$rc"
}

trap _e2e_on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
