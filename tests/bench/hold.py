#!/usr/bin/env python3
"""Holds N idle keep-alive connections to a proxy and reports when ready.

Usage: hold.py HOST PORT N HOSTHEADER
Opens N connections, sends one keep-alive GET on each, reads its response,
then prints "held N" and waits for a line on stdin before closing them all.
"""
import socket
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


def main():
    host, port, count, host_header = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    request = f"GET / HTTP/1.1\r\nHost: {host_header}\r\n\r\n".encode()
    socks = []
    for _ in range(count):
        s = socket.create_connection((host, port))
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
