#!/usr/bin/env bash
# Lab topology for the director (see docs / reference.md §7-8).
#
# Source it (`source lab/lab.sh`) to get the lab_* functions, or run it:
#   lab/lab.sh up | down | status | servers | counters | install-deps
#
#   ${LAB}-client  cli0 10.0.1.2/24, default via 10.0.1.1
#        |  veth cli0 <-> dcli
#   ${LAB}-dir     dcli, dsrv: UP, no addresses (DPDK af_packet attaches here);
#        |         the director answers ARP for 10.0.1.1, 10.0.1.100 (VIP),
#        |         10.0.2.1 and 10.0.2.100 (LIP) itself
#        |  veth dsrv <-> sw-dir
#   ${LAB}-sw      bridge br0: sw-dir, sw-rs1..N
#        |  veth sw-rsK <-> eth0
#   ${LAB}-rsK     eth0 10.0.2.(10+K)/24, default via 10.0.2.1
#
# Environment:
#   LAB          namespace prefix (default lb)
#   LAB_NRS      number of real servers (default 3)
#   LAB_RUN      run dir for logs (default <repo>/lab/run); per-lab state is
#                in $LAB_RUN/$LAB (rsK/access.log, rsK/server.out, rsK/data/)
#   LAB_HTTP_PORT / LAB_UDP_PORT   real-server ports (default 80 / 9000)
#   LAB_ENDPOINT_IPV6=1  keep IPv6 on the client and rs ends (default: off, so
#                the kernels send no RS/MLD/DAD noise towards the director)
#
# All functions are safe under `set -euo pipefail`; they return non-zero on
# failure instead of exiting (except lab_fail). Sourcing does not change the
# caller's shell options.

_LAB_SELF="${BASH_SOURCE[0]}"
LAB_DIR="$(cd "$(dirname "$_LAB_SELF")" && pwd -P)"
LAB_REPO_ROOT="$(cd "$LAB_DIR/.." && pwd -P)"

LAB="${LAB:-lb}"
LAB_NRS="${LAB_NRS:-3}"
LAB_RUN="${LAB_RUN:-$LAB_REPO_ROOT/lab/run}"
LAB_STATE="$LAB_RUN/$LAB"
LAB_HTTP_PORT="${LAB_HTTP_PORT:-80}"
LAB_UDP_PORT="${LAB_UDP_PORT:-9000}"
LAB_ENDPOINT_IPV6="${LAB_ENDPOINT_IPV6:-0}"

# Fixed addresses of the topology contract (used by the tests).
# shellcheck disable=SC2034
{
	LAB_CLIENT_IP=10.0.1.2
	LAB_DIR_CLIENT_IP=10.0.1.1
	LAB_VIP=10.0.1.100
	LAB_DIR_SERVER_IP=10.0.2.1
	LAB_LIP=10.0.2.100
}

# ---------------------------------------------------------------- utilities

lab_log() { printf '[lab] %s\n' "$*" >&2; }

# lab_fail MSG...: print and exit 1 (the caller's EXIT trap still runs).
lab_fail() {
	printf 'FAIL: %s\n' "$*" >&2
	exit 1
}

# lab_ns ROLE: namespace name for client|dir|sw|rsK.
lab_ns() { printf '%s-%s\n' "$LAB" "$1"; }

# lab_rs_list: rs1 .. rsN, one per line.
lab_rs_list() {
	local k
	for ((k = 1; k <= LAB_NRS; k++)); do printf 'rs%d\n' "$k"; done
}

# lab_rs_ip K: 10.0.2.(10+K)
lab_rs_ip() { printf '10.0.2.%d\n' "$((10 + ${1#rs}))"; }

lab_rs_dir() { printf '%s/%s\n' "$LAB_STATE" "$1"; }
lab_rs_log() { printf '%s/%s/access.log\n' "$LAB_STATE" "$1"; }
lab_rs_data() { printf '%s/%s/data\n' "$LAB_STATE" "$1"; }

# lab_exec ROLE CMD...: run CMD inside the role's namespace.
lab_exec() {
	if [[ $# -lt 2 ]]; then
		echo "usage: lab_exec ROLE CMD..." >&2
		return 2
	fi
	local ns
	ns="$(lab_ns "$1")"
	shift
	ip netns exec "$ns" "$@"
}

# Namespaces belonging to this lab prefix that currently exist.
lab_namespaces() {
	local name
	ip netns list 2>/dev/null | while read -r name _; do
		case "$name" in
		"$LAB-client" | "$LAB-dir" | "$LAB-sw") printf '%s\n' "$name" ;;
		"$LAB"-rs*)
			[[ "${name#"$LAB"-rs}" =~ ^[0-9]+$ ]] && printf '%s\n' "$name"
			;;
		esac
	done
	return 0
}

# All roles of the configured topology, in creation order.
lab_roles() {
	printf '%s\n' client dir sw
	lab_rs_list
}

# ------------------------------------------------------------ dependencies

_LAB_APT_UPDATED=0

# lab_install_deps [CMD:PACKAGE ...]: install the Debian packages providing
# missing commands (the lab's own needs plus any extra pairs given).
# Runs `apt-get update` at most once per shell and nothing when all present.
# shellcheck disable=SC2120
lab_install_deps() {
	local pairs=(
		ip:iproute2 ss:iproute2 nstat:iproute2 bridge:iproute2
		ethtool:ethtool curl:curl socat:socat python3:python3
		ping:iputils-ping sysctl:procps ps:procps
		sha256sum:coreutils timeout:coreutils
	)
	pairs+=("$@")
	local missing=() p cmd pkg
	for p in "${pairs[@]}"; do
		cmd="${p%%:*}"
		pkg="${p#*:}"
		if ! command -v "$cmd" >/dev/null 2>&1; then
			case " ${missing[*]-} " in
			*" $pkg "*) ;;
			*) missing+=("$pkg") ;;
			esac
		fi
	done
	[[ ${#missing[@]} -eq 0 ]] && return 0
	if [[ $(id -u) -ne 0 ]]; then
		lab_log "missing packages ${missing[*]} and not root"
		return 1
	fi
	lab_log "installing: ${missing[*]}"
	if [[ $_LAB_APT_UPDATED -eq 0 ]]; then
		DEBIAN_FRONTEND=noninteractive apt-get update -qq || return 1
		_LAB_APT_UPDATED=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >/dev/null || return 1
}

# ------------------------------------------------------------- topology

# Turn off every offload on a veth end so af_packet never sees partial
# checksums or GSO/GRO super-frames. Features are set one by one, because
# ethtool rejects the whole request when one of them is fixed.
_lab_offloads_off() {
	local ns="$1" ifc="$2" f
	for f in rx tx tso gso gro lro; do
		ip netns exec "$ns" ethtool -K "$ifc" "$f" off >/dev/null 2>&1 || true
	done
}

_lab_no_ipv6() {
	local ns="$1" ifc="$2"
	ip netns exec "$ns" sysctl -qw "net.ipv6.conf.$ifc.disable_ipv6=1" >/dev/null 2>&1 || true
}

# Per-namespace defaults, applied before any interface exists.
_lab_ns_init() {
	local ns="$1" v6off="$2"
	ip netns add "$ns" || return 1
	ip -n "$ns" link set lo up || return 1
	if [[ "$v6off" == 1 ]]; then
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 >/dev/null 2>&1 || true
		ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.disable_ipv6=1 >/dev/null 2>&1 || true
	fi
	return 0
}

# _lab_veth NS_A IF_A NS_B IF_B: create a veth pair directly in its namespaces
# (nothing is ever created in the caller's namespace, so labs don't clash).
_lab_veth() {
	local nsa="$1" ifa="$2" nsb="$3" ifb="$4"
	ip -n "$nsa" link add "$ifa" mtu 1500 type veth peer name "$ifb" mtu 1500 netns "$nsb" || return 1
}

# lab_up: build the whole topology (tears down a stale lab with this prefix).
lab_up() {
	# shellcheck disable=SC2119
	lab_install_deps || return 1
	lab_down
	mkdir -p "$LAB_STATE" || return 1

	local cli dir sw ep6=1 rs ns k
	cli="$(lab_ns client)"
	dir="$(lab_ns dir)"
	sw="$(lab_ns sw)"
	[[ "$LAB_ENDPOINT_IPV6" == 1 ]] && ep6=0

	lab_log "creating lab '$LAB' with $LAB_NRS real servers"
	_lab_ns_init "$cli" "$ep6" || return 1
	_lab_ns_init "$dir" 1 || return 1
	_lab_ns_init "$sw" 1 || return 1
	for rs in $(lab_rs_list); do
		_lab_ns_init "$(lab_ns "$rs")" "$ep6" || return 1
	done

	# client <-> director
	_lab_veth "$cli" cli0 "$dir" dcli || return 1
	# director <-> switch
	_lab_veth "$dir" dsrv "$sw" sw-dir || return 1
	# switch
	ip -n "$sw" link add br0 type bridge stp_state 0 forward_delay 0 || return 1
	_lab_no_ipv6 "$sw" br0
	ip -n "$sw" link set sw-dir master br0 || return 1
	for rs in $(lab_rs_list); do
		ns="$(lab_ns "$rs")"
		_lab_veth "$sw" "sw-$rs" "$ns" eth0 || return 1
		ip -n "$sw" link set "sw-$rs" master br0 || return 1
	done

	# IPv6 off and offloads off on every veth end, before links go up.
	_lab_no_ipv6 "$dir" dcli
	_lab_no_ipv6 "$dir" dsrv
	_lab_no_ipv6 "$sw" sw-dir
	[[ "$ep6" == 1 ]] && _lab_no_ipv6 "$cli" cli0
	_lab_offloads_off "$cli" cli0
	_lab_offloads_off "$dir" dcli
	_lab_offloads_off "$dir" dsrv
	_lab_offloads_off "$sw" sw-dir
	for rs in $(lab_rs_list); do
		ns="$(lab_ns "$rs")"
		_lab_no_ipv6 "$sw" "sw-$rs"
		[[ "$ep6" == 1 ]] && _lab_no_ipv6 "$ns" eth0
		_lab_offloads_off "$sw" "sw-$rs"
		_lab_offloads_off "$ns" eth0
	done

	# Addresses and routes.
	ip -n "$cli" addr add "$LAB_CLIENT_IP/24" dev cli0 || return 1
	ip -n "$cli" link set cli0 up || return 1
	ip -n "$cli" route add default via "$LAB_DIR_CLIENT_IP" dev cli0 || return 1

	ip -n "$dir" link set dcli up || return 1
	ip -n "$dir" link set dsrv up || return 1

	ip -n "$sw" link set br0 up || return 1
	ip -n "$sw" link set sw-dir up || return 1
	for rs in $(lab_rs_list); do
		ns="$(lab_ns "$rs")"
		k="${rs#rs}"
		ip -n "$sw" link set "sw-$rs" up || return 1
		ip -n "$ns" addr add "$(lab_rs_ip "$k")/24" dev eth0 || return 1
		ip -n "$ns" link set eth0 up || return 1
		ip -n "$ns" route add default via "$LAB_DIR_SERVER_IP" dev eth0 || return 1
		mkdir -p "$(lab_rs_data "$rs")" || return 1
	done
	lab_log "lab '$LAB' is up (state in $LAB_STATE)"
}

# lab_down: kill everything running in this lab's namespaces and delete
# them. Never fails.
lab_down() {
	local nss ns pids i
	nss="$(lab_namespaces)"
	[[ -z "$nss" ]] && return 0
	lab_log "tearing down lab '$LAB'"
	for ns in $nss; do
		ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
	done
	for ((i = 0; i < 30; i++)); do
		pids=""
		for ns in $nss; do
			pids+="$(ip netns pids "$ns" 2>/dev/null || true)"
		done
		[[ -z "$pids" ]] && break
		sleep 0.1
	done
	for ns in $nss; do
		ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
	done
	for ns in $nss; do
		ip netns del "$ns" 2>/dev/null || true
	done
	return 0
}

# lab_status: what exists of this lab.
lab_status() {
	local nss ns
	nss="$(lab_namespaces)"
	if [[ -z "$nss" ]]; then
		echo "lab '$LAB': down"
		return 0
	fi
	echo "lab '$LAB': namespaces:"
	for ns in $nss; do
		echo "== $ns"
		ip -n "$ns" -br addr show 2>/dev/null | grep -v '^lo ' | sed 's/^/   /' || true
		ip -n "$ns" route show 2>/dev/null | sed 's/^/   route: /' || true
		local pids
		pids="$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ' || true)"
		if [[ -n "${pids// /}" ]]; then
			# shellcheck disable=SC2086
			ps -o pid=,args= -p ${pids// /,} 2>/dev/null | sed 's/^/   proc: /' || true
		fi
	done
	return 0
}

# ------------------------------------------------------------ real servers

# _lab_listening NS PROTO PORT: is something listening there?
_lab_listening() {
	local ns="$1" proto="$2" port="$3" out
	if [[ "$proto" == tcp ]]; then
		out="$(ip netns exec "$ns" ss -Hltn "sport = :$port" 2>/dev/null || true)"
	else
		out="$(ip netns exec "$ns" ss -Hlun "sport = :$port" 2>/dev/null || true)"
	fi
	[[ -n "$out" ]]
}

# lab_start_servers: start lab/rs_server.py in every rs namespace and wait
# (up to 10 s each) until it listens on TCP and UDP.
lab_start_servers() {
	local rs ns d i pid
	for rs in $(lab_rs_list); do
		ns="$(lab_ns "$rs")"
		d="$(lab_rs_dir "$rs")"
		mkdir -p "$d/data" || return 1
		: >"$d/access.log"
		# Detached from the caller's stdio so $(...) callers don't hang.
		# `ip netns exec` execs, so $! is the server's own pid.
		ip netns exec "$ns" python3 "$LAB_DIR/rs_server.py" \
			--name "$rs" --http-port "$LAB_HTTP_PORT" --udp-port "$LAB_UDP_PORT" \
			--log "$d/access.log" --data-dir "$d/data" \
			</dev/null >"$d/server.out" 2>&1 &
		pid=$!
		echo "$pid" >"$d/server.pid"
	done
	for rs in $(lab_rs_list); do
		ns="$(lab_ns "$rs")"
		d="$(lab_rs_dir "$rs")"
		pid="$(cat "$d/server.pid")"
		for ((i = 0; i < 100; i++)); do
			if _lab_listening "$ns" tcp "$LAB_HTTP_PORT" && _lab_listening "$ns" udp "$LAB_UDP_PORT"; then
				break
			fi
			if ! kill -0 "$pid" 2>/dev/null; then
				lab_log "$rs server died:"
				cat "$d/server.out" >&2 || true
				return 1
			fi
			sleep 0.1
		done
		if ((i >= 100)); then
			lab_log "$rs server not listening after 10 s"
			cat "$d/server.out" >&2 || true
			return 1
		fi
	done
	lab_log "real servers listening on :$LAB_HTTP_PORT/tcp and :$LAB_UDP_PORT/udp"
}

# lab_truncate_rs_logs: empty every rs access log (servers append).
lab_truncate_rs_logs() {
	local rs
	for rs in $(lab_rs_list); do
		: >"$(lab_rs_log "$rs")"
	done
}

# ------------------------------------------------------------- counters

LAB_COUNTERS=(TcpInCsumErrors UdpInCsumErrors IpInHdrErrors)

# lab_counters ROLE: "NAME VALUE" lines for LAB_COUNTERS, read from the
# namespace's /proc/net/snmp (absolute values, no nstat history files).
lab_counters() {
	local ns
	ns="$(lab_ns "$1")"
	ip netns exec "$ns" cat /proc/net/snmp | awk -v want="${LAB_COUNTERS[*]}" '
		BEGIN { n = split(want, w, " "); for (i = 1; i <= n; i++) wanted[w[i]] = 1 }
		{
			p = $1; sub(":$", "", p)
			if (!(p in hdr)) { hdr[p] = $0; next }
			nf = split(hdr[p], h, " ")
			for (i = 2; i <= nf; i++) {
				k = p h[i]
				if (k in wanted) val[k] = $i
			}
			delete hdr[p]
		}
		END { for (i = 1; i <= n; i++) printf "%s %s\n", w[i], ((w[i] in val) ? val[w[i]] : "NA") }'
}

# lab_nstat_snapshot: store current counters of every namespace in
# $LAB_STATE/counters.snapshot (and print them).
lab_nstat_snapshot() {
	local role out="$LAB_STATE/counters.snapshot"
	mkdir -p "$LAB_STATE" || return 1
	: >"$out"
	for role in $(lab_roles); do
		lab_counters "$role" | sed "s/^/$role /" >>"$out" || return 1
	done
	cat "$out"
}

# lab_assert_no_csum_errors: every counter in every namespace must be 0
# (namespaces are fresh, so absolute values are what matter). Also shows the
# change since lab_nstat_snapshot, if one was taken. Returns 1 on any error.
lab_assert_no_csum_errors() {
	local role name val bad=0 snap="$LAB_STATE/counters.snapshot" before lines
	for role in $(lab_roles); do
		if ! lines="$(lab_counters "$role")"; then
			echo "  $role: cannot read /proc/net/snmp" >&2
			bad=1
			continue
		fi
		while read -r name val; do
			before=""
			[[ -f "$snap" ]] && before="$(awk -v r="$role" -v n="$name" '$1 == r && $2 == n { print $3 }' "$snap")"
			if [[ "$val" != 0 ]]; then
				echo "  $role $name=$val${before:+ (was $before)}  <-- not zero" >&2
				bad=1
			fi
		done <<<"$lines"
		echo "  $role: $(tr '\n' ' ' <<<"$lines")"
	done
	return "$bad"
}

# ------------------------------------------------------------- assertions
# Each prints "ok: MSG" or "FAIL: MSG (details)" and returns 0/1.

lab_assert() {
	local msg="$1"
	shift
	if "$@"; then
		echo "  ok: $msg"
	else
		echo "  FAIL: $msg (command: $*)" >&2
		return 1
	fi
}

lab_assert_eq() {
	local actual="$1" expected="$2" msg="${3:-value}"
	if [[ "$actual" == "$expected" ]]; then
		echo "  ok: $msg = $expected"
	else
		echo "  FAIL: $msg: expected '$expected', got '$actual'" >&2
		return 1
	fi
}

# lab_assert_between VALUE LOW HIGH MSG (integers, inclusive)
lab_assert_between() {
	local v="$1" lo="$2" hi="$3" msg="${4:-value}"
	if [[ "$v" =~ ^-?[0-9]+$ ]] && ((v >= lo && v <= hi)); then
		echo "  ok: $msg = $v (in [$lo, $hi])"
	else
		echo "  FAIL: $msg = '$v', expected in [$lo, $hi]" >&2
		return 1
	fi
}

# lab_wait_until TIMEOUT_S CMD...: retry CMD every 0.2 s until it succeeds.
lab_wait_until() {
	local timeout="$1" end
	shift
	end=$((SECONDS + timeout))
	while true; do
		"$@" && return 0
		((SECONDS >= end)) && return 1
		sleep 0.2
	done
}

# ------------------------------------------------------------------ main

_lab_main() {
	set -euo pipefail
	case "${1:-}" in
	up) lab_up ;;
	down) lab_down ;;
	status) lab_status ;;
	servers) lab_start_servers ;;
	counters) lab_assert_no_csum_errors ;;
	install-deps) lab_install_deps "${@:2}" ;;
	*)
		echo "usage: $0 up|down|status|servers|counters|install-deps  (env LAB=$LAB LAB_NRS=$LAB_NRS)" >&2
		return 2
		;;
	esac
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	_lab_main "$@"
fi
