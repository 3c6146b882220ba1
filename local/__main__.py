"""``python -m local``: the whole app on this machine, no Docker and no root.

Starts real Valkey and PostgreSQL from their pip wheels (data kept in LOCAL_DATA_DIR
between runs), the three functions under uvicorn, and a scheduler that invokes the
worker, all under honcho: prefixed logs, and Ctrl-C or SIGTERM stops every process.
Each function, and the scheduler, starts once the data stores it needs answer
(local/wait_for.py); local/announce.py prints "Ready" once every page answers.
"""

from __future__ import annotations

import os
import secrets
import shlex
import socket
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from honcho.manager import Manager

from common.settings import Env, SettingsError, exit_on_error
from local import profile, wait_for
from local.servers import database_url, free_port, redis_url


@dataclass(frozen=True)
class LocalSettings:
    vote_port: int
    result_port: int
    data_dir: Path
    schedule_s: float
    appendfsync: str
    redis_url: str | None  # set: use that server instead of starting Valkey
    database_url: str | None  # set: use that server instead of starting PostgreSQL

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LocalSettings:
        env = Env(environ)
        env.first_poll()  # fail here, once, rather than in each process
        appendfsync = env.raw("VALKEY_APPENDFSYNC", "everysec")
        if appendfsync not in ("everysec", "always"):
            raise SettingsError("VALKEY_APPENDFSYNC must be everysec or always")
        return cls(
            vote_port=env.integer("VOTE_PORT", 8080, low=1, high=65535),
            result_port=env.integer("RESULT_PORT", 8081, low=1, high=65535),
            data_dir=Path(env.raw("LOCAL_DATA_DIR", ".local-data")).resolve(),
            schedule_s=env.number("LOCAL_SCHEDULE_SECONDS", profile.LOCAL_SCHEDULE_SECONDS,
                                  low=1, high=3600),
            appendfsync=appendfsync,
            redis_url=env.optional("REDIS_URL"),
            database_url=env.optional("DATABASE_URL"),
        )


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def vote_secret(data_dir: Path) -> str:
    """VOTE_SECRET if set, else one generated on the first run and kept with the data."""
    if secret := os.environ.get("VOTE_SECRET", "").strip():
        return secret
    path = data_dir / "vote_secret"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()


def interpreter(argv: Sequence[str]) -> list[str]:
    """``argv`` with ``python`` meaning this interpreter, the venv's whether activated or not."""
    return [sys.executable if argv[0] == "python" else argv[0], *argv[1:]]


def command(*argv: str) -> str:
    return shlex.join(interpreter(argv))


def once_stores_answer(settings: Iterable[str], argv: Sequence[str]) -> str:
    """``argv``, started once the data stores named among ``settings`` answer."""
    needs = [arg for name in settings if name in wait_for.PROBES for arg in ("--needs", name)]
    return command("python", "-m", "local.wait_for", *needs, "--", *interpreter(argv))


def build(settings: LocalSettings, manager: Manager) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    for name, port in (("VOTE_PORT", settings.vote_port), ("RESULT_PORT", settings.result_port)):
        if port_in_use(port):
            raise SettingsError(f"{name}={port} is already in use: set {name} to a free port")
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("LOG_FORMAT", "text")  # readable lines here; JSON in the cloud
    env["VOTE_SECRET"] = vote_secret(settings.data_dir)

    if settings.redis_url is None:
        port = free_port()
        env["REDIS_URL"] = redis_url(port)
        manager.add_process("valkey", command(
            "python", "-m", "local.servers", "valkey", "--data-dir",
            str(settings.data_dir / "valkey"), "--port", str(port),
            "--appendfsync", settings.appendfsync), env=env)
    if settings.database_url is None:
        port = free_port()
        env["DATABASE_URL"] = database_url(port)
        manager.add_process("postgres", command(
            "python", "-m", "local.servers", "postgres", "--data-dir",
            str(settings.data_dir / "postgres"), "--port", str(port)), env=env)

    worker_port = free_port()
    ports = {"vote": settings.vote_port, "result": settings.result_port, "worker": worker_port}
    function_env = {**env, "WORKER_BUDGET_SECONDS":
                    str(profile.local_budget_seconds(settings.schedule_s))}
    # The local worker waits on the queue nearly all the time, reporting every second:
    # three seconds unseen means it is stopped.
    function_env.setdefault("PIPELINE_STALL_SECONDS", "3")
    # the vote page links to the results page and follows its receipt there
    function_env.setdefault("RESULTS_URL", f"http://127.0.0.1:{settings.result_port}")
    # the results page and the projector screen show how to join (set it to an address the
    # room's phones reach, such as this machine's on the local network)
    function_env.setdefault("VOTE_URL", f"http://127.0.0.1:{settings.vote_port}")
    for spec in profile.FUNCTIONS:
        manager.add_process(spec.name, once_stores_answer(spec.settings, profile.uvicorn_argv(
            spec, "127.0.0.1", ports[spec.name])), env=function_env)
    # The scheduler only reaches the worker, so it waits for what the worker needs.
    manager.add_process("scheduler", once_stores_answer(profile.by_name("worker").settings, [
        "python", "-m", "local.scheduler", "--url",
        f"http://127.0.0.1:{worker_port}{profile.WORKER_EVENTS_PATH}",
        "--every", str(settings.schedule_s)]), env=env)
    manager.add_process("ready", command(
        "python", "-m", "local.announce", "--vote", f"http://127.0.0.1:{settings.vote_port}",
        "--result", f"http://127.0.0.1:{settings.result_port}",
        "--worker", f"http://127.0.0.1:{worker_port}"), env=env)


def main() -> None:
    settings = exit_on_error(LocalSettings.from_env)
    manager = Manager()
    exit_on_error(lambda: build(settings, manager))
    manager.loop()
    sys.exit(manager.returncode)


if __name__ == "__main__":
    main()
