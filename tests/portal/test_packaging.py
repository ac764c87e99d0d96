"""The production packaging: docker-compose.yml as Compose reads it, and the Dockerfile's steps.

No Docker engine runs here, so the image is not built. Compose's `config` needs no engine: it
validates the file against the Compose schema and prints it resolved (anchors merged, variables
substituted), which is what these tests read. `docker compose` (v2) is used when the Docker CLI
has it, else `docker-compose` (v1, Debian's package; .ci/run installs it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml
from django.conf import settings

BASE_DIR = settings.BASE_DIR
PORTAL_SERVICES = {"web", "worker", "beat", "canary"}


def compose_command() -> list[str]:
    if (
        shutil.which("docker")
        and subprocess.run(["docker", "compose", "version"], capture_output=True, check=False).returncode == 0
    ):
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail(
        "Neither `docker compose` nor `docker-compose` is installed (.ci/run installs docker-compose)."
    )


@pytest.fixture(scope="module")
def compose() -> dict:
    """docker-compose.yml as Compose resolves it, with no .env and no settings in the environment."""
    environment = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
    result = subprocess.run(
        [*compose_command(), "-f", "docker-compose.yml", "config"],
        cwd=BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"Compose refused docker-compose.yml:\n{result.stderr}"
    return yaml.safe_load(result.stdout)


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments dropped."""
    text = (BASE_DIR / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    return [tuple(line.split(None, 1)) for line in joined.splitlines() if line.strip()]


def _mount_target(volume: dict | str) -> str:
    """Compose v2 prints a mount as a mapping, v1 as "source:target:mode"."""
    return volume["target"] if isinstance(volume, dict) else volume.split(":")[1]


def command_of(service: dict) -> str:
    return " ".join(service["command"])


def test_compose_runs_the_portal_its_database_and_its_broker(compose):
    assert set(compose["services"]) == PORTAL_SERVICES | {"proxy", "postgres", "redis"}
    for name in PORTAL_SERVICES:
        service = compose["services"][name]
        assert service["image"] == "relaytest-portal"
        assert os.path.normpath(service["build"]["context"]) == str(BASE_DIR)
        assert set(service["depends_on"]) == {"postgres", "redis"}
        environment = service["environment"]
        assert environment["DATABASE_URL"].startswith("postgres://portal:")
        assert environment["DATABASE_URL"].endswith("@postgres:5432/portal")
        assert environment["CELERY_BROKER_URL"] == "redis://redis:6379/0"


def test_each_portal_service_runs_its_own_part(compose):
    services = compose["services"]
    assert "manage.py migrate" in command_of(services["web"])
    assert "gunicorn portal.wsgi --bind 0.0.0.0:8000" in command_of(services["web"])
    assert services["worker"]["command"][:4] == ["celery", "-A", "portal", "worker"]
    assert "probe.outside" in services["worker"]["command"][
        services["worker"]["command"].index("-Q") + 1
    ].split(",")
    assert services["worker"]["environment"]["RELAYTEST_VANTAGE"] == "outside"
    # One process works on many runs at once: threads sharing one event loop (and its cap on hosts).
    assert "--pool threads --concurrency 64" in command_of(services["worker"])
    assert services["beat"]["command"][:4] == ["celery", "-A", "portal", "beat"]
    assert services["canary"]["command"] == ["python", "manage.py", "canary"]
    assert services["canary"]["environment"]["RELAYTEST_CANARY_LISTEN"] == "0.0.0.0:2525"
    assert services["canary"]["ports"][0]["target"] == 2525


def test_compose_needs_no_secret_in_the_file_and_keeps_state_in_volumes(compose):
    web = compose["services"]["web"]
    assert web["environment"]["SECRET_KEY"] == ""  # generated once into the shared var volume
    assert {_mount_target(volume) for volume in web["volumes"]} == {"/var/lib/portal"}
    assert set(compose["volumes"]) == {"portal-var", "postgres-data", "redis-data"}


def test_the_image_is_python_312_slim_and_runs_gunicorn_as_a_user_without_privileges():
    steps = dockerfile()
    instructions = [name for name, _ in steps]
    arguments = {name: [args for n, args in steps if n == name] for name in instructions}
    assert arguments["FROM"] == ["python:3.12-slim"]
    assert any(args == "pip install -r requirements.txt -c requirements.lock" for args in arguments["RUN"])
    assert arguments["USER"] == ["portal"]
    assert instructions.index("USER") < instructions.index("CMD")
    assert "HEALTHCHECK" in instructions
    assert arguments["CMD"][0].startswith('["gunicorn", "portal.wsgi"')


def test_the_images_collectstatic_step_works_with_what_the_build_has(tmp_path):
    """The build step runs with a throwaway secret and no database; whitenoise then serves the result."""
    [collect] = [args for name, args in dockerfile() if name == "RUN" and "collectstatic" in args]
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SECRET_KEY")}
    environment.update(PORTAL_VAR_DIR=str(tmp_path / "var"), STATIC_ROOT=str(tmp_path / "static"))
    command = collect.replace("python manage.py", f"{sys.executable} manage.py")

    result = subprocess.run(
        command, shell=True, cwd=BASE_DIR, env=environment, capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "static" / "portal.css").read_text() == (
        BASE_DIR / "static" / "portal.css"
    ).read_text()
    assert (tmp_path / "static" / "portal.css.gz").exists()  # whitenoise serves it compressed


def test_the_image_leaves_local_state_out():
    ignored = (BASE_DIR / ".dockerignore").read_text().split()
    assert {".git", ".venv", "var", "test-artifacts", ".env"} <= set(ignored)


def test_clients_reach_gunicorn_only_through_a_buffering_proxy(compose):
    web, proxy = compose["services"]["web"], compose["services"]["proxy"]
    assert "ports" not in web  # not published: only the proxy reaches it
    assert web["environment"]["PORTAL_BEHIND_PROXY"] == "1"
    assert proxy["image"].startswith("nginx:")
    assert [port["target"] for port in proxy["ports"]] == [8080]
    [config] = [
        volume for volume in proxy["volumes"] if _mount_target(volume) == "/etc/nginx/conf.d/default.conf"
    ]
    source = config["source"] if isinstance(config, dict) else config.split(":")[0]
    assert os.path.samefile(source, BASE_DIR / "deploy" / "nginx.conf")


def nginx_directives() -> dict[str, list[str]]:
    """Each directive of deploy/nginx.conf and its values, in order (comments dropped)."""
    directives: dict[str, list[str]] = {}
    text = re.sub(r"#.*", "", (BASE_DIR / "deploy" / "nginx.conf").read_text())
    for statement in re.split(r"[;{}]", text):
        if statement.split():
            name, *values = statement.split()
            directives.setdefault(name, []).append(" ".join(values))
    return directives


def test_the_proxy_times_slow_clients_out_and_tells_the_portal_who_and_how_they_came():
    directives = nginx_directives()
    assert "web:8000" in directives["server"]  # the upstream (the other "server" opens the block)
    assert directives["listen"] == ["8080"]
    assert directives["proxy_pass"] == ["http://portal"]
    assert {"client_header_timeout", "client_body_timeout"} <= set(directives)
    headers = dict(value.split(None, 1) for value in directives["proxy_set_header"])
    assert headers["X-Forwarded-For"] == "$remote_addr"  # set, not appended: the client cannot forge it
    assert headers["X-Forwarded-Proto"] == "$scheme"


def test_gunicorn_runs_threaded_workers():
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--print-config", "portal.wsgi"],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    settings_ = (line.partition("=") for line in result.stdout.splitlines())
    config = {name.strip(): value.strip() for name, _, value in settings_}
    assert config["worker_class"] == "gthread"  # read from gunicorn.conf.py: make run, the image, compose
    assert int(config["threads"]) > 1
