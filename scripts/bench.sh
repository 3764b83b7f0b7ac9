#!/usr/bin/env bash
# The benchmark suite, with one command (as root, on a fresh Debian 12 machine):
#
#   sudo scripts/bench.sh
#
# 1. installs what it needs (scripts/setup.sh), reserves hugepages, builds
#    lb-director, lb-pktgen and lb-bench-report (release);
# 2. lb-core micro-benchmarks (criterion, bench/benches) and the memory
#    per connection at 10 million connections;
# 3. lb-pktgen through lb-director (config/examples/bench-fullnat.yaml, net_memif) and
#    through dpdk-testpmd --forward-mode=io in the director's seat (the harness
#    ceiling), alternating, BENCH_ROUNDS rounds, best round of each kept;
#    latency for both at half of lb-director's best 64-byte UDP rate;
# 4. a CPU profile of the director's worker (perf, software clock) during a
#    64-byte UDP run;
# 5. tables (Markdown) and SVG charts: $BENCH_OUT/results.md, $BENCH_SVG_DIR.
#
# Environment (defaults in brackets):
#   BENCH_OUT        results directory [target/bench-results]
#   BENCH_SVG_DIR    where the charts go [docs/bench]
#   BENCH_DURATION   seconds per pktgen measurement [3]
#   BENCH_ROUNDS     director/testpmd rounds per case [2]
#   BENCH_FLOWS      flows per throughput case [65536]
#   BENCH_HUGEPAGES  2 MiB hugepages to reserve; 0 runs everything --no-huge [512]
#   BENCH_MICRO      run the micro-benchmarks [1]
#   BENCH_PKTGEN     run the pktgen cases [1]
#   BENCH_PROFILE    profile the director with perf if available [1]
#   BENCH_QUICK      1: short micro-benchmarks (1k and 1M flows, 10k conns) [0]
#   BENCH_SMALL_TABLE  also run the 64-byte cases against a director with this
#                    connection capacity (0: don't) [131072]
#   BENCH_PRIO       none | nice: run the DUT and pktgen at nice -10 on a
#                    shared machine [none]
#   BENCH_ANCHOR     run the rte_hash ceiling for the connection table
#                    (bench/anchor/rte_hash_bulk.c, hugepages) [1]
#   BENCH_ANCHOR_HUGEPAGES  2 MiB hugepages it reserves [1536]
#   BENCH_ANCHOR_SIZES  keys per rte_hash table ["1000000 2000000 10000000"]
#   BENCH_STEER      1: also the multi-core section (redirect micro-benchmark,
#                    64-byte UDP with 1 and 2 workers; see bench_steer) [0]
#
# Sourcing this file (tests/e2e/bench_smoke.sh does) only defines the bench_*
# functions; each DPDK process gets its own --file-prefix and memif sockets
# under a per-run directory, and bench_cleanup stops whatever was started.
set -euo pipefail

BENCH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
BENCH_BIN="${BENCH_BIN:-$BENCH_ROOT/target/release}"
# Where bench_init copies the binaries from (BENCH_BIN then points at the copies).
BENCH_BIN_SRC="$BENCH_BIN"
BENCH_CONFIG="${BENCH_CONFIG:-$BENCH_ROOT/config/examples/bench-fullnat.yaml}"
BENCH_HUGEPAGES="${BENCH_HUGEPAGES:-512}"
BENCH_PRIO="${BENCH_PRIO:-none}"
# Set by bench_init.
BENCH_RUN=""
BENCH_TAG=""
BENCH_HUGE=0
BENCH_DUT_PID=""
BENCH_DUT_KIND=""
BENCH_DUT_LOG=""
BENCH_PKTGEN_PID=""
# The hugepage count before bench_hugepages raised it (restored by bench_cleanup).
BENCH_HUGEPAGES_BEFORE=""

# bench_log MSG...: a progress line on stderr.
bench_log() {
	echo "bench: $*" >&2
}

# bench_hugepages N: reserve N 2 MiB hugepages and mount hugetlbfs; sets
# BENCH_HUGE=1 on success (else the runs use --no-huge).
bench_hugepages() {
	local want="$1" have free
	BENCH_HUGE=0
	((want > 0)) || return 0
	have=$(cat /proc/sys/vm/nr_hugepages 2>/dev/null || echo 0)
	if ((have < want)); then
		echo "$want" >/proc/sys/vm/nr_hugepages 2>/dev/null || true
		BENCH_HUGEPAGES_BEFORE="$have"
	fi
	if ! mount | grep -q "on /dev/hugepages type hugetlbfs"; then
		mkdir -p /dev/hugepages
		mount -t hugetlbfs nodev /dev/hugepages 2>/dev/null || true
	fi
	free=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
	if mount | grep -q "on /dev/hugepages type hugetlbfs" && ((free >= 128)); then
		BENCH_HUGE=1
		bench_log "hugepages: $free free of $(cat /proc/sys/vm/nr_hugepages)"
	else
		bench_log "hugepages unavailable ($free free); running with --no-huge"
	fi
}

# bench_init TAG: a fresh run directory /tmp/lb-bench-TAG-<pid> for sockets,
# configs and logs, and the director's configuration in it. Call after
# bench_hugepages.
bench_init() {
	local bin
	BENCH_TAG="$1-$$"
	BENCH_RUN="/tmp/lb-bench-$BENCH_TAG"
	rm -rf "$BENCH_RUN"
	mkdir -p "$BENCH_RUN/bin"
	# Private copies of the binaries: a rebuild in the shared target directory
	# during the run changes neither what runs nor what perf resolves.
	for bin in lb-director lb-ctl lb-pktgen lb-bench-report; do
		[[ -x "$BENCH_BIN_SRC/$bin" ]] && cp "$BENCH_BIN_SRC/$bin" "$BENCH_RUN/bin/"
	done
	BENCH_BIN="$BENCH_RUN/bin"
	bench_director_config >/dev/null
}

# bench_prio: the command prefix for BENCH_PRIO.
bench_prio() {
	case "$BENCH_PRIO" in
	nice) echo "nice -n -10" ;;
	*) echo "" ;;
	esac
}

# bench_director_config: $BENCH_RUN/director.yaml, the bench configuration with
# this run's memif sockets, control socket, DPDK file prefix and memory options.
bench_director_config() {
	local out="$BENCH_RUN/director.yaml"
	# Sockets and control socket into the run directory, a fixed file prefix,
	# and the memory options.
	if ((BENCH_HUGE)); then
		sed -e "s#/tmp/lb-bench#$BENCH_RUN#g" \
			-e '/^  - --no-huge$/d' -e '/^  - -m$/{N;d}' \
			-e "s#^  - --no-pci\$#  - --no-pci\n  - --huge-unlink\n  - --file-prefix=lbb-dir-$BENCH_TAG#" \
			"$BENCH_CONFIG" >"$out"
	else
		sed -e "s#/tmp/lb-bench#$BENCH_RUN#g" \
			-e "s#^  - --no-pci\$#  - --no-pci\n  - --file-prefix=lbb-dir-$BENCH_TAG#" \
			"$BENCH_CONFIG" >"$out"
	fi
	echo "$out"
}

# bench_start_director: start lb-director on the bench config, wait for its
# control socket. Returns 1 (log printed) if it does not come up.
bench_start_director() {
	local config="$BENCH_RUN/director.yaml" i
	BENCH_DUT_LOG="$BENCH_RUN/director.log"
	BENCH_DUT_KIND=director
	# shellcheck disable=SC2046
	$(bench_prio) "$BENCH_BIN/lb-director" --config "$config" --socket "$BENCH_RUN/lb.sock" \
		</dev/null >>"$BENCH_DUT_LOG" 2>&1 &
	BENCH_DUT_PID=$!
	for ((i = 0; i < 150; i++)); do
		if ! kill -0 "$BENCH_DUT_PID" 2>/dev/null; then
			bench_log "lb-director exited early:"
			tail -20 "$BENCH_DUT_LOG" >&2
			BENCH_DUT_PID=""
			return 1
		fi
		if [[ -S "$BENCH_RUN/lb.sock" ]] && "$BENCH_BIN/lb-ctl" --socket "$BENCH_RUN/lb.sock" -L -n >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.2
	done
	bench_log "lb-director not ready after 30 s"
	tail -20 "$BENCH_DUT_LOG" >&2
	return 1
}

# bench_start_testpmd: dpdk-testpmd in the director's seat: the same two memif
# server ports, io forwarding (port 0 <-> port 1, frames untouched), one
# forwarding core (1), the main lcore on core 0.
bench_start_testpmd() {
	local mem=() i
	if ((BENCH_HUGE)); then
		mem=(--huge-unlink)
	else
		mem=(--no-huge -m 512)
	fi
	BENCH_DUT_LOG="$BENCH_RUN/testpmd.log"
	BENCH_DUT_KIND=testpmd
	# Readiness is judged on this start's lines only.
	local skip
	skip=$(wc -l <"$BENCH_DUT_LOG" 2>/dev/null || echo 0)
	# shellcheck disable=SC2046
	$(bench_prio) dpdk-testpmd -l 0,1 --main-lcore 0 --no-pci "${mem[@]}" \
		--file-prefix "lbb-tpm-$BENCH_TAG" \
		--vdev "net_memif0,role=server,socket=$BENCH_RUN/client.sock" \
		--vdev "net_memif1,role=server,socket=$BENCH_RUN/server.sock" \
		-- --forward-mode=io --nb-cores=1 --auto-start --stats-period=5 --disable-link-check \
		--rxd=1024 --txd=1024 --burst=32 --total-num-mbufs=32768 --no-mlockall \
		</dev/null >>"$BENCH_DUT_LOG" 2>&1 &
	BENCH_DUT_PID=$!
	for ((i = 0; i < 100; i++)); do
		if ! kill -0 "$BENCH_DUT_PID" 2>/dev/null; then
			bench_log "dpdk-testpmd exited early:"
			tail -20 "$BENCH_DUT_LOG" >&2
			BENCH_DUT_PID=""
			return 1
		fi
		# Printed once the ports are started and forwarding begins.
		tail -n +$((skip + 1)) "$BENCH_DUT_LOG" 2>/dev/null | grep -q "io packet forwarding - ports=" && return 0
		sleep 0.2
	done
	bench_log "dpdk-testpmd not ready after 20 s"
	tail -20 "$BENCH_DUT_LOG" >&2
	return 1
}

# bench_stop_pid PID: SIGTERM, up to 10 s, then SIGKILL. Never fails.
bench_stop_pid() {
	local pid="$1" i
	[[ -z "$pid" ]] && return 0
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	return 0
}

# bench_stop_dut: stop the device under test.
bench_stop_dut() {
	bench_stop_pid "$BENCH_DUT_PID"
	BENCH_DUT_PID=""
}

# bench_pktgen_cases FILE [ARGS...]: the lb-pktgen runs of FILE, one per line
# ("<json path> <lb-pktgen options>"), in one lb-pktgen process against the
# running device under test, with ARGS added to every run. Stops the device
# under test before lb-pktgen lets go of the links: DPDK 22.11's memif unmaps a
# peer's shared memory when the peer disconnects, under the feet of a process
# still polling it (lb-director or testpmd then dies of SIGSEGV in
# librte_net_memif), so the side that polls must stop first. Tables go to
# stdout, errors to $BENCH_RUN/pktgen.err. Returns lb-pktgen's status.
bench_pktgen_cases() {
	local cases="$1" done="$BENCH_RUN/cases.done" dut=director rc=0 mem=() extra=()
	shift
	[[ "$BENCH_DUT_KIND" == testpmd ]] && dut=testpmd
	((BENCH_HUGE)) && mem=(--huge --eal=--huge-unlink)
	[[ "$dut" == director ]] && extra=(--dut-socket "$BENCH_RUN/lb.sock")
	rm -f "$done"
	# shellcheck disable=SC2046
	$(bench_prio) "$BENCH_BIN/lb-pktgen" --config "$BENCH_RUN/director.yaml" \
		--client-socket "$BENCH_RUN/client.sock" --server-socket "$BENCH_RUN/server.sock" \
		--dut "$dut" --core 0 --file-prefix "lbb-pg-$BENCH_TAG" "${mem[@]}" "${extra[@]}" \
		--cases "$cases" --done-file "$done" --hold 30 "$@" \
		</dev/null 2>>"$BENCH_RUN/pktgen.err" &
	BENCH_PKTGEN_PID=$!
	while kill -0 "$BENCH_PKTGEN_PID" 2>/dev/null && [[ ! -f "$done" ]]; do
		sleep 0.2
	done
	bench_stop_dut
	wait "$BENCH_PKTGEN_PID" || rc=$?
	BENCH_PKTGEN_PID=""
	return "$rc"
}

# bench_pktgen JSON ARGS...: one lb-pktgen run (see bench_pktgen_cases; the
# device under test is stopped afterwards).
bench_pktgen() {
	local json="$1"
	shift
	echo "$json $*" >"$BENCH_RUN/one.cases"
	bench_pktgen_cases "$BENCH_RUN/one.cases"
}

# bench_cleanup: stop everything this shell started; remove the run directory
# unless BENCH_KEEP=1.
bench_cleanup() {
	bench_stop_pid "$BENCH_PKTGEN_PID"
	BENCH_PKTGEN_PID=""
	bench_stop_dut
	if [[ -n "${BENCH_OUT:-}" && -d "${BENCH_OUT:-}" && -n "$BENCH_RUN" ]]; then
		cp "$BENCH_RUN"/*.log "$BENCH_RUN"/pktgen.err "$BENCH_OUT/" 2>/dev/null || true
	fi
	if [[ -n "$BENCH_RUN" && "${BENCH_KEEP:-0}" != 1 ]]; then
		rm -rf "$BENCH_RUN"
	fi
	# Give back the hugepages this run reserved, if nothing holds them.
	if [[ -n "$BENCH_HUGEPAGES_BEFORE" ]] &&
		[[ "$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)" == "$(awk '/HugePages_Total/ {print $2}' /proc/meminfo)" ]]; then
		echo "$BENCH_HUGEPAGES_BEFORE" >/proc/sys/vm/nr_hugepages 2>/dev/null || true
		BENCH_HUGEPAGES_BEFORE=""
	fi
	# DPDK's runtime directories of this run's processes (their file prefixes).
	if [[ -n "$BENCH_TAG" ]]; then
		rm -rf /var/run/dpdk/lbb-dir-"$BENCH_TAG" /var/run/dpdk/lbb-tpm-"$BENCH_TAG" \
			/var/run/dpdk/lbb-pg-"$BENCH_TAG" 2>/dev/null || true
	fi
}

# ---------------------------------------------------------------- the suite

bench_micro() {
	local quick="${BENCH_QUICK:-0}" crit=(--warm-up-time 0.5 --measurement-time 2)
	local env=()
	if [[ "$quick" == 1 ]]; then
		env=("LB_BENCH_FLOWS=1000,1000000" "LB_BENCH_CONNS=10000,1000000" "LB_BENCH_MEM_CONNS=1000000")
		crit=(--warm-up-time 0.3 --measurement-time 1)
	fi
	bench_log "micro-benchmarks: datapath"
	env "${env[@]}" cargo bench -q -p bench --bench datapath -- "${crit[@]}"
	bench_log "micro-benchmarks: schedulers"
	env "${env[@]}" cargo bench -q -p bench --no-default-features --bench sched -- --warm-up-time 0.3 --measurement-time 1
	bench_log "micro-benchmarks: connection table"
	env "${env[@]}" cargo bench -q -p bench --bench conn_table -- "${crit[@]}"
	bench_log "memory per connection"
	env "${env[@]}" LB_BENCH_RESULTS="$BENCH_OUT" cargo bench -q -p bench --no-default-features --bench conn_memory
}

# The connection table's ceiling: DPDK's rte_hash_lookup_bulk_data in bursts of
# 32 with a 64-byte record touched per hit, and one lookup at a time, at the
# sizes of BENCH_ANCHOR_SIZES (results in $BENCH_OUT/anchor.txt, one line per
# size and mode). Compare with the conn_table micro-benchmark of the same run.
bench_anchor() {
	local bin="$BENCH_ROOT/target/anchor/rte_hash_bulk"
	mkdir -p "$(dirname "$bin")"
	# shellcheck disable=SC2046 # pkg-config prints several words on purpose
	cc -O2 -o "$bin" bench/anchor/rte_hash_bulk.c $(pkg-config --cflags --libs libdpdk)
	# 10 million keys, their records and rte_hash's buckets take about 2 GiB.
	bench_hugepages "${BENCH_ANCHOR_HUGEPAGES:-1536}"
	local eal=(-l 0 --no-pci --log-level=error --file-prefix "lbb-anchor-$$")
	((BENCH_HUGE == 1)) || eal+=(--no-huge -m 4096)
	bench_log "rte_hash ceiling (hugepages: $BENCH_HUGE)"
	# shellcheck disable=SC2086 # the sizes are a word list
	"$bin" "${eal[@]}" -- ${BENCH_ANCHOR_SIZES:-1000000 2000000 10000000} | tee "$BENCH_OUT/anchor.txt"
}

# The pktgen cases: label and lb-pktgen arguments.
bench_cases() {
	local d="$BENCH_DURATION" f="$BENCH_FLOWS"
	cat <<EOF
udp-64 --mode throughput --proto udp --size 64 --flows $f --duration $d
tcp-64 --mode throughput --proto tcp --size 64 --flows $f --duration $d
tcp-64-echo --mode throughput --proto tcp --size 64 --flows $f --duration $d --replies
udp-1518 --mode throughput --proto udp --size 1518 --flows $f --duration $d
cps --mode cps --window 4096 --duration $d
EOF
}

# The same 64-byte cases against a director whose connection table holds
# BENCH_SMALL_TABLE connections instead of the configuration's 2 million: the
# index is sized for the capacity, so its size (not the number of live flows)
# sets the cost of a lookup (labels end in -small-table; testpmd runs them too
# so that they have a ceiling).
bench_small_cases() {
	bench_cases | grep -E '^(udp|tcp)-64 ' | sed 's/^\([a-z0-9-]*\) /\1-small-table /'
}

bench_round() {
	local round="$1" kind label args rc list
	for kind in director director-small testpmd; do
		list=bench_cases
		case $kind in
		director) bench_start_director || continue ;;
		director-small)
			[[ "${BENCH_SMALL_TABLE:-131072}" == 0 ]] && continue
			sed -i "s/^  per_worker: .*/  per_worker: ${BENCH_SMALL_TABLE:-131072}/" "$BENCH_RUN/director.yaml"
			bench_start_director || continue
			list=bench_small_cases
			;;
		testpmd) bench_start_testpmd || continue ;;
		esac
		bench_log "round $round: $kind: $($list | cut -d' ' -f1 | tr '\n' ' ')"
		{
			while read -r label args; do
				echo "$BENCH_OUT/pktgen/${kind%-small}-$label.r$round.json --label $label $args"
			done < <($list)
			if [[ $kind == testpmd && "${BENCH_SMALL_TABLE:-131072}" != 0 ]]; then
				while read -r label args; do
					echo "$BENCH_OUT/pktgen/$kind-$label.r$round.json --label $label $args"
				done < <(bench_small_cases)
			fi
		} >"$BENCH_RUN/round.cases"
		[[ $kind == director-small ]] && bench_director_config >/dev/null
		rc=0
		bench_pktgen_cases "$BENCH_RUN/round.cases" >>"$BENCH_OUT/pktgen.log" || rc=$?
		((rc == 0)) || bench_log "  (lb-pktgen status $rc; see $BENCH_OUT/pktgen.log and pktgen.err)"
	done
}

bench_latency() {
	local round="$1" rate="$2" kind rc
	for kind in director testpmd; do
		if [[ $kind == director ]]; then
			bench_start_director || continue
		else
			bench_start_testpmd || continue
		fi
		bench_log "round $round: $kind latency at $rate pps"
		rc=0
		bench_pktgen "$BENCH_OUT/pktgen/$kind-latency-udp-64.r$round.json" --label latency-udp-64 \
			--mode latency --proto udp --size 64 --flows "$BENCH_FLOWS" --duration "$BENCH_DURATION" \
			--rate "$rate" >>"$BENCH_OUT/pktgen.log" || rc=$?
		((rc == 0)) || bench_log "  (lb-pktgen status $rc)"
	done
}

bench_profile() {
	command -v perf >/dev/null 2>&1 || {
		bench_log "perf not installed; no profile"
		return 0
	}
	bench_start_director || return 0
	bench_log "profiling lb-director (perf record -e cpu-clock) during a 64-byte UDP run"
	perf record -q -e cpu-clock -F 1999 -p "$BENCH_DUT_PID" -o "$BENCH_RUN/perf.data" -- sleep $((BENCH_DURATION + 3)) \
		>/dev/null 2>&1 &
	local perf_pid=$!
	bench_pktgen "$BENCH_OUT/profile-run.json" --label profile --mode throughput --proto udp --size 64 \
		--flows "$BENCH_FLOWS" --duration "$BENCH_DURATION" >>"$BENCH_OUT/pktgen.log" || true
	wait "$perf_pid" || true
	perf report -i "$BENCH_RUN/perf.data" --stdio --no-children -g none --sort dso,symbol 2>/dev/null |
		grep -v '^#' | grep '%' | head -40 >"$BENCH_OUT/profile.txt" || true
	bench_log "profile: $BENCH_OUT/profile.txt"
}

# The multi-core section (BENCH_STEER=1, off by default; docs/benchmarks.md,
# "Multi-core: workers and steering"): the redirect micro-benchmark (a reply
# processed by its owner vs handed over, and the SPSC ring hop; the ring part
# runs its own EAL --no-huge), then 64-byte UDP through lb-director with
# 1 and 2 workers (BENCH_STEER_WORKERS, "1 2"), lb-pktgen with as many memif
# queue pairs per link as the director has workers (--queues; it spreads the
# flows over them by hash, as RSS would). On a 2-vCPU box the second worker
# shares a CPU with the generator: see the doc before reading the figures.
# Results: $BENCH_OUT/steer/*.json (with the director's per-worker counters),
# $BENCH_OUT/steer.log.
# BENCH_STEER_MICRO=0 / BENCH_STEER_PKTGEN=0 skip either half.
bench_steer() {
	local n cores json
	rm -rf "$BENCH_OUT/steer"
	if [[ "${BENCH_STEER_MICRO:-1}" == 1 ]]; then
		bench_log "micro-benchmark: redirect"
		cargo bench -q -p bench --bench redirect -- --warm-up-time 0.5 --measurement-time 2
	fi
	[[ "${BENCH_STEER_PKTGEN:-1}" == 1 ]] || return 0
	# Reuse the pktgen part's run directory and hugepages if it ran.
	if [[ -z "$BENCH_RUN" ]]; then
		bench_hugepages "$BENCH_HUGEPAGES"
		bench_init steer
	fi
	mkdir -p "$BENCH_OUT/steer"
	: >"$BENCH_OUT/steer.log"
	for n in ${BENCH_STEER_WORKERS:-1 2}; do
		cores="1"
		((n >= 2)) && cores="1, 0"
		bench_director_config >/dev/null
		sed -i -e "s/^  count: .*/  count: $n/" -e "s/^  cores: .*/  cores: [$cores]/" "$BENCH_RUN/director.yaml"
		bench_start_director || continue
		json="$BENCH_OUT/steer/director-w$n-udp-64"
		bench_log "udp-64 and udp-64 echo, $n worker(s)"
		echo "== $n worker(s), load avg $(cut -d' ' -f1 /proc/loadavg)" >>"$BENCH_OUT/steer.log"
		# One memif queue pair per worker; lb-pktgen spreads the flows over them.
		# With --replies the servers' answers are spread by their own tuple, so
		# (without rte_flow) about (n-1)/n of them reach a worker that redirects.
		{
			echo "$json.json --mode throughput --proto udp --size 64 --flows $BENCH_FLOWS --duration $BENCH_DURATION"
			echo "$json-echo.json --mode throughput --proto udp --size 64 --flows $BENCH_FLOWS --duration $BENCH_DURATION --replies"
		} >"$BENCH_RUN/steer.cases"
		bench_pktgen_cases "$BENCH_RUN/steer.cases" --queues "$n" >>"$BENCH_OUT/steer.log" || true
	done
	cat "$BENCH_OUT/steer.log"
}

bench_main() {
	cd "$BENCH_ROOT"
	# shellcheck source=scripts/setup.sh
	source scripts/setup.sh
	setup_all
	BENCH_OUT="$(mkdir -p "${BENCH_OUT:-target/bench-results}" && cd "${BENCH_OUT:-target/bench-results}" && pwd -P)"
	BENCH_SVG_DIR="${BENCH_SVG_DIR:-docs/bench}"
	BENCH_DURATION="${BENCH_DURATION:-3}"
	BENCH_ROUNDS="${BENCH_ROUNDS:-2}"
	BENCH_FLOWS="${BENCH_FLOWS:-65536}"
	local start=$SECONDS machine
	machine="$(nproc) vCPU $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), shared"
	trap bench_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM

	bench_log "building (release)"
	cargo build --release -q -p bench -p lb-dataplane -p lb-ctl
	if [[ "${BENCH_MICRO:-1}" == 1 ]]; then
		rm -rf target/criterion
		bench_micro
	fi
	[[ "${BENCH_ANCHOR:-1}" == 1 ]] && bench_anchor
	if [[ "${BENCH_PKTGEN:-1}" == 1 ]]; then
		bench_hugepages "$BENCH_HUGEPAGES"
		bench_init suite
		rm -rf "$BENCH_OUT/pktgen"
		mkdir -p "$BENCH_OUT/pktgen"
		: >"$BENCH_OUT/pktgen.log"
		local r rate
		for ((r = 1; r <= BENCH_ROUNDS; r++)); do
			bench_round "$r"
		done
		rate="$("$BENCH_BIN/lb-bench-report" --runs "$BENCH_OUT/pktgen" --best-rate director-udp-64 --fraction 0.5)" ||
			rate=100000
		for ((r = 1; r <= BENCH_ROUNDS; r++)); do
			bench_latency "$r" "$rate"
		done
		[[ "${BENCH_PROFILE:-1}" == 1 ]] && bench_profile
	fi
	[[ "${BENCH_STEER:-0}" == 1 ]] && bench_steer
	local report=(--machine "$machine" --svg-dir "$BENCH_SVG_DIR" --markdown "$BENCH_OUT/results.md")
	[[ -d "$BENCH_OUT/pktgen" ]] && report+=(--runs "$BENCH_OUT/pktgen")
	[[ -d target/criterion ]] && report+=(--criterion target/criterion)
	[[ -f "$BENCH_OUT/conn_memory.json" ]] && report+=(--memory "$BENCH_OUT/conn_memory.json")
	echo
	"$BENCH_BIN/lb-bench-report" "${report[@]}"
	[[ -f "$BENCH_OUT/profile.txt" ]] && {
		echo "### lb-director worker profile (perf, cpu-clock), 64-byte UDP"
		head -25 "$BENCH_OUT/profile.txt"
	}
	bench_log "done in $((SECONDS - start)) s; results in $BENCH_OUT, charts in $BENCH_SVG_DIR"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	bench_main "$@"
fi
