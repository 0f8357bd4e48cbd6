"""Real servers on 127.0.0.1 for the test suite and the benchmark: moto's S3 and IPFS daemons.

`IPFSDaemon` runs the js-ipfs daemon installed by `infra/ipfs/install` (or any `jsipfs`
given to it) in a fresh repository, offline or online (to peer with other test daemons over
127.0.0.1 only); `MotoServer` runs moto's S3 server in a thread; `SilentServer` accepts
connections and never answers (an endpoint that hangs). All are context managers, listen on
free loopback ports only, and stop what they started.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Self

INFRA_IPFS = Path(__file__).resolve().parents[1] / "infra" / "ipfs"


class ServerStartError(RuntimeError):
    """A test server did not start; the message carries its log."""

    def __init__(self, what: str, reason: str, log: str = "") -> None:
        super().__init__(what, reason, log)
        self.what, self.reason, self.log = what, reason, log

    def __str__(self) -> str:
        return f"{self.what} did not start: {self.reason}\n--- log ---\n{self.log}"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SilentServer:
    """A TCP server on 127.0.0.1 that accepts every connection and never sends a byte.

    `accepted` counts the connections it accepted: ground truth for "the client did (not)
    touch the network". Connections are held open until `stop`.
    """

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.accepted = 0
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name="silent-server", daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed by stop()
            with self._lock:
                self.accepted += 1
                self._held.append(conn)

    def start(self) -> SilentServer:
        """Start accepting (in a daemon thread)."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting and close every held connection."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass
        self._sock.close()
        self._thread.join(timeout=10)
        with self._lock:
            held, self._held = self._held, []
        for conn in held:
            conn.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class MotoServer:
    """moto's S3 server in a thread on 127.0.0.1 (real HTTP through boto3)."""

    def __init__(self, port: int = 0) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.endpoint_url = ""

    def start(self) -> str:
        """Start serving; return the endpoint URL."""
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        return self.endpoint_url

    def stop(self) -> None:
        """Stop serving and close the listening socket, so clients get 'connection refused'."""
        self._server.stop()
        wsgi = getattr(self._server, "_server", None)
        if wsgi is not None:
            wsgi.server_close()

    def client_args(self, **config: Any) -> dict[str, Any]:
        """`make_s3_client` arguments for this server (fake credentials), plus `config`."""
        return {
            "endpoint_url": self.endpoint_url,
            "region_name": "us-east-1",
            "aws_access_key_id": "testing",
            "aws_secret_access_key": "testing",
            **config,
        }

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client for this server (fake credentials, bounded retries)."""
        from storage.s3 import make_s3_client

        return make_s3_client(**self.client_args(**config))

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class IPFSDaemon:
    """A js-ipfs daemon in its own repository, with every address on 127.0.0.1.

    Offline by default. An `online` daemon listens for peers on a loopback swarm port, with
    no bootstrap peers, no mDNS, no delegate routers and no preload nodes: it talks only to
    the peers a test connects it to (`connect`), so two test daemons share blocks over
    bitswap and nothing reaches beyond 127.0.0.1.

    Args:
        repo_dir: an empty or missing directory for `IPFS_PATH` and the daemon's log.
        online: join a (loopback-only) swarm instead of running `--offline`.
        jsipfs: the `jsipfs` executable (default: the one `infra/ipfs/install` put in
            `infra/ipfs/node_modules/.bin`).
        polyfill: a file for `NODE_OPTIONS=--require` (Node 20 lacks Promise.withResolvers).
        startup_timeout_s: how long `start` waits for the daemon to answer.
    """

    def __init__(
        self,
        repo_dir: str | os.PathLike[str],
        *,
        online: bool = False,
        jsipfs: str | os.PathLike[str] | None = None,
        polyfill: str | os.PathLike[str] | None = None,
        startup_timeout_s: float = 120.0,
    ) -> None:
        self.repo_dir = Path(repo_dir)
        self.online = online
        self.peer_id = ""
        self.swarm_addr = ""  # /ip4/127.0.0.1/tcp/<port>/p2p/<peer id>, once started
        self.jsipfs = Path(jsipfs or INFRA_IPFS / "node_modules" / ".bin" / "jsipfs")
        self.polyfill = Path(polyfill or INFRA_IPFS / "polyfill.cjs")
        self.startup_timeout_s = startup_timeout_s
        self.log_path = self.repo_dir / "daemon.log"
        self.api_addr = ""
        self.api_port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["IPFS_PATH"] = str(self.repo_dir / "repo")
        env["NO_UPDATE_NOTIFIER"] = "1"
        env["NODE_OPTIONS"] = f"{env.get('NODE_OPTIONS', '')} --require {self.polyfill}".strip()
        return env

    def log(self) -> str:
        """Everything the daemon and its set-up commands printed so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"

    def _run(self, *args: str) -> None:
        with self.log_path.open("ab") as log:
            log.write(f"$ jsipfs {' '.join(args)}\n".encode())
            log.flush()
            done = subprocess.run(
                [str(self.jsipfs), *args],
                check=False,
                env=self._env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=self.startup_timeout_s,
            )
        if done.returncode != 0:
            raise ServerStartError(
                "IPFS daemon", f"jsipfs {args[0]} exited {done.returncode}", self.log()
            )

    def start(self) -> str:
        """Initialise the repository, start the daemon, wait until it answers; return the
        RPC multiaddr. Raises `ServerStartError` with the log when anything fails."""
        if not self.jsipfs.exists():
            raise ServerStartError(
                "IPFS daemon",
                f"{self.jsipfs} is missing: run infra/ipfs/install (npm ci in infra/ipfs)",
            )
        self.repo_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        try:
            self._run("init", "--profile", "test")
        except subprocess.TimeoutExpired as e:
            raise ServerStartError("IPFS daemon", f"timed out: {e}", self.log()) from None
        self._configure(port)
        self.api_addr = f"/ip4/127.0.0.1/tcp/{port}"
        self.api_port = port
        mode = "--enable-preload=false" if self.online else "--offline"
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [str(self.jsipfs), "daemon", mode],
                env=self._env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._wait_ready(port)
        return self.api_addr

    def _configure(self, port: int) -> None:
        """Pin every listening address to 127.0.0.1 (as `jsipfs config`, without a node
        start per key): the test profile picks random API and fixed gRPC ports otherwise."""
        path = self.repo_dir / "repo" / "config"
        config = json.loads(path.read_text())
        swarm_port = free_port()
        config["Addresses"].update(
            API=f"/ip4/127.0.0.1/tcp/{port}",
            Gateway=f"/ip4/127.0.0.1/tcp/{free_port()}",
            RPC=f"/ip4/127.0.0.1/tcp/{free_port()}",
            Swarm=[f"/ip4/127.0.0.1/tcp/{swarm_port}"],
            Delegates=[],
        )
        # Nothing to find beyond loopback: no bootstrap list, no local-network discovery.
        config["Bootstrap"] = []
        config.setdefault("Discovery", {}).update(
            MDNS={"Enabled": False}, webRTCStar={"Enabled": False}
        )
        path.write_text(json.dumps(config, indent=2))
        self.peer_id = config["Identity"]["PeerID"]
        self.swarm_addr = f"/ip4/127.0.0.1/tcp/{swarm_port}/p2p/{self.peer_id}"

    def _wait_ready(self, port: int) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._proc is not None and self._proc.poll() is not None:
                raise ServerStartError(
                    "IPFS daemon", f"exited with {self._proc.returncode}", self.log()
                )
            if "Daemon is ready" in self.log() and _answers(port):
                return
            time.sleep(0.1)
        self.stop()
        raise ServerStartError(
            "IPFS daemon", f"not ready in {self.startup_timeout_s} s", self.log()
        )

    def rpc(self, command: str, *args: str, timeout_s: float = 30.0) -> Any:
        """Call one RPC command (e.g. `swarm/peers`) over plain HTTP; return its JSON answer.

        Independent of ipfshttpclient (whose `swarm.connect` splits its argument into
        characters), so tests use it as ground truth.
        """
        query = urllib.parse.urlencode([("arg", a) for a in args])
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.api_port}/api/v0/{command}?{query}", method="POST"
        )
        no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with no_proxy.open(request, timeout=timeout_s) as response:
            return json.loads(response.read() or b"null")

    def connect(self, other: IPFSDaemon) -> None:
        """Open a swarm connection from this daemon to `other` (both must be online)."""
        if not (self.online and other.online):
            raise ValueError("swarm connections need two online daemons")
        self.rpc("swarm/connect", other.swarm_addr)

    def stop(self) -> None:
        """Stop the daemon (SIGTERM to its process group, SIGKILL after 15 s)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _answers(port: int) -> bool:
    """True if the RPC API answers `id` with a peer id."""
    import ipfshttpclient

    import storage.ipfs  # noqa: F401  (installs its filter for ipfshttpclient's warning)

    try:
        client = ipfshttpclient.Client(f"/ip4/127.0.0.1/tcp/{port}", timeout=5)
        try:
            return bool(client.id()["ID"])
        finally:
            client.close()
    except ipfshttpclient.exceptions.Error:
        return False
