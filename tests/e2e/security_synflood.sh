#!/usr/bin/env bash
# shellcheck disable=SC2317 # step functions are called indirectly via e2e_step
# SYN flood end to end (FullNAT, config/examples/lab-fullnat.yaml plus a
# default route towards the client side, so that random sources pass the
# strict reverse-path check as real internet clients would):
#
# A legitimate client loops sequential `curl --max-time 10` requests to the VIP
# (no --retry; TCP's own SYN retransmissions are allowed) for E2E_BEFORE
# seconds, then `hping3 -S --flood --rand-source -p 80 VIP` runs from the client
# namespace for E2E_FLOOD seconds, and the client goes on for E2E_AFTER seconds
# after it. Every legitimate request must succeed, before, during and after the
# flood, and the director must stay up. The flood must deliver at least as many
# SYNs as one LIP has local ports (64512), or it proves nothing.
#
# The output records the flood: SYNs sent by hping3 and their rate, what the
# director's client port and worker received, connections created and live,
# and the drop counters no_local_port, table_full, martian_source,
# reverse_path and any halfopen_* counter, sampled every second.
#
# On a 2-core machine an unpinned flood starves everything else, so hping3 is
# pinned to one CPU (E2E_FLOOD_CPU, default 0); the director's worker runs on
# lcore 1. E2E_FLOOD_ARGS (default --flood) sets the pace, e.g. "-i u20".
#
# Usage: tests/e2e/security_synflood.sh   (as root; env: see tests/e2e/lib.sh,
#   plus E2E_BEFORE (3), E2E_FLOOD (10), E2E_AFTER (15) seconds)
# Ends with "security_synflood: N passed, M failed"; exit 0 only if all passed.

# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BASE_CONFIG="$(e2e_abs "${FULLNAT_CONFIG:-config/examples/lab-fullnat.yaml}")"
BEFORE="${E2E_BEFORE:-3}"
FLOOD="${E2E_FLOOD:-10}"
AFTER="${E2E_AFTER:-15}"
FLOOD_CPU="${E2E_FLOOD_CPU:-0}"
read -ra FLOOD_ARGS <<<"${E2E_FLOOD_ARGS:---flood}"
VIP="$LAB_VIP"
HTTP_PORT="$LAB_HTTP_PORT"
LOCAL_PORTS=$((65536 - 1024))
WORK="$LAB_STATE/security_synflood"
CONFIG="$WORK/lab-fullnat-flood.yaml"

LEGIT_PID=""
SAMPLER_PID=""
FLOOD_START=""
FLOOD_END=""

# ---------------------------------------------------------------- helpers

# counters: one line "name value ..." of what the flood is measured by, summed
# over workers: client port rx and missed, worker rx, connections created and
# live, the drops that a flood can cause, and every counter whose name starts
# with halfopen, wherever the status reports it.
counters() {
	e2e_ctl status --json | python3 -c '
import json, sys
status = json.load(sys.stdin)
out = {}
def add(name, value):
    out[name] = out.get(name, 0) + value
port = next(p for p in status["ports"] if p["name"] == "client")
add("port_rx", port["rx_packets"])
add("port_missed", port["rx_missed"])
watched = ("no_local_port", "table_full", "martian_source", "reverse_path")
def walk(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k.startswith("halfopen") and isinstance(v, int):
                add(k, v)
            walk(v)
    elif isinstance(node, list):
        if len(node) == 2 and isinstance(node[0], str) and isinstance(node[1], int):
            if node[0].startswith("halfopen"):
                add(node[0], node[1])
        else:
            for v in node:
                walk(v)
for w in status["workers"]:
    add("worker_rx", w["rx_packets"])
    add("conns_created", w["conns_created"])
    add("conns_live", w["conns_live"])
    drops = dict(w["drops"])
    for name in watched:
        add(name, drops.get(name, 0))
walk(status)
print(" ".join(f"{k}={v}" for k, v in out.items()))
'
}

# field LINE NAME: the value of NAME=... in a counters line (0 when absent).
field() {
	sed -n "s/.*\\b$2=\\([0-9]*\\).*/\\1/p" <<<"$1" | grep . || echo 0
}

# The legitimate client: sequential requests for SECONDS, one line each:
# "start end curl_status first_body_line".
legit_client() {
	# shellcheck disable=SC2016 # expanded by the inner bash
	lab_exec client bash -c '
		url=$1 end=$((SECONDS + $2))
		while ((SECONDS < end)); do
			start=$(date +%s.%N)
			rc=0
			body=$(curl -s --max-time 10 "$url") || rc=$?
			echo "$start $(date +%s.%N) $rc ${body%%$'"'\n'"'*}"
		done' _ "http://$VIP:$HTTP_PORT/" "$1"
}

# sampler SECONDS: a counters line a second, prefixed with the time.
sampler() {
	local i
	for ((i = 0; i < $1; i++)); do
		echo "$(date +%s.%N) $(counters 2>/dev/null || echo unavailable)"
		sleep 1
	done
}

# requests FROM TO: the legitimate requests started in [FROM, TO), as
# "total failed first_failure_start last_failure_end" (times relative to the
# flood's start; - when none failed).
requests() {
	awk -v from="$1" -v to="$2" -v t0="$FLOOD_START" '
		$1 >= from && $1 < to {
			n++
			if ($3 != 0 || $4 !~ /^rs[0-9]+$/) {
				f++
				if (first == "") first = $1 - t0
				last = $2 - t0
			}
		}
		END {
			if (f == 0) printf "%d 0 - -\n", n
			else printf "%d %d %+.1f %+.1f\n", n, f, first, last
		}' "$WORK/legit.txt"
}

# ---------------------------------------------------------------- steps

setup_lab() {
	lab_up || return 1
	lab_start_servers || return 1
	mkdir -p "$WORK" || return 1
	command -v hping3 >/dev/null || {
		echo "  hping3 missing (scripts/setup.sh installs it)" >&2
		return 1
	}
	{
		cat "$BASE_CONFIG"
		echo "routes:"
		echo "  # The flood's random sources are the internet, behind the client."
		echo "  - { destination: 0.0.0.0/0, via: $LAB_CLIENT_IP, port: client }"
	} >"$CONFIG"
}

start_director() {
	echo "  config $CONFIG (= $(basename "$BASE_CONFIG") + default route via $LAB_CLIENT_IP)"
	e2e_start_director "$CONFIG" || return 1
	e2e_wait_http "http://$VIP:$HTTP_PORT/"
}

# The flood itself, with the legitimate client and the sampler around it.
flood() {
	local before after sent rate rc=0 cli_tx0 cli_tx1
	legit_client $((BEFORE + FLOOD + AFTER)) >"$WORK/legit.txt" 2>&1 &
	LEGIT_PID=$!
	sampler $((BEFORE + FLOOD + AFTER + 5)) >"$WORK/samples.txt" 2>&1 &
	SAMPLER_PID=$!
	sleep "$BEFORE"
	before="$(counters)" || return 1
	cli_tx0="$(lab_exec client cat /sys/class/net/cli0/statistics/tx_packets)"
	FLOOD_START="$(date +%s.%N)"
	echo "  flood: taskset -c $FLOOD_CPU hping3 -S ${FLOOD_ARGS[*]} --rand-source -p $HTTP_PORT $VIP for $FLOOD s"
	lab_exec client timeout -s INT "$FLOOD" taskset -c "$FLOOD_CPU" \
		hping3 -S "${FLOOD_ARGS[@]}" --rand-source -p "$HTTP_PORT" "$VIP" \
		>"$WORK/hping3.out" 2>&1 || rc=$?
	FLOOD_END="$(date +%s.%N)"
	cli_tx1="$(lab_exec client cat /sys/class/net/cli0/statistics/tx_packets)"
	after="$(counters)" || return 1
	sent="$(sed -n 's/^\([0-9]*\) packets transmitted.*/\1/p' "$WORK/hping3.out")"
	if [[ -z "$sent" ]]; then
		echo "  hping3 (status $rc) reported no statistics:" >&2
		sed 's/^/    /' "$WORK/hping3.out" >&2
		return 1
	fi
	rate="$(awk -v n="$sent" -v a="$FLOOD_START" -v b="$FLOOD_END" 'BEGIN { printf "%d", n / (b - a) }')"
	echo "  hping3 sent $sent SYNs in $(awk -v a="$FLOOD_START" -v b="$FLOOD_END" 'BEGIN { printf "%.1f", b - a }') s: $rate pps"
	echo "  cli0 transmitted $((cli_tx1 - cli_tx0)) frames meanwhile"
	local name
	for name in port_rx port_missed worker_rx conns_created no_local_port table_full martian_source reverse_path; do
		printf '  director %-14s +%d\n' "$name" $(($(field "$after" "$name") - $(field "$before" "$name")))
	done
	echo "  director conns_live $(field "$before" conns_live) -> $(field "$after" conns_live)"
	grep -o 'halfopen[a-z_]*=[0-9]*' <<<"$after" | sed 's/^/  director (end of flood) /' || echo "  director reports no halfopen_* counter"
	echo "$sent" >"$WORK/sent"
	echo $(($(field "$after" port_rx) - $(field "$before" port_rx))) >"$WORK/received"
}

# The flood must have been strong enough to use up one LIP's local ports.
flood_strong_enough() {
	local received
	received="$(cat "$WORK/received")"
	lab_assert_between "$received" "$LOCAL_PORTS" 999999999 "packets the director's client port received during the flood"
}

# Wait for the legitimate client to finish; print the counters' timeline.
legit_done() {
	local rc=0
	wait "$LEGIT_PID" || rc=$?
	LEGIT_PID=""
	kill "$SAMPLER_PID" 2>/dev/null || true
	wait "$SAMPLER_PID" 2>/dev/null || true
	SAMPLER_PID=""
	echo "  director counters, one sample a second (t relative to the flood's start):"
	awk -v t0="$FLOOD_START" '{ $1 = sprintf("t=%+5.1f", $1 - t0); print "    " $0 }' "$WORK/samples.txt" |
		sed -E 's/ (port_missed|worker_rx|martian_source|reverse_path)=[0-9]+//g'
	local total failed first last still=""
	read -r total failed first last <<<"$(requests 0 99999999999)"
	[[ "$(tail -n 1 "$WORK/legit.txt" | cut -d' ' -f3)" != 0 ]] && still=", still failing at the end"
	echo "  legitimate requests: $total, $failed failed$([[ $failed == 0 ]] || echo " from ${first} s to ${last} s after the flood's start$still")"
	lab_assert_eq "$rc" 0 "legitimate client loop exit status"
}

# phase NAME FROM TO: every legitimate request started in [FROM, TO) succeeded.
phase() {
	local total failed first last
	read -r total failed first last <<<"$(requests "$2" "$3")"
	if ((failed == 0)); then
		echo "  $1: $total requests, all succeeded"
	else
		echo "  $1: $total requests, $failed failed, first failure started at ${first} s, last failure ended at ${last} s (relative to the flood's start)"
		awk -v from="$2" -v to="$3" -v t0="$FLOOD_START" '$1 >= from && $1 < to && ($3 != 0 || $4 !~ /^rs[0-9]+$/) {
			printf "    t=%+.1f s: curl status %s, %.1f s\n", $1 - t0, $3, $2 - $1 }' "$WORK/legit.txt" | head -n 8
	fi
	lab_assert_between "$total" 1 999999 "$1 requests" || return 1
	lab_assert_eq "$failed" 0 "$1 failed requests"
}

# Up means the process runs (checked after every step) and its control
# socket answers; whether it still serves is what the phases check.
director_up() {
	local out
	out="$(e2e_ctl status)" || return 1
	sed -n '1,/^Port/p' <<<"$out" | sed '$d; s/^/    /'
}

# ----------------------------------------------------------------- main

echo "security_synflood: lab '$LAB', director $LB_DIRECTOR, socket $LB_SOCKET"
e2e_require "lab up, real servers listening, flood config written" setup_lab
e2e_require "director starts and the VIP answers" start_director
e2e_require "$FLOOD s SYN flood from random sources while a client loops requests" flood
e2e_check "the flood reached the director with at least $LOCAL_PORTS SYNs (one LIP's local ports)" flood_strong_enough
e2e_check "the legitimate client ran to the end" legit_done
e2e_check "every request before the flood succeeded" phase "before the flood" 0 "$FLOOD_START"
e2e_check "every request during the flood succeeded" phase "during the flood" "$FLOOD_START" "$FLOOD_END"
e2e_check "every request in the $AFTER s after the flood succeeded" phase "after the flood" "$FLOOD_END" 99999999999
e2e_check "the director is still up and lb-ctl status answers" director_up
e2e_finish
