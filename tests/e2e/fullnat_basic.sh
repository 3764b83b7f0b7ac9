#!/usr/bin/env bash
# shellcheck disable=SC2317 # step functions are called indirectly via e2e_step
# FullNAT acceptance test.
#
# client (10.0.1.2) -> VIP 10.0.1.100 -> director (DPDK, af_packet) -> LIP
# 10.0.2.100 -> rs1..rs3 (10.0.2.11-13), as configured in
# config/examples/lab-fullnat.yaml:
#   TCP 10.0.1.100:80   rr -> 10.0.2.11-13:80,   FullNAT via LIP 10.0.2.100
#   UDP 10.0.1.100:9000 rr -> 10.0.2.11-13:9000, FullNAT via LIP 10.0.2.100
#
# Usage: tests/e2e/fullnat_basic.sh   (as root; env: see tests/e2e/lib.sh,
#   plus FULLNAT_CONFIG, E2E_REQUESTS (300), E2E_TOLERANCE (3),
#   E2E_VIP_TIMEOUT (10 s))
# Ends with "fullnat_basic: N passed, M failed"; exit 0 only if all passed.

# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

FULLNAT_CONFIG="$(e2e_abs "${FULLNAT_CONFIG:-config/examples/lab-fullnat.yaml}")"
REQUESTS="${E2E_REQUESTS:-300}"
TOLERANCE="${E2E_TOLERANCE:-3}"
VIP_TIMEOUT="${E2E_VIP_TIMEOUT:-10}"
VIP="$LAB_VIP"
LIP="$LAB_LIP"
HTTP_PORT="$LAB_HTTP_PORT"
UDP_PORT="$LAB_UDP_PORT"
BLOB="$LAB_STATE/blob"
BLOB_SIZE=$((10 * 1024 * 1024))
BLOB_SHA=""
WORK="$LAB_STATE/fullnat_basic"

# ---------------------------------------------------------------- steps

setup_lab() {
	lab_up || return 1
	lab_start_servers || return 1
	mkdir -p "$WORK" || return 1
	head -c "$BLOB_SIZE" /dev/urandom >"$BLOB" || return 1
	BLOB_SHA="$(sha256sum "$BLOB" | cut -d' ' -f1)"
	local rs
	for rs in $(lab_rs_list); do
		cp "$BLOB" "$(lab_rs_data "$rs")/blob" || return 1
	done
	echo "  $LAB_NRS real servers up; /file/blob is $BLOB_SIZE bytes, sha256 $BLOB_SHA"
}

start_director() {
	echo "  config $FULLNAT_CONFIG"
	e2e_start_director "$FULLNAT_CONFIG"
}

_vip_http_ok() {
	lab_exec client curl -s -o /dev/null --max-time 1 "http://$VIP:$HTTP_PORT/" 2>/dev/null
}

vip_answers() {
	local end=$((SECONDS + VIP_TIMEOUT)) pinged=no
	while ((SECONDS < end)); do
		if [[ $pinged == no ]] && lab_exec client ping -c1 -W1 "$VIP" >/dev/null 2>&1; then
			pinged=yes
		fi
		if _vip_http_ok; then
			echo "  http://$VIP/ answers (ping: $pinged)"
			lab_truncate_rs_logs
			lab_nstat_snapshot >/dev/null || true
			return 0
		fi
		sleep 0.3
	done
	echo "  no HTTP answer from $VIP within ${VIP_TIMEOUT}s (ping: $pinged)" >&2
	echo "  client neighbours: $(lab_exec client ip neigh show dev cli0 | tr '\n' ';')" >&2
	return 1
}

# 300 sequential requests in one shell inside the client namespace. One
# line per request: the body's first line, or FAIL(rc). Stops early after
# 20 failures so a broken director doesn't cost 300 * 5 s.
http_requests() {
	local out="$WORK/requests.txt" total fails
	# shellcheck disable=SC2016 # expanded by the inner bash
	e2e_wait lab_exec client bash -c '
		n=$1 url=$2 fails=0
		for ((i = 0; i < n; i++)); do
			rc=0
			body=$(curl -s --max-time 5 "$url") || rc=$?
			if ((rc != 0)); then
				echo "FAIL($rc)"
				fails=$((fails + 1))
				((fails >= 20)) && break
			elif [[ -z "$body" ]]; then
				echo "EMPTY"
			else
				read -r first <<<"$body"
				echo "$first"
			fi
		done' _ "$REQUESTS" "http://$VIP:$HTTP_PORT/" >"$out"
	total="$(wc -l <"$out")"
	fails="$(grep -cv '^rs[0-9][0-9]*$' "$out" || true)"
	echo "  $total requests sent, $fails failed"
	if ((fails > 0)); then
		sort "$out" | uniq -c | sed 's/^/   /'
	fi
	lab_assert_eq "$total" "$REQUESTS" "requests completed" || return 1
	lab_assert_eq "$fails" 0 "failed requests" || return 1
}

balanced() {
	local out="$WORK/requests.txt" rs n expect lo hi bad=0
	expect=$((REQUESTS / LAB_NRS))
	lo=$((expect - TOLERANCE))
	hi=$((expect + TOLERANCE))
	for rs in $(lab_rs_list); do
		n="$(grep -cx "$rs" "$out" || true)"
		lab_assert_between "$n" "$lo" "$hi" "responses from $rs" || bad=1
	done
	return "$bad"
}

# Every access-log line written since the VIP first answered must show the
# LIP as peer (FullNAT), never the client address.
rs_sees_lip() {
	local rs log lines lip client other bad=0 sum=0
	for rs in $(lab_rs_list); do
		log="$(lab_rs_log "$rs")"
		cp "$log" "$WORK/$rs.access.log"
		lines="$(grep -c 'GET /$' "$log" || true)"
		lip="$(awk -v ip="$LIP" '$1 == ip' "$log" | wc -l)"
		client="$(awk -v ip="$LAB_CLIENT_IP" '$1 == ip' "$log" | wc -l)"
		other="$(awk -v ip="$LIP" '$1 != ip' "$log" | wc -l)"
		sum=$((sum + lines))
		echo "  $rs: $lines requests logged, peer $LIP: $lip, peer $LAB_CLIENT_IP: $client, other peers: $other"
		if ((other > 0)); then
			awk -v ip="$LIP" '$1 != ip' "$log" | head -n 3 | sed 's/^/     /' >&2
			bad=1
		fi
	done
	lab_assert_eq "$sum" "$REQUESTS" "GET / lines in rs logs" || bad=1
	return "$bad"
}

download() {
	local out="$WORK/download.bin" rc=0 sha size
	rm -f "$out"
	e2e_wait lab_exec client curl -s --max-time 60 -o "$out" \
		-w '  http %{http_code}, %{size_download} bytes in %{time_total} s\n' \
		"http://$VIP:$HTTP_PORT/file/blob" || rc=$?
	lab_assert_eq "$rc" 0 "curl exit status" || return 1
	size="$(stat -c %s "$out")"
	sha="$(sha256sum "$out" | cut -d' ' -f1)"
	lab_assert_eq "$size" "$BLOB_SIZE" "downloaded size" || return 1
	lab_assert_eq "$sha" "$BLOB_SHA" "downloaded sha256" || return 1
}

upload() {
	local rc=0 reply out="$WORK/upload.reply"
	rm -f "$out"
	e2e_wait lab_exec client curl -s --max-time 60 --data-binary "@$BLOB" -o "$out" \
		"http://$VIP:$HTTP_PORT/upload" || rc=$?
	reply="$(cat "$out" 2>/dev/null || true)"
	lab_assert_eq "$rc" 0 "curl exit status" || return 1
	lab_assert_eq "$reply" "$BLOB_SHA" "sha256 computed by the real server" || return 1
}

# Three datagrams from three sockets (three UDP connections for the
# director); each reply must come from VIP:port and name the LIP as peer.
udp_echo() {
	local out bad=0 line i
	out="$(lab_exec client python3 - "$VIP" "$UDP_PORT" <<'PY'
import socket, sys
vip, port = sys.argv[1], int(sys.argv[2])
for i in range(3):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1.0)
    payload = f"udp-probe-{i}".encode()
    reply = None
    for attempt in range(3):
        s.sendto(payload, (vip, port))
        try:
            data, src = s.recvfrom(4096)
        except socket.timeout:
            continue
        if src != (vip, port):
            reply = f"BADSRC {src[0]}:{src[1]} {data!r}"
        else:
            reply = data.decode(errors="replace")
        break
    print(reply if reply is not None else "TIMEOUT")
    s.close()
PY
	)" || {
		echo "  python3 failed" >&2
		return 1
	}
	i=0
	while IFS= read -r line; do
		echo "  reply $i: $line"
		if [[ ! "$line" =~ ^rs[0-9]+\ ${LIP//./\\.}:[0-9]+\ udp-probe-$i$ ]]; then
			echo "  FAIL: reply $i is not '<rs> $LIP:<port> udp-probe-$i'" >&2
			bad=1
		fi
		i=$((i + 1))
	done <<<"$out"
	lab_assert_eq "$i" 3 "UDP replies" || bad=1
	return "$bad"
}

no_csum_errors() {
	lab_assert_no_csum_errors
}

ctl_stats() {
	echo "  \$ $LB_CTL --socket $LB_SOCKET -L -n --stats"
	local out rc=0
	out="$(e2e_ctl -L -n --stats 2>&1)" || rc=$?
	printf '%s\n' "$out" | sed 's/^/    /'
	lab_assert_eq "$rc" 0 "lb-ctl exit status"
}

# ----------------------------------------------------------------- main

echo "fullnat_basic: lab '$LAB', director $LB_DIRECTOR, lb-ctl $LB_CTL, socket $LB_SOCKET"
e2e_require "lab up, $LAB_NRS real servers listening, 10 MB blob in place" setup_lab
e2e_require "director starts with $(basename "$FULLNAT_CONFIG") and lb-ctl -L -n answers" start_director
e2e_require "VIP $VIP:$HTTP_PORT answers within ${VIP_TIMEOUT}s" vip_answers
e2e_check "$REQUESTS sequential HTTP requests to $VIP all succeed" http_requests
e2e_check "rr spreads them evenly ($((REQUESTS / LAB_NRS)) +- $TOLERANCE per server)" balanced
e2e_check "real servers see the LIP $LIP as peer, never the client" rs_sees_lip
e2e_check "10 MB download through the VIP keeps its sha256" download
e2e_check "10 MB upload through the VIP arrives intact (sha256)" upload
e2e_check "UDP $VIP:$UDP_PORT request/response, real server sees the LIP" udp_echo
e2e_check "no checksum / header errors in any namespace" no_csum_errors
e2e_check "lb-ctl -L -n --stats" ctl_stats
e2e_finish
