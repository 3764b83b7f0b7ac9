#!/usr/bin/env bash
# shellcheck disable=SC2317 # step functions are called indirectly via e2e_step
# DR and TUN (IPIP, GUE) end to end, in one lab with the router namespace
# (LAB_ROUTER=1) that carries the real servers' replies straight to the client:
# the director only ever sees client -> server packets.
#
#   DR        config/examples/lab-dr.yaml        real servers: VIP on lo, arp_ignore/announce
#   TUN-IPIP  config/examples/lab-tun-ipip.yaml  + tunnel endpoint (lab/tun_decap.py)
#   TUN-GUE   config/examples/lab-tun-gue.yaml   + GUE port 6080
#
# For each mode: 300 requests spread evenly by rr, the servers see the client's
# own address, 10 MB each way keep their sha256, UDP gets answered from the VIP.
# DR: a 4000-byte UDP datagram (fragments) arrives whole. TUN: a full-sized DF
# upload gets ICMP fragmentation-needed with the encapsulation-reduced MTU from
# the director and a 20 MB upload then completes. No checksum errors anywhere.
#
# Usage: tests/e2e/mode_dr_tun.sh (as root). Ends with
# "mode_dr_tun: N passed, M failed".

LAB="${LAB:-modes-dt}"
LAB_ROUTER=1
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=SCRIPTDIR/modes.inc
source "$(dirname "${BASH_SOURCE[0]}")/modes.inc"

GUE_PORT=6080

# tun_pmtu MTU: a 20 MB upload with full-sized DF segments; the client must get
# "need to frag (mtu MTU)" from the VIP and the upload must complete intact.
tun_pmtu() {
	local mtu="$1" cap="$MODES_WORK/$MODES_CURRENT.pmtu.txt" pid big="$LAB_STATE/big"
	[[ -f "$big" ]] || head -c $((20 * 1024 * 1024)) /dev/urandom >"$big"
	lab_exec client ip route flush cache >/dev/null 2>&1 || true
	lab_exec client tcpdump -i cli0 -nn -v -l -c 1 'icmp[icmptype] == 3 and icmp[icmpcode] == 4' \
		>"$cap" 2>"$cap.err" &
	pid=$!
	sleep 0.7
	modes_upload "$LAB_HTTP_PORT" "$big" || {
		kill "$pid" 2>/dev/null
		return 1
	}
	sleep 0.2
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	sed 's/^/    /' "$cap"
	echo "  client route: $(lab_exec client ip route get "$LAB_VIP" | tr -s ' \n' ' ')"
	grep -q "need to frag (mtu $mtu)" "$cap" || {
		echo "  FAIL: no ICMP fragmentation-needed with mtu $mtu" >&2
		return 1
	}
	echo "  ok: ICMP fragmentation-needed, mtu $mtu"
}

run_mode() {
	local name="$1" config="$2" peer="$LAB_CLIENT_IP"
	shift 2
	e2e_require "$name: real servers in mode '$*', director on $(basename "$config")" \
		modes_start "$name" "$config" "$@"
	e2e_check "$name: $MODES_REQUESTS HTTP requests to the VIP all succeed" modes_requests
	e2e_check "$name: rr spreads them evenly" modes_balanced
	e2e_check "$name: real servers see the client $peer as peer" modes_peer_is "$peer"
	e2e_check "$name: 10 MB download keeps its sha256" modes_download
	e2e_check "$name: 10 MB upload arrives intact" modes_upload
	e2e_check "$name: UDP request/response through the VIP" modes_udp 100 "$peer"
}

echo "mode_dr_tun: lab '$LAB', director $LB_DIRECTOR"
e2e_require "lab up with the router, $LAB_NRS real servers, 10 MB blob" modes_setup_lab

run_mode DR config/examples/lab-dr.yaml dr
MODES_TAP=1 e2e_require "DR over TAP ports (fragments reach the director unreassembled)" \
	modes_start DR-TAP config/examples/lab-dr.yaml dr
e2e_check "DR: a 4000-byte UDP datagram (fragments) arrives whole" modes_udp 4000 "$LAB_CLIENT_IP"
e2e_check "DR: no checksum errors in any namespace" modes_no_csum_errors
modes_status

run_mode TUN-IPIP config/examples/lab-tun-ipip.yaml tun
e2e_check "TUN-IPIP: 1500-byte DF flow gets frag-needed (mtu 1480), 20 MB upload completes" tun_pmtu 1480
e2e_check "TUN-IPIP: no checksum errors in any namespace" modes_no_csum_errors
modes_status

run_mode TUN-GUE config/examples/lab-tun-gue.yaml tun "$GUE_PORT"
e2e_check "TUN-GUE: 1500-byte DF flow gets frag-needed (mtu 1468), 20 MB upload completes" tun_pmtu 1468
e2e_check "TUN-GUE: no checksum errors in any namespace" modes_no_csum_errors
modes_status

e2e_finish
