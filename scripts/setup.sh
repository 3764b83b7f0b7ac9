#!/usr/bin/env bash
# Installs what building and testing the director needs on a fresh Debian 12
# machine (as root), and nothing when it is all there already. Sourced or run.
set -euo pipefail

SETUP_PACKAGES=(
	# Build: DPDK 22.11 headers and libraries, bindgen's libclang, pkg-config.
	libdpdk-dev dpdk dpdk-dev libclang-dev clang pkg-config build-essential
	# Lab: namespaces, traffic, servers.
	iproute2 ethtool curl socat python3 iputils-ping procps nginx-light tcpdump
	# Hostile-traffic tests: SYN floods and forged packets.
	hping3 python3-scapy
)

setup_packages() {
	local missing=() pkg
	for pkg in "${SETUP_PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
	done
	if ((${#missing[@]} == 0)); then
		return 0
	fi
	if [[ $(id -u) -ne 0 ]]; then
		echo "setup: missing packages ${missing[*]}; run as root" >&2
		return 1
	fi
	echo "setup: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	# nginx-light starts a server on port 80 in the root namespace; the lab runs its own.
	systemctl disable --now nginx >/dev/null 2>&1 || service nginx stop >/dev/null 2>&1 || true
}

setup_toolchain() {
	if ! command -v cargo >/dev/null 2>&1; then
		[[ -x "$HOME/.cargo/bin/cargo" ]] && export PATH="$HOME/.cargo/bin:$PATH"
	fi
	command -v cargo >/dev/null 2>&1 || {
		echo "setup: cargo not found (the machine's Rust toolchain is expected in PATH)" >&2
		return 1
	}
	rustup component list --installed 2>/dev/null | grep -q clippy || rustup component add clippy rustfmt >/dev/null 2>&1 || true
}

setup_all() {
	setup_packages
	setup_toolchain
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	setup_all
fi
