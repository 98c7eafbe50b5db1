"""`ecg up`: the backend and the ML server as two child processes, wired to each other.

On the embedded defaults (no DATABASE_URL, no S3_BUCKET_NAME, no ML_ASR_MODEL) this is the
whole system on one machine: SQLite and local storage in ECG_DATA_DIR, the bundled model, and
in-process ML workers. With the production settings in the environment the same command runs
against those, because each child reads its own settings from the inherited environment.

What this module adds is the wiring: the backend learns the ML server's URL and its own callback
URL, the ML server allows the backend's loopback host (downloads and callbacks go there), and
both share one secret, generated once in the data dir unless one is set.

A service that dies once both are up is restarted (and `ecg up` says so) while the other keeps
serving; only a service that keeps dying (MAX_RESTARTS within RESTART_WINDOW_S) stops both.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

import httpx
from pydantic import ValidationError

from ecg_protocol.health import MLServerHealth
from ecg_protocol.secret import (
    CLIENT_SECRET_FILE,
    default_data_dir,
    load_or_create_secret,
    new_whsec,
)

STARTUP_TIMEOUT_S = 300.0  # both services answering health (the ML server loads models after)
MODELS_TIMEOUT_S = 900.0  # first start: the bundled base model is joined and hash-checked once
STOP_GRACE_S = 20.0
EXIT_CHILD_DIED = 1
EXIT_STARTUP = 3
# A crash loop is given up on: more than this many restarts of one service in the window.
MAX_RESTARTS = 5
RESTART_WINDOW_S = 300.0
RESTART_BACKOFF_MAX_S = 30.0


@dataclass
class Child:
    name: str
    args: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    health_url: str = ""
    restarts: list[float] = field(default_factory=list)  # monotonic times of recent restarts
    restart_at: float | None = None  # a restart is scheduled (backoff)
    recovering: bool = False  # restarted, not yet healthy again


def connect_host(host: str) -> str:
    """The address a client on this machine uses for a server bound to `host`."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def child_envs(
    env: Mapping[str, str], *, host: str, backend_port: int, ml_port: int, data_dir: Path
) -> tuple[dict[str, str], dict[str, str]]:
    """The backend's and the ML server's environments, wired to each other."""
    near = _url_host(connect_host(host))
    base = dict(env)
    base["ECG_DATA_DIR"] = str(data_dir)
    if not (base.get("WEBHOOK_SECRET_KEY") or base.get("SECRET_KEY")):
        base["WEBHOOK_SECRET_KEY"] = load_or_create_secret(data_dir)

    backend = dict(base)
    # `ecg up` starts this ML server, so the backend talks to it (a different MODEL_SERVER_URL
    # would leave the started one idle); the callback URL may be set for a proxy in front.
    backend["MODEL_SERVER_URL"] = f"http://{near}:{ml_port}"
    backend.setdefault("FASTAPI_BASE_URL", f"http://{near}:{backend_port}")

    ml = dict(base)
    allowed = [h.strip() for h in base.get("ML_ALLOWED_PRIVATE_HOSTS", "").split(",") if h.strip()]
    # The backend's local-storage download URL and its callback URL are on loopback, and an
    # S3-compatible server on this machine (SeaweedFS, MinIO) is too; nothing else is opened.
    wanted = [connect_host(host), urlsplit(backend["FASTAPI_BASE_URL"]).hostname]
    if base.get("S3_ENDPOINT_URL"):
        wanted.append(urlsplit(base["S3_ENDPOINT_URL"]).hostname)
    for h in wanted:
        if h and h not in allowed:
            allowed.append(h)
    ml["ML_ALLOWED_PRIVATE_HOSTS"] = ",".join(allowed)
    return backend, ml


def _die_with_parent() -> None:
    """Runs in the child before exec: if `ecg up` is killed outright, its children follow."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "ecg_cli.main", *args]
    # A session of their own: Ctrl-C reaches only `ecg up`, which then stops each child once,
    # instead of the terminal's SIGINT and our SIGTERM both landing (uvicorn force-quits on two).
    return subprocess.Popen(cmd, env=env, start_new_session=True, preexec_fn=_die_with_parent)


def _start(name: str, args: list[str], env: dict[str, str], health_url: str = "") -> Child:
    return Child(name, args, env, _spawn(args, env), health_url=health_url)


def _supervise(child: Child, now: float) -> str | None:
    """Restart `child` if it died (with backoff); the reason to give up, or None."""
    if child.restart_at is not None:
        if now >= child.restart_at:
            child.restart_at = None
            child.proc = _spawn(child.args, child.env)
            child.recovering = True
            _say(f"ecg up: {child.name} restarted (pid {child.proc.pid})")
        return None
    if child.recovering and child.health_url and _healthy(child.health_url, _ok):
        child.recovering = False
        _say(f"ecg up: {child.name} is healthy again")
    code = child.proc.poll()
    if code is None:
        return None
    child.restarts = [t for t in child.restarts if now - t < RESTART_WINDOW_S] + [now]
    if len(child.restarts) > MAX_RESTARTS:
        return (
            f"{child.name} exited with code {code}, its {len(child.restarts)}th exit in "
            f"{RESTART_WINDOW_S:.0f}s; giving up"
        )
    delay = min(RESTART_BACKOFF_MAX_S, 2.0 ** (len(child.restarts) - 1) - 1)
    child.restart_at = now + delay
    _say(
        f"ecg up: {child.name} exited with code {code}; restarting it"
        + (f" in {delay:.0f}s" if delay >= 1 else "")
        + " (the other service keeps running)",
        error=True,
    )
    return None


def _say(line: str, *, error: bool = False) -> None:
    print(line, file=sys.stderr if error else sys.stdout, flush=True)


def _ok(resp: httpx.Response) -> bool:
    return resp.status_code == 200


def _healthy(url: str, accept: Callable[[httpx.Response], bool]) -> bool:
    try:
        resp = httpx.get(url, timeout=2.0)
    except httpx.HTTPError:
        return False
    return accept(resp)


def _wait_healthy(
    children: list[Child], checks: list[tuple[str, str]], deadline: float, stopping: list[int]
) -> str | None:
    """Wait until every check answers 200; the failure as a line, or None when all are up."""
    pending = list(checks)
    while pending:
        for child in children:
            if child.proc.poll() is not None:
                return f"{child.name} exited with code {child.proc.returncode} while starting"
        if stopping:
            return "interrupted while starting"
        name, url = pending[0]
        if _healthy(url, lambda r: r.status_code == 200):
            pending.pop(0)
            continue
        if time.monotonic() > deadline:
            return f"{name} did not become healthy in time ({url})"
        time.sleep(0.25)
    return None


def _busy_port(host: str, ports: list[int]) -> int | None:
    """The first of `ports` something already listens on at `host` (a second `ecg up`)."""
    for port in ports:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            # As uvicorn binds: a port left in TIME_WAIT by the last `ecg up` is free, one
            # with a live listener is not (Linux refuses that bind even with SO_REUSEADDR).
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError:
                return port
    return None


def _models_ready(ml_url: str) -> bool:
    try:
        resp = httpx.get(f"{ml_url}/health", timeout=2.0)
        if resp.status_code != 200:
            return False
        return MLServerHealth.model_validate_json(resp.content).models_loaded
    except (httpx.HTTPError, ValidationError):
        return False


def _wait_models(children: list[Child], ml_url: str, stopping: list[int]) -> str | None:
    """Wait until the ML server's workers hold their models; the failure as a line, or None."""
    deadline = time.monotonic() + MODELS_TIMEOUT_S
    while not _models_ready(ml_url):
        for child in children:
            if child.proc.poll() is not None:
                return f"{child.name} exited with code {child.proc.returncode} while loading"
        if stopping:
            return "interrupted while the models were loading"
        if time.monotonic() > deadline:
            return f"the ML server's models did not load in {MODELS_TIMEOUT_S:.0f}s"
        time.sleep(0.5)
    return None


def _client_webhook_line(env: Mapping[str, str], data_dir: Path) -> str:
    if env.get("CLIENT_WEBHOOK_SECRET"):
        return "  webhooks:  signed with CLIENT_WEBHOOK_SECRET (Standard Webhooks)"
    secret = load_or_create_secret(data_dir, CLIENT_SECRET_FILE, new_whsec)
    return f"  webhooks:  signed with {secret} (Standard Webhooks; CLIENT_WEBHOOK_SECRET)"


def _stop(children: list[Child]) -> None:
    """SIGTERM each child, wait for a graceful exit, then SIGKILL what is left."""
    for child in children:
        if child.proc.poll() is None:
            child.proc.terminate()
    end = time.monotonic() + STOP_GRACE_S
    for child in children:
        try:
            child.proc.wait(timeout=max(end - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            print(f"ecg up: {child.name} did not stop in {STOP_GRACE_S:.0f}s; killing it")
            child.proc.kill()
            child.proc.wait()


def _describe(env: Mapping[str, str], data_dir: Path) -> list[str]:
    db = "PostgreSQL/DATABASE_URL" if env.get("DATABASE_URL") else f"SQLite in {data_dir}"
    if env.get("S3_BUCKET_NAME"):
        storage = f"S3 bucket {env['S3_BUCKET_NAME']}"
        if env.get("S3_ENDPOINT_URL"):
            storage += f" at {env['S3_ENDPOINT_URL']}"
    else:
        storage = f"local files in {data_dir}"
    model = env.get("ML_ASR_MODEL") or "bundled base (multilingual) + tiny.en (English)"
    return [f"  database:  {db}", f"  storage:   {storage}", f"  ASR model: {model}"]


# 200 here means the backend is up AND reaches the ML server: the wiring works.
BACKEND_HEALTH = "/api/upload-video/ml-server/health"


def run_up(
    host: str, backend_port: int, ml_port: int, *, startup_timeout_s: float = STARTUP_TIMEOUT_S
) -> int:
    """Start both services, print their URLs, and stop both on Ctrl-C/SIGTERM or if one dies."""
    data_dir = default_data_dir()
    backend_env, ml_env = child_envs(
        os.environ, host=host, backend_port=backend_port, ml_port=ml_port, data_dir=data_dir
    )
    near = _url_host(connect_host(host))
    backend_url = f"http://{near}:{backend_port}"
    ml_url = f"http://{near}:{ml_port}"

    busy = _busy_port(host, [backend_port, ml_port])
    if busy is not None:
        # One clear line now, not "ready" followed by "address already in use" from a child.
        print(
            f"ecg up: error: port {busy} on {host} is already in use (is another `ecg up` "
            "running?); stop it or pick --backend-port/--ml-port",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_STARTUP
    stopping: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    children: list[Child] = []
    try:
        children.append(
            _start(
                "ml-server",
                ["ml-server", "--host", host, "--port", str(ml_port)],
                ml_env,
                f"{ml_url}/health",
            )
        )
        children.append(
            _start(
                "backend",
                ["backend", "--host", host, "--port", str(backend_port)],
                backend_env,
                f"{backend_url}{BACKEND_HEALTH}",
            )
        )
        print(f"ecg up: starting ML server ({ml_url}) and backend ({backend_url})", flush=True)
        failure = _wait_ready(children, ml_url, backend_url, startup_timeout_s, stopping)
        if failure:
            print(f"ecg up: error: {failure}", file=sys.stderr, flush=True)
            return 0 if stopping else EXIT_STARTUP
        print(_ready_text(backend_url, ml_url, data_dir), flush=True)
        return _supervise_until_stopped(children, stopping)
    finally:
        _stop(children)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _wait_ready(
    children: list[Child],
    ml_url: str,
    backend_url: str,
    startup_timeout_s: float,
    stopping: list[int],
) -> str | None:
    """Wait for both services to answer, then for the models; what went wrong, or None."""
    failure = _wait_healthy(
        children,
        [("ML server", f"{ml_url}/health"), ("backend", f"{backend_url}{BACKEND_HEALTH}")],
        time.monotonic() + startup_timeout_s,
        stopping,
    )
    if not failure and not _models_ready(ml_url):
        # Up but not able to analyse yet: say so, and say "ready" only when it is true.
        print("ecg up: services up; loading the models…", flush=True)
        failure = _wait_models(children, ml_url, stopping)
    return failure


def _ready_text(backend_url: str, ml_url: str, data_dir: Path) -> str:
    lines = [
        "",  # set apart from the services' start-up lines above it
        "ecg up: ready",
        f"  web page:  {backend_url}/",
        f"  API docs:  {backend_url}/docs",
        f"  ML server: {ml_url}/health",
        *_describe(os.environ, data_dir),
        _client_webhook_line(os.environ, data_dir),
        "  analyze:   ecg analyze VIDEO   (Ctrl-C stops both services)",
    ]
    return "\n".join(lines)


def _supervise_until_stopped(children: list[Child], stopping: list[int]) -> int:
    """Restart a child that dies (within its budget) until a signal asks both to stop."""
    while not stopping:
        for child in children:
            give_up = _supervise(child, time.monotonic())
            if give_up:
                _say(f"ecg up: error: {give_up}", error=True)
                return EXIT_CHILD_DIED
        time.sleep(0.2)
    print(f"ecg up: {signal.Signals(stopping[0]).name} received, stopping", flush=True)
    return 0
