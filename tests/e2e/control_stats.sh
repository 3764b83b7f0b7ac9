#!/usr/bin/env bash
# shellcheck disable=SC2317 # step functions are called indirectly via e2e_step
# Statistics end to end: after a known number of UDP datagrams of known sizes
# through the UDP service, `lb-ctl -L -n --stats --exact` and the Prometheus
# endpoint report exactly those packets and bytes (IP packets, IP total length);
# -Z zeroes the listing but never the exported counters; --rate estimates rates
# under steady traffic; drops by reason and port counters are exported.
#
# Usage: tests/e2e/control_stats.sh   (as root; env: see tests/e2e/lib.sh,
#   plus E2E_DATAGRAMS (1000); the lab prefix defaults to LAB=ctl)
# Ends with "control_stats: N passed, M failed".

LAB="${LAB:-ctl}"
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CONFIG="$(e2e_abs "${CONTROL_CONFIG:-config/examples/lab-control.yaml}")"
DATAGRAMS="${E2E_DATAGRAMS:-1000}"
VIP="$LAB_VIP"
UDP_PORT="$LAB_UDP_PORT"
METRICS_URL="http://127.0.0.1:9100/metrics"
SERVICE_LABEL="udp/$VIP:$UDP_PORT"
WORK="$LAB_STATE/control_stats"

# ---------------------------------------------------------------- helpers

# metrics: the exposition, fetched inside the director's namespace.
metrics() {
	lab_exec dir curl -s --max-time 3 "$METRICS_URL"
}

# metric TEXT NAME LABELS: the value of NAME{LABELS} in TEXT (0 when absent).
metric() {
	awk -v want="$2{$3}" '$1 == want { v = $2 } END { print (v == "" ? 0 : v) }' <<<"$1"
}

# service_totals TEXT: "conns in_pkts out_pkts in_bytes out_bytes" of the UDP
# service in an exposition.
service_totals() {
	local f out=()
	for f in connections in_packets out_packets in_bytes out_bytes; do
		out+=("$(metric "$1" "lb_service_${f}_total" "service=\"$SERVICE_LABEL\"")")
	done
	echo "${out[*]}"
}

# listed_totals: the same five numbers from `lb-ctl -L -n --stats --exact`.
listed_totals() {
	e2e_ctl -L -n --stats --exact -u "$VIP:$UDP_PORT" |
		awk -v svc="UDP  $VIP:$UDP_PORT" 'index($0, svc) == 1 { print $3, $4, $5, $6, $7 }'
}

# udp_burst N: N datagrams of sizes 1..1400 from one socket, each waiting for its
# echo; prints "sent sent_ip_bytes received received_ip_bytes retries".
udp_burst() {
	lab_exec client python3 - "$VIP" "$UDP_PORT" "$1" <<'PY'
import socket, sys
vip, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1.0)
sent = sent_bytes = recv = recv_bytes = retries = 0
for i in range(n):
    payload = bytes([65 + i % 26]) * (1 + (i * 37) % 1400)
    for attempt in range(5):
        s.sendto(payload, (vip, port))
        sent += 1
        sent_bytes += len(payload) + 28  # IPv4 and UDP headers
        try:
            data, _ = s.recvfrom(4096)
        except socket.timeout:
            retries += 1
            continue
        recv += 1
        recv_bytes += len(data) + 28
        break
s.settimeout(0.5)
try:
    while True:  # late echoes of retried datagrams
        data, _ = s.recvfrom(4096)
        recv += 1
        recv_bytes += len(data) + 28
except socket.timeout:
    pass
print(sent, sent_bytes, recv, recv_bytes, retries)
PY
}

# ---------------------------------------------------------------- steps

setup_lab() {
	lab_up || return 1
	lab_start_servers || return 1
	mkdir -p "$WORK"
}

start_director() {
	echo "  config $CONFIG"
	e2e_start_director "$CONFIG"
}

udp_answers() {
	local out
	out="$(udp_burst 3)"
	echo "  warm-up: $out"
	[[ "$(cut -d' ' -f3 <<<"$out")" == 3 ]]
}

metrics_endpoint() {
	local text code
	text="$(metrics)" || return 1
	grep -qE '^lb_config_generation [0-9]+$' <<<"$text" || return 1
	grep -q "^# TYPE lb_service_in_packets_total counter$" <<<"$text" || return 1
	grep -q "^lb_service_in_packets_total{service=\"$SERVICE_LABEL\"} " <<<"$text" || return 1
	grep -q '^lb_worker_drops_total{worker="0",reason="no_service"} ' <<<"$text" || return 1
	echo "  $(wc -l <<<"$text") lines, $(grep -c '^# TYPE' <<<"$text") metric families"
	code="$(lab_exec dir curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:9100/nope")"
	lab_assert_eq "$code" 404 "status of an unknown path"
}

exact_counts() {
	local before after burst sent sent_bytes recv recv_bytes retries listed expected delta i b a
	e2e_ctl -Z -u "$VIP:$UDP_PORT" || return 1
	before="$(service_totals "$(metrics)")"
	listed="$(listed_totals)"
	lab_assert_eq "$listed" "0 0 0 0 0" "listed after -Z" || return 1
	burst="$(udp_burst "$DATAGRAMS")" || return 1
	read -r sent sent_bytes recv recv_bytes retries <<<"$burst"
	echo "  sent $sent datagrams ($sent_bytes IP bytes), $recv echoes ($recv_bytes IP bytes), $retries retries"
	lab_assert_eq "$recv" "$DATAGRAMS" "echoes received" || return 1
	expected="1 $sent $recv $sent_bytes $recv_bytes"
	listed="$(listed_totals)"
	e2e_ctl -L -n --stats --exact -u "$VIP:$UDP_PORT" | sed 's/^/    /'
	lab_assert_eq "$listed" "$expected" "lb-ctl -L -n --stats --exact (Conns InPkts OutPkts InBytes OutBytes)" || return 1
	# The real servers' lines add up to the same.
	listed="$(e2e_ctl -L -n --stats --exact -u "$VIP:$UDP_PORT" |
		awk '$1 == "->" { for (i = 3; i <= 7; i++) s[i] += $i } END { print s[3] + 0, s[4] + 0, s[5] + 0, s[6] + 0, s[7] + 0 }')"
	lab_assert_eq "$listed" "$expected" "sum over real servers" || return 1
	after="$(service_totals "$(metrics)")"
	read -ra b <<<"$before"
	read -ra a <<<"$after"
	delta=""
	for i in 0 1 2 3 4; do delta+="$((a[i] - b[i])) "; done
	lab_assert_eq "${delta% }" "$expected" "/metrics increase of lb_service_*_total" || return 1
}

zero_keeps_exported_counters() {
	local before after listed
	before="$(service_totals "$(metrics)")"
	e2e_ctl -Z || return 1
	listed="$(listed_totals)"
	lab_assert_eq "$listed" "0 0 0 0 0" "listed after -Z" || return 1
	after="$(service_totals "$(metrics)")"
	lab_assert_eq "$after" "$before" "exported counters after -Z (monotonic)"
}

drops_by_reason() {
	local before after n=5
	before="$(metric "$(metrics)" lb_worker_drops_total 'worker="0",reason="no_service"')"
	lab_exec client python3 -c "
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range($n):
    s.sendto(b'nobody listens', ('$VIP', 9999))
" || return 1
	sleep 0.5
	after="$(metric "$(metrics)" lb_worker_drops_total 'worker="0",reason="no_service"')"
	lab_assert_eq "$((after - before))" "$n" "no_service drops for $n datagrams to $VIP:9999" || return 1
	e2e_ctl status | grep -E "drop no_service: [0-9]+" | sed 's/^/   /'
	e2e_ctl status | grep -qE "^0 +[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+ +65536 +[0-9]+$" || {
		echo "  FAIL: status shows no worker line with the table capacity" >&2
		return 1
	}
}

port_counters() {
	local text rx
	text="$(metrics)"
	rx="$(metric "$text" lb_port_rx_packets_total 'port="client",device="net_af_packet0"')"
	lab_assert_between "$rx" "$DATAGRAMS" 999999999 "lb_port_rx_packets_total of the client port" || return 1
	grep -qE '^lb_port_xstats_total\{port="client",xstat="[a-z_0-9]+"\} [0-9]+$' <<<"$text" || return 1
	grep -E '^lb_port_xstats_total\{port="client"' <<<"$text" | head -n 3 | sed 's/^/    /'
}

rates_under_traffic() {
	local pid out udp tcp
	# About 200 datagrams and 20 new TCP connections a second, for 9 seconds.
	lab_exec client python3 - "$VIP" "$UDP_PORT" <<'PY' &
import http.client, socket, sys, time
vip, port = sys.argv[1], int(sys.argv[2])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.setblocking(False)
end = time.time() + 9
i = 0
while time.time() < end:
    u.sendto(b"x" * 72, (vip, port))
    if i % 10 == 0:
        c = http.client.HTTPConnection(vip, 80, timeout=2)
        c.request("GET", "/")
        c.getresponse().read()
        c.close()
    try:
        while True:
            u.recv(4096)
    except BlockingIOError:
        pass
    i += 1
    time.sleep(0.005)
PY
	pid=$!
	sleep 7
	out="$(e2e_ctl -L -n --rate --exact)"
	wait "$pid" || true
	printf '%s\n' "$out" | sed 's/^/    /'
	udp="$(awk -v svc="UDP  $VIP:$UDP_PORT" 'index($0, svc) == 1 { print $4, $6 }' <<<"$out")"
	tcp="$(awk -v svc="TCP  $VIP:80" 'index($0, svc) == 1 { print $3 }' <<<"$out")"
	read -r pps bps <<<"$udp"
	lab_assert_between "$pps" 20 1000 "UDP InPPS" || return 1
	lab_assert_between "$bps" $((pps * 50)) $((pps * 200)) "UDP InBPS (100-byte packets)" || return 1
	lab_assert_between "$tcp" 1 100 "TCP CPS"
}

# ----------------------------------------------------------------- main

echo "control_stats: lab '$LAB', director $LB_DIRECTOR, socket $LB_SOCKET"
e2e_require "lab up, $LAB_NRS real servers listening" setup_lab
e2e_require "director starts with $(basename "$CONFIG")" start_director
e2e_require "UDP $VIP:$UDP_PORT echoes" udp_answers
e2e_check "GET $METRICS_URL serves the exposition" metrics_endpoint
e2e_check "$DATAGRAMS datagrams: -L --stats --exact and /metrics report exactly them" exact_counts
e2e_check "-Z zeroes the listing, never the exported counters" zero_keeps_exported_counters
e2e_check "drops by reason (lb-ctl status and /metrics)" drops_by_reason
e2e_check "port counters and xstats exported" port_counters
e2e_check "--rate under steady traffic" rates_under_traffic
e2e_finish
