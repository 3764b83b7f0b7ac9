#!/usr/bin/env bash
# shellcheck disable=SC2317 # step functions are called indirectly via e2e_step
# lb-ctl's ipvsadm command line against a live director in the lab:
#   * the control socket is root-only (mode 0600; nobody is refused);
#   * restoring dumps in `ipvsadm -S -n` format (persistence, masks, scheduler
#     flags, every forwarding method, weights) gives back the same `-S -n` and an
#     `-L -n` identical to ipvsadm's; a bad dump is refused whole;
#   * -A/-E/-D/-a/-e/-d with traffic, errors (one line, non-zero, nothing
#     changed), --timeout/--set, local addresses, -L -c, -Z, --json.
#
# Usage: tests/e2e/control_ipvsadm.sh   (as root; env: see tests/e2e/lib.sh;
#   the lab prefix defaults to LAB=ctl)
# Ends with "control_ipvsadm: N passed, M failed".

LAB="${LAB:-ctl}"
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CONFIG="$(e2e_abs "${CONTROL_CONFIG:-config/examples/lab-control.yaml}")"
FIXTURES="$REPO_ROOT/lb-ctl/fixtures"
VIP="$LAB_VIP"
WORK="$LAB_STATE/control_ipvsadm"

# ---------------------------------------------------------------- helpers

# rules: the director's table in -S -n form.
rules() { e2e_ctl -S -n; }

# http PORT: one request to VIP:PORT from the client; prints the body's first line.
http() {
	lab_exec client curl -s --max-time 3 "http://$VIP:$1/" | head -n 1
}

# expect_error WHAT CMD...: CMD must fail with exactly one line on stderr
# containing WHAT, and leave the table as it was.
expect_error() {
	local what="$1" before after err rc=0
	shift
	before="$(rules)"
	err="$("$@" 2>&1 >/dev/null)" || rc=$?
	after="$(rules)"
	echo "  \$ ${*#"$LB_CTL"} -> exit $rc: $err"
	if ((rc == 0)); then
		echo "  FAIL: expected a failure" >&2
		return 1
	fi
	if [[ "$(wc -l <<<"$err")" != 1 || "$err" != *"$what"* ]]; then
		echo "  FAIL: expected one line containing '$what'" >&2
		return 1
	fi
	if [[ "$before" != "$after" ]]; then
		echo "  FAIL: the table changed" >&2
		diff <(echo "$before") <(echo "$after") >&2 || true
		return 1
	fi
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

socket_is_root_only() {
	local mode dir out rc=0 nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)
	mode="$(stat -c '%a %U' "$LB_SOCKET")"
	lab_assert_eq "$mode" "600 root" "socket mode and owner" || return 1
	dir="$(dirname "$LB_SOCKET")"
	# The refusal must come from the socket itself, not from the path to it.
	lab_assert "nobody can reach the socket's directory" "${nobody[@]}" test -x "$dir" || return 1
	lab_assert "nobody can run lb-ctl" "${nobody[@]}" "$LB_CTL" --version || return 1
	out="$("${nobody[@]}" "$LB_CTL" --socket "$LB_SOCKET" -L -n 2>&1)" || rc=$?
	echo "  as nobody: exit $rc: $out"
	[[ $rc -ne 0 && "$out" == *"Permission denied"* ]] || {
		echo "  FAIL: nobody was not refused" >&2
		return 1
	}
	e2e_ctl -L -n >/dev/null
}

save_original() {
	rules >"$WORK/original.rules"
	sed 's/^/    /' "$WORK/original.rules"
	[[ -s "$WORK/original.rules" ]]
}

# Before any traffic, so every connection count is 0 as in the fixture.
restore_ipvsadm_dump() {
	e2e_ctl restore --replace "$FIXTURES/ipvsadm-save.txt" || return 1
	rules >"$WORK/restored.rules"
	diff -u "$FIXTURES/ipvsadm-save.txt" "$WORK/restored.rules" || return 1
	echo "  -S -n gives the dump back unchanged"
	e2e_ctl -L -n >"$WORK/restored.list"
	diff -u "$FIXTURES/ipvsadm-list.txt" "$WORK/restored.list" || return 1
	echo "  -L -n is ipvsadm's listing of that table:"
	sed 's/^/    /' "$WORK/restored.list"
}

restore_commands_through_stdin() {
	{
		echo "-C"
		cat "$FIXTURES/ipvsadm-commands.txt"
	} | e2e_ctl -R || return 1
	rules | diff -u "$FIXTURES/ipvsadm-save.txt" - || return 1
	# ipvsadm -S | ipvsadm -R semantics: a -C in front replaces the table atomically.
	{
		echo "-C"
		rules
	} | e2e_ctl -R || return 1
	rules | diff -u "$FIXTURES/ipvsadm-save.txt" -
}

restore_is_atomic() {
	local bad="$WORK/bad.rules"
	{
		echo "-C"
		cat "$FIXTURES/ipvsadm-save.txt"
		echo "-a -t 10.0.1.100:9999 -r 10.0.2.11 -m"
	} >"$bad"
	expect_error "line 16: no service TCP 10.0.1.100:9999; nothing was restored" \
		e2e_ctl restore "$bad" || return 1
	printf -- '-C\n-A -t 10.0.1.100:80 -s nosuch\n' >"$bad"
	expect_error "unknown scheduler 'nosuch'" e2e_ctl restore "$bad" || return 1
	printf -- '-A -t 10.0.1.100:81 -s rr\n-L -n\n' >"$bad"
	expect_error "line 2: only -A -E -D -C" e2e_ctl restore "$bad" || return 1
}

restore_original() {
	e2e_ctl restore --replace "$WORK/original.rules" || return 1
	rules | diff -u "$WORK/original.rules" -
}

_vip_ok() { [[ "$(http 80)" == rs* ]]; }
vip_answers() {
	lab_wait_until 15 _vip_ok
}

service_commands_with_traffic() {
	local out i got
	e2e_ctl -A -t "$VIP:8080" -s rr || return 1
	e2e_ctl -a -t "$VIP:8080" -r 10.0.2.11:80 -m -w 1 || return 1
	e2e_ctl -a -t "$VIP:8080" -r 10.0.2.12:80 -F -w 2 || return 1
	out="$(e2e_ctl -L -n -t "$VIP:8080")"
	printf '%s\n' "$out" | sed 's/^/    /'
	[[ "$(head -n 1 <<<"$out")" == "Prot LocalAddress:Port Scheduler Flags" ]] || {
		echo "  FAIL: -L -t lists without the version line" >&2
		return 1
	}
	grep -qx "TCP  $VIP:8080 rr" <<<"$out" || return 1
	grep -qxE "  -> 10\.0\.2\.11:80 +Masq +1 +[0-9]+ +[0-9]+ *" <<<"$out" || return 1
	grep -qxE "  -> 10\.0\.2\.12:80 +FullNat +2 +[0-9]+ +[0-9]+ *" <<<"$out" || return 1
	got=""
	for ((i = 0; i < 6; i++)); do got+="$(http 8080) "; done
	echo "  answers: $got"
	[[ "$got" == *rs1* && "$got" == *rs2* && "$got" != *rs3* ]] || return 1
	[[ "$(grep -o 'rs[0-9]' <<<"$got" | wc -l)" == 6 ]] || return 1
	# Quiesce rs2 (weight 0): new connections go to rs1 only.
	e2e_ctl -e -t "$VIP:8080" -r 10.0.2.12:80 -F -w 0 || return 1
	got=""
	for ((i = 0; i < 4; i++)); do got+="$(http 8080) "; done
	echo "  after -e ... -w 0: $got"
	[[ "$got" == "rs1 rs1 rs1 rs1 " ]] || return 1
	e2e_ctl -E -t "$VIP:8080" -s wrr -p 120 -M 255.255.255.0 || return 1
	e2e_ctl -L -n | grep -qx "TCP  $VIP:8080 wrr persistent 120 mask 255.255.255.0" || return 1
	e2e_ctl -d -t "$VIP:8080" -r 10.0.2.12:80 || return 1
	e2e_ctl -D -t "$VIP:8080" || return 1
	if e2e_ctl -L -n | grep -q ":8080"; then return 1; fi
	if [[ -n "$(http 8080)" ]]; then
		echo "  FAIL: a deleted service still answers" >&2
		return 1
	fi
	[[ "$(http 80)" == rs* ]]
}

subcommand_form() {
	local out
	e2e_ctl service add tcp "$VIP:8081" --scheduler wrr --forward nat || return 1
	e2e_ctl server add tcp "$VIP:8081" 10.0.2.13:80 --weight 2 || return 1
	out="$(http 8081)"
	lab_assert_eq "$out" rs3 "answer through the new NAT service" || return 1
	e2e_ctl server edit tcp "$VIP:8081" 10.0.2.13:80 --weight 5 || return 1
	e2e_ctl service edit tcp "$VIP:8081" --persistent 60 || return 1
	out="$(e2e_ctl list tcp "$VIP:8081")"
	printf '%s\n' "$out" | sed 's/^/    /'
	grep -qx "TCP  $VIP:8081 wrr persistent 60" <<<"$out" || return 1
	grep -qE "^  -> 10\.0\.2\.13:80 +Masq +5 " <<<"$out" || return 1
	e2e_ctl server del tcp "$VIP:8081" 10.0.2.13:80 || return 1
	e2e_ctl service del tcp "$VIP:8081" || return 1
	if e2e_ctl -L -n | grep -q ":8081"; then return 1; fi
}

errors_change_nothing() {
	expect_error "service TCP 10.0.1.100:80 already exists" e2e_ctl -A -t "$VIP:80" -s rr || return 1
	expect_error "no service TCP 10.0.1.100:81" e2e_ctl -a -t "$VIP:81" -r 10.0.2.11 -m || return 1
	expect_error "real server 10.0.2.11:80 already exists" e2e_ctl -a -t "$VIP:80" -r 10.0.2.11 -F || return 1
	expect_error "no real server 10.0.2.19:80" e2e_ctl -e -t "$VIP:80" -r 10.0.2.19 -F -w 2 || return 1
	expect_error "unknown scheduler 'bogus'" e2e_ctl -A -t "$VIP:81" -s bogus || return 1
	expect_error "weight: 70000 is not a valid weight (0..65535)" e2e_ctl -a -t "$VIP:80" -r 10.0.2.14 -w 70000 || return 1
	expect_error "Illegal 'weight' option with the 'add-service' command" e2e_ctl -A -t "$VIP:81" -w 1 || return 1
	expect_error "no service TCP 10.0.1.100:81" e2e_ctl -D -t "$VIP:81" || return 1
	expect_error "fullnat needs at least one entry in local_addresses" e2e_ctl --del-laddr -z 10.0.2.100 || return 1
	expect_error "timeouts.udp: 90000 is not within" e2e_ctl --set 0 0 90000 || return 1
	expect_error "unknown field \`carier\`" e2e_ctl -E -t "$VIP:80" -s rr --opt carier=toa || return 1
}

timeouts() {
	local out
	out="$(e2e_ctl -L --timeout)"
	lab_assert_eq "$out" "Timeout (tcp tcpfin udp): 900 120 300" "-L --timeout" || return 1
	e2e_ctl --set 60 0 30 || return 1
	out="$(e2e_ctl -L --timeout)"
	lab_assert_eq "$out" "Timeout (tcp tcpfin udp): 60 120 30" "after --set 60 0 30" || return 1
	e2e_ctl timeout set time_wait 30 syn_recv 20 || return 1
	e2e_ctl config | grep -qx "  time_wait: 30" || return 1
	e2e_ctl config | grep -qx "  syn_recv: 20" || return 1
	e2e_ctl --set 900 120 300 || return 1
	e2e_ctl timeout set time_wait 120 syn_recv 60 || return 1
	out="$(e2e_ctl timeout list)"
	lab_assert_eq "$out" "Timeout (tcp tcpfin udp): 900 120 300" "timeouts restored"
}

local_addresses() {
	local out i got=""
	e2e_ctl --add-laddr -z 10.0.2.101 || return 1
	out="$(e2e_ctl -G)"
	printf '%s\n' "$out" | sed 's/^/    /'
	grep -qE "^10\.0\.2\.101 +server$" <<<"$out" || return 1
	grep -qE "^10\.0\.2\.100 +server$" <<<"$out" || return 1
	# FullNAT keeps working and now uses both local addresses.
	lab_truncate_rs_logs
	for ((i = 0; i < 6; i++)); do got+="$(http 80) "; done
	echo "  answers: $got"
	[[ "$(grep -o 'rs[0-9]' <<<"$got" | wc -l)" == 6 ]] || return 1
	out="$(cat "$(lab_rs_log rs1)" "$(lab_rs_log rs2)" "$(lab_rs_log rs3)" | awk '{print $1}' | sort -u | tr '\n' ' ')"
	echo "  peers seen by the real servers: $out"
	[[ "$out" == "10.0.2.100 10.0.2.101 " ]] || return 1
	expect_error "local address 10.0.2.101 already exists" e2e_ctl -P -z 10.0.2.101 || return 1
	expect_error "is in no port's subnet" e2e_ctl -P -z 192.168.77.1 || return 1
	e2e_ctl laddr del 10.0.2.101 || return 1
	out="$(e2e_ctl laddr list)"
	[[ "$out" != *10.0.2.101* ]] || return 1
	[[ "$(http 80)" == rs* ]]
}

connection_listing() {
	local out pid
	# An HTTP request that never ends holds an ESTABLISHED connection.
	lab_exec client python3 -c "
import socket, time
s = socket.create_connection(('$VIP', 80))
s.sendall(b'GET / HTTP/1.1\r\n')
time.sleep(8)
" &
	pid=$!
	lab_exec client python3 -c "
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.sendto(b'hello', ('$VIP', 9000))
s.recvfrom(100)
"
	sleep 1
	out="$(e2e_ctl -L -c -n)"
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	printf '%s\n' "$out" | grep -E 'ESTABLISHED|UDP|pro|IPVS' | head -n 8 | sed 's/^/    /'
	[[ "$(head -n 1 <<<"$out")" == "IPVS connection entries" ]] || return 1
	[[ "$(sed -n 2p <<<"$out")" == "pro expire state       source             virtual            destination        local" ]] || return 1
	grep -qE "^TCP 1[45]:[0-9]{2}  ESTABLISHED 10\.0\.1\.2:[0-9]+ +10\.0\.1\.100:80 +10\.0\.2\.1[123]:80 +10\.0\.2\.100:[0-9]+$" <<<"$out" || {
		echo "  FAIL: no ESTABLISHED FullNAT line" >&2
		return 1
	}
	grep -qE "^UDP 0[45]:[0-9]{2}  UDP +10\.0\.1\.2:[0-9]+ +10\.0\.1\.100:9000 +10\.0\.2\.1[123]:9000 +10\.0\.2\.100:[0-9]+$" <<<"$out" || {
		echo "  FAIL: no UDP line" >&2
		return 1
	}
	out="$(e2e_ctl connections udp "$VIP:9000")"
	if grep -q '^TCP' <<<"$out"; then
		echo "  FAIL: the service filter lets TCP through" >&2
		return 1
	fi
	e2e_ctl --json connections | python3 -c '
import json, sys
r = json.load(sys.stdin)
assert r["result"] == "connections", r
c = r["connections"][0]
assert set(c) >= {"protocol", "state", "expires_ms", "client", "virtual", "local", "destination"}, c
print("  --json connections:", len(r["connections"]), "entries")'
}

zero_and_json() {
	local out
	e2e_ctl -Z -t "$VIP:80" || return 1
	out="$(e2e_ctl -L -n --stats --exact -t "$VIP:80")"
	printf '%s\n' "$out" | sed 's/^/    /'
	grep -qE "^TCP  10\.0\.1\.100:80 +0 +0 +0 +0 +0$" <<<"$out" || return 1
	[[ "$(http 80)" == rs* ]] || return 1
	out="$(e2e_ctl -L -n --stats --exact -t "$VIP:80")"
	grep -qE "^TCP  10\.0\.1\.100:80 +1 +[1-9][0-9]* +[1-9][0-9]* +[1-9][0-9]* +[1-9][0-9]*$" <<<"$out" || {
		printf '%s\n' "$out" >&2
		return 1
	}
	e2e_ctl --json list | python3 -c '
import json, sys
r = json.load(sys.stdin)
assert r["result"] == "services", r
keys = sorted((s["protocol"], s["port"]) for s in r["services"])
assert keys == [("tcp", 80), ("udp", 9000)], keys
print("  --json list:", keys)'
}

no_csum_errors() {
	lab_assert_no_csum_errors
}

# ----------------------------------------------------------------- main

echo "control_ipvsadm: lab '$LAB', director $LB_DIRECTOR, socket $LB_SOCKET"
e2e_require "lab up, $LAB_NRS real servers listening" setup_lab
e2e_require "director starts with $(basename "$CONFIG")" start_director
e2e_check "control socket is mode 0600, root only; nobody is refused" socket_is_root_only
e2e_require "lb-ctl -S -n saves the running table" save_original
e2e_check "an ipvsadm -S -n dump restores to the same -S and to ipvsadm's -L -n" restore_ipvsadm_dump
e2e_check "ipvsadm commands on stdin (-R, leading ipvsadm, defaults) give the same table" restore_commands_through_stdin
e2e_check "a bad dump is refused whole, naming the line" restore_is_atomic
e2e_require "restore --replace of the saved table gives it back" restore_original
e2e_require "VIP $VIP:80 answers" vip_answers
e2e_check "-A/-a/-e/-E/-d/-D with traffic" service_commands_with_traffic
e2e_check "subcommand form: service/server add, edit, del; list" subcommand_form
e2e_check "errors: one line, non-zero exit, nothing changed" errors_change_nothing
e2e_check "-L --timeout, --set, timeout set STATE SECS" timeouts
e2e_check "--add-laddr/--get-laddr/--del-laddr, FullNAT uses the new LIP" local_addresses
e2e_check "-L -c -n lists TCP and UDP connections with the FullNAT local address" connection_listing
e2e_check "-Z and --json" zero_and_json
e2e_check "no checksum / header errors in any namespace" no_csum_errors
e2e_finish
