"""A real forward proxy for the tests, run as its own process.

    python proxy_server.py [--auth user:password]

Prints `{"port": N}` once it listens. Handles plain-HTTP forwarding (absolute
URI requests) and CONNECT tunnels (https), checks Proxy-Authorization when
--auth is given (407 otherwise), and prints one JSON line per request it
handled: {"verb", "target", "auth_ok"}.
"""

import argparse
import base64
import json
import select
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

LOG_LOCK = threading.Lock()


def log(**entry):
    with LOG_LOCK:
        sys.stdout.write(json.dumps(entry) + "\n")
        sys.stdout.flush()


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    expected_auth: str | None = None

    def log_message(self, *args):
        pass

    def _authorised(self) -> bool:
        if not self.expected_auth:
            return True
        header = self.headers.get("Proxy-Authorization", "")
        ok = header == "Basic " + base64.b64encode(self.expected_auth.encode()).decode()
        if not ok:
            body = b"proxy authentication required"
            self.send_response(407)
            self.send_header("Proxy-Authenticate", 'Basic realm="test"')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        return ok

    def do_CONNECT(self):
        ok = self._authorised()
        log(verb="CONNECT", target=self.path, auth_ok=ok)
        if not ok:
            return
        host, _, port = self.path.rpartition(":")
        try:
            upstream = socket.create_connection((host, int(port)), timeout=10)
        except OSError:
            self.send_error(502)
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        self.close_connection = True
        sockets = [self.connection, upstream]
        try:
            while True:
                ready, _, _ = select.select(sockets, [], [], 30)
                if not ready:
                    break
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    (upstream if s is self.connection else self.connection).sendall(data)
        finally:
            upstream.close()

    def _forward(self):
        ok = self._authorised()
        log(verb=self.command, target=self.path, auth_ok=ok)
        if not ok:
            return
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        upstream = socket.create_connection((url.hostname, url.port or 80), timeout=30)
        path = url.path + (f"?{url.query}" if url.query else "")
        headers = "".join(
            f"{k}: {v}\r\n"
            for k, v in self.headers.items()
            if k.lower() not in ("proxy-authorization", "proxy-connection", "connection")
        )
        upstream.sendall(f"{self.command} {path} HTTP/1.1\r\n{headers}Connection: close\r\n\r\n".encode() + body)
        chunks = []
        while data := upstream.recv(65536):
            chunks.append(data)
        upstream.close()
        self.close_connection = True
        self.wfile.write(b"".join(chunks))

    do_GET = do_POST = _forward


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--auth")
    ns = p.parse_args()
    Proxy.expected_auth = ns.auth
    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    server.daemon_threads = True
    log(port=server.server_address[1])
    server.serve_forever()


if __name__ == "__main__":
    main()
