#!/usr/bin/env bash
# shellcheck disable=SC2317 # step functions are called indirectly via e2e_step
# A VLAN interface end to end (config/examples/lab-fullnat-vlan.yaml): the client
# port carries VLAN 100 with the director's address 10.0.3.1/24. This kernel has
# no 802.1Q interfaces, so a client on the VLAN is played with scapy on cli0: it
# sends tagged frames and reads the tagged answers.
#
# * ARP for 10.0.3.1 on VLAN 100 is answered on VLAN 100; ARP for it untagged,
#   or on VLAN 200, is not.
# * A ping to 10.0.3.1 on VLAN 100 is answered, tagged.
# * A TCP SYN from 10.0.3.2 on VLAN 100 to the VIP reaches a real server (nginx
#   in its namespace) untagged through FullNAT, and the server's SYN-ACK comes
#   back to 10.0.3.2 tagged 100; the connection lists 10.0.3.2 as its client.
# * Frames on VLAN 200 are dropped as unknown_vlan; untagged clients still work.
#
# Usage: tests/e2e/vlan.sh   (as root; env: see tests/e2e/lib.sh)
# Ends with "vlan: N passed, M failed"; exit 0 only if all passed.

# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CONFIG="$(e2e_abs "${VLAN_CONFIG:-config/examples/lab-fullnat-vlan.yaml}")"
VIP="$LAB_VIP"
HTTP_PORT="$LAB_HTTP_PORT"
VLAN=100
VLAN_DIR=10.0.3.1
VLAN_CLIENT=10.0.3.2
WORK="$LAB_STATE/vlan"
PROBE="$WORK/probe.py"
SCAPY_PYTHON="${SCAPY_PYTHON:-/usr/bin/python3}"

# ---------------------------------------------------------------- helpers

write_probe() {
	cat >"$PROBE" <<'PY'
"""A client on a VLAN of the client link, played with scapy.

probe.py IFACE DIR_MAC VLAN KIND [ARGS]
  arp TARGET          who-has TARGET on VLAN (0 = untagged); prints the VLAN and
                      sender of the answer, or "none"
  ping SRC DST        an echo request; prints "reply vlan=V" or "none"
  syn SRC SPORT DST DPORT
                      a SYN; prints "synack vlan=V ack=A" (the answer's VLAN and
                      whether it acknowledges our sequence) or "none", then
                      resets the connection
"""
import logging
import sys

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import ARP, ICMP, IP, TCP, Dot1Q, Ether, conf, srp1  # noqa: E402

conf.verb = 0
iface, dir_mac, vlan, kind = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
args = sys.argv[5:]
me = open(f"/sys/class/net/{iface}/address").read().strip()


def frame(dst, payload):
    eth = Ether(src=me, dst=dst)
    return eth / Dot1Q(vlan=vlan) / payload if vlan else eth / payload


def tag(answer):
    return answer[Dot1Q].vlan if answer is not None and Dot1Q in answer else 0


if kind == "arp":
    (target,) = args
    ask = frame("ff:ff:ff:ff:ff:ff", ARP(op=1, hwsrc=me, psrc="10.0.3.2", pdst=target))
    answer = srp1(ask, iface=iface, timeout=2)
    if answer is None or ARP not in answer or answer[ARP].op != 2:
        print("none")
    else:
        print(f"is-at vlan={tag(answer)} psrc={answer[ARP].psrc} hwsrc={answer[ARP].hwsrc}")
elif kind == "ping":
    src, dst = args
    answer = srp1(frame(dir_mac, IP(src=src, dst=dst) / ICMP(id=7, seq=1)), iface=iface, timeout=2)
    if answer is None or ICMP not in answer or answer[ICMP].type != 0:
        print("none")
    else:
        print(f"reply vlan={tag(answer)}")
elif kind == "syn":
    src, sport, dst, dport = args[0], int(args[1]), args[2], int(args[3])
    syn = IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="S", seq=1000, window=64240)
    answer = srp1(frame(dir_mac, syn), iface=iface, timeout=3, filter=f"tcp and port {sport}")
    if answer is None or TCP not in answer or answer[TCP].flags != "SA":
        print("none")
    else:
        ok = int(answer[TCP].ack == 1001)
        print(f"synack vlan={tag(answer)} ack={ok} src={answer[IP].src}")
        rst = IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="R", seq=1001)
        conf.L2socket(iface=iface).send(frame(dir_mac, rst))
else:
    sys.exit(f"unknown kind {kind}")
PY
}

probe() {
	lab_exec client "$SCAPY_PYTHON" "$PROBE" cli0 "$(e2e_port_mac client)" "$@"
}

drops() {
	e2e_ctl status --json | python3 -c '
import json, sys
print(sum(n for w in json.load(sys.stdin)["workers"] for r, n in w["drops"] if r == sys.argv[1]))
' "$1"
}

# ---------------------------------------------------------------- steps

setup_lab() {
	lab_up || return 1
	lab_start_servers || return 1
	mkdir -p "$WORK" || return 1
	write_probe
}

start_director() {
	e2e_start_director "$CONFIG"
}

arp_on_the_vlan() {
	local out bad=0
	out="$(probe "$VLAN" arp "$VLAN_DIR")"
	echo "  VLAN $VLAN, who-has $VLAN_DIR: $out"
	[[ "$out" == "is-at vlan=$VLAN psrc=$VLAN_DIR "* ]] || bad=1
	out="$(probe 0 arp "$VLAN_DIR")"
	echo "  untagged, who-has $VLAN_DIR: $out"
	[[ "$out" == none ]] || bad=1
	out="$(probe 200 arp "$VLAN_DIR")"
	echo "  VLAN 200, who-has $VLAN_DIR: $out"
	[[ "$out" == none ]] || bad=1
	return "$bad"
}

ping_on_the_vlan() {
	local out
	out="$(probe "$VLAN" ping "$VLAN_CLIENT" "$VLAN_DIR")"
	echo "  VLAN $VLAN, ping $VLAN_DIR: $out"
	[[ "$out" == "reply vlan=$VLAN" ]]
}

connection_from_the_vlan() {
	local out listed bad=0
	out="$(probe "$VLAN" syn "$VLAN_CLIENT" 47000 "$VIP" "$HTTP_PORT")"
	echo "  VLAN $VLAN, SYN $VLAN_CLIENT:47000 -> $VIP:$HTTP_PORT: $out"
	[[ "$out" == "synack vlan=$VLAN ack=1 src=$VIP" ]] || bad=1
	listed="$(e2e_ctl -L -c -n | grep -c "$VLAN_CLIENT:47000" || true)"
	echo "  connections from $VLAN_CLIENT:47000 listed: $listed"
	lab_assert_between "$listed" 1 1 "listed connections of the VLAN client" || bad=1
	return "$bad"
}

other_vlans_are_dropped() {
	local before after out
	before="$(drops unknown_vlan)"
	out="$(probe 200 syn "$VLAN_CLIENT" 47001 "$VIP" "$HTTP_PORT")"
	echo "  VLAN 200, SYN: $out"
	after="$(drops unknown_vlan)"
	echo "  unknown_vlan: $before -> $after"
	[[ "$out" == none ]] && ((after > before))
}

untagged_clients_still_work() {
	local i ok=0
	for i in 1 2 3 4 5 6; do
		if lab_exec client curl -s -o /dev/null --max-time 3 "http://$VIP:$HTTP_PORT/"; then
			ok=$((ok + 1))
		fi
	done
	echo "  untagged curl: $ok of 6"
	lab_assert_eq "$ok" 6 "untagged requests answered"
}

# ----------------------------------------------------------------- main

echo "vlan: lab '$LAB', director $LB_DIRECTOR, socket $LB_SOCKET"
e2e_require "lab up, real servers listening" setup_lab
e2e_require "director starts with $(basename "$CONFIG")" start_director
e2e_check "ARP for the VLAN's address is answered on that VLAN only" arp_on_the_vlan
e2e_check "a ping on the VLAN is answered on the VLAN" ping_on_the_vlan
e2e_check "a SYN from the VLAN reaches a real server; its SYN-ACK comes back tagged" \
	connection_from_the_vlan
e2e_check "frames on another VLAN are dropped as unknown_vlan" other_vlans_are_dropped
e2e_check "untagged clients are served as before" untagged_clients_still_work
e2e_finish
