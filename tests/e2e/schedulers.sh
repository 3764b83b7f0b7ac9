#!/usr/bin/env bash
# shellcheck disable=SC2317 # step functions are called indirectly via e2e_step
# Schedulers end to end, set up through lb-ctl on a running director:
#   wrr 1:2:3 over 600 requests gives 100/200/300 (± 3 %);
#   persistence (-p 4): 50 connections from one client land on one server, and
#   after the template expires the client moves on;
#   setting a weight to 0 under load drains new connections away from a server
#   while an established long transfer to it completes intact.

LAB="${LAB:-sch}"
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CONFIG="$(e2e_abs "${SCHED_CONFIG:-config/examples/lab-fullnat.yaml}")"
VIP="$LAB_VIP"
WORK="$LAB_STATE/schedulers"
BLOB="$LAB_STATE/blob"

setup_lab() {
	lab_up && lab_start_servers && mkdir -p "$WORK" || return 1
	head -c $((8 * 1024 * 1024)) /dev/urandom >"$BLOB"
	local rs
	for rs in $(lab_rs_list); do cp "$BLOB" "$(lab_rs_data "$rs")/blob"; done
}

# curls N PORT FILE: N sequential requests to VIP:PORT, one server name per line.
curls() {
	local n="$1" port="$2" out="$3"
	: >"$out"
	for _ in $(seq "$n"); do
		lab_exec client curl -s --max-time 5 "http://$VIP:$port/" >>"$out" || echo FAILED >>"$out"
	done
}

add_service() {
	local port="$1" sched="$2" extra="$3" weights="$4" k=1 w
	# shellcheck disable=SC2086 # extra options are words
	e2e_ctl -A -t "$VIP:$port" -s "$sched" $extra || return 1
	for w in $weights; do
		e2e_ctl -a -t "$VIP:$port" -r "10.0.2.$((10 + k)):80" -F -w "$w" || return 1
		k=$((k + 1))
	done
}

wrr_ratio() {
	add_service 81 wrr "" "1 2 3" || return 1
	e2e_ctl -L -n -t "$VIP:81" | sed 's/^/    /'
	curls 600 81 "$WORK/wrr.txt"
	local c1 c2 c3
	c1=$(grep -c '^rs1$' "$WORK/wrr.txt" || true)
	c2=$(grep -c '^rs2$' "$WORK/wrr.txt" || true)
	c3=$(grep -c '^rs3$' "$WORK/wrr.txt" || true)
	echo "  rs1 $c1, rs2 $c2, rs3 $c3 (want 100/200/300 ± 3 %)"
	lab_assert_between "$c1" 97 103 "rs1" && lab_assert_between "$c2" 194 206 "rs2" &&
		lab_assert_between "$c3" 291 309 "rs3"
}

persistence() {
	add_service 82 rr "-p 4" "1 1 1" || return 1
	e2e_ctl -L -n -t "$VIP:82" | sed 's/^/    /'
	curls 50 82 "$WORK/persist.txt"
	local servers
	servers="$(sort -u "$WORK/persist.txt" | tr '\n' ' ')"
	echo "  50 connections went to: $servers"
	[[ "$(sort -u "$WORK/persist.txt" | wc -l)" == 1 && "$servers" == rs* ]] || return 1
	# The template shows in the connection listing as IPVS shows it.
	local template
	template="$(e2e_ctl -L -c -n | grep -E "^TCP .* NONE +$LAB_CLIENT_IP:0 +$VIP:82 ")" ||
		{ echo "  no template in lb-ctl -L -c"; return 1; }
	echo "    $template"
	local first
	first="$(head -1 "$WORK/persist.txt")"
	sleep 5
	local after
	after="$(lab_exec client curl -s --max-time 5 "http://$VIP:82/")"
	echo "  after the 4 s template expired: $after (was $first)"
	[[ "$after" == rs* && "$after" != "$first" ]]
}

drain() {
	lab_truncate_rs_logs
	lab_exec client curl -s --limit-rate 2M -o "$WORK/long.bin" "http://$VIP/file/blob" &
	local pid=$! rs="" k
	for _ in $(seq 30); do
		for k in $(lab_rs_list); do
			grep -q "/file/blob" "$(lab_rs_log "$k")" 2>/dev/null && rs="$k"
		done
		[[ -n "$rs" ]] && break
		sleep 0.1
	done
	[[ -n "$rs" ]] || { echo "  the long transfer did not start"; return 1; }
	local rip
	rip="$(lab_rs_ip "$rs")"
	echo "  long transfer is on $rs ($rip); setting its weight to 0"
	e2e_ctl -e -t "$VIP:80" -r "$rip:80" -F -w 0 || return 1
	e2e_ctl -L -n -t "$VIP:80" | sed 's/^/    /'
	curls 60 80 "$WORK/drain.txt"
	local to_drained ok
	to_drained=$(grep -c "^$rs\$" "$WORK/drain.txt" || true)
	ok=$(grep -c '^rs' "$WORK/drain.txt" || true)
	echo "  60 new requests: $ok answered, $to_drained went to the quiescent $rs"
	wait "$pid" || { echo "  long transfer failed"; return 1; }
	cmp -s "$WORK/long.bin" "$BLOB" || { echo "  long transfer corrupted"; return 1; }
	echo "  long transfer to $rs completed intact"
	[[ $to_drained == 0 && $ok == 60 ]]
}

echo "schedulers: lab '$LAB'"
e2e_require "lab up, real servers listening" setup_lab
e2e_require "director starts" e2e_start_director "$CONFIG"
e2e_require "VIP answers" lab_wait_until 10 lab_exec client curl -s -o /dev/null --max-time 1 "http://$VIP/"
e2e_check "wrr 1:2:3 over 600 requests" wrr_ratio
e2e_check "persistence holds a client, then lets it move after the timeout" persistence
e2e_check "weight 0 drains new connections; an established transfer completes" drain
e2e_check "no checksum / header errors in any namespace" lab_assert_no_csum_errors
e2e_finish
