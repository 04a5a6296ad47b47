"""End-to-end signed commits: the spec repository on the real git server of
the GitOps tests (Debian's `git http-backend`, webhooks from its post-receive
hook), commits signed with SSH keys made by ssh-keygen, and foundationd with
`[source] allowed_signers` in its daemon config. A signed push is applied; an
unsigned push and a push signed by an unknown key are refused with the reason
in `status`, `/v1/events` and `/metrics` while the last good revision stays in
force; rotating the trust list and reloading (SIGHUP) takes effect."""
import os
import signal
import subprocess

import pytest

from test_gitops import GitOps, ONE, TWO


def keygen(tmp_path, name):
    path = str(tmp_path / name)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path],
                   check=True, capture_output=True)
    pub = open(path + ".pub").read().strip()
    fp = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", path + ".pub"], check=True,
                        capture_output=True, text=True).stdout.split()[1]
    return path, pub, fp


@pytest.fixture
def trusted(project, tmp_path):
    g = GitOps(project, tmp_path)
    g.alice, g.alice_pub, g.alice_fp = keygen(tmp_path, "alice")
    g.mallory, g.mallory_pub, g.mallory_fp = keygen(tmp_path, "mallory")
    g.signers = tmp_path / "allowed_signers"
    g.signers.write_text(f"alice@example.org {g.alice_pub}\n")
    text = g.config.read_text().replace(
        "[reconcile]", f'allowed_signers = "{g.signers}"\nrequire_signed = true\n[reconcile]')
    g.config.write_text(text)
    yield g
    g.close()


def push(g, body, message, key=None):
    with open(os.path.join(g.work, "foundation.toml"), "w") as f:
        f.write(g.spec(body))
    g.git("add", "-A")
    sign = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={key}", "commit", "-S"] if key else ["commit"]
    g.git(*sign, "-q", "--allow-empty", "-m", message)
    commit = g.git("rev-parse", "HEAD")
    g.git("push", "-q", "origin", "HEAD:refs/heads/main")
    return commit


def untrusted_events(g):
    return [e for e in g.events() if e["event"] == "spec.untrusted"]


def test_signed_applied_unsigned_and_unknown_key_refused_rotation_on_reload(trusted):
    g = trusted
    first = push(g, ONE, "one container, signed by alice", key=g.alice)
    g.start()
    g.wait(lambda: g.status()["spec"]["applied_revision"] == first, "the signed revision applied")
    assert g.running("web")
    st = g.status()["spec"]
    assert st["in_force"] == first
    assert st["signed_by"] == f"alice@example.org ({g.alice_fp})", st

    # Unsigned: the webhook is accepted (202), nothing changes, status says why.
    unsigned = push(g, TWO, "add api, unsigned")
    g.wait(lambda: g.status()["spec"]["revision"] == unsigned, "the unsigned revision seen")
    st = g.status()["spec"]
    assert "no signature" in st["last_error"] and unsigned[:12] in st["last_error"], st
    assert f"revision {first[:12]} stays in force" in st["last_error"], st
    assert st["in_force"] == first and st["applied_revision"] == first
    assert g.p.container("api") is None
    assert any(e["event"] == "webhook.accepted" and e["fields"]["commit"] == unsigned
               for e in g.events())
    ev = untrusted_events(g)
    assert ev and ev[-1]["fields"]["revision"] == unsigned and ev[-1]["fields"]["verdict"] == "unsigned"
    assert g.metric('foundationd_spec_rejected_total{reason="unsigned"}') == 1
    code, body = g.deliver({"ref": "refs/heads/main", "after": unsigned})
    assert code == 202, body
    r = g.p.run("status", "--config", str(g.config))
    assert "no signature" in r.stdout and first[:12] in r.stdout, r.stdout

    # Signed by a key that is not in the trust list: refused, the key named.
    rogue = push(g, TWO, "add api, signed by mallory", key=g.mallory)
    g.wait(lambda: g.status()["spec"]["revision"] == rogue, "mallory's revision seen")
    st = g.status()["spec"]
    assert g.mallory_fp in st["last_error"] and "not in the allowed signers" in st["last_error"], st
    assert st["in_force"] == first
    assert g.p.container("api") is None
    ev = untrusted_events(g)
    assert ev[-1]["fields"]["revision"] == rogue and ev[-1]["fields"]["key"] == g.mallory_fp
    assert ev[-1]["fields"]["verdict"] == "unknown_key"
    assert g.metric('foundationd_spec_rejected_total{reason="unknown_key"}') == 1

    # The trust list rotated (mallory in, alice out) and reloaded: the head is
    # verified again and applied; alice's next commit is refused.
    g.signers.write_text(f"mallory@example.org {g.mallory_pub}\n")
    g.proc.send_signal(signal.SIGHUP)
    g.wait(lambda: g.status()["spec"]["applied_revision"] == rogue, "mallory's revision applied after the reload")
    g.wait(lambda: g.running("api"), "api from the now trusted revision")
    st = g.status()["spec"]
    assert st["signed_by"] == f"mallory@example.org ({g.mallory_fp})" and st["last_error"] is None, st
    late = push(g, TWO.replace('"3600"', '"3601"'), "alice, no longer trusted", key=g.alice)
    g.wait(lambda: g.status()["spec"]["revision"] == late, "alice's revision seen")
    st = g.status()["spec"]
    assert g.alice_fp in st["last_error"] and st["in_force"] == rogue, st
    assert g.p.container("api")["Config"]["Cmd"] == ["sleep", "3600"]

