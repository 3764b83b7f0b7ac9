#!/usr/bin/env python3
"""Real server for the load-balancer lab (Python 3 standard library only).

HTTP (HTTP/1.1, one thread per connection):
  GET  /             -> "<name>\n"
  GET  /whoami       -> "<name> <peer_ip> <peer_port>\n"
  GET  /file/<name>  -> contents of DATA_DIR/<name>
  POST /upload       -> sha256 hex of the request body + "\n"
UDP: every datagram is answered with "<name> <peer_ip>:<peer_port> " + payload.

Each request appends "<peer_ip> <peer_port> <METHOD> <path>" to --log
(UDP datagrams as "<peer_ip> <peer_port> UDP <bytes>"), flushed per line.
"""

import argparse
import errno
import hashlib
import http.server
import os
import signal
import socket
import sys
import threading

CHUNK = 64 * 1024
QUIET_ERRORS = (ConnectionError, TimeoutError, socket.timeout, BrokenPipeError)


class AccessLog:
    def __init__(self, path):
        self._lock = threading.Lock()
        self._f = open(path, "a", encoding="utf-8", buffering=1) if path else None

    def write(self, ip, port, what, arg):
        if self._f is None:
            return
        with self._lock:
            self._f.write(f"{ip} {port} {what} {arg}\n")
            self._f.flush()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "lab-rs/1"
    sys_version = ""
    # An idle keep-alive connection (e.g. a client that vanished) is closed
    # after this many seconds instead of holding a thread forever.
    timeout = 60

    def log_message(self, format, *args):  # noqa: A002 - silence stderr
        pass

    def _peer(self):
        return self.client_address[0], self.client_address[1]

    def _log(self):
        ip, port = self._peer()
        self.server.access_log.write(ip, port, self.command, self.path)

    def _reply(self, code, body, ctype="text/plain; charset=utf-8"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        self._log()
        name = self.server.rs_name
        path = self.path.split("?", 1)[0]
        if path == "/":
            self._reply(200, f"{name}\n".encode())
        elif path == "/whoami":
            ip, port = self._peer()
            self._reply(200, f"{name} {ip} {port}\n".encode())
        elif path.startswith("/file/"):
            self._send_file(path[len("/file/"):])
        else:
            self._reply(404, b"not found\n")

    do_HEAD = do_GET

    def _send_file(self, fname):
        if not fname or "/" in fname or fname in (".", ".."):
            self._reply(404, b"not found\n")
            return
        full = os.path.join(self.server.data_dir, fname)
        try:
            f = open(full, "rb")
        except OSError:
            self._reply(404, b"not found\n")
            return
        with f:
            size = os.fstat(f.fileno()).st_size
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(size))
            self.end_headers()
            if self.command == "HEAD":
                return
            while True:
                chunk = f.read(CHUNK)
                if not chunk:
                    break
                self.wfile.write(chunk)

    def do_POST(self):  # noqa: N802
        self._log()
        path = self.path.split("?", 1)[0]
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            digest = self._read_chunked()
        else:
            try:
                remaining = int(length) if length is not None else 0
            except ValueError:
                self._reply(400, b"bad content-length\n")
                self.close_connection = True
                return
            h = hashlib.sha256()
            while remaining > 0:
                chunk = self.rfile.read(min(CHUNK, remaining))
                if not chunk:  # client went away mid-body
                    self.close_connection = True
                    return
                h.update(chunk)
                remaining -= len(chunk)
            digest = h.hexdigest()
        if digest is None:
            self.close_connection = True
            return
        if path == "/upload":
            self._reply(200, f"{digest}\n".encode())
        else:
            self._reply(404, b"not found\n")

    def _read_chunked(self):
        h = hashlib.sha256()
        while True:
            line = self.rfile.readline(1024)
            if not line:
                return None
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                return None
            if size == 0:
                while True:  # trailers
                    t = self.rfile.readline(1024)
                    if not t or t in (b"\r\n", b"\n"):
                        break
                return h.hexdigest()
            while size > 0:
                chunk = self.rfile.read(min(CHUNK, size))
                if not chunk:
                    return None
                h.update(chunk)
                size -= len(chunk)
            self.rfile.readline(16)  # CRLF after the chunk


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, QUIET_ERRORS):
            return  # client disappeared: not our problem
        if isinstance(exc, OSError) and exc.errno in (errno.ECONNRESET, errno.EPIPE):
            return
        sys.stderr.write(f"error serving {client_address}: {exc!r}\n")
        sys.stderr.flush()


IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)


def udp_loop(sock, name, access_log):
    # Answer from the address each datagram was sent to (IP_PKTINFO), as a UDP
    # server must when it owns several addresses: a DR or TUN real server gets
    # requests for the VIP (on lo) and must not answer from its own address.
    prefix = name.encode()
    space = socket.CMSG_SPACE(12)
    while True:
        try:
            data, ancillary, _, (ip, port) = sock.recvmsg(65535, space)
        except InterruptedError:
            continue
        except OSError as e:
            sys.stderr.write(f"udp recv: {e}\n")
            continue
        access_log.write(ip, port, "UDP", len(data))
        cmsgs = []
        for level, kind, value in ancillary:
            if level == socket.IPPROTO_IP and kind == IP_PKTINFO and len(value) >= 12:
                # struct in_pktinfo { int ifindex; in_addr spec_dst; in_addr addr; }
                cmsgs = [(socket.IPPROTO_IP, IP_PKTINFO, b"\0" * 4 + value[8:12] + b"\0" * 4)]
        try:
            sock.sendmsg([prefix + f" {ip}:{port} ".encode() + data], cmsgs, 0, (ip, port))
        except OSError:
            pass  # e.g. ICMP-induced ECONNREFUSED / unreachable: ignore


def main():
    # Drop descriptors inherited from the launching shell (e.g. a test's
    # saved stdout), so a pipe reading the test's output isn't held open.
    os.closerange(3, 1024)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", required=True)
    ap.add_argument("--bind", default="0.0.0.0")
    ap.add_argument("--http-port", type=int, default=80)
    ap.add_argument("--udp-port", type=int, default=9000)
    ap.add_argument("--log", default="")
    ap.add_argument("--data-dir", default=".")
    args = ap.parse_args()

    access_log = AccessLog(args.log)

    usock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    usock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    usock.bind((args.bind, args.udp_port))
    usock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)

    httpd = Server((args.bind, args.http_port), Handler)
    httpd.rs_name = args.name
    httpd.data_dir = args.data_dir
    httpd.access_log = access_log

    t = threading.Thread(target=udp_loop, args=(usock, args.name, access_log), daemon=True)
    t.start()

    def stop(signum, frame):
        # shutdown() must not run on the serve_forever thread.
        threading.Thread(target=httpd.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        httpd.serve_forever(poll_interval=0.5)
    finally:
        httpd.server_close()
        usock.close()


if __name__ == "__main__":
    main()
