#!/usr/bin/env bash
# shellcheck disable=SC2317 # step functions are called indirectly via e2e_step
# Two workers, two queue pairs per port (af_packet PACKET_FANOUT in the role of
# RSS, no rte_flow): 1000 requests through FullNAT and 1000 through NAT all
# succeed, replies that land on the wrong worker are handed to the owner (the
# redirect counter moves), nothing is lost, and both workers create connections.

LAB="${LAB:-mc}"
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CONFIG="$(e2e_abs "${MULTICORE_CONFIG:-config/examples/lab-multicore.yaml}")"
REQUESTS="${E2E_REQUESTS:-1000}"
VIP="$LAB_VIP"
WORK="$LAB_STATE/multicore"

setup_lab() {
	lab_up && lab_start_servers && mkdir -p "$WORK"
}

start_director() {
	e2e_start_director "$CONFIG"
}

vip_answers() {
	e2e_wait lab_wait_until 10 lab_exec client curl -s -o /dev/null --max-time 1 "http://$VIP/"
}

# requests PORT NAME: REQUESTS curls (4 in parallel), all must answer with a
# server name.
requests() {
	local port="$1" name="$2" out="$WORK/$2.txt"
	seq "$REQUESTS" | lab_exec client xargs -P 4 -I{} \
		curl -s --max-time 5 -o - -w '\n' "http://$VIP:$port/" >"$out" || true
	local ok
	ok="$(grep -c '^rs[0-9]' "$out" || true)"
	echo "  $name: $ok of $REQUESTS answered; per server: $(grep '^rs' "$out" | sort | uniq -c | tr '\n' ' ')"
	lab_assert_eq "$ok" "$REQUESTS" "$name answers"
}

fullnat() { requests 80 fullnat; }
nat() { requests 8080 nat; }

worker_counters() {
	e2e_ctl status --json >"$WORK/status.json"
	python3 - "$WORK/status.json" <<'PY'
import json, sys
status = json.load(open(sys.argv[1]))
workers = status["workers"]
bad = 0
for w in workers:
    drops = dict(w["drops"])
    print(f"  worker {w['id']}: created {w['conns_created']}, redirects out {w['redirects_out']} in {w['redirects_in']}, "
          f"ring-full {drops.get('redirect_ring_full', 0)}, tx-full {drops.get('tx_full', 0)}")
    if w["conns_created"] == 0:
        print(f"  worker {w['id']} created no connection: the load was not spread"); bad = 1
    if drops.get("redirect_ring_full", 0) or drops.get("tx_full", 0):
        print("  packets were lost on a ring"); bad = 1
if sum(w["redirects_in"] for w in workers) == 0:
    print("  no reply crossed workers: the redirect path was not exercised"); bad = 1
if sum(w["redirects_out"] for w in workers) != sum(w["redirects_in"] for w in workers):
    print("  redirects sent and received differ"); bad = 1
sys.exit(bad)
PY
}

software_path_logged() {
	grep -E "port server: no rte_flow steering" "$E2E_DIRECTOR_LOG"
}

echo "multicore: lab '$LAB', $REQUESTS requests per mode"
e2e_require "lab up, real servers listening" setup_lab
e2e_require "director starts with two workers" start_director
e2e_require "VIP answers" vip_answers
e2e_check "$REQUESTS requests through FullNAT all succeed" fullnat
e2e_check "$REQUESTS requests through NAT all succeed" nat
e2e_check "both workers created connections; replies crossed workers; no ring loss" worker_counters
e2e_check "af_packet has no rte_flow: the software path was selected and logged" software_path_logged
e2e_check "no checksum / header errors in any namespace" lab_assert_no_csum_errors
e2e_finish
