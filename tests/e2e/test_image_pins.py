"""End-to-end image pins against the real Docker engine: a container pinned by
image ID (`sha256:...`, what the test images made with `docker import` have:
they carry no repository digest) that runs another image is drift: `plan`
says why and `apply` recreates it from the pinned image; `plan --json` shows
the image each container runs."""
import json

from conftest import docker

SPEC = """
[containers.@web]
image = "{pin}"
command = ["sleep", "3600"]
stop_timeout = "1s"
"""


def test_container_running_another_image_than_its_pin_is_recreated(project):
    p = project
    pin = docker("image", "inspect", "--format", "{{.Id}}", p.image).stdout.strip()
    assert pin.startswith("sha256:") and len(pin) == 71
    spec = p.write(SPEC.replace("{pin}", pin))
    r = p.run("check", spec)
    assert r.returncode == 0 and "not pinned" not in r.stderr, r.stderr  # an image ID is a pin
    r = p.run("apply", "--once", "--spec", spec)
    assert r.returncode == 0, r.stdout + r.stderr
    web = p.container("web")
    assert web["Image"] == pin
    r = p.run("plan", "--spec", spec, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["running_images"] == {f"{p.name}-web": pin}

    # Someone replaces web with a container of another image, same name and
    # same labels (so the recorded config hash matches).
    other = f"fd-e2e-other-{p.name}"
    docker("commit", web["Id"], f"{other}:1")
    try:
        other_id = docker("image", "inspect", "--format", "{{.Id}}", f"{other}:1").stdout.strip()
        assert other_id != pin
        labels = []
        for k, v in web["Config"]["Labels"].items():
            labels += ["--label", f"{k}={v}"]
        docker("rm", "-f", web["Id"])
        docker("run", "-d", "--name", f"{p.name}-web", *labels, f"{other}:1", "sleep", "3600")

        r = p.run("plan", "--spec", spec, "--json")
        assert r.returncode == 2, r.stdout + r.stderr
        change = [c for c in json.loads(r.stdout)["changes"] if c["name"] == f"{p.name}-web"][0]
        assert change["action"] == "recreate"
        assert change["reason"] == (f"runs image {other}:1 ({other_id}), not the pinned image ID "
                                    f"{pin}"), change
        r = p.run("plan", "--spec", spec)
        assert "not the pinned image ID" in r.stdout, r.stdout

        r = p.run("apply", "--once", "--spec", spec)
        assert r.returncode == 0, r.stdout + r.stderr
        web = p.container("web")
        assert web["Image"] == pin and web["State"]["Running"]
        r = p.run("plan", "--spec", spec, "--json")
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        p.cleanup()
        docker("rmi", "-f", f"{other}:1", check=False)
