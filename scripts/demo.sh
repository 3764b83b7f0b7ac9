#!/usr/bin/env bash
# The main job: builds the director, starts the namespace lab (a client, the
# director on two af_packet ports, three real servers), sends HTTP requests to the
# VIP, shows how they spread over the servers, and prints the director's stats.
# Everything is torn down on exit. Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
setup_all
cargo build --workspace --release --quiet

source lab/lab.sh
CONFIG="${DEMO_CONFIG:-config/examples/lab-fullnat.yaml}"
REQUESTS="${DEMO_REQUESTS:-30}"
SOCKET="$PWD/lab/run/$LAB/lb.sock"
DIRECTOR_PID=""
cleanup() {
	[[ -n "$DIRECTOR_PID" ]] && kill "$DIRECTOR_PID" 2>/dev/null && wait "$DIRECTOR_PID" 2>/dev/null
	lab_down
}
trap cleanup EXIT

lab_up
lab_start_servers
rm -f "$SOCKET"
ip netns exec "$(lab_ns dir)" "$PWD/target/release/lb-director" --config "$CONFIG" --socket "$SOCKET" >lab/run/director.log 2>&1 &
DIRECTOR_PID=$!
for _ in $(seq 100); do
	[[ -S "$SOCKET" ]] && break
	kill -0 "$DIRECTOR_PID" 2>/dev/null || { cat lab/run/director.log; exit 1; }
	sleep 0.1
done
cat lab/run/director.log

echo
echo "== $REQUESTS requests from the client namespace to http://$LAB_VIP/"
for _ in $(seq 30); do
	lab_exec client curl -s -o /dev/null --max-time 1 "http://$LAB_VIP/" && break
	sleep 0.3
done
for i in $(seq "$REQUESTS"); do
	printf '%3d: %s' "$i" "$(lab_exec client curl -s --max-time 5 "http://$LAB_VIP/")"
	echo
done | tee lab/run/demo-responses.txt | tail -6
echo "   ..."
echo "== responses per real server"
awk '{print $2}' lab/run/demo-responses.txt | sort | uniq -c
echo
echo "== lb-ctl -L -n"
target/release/lb-ctl --socket "$SOCKET" -L -n
echo
echo "== lb-ctl -L -n --stats"
target/release/lb-ctl --socket "$SOCKET" -L -n --stats
echo
echo "== lb-ctl status"
target/release/lb-ctl --socket "$SOCKET" status
