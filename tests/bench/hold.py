#!/usr/bin/env python3
"""Holds N idle keep-alive connections to a proxy and reports when ready.

Usage: hold.py [--tls] HOST PORT N HOSTHEADER
Opens N connections (with --tls: over TLS, completing each handshake,
without verifying the certificate), sends one keep-alive GET on each, reads
its response, then prints "held N" and waits for a line on stdin before
closing them all.
"""
import socket
import ssl
import sys


def read_response(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError("connection closed before the response head")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk


def tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def main():
    args = sys.argv[1:]
    tls = args[:1] == ["--tls"]
    if tls:
        args = args[1:]
    if len(args) != 4:
        sys.exit("usage: hold.py [--tls] HOST PORT N HOSTHEADER")
    host, port, count, host_header = args[0], int(args[1]), int(args[2]), args[3]
    ctx = tls_context() if tls else None
    request = f"GET / HTTP/1.1\r\nHost: {host_header}\r\n\r\n".encode()
    socks = []
    for _ in range(count):
        s = socket.create_connection((host, port))
        if ctx:
            s = ctx.wrap_socket(s, server_hostname=host_header)
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
