"""End-to-end automatic rollback: the spec repository on the real git server
of the GitOps tests, foundationd with `[source] settle` in its daemon config,
and the real Docker engine. A revision whose container fails its healthcheck
is rolled back to the previous revision within the settle period plus one
reconcile, the good revision's container runs again, the bad revision is not
applied again, and a later fixed commit is applied normally."""
import signal
import time

import pytest

from test_gitops import GitOps

SETTLE = 6

GOOD = """
[containers.@web]
image = "${versions.busybox}"
command = ["sleep", "3600"]
stop_timeout = "1s"
healthcheck = { test = ["CMD-SHELL", "exit 0"], interval = "1s", retries = 1 }
"""

BAD = GOOD.replace('"exit 0"', '"exit 1"')
FIXED = GOOD.replace('"3600"', '"3601"')


@pytest.fixture
def settling(project, tmp_path):
    g = GitOps(project, tmp_path)
    text = g.config.read_text().replace("[reconcile]", f'settle = "{SETTLE}s"\n[reconcile]')
    g.config.write_text(text)
    yield g
    g.close()


def check(g):
    c = g.p.container("web")  # None while it is being recreated
    return c and c["Config"]["Healthcheck"]["Test"]


def health(g):
    c = g.p.container("web")
    return c and c["State"].get("Health", {}).get("Status")


def restart_keeps_it_rolled_back(g, good, bad):
    """Restarts the daemon: the revision history says `bad` was rolled back,
    so `good` stays in force and `bad`, fetched again, is not applied."""
    g.proc.send_signal(signal.SIGTERM)
    assert g.proc.wait(timeout=30) == 0
    g.start()
    g.wait(lambda: g.status()["spec"]["last_fetch"] is not None, "the first fetch after the restart")
    st = g.status()["spec"]
    assert st["in_force"] == good and st["revision"] == bad and "not applied again" in (st["last_error"] or ""), \
        f"{st}\n{g.output()[-8000:]}"


def test_failing_revision_rolls_back_and_a_fix_applies(settling):
    g = settling
    good = g.push(GOOD, "web, healthy")
    g.start()
    g.wait(lambda: g.status()["spec"]["applied_revision"] == good, "the good revision applied")
    g.wait(lambda: health(g) == "healthy", "web healthy")

    # The bad revision: web is recreated with a failing healthcheck, turns
    # unhealthy, and the good revision is put back within settle + a reconcile.
    bad = g.push(BAD, "web, healthcheck broken")
    g.wait(lambda: g.status()["spec"]["revision"] == bad, "the bad revision fetched")
    pushed = time.time()
    g.wait(lambda: g.status()["spec"]["rolled_back"] is not None, "the rollback", timeout=SETTLE + 30)
    st = g.status()["spec"]
    assert st["in_force"] == good, st
    assert bad[:12] in st["rolled_back"] and good[:12] in st["rolled_back"], st
    assert "web" in st["rolled_back"] and "unhealthy" in st["rolled_back"], st
    assert "not applied again" in st["last_error"], st
    g.wait(lambda: check(g) == ["CMD-SHELL", "exit 0"],
           "web recreated with the good revision's config", timeout=30)
    g.wait(lambda: health(g) == "healthy", "web healthy again", timeout=30)
    g.wait(lambda: g.status()["spec"]["applied_revision"] == good, "the good revision applied again")
    assert time.time() - pushed < SETTLE + 30
    ev = g.events()
    rolled = [e for e in ev if e["event"] == "spec.rolled_back"]
    assert len(rolled) == 1 and rolled[0]["fields"]["revision"] == bad and rolled[0]["fields"]["to"] == good
    assert g.metric("foundationd_spec_rollbacks_total") == 1
    assert g.metric('foundationd_spec_rejected_total{reason="rolled_back"}') == 1
    r = g.p.run("status", "--config", str(g.config))
    assert "rollback:" in r.stdout and bad[:12] in r.stdout and f"in force:   {good}" in r.stdout, r.stdout
    assert "spec.rolled_back" in g.output()

    # Re-delivered, the bad revision is not applied again.
    code, body = g.deliver({"ref": "refs/heads/main", "after": bad})
    assert code == 202, body
    time.sleep(3)
    assert check(g) == ["CMD-SHELL", "exit 0"]
    assert g.status()["spec"]["in_force"] == good
    # Nor after a restart (the revision history says it was rolled back).
    restart_keeps_it_rolled_back(g, good, bad)
    time.sleep(2)
    assert check(g) == ["CMD-SHELL", "exit 0"]

    # A later fixed commit is applied normally and passes its settle period.
    fixed = g.push(FIXED, "web, fixed")
    g.wait(lambda: g.status()["spec"]["applied_revision"] == fixed, "the fixed revision applied")
    assert g.p.container("web")["Config"]["Cmd"] == ["sleep", "3601"]
    g.wait(lambda: any(e["event"] == "spec.settled" and e["fields"]["revision"] == fixed
                       for e in g.events()), "the fixed revision settled", timeout=SETTLE + 20)
    st = g.status()["spec"]
    assert st["in_force"] == fixed and st["last_error"] is None, st
    assert len([e for e in g.events() if e["event"] == "spec.rolled_back"]) == 1


# The spec sets its own settle period ([rollout] settle; the daemon config
# has none), and the watch survives a restart of the daemon: web turns
# unhealthy only after the restart, and is still rolled back.
SPEC_SETTLE = '[rollout]\nsettle = "40s"\n'
LATE = SPEC_SETTLE + """
[containers.@web]
image = "${versions.busybox}"
command = ["sh", "-c", "sleep 10; touch /tmp/bad; exec sleep 3600"]
stop_timeout = "1s"
healthcheck = { test = ["CMD-SHELL", "test ! -f /tmp/bad"], interval = "1s", retries = 1 }
"""


def test_spec_settle_and_a_restart_during_the_watch(project, tmp_path):
    g = GitOps(project, tmp_path)
    try:
        good = g.push(SPEC_SETTLE + GOOD, "web, healthy")
        g.start()
        g.wait(lambda: g.status()["spec"]["applied_revision"] == good, "the good revision applied")
        g.wait(lambda: health(g) == "healthy", "web healthy")

        bad = g.push(LATE, "web, fails after 10 s")
        g.wait(lambda: g.status()["spec"]["applied_revision"] == bad, "the bad revision applied")
        assert "event=spec.settle " in g.output() and "settle_s=40" in g.output(), g.output()
        # Restarted while web is still healthy: the watch is in the state.
        g.proc.send_signal(signal.SIGTERM)
        assert g.proc.wait(timeout=30) == 0
        g.start()
        g.wait(lambda: g.status()["spec"]["rolled_back"] is not None, "the rollback after the restart",
               timeout=60)
        st = g.status()["spec"]
        assert st["in_force"] == good, st
        assert bad[:12] in st["rolled_back"] and "unhealthy" in st["rolled_back"], st
        g.wait(lambda: check(g) == ["CMD-SHELL", "exit 0"], "web recreated with the good revision's config",
               timeout=30)
        rolled = [e for e in g.events() if e["event"] == "spec.rolled_back"]
        assert len(rolled) == 1 and rolled[0]["fields"]["revision"] == bad and rolled[0]["fields"]["to"] == good
    finally:
        g.close()


# A pass still applying the bad revision when it is rolled back (web turns
# unhealthy while `slow`, which depends on web, takes 10 s to stop): when that
# pass ends it must not record the bad revision applied again, or a restart
# would restore it.
PAIR = """
[containers.@slow]
image = "${versions.busybox}"
command = ["sleep", "3600"]
env = { ROUND = "%s" }
stop_timeout = "10s"
depends_on = ["@web"]
"""


def test_a_pass_still_running_when_its_revision_is_rolled_back_does_not_apply_it(settling):
    g = settling
    good = g.push(GOOD + PAIR % "1", "web and slow")
    g.start()
    g.wait(lambda: g.status()["spec"]["applied_revision"] == good, "the good revision applied")
    g.wait(lambda: health(g) == "healthy", "web healthy")

    bad = g.push(BAD + PAIR % "2", "web broken, slow changed")
    g.wait(lambda: g.status()["spec"]["rolled_back"] is not None, "the rollback", timeout=SETTLE + 30)
    g.wait(lambda: g.status()["spec"]["applied_revision"] == good, "the good revision applied again",
           timeout=60)
    g.wait(lambda: not g.status()["last_reconcile"]["running"], "the rollback's pass done", timeout=60)
    # The rollback came while the bad revision's pass was still stopping slow.
    log = g.output().splitlines()
    start = next(i for i, l in enumerate(log)
                 if "event=reconcile.start" in l and f"spec revision {bad[:12]}" in l)
    done = next(i for i in range(start, len(log)) if "event=reconcile.done" in log[i])
    rolled = next(i for i, l in enumerate(log) if "event=spec.rolled_back" in l)
    assert start < rolled < done, "\n".join(log[start:])
    applied = [e["fields"]["revision"] for e in g.events() if e["event"] == "spec.applied"]
    assert applied == [good, good], (applied, g.output()[-8000:])

    restart_keeps_it_rolled_back(g, good, bad)
