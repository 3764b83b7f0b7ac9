#!/usr/bin/env bash
# Lab topology for the director (see docs / reference.md §7-8).
#
# Source it (`source lab/lab.sh`) to get the lab_* functions, or run it:
#   lab/lab.sh up | down | status | servers | counters | install-deps
#              | rs-mode nat|fullnat|dr|tun [GUE_PORT] | nginx
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
#   LAB_ROUTER=1 also build ${LAB}-rt, a kernel router that gives DR and TUN
#                replies a way back to the client that bypasses the director:
#
#   ${LAB}-client  cli1 10.0.3.2/24 (a second link; rp_filter off)
#        |  veth cli1 <-> rt-cli
#   ${LAB}-rt      rt-cli 10.0.3.1/24, rt-sw 10.0.2.254/24 (on the switch),
#                  forwarding on, 10.0.1.0/24 via 10.0.3.2, rp_filter off
#
#   The client still reaches the VIP through the director (cli0, default
#   route); real servers put into DR or TUN mode by `lab_rs_mode` answer from
#   the VIP via 10.0.2.254, so the director sees only client -> server packets.
#   `lab_rs_mode nat|fullnat` puts their default route back on the director.
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
	LAB_ROUTER_IP=10.0.2.254
	LAB_CLIENT_IP2=10.0.3.2
}
LAB_ROUTER="${LAB_ROUTER:-0}"

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
		"$LAB-client" | "$LAB-dir" | "$LAB-sw" | "$LAB-rt") printf '%s\n' "$name" ;;
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
	[[ "$LAB_ROUTER" == 1 ]] && printf '%s\n' rt
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
	if [[ "$LAB_ROUTER" == 1 ]]; then
		lab_router_up || return 1
	fi
	lab_log "lab '$LAB' is up (state in $LAB_STATE)"
}

# lab_router_up: the return path for DR and TUN (see LAB_ROUTER above).
lab_router_up() {
	local cli rt sw
	cli="$(lab_ns client)"
	rt="$(lab_ns rt)"
	sw="$(lab_ns sw)"
	_lab_ns_init "$rt" 1 || return 1
	_lab_veth "$cli" cli1 "$rt" rt-cli || return 1
	_lab_veth "$rt" rt-sw "$sw" sw-rt || return 1
	ip -n "$sw" link set sw-rt master br0 || return 1
	_lab_no_ipv6 "$sw" sw-rt
	[[ "$LAB_ENDPOINT_IPV6" == 1 ]] || _lab_no_ipv6 "$cli" cli1
	_lab_offloads_off "$cli" cli1
	_lab_offloads_off "$rt" rt-cli
	_lab_offloads_off "$rt" rt-sw
	_lab_offloads_off "$sw" sw-rt
	ip netns exec "$rt" sysctl -qw net.ipv4.ip_forward=1 || return 1
	local ns ifc
	for ns in "$rt" "$cli"; do
		for ifc in all default; do
			ip netns exec "$ns" sysctl -qw "net.ipv4.conf.$ifc.rp_filter=0" || return 1
		done
	done
	ip -n "$cli" addr add "$LAB_CLIENT_IP2/24" dev cli1 || return 1
	ip -n "$cli" link set cli1 up || return 1
	ip netns exec "$cli" sysctl -qw net.ipv4.conf.cli1.rp_filter=0 || return 1
	ip netns exec "$cli" sysctl -qw net.ipv4.conf.cli0.rp_filter=0 || return 1
	ip -n "$rt" addr add 10.0.3.1/24 dev rt-cli || return 1
	ip -n "$rt" addr add "$LAB_ROUTER_IP/24" dev rt-sw || return 1
	ip -n "$rt" link set rt-cli up || return 1
	ip -n "$rt" link set rt-sw up || return 1
	ip -n "$sw" link set sw-rt up || return 1
	ip netns exec "$rt" sysctl -qw net.ipv4.conf.rt-cli.rp_filter=0 || return 1
	ip netns exec "$rt" sysctl -qw net.ipv4.conf.rt-sw.rp_filter=0 || return 1
	ip -n "$rt" route add 10.0.1.0/24 via "$LAB_CLIENT_IP2" dev rt-cli || return 1
	lab_log "router $rt: 10.0.2.254 <-> 10.0.3.1, 10.0.1.0/24 via the client's cli1"
}

# lab_tap_config CONFIG OUT: a copy of CONFIG whose ports are net_tap devices
# (dtapc, dtaps) instead of af_packet on dcli/dsrv. af_packet's fanout socket
# (DPDK sets PACKET_FANOUT_FLAG_DEFRAG) reassembles IP fragments before the
# director sees them, and truncates the result to framesz: tests of the
# fragment path use TAP ports, bridged to the veths by lab_tap_attach.
lab_tap_config() {
	sed -e 's/net_af_packet0,iface=dcli[^ ]*/net_tap0,iface=dtapc/' \
		-e 's/net_af_packet1,iface=dsrv[^ ]*/net_tap1,iface=dtaps/' \
		-e 's/device: net_af_packet0/device: net_tap0/' \
		-e 's/device: net_af_packet1/device: net_tap1/' "$1" >"$2"
}

# lab_tap_attach: once a director with lab_tap_config ports runs, bridge its
# TAP interfaces to the veths (br-cli: dcli + dtapc, br-srv: dsrv + dtaps).
lab_tap_attach() {
	local dir i pair br veth tap
	dir="$(lab_ns dir)"
	for ((i = 0; i < 50; i++)); do
		ip -n "$dir" link show dtapc >/dev/null 2>&1 && ip -n "$dir" link show dtaps >/dev/null 2>&1 && break
		sleep 0.1
	done
	for pair in br-cli:dcli:dtapc br-srv:dsrv:dtaps; do
		IFS=: read -r br veth tap <<<"$pair"
		ip -n "$dir" link show "$br" >/dev/null 2>&1 ||
			ip -n "$dir" link add "$br" type bridge stp_state 0 forward_delay 0 || return 1
		_lab_offloads_off "$dir" "$tap"
		# net_tap gives the kernel side the port's own MAC; a bridge delivers
		# frames for a port's MAC to itself, so the kernel side takes another.
		ip -n "$dir" link set "$tap" address "02:00:00:00:fe:$([[ $tap == dtapc ]] && echo 01 || echo 02)" || return 1
		ip -n "$dir" link set "$veth" master "$br" || return 1
		ip -n "$dir" link set "$tap" master "$br" || return 1
		ip -n "$dir" link set "$tap" up || return 1
		ip -n "$dir" link set "$br" up || return 1
	done
}

# lab_tap_detach: remove the bridges (the TAPs go with their director).
lab_tap_detach() {
	local dir br
	dir="$(lab_ns dir)"
	for br in br-cli br-srv; do
		ip -n "$dir" link del "$br" 2>/dev/null || true
	done
	return 0
}

# _lab_kill_pidfile FILE: stop the process whose pid FILE holds, if any.
_lab_kill_pidfile() {
	local pid
	[[ -f "$1" ]] || return 0
	pid="$(cat "$1" 2>/dev/null || true)"
	rm -f "$1"
	[[ -n "$pid" ]] && kill "$pid" 2>/dev/null || true
	return 0
}

# lab_rs_mode MODE [GUE_PORT]: configure every real server for a forwarding
# mode, the standard way (reference section 8):
#   nat, fullnat  default route via the director (10.0.2.1); nothing else
#   dr            VIP/32 on lo, arp_ignore=1, arp_announce=2, rp_filter=0,
#                 default route via the router (needs LAB_ROUTER=1)
#   tun           as dr, plus the tunnel endpoint: this kernel has no
#                 CONFIG_NET_IPIP / CONFIG_NET_FOU, so lab/tun_decap.py stands
#                 in for tunl0 (IPIP) and `ip fou add port GUE_PORT gue` (GUE,
#                 when GUE_PORT is given), receiving the inner packets on tun0
lab_rs_mode() {
	local mode="$1" gue_port="${2:-0}" rs ns d ifc i
	for rs in $(lab_rs_list); do
		ns="$(lab_ns "$rs")"
		d="$(lab_rs_dir "$rs")"
		_lab_kill_pidfile "$d/decap.pid"
		ip -n "$ns" addr del "$LAB_VIP/32" dev lo 2>/dev/null || true
		ip -n "$ns" route replace default via "$LAB_DIR_SERVER_IP" dev eth0 || return 1
		case "$mode" in
		nat | fullnat) continue ;;
		dr | tun) ;;
		*)
			lab_log "lab_rs_mode: unknown mode '$mode'"
			return 1
			;;
		esac
		ip -n "$ns" addr add "$LAB_VIP/32" dev lo || return 1
		for ifc in all eth0; do
			ip netns exec "$ns" sysctl -qw "net.ipv4.conf.$ifc.arp_ignore=1" || return 1
			ip netns exec "$ns" sysctl -qw "net.ipv4.conf.$ifc.arp_announce=2" || return 1
		done
		for ifc in all default eth0 lo; do
			ip netns exec "$ns" sysctl -qw "net.ipv4.conf.$ifc.rp_filter=0" || return 1
		done
		ip -n "$ns" route replace default via "$LAB_ROUTER_IP" dev eth0 || return 1
		if [[ "$mode" == tun ]]; then
			rm -f "$d/decap.ready"
			ip netns exec "$ns" python3 "$LAB_DIR/tun_decap.py" --gue-port "$gue_port" \
				--ready "$d/decap.ready" </dev/null >"$d/decap.out" 2>&1 &
			echo "$!" >"$d/decap.pid"
			for ((i = 0; i < 50; i++)); do
				[[ -f "$d/decap.ready" ]] && break
				sleep 0.1
			done
			if [[ ! -f "$d/decap.ready" ]]; then
				lab_log "$rs: tunnel decapsulator did not start"
				cat "$d/decap.out" >&2 || true
				return 1
			fi
		fi
	done
	lab_log "real servers in $mode mode${gue_port:+ (gue port $gue_port)}"
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

# lab_start_nginx: nginx (nginx-light) in every rs namespace, with its own
# config, pid, logs and temp dirs under $LAB_STATE/rsK/nginx, listening with
# the PROXY protocol on 8080 and 8081:
#   GET /        "rsK $proxy_protocol_addr $proxy_protocol_port $remote_addr"
#   GET /file/X  the rs data dir
#   POST /upload proxied to rs_server.py (which answers the body's sha256)
# Its access log has "$proxy_protocol_addr $proxy_protocol_port $remote_addr
# $server_port $request" per request.
lab_start_nginx() {
	local rs ns d i
	for rs in $(lab_rs_list); do
		ns="$(lab_ns "$rs")"
		d="$(lab_rs_dir "$rs")/nginx"
		mkdir -p "$d/tmp" || return 1
		: >"$d/access.log"
		cat >"$d/nginx.conf" <<NGINX
user root;
worker_processes 1;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 256; }
http {
	client_body_temp_path $d/tmp/body;
	proxy_temp_path $d/tmp/proxy;
	fastcgi_temp_path $d/tmp/fastcgi;
	uwsgi_temp_path $d/tmp/uwsgi;
	scgi_temp_path $d/tmp/scgi;
	log_format pp '\$proxy_protocol_addr \$proxy_protocol_port \$remote_addr \$server_port \$request';
	access_log $d/access.log pp;
	server {
		listen 8080 proxy_protocol;
		listen 8081 proxy_protocol;
		location = / { return 200 "$rs \$proxy_protocol_addr \$proxy_protocol_port \$remote_addr\n"; }
		location /file/ { alias $(lab_rs_data "$rs")/; }
		location /upload {
			client_max_body_size 64m;
			proxy_request_buffering off;
			proxy_http_version 1.1;
			proxy_pass http://127.0.0.1:$LAB_HTTP_PORT;
		}
	}
}
NGINX
		ip netns exec "$ns" nginx -e "$d/error.log" -p "$d" -c "$d/nginx.conf" \
			</dev/null >"$d/out" 2>&1 &
	done
	for rs in $(lab_rs_list); do
		ns="$(lab_ns "$rs")"
		for ((i = 0; i < 100; i++)); do
			_lab_listening "$ns" tcp 8080 && _lab_listening "$ns" tcp 8081 && break
			sleep 0.1
		done
		if ((i >= 100)); then
			lab_log "$rs: nginx not listening"
			cat "$(lab_rs_dir "$rs")/nginx/out" "$(lab_rs_dir "$rs")/nginx/error.log" >&2 || true
			return 1
		fi
	done
	lab_log "nginx listening with proxy_protocol on :8080 and :8081"
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
	rs-mode) lab_rs_mode "${@:2}" ;;
	nginx) lab_start_nginx ;;
	install-deps) lab_install_deps "${@:2}" ;;
	*)
		echo "usage: $0 up|down|status|servers|counters|install-deps|rs-mode MODE [GUE_PORT]|nginx  (env LAB=$LAB LAB_NRS=$LAB_NRS LAB_ROUTER=$LAB_ROUTER)" >&2
		return 2
		;;
	esac
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	_lab_main "$@"
fi
