#!/usr/bin/env bash
# shellcheck disable=SC2317 # step functions are called indirectly via e2e_step
# Live updates without packet loss: while a client sends a steady stream of HTTP
# requests to service A (TCP 10.0.1.100:80, FullNAT, rs1..rs3) -- each on a new
# connection, plus keep-alive connections that must keep their real server -- a
# script performs 1000 edits through lb-ctl, each its own atomic change: weights
# of A's servers, quiescent servers added to and removed from A, A's scheduler,
# and other TCP/UDP services and their real servers added, edited and deleted.
# Every request must succeed and the final table must equal the intended one.
#
# Usage: tests/e2e/control_live_edits.sh   (as root; env: see tests/e2e/lib.sh,
#   plus E2E_EDITS (1000), E2E_EDIT_PACE_MS (25, pause between edits),
#   E2E_EDIT_SEED (random); the lab prefix defaults to LAB=ctl)
# Ends with "control_live_edits: N passed, M failed".

LAB="${LAB:-ctl}"
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CONFIG="$(e2e_abs "${CONTROL_CONFIG:-config/examples/lab-control.yaml}")"
EDITS="${E2E_EDITS:-1000}"
PACE_MS="${E2E_EDIT_PACE_MS:-25}"
SEED="${E2E_EDIT_SEED:-$RANDOM}"
VIP="$LAB_VIP"
WORK="$LAB_STATE/control_live_edits"
TRAFFIC_PID=""

# ---------------------------------------------------------------- steps

setup_lab() {
	lab_up || return 1
	lab_start_servers || return 1
	mkdir -p "$WORK"
	rm -f "$WORK/stop" "$WORK/traffic.out"
}

start_director() {
	echo "  config $CONFIG"
	e2e_start_director "$CONFIG"
}

_vip_ok() { [[ "$(lab_exec client curl -s --max-time 1 "http://$VIP/")" == rs* ]]; }
vip_answers() { lab_wait_until 15 _vip_ok; }

# The client: one thread opens a new connection per request, as fast as it
# can; three threads keep one connection each and send a request every 50 ms,
# checking that the same real server answers for the connection's lifetime.
start_traffic() {
	cat >"$WORK/traffic.py" <<'PY'
import http.client, os, sys, threading, time
vip, stop_file = sys.argv[1], sys.argv[2]
lock = threading.Lock()
stats = {"requests": 0, "failures": 0, "keepalive": 0, "moved": 0}
errors = []
by_server = {}

def fail(what):
    with lock:
        stats["failures"] += 1
        if len(errors) < 20:
            errors.append(what)

def fresh():
    while not os.path.exists(stop_file):
        try:
            c = http.client.HTTPConnection(vip, 80, timeout=5)
            c.request("GET", "/")
            r = c.getresponse()
            body = r.read().decode(errors="replace").strip()
            c.close()
            if r.status != 200 or body not in ("rs1", "rs2", "rs3"):
                fail(f"status {r.status} body {body!r}")
                continue
            with lock:
                stats["requests"] += 1
                by_server[body] = by_server.get(body, 0) + 1
        except Exception as e:  # noqa: BLE001
            fail(f"{type(e).__name__}: {e}")

def kept():
    c = http.client.HTTPConnection(vip, 80, timeout=5)
    first = None
    while not os.path.exists(stop_file):
        try:
            c.request("GET", "/")
            r = c.getresponse()
            body = r.read().decode(errors="replace").strip()
        except Exception as e:  # noqa: BLE001
            fail(f"keep-alive: {type(e).__name__}: {e}")
            return
        with lock:
            stats["keepalive"] += 1
            if first is None:
                first = body
            elif body != first:
                stats["moved"] += 1
        time.sleep(0.05)
    c.close()

threads = [threading.Thread(target=fresh)] + [threading.Thread(target=kept) for _ in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("requests", stats["requests"], "failures", stats["failures"],
      "keepalive", stats["keepalive"], "moved", stats["moved"],
      "servers", " ".join(f"{k}={v}" for k, v in sorted(by_server.items())))
for e in errors:
    print("error", e)
PY
	lab_exec client python3 "$WORK/traffic.py" "$VIP" "$WORK/stop" >"$WORK/traffic.out" 2>&1 &
	TRAFFIC_PID=$!
	sleep 2
	kill -0 "$TRAFFIC_PID"
}

# The editor: random edits valid in the current state (so every one must be
# accepted), each one lb-ctl call, with a model of the intended table.
run_edits() {
	cat >"$WORK/edits.py" <<'PY'
import random, subprocess, sys, time
lbctl, socket, vip, n, pace, seed, out = sys.argv[1:8]
n, pace, seed = int(n), int(pace) / 1000.0, int(seed)
rng = random.Random(seed)
A = ("-t", f"{vip}:80")
SCHEDULERS = ["rr", "wrr", "wlc", "lc", "sed", "nq"]
# The model: (proto flag, "vip:port") -> {"sched", "persist", "servers": {ep: (fwd, w)}}
model = {
    A: {"sched": "rr", "persist": None, "forward": "fullnat",
        "servers": {f"10.0.2.{k}:80": ("-F", 1) for k in (11, 12, 13)}},
    ("-u", f"{vip}:9000"): {"sched": "rr", "persist": None, "forward": "fullnat",
        "servers": {f"10.0.2.{k}:9000": ("-F", 1) for k in (11, 12, 13)}},
}
FWD = ["-m", "-F", "-g", "-i"]
counts = {}

def ctl(*args):
    r = subprocess.run([lbctl, "--socket", socket, *args], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"FAILED: lb-ctl {' '.join(args)}: {r.stderr.strip()}", flush=True)
        sys.exit(1)

def edit_a():
    svc = model[A]
    live = [f"10.0.2.{k}:80" for k in (11, 12, 13)]
    quiet = [ep for ep in svc["servers"] if ep not in live]
    op = rng.choice(["weight", "weight", "weight", "add-quiet", "del-quiet", "sched"])
    if op == "weight":
        ep = rng.choice(live)
        # rs1 always takes connections, so A never runs out of servers.
        w = rng.randint(1, 5) if ep == live[0] else rng.randint(0, 5)
        ctl("-e", *A, "-r", ep, "-F", "-w", str(w))
        svc["servers"][ep] = ("-F", w)
    elif op == "add-quiet" and len(quiet) < 10:
        free = [f"10.0.2.{k}:80" for k in range(50, 60) if f"10.0.2.{k}:80" not in svc["servers"]]
        ep = rng.choice(free)
        ctl("-a", *A, "-r", ep, "-F", "-w", "0")
        svc["servers"][ep] = ("-F", 0)
    elif op == "del-quiet" and quiet:
        ep = rng.choice(quiet)
        ctl("-d", *A, "-r", ep)
        del svc["servers"][ep]
    else:
        op = "sched"
        s = rng.choice(SCHEDULERS)
        ctl("-E", *A, "-s", s)
        svc["sched"], svc["persist"] = s, None
    return "A " + op

def edit_other():
    others = [k for k in model if k[1] not in (f"{vip}:80", f"{vip}:9000")]
    op = rng.choice(["add-svc", "del-svc", "edit-svc", "add-rs", "add-rs", "edit-rs", "del-rs"])
    if op == "add-svc" or not others:
        if len(others) >= 12 and op == "add-svc":
            op = "del-svc"
        else:
            while True:
                key = (rng.choice(["-t", "-u"]), f"{vip}:{rng.randint(8000, 8040)}")
                if key not in model:
                    break
            s = rng.choice(SCHEDULERS)
            args = ["-A", *key, "-s", s]
            persist = None
            if rng.random() < 0.3:
                persist = rng.choice([60, 300, 900])
                args += ["-p", str(persist)]
            ctl(*args)
            model[key] = {"sched": s, "persist": persist, "forward": "dr", "servers": {}}
            return "other add-svc"
    key = rng.choice(others)
    svc = model[key]
    if op == "del-svc":
        ctl("-D", *key)
        del model[key]
    elif op == "edit-svc":
        s = rng.choice(SCHEDULERS)
        ctl("-E", *key, "-s", s)
        svc["sched"], svc["persist"] = s, None
    elif op == "add-rs" or not svc["servers"]:
        op = "add-rs"
        while True:
            ep = f"10.0.2.{rng.randint(11, 40)}:{key[1].split(':')[1]}"
            if ep not in svc["servers"]:
                break
        fwd, w = rng.choice(FWD), rng.randint(0, 100)
        ctl("-a", *key, "-r", ep, fwd, "-w", str(w))
        svc["servers"][ep] = (fwd, w)
    elif op == "edit-rs":
        ep = rng.choice(list(svc["servers"]))
        fwd, w = rng.choice(FWD), rng.randint(0, 100)
        ctl("-e", *key, "-r", ep, fwd, "-w", str(w))
        svc["servers"][ep] = (fwd, w)
    else:
        ep = rng.choice(list(svc["servers"]))
        ctl("-d", *key, "-r", ep)
        del svc["servers"][ep]
    return "other " + op

start = time.time()
for i in range(n):
    what = edit_a() if rng.random() < 0.4 else edit_other()
    counts[what] = counts.get(what, 0) + 1
    time.sleep(pace)
elapsed = time.time() - start
print(f"{n} edits in {elapsed:.1f} s (seed {seed}):",
      ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))

# The intended table in -S -n form, sorted as ipvsadm sorts.
def ip_key(ep):
    ip, port = ep.rsplit(":", 1)
    return (tuple(int(x) for x in ip.split(".")), int(port))
lines = []
for key in sorted(model, key=lambda k: (0 if k[0] == "-t" else 1, ip_key(k[1]))):
    svc = model[key]
    line = f"-A {key[0]} {key[1]} -s {svc['sched']}"
    if svc["persist"]:
        line += f" -p {svc['persist']}"
    if svc["forward"] != "dr":
        line += f" --opt forward={svc['forward']}"
    lines.append(line)
    for ep in sorted(svc["servers"], key=ip_key):
        fwd, w = svc["servers"][ep]
        lines.append(f"-a {key[0]} {key[1]} -r {ep} {fwd} -w {w}")
with open(out, "w") as f:
    f.write("\n".join(lines) + "\n")
PY
	local start=$SECONDS
	e2e_wait python3 "$WORK/edits.py" "$LB_CTL" "$LB_SOCKET" "$VIP" "$EDITS" "$PACE_MS" "$SEED" \
		"$WORK/intended.rules" || return 1
	echo "  generation now $(e2e_ctl status | awk 'NR == 1 { print $3 }') after $((SECONDS - start)) s"
}

stop_traffic() {
	touch "$WORK/stop"
	wait "$TRAFFIC_PID" || true
	TRAFFIC_PID=""
	sed 's/^/  /' "$WORK/traffic.out"
	grep -q '^requests' "$WORK/traffic.out"
}

no_failed_requests() {
	local requests failures keepalive moved
	read -r _ requests _ failures _ keepalive _ moved _ <"$WORK/traffic.out"
	lab_assert_eq "$failures" 0 "failed requests" || return 1
	lab_assert_eq "$moved" 0 "keep-alive requests answered by another real server" || return 1
	lab_assert_between "$requests" 1000 100000000 "requests on new connections" || return 1
	lab_assert_between "$keepalive" 100 100000000 "requests on kept connections"
}

final_state() {
	e2e_ctl -S -n >"$WORK/final.rules" || return 1
	if ! diff -u "$WORK/intended.rules" "$WORK/final.rules"; then
		echo "  FAIL: the table is not the intended one" >&2
		return 1
	fi
	echo "  -S -n equals the intended table ($(grep -c '^-A' "$WORK/final.rules") services, $(grep -c '^-a' "$WORK/final.rules") real servers)"
}

no_unexpected_drops() {
	local out
	out="$(e2e_ctl status)"
	printf '%s\n' "$out" | sed -n '1,12p' | sed 's/^/    /'
	if grep -E "drop (no_dest|table_full|no_local_port|dest_removed): " <<<"$out"; then
		echo "  FAIL: drops that cost service A packets" >&2
		return 1
	fi
}

no_csum_errors() {
	lab_assert_no_csum_errors
}

cleanup_traffic() {
	[[ -n "$TRAFFIC_PID" ]] && touch "$WORK/stop" && wait "$TRAFFIC_PID" 2>/dev/null
	return 0
}

# ----------------------------------------------------------------- main

echo "control_live_edits: lab '$LAB', director $LB_DIRECTOR, socket $LB_SOCKET, $EDITS edits, seed $SEED"
e2e_require "lab up, $LAB_NRS real servers listening" setup_lab
e2e_require "director starts with $(basename "$CONFIG")" start_director
e2e_require "VIP $VIP:80 answers" vip_answers
e2e_require "client traffic to service A started" start_traffic
e2e_check "$EDITS edits through lb-ctl, each accepted" run_edits
e2e_require "client traffic stopped" stop_traffic
e2e_check "no failed request to A; kept connections kept their real server" no_failed_requests
e2e_check "final table (-S -n) equals the intended one" final_state
e2e_check "no drops for lack of a server, port or table room" no_unexpected_drops
e2e_check "no checksum / header errors in any namespace" no_csum_errors
cleanup_traffic
e2e_finish
