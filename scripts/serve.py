"""Start `python app.py` on loopback as a child process, for the app benchmark and the load test."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(timeout: float = 120.0, root: Path = ROOT, env: dict | None = None, python: str = sys.executable
                 ) -> tuple[subprocess.Popen, str, float]:
    """(process, url, seconds from launch to a page that answers) of `python app.py` in `root`, run by the
    interpreter `python` (another virtual environment's, for the simulated Space)."""
    port = free_port()
    env = {**os.environ, **(env or {}), "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "GRADIO_ANALYTICS_ENABLED": "False"}
    started = time.perf_counter()
    process = subprocess.Popen([python, "app.py"], cwd=root, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    while time.perf_counter() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"app.py exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return process, url, time.perf_counter() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"app.py did not answer within {timeout} s")


def gallery_task(gallery, seed: int, n_way: int = 5, n_shot: int = 5, n_query: int = 5):
    """(support paths, comma-separated labels, query paths, class names) of a seeded random gallery task."""
    names, supports, queries, _ = gallery.random_task(seed, n_way, n_shot, n_query)
    paths = [str(gallery.path(i.file)) for items in supports for i in items]
    labels = ",".join(name for name, items in zip(names, supports) for _ in items)
    return paths, labels, [str(gallery.path(i.file)) for i in queries], names


def wait_until_idle(process: subprocess.Popen, limit_s: float = 180.0, quiet_s: int = 3) -> float:
    """Wait until the server's start-up work (`app.warm_up`: the models' first run, then numba compiling UMAP)
    is done, judged by its CPU: under 0.05 CPU s in each of `quiet_s` seconds in a row (the app waits for a quiet
    second, `priority.wait_until_quiet`, before it compiles UMAP: one idle second is not the end of it). Returns
    the seconds waited."""
    import psutil

    server, started, quiet = psutil.Process(process.pid), time.perf_counter(), 0
    while time.perf_counter() - started < limit_s:
        before = sum(server.cpu_times()[:2])
        time.sleep(1.0)
        quiet = quiet + 1 if sum(server.cpu_times()[:2]) - before < 0.05 else 0
        if quiet >= quiet_s:
            return time.perf_counter() - started
    raise RuntimeError(f"the server was still busy {limit_s:.0f} s after it answered")
