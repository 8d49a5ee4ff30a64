"""A private redis-server child process, for the quick start and the test suite.

Started when no ``PERSONA_REDIS_URL`` is given: data under a local folder, AOF
on (``appendfsync everysec``), bound to loopback on a free port, and stopped
with the service (also if the service dies: the child gets SIGTERM from the
kernel when its parent goes away).

Its memory is bounded: ``maxmemory`` with the ``noeviction`` policy, so a full
Redis refuses writes (events answer 503, decision-log writes are counted as
failed, decisions are still answered) instead of evicting profiles silently.
Stream nodes hold up to 32 KB (Redis' default is 4 KB), which stores a log
entry in about 15 % less memory.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

INSTALL_HINT = (
    "redis-server is not installed. Install it (Debian/Ubuntu: `sudo apt-get install "
    "redis-server`; macOS: `brew install redis`) or point PERSONA_REDIS_URL at a Redis."
)


STREAM_NODE_MAX_BYTES = 32768


def default_maxmemory_mb() -> int:
    """A quarter of the machine's memory: the rest is for the AOF rewrite's copy-on-write
    fork, the service's workers and the page cache."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return max(64, total // 4 // 2**20)


class RedisNotAvailable(RuntimeError):
    """redis-server cannot be found or started; the message says what to do."""


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_redis_binary(binary: str, allow_install: bool = True) -> str:
    """Path of redis-server, installing it with apt-get when missing and we are root."""
    found = shutil.which(binary)
    if found:
        return found
    if allow_install and os.geteuid() == 0 and shutil.which("apt-get"):
        print("redis-server not found; installing it with apt-get ...", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "redis-server"], check=False, env=env)
        found = shutil.which(binary)
        if found:
            return found
    raise RedisNotAvailable(INSTALL_HINT)


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def ping(port: int, timeout: float = 0.2) -> bool:
    """Whether a Redis answers PING on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            # a server that wants a password answers, which is all this asks
            return s.recv(16).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


class LocalRedis:
    """One redis-server child process."""

    def __init__(
        self,
        data_dir: Path,
        binary: str = "redis-server",
        port: int | None = None,
        appendonly: bool = True,
        extra_args: tuple[str, ...] = (),
        appendfsync: str = "everysec",
        maxmemory_mb: int | None = None,
    ) -> None:
        """``maxmemory_mb``: None for :func:`default_maxmemory_mb`."""
        self.data_dir = data_dir
        self.binary = binary
        self.port = port or free_port()
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.extra_args = extra_args
        self.maxmemory_mb = maxmemory_mb or default_maxmemory_mb()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """redis:// URL of this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> str:
        """Start the server and wait until it answers; return its URL."""
        binary = ensure_redis_binary(self.binary)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir.resolve()),
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            self.appendfsync,
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str((self.data_dir / "redis.log").resolve()),
            "--maxmemory",
            f"{self.maxmemory_mb}mb",
            "--maxmemory-policy",
            "noeviction",
            "--stream-node-max-bytes",
            str(STREAM_NODE_MAX_BYTES),
            *self.extra_args,
        ]
        self.process = subprocess.Popen(args, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RedisNotAvailable(
                    f"redis-server exited with {self.process.returncode}; "
                    f"see {self.data_dir / 'redis.log'}"
                )
            if ping(self.port):
                return self.url
            time.sleep(0.02)
        self.stop()
        raise RedisNotAvailable(f"redis-server did not answer within {timeout_s} s")

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s)."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        if proc.pid and _is_stopped(proc.pid):
            os.kill(proc.pid, signal.SIGCONT)
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _is_stopped(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] == "T"
    except OSError:
        return False
