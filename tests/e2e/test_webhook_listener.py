"""End-to-end `[api] webhook_listen`: the forge reaches the daemon on an
address of its own, which serves the webhook route and nothing else. A real
git repository on `git http-backend` (tests/e2e/test_gitops.py's GitOps), its
post-receive hook delivering Forgejo-signed webhooks to that address only,
and the built foundationd as a black box: a signed push delivery reconciles
the pushed revision (polling is off: 1h); an unsigned or badly signed one is
refused and fetches nothing; every other route there is 404, even from
loopback and with the API token (the daemon stays unlocked)."""
import http.client
import json
import os
import time

import pytest

from conftest import free_port
from test_gitops import ONE, TWO, GitOps


def hook_request(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


@pytest.fixture
def listener(project, tmp_path):
    g = GitOps(project, tmp_path)
    g.hook_port = free_port()
    # The webhook listener beside the API's own listeners, and the forge's
    # hook pointed at it (not at the API's TCP address).
    g.config.write_text(g.config.read_text().replace(
        "token_file =", f'webhook_listen = ["tcp:127.0.0.1:{g.hook_port}"]\ntoken_file =', 1))
    hook_file = os.path.join(g.bare, "webhook.json")
    with open(hook_file) as f:
        hook = json.load(f)
    hook["url"] = f"http://127.0.0.1:{g.hook_port}/v1/hooks/forgejo"
    with open(hook_file, "w") as f:
        json.dump(hook, f)
    yield g
    g.close()


def test_webhook_listener_reconciles_signed_pushes_and_serves_nothing_else(listener):
    g = listener
    first = g.push(ONE, "one container")
    g.start()
    g.wait(lambda: g.status()["spec"]["applied_revision"] == first, "first revision applied")
    assert hook_request(g.hook_port, "GET", "/healthz")[0] == 404  # listening, serving nothing

    # push -> the hook's signed delivery to the webhook listener -> fetch -> converged.
    second = g.push(TWO, "add api")
    g.wait(lambda: g.status()["spec"]["applied_revision"] == second,
           "the pushed revision applied after the webhook", timeout=60)
    assert g.running("api")
    accepted = [e for e in g.events() if e["event"] == "webhook.accepted"]
    assert accepted and accepted[-1]["fields"]["commit"] == second

    # Unsigned and badly signed deliveries on the listener: 401, nothing fetched.
    fetches = g.metric("foundationd_spec_fetches_total")
    rejected = g.metric('foundationd_webhook_deliveries_total{result="bad_signature"}')
    body = json.dumps({"ref": "refs/heads/main", "after": "1" * 40}).encode()
    code, text = hook_request(g.hook_port, "POST", "/v1/hooks/forgejo", body=body, headers={
        "Content-Type": "application/json", "X-Forgejo-Event": "push",
        "X-Forgejo-Delivery": "unsigned-1"})
    assert code == 401, text
    code, text = hook_request(g.hook_port, "POST", "/v1/hooks/forgejo", body=body, headers={
        "Content-Type": "application/json", "X-Forgejo-Event": "push",
        "X-Forgejo-Delivery": "bad-1", "X-Forgejo-Signature": "0" * 64})
    assert code == 401, text
    time.sleep(1.5)
    assert g.metric("foundationd_spec_fetches_total") == fetches
    assert g.metric('foundationd_webhook_deliveries_total{result="bad_signature"}') == rejected + 2
    assert g.status()["spec"]["applied_revision"] == second

    # Every other route on the listener: 404, from loopback, with the token.
    token = "Bearer " + open(g.token_file).read().strip()
    auth = {"Authorization": token, "Content-Type": "application/json"}
    for method, path, payload in [
            ("GET", "/v1/status", None), ("GET", "/healthz", None), ("GET", "/metrics", None),
            ("GET", "/v1/events?since=0", None), ("GET", "/v1/plan", None),
            ("POST", "/v1/seal", b"{}"), ("POST", "/v1/reconcile", b"{}"),
            ("POST", "/v1/unseal", json.dumps({"passphrase": "wrong but long enough"}).encode()),
            ("POST", "/v1/rotate", b'{"credential":"gitops"}'), ("GET", "/v1/hooks/forgejo", None)]:
        code, text = hook_request(g.hook_port, method, path, body=payload, headers=auth)
        assert code == 404, f"{method} {path} on the webhook listener: {code} {text}"
    # The seal was not applied and the unseal not counted: still unlocked, and
    # the API's own listener still answers as before.
    assert g.status()["locked"] is False
    assert g.request("GET", "/v1/status")[0] == 200
