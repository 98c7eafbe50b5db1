"""The `ecg` command: one entry point, one subcommand per service or client action.

Each subcommand imports its service lazily so `ecg backend` never loads the ML stack.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from ecg_serving.quiet import quiet_routine_logs

DESCRIPTION = """\
ECG turns speech in video into word-level data: who said each word, when, how loud
(dB) and at what pitch (Hz), with an emotion per segment, as captions or JSON.

Start everything on this machine with `ecg up`, then analyse files with
`ecg analyze talk.mp4` (or open the web page `ecg up` prints)."""

EXAMPLES = """\
examples:
  ecg up                                   start backend + ML server (embedded defaults)
  ecg analyze talk.mp4                     write talk.srt/.vtt/.txt/.tsv/.json/.ass here
  ecg analyze a.mp4 b.mp4 -o subs --output-format srt --highlight-words
  ecg analyze talk.mp4 --language ko --min-speakers 2 --max-speakers 3
  ECG_BACKEND=http://gpu-box:8000 ecg analyze talk.mp4
  ecg models pull large-v3                 fetch a faster-whisper model (HF cache, sha-checked)

Run `ecg COMMAND --help` for a command's options."""


def _version() -> str:
    try:
        return version("ecg")
    except PackageNotFoundError:
        return "unknown"


def _add_host_port(p: argparse.ArgumentParser, port: int) -> None:
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=port, help=f"port (default {port})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ecg",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"ecg {_version()}")
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

    _add_analyze(sub)
    from ecg_cli.models import add_models

    add_models(sub)
    return parser


def _add_analyze(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from ecg_cli.analyze import DEFAULT_BACKEND, FORMATS

    p = sub.add_parser(
        "analyze",
        help="analyse video/audio files and write captions and data",
        description="Upload each file to the ECG backend, wait for its analysis, and write "
        "the result in every format (SRT, WebVTT, TXT, TSV, JSON, ASS) into the output "
        "directory, named after the file.",
    )
    p.add_argument("videos", nargs="+", metavar="FILE", help="video or audio files")
    p.add_argument("-o", "--output-dir", default=".", help="where to write (default: here)")
    p.add_argument(
        "-f",
        "--output-format",
        choices=("all", *FORMATS),
        default=None,
        help="format to write (default all; ass = styled captions, speaker colours, "
        "word size from loudness)",
    )
    backend = os.environ.get("ECG_BACKEND") or DEFAULT_BACKEND
    p.add_argument("--backend", default=backend, help=f"backend URL (ECG_BACKEND; now {backend})")
    p.add_argument(
        "--language",
        default="auto",
        help="spoken language: a code (en, ko, ja …), a list to choose from (ko,en), "
        "or auto (default); a code the server's model cannot transcribe is refused, before "
        "the upload, with the list it offers",
    )
    p.add_argument("--min-speakers", type=int, default=None, help="at least this many speakers")
    p.add_argument("--max-speakers", type=int, default=None, help="at most this many speakers")
    p.add_argument("--prompt", default=None, help="text to steer spelling and style (names, terms)")
    p.add_argument(
        "--task",
        choices=("transcribe", "translate"),
        default="transcribe",
        help="transcribe (default) or translate: the speech as English text",
    )
    p.add_argument(
        "--model",
        default=None,
        help="one of the server's ASR models (`GET /v1/models`; e.g. one of ML_EXTRA_ASR_MODELS); "
        "default: its configured model",
    )
    p.add_argument(
        "--highlight-words", action="store_true", help="karaoke captions: mark each word as said"
    )
    p.add_argument("--max-line-width", type=int, default=None, help="characters per caption line")
    p.add_argument("--max-line-count", type=int, default=None, help="lines per caption")
    p.add_argument("--no-speaker-labels", action="store_true", help="leave speaker names out")
    p.add_argument("--token", default=None, help="Bearer token (or ECG_TOKEN)")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait per file")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    old = p.add_argument_group("single outputs (instead of -o/-f)")
    old.add_argument("--json", dest="json_path", default=None, help="write the result JSON here")
    old.add_argument("--srt", dest="srt_path", default=None, help="write SRT captions here")
    old.add_argument("--vtt", dest="vtt_path", default=None, help="write WebVTT captions here")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    quiet_routine_logs()  # before the services import their libraries
    if args.command == "backend":
        from app.main import serve as serve_backend

        serve_backend(host=args.host, port=args.port)
        return 0
    if args.command == "ml-server":
        from ml_server.main import serve as serve_ml

        serve_ml(host=args.host, port=args.port)
        return 0
    if args.command == "worker":
        from ml_server.celery_worker import run_worker

        return run_worker(concurrency=args.concurrency, hostname=args.hostname)
    if args.command == "up":
        from ecg_cli.up import run_up

        return run_up(host=args.host, backend_port=args.backend_port, ml_port=args.ml_port)
    if args.command == "analyze":
        from ecg_cli.analyze import run_analyze

        return run_analyze(args)
    if args.command == "models":
        from ecg_cli.models import run_models

        return run_models(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
