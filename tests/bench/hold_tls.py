#!/usr/bin/env python3
"""Holds N idle keep-alive TLS connections to a proxy and reports when ready.

Usage: hold_tls.py HOST PORT N HOSTHEADER
The same as hold.py (whose response reader it uses), over TLS without
verifying the certificate: opens N connections, completes each handshake,
sends one keep-alive GET, reads its response, then prints "held N" and
waits for a line on stdin before closing them all.
"""
import os
import socket
import ssl
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hold import read_response  # noqa: E402


def main():
    host, port, count, host_header = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    request = f"GET / HTTP/1.1\r\nHost: {host_header}\r\n\r\n".encode()
    socks = []
    for _ in range(count):
        s = ctx.wrap_socket(socket.create_connection((host, port)), server_hostname=host_header)
        s.sendall(request)
        read_response(s)
        socks.append(s)
    print(f"held {len(socks)}", flush=True)
    sys.stdin.readline()
    for s in socks:
        s.close()
    print("closed", flush=True)


if __name__ == "__main__":
    main()
