"""End-to-end: `plan` of the whole-stack spec (test_stack.py) covers every
controller, against the real peers (OpenBao, SeaweedFS, PostgreSQL, the
forge, Docker). One stack, converged once, serves every case:

1. unchanged: `plan` (with the passphrase) lists nothing and exits 0, `plan
   --json` the same;
2. locked (no passphrase): nothing is guessed; what needs a secret to be
   compared is listed as "cannot compare while locked", exit 0;
3. a change in each controller at once (a container's stop_timeout, a new
   credential mirrored to Vault, a Vault policy's rules, a bucket's expiry,
   a new database and a role's LOGIN removed by hand, a new organisation and
   a repository's description): `plan` shows every change and nothing else,
   `plan --json` the same, exit 2; nothing was changed by planning;
4. `plan --graph`: the dependency graph as DOT."""
import json
import re

import pytest

from test_stack import Stack


@pytest.fixture
def stack(project, tmp_path):
    s = Stack(project, tmp_path)
    yield s
    s.cleanup()


def plan(stack, spec, *extra, locked=False):
    args = ["plan", "--spec", spec, "--state-dir", stack.state, *extra]
    if not locked:
        args += ["--passphrase-file", stack.passfile]
    return stack.p.run(*args)


LINE = re.compile(r"^  ([+~>\-!?]) (\S+): (\w[\w-]*)", re.M)


def listed(text):
    """resource -> symbol, for every change line of a text plan."""
    return {m.group(2): m.group(1) for m in LINE.finditer(text)}


def json_changes(doc):
    """resource -> action of every change (unknowns apart) in a --json plan."""
    out = {c["resource"]: c["action"] for c in doc["changes"] if c["action"] != "orphan"}
    out.update({c["resource"]: c["action"] for c in doc["credentials"]
                if c["action"] in ("generate", "rotate")})
    out.update({c["resource"]: c["action"] for c in doc["services"] if c["action"] != "unknown"})
    return out


def test_plan_of_the_whole_stack(stack, tmp_path):
    stack.init()
    stack.apply()
    p = stack.p.name

    # 1. Unchanged: nothing listed, exit 0, in text and JSON.
    r = plan(stack, stack.spec)
    assert r.returncode == 0, r.stdout + r.stderr
    assert listed(r.stdout) == {}, r.stdout
    assert r.stdout.startswith("No changes."), r.stdout
    r = plan(stack, stack.spec, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["has_changes"] is False and doc["locked"] is False
    assert json_changes(doc) == {} and doc["services"] == [], doc

    # 2. Locked: what needs a secret is not compared, and says so.
    r = plan(stack, stack.spec, locked=True)
    assert r.returncode == 0, r.stdout + r.stderr
    seen = listed(r.stdout)
    assert set(seen.values()) == {"?"}, r.stdout
    for resource in ("vault.kv/app/db", "vault.policy/app", "vault.mount/foundation",
                     "postgres.main/role/app", "forgejo.admin/platform-admin",
                     "forgejo.org/olsitec", "forgejo.repo/olsitec/foundation",
                     "forgejo.runner-token"):
        assert seen.get(resource) == "?", (resource, r.stdout)
    assert "cannot compare while locked" in r.stdout
    # What needs no secret is compared all the same (the database, the buckets'
    # server needs its keys: not compared).
    assert "postgres.main/database/appdb" not in seen, r.stdout
    r = plan(stack, stack.spec, "--json", locked=True)
    assert r.returncode == 0
    doc = json.loads(r.stdout)
    assert doc["locked"] is True and doc["has_changes"] is False and json_changes(doc) == {}
    role = next(c for c in doc["services"] if c["resource"] == "postgres.main/role/app")
    assert role["action"] == "unknown" and role["reason"] == "password: cannot compare while locked"

    # 3. A change in each controller.
    text = open(stack.spec).read()
    changed = (text
               .replace('stop_timeout = "1s"\n\n[containers.' + p + '-forge]',
                        'stop_timeout = "2s"\n\n[containers.' + p + '-forge]')
               .replace("expire_days = 7", "expire_days = 8")
               .replace('capabilities = ["read"] }', 'capabilities = ["read", "list"] }')
               .replace('[postgres.main.databases.appdb]\nowner = "app"',
                        '[postgres.main.databases.appdb]\nowner = "app"\n'
                        '[postgres.main.databases.appdb2]\nowner = "app"')
               .replace("[forgejo.orgs.olsitec]", "[forgejo.orgs.olsitec]\n[forgejo.orgs.olsitec2]")
               .replace('[forgejo.repos."olsitec/foundation"]',
                        '[forgejo.repos."olsitec/foundation"]\ndescription = "the foundation"')
               + '\n[credentials.extra]\nvault_path = "app/extra"\n'
                 '[credentials.extra.fields]\ntoken = { generate = "hex", bytes = 8 }\n')
    assert changed.count("expire_days = 8") == 1 and "appdb2" in changed and "olsitec2" in changed
    assert 'stop_timeout = "2s"\n\n[containers.' + p + '-forge]' in changed
    spec2 = str(tmp_path / "changed.toml")
    open(spec2, "w").write(changed)
    stack.sql("ALTER ROLE app NOLOGIN")  # drift, by hand
    expected = {
        f"container.{p}-app": "~",
        "credential.extra.token": "+",
        "vault.kv/app/extra": "+",
        "vault.policy/app": "~",
        f"bucket.{p}-backups": "~",
        "postgres.main/database/appdb2": "+",
        "postgres.main/role/app": "~",
        "forgejo.org/olsitec2": "+",
        "forgejo.repo/olsitec/foundation": "~",
    }
    r = plan(stack, spec2)
    assert r.returncode == 2, r.stdout + r.stderr
    assert listed(r.stdout) == expected, r.stdout
    assert "login: false -> true" in r.stdout
    assert 'description: (none) -> the foundation' in r.stdout
    assert "token: (none) -> (generated by this apply)" in r.stdout
    assert stack.secret("app-db.password") not in r.stdout
    r = plan(stack, spec2, "--json")
    assert r.returncode == 2, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["has_changes"] is True
    assert json_changes(doc) == {
        f"container.{p}-app": "recreate",
        "credential.extra.token": "generate",
        "vault.kv/app/extra": "create",
        "vault.policy/app": "update",
        f"bucket.{p}-backups": "update",
        "postgres.main/database/appdb2": "create",
        "postgres.main/role/app": "update",
        "forgejo.org/olsitec2": "create",
        "forgejo.repo/olsitec/foundation": "update",
    }, doc
    assert not [c for c in doc["services"] if c["action"] == "unknown"], doc
    # Planning changed nothing: the role is still NOLOGIN, the spec's plan unchanged.
    assert stack.sql("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'app'").strip() == "f"
    assert stack.kv("app/extra") is None

    # 4. The dependency graph, as DOT.
    r = plan(stack, stack.spec, "--graph")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f'digraph "{p}" {{')
    assert f'"container.{p}-app" -> "container.{p}-pg";' in r.stdout
