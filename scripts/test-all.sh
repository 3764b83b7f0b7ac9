#!/usr/bin/env bash
# Runs every test on a fresh Debian 12 machine as root: installs what is missing,
# checks formatting and lints, runs the unit, property and integration tests, then
# every end-to-end test in the namespace lab. Ends with "N passed, M failed".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
setup_all

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== cargo build --release"
cargo build --workspace --release --quiet
echo "== cargo test"
cargo test --workspace --release 2>&1 | tee /tmp/lb-cargo-test.log
passed=0
failed=0
while read -r p f; do
	passed=$((passed + p))
	failed=$((failed + f))
done < <(sed -n 's/^test result: [a-zA-Z]*\. \([0-9]*\) passed; \([0-9]*\) failed.*/\1 \2/p' /tmp/lb-cargo-test.log)

e2e_passed=0
e2e_failed=0
for t in tests/e2e/*.sh; do
	[[ "$(basename "$t")" == lib.sh ]] && continue
	echo "== e2e $(basename "$t")"
	if bash "$t"; then
		e2e_passed=$((e2e_passed + 1))
	else
		e2e_failed=$((e2e_failed + 1))
		echo "!! $(basename "$t") failed"
	fi
done
echo "unit+integration: $passed passed, $failed failed; e2e scripts: $e2e_passed passed, $e2e_failed failed"
echo "all: $((passed + e2e_passed)) passed, $((failed + e2e_failed)) failed"
[[ $failed -eq 0 && $e2e_failed -eq 0 ]]
