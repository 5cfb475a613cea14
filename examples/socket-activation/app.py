#!/usr/bin/env python3
"""A socket-activated app: tenement (or systemd) binds the port and passes
the listening socket as fd 3. The app never binds anything itself, so it can
be stopped, restarted or woken while clients' connections wait in the
socket's backlog.

The checks are sd_listen_fds(3)'s: LISTEN_FDS says how many sockets start at
fd 3, and LISTEN_PID must be this process (a variable inherited by a child
of ours is not meant for it). Without them it falls back to $PORT, so it
also runs without socket activation.
"""

import os
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SD_LISTEN_FDS_START = 3


def passed_socket():
    """The socket passed as fd 3, or None."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return None
    if int(os.environ.get("LISTEN_FDS") or 0) < 1:
        return None
    return socket.socket(fileno=SD_LISTEN_FDS_START)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        sys.stderr.write("app: " + (fmt % args) + "\n")

    def do_GET(self):
        if self.path == "/health":
            body = b"ok\n"
        else:
            body = (
                "hello from %s:%s, pid %d, socket %s\n"
                % (
                    os.environ.get("SERVICE"),
                    os.environ.get("INSTANCE_ID"),
                    os.getpid(),
                    os.environ.get("LISTEN_FDNAMES", "bound by the app"),
                )
            ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class ActivatedServer(ThreadingHTTPServer):
    """ThreadingHTTPServer on a socket that already listens."""

    def __init__(self, sock):
        super().__init__(sock.getsockname(), Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock


def main():
    sock = passed_socket()
    if sock is not None:
        server = ActivatedServer(sock)
        print("listening on passed fd 3 (%s:%d)" % sock.getsockname(), flush=True)
    else:
        port = int(os.environ.get("PORT", "8000"))
        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        print("listening on 127.0.0.1:%d (no socket passed)" % port, flush=True)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()
