#!/usr/bin/env bash
# Smoke test of the benchmark harness (bench, scripts/bench.sh): a few
# seconds of every lb-pktgen mode through lb-director on net_memif, and through
# dpdk-testpmd in its seat, at low offered rates. It checks that the harness
# still works and that what comes back is right — no invalid frame, no loss,
# connections completed — never how fast anything is.
#
# Usage: tests/e2e/bench_smoke.sh   (as root, after cargo build --release)
# Env: BENCH_SMOKE_SECONDS (2) per run, BENCH_HUGEPAGES (0: --no-huge),
#      BENCH_KEEP=1 keeps /tmp/lb-bench-smoke-<pid> (configs, logs).
# Ends with "bench_smoke: N passed, M failed"; exit 0 only if all passed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
# shellcheck source=scripts/bench.sh
source "$ROOT/scripts/bench.sh"

SECS="${BENCH_SMOKE_SECONDS:-2}"
PASSED=0
FAILED=0
SUMMARY_DONE=0
OUT=""

summary() {
	[[ $SUMMARY_DONE == 1 ]] && return 0
	SUMMARY_DONE=1
	echo
	echo "bench_smoke: $PASSED passed, $FAILED failed"
}

on_exit() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	if ((rc != 0 && FAILED == 0)); then
		FAILED=$((FAILED + 1)) # aborted outside a check
	fi
	if ((FAILED > 0)) && [[ -n "$BENCH_RUN" ]]; then
		for log in "$BENCH_RUN"/*.log "$BENCH_RUN"/pktgen.err; do
			[[ -s "$log" ]] || continue
			echo "---- last lines of $log ----" >&2
			tail -n 15 "$log" >&2
		done
	fi
	bench_cleanup
	summary
	if ((FAILED > 0)); then
		exit 1
	fi
	exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# check DESC CMD...: one counted check.
check() {
	local desc="$1"
	shift
	local rc=0
	"$@" || rc=$?
	if ((rc == 0)); then
		PASSED=$((PASSED + 1))
		echo "   PASS $desc"
	else
		FAILED=$((FAILED + 1))
		echo "   FAIL $desc" >&2
	fi
	return 0
}

# expect JSON PYTHON-EXPR: the expression over the result `r` is true.
expect() {
	python3 - "$1" "$2" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
ok = eval(sys.argv[2], {}, {"r": r})
if not ok:
    keep = {k: r.get(k) for k in ("tx", "rx", "lost", "invalid", "invalid_total", "warmup", "cps", "latency", "stale", "tx_dropped", "error")}
    print(f"      expected {sys.argv[2]}; got {json.dumps(keep)}", file=sys.stderr)
sys.exit(0 if ok else 1)
EOF
}

# run DESC FILE: the cases of FILE ("<name> <lb-pktgen options>") in one
# lb-pktgen process against the running device under test (which is stopped
# afterwards, see bench_pktgen_cases); each result is $OUT/<name>.json.
run() {
	local desc="$1" file="$2" name args json
	while read -r name args; do
		echo "$OUT/$name.json --duration $SECS --warmup-timeout 10 $args"
	done <"$file" >"$file.cases"
	echo
	echo "== $BENCH_DUT_KIND: $desc"
	sed 's/^/   lb-pktgen /' "$file"
	local rc=0
	bench_pktgen_cases "$file.cases" >"$OUT/$BENCH_DUT_KIND.tables" || rc=$?
	for json in "$OUT"/*.json; do
		[[ -f "$json" ]] || continue
		python3 -c "
import json,sys; r=json.load(open(sys.argv[1]))
print('   %-12s tx %s rx %s lost %s invalid %s conns %s timed %s' % (sys.argv[1].split('/')[-1][:-5], r['tx'], r['rx'], r['lost'], r['invalid_total'],
      (r.get('cps') or {}).get('completed'), (r.get('latency') or {}).get('samples')))" "$json"
	done
	return "$rc"
}

clean_run() { # JSON: nothing invalid, nothing lost, no error, traffic flowed
	expect "$1" 'r["error"] is None and r["invalid_total"] == 0 and r["lost"] == 0 and r["tx"] > 0 and r["rx"] >= r["tx"] and r["warmup"]["failed"] == 0'
}

for bin in lb-director lb-ctl lb-pktgen; do
	if [[ ! -x "$BENCH_BIN/$bin" ]]; then
		echo "$BENCH_BIN/$bin not built (cargo build --release)" >&2
		exit 1
	fi
done
command -v dpdk-testpmd >/dev/null || {
	echo "dpdk-testpmd not installed (package dpdk-dev)" >&2
	exit 1
}
command -v python3 >/dev/null || {
	echo "python3 not installed" >&2
	exit 1
}

bench_hugepages "${BENCH_HUGEPAGES:-0}"
bench_init smoke
OUT="$BENCH_RUN/results"
mkdir -p "$OUT"

echo "== lb-director on net_memif ($BENCH_RUN)"
check "lb-director starts on two memif ports" bench_start_director
if [[ -n "$BENCH_DUT_PID" ]]; then
	cat >"$BENCH_RUN/director.list" <<EOF
udp --mode throughput --proto udp --size 64 --flows 1024 --rate 20000
tcp --mode throughput --proto tcp --size 128 --flows 1024 --rate 20000 --replies
cps --mode cps --rate 2000 --window 256
latency --mode latency --proto udp --size 64 --flows 256 --rate 10000
EOF
	run "every mode at a low rate" "$BENCH_RUN/director.list" && true
	check "UDP 64 B at 20 kpps: all forwarded, all valid" clean_run "$OUT/udp.json"
	check "TCP with echoes at 20 kpps: both directions forwarded, all valid" clean_run "$OUT/tcp.json"
	check "TCP echoes came back" expect "$OUT/tcp.json" 'r["rx"] == 2 * r["tx"]'
	check "2000 connections/s: completed > 0, none failed, all valid" \
		expect "$OUT/cps.json" 'r["error"] is None and r["invalid_total"] == 0 and r["cps"]["completed"] > 0 and r["cps"]["failed"] == 0'
	check "latency at 10 kpps: every frame timed, all valid" \
		expect "$OUT/latency.json" 'r["error"] is None and r["invalid_total"] == 0 and r["lost"] == 0 and r["latency"]["samples"] == r["tx"] > 0 and r["latency"]["p99"] > 0'
	check "the director created the connections and dropped nothing" \
		expect "$OUT/cps.json" 'r["dut_status"]["workers"][0]["conns_created"] > 0 and r["dut_drops"] == []'
	check "lb-director survived the runs and stopped cleanly" grep -q "lb-director: stopped" "$BENCH_RUN/director.log"
fi
bench_stop_dut
mkdir -p "$OUT/director"
mv "$OUT"/*.json "$OUT/director/" 2>/dev/null || true

echo
echo "== dpdk-testpmd (io) in the director's seat"
check "testpmd starts on the same memif sockets" bench_start_testpmd
if [[ -n "$BENCH_DUT_PID" ]]; then
	cat >"$BENCH_RUN/testpmd.list" <<EOF
tpm-udp --mode throughput --proto udp --size 64 --flows 1024 --rate 20000
tpm-cps --mode cps --rate 2000 --window 256
EOF
	run "pass-through at a low rate" "$BENCH_RUN/testpmd.list" && true
	check "testpmd: UDP 64 B at 20 kpps unchanged and all back" clean_run "$OUT/tpm-udp.json"
	check "testpmd: connections complete through a pass-through" \
		expect "$OUT/tpm-cps.json" 'r["error"] is None and r["invalid_total"] == 0 and r["cps"]["completed"] > 0 and r["cps"]["failed"] == 0'
fi
bench_stop_dut

((FAILED == 0))
