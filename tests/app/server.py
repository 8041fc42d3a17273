"""A real uvicorn subprocess for crash tests: start, SIGKILL, restart."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = {**os.environ, **env, "HF_HUB_OFFLINE": "1"}
        self.log_dir = log_dir
        self.proc: subprocess.Popen | None = None
        self.port = free_port()
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, failpoint: str | None = None, wait: bool = True, timeout: float = 120) -> float:
        """Returns seconds until /ready answered 200 (or the process exited, when wait is False)."""
        env = dict(self.env)
        env.pop("MOVIEREC_FAILPOINT", None)
        if failpoint:
            env["MOVIEREC_FAILPOINT"] = failpoint
        self.starts += 1
        log = (self.log_dir / f"server-{self.starts}.log").open("wb")
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "app.main:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        if not wait:
            return 0.0
        while time.perf_counter() - started < timeout:
            if self.proc.poll() is not None:
                log.close()
                tail = Path(log.name).read_text(errors="replace")[-3000:]
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{tail}")
            try:
                if httpx.get(self.url + "/ready", timeout=30).status_code == 200:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError("server did not become ready")

    def wait_exit(self, timeout: float = 120) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        """Graceful: lifespan shutdown writes a snapshot."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)
