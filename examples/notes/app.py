#!/usr/bin/env python3
"""A tiny notes app, one per tenant: the example that `make demo` runs under
tenement. Standard library only.

tenement starts one copy per tenant (`notes:alice`, `notes:bob`) and gives each
its own $PORT and $DATA_DIR; the notes live in $DATA_DIR/notes.json, so every
tenant's notes are separate without the app knowing about tenants at all.

    GET  /        the notes, one per line (JSON with ?format=json)
    POST /        add the request body as a note
    GET  /health  200 ok
"""

import json
import os
import sys
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

DATA_DIR = os.environ.get("DATA_DIR", ".")
NOTES = os.path.join(DATA_DIR, "notes.json")
TENANT = os.environ.get("INSTANCE_ID", "someone")
LOCK = threading.Lock()


def load():
    try:
        with open(NOTES) as f:
            return json.load(f)
    except FileNotFoundError:
        return []


def save(notes):
    # Write a temp file and rename it: a crash never leaves half a file.
    tmp = NOTES + ".tmp"
    with open(tmp, "w") as f:
        json.dump(notes, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, NOTES)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "notes/1"

    def log_message(self, fmt, *args):
        sys.stderr.write("notes: " + (fmt % args) + "\n")

    def reply(self, status, body, ctype="text/plain; charset=utf-8"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/health":
            self.reply(200, "ok\n")
            return
        if url.path != "/":
            self.reply(404, "not found\n")
            return
        with LOCK:
            notes = load()
        if parse_qs(url.query).get("format") == ["json"]:
            self.reply(200, json.dumps({"tenant": TENANT, "notes": notes}) + "\n", "application/json")
            return
        lines = ["%s's notes (%d):" % (TENANT, len(notes))]
        lines += ["- %s  (%s)" % (n["text"], n["at"]) for n in notes]
        self.reply(200, "\n".join(lines) + "\n")

    def do_POST(self):
        if urlsplit(self.path).path != "/":
            self.reply(404, "not found\n")
            return
        length = int(self.headers.get("Content-Length") or 0)
        text = self.rfile.read(length).decode("utf-8", "replace").strip()
        if not text:
            self.reply(400, "empty note: send the text as the request body\n")
            return
        at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        with LOCK:
            notes = load()
            notes.append({"text": text, "at": at})
            save(notes)
        self.reply(201, "added note %d for %s\n" % (len(notes), TENANT))


def main():
    port = int(os.environ.get("PORT", "8000"))
    host = os.environ.get("HOST", "127.0.0.1")
    os.makedirs(DATA_DIR, exist_ok=True)
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    print("notes for %s listening on %s:%d, data in %s" % (TENANT, host, port, DATA_DIR), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
