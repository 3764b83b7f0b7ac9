#!/usr/bin/env bash
# shellcheck disable=SC2317 # step functions are called indirectly via e2e_step
# Connection tracking in the lab, with short timeouts (config/examples/lab-conntrack.yaml):
# `lb-ctl -L -c` shows a live transfer as ESTABLISHED with its local address;
# after the client closes, the entry passes through TIME_WAIT and disappears on
# time (time_wait 4 s); a UDP flow expires after the UDP timeout (5 s).

LAB="${LAB:-ct}"
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CONFIG="$(e2e_abs "${CONNTRACK_CONFIG:-config/examples/lab-conntrack.yaml}")"
VIP="$LAB_VIP"
WORK="$LAB_STATE/conntrack"
BLOB="$LAB_STATE/blob"
TCP_PORT=45000
UDP_PORT=46000

setup_lab() {
	lab_up && lab_start_servers && mkdir -p "$WORK" || return 1
	head -c $((8 * 1024 * 1024)) /dev/urandom >"$BLOB"
	local rs
	for rs in $(lab_rs_list); do cp "$BLOB" "$(lab_rs_data "$rs")/blob"; done
}

# conn_line ADDR:PORT: the -L -c line of the connection from the client's ADDR:PORT.
conn_line() {
	e2e_ctl -L -c -n | grep -F " $LAB_CLIENT_IP:$1 " || true
}

conn_state() {
	conn_line "$1" | awk '{print $3}'
}

live_transfer_listed() {
	lab_exec client curl -s --local-port "$TCP_PORT" --limit-rate 1500K -o "$WORK/blob" \
		"http://$VIP/file/blob" &
	echo $! >"$WORK/curl.pid"
	local line=""
	for _ in $(seq 50); do
		line="$(conn_line "$TCP_PORT")"
		[[ "$line" == *ESTABLISHED* ]] && break
		sleep 0.1
	done
	echo "  $(e2e_ctl -L -c -n | head -2 | tail -1)"
	echo "  $line"
	[[ "$line" == TCP* && "$line" == *ESTABLISHED* && "$line" == *" $VIP:80 "* && "$line" == *" $LAB_LIP:"* ]] ||
		{ echo "  not listed as ESTABLISHED TCP with the VIP and the local address"; return 1; }
}

time_wait_then_gone() {
	wait "$(cat "$WORK/curl.pid")" || true
	cmp -s "$WORK/blob" "$BLOB" || { echo "  download corrupted"; return 1; }
	local states="" state="" tw_start="" now
	for _ in $(seq 150); do
		state="$(conn_state "$TCP_PORT")"
		now=$(date +%s.%N)
		[[ -n "$state" && "$states" != *"$state"* ]] && states+="$state "
		if [[ "$state" == TIME_WAIT && -z "$tw_start" ]]; then tw_start=$now; fi
		if [[ -z "$state" && -n "$tw_start" ]]; then break; fi
		sleep 0.1
	done
	echo "  states seen after the transfer: $states"
	[[ -n "$tw_start" ]] || { echo "  never saw TIME_WAIT"; return 1; }
	[[ -z "$state" ]] || { echo "  still listed ($state) after 15 s"; return 1; }
	local lived
	lived=$(python3 -c "print(f'{$now - $tw_start:.1f}')")
	echo "  gone ${lived}s after TIME_WAIT was first seen (time_wait timeout 4 s)"
	python3 -c "import sys; sys.exit(0 if 2.5 <= $lived <= 6.0 else 1)"
}

udp_expires() {
	lab_exec client python3 -c "
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('$LAB_CLIENT_IP', $UDP_PORT)); s.settimeout(2)
s.sendto(b'hello', ('$VIP', 9000)); print('  reply:', s.recv(100).decode().strip())"
	local start line
	start=$(date +%s)
	line="$(conn_line "$UDP_PORT")"
	echo "  $line"
	[[ "$line" == UDP* ]] || { echo "  UDP flow not listed"; return 1; }
	sleep 3
	[[ -n "$(conn_line "$UDP_PORT")" ]] || { echo "  gone before the UDP timeout"; return 1; }
	for _ in $(seq 40); do
		[[ -z "$(conn_line "$UDP_PORT")" ]] && break
		sleep 0.1
	done
	local lived=$(($(date +%s) - start))
	echo "  UDP entry gone after about ${lived}s (udp timeout 5 s)"
	[[ -z "$(conn_line "$UDP_PORT")" ]] && ((lived >= 4 && lived <= 7))
}

json_listing() {
	e2e_ctl --json -L -c -n >"$WORK/conns.json"
	python3 -c "import json,sys; d=json.load(open('$WORK/conns.json')); print('  json listing parses:', list(d)[:3])"
}

echo "conntrack: lab '$LAB'"
e2e_require "lab up, real servers listening" setup_lab
e2e_require "director starts with short timeouts" e2e_start_director "$CONFIG"
e2e_require "VIP answers" lab_wait_until 10 lab_exec client curl -s -o /dev/null --max-time 1 "http://$VIP/"
e2e_check "a live transfer is listed as ESTABLISHED by lb-ctl -L -c" live_transfer_listed
e2e_check "after close the entry passes TIME_WAIT and expires on time" time_wait_then_gone
e2e_check "a UDP flow is listed and expires after the UDP timeout" udp_expires
e2e_check "lb-ctl --json -L -c gives JSON" json_listing
e2e_finish
