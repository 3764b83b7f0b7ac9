#!/usr/bin/env python3
"""User-space stand-in for a Linux TUN real server's tunl0 / fou (lab only).

A real server of an IPVS/our director in TUN mode normally runs
`ip link set tunl0 up` (IPIP) or `ip fou add port N gue` plus an
`ipip ... encap gue` device; the kernel strips the outer header and receives
the inner packet as if it came in on the tunnel device. Kernels built without
CONFIG_NET_IPIP / CONFIG_NET_FOU (like the CI machine's) cannot, so this does
the same in user space: it reads IPIP packets from a raw socket (protocol 4)
and, with --gue-port, GUE datagrams from a UDP socket (4-byte version-0 header,
protocol 4), and writes the inner IPv4 packet into a TUN device (default
`tun0`), where the kernel receives it exactly as from tunl0. Replies leave
through the normal routing table, straight to the client.

Only the decapsulation moves to user space: addresses, checksums and the inner
packet are the director's, byte for byte.
"""

import argparse
import fcntl
import os
import select
import socket
import struct
import subprocess
import sys

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IPPROTO_IPIP = 4


def open_tun(name):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def main():
    os.closerange(3, 1024)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dev", default="tun0")
    ap.add_argument("--gue-port", type=int, default=0)
    ap.add_argument("--ready", default="", help="file to create once listening")
    args = ap.parse_args()

    tun = open_tun(args.dev)
    for cmd in (["ip", "link", "set", args.dev, "up"],
                ["sysctl", "-qw", f"net.ipv4.conf.{args.dev}.rp_filter=0"]):
        subprocess.run(cmd, check=False)
    socks = []
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_IPIP)
    socks.append(("ipip", raw))
    if args.gue_port:
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("0.0.0.0", args.gue_port))
        socks.append(("gue", udp))
    if args.ready:
        open(args.ready, "w").close()
    counts = {"ipip": 0, "gue": 0, "bad": 0}
    poller = select.poll()
    by_fd = {}
    for kind, s in socks:
        poller.register(s.fileno(), select.POLLIN)
        by_fd[s.fileno()] = (kind, s)
    while True:
        for fd, _ in poller.poll():
            kind, s = by_fd[fd]
            data = s.recv(65535)
            if kind == "ipip":
                # A raw IPv4 socket returns the outer header too.
                hl = (data[0] & 0x0F) * 4
                inner = data[hl:]
            else:
                # GUE version 0: C=0, hlen (32-bit words of options), protocol.
                if len(data) < 4 or data[0] >> 6 != 0 or data[1] != IPPROTO_IPIP:
                    counts["bad"] += 1
                    continue
                inner = data[4 + 4 * (data[0] & 0x1F):]
            if len(inner) < 20 or inner[0] >> 4 != 4:
                counts["bad"] += 1
                continue
            counts[kind] += 1
            try:
                os.write(tun, inner)
            except OSError as e:
                sys.stderr.write(f"tun write: {e}\n")


if __name__ == "__main__":
    main()
