#!/usr/bin/env bash
# shellcheck disable=SC2317 # step functions are called indirectly via e2e_step
# NAT and FullNAT (with its client-address carriers) end to end, in one lab.
#
#   NAT      config/examples/lab-nat.yaml: real servers route back through the director
#   FullNAT  config/examples/lab-fullnat-carriers.yaml: TOA on :80, PROXY v2 on :8080 and
#            v1 on :8081 (nginx with proxy_protocol in every rs namespace)
#
# For each: 300 requests spread evenly by rr; the server sees the client (NAT)
# or the LIP (FullNAT) as peer; 10 MB each way keep their sha256; UDP works; a
# UDP request to a closed port comes back as ICMP port unreachable quoting the
# client's own datagram. FullNAT also: the handshake-completing ACK carries TOA
# 254 with the client's address and port (capture on the server side) and a TOA
# the client forges never reaches a server; nginx's $proxy_protocol_addr is the
# client for v2 and v1, 10 MB both ways through v2; over TAP ports, a 4000-byte
# UDP datagram (fragments both ways) arrives whole. No checksum errors anywhere.
#
# Usage: tests/e2e/mode_nat_fullnat.sh (as root). Ends with
# "mode_nat_fullnat: N passed, M failed".

LAB="${LAB:-modes-nf}"
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=SCRIPTDIR/modes.inc
source "$(dirname "${BASH_SOURCE[0]}")/modes.inc"

SW_IF=sw-dir # the switch port facing the director: sees every packet to the servers

setup() {
	modes_setup_lab || return 1
	lab_start_nginx
}

# capture_start FILE FILTER: tcpdump -v on the switch port facing the director.
CAP_PID=""
capture_start() {
	lab_exec sw tcpdump -i "$SW_IF" -nn -v -l "$2" >"$1" 2>"$1.err" &
	CAP_PID=$!
	sleep 0.7
}

capture_stop() {
	sleep 0.3
	kill "$CAP_PID" 2>/dev/null || true
	wait "$CAP_PID" 2>/dev/null || true
}

# The handshake-completing ACK towards the server carries TOA (kind 254, length
# 8) with the client's port and address, and no other segment does. tcpdump
# shows kind 254 as "exp-<first two bytes>" only, so the capture is written to a
# pcap file and its TCP options are read here.
toa_on_the_ack() {
	local pcap="$MODES_WORK/toa.pcap" out
	lab_exec sw tcpdump -i "$SW_IF" -nn -U -w "$pcap" \
		"src host $LAB_LIP and dst port $LAB_HTTP_PORT" 2>"$pcap.err" &
	CAP_PID=$!
	sleep 0.7
	out="$(lab_exec client curl -s --local-port 41234 --max-time 5 "http://$LAB_VIP:$LAB_HTTP_PORT/")"
	capture_stop
	echo "  response: $out"
	python3 - "$pcap" 41234 "$LAB_CLIENT_IP" <<'PY'
import socket, struct, sys
path, port, client = sys.argv[1], int(sys.argv[2]), sys.argv[3]
data = open(path, "rb").read()
le = data[:4] == b"\xd4\xc3\xb2\xa1"
e = "<" if le else ">"
linktype = struct.unpack(e + "I", data[20:24])[0]
at, n, toas, first_ack = 24, 0, [], None
while at + 16 <= len(data):
    incl = struct.unpack(e + "I", data[at + 8:at + 12])[0]
    frame = data[at + 16:at + 16 + incl]
    at += 16 + incl
    ip = frame[14:] if linktype == 1 else frame
    hl = (ip[0] & 15) * 4
    tcp = ip[hl:]
    flags, thl = tcp[13], (tcp[12] >> 4) * 4
    opts, i, found = tcp[20:thl], 0, None
    while i < len(opts):
        k = opts[i]
        if k == 0:
            break
        if k == 1:
            i += 1
            continue
        ln = opts[i + 1]
        if k == 254 and ln == 8:
            found = (struct.unpack("!H", opts[i + 2:i + 4])[0], socket.inet_ntoa(opts[i + 4:i + 8]))
        i += max(ln, 2)
    n += 1
    kind = "SYN" if flags & 2 else ("ACK" if len(tcp) == thl and flags == 0x10 else "data")
    if found:
        toas.append((kind, found))
    if kind == "ACK" and first_ack is None:
        first_ack = found
    print(f"    segment {n}: {kind:4} flags {flags:#04x} TOA {found}")
ok = first_ack == (port, client) and len(toas) == 1
print("OK" if ok else "BAD", toas)
sys.exit(0 if ok else 1)
PY
}

# A SYN with a forged TOA (6.6.6.6:1234), sent from a raw socket: what reaches
# the server has NOPs instead.
forged_toa_stripped() {
	local cap="$MODES_WORK/forged.txt"
	capture_start "$cap" "src host $LAB_LIP and tcp[tcpflags] & tcp-syn != 0"
	lab_exec client python3 - "$LAB_CLIENT_IP" "$LAB_VIP" <<'PY' || return 1
import socket, struct, sys
src, dst = sys.argv[1], sys.argv[2]
def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF
opts = bytes([2, 4, 5, 0xB4, 254, 8]) + struct.pack("!H", 1234) + socket.inet_aton("6.6.6.6")
hdr = struct.pack("!HHIIBBHHH", 45999, 80, 7777, 0, (20 + len(opts)) // 4 << 4, 0x02, 65535, 0, 0) + opts
pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(hdr))
hdr = hdr[:16] + struct.pack("!H", csum(pseudo + hdr)) + hdr[18:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
s.sendto(hdr, (dst, 0))
PY
	capture_stop
	sed 's/^/    /' "$cap" | head -n 4
	grep -q "mss 1452,nop,nop,nop,nop,nop,nop,nop,nop" "$cap" || grep -q "nop,nop,nop,nop,nop,nop,nop,nop" "$cap" || {
		echo "  FAIL: the forged SYN did not reach a server with its TOA blanked" >&2
		return 1
	}
	if grep -q "unknown-254" "$cap"; then
		echo "  FAIL: a client TOA reached a server" >&2
		return 1
	fi
	echo "  ok: the forged TOA left the director as NOPs"
}

# PORT: requests through nginx; each answer names the client as
# $proxy_protocol_addr and the LIP as the TCP peer.
proxy_requests() {
	local port="$1" n=30 out bad=0
	# shellcheck disable=SC2016
	out="$(lab_exec client bash -c 'for ((i = 0; i < $1; i++)); do curl -s --max-time 5 "$2" || echo FAIL; done' _ "$n" "http://$LAB_VIP:$port/")"
	printf '%s\n' "$out" | sort | uniq -c | sed 's/^/    /'
	lab_assert_eq "$(grep -c "^rs[0-9] $LAB_CLIENT_IP [0-9]* $LAB_LIP$" <<<"$out")" "$n" \
		"answers with \$proxy_protocol_addr $LAB_CLIENT_IP and peer $LAB_LIP" || bad=1
	lab_assert_eq "$(awk '{print $1}' <<<"$out" | sort -u | wc -l)" "$LAB_NRS" "servers answering" || bad=1
	return "$bad"
}

echo "mode_nat_fullnat: lab '$LAB', director $LB_DIRECTOR"
e2e_require "lab up, $LAB_NRS real servers with rs_server.py and nginx, 10 MB blob" setup

# ---------------------------------------------------------------- NAT
e2e_require "NAT: real servers route via the director, director on lab-nat.yaml" \
	modes_start NAT config/examples/lab-nat.yaml nat
e2e_check "NAT: $MODES_REQUESTS HTTP requests to the VIP all succeed" modes_requests
e2e_check "NAT: rr spreads them evenly" modes_balanced
e2e_check "NAT: real servers see the client $LAB_CLIENT_IP as peer" modes_peer_is "$LAB_CLIENT_IP"
e2e_check "NAT: 10 MB download keeps its sha256" modes_download
e2e_check "NAT: 10 MB upload arrives intact" modes_upload
e2e_check "NAT: UDP request/response through the VIP" modes_udp 100 "$LAB_CLIENT_IP"
e2e_check "NAT: closed UDP port -> ICMP port unreachable with the client's addresses inside" \
	modes_icmp_unreachable
e2e_check "NAT: no checksum errors in any namespace" modes_no_csum_errors
modes_status

# ------------------------------------------------------------ FullNAT
e2e_require "FullNAT: director on lab-fullnat-carriers.yaml" \
	modes_start FullNAT config/examples/lab-fullnat-carriers.yaml fullnat
e2e_check "FullNAT: $MODES_REQUESTS HTTP requests (TOA service) all succeed" modes_requests
e2e_check "FullNAT: rr spreads them evenly" modes_balanced
e2e_check "FullNAT: real servers see the LIP $LAB_LIP as peer" modes_peer_is "$LAB_LIP"
e2e_check "FullNAT TOA: the handshake-completing ACK carries 254 with the client's address and port" \
	toa_on_the_ack
e2e_check "FullNAT TOA: a TOA forged by the client never reaches a server" forged_toa_stripped
e2e_check "FullNAT TOA: 10 MB download keeps its sha256" modes_download
e2e_check "FullNAT TOA: 10 MB upload arrives intact" modes_upload
e2e_check "FullNAT PROXY v2: nginx sees the client as \$proxy_protocol_addr" proxy_requests 8080
e2e_check "FullNAT PROXY v1: nginx sees the client as \$proxy_protocol_addr" proxy_requests 8081
e2e_check "FullNAT PROXY v2: 10 MB download through nginx keeps its sha256" modes_download 8080
e2e_check "FullNAT PROXY v2: 10 MB upload through nginx arrives intact" modes_upload 8080
e2e_check "FullNAT PROXY v1: 10 MB upload through nginx arrives intact" modes_upload 8081
e2e_check "FullNAT: UDP request/response through the VIP" modes_udp 100 "$LAB_LIP"
e2e_check "FullNAT: closed UDP port -> ICMP port unreachable with the client's addresses inside" \
	modes_icmp_unreachable
e2e_check "FullNAT: no checksum errors in any namespace" modes_no_csum_errors
modes_status

MODES_TAP=1 e2e_require "FullNAT over TAP ports (fragments reach the director unreassembled)" \
	modes_start FullNAT-TAP config/examples/lab-fullnat-carriers.yaml fullnat
e2e_check "FullNAT: a 4000-byte UDP datagram (fragments both ways) arrives whole" modes_udp 4000 "$LAB_LIP"
e2e_check "FullNAT over TAP: no checksum errors in any namespace" modes_no_csum_errors
modes_status

e2e_finish
