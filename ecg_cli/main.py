"""The `ecg` command: one entry point, one subcommand per service or client action.

Each subcommand imports its service lazily so `ecg backend` never loads the ML stack.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence


def _add_host_port(p: argparse.ArgumentParser, port: int) -> None:
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=port, help=f"port (default {port})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ecg", description=__doc__)
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("backend", help="start the ECG backend (FastAPI, :8000)")
    _add_host_port(p, 8000)

    p = sub.add_parser("ml-server", help="start the ML server (:8080)")
    _add_host_port(p, 8080)

    p = sub.add_parser("worker", help="start a Celery ML worker (needs ML_BROKER_URL)")
    p.add_argument("--concurrency", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--hostname", default=None, help="Celery node name")

    p = sub.add_parser("up", help="start backend and ML server together on this machine")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--backend-port", type=int, default=8000)
    p.add_argument("--ml-port", type=int, default=8080)

    p = sub.add_parser("analyze", help="upload a video, wait for the analysis, write results")
    p.add_argument("video", help="path of the video or audio file")
    p.add_argument("--backend", default="http://127.0.0.1:8000", help="backend base URL")
    p.add_argument("--json", dest="json_path", default=None, help="write the result JSON here")
    p.add_argument("--srt", dest="srt_path", default=None, help="write SRT captions here")
    p.add_argument("--vtt", dest="vtt_path", default=None, help="write WebVTT captions here")
    p.add_argument(
        "--language",
        default="auto",
        help="auto (default), a code (ko) or codes to detect among (ko,en); a code the "
        "server's model cannot transcribe is refused with the list it offers",
    )
    p.add_argument("--min-speakers", type=int, default=None)
    p.add_argument("--max-speakers", type=int, default=None)
    p.add_argument("--token", default=None, help="Bearer token (or ECG_TOKEN)")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait (default 3600)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "backend":
        from app.main import serve as serve_backend

        serve_backend(host=args.host, port=args.port)
        return 0
    if args.command == "ml-server":
        from ml_server.main import serve as serve_ml

        serve_ml(host=args.host, port=args.port)
        return 0
    if args.command == "worker":
        from ml_server.celery_app import run_worker

        return run_worker(concurrency=args.concurrency, hostname=args.hostname)
    if args.command == "up":
        from ecg_cli.up import run_up

        return run_up(host=args.host, backend_port=args.backend_port, ml_port=args.ml_port)
    if args.command == "analyze":
        from ecg_cli.analyze import run_analyze

        return run_analyze(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
