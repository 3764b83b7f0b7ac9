#!/usr/bin/env bash
# shellcheck disable=SC2317 # step functions are called indirectly via e2e_step
# Hostile traffic end to end (FullNAT, config/examples/lab-fullnat.yaml):
#
# * While a client downloads a blob over TCP (read at a fixed rate so it lasts
#   ~15 s) and exchanges UDP datagrams with the UDP VIP, an attacker who knows the
#   connections' ports (read from `lb-ctl -L -c -n --json`) and sniffs the
#   receivers' ACKs on its link to aim at their next sequence numbers forges,
#   with scapy:
#     - on the client link: "real server" packets rs:80 / rs:9000 -> LIP:lport
#       (TCP data and RSTs across the receive window and spread over the
#       sequence space, UDP garbage),
#     - on the server link (from the victim's real-server namespace): "client"
#       packets 10.0.1.2:cport -> VIP:80 / VIP:9000.
#   The download must keep its sha256, the UDP exchange must see no garbage, and
#   the director must count every forgery as reverse_path (strict rp_filter,
#   the default). With `rp_filter: off` on both ports the same forgeries reach
#   the connection table and must be dropped there as wrong_side.
# * A blind attacker on the victim's own side (the client link, the client's
#   own tuple, where the side and reverse-path checks let it in) sends data and
#   RSTs at sequence numbers it gets wrong: every one is dropped as
#   tcp_out_of_window and the victims stay intact.
# * SYNs to the VIP in frames to a foreign unicast, the broadcast and a
#   multicast MAC are dropped as foreign_mac; SYNs from martian sources as
#   martian_source, from the VIP as own_source, a land packet as land; none
#   creates a connection.
# * Control: the forgeries, sent past the director straight to the client, do
#   break the victims (so the checks above can fail).
#
# Usage: tests/e2e/security_injection.sh   (as root; env: see tests/e2e/lib.sh,
#   plus E2E_VICTIM_SECONDS (15): how long the victim transfers last)
# Ends with "security_injection: N passed, M failed"; exit 0 only if all passed.

# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CONFIG="$(e2e_abs "${FULLNAT_CONFIG:-config/examples/lab-fullnat.yaml}")"
VICTIM_SECONDS="${E2E_VICTIM_SECONDS:-15}"
VIP="$LAB_VIP"
CLIENT="$LAB_CLIENT_IP"
HTTP_PORT="$LAB_HTTP_PORT"
UDP_PORT="$LAB_UDP_PORT"
# The victims' client ports are chosen by the test (fresh ones for each
# attack) so their connections are easy to find.
TCP_CPORT=0
UDP_CPORT=0
RATE=$((800 * 1024))
BLOB_SIZE=$((RATE * VICTIM_SECONDS))
WORK="$LAB_STATE/security_injection"
RPF_OFF_CONFIG="$WORK/lab-fullnat-rpf-off.yaml"
BLOB="$WORK/blob"
BLOB_SHA=""
FORGE="$WORK/forge.py"
# scapy is a Debian package: the system interpreter, whatever python3 is first
# on PATH.
SCAPY_PYTHON="${SCAPY_PYTHON:-/usr/bin/python3}"

TCP_PID=""
UDP_PID=""
VICTIM_TCP_LOCAL=""
VICTIM_TCP_DEST=""
VICTIM_UDP_LOCAL=""
VICTIM_UDP_DEST=""
FORGED_CLIENT_SIDE=0
FORGED_SERVER_SIDE=0

# ---------------------------------------------------------------- helpers

# counters FILE: every drop reason, rx_packets and conns_created, summed over
# the workers, one "name value" a line.
counters() {
	e2e_ctl status --json | python3 -c '
import json, sys
status = json.load(sys.stdin)
total = {}
for w in status["workers"]:
    for name, value in w["drops"]:
        total[name] = total.get(name, 0) + value
    for key in ("rx_packets", "conns_created"):
        total[key] = total.get(key, 0) + w[key]
for name, value in total.items():
    print(name, value)
' | sort >"$1"
}

# delta BEFORE AFTER NAME: how much counter NAME grew.
delta() {
	local b a
	b="$(awk -v n="$3" '$1 == n { print $2 }' "$1")"
	a="$(awk -v n="$3" '$1 == n { print $2 }' "$2")"
	echo $((${a:-0} - ${b:-0}))
}

# show_deltas BEFORE AFTER: every counter that grew.
show_deltas() {
	join "$1" "$2" | awk '$3 != $2 { printf "    %s +%d\n", $1, $3 - $2 }'
}

# connection PROTO CLIENT_PORT: "local destination" of the connection from
# CLIENT:CLIENT_PORT, or nothing.
connection() {
	e2e_ctl -L -c -n --json | python3 -c '
import json, sys
proto, client = sys.argv[1], sys.argv[2]
for c in json.load(sys.stdin)["connections"]:
    if c["protocol"] == proto and c["client"] == client and c.get("state") != "TIME_WAIT":
        print(c["local"], c["destination"])
        break
' "$1" "$CLIENT:$2"
}

# forge NS IFACE DST_MAC KIND SRC DST [ACK_SRC ACK_DST]: send forged frames
# from a namespace (see write_forge); prints what it sent.
forge() {
	local ns="$1"
	shift
	lab_exec "$ns" "$SCAPY_PYTHON" "$FORGE" "$@"
}

write_forge() {
	cat >"$FORGE" <<'PY'
"""Forged frames for the hostile-traffic test.

forge.py IFACE DST_MAC KIND SRC_IP:PORT DST_IP:PORT [ACK_SRC ACK_DST]

KIND tcp:  data segments and RSTs at 32 sequence numbers spread across the
           space and, when a segment ACK_SRC -> ACK_DST (ip:port) from the
           receiver the forgeries would reach is seen on IFACE within 3 s,
           over the receive window from the sequence number it acknowledges,
           then the same from what each of its following 20 segments
           acknowledges;
     udp:  40 datagrams of garbage;
     syn:  10 SYNs from consecutive source ports starting at SRC's port;
   blind:  what a blind attacker on the connection's own side gets wrong: from
           the next segment SRC -> DST seen on IFACE (the sender's own),
           data and RSTs at 32 sequence numbers 2^28 and more past its next
           one, and data with an acknowledgement 2^30 past its own.
Prints "sent=N" (and "sniffed=0|1" for tcp and blind).
"""
import logging
import sys

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
from scapy.all import IP, TCP, UDP, Ether, Raw, conf, sendp, sniff  # noqa: E402

conf.verb = 0
iface, dst_mac, kind, src, dst = sys.argv[1:6]
sip, sport = src.rsplit(":", 1)
dip, dport = dst.rsplit(":", 1)
sport, dport = int(sport), int(dport)
base = Ether(dst=dst_mac) / IP(src=sip, dst=dip)
frames = []
seen = []


def next_seq(segment):
    """What the receiver expects next (its ack) and has sent so far."""
    tcp = segment[TCP]
    return tcp.ack, (tcp.seq + len(tcp.payload)) & 0xFFFFFFFF


def forgeries(seq, ack, segments=1):
    """Data and RSTs at seq and, for segments > 1, after it: data every 1200
    bytes (some in the window however far the stream moved meanwhile), RSTs
    every full segment of 1448 bytes (one of them exactly at the receiver's
    next sequence number, the only place Linux takes a RST)."""
    frames = []
    for i in range(segments):
        data = dict(sport=sport, dport=dport, seq=(seq + i * 1200) & 0xFFFFFFFF)
        rst = dict(sport=sport, dport=dport, seq=(seq + i * 1448) & 0xFFFFFFFF)
        frames += [
            base / TCP(flags="PA", ack=ack, window=65535, **data) / Raw(b"FORGED" * 200),
            base / TCP(flags="R", **rst),
            base / TCP(flags="RA", ack=ack, **rst),
        ]
    return frames


if kind == "tcp":
    (ack_sip, ack_sport), (ack_dip, ack_dport) = (a.rsplit(":", 1) for a in sys.argv[6:8])
    stream = f"tcp and src host {ack_sip} and src port {ack_sport} and dst host {ack_dip} and dst port {ack_dport}"
    seen = sniff(iface=iface, filter=stream, count=1, timeout=3)
    if seen:
        frames += forgeries(*next_seq(seen[0]), segments=48)
    for k in range(32):
        frames += forgeries(k << 27, 0)
elif kind == "blind":
    stream = f"tcp and src host {sip} and src port {sport} and dst host {dip} and dst port {dport}"
    seen = sniff(iface=iface, filter=stream, count=1, timeout=3)
    if not seen:
        sys.exit("no segment of the connection seen")
    own = seen[0][TCP]
    seq, ack = (own.seq + len(own.payload)) & 0xFFFFFFFF, own.ack
    for k in range(32):
        frames += forgeries((seq + (1 << 28) + (k << 25)) & 0xFFFFFFFF, ack)
    frames.append(base / TCP(sport=sport, dport=dport, flags="PA", seq=seq, ack=(ack + (1 << 30)) & 0xFFFFFFFF) / Raw(b"FORGED"))
    seen = []
elif kind == "udp":
    for k in range(40):
        frames.append(base / UDP(sport=sport, dport=dport) / Raw(b"GARBAGE-%d-" % k + bytes(range(256))))
elif kind == "syn":
    for k in range(10):
        frames.append(base / TCP(sport=sport + k, dport=dport, flags="S", seq=1000 + k))
else:
    sys.exit(f"unknown kind {kind}")
sendp(frames, iface=iface)
sent = len(frames)
if seen:
    # The stream moves on while those are built and sent: for 20 more of its
    # segments, forgeries from its next sequence number on, at once.
    out = conf.L2socket(iface=iface)

    def at_once(segment):
        global sent
        for frame in forgeries(*next_seq(segment), segments=16):
            out.send(frame)
            sent += 1

    sniff(iface=iface, filter=stream, count=20, timeout=3, prn=at_once, store=False)
if kind in ("tcp", "blind"):
    print(f"sniffed={int(bool(seen) or kind == 'blind')}", end=" ")
print(f"sent={sent}")
PY
}

# sent OUTPUT: the N of "sent=N".
sent() {
	sed -n 's/.*sent=\([0-9]*\).*/\1/p' <<<"$1"
}

# The UDP victim: one socket (one connection) sending numbered datagrams for
# VICTIM_SECONDS and checking every reply is the echo of one of them, from the
# VIP, by one real server through one LIP port.
udp_victim() {
	lab_exec client python3 - "$VIP" "$UDP_PORT" "$UDP_CPORT" "$VICTIM_SECONDS" <<'PY'
import re, socket, sys, time
vip, port, cport, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", cport))
s.settimeout(0.5)
echo = re.compile(rb"^(rs\d+) (\d+\.\d+\.\d+\.\d+:\d+) victim-(\d+)$")
sent = answered = stale = 0
garbage, peers = [], set()
end = time.time() + seconds
i = 0
while time.time() < end:
    s.sendto(b"victim-%d" % i, (vip, port))
    sent += 1
    while True:
        try:
            data, src = s.recvfrom(4096)
        except socket.timeout:
            break
        m = echo.match(data)
        if src != (vip, port) or not m or int(m.group(3)) > i:
            garbage.append(f"{src[0]}:{src[1]} {data[:40]!r}")
            continue
        peers.add((m.group(1), m.group(2)))
        if int(m.group(3)) == i:
            answered += 1
            break
        stale += 1  # a late echo of an earlier datagram
    i += 1
    time.sleep(0.02)
print(f"sent={sent} answered={answered} stale={stale} garbage={len(garbage)} peers={len(peers)}")
for g in garbage[:5]:
    print("garbage:", g)
PY
}

# The TCP victim: GET /file/blob from CLIENT:TCP_CPORT, read at RATE bytes/s
# (curl's --limit-rate overshoots several times over in curl 7.88, so the
# transfer would end before the attack) through a small receive buffer. Writes the body to victim.bin; prints "status bytes
# seconds", or the error and exits 1.
tcp_victim() {
	lab_exec client python3 - "$VIP" "$HTTP_PORT" "$TCP_CPORT" "$RATE" "$WORK/victim.bin" <<'PY'
import socket, sys, time
vip, port, cport, rate, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
s.bind(("0.0.0.0", cport))
s.settimeout(10)
start = time.time()
try:
    s.connect((vip, port))
    s.sendall(f"GET /file/blob HTTP/1.0\r\nHost: {vip}\r\n\r\n".encode())
    data = bytearray()
    while chunk := s.recv(16384):
        data += chunk
        # A second's worth at once, then nothing until the next second: the
        # window closes and the stream stands still most of the time, as a
        # slow reader's does.
        second = int(time.time() - start)
        if len(data) >= rate * (second + 1):
            time.sleep(second + 1 - (time.time() - start))
except OSError as e:
    print(f"error after {time.time() - start:.1f} s: {e!r}")
    sys.exit(1)
head, _, body = bytes(data).partition(b"\r\n\r\n")
status = head.split(b"\r\n")[0].decode(errors="replace")
length = [int(l.split(b":")[1]) for l in head.split(b"\r\n")[1:] if l.lower().startswith(b"content-length:")]
open(out, "wb").write(body)
print(f"{status!r} content-length {length} got {len(body)} bytes in {time.time() - start:.1f} s")
sys.exit(0 if status.split()[1:2] == ["200"] and length == [len(body)] else 1)
PY
}

start_victims() {
	rm -f "$WORK/victim.bin" "$WORK/victim-tcp.out" "$WORK/victim-udp.out"
	tcp_victim >"$WORK/victim-tcp.out" 2>&1 &
	TCP_PID=$!
	udp_victim >"$WORK/victim-udp.out" 2>&1 &
	UDP_PID=$!
	local i
	VICTIM_TCP_LOCAL="" VICTIM_UDP_LOCAL=""
	for ((i = 0; i < 50; i++)); do
		read -r VICTIM_TCP_LOCAL VICTIM_TCP_DEST <<<"$(connection tcp "$TCP_CPORT")"
		read -r VICTIM_UDP_LOCAL VICTIM_UDP_DEST <<<"$(connection udp "$UDP_CPORT")"
		[[ -n "$VICTIM_TCP_LOCAL" && -n "$VICTIM_UDP_LOCAL" ]] && break
		sleep 0.1
	done
	echo "  TCP victim $CLIENT:$TCP_CPORT -> $VIP:$HTTP_PORT, director uses ${VICTIM_TCP_LOCAL:-?} -> ${VICTIM_TCP_DEST:-?}"
	echo "  UDP victim $CLIENT:$UDP_CPORT -> $VIP:$UDP_PORT, director uses ${VICTIM_UDP_LOCAL:-?} -> ${VICTIM_UDP_DEST:-?}"
	[[ -n "$VICTIM_TCP_LOCAL" && -n "$VICTIM_UDP_LOCAL" ]]
}

# rs_of DEST: the namespace role of a real server address:port.
rs_of() {
	local ip="${1%%:*}"
	echo "rs$((${ip##*.} - 10))"
}

# inject_client_side: "real server" packets into the victims' connections,
# sent on the client link to the director's client port.
inject_client_side() {
	local mac out total=0
	mac="$(e2e_port_mac client)"
	out="$(forge client cli0 "$mac" tcp "$VICTIM_TCP_DEST" "$VICTIM_TCP_LOCAL" \
		"$CLIENT:$TCP_CPORT" "$VIP:$HTTP_PORT")" || return 1
	echo "  client link, TCP $VICTIM_TCP_DEST -> $VICTIM_TCP_LOCAL: $out"
	total=$((total + $(sent "$out")))
	out="$(forge client cli0 "$mac" udp "$VICTIM_UDP_DEST" "$VICTIM_UDP_LOCAL")" || return 1
	echo "  client link, UDP $VICTIM_UDP_DEST -> $VICTIM_UDP_LOCAL: $out"
	total=$((total + $(sent "$out")))
	FORGED_CLIENT_SIDE=$total
}

# inject_server_side: "client" packets into the victims' connections, sent from
# the TCP victim's real server on the server link to the director's server port.
inject_server_side() {
	local mac rs out total=0
	mac="$(e2e_port_mac server)"
	rs="$(rs_of "$VICTIM_TCP_DEST")"
	out="$(forge "$rs" eth0 "$mac" tcp "$CLIENT:$TCP_CPORT" "$VIP:$HTTP_PORT" \
		"$VICTIM_TCP_DEST" "$VICTIM_TCP_LOCAL")" || return 1
	echo "  server link ($rs), TCP $CLIENT:$TCP_CPORT -> $VIP:$HTTP_PORT: $out"
	total=$((total + $(sent "$out")))
	out="$(forge "$rs" eth0 "$mac" udp "$CLIENT:$UDP_CPORT" "$VIP:$UDP_PORT")" || return 1
	echo "  server link ($rs), UDP $CLIENT:$UDP_CPORT -> $VIP:$UDP_PORT: $out"
	total=$((total + $(sent "$out")))
	FORGED_SERVER_SIDE=$total
}

# victims_intact: both victims were still running after the injection (or the
# test proved nothing), then ended cleanly: sha256 kept, no UDP garbage.
victims_intact() {
	local running=1 bad=0 rc=0 tcp udp sha sent answered garbage peers
	kill -0 "$TCP_PID" 2>/dev/null || running=0
	kill -0 "$UDP_PID" 2>/dev/null || running=0
	lab_assert_eq "$running" 1 "victims still running when the injection ended" || bad=1
	wait "$TCP_PID" || rc=$?
	wait "$UDP_PID" || true
	tcp="$(cat "$WORK/victim-tcp.out")"
	udp="$(cat "$WORK/victim-udp.out")"
	echo "  TCP victim: exit status $rc, $tcp"
	echo "  UDP victim: $udp" | sed '2,$s/^/  /'
	lab_assert_eq "$rc" 0 "TCP victim exit status" || bad=1
	sha="$(sha256sum "$WORK/victim.bin" 2>/dev/null | cut -d' ' -f1)"
	lab_assert_eq "$sha" "$BLOB_SHA" "victim download sha256" || bad=1
	read -r sent answered _ garbage peers <<<"$(head -n 1 <<<"$udp")"
	lab_assert_eq "${garbage#garbage=}" 0 "garbage replies seen by the UDP victim" || bad=1
	lab_assert_eq "${answered#answered=}" "${sent#sent=}" "UDP datagrams answered" || bad=1
	lab_assert_eq "${peers#peers=}" 1 "real server/LIP port pairs in the UDP replies" || bad=1
	return "$bad"
}

# attack REASON CPORT: victims up from client ports CPORT (TCP) and CPORT+1
# (UDP), forgeries from both sides, then every forgery must be counted under
# REASON, and the victims intact.
attack() {
	local reason="$1" before="$WORK/before" after="$WORK/after" bad=0 forged
	TCP_CPORT="$2"
	UDP_CPORT=$(($2 + 1))
	counters "$before" || return 1
	start_victims || return 1
	sleep 1
	inject_client_side || bad=1
	inject_server_side || bad=1
	sleep 0.5
	counters "$after" || return 1
	show_deltas "$before" "$after"
	forged=$((FORGED_CLIENT_SIDE + FORGED_SERVER_SIDE))
	echo "  forged: $FORGED_CLIENT_SIDE on the client link, $FORGED_SERVER_SIDE on the server link"
	lab_assert_eq "$(delta "$before" "$after" "$reason")" "$forged" "$reason drops" || bad=1
	victims_intact || bad=1
	return "$bad"
}

# blind CPORT: forgeries from the client's own side of the TCP victim's
# connection (where the side and reverse-path checks let them in) with the
# sequence numbers a blind attacker gets wrong: every one is dropped as
# tcp_out_of_window and the victims stay intact.
blind() {
	local before="$WORK/before" after="$WORK/after" mac out bad=0
	TCP_CPORT="$1"
	UDP_CPORT=$(($1 + 1))
	counters "$before" || return 1
	start_victims || return 1
	sleep 1
	mac="$(e2e_port_mac client)"
	out="$(forge client cli0 "$mac" blind "$CLIENT:$TCP_CPORT" "$VIP:$HTTP_PORT")" || return 1
	echo "  client link, TCP $CLIENT:$TCP_CPORT -> $VIP:$HTTP_PORT: $out"
	sleep 0.5
	counters "$after" || return 1
	show_deltas "$before" "$after"
	lab_assert_eq "$(delta "$before" "$after" tcp_out_of_window)" "$(sent "$out")" \
		"tcp_out_of_window drops" || bad=1
	victims_intact || bad=1
	return "$bad"
}

# control CPORT: the proof that the checks above can fail. The client-link
# forgeries, rewritten as the director would forward them (VIP -> client) and
# sent from the director's namespace straight to the client, must reset the
# TCP victim and show up as garbage at the UDP victim.
control() {
	local mac out bad=0 rc=0 garbage sha
	TCP_CPORT="$1"
	UDP_CPORT=$(($1 + 1))
	start_victims || return 1
	sleep 1
	mac="$(lab_exec client cat /sys/class/net/cli0/address)"
	out="$(forge dir dcli "$mac" tcp "$VIP:$HTTP_PORT" "$CLIENT:$TCP_CPORT" \
		"$CLIENT:$TCP_CPORT" "$VIP:$HTTP_PORT")" || return 1
	echo "  past the director, TCP $VIP:$HTTP_PORT -> $CLIENT:$TCP_CPORT: $out"
	out="$(forge dir dcli "$mac" udp "$VIP:$UDP_PORT" "$CLIENT:$UDP_CPORT")" || return 1
	echo "  past the director, UDP $VIP:$UDP_PORT -> $CLIENT:$UDP_CPORT: $out"
	wait "$TCP_PID" || rc=$?
	wait "$UDP_PID" || true
	echo "  TCP victim: exit status $rc, $(cat "$WORK/victim-tcp.out")"
	echo "  UDP victim: $(head -n 1 "$WORK/victim-udp.out")"
	sha="$(sha256sum "$WORK/victim.bin" 2>/dev/null | cut -d' ' -f1)"
	if ((rc == 0)) && [[ "$sha" == "$BLOB_SHA" ]]; then
		echo "  FAIL: the TCP victim survived forgeries that reached it" >&2
		bad=1
	else
		echo "  TCP victim broken: exit status $rc, sha256 $([[ "$sha" == "$BLOB_SHA" ]] && echo kept || echo changed)"
	fi
	garbage="$(sed -n '1s/.*garbage=\([0-9]*\).*/\1/p' "$WORK/victim-udp.out")"
	lab_assert_between "${garbage:-0}" 1 999999 "garbage replies seen by the UDP victim" || bad=1
	return "$bad"
}

# ---------------------------------------------------------------- steps

setup_lab() {
	lab_up || return 1
	lab_start_servers || return 1
	mkdir -p "$WORK" || return 1
	"$SCAPY_PYTHON" -c 'import scapy.all' || {
		echo "  scapy missing for $SCAPY_PYTHON (scripts/setup.sh installs python3-scapy)" >&2
		return 1
	}
	write_forge
	head -c "$BLOB_SIZE" /dev/urandom >"$BLOB" || return 1
	BLOB_SHA="$(sha256sum "$BLOB" | cut -d' ' -f1)"
	local rs
	for rs in $(lab_rs_list); do
		cp "$BLOB" "$(lab_rs_data "$rs")/blob" || return 1
	done
	# The sample with rp_filter off on both ports.
	sed -E 's/^( +)address: (10\.0\.[12]\.1\/24)$/&\n\1rp_filter: off/' "$CONFIG" >"$RPF_OFF_CONFIG"
	lab_assert_eq "$(grep -c '^    rp_filter: off$' "$RPF_OFF_CONFIG")" 2 "ports with rp_filter: off in the variant"
}

start_director() {
	echo "  config $1"
	e2e_stop_director
	e2e_start_director "$1" || return 1
	e2e_wait_http "http://$VIP:$HTTP_PORT/"
}

# SYNs to the VIP in frames the director must not take: foreign destination
# MACs, impossible sources. None may create a connection.
refused_syns() {
	local before="$WORK/before" after="$WORK/after" mac out bad=0 src reason
	local -A expect=([foreign_mac]=0 [martian_source]=0 [own_source]=0 [land]=0)
	mac="$(e2e_port_mac client)"
	counters "$before" || return 1
	for dst_mac in 02:00:5e:00:53:01 ff:ff:ff:ff:ff:ff 01:00:5e:00:00:01; do
		out="$(forge client cli0 "$dst_mac" syn "$CLIENT:41000" "$VIP:$HTTP_PORT")" || return 1
		echo "  to MAC $dst_mac, $CLIENT -> $VIP:$HTTP_PORT: $out"
		expect[foreign_mac]=$((expect[foreign_mac] + $(sent "$out")))
	done
	# The VIP as source is the director's own address, checked before land:
	# a land packet to the VIP is own_source; land shows with a foreign address.
	for src in 127.0.0.1 0.0.0.0 224.0.0.1 10.0.1.255 "$VIP" 10.0.1.50; do
		case "$src" in
		"$VIP") reason=own_source ;;
		10.0.1.50) reason=land ;;
		*) reason=martian_source ;;
		esac
		if [[ $reason == land ]]; then
			out="$(forge client cli0 "$mac" syn "$src:41100" "$src:41100")" || return 1
		else
			out="$(forge client cli0 "$mac" syn "$src:41100" "$VIP:$HTTP_PORT")" || return 1
		fi
		echo "  from $src ($reason): $out"
		expect[$reason]=$((expect[$reason] + $(sent "$out")))
	done
	sleep 0.5
	counters "$after" || return 1
	show_deltas "$before" "$after"
	for reason in foreign_mac martian_source own_source land; do
		lab_assert_eq "$(delta "$before" "$after" "$reason")" "${expect[$reason]}" "$reason drops" || bad=1
	done
	lab_assert_eq "$(delta "$before" "$after" conns_created)" 0 "connections created" || bad=1
	return "$bad"
}

# ----------------------------------------------------------------- main

echo "security_injection: lab '$LAB', director $LB_DIRECTOR, socket $LB_SOCKET"
e2e_require "lab up, real servers listening, $BLOB_SIZE-byte blob, rp_filter-off variant" setup_lab
e2e_require "director starts with $(basename "$CONFIG") (rp_filter strict) and the VIP answers" \
	start_director "$CONFIG"
e2e_check "forgeries into live TCP and UDP connections from both sides: all reverse_path, victims intact" \
	attack reverse_path 45600
e2e_check "blind forgeries on the victim's own side: all tcp_out_of_window, victims intact" \
	blind 45650
e2e_check "SYNs to foreign/broadcast/multicast MACs and from martian/own/land sources: counted, no connection" \
	refused_syns
e2e_require "director restarts with rp_filter: off on both ports and the VIP answers" \
	start_director "$RPF_OFF_CONFIG"
e2e_check "the same forgeries with rp_filter off: all wrong_side, victims intact" \
	attack wrong_side 45700
e2e_check "control: the same forgeries sent past the director reset the TCP victim and reach the UDP one" \
	control 45800
e2e_finish
