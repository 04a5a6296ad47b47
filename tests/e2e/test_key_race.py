"""End-to-end: the data key is never freed under work that uses it. Seal and
unseal race reconciles (credentials read on the thread pool), git fetches
(the token) and webhook deliveries (the webhook secret) for a while; the
daemon must stay up and keep answering. Under the TSan-built binary (the
'tsan' suite) a data race on the key stops the daemon and fails the test."""
import json
import socket
import threading
import time
import uuid

import pytest

from test_gitops import PASS, GitOps
from test_unseal_limits import UnixHTTPConnection

SPEC = """
[containers.@keyed]
image = "${versions.busybox}"
command = ["sleep", "3600"]
env = { SECRET = "${credentials.gitops.secret}" }
stop_timeout = "1s"
"""

SECONDS = 12


def unix_request(path, method, target, body=None, token=None):
    conn = UnixHTTPConnection(path, timeout=60)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    conn.request(method, target, body=json.dumps(body) if body is not None else None,
                 headers=headers)
    r = conn.getresponse()
    data = r.read().decode()
    conn.close()
    return r.status, data


@pytest.fixture
def racing(project, tmp_path):
    g = GitOps(project, tmp_path, poll="1s")
    yield g
    g.close()


def test_seal_and_unseal_race_reconciles_fetches_and_webhooks(racing, tmp_path):
    g = racing
    head = g.push(SPEC, "a container with a credential")
    g.start()
    g.wait(lambda: g.status()["locked"] is False, "the credential's unseal")
    g.wait(lambda: g.running("keyed"), "the keyed container")
    token = open(g.token_file).read().strip()
    sock = str(tmp_path / "api.sock")
    stop = time.time() + SECONDS
    counts = {"seal": 0, "unseal": 0, "webhook": 0, "reconcile": 0}
    errors = []

    def loop(name, step):
        try:
            while time.time() < stop:
                step()
                counts[name] += 1
        except Exception as e:  # noqa: BLE001 -- reported below
            errors.append(f"{name}: {e!r}")

    def seal():
        code, body = unix_request(sock, "POST", "/v1/seal", token=token)
        assert code == 200, body
        time.sleep(0.05)

    def unseal():
        code, body = unix_request(sock, "POST", "/v1/unseal", {"passphrase": PASS})
        assert code in (200, 429), body
        time.sleep(0.05)

    def webhook():
        code, body = g.deliver({"ref": "refs/heads/main", "after": head,
                                "repository": {"full_name": "olsitec/foundation"}},
                               delivery=str(uuid.uuid4()))
        assert code in (200, 202, 503), body

    def reconcile():
        code, body = g.request("POST", "/v1/reconcile", token=True)
        assert code == 202, body
        time.sleep(0.02)

    def sealer():
        while time.time() < stop:
            seal()
            unseal()
            counts["seal"] += 1

    threads = [threading.Thread(target=sealer),
               threading.Thread(target=loop, args=("webhook", webhook)),
               threading.Thread(target=loop, args=("webhook", webhook)),
               threading.Thread(target=loop, args=("reconcile", reconcile))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=SECONDS + 120)
    print(f"key race: {counts}")
    out = g.output()
    assert not errors, "\n".join(errors) + "\n" + out[-4000:]
    assert g.proc.poll() is None, out[-6000:]
    assert "ThreadSanitizer" not in out, out[-6000:]
    assert counts["seal"] >= 5 and counts["webhook"] >= 20, counts
    # Still whole: unsealed again, it converges.
    code, body = unix_request(sock, "POST", "/v1/unseal", {"passphrase": PASS})
    assert code in (200, 429), body
    g.wait(lambda: g.status()["locked"] is False or
           unix_request(sock, "POST", "/v1/unseal", {"passphrase": PASS})[0] == 200,
           "unlocked after the race")
    g.wait(lambda: g.running("keyed"), "the keyed container after the race")
