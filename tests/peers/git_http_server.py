#!/usr/bin/env python3
"""A real git server for tests: Debian's `git http-backend` (smart HTTP) run
as a CGI behind Python's http.server on loopback, plus a post-receive hook
that delivers Forgejo-style push webhooks (X-Forgejo-Event/-Delivery/
-Signature, HMAC-SHA256 of the body) to a URL.

  git_http_server.py serve --root DIR --port N [--token-file F]
      Serves every bare repository under DIR at http://127.0.0.1:N/<name>.git.
      With --token-file, every request needs `Authorization: Basic
      base64(<any user>:<token>)` (the token re-read per request, so a test
      can change it); anything else is 401. A file DIR/.slow holding a
      number of seconds delays each request by that much (to watch a fetch
      while it runs). Each request is logged as one line on stderr (the
      Authorization header never).
  git_http_server.py hook
      post-receive hook: reads "<old> <new> <ref>" lines; posts one delivery
      per ref to the URL in $GIT_DIR/webhook.json ({"url":..,"secret":..,
      "repository":..}) when that file exists.
"""
import argparse
import base64
import hashlib
import hmac
import http.server
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid


def serve(args):
    root = os.path.abspath(args.root)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):
            sys.stderr.write("git-server: %s\n" % (fmt % a))

        def _authorized(self):
            if not args.token_file:
                return True
            try:
                token = open(args.token_file).read().strip()
            except OSError:
                return False
            header = self.headers.get("Authorization", "")
            if not header.startswith("Basic "):
                return False
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except Exception:
                return False
            return hmac.compare_digest(password, token) or hmac.compare_digest(user, token)

        def _body(self):
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                out = b""
                while True:
                    size = int(self.rfile.readline().strip().split(b";")[0], 16)
                    if size == 0:
                        self.rfile.readline()
                        return out
                    out += self.rfile.read(size)
                    self.rfile.readline()
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def _handle(self):
            slow = os.path.join(root, ".slow")
            if os.path.exists(slow):
                time.sleep(float(open(slow).read().strip() or 0))
            body = self._body() if self.command == "POST" else b""
            if not self._authorized():
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            path, _, query = self.path.partition("?")
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "GIT_PROJECT_ROOT": root,
                "GIT_HTTP_EXPORT_ALL": "1",
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "REQUEST_METHOD": self.command,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "REMOTE_USER": "tester",
                "REMOTE_ADDR": "127.0.0.1",
                "GIT_CONFIG_NOSYSTEM": "1",
                "HOME": root,
            }
            if self.headers.get("Content-Encoding"):
                env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
            if self.headers.get("Git-Protocol"):
                env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
            p = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True)
            head, _, payload = p.stdout.partition(b"\r\n\r\n")
            if not _:
                head, _, payload = p.stdout.partition(b"\n\n")
            status = 200
            headers = []
            for line in head.decode(errors="replace").splitlines():
                k, _, v = line.partition(":")
                if k.lower() == "status":
                    status = int(v.strip().split()[0])
                elif k:
                    headers.append((k, v.strip()))
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = _handle
        do_POST = _handle

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    sys.stderr.write(f"git-server: serving {root} on 127.0.0.1:{args.port}\n")
    sys.stderr.flush()
    server.serve_forever()


def hook(_args):
    git_dir = os.environ.get("GIT_DIR", ".")
    cfg_path = os.path.join(git_dir, "webhook.json")
    if not os.path.exists(cfg_path):
        return
    cfg = json.load(open(cfg_path))
    for line in sys.stdin:
        parts = line.split()
        if len(parts) != 3:
            continue
        old, new, ref = parts
        body = json.dumps({
            "ref": ref, "before": old, "after": new,
            "repository": {"full_name": cfg.get("repository", "olsitec/foundation")},
            "pusher": {"login": "tester"}, "commits": [],
        }).encode()
        sig = hmac.new(cfg["secret"].encode(), body, hashlib.sha256).hexdigest()
        req = urllib.request.Request(cfg["url"], data=body, method="POST", headers={
            "Content-Type": "application/json",
            "X-Forgejo-Event": "push",
            "X-Forgejo-Delivery": str(uuid.uuid4()),
            "X-Forgejo-Signature": sig,
        })
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                print(f"webhook: {r.status}", file=sys.stderr)
        except Exception as e:  # a failed delivery must not fail the push
            print(f"webhook: failed: {e}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--root", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--token-file")
    sub.add_parser("hook")
    args = ap.parse_args()
    serve(args) if args.cmd == "serve" else hook(args)


if __name__ == "__main__":
    main()
