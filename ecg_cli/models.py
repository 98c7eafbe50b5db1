"""`ecg models list | pull NAME`: the ASR models this machine holds, and fetching more.

`list` shows the bundled models (in Python packages) and the faster-whisper models in the local
Hugging Face cache; `pull` downloads one into that cache through huggingface_hub (`HF_ENDPOINT`,
`HF_HOME`, `HF_TOKEN` apply), with its progress bars on a terminal, then checks every file's hash.
"""

from __future__ import annotations

import argparse
import sys

from ml_server.bundled import BUNDLED_NAMES, BUNDLED_PREFIX


def add_models(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "models",
        help="list the ASR models here, or pull a faster-whisper model into the HF cache",
        description="list: the bundled models and the faster-whisper models in the local "
        "Hugging Face cache. pull NAME: download a faster-whisper model (large-v3, turbo, "
        "small, … or a Hub repo id) into that cache, sha-checked.",
    )
    verbs = p.add_subparsers(dest="models_command", required=True)
    verbs.add_parser("list", help="models usable as ML_ASR_MODEL or ML_EXTRA_ASR_MODELS")
    pull = verbs.add_parser("pull", help="download a model into the Hugging Face cache")
    pull.add_argument("name", help="faster-whisper name (large-v3, turbo, small …) or repo id")


def run_models(args: argparse.Namespace) -> int:
    if args.models_command == "pull":
        return _pull(args.name)
    return _list()


def _pull(name: str) -> int:
    from ml_server.model_hub import ModelIntegrityError, ModelUnavailable, pull

    try:
        folder = pull(name)
    except (ModelUnavailable, ModelIntegrityError) as exc:
        print(f"ecg models pull: {exc}", file=sys.stderr)
        return 1
    print(f"{name}: pulled and sha-checked, in {folder}")
    print(f"use it: ML_ASR_MODEL={name} (or ML_EXTRA_ASR_MODELS={name}) ecg up")
    return 0


def _list() -> int:
    from ml_server.model_hub import cache_dir, cached_models, faster_whisper_models

    print("bundled (offline, in Python packages):")
    for name in BUNDLED_NAMES:
        print(f"  {BUNDLED_PREFIX}{name}")
    found = cached_models()
    print(f"in the Hugging Face cache ({cache_dir()}):")
    if not found:
        print("  (none)")
    for model in found:
        size = f"{model.size_bytes / 1e6:.0f} MB"
        print(f"  {model.name:<20} {size:>9}  {model.repo}")
    print(f"pullable names: {', '.join(faster_whisper_models())}")
    return 0
