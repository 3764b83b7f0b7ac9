#!/usr/bin/env bash
# shellcheck disable=SC2317 # step functions are called indirectly via e2e_step
# Configuration reloads under traffic: `lb-ctl reload` (and SIGHUP) applies a
# changed YAML file atomically -- new weights and scheduler, a new service --
# without a failed request, counters carry over, and the file replaces runtime
# edits; an invalid file, or one changing restart-only settings, is refused whole
# with one line naming the field and nothing changes.
#
# Usage: tests/e2e/control_reload.sh   (as root; env: see tests/e2e/lib.sh; the
#   lab prefix defaults to LAB=ctl)
# Ends with "control_reload: N passed, M failed".

LAB="${LAB:-ctl}"
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

BASE_CONFIG="$(e2e_abs "${CONTROL_CONFIG:-config/examples/lab-control.yaml}")"
VIP="$LAB_VIP"
WORK="$LAB_STATE/control_reload"
FILE="$WORK/director.yaml"
TRAFFIC_PID=""

# ---------------------------------------------------------------- helpers

# write_config SERVICES_YAML: the base configuration with its services replaced.
write_config() {
	{
		sed '/^services:/,$d' "$BASE_CONFIG"
		echo "services:"
		cat
	} >"$FILE.tmp" && mv "$FILE.tmp" "$FILE"
}

http() { lab_exec client curl -s --max-time 3 "http://$VIP:$1/" | head -n 1; }

generation() { e2e_ctl status | awk 'NR == 1 { print $3 }'; }

tcp80_conns() {
	e2e_ctl -L -n --stats --exact -t "$VIP:80" | awk -v s="TCP  $VIP:80" 'index($0, s) == 1 { print $3 }'
}

# ---------------------------------------------------------------- steps

setup_lab() {
	lab_up || return 1
	lab_start_servers || return 1
	mkdir -p "$WORK"
	rm -f "$WORK/stop"
	write_config <<'YAML'
  - address: 10.0.1.100
    port: 80
    protocol: tcp
    scheduler: rr
    forward: fullnat
    real_servers:
      - address: 10.0.2.11
      - address: 10.0.2.12
      - address: 10.0.2.13
YAML
}

start_director() {
	e2e_start_director "$FILE"
}

_vip_ok() { [[ "$(http 80)" == rs* ]]; }
vip_answers() { lab_wait_until 15 _vip_ok; }

start_traffic() {
	cat >"$WORK/traffic.py" <<'PY'
import http.client, os, sys
vip, stop_file = sys.argv[1], sys.argv[2]
ok = failures = 0
errors = []
while not os.path.exists(stop_file):
    try:
        c = http.client.HTTPConnection(vip, 80, timeout=5)
        c.request("GET", "/")
        r = c.getresponse()
        body = r.read().decode(errors="replace").strip()
        c.close()
        if r.status == 200 and body.startswith("rs"):
            ok += 1
            continue
        failures += 1
        errors.append(f"status {r.status} body {body!r}")
    except Exception as e:  # noqa: BLE001
        failures += 1
        errors.append(f"{type(e).__name__}: {e}")
print("requests", ok, "failures", failures)
for e in errors[:20]:
    print("error", e)
PY
	lab_exec client python3 "$WORK/traffic.py" "$VIP" "$WORK/stop" >"$WORK/traffic.out" 2>&1 &
	TRAFFIC_PID=$!
	sleep 2
	kill -0 "$TRAFFIC_PID"
}

reload_applies_the_file() {
	local before gen out conns_before conns_after
	# A runtime edit, which the reload will replace with the file.
	e2e_ctl -a -t "$VIP:80" -r 10.0.2.60:80 -F -w 0 || return 1
	e2e_ctl -L -n | grep -q "10.0.2.60:80" || return 1
	write_config <<'YAML'
  - address: 10.0.1.100
    port: 80
    protocol: tcp
    scheduler: wrr
    forward: fullnat
    real_servers:
      - address: 10.0.2.11
        weight: 3
      - address: 10.0.2.12
        weight: 2
      - address: 10.0.2.13
        weight: 0
  - address: 10.0.1.100
    port: 8080
    protocol: tcp
    scheduler: rr
    forward: nat
    real_servers:
      - { address: 10.0.2.11, port: 80 }
      - { address: 10.0.2.12, port: 80, weight: 4 }
YAML
	before="$(generation)"
	conns_before="$(tcp80_conns)"
	out="$(e2e_ctl reload)" || return 1
	echo "  $out"
	gen="$(generation)"
	lab_assert_eq "$out" "configuration generation $gen in force" "lb-ctl reload" || return 1
	lab_assert_eq "$gen" "$((before + 1))" "generation" || return 1
	out="$(e2e_ctl -L -n)"
	printf '%s\n' "$out" | sed 's/^/    /'
	grep -qx "TCP  $VIP:80 wrr" <<<"$out" || return 1
	grep -qE "^  -> 10\.0\.2\.11:80 +FullNat +3 " <<<"$out" || return 1
	grep -qE "^  -> 10\.0\.2\.12:80 +FullNat +2 " <<<"$out" || return 1
	grep -qE "^  -> 10\.0\.2\.13:80 +FullNat +0 " <<<"$out" || return 1
	grep -qx "TCP  $VIP:8080 rr" <<<"$out" || return 1
	grep -qE "^  -> 10\.0\.2\.12:80 +Masq +4 " <<<"$out" || return 1
	if grep -q "10.0.2.60" <<<"$out"; then
		echo "  FAIL: the runtime edit survived the reload" >&2
		return 1
	fi
	[[ "$(http 8080)" == rs[12] ]] || return 1
	conns_after="$(tcp80_conns)"
	lab_assert_between "$conns_after" "$conns_before" 1000000000 "TCP 80 connections counted across the reload"
}

invalid_files_change_nothing() {
	local good gen out rc
	good="$(e2e_ctl -S -n)"
	gen="$(generation)"
	cp "$FILE" "$WORK/good.yaml"
	for case in weight scheduler restart yaml; do
		cp "$WORK/good.yaml" "$FILE"
		case "$case" in
		weight) sed -i 's/weight: 4 }/weight: 70000 }/' "$FILE" ;;
		scheduler) sed -i 's/scheduler: wrr/scheduler: fastest/' "$FILE" ;;
		restart) sed -i 's/^  count: 1$/  count: 2/' "$FILE" ;;
		yaml) echo "  - address: [" >>"$FILE" ;;
		esac
		rc=0
		out="$(e2e_ctl reload 2>&1)" || rc=$?
		echo "  $case: exit $rc: $out"
		((rc != 0)) || return 1
		[[ "$(wc -l <<<"$out")" == 1 ]] || return 1
		case "$case" in
		weight) [[ "$out" == *"services[1].real_servers[1].weight: 70000 is above 65535" ]] || return 1 ;;
		scheduler) [[ "$out" == *"services[0].scheduler: unknown scheduler 'fastest'"* ]] || return 1 ;;
		restart) [[ "$out" == *"workers: changes need a restart; nothing was applied" ]] || return 1 ;;
		yaml) [[ "$out" == *"$FILE:"* ]] || return 1 ;;
		esac
		lab_assert_eq "$(e2e_ctl -S -n)" "$good" "table after the refused $case file" >/dev/null || return 1
		lab_assert_eq "$(generation)" "$gen" "generation after the refused $case file" || return 1
	done
	cp "$WORK/good.yaml" "$FILE"
}

sighup_reloads() {
	local gen
	gen="$(generation)"
	sed -i 's/weight: 3$/weight: 7/' "$FILE"
	kill -HUP "$E2E_DIRECTOR_PID" || return 1
	_reloaded() { e2e_ctl -L -n | grep -qE "^  -> 10\.0\.2\.11:80 +FullNat +7 "; }
	lab_wait_until 5 _reloaded || return 1
	lab_assert_eq "$(generation)" "$((gen + 1))" "generation after SIGHUP" || return 1
	grep -q "SIGHUP: configuration generation $((gen + 1)) in force" "$E2E_DIRECTOR_LOG"
}

stop_traffic() {
	local failures requests
	touch "$WORK/stop"
	wait "$TRAFFIC_PID" || true
	TRAFFIC_PID=""
	sed 's/^/  /' "$WORK/traffic.out"
	read -r _ requests _ failures <"$WORK/traffic.out"
	lab_assert_eq "$failures" 0 "failed requests during the reloads" || return 1
	lab_assert_between "$requests" 100 100000000 "requests"
}

cleanup_traffic() {
	[[ -n "$TRAFFIC_PID" ]] && touch "$WORK/stop" && wait "$TRAFFIC_PID" 2>/dev/null
	return 0
}

# ----------------------------------------------------------------- main

echo "control_reload: lab '$LAB', director $LB_DIRECTOR, socket $LB_SOCKET"
e2e_require "lab up, $LAB_NRS real servers listening, $FILE written" setup_lab
e2e_require "director starts with $FILE" start_director
e2e_require "VIP $VIP:80 answers" vip_answers
e2e_require "client traffic started" start_traffic
e2e_check "lb-ctl reload: new weights, scheduler and service; runtime edits replaced" reload_applies_the_file
e2e_check "invalid or restart-only files are refused whole, one line, nothing changes" invalid_files_change_nothing
e2e_check "SIGHUP reloads the file" sighup_reloads
e2e_check "no failed request while reloading" stop_traffic
cleanup_traffic
e2e_finish
