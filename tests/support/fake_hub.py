"""A local fake Hugging Face Hub: serves one model folder in the HTTP shape huggingface_hub reads.

`snapshot_download` asks `/api/models/{repo}/revision/{rev}` (the commit), then
`/api/models/{repo}/tree/{commit}` (the files, with LFS sha256s), then per file
`HEAD`/`GET /{repo}/resolve/{commit}/{file}`, whose `X-Repo-Commit`, `ETag` (`X-Linked-Etag`
for LFS files: the sha256) and `X-Linked-Size` headers name what the cache stores. `model.bin`
is served as an LFS file, the others as plain git files (etag = git blob sha1). `tamper` names
files whose bytes are served changed (same size, same published hash), as a corrupted mirror
or a man in the middle would.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from tests.support.net import free_port

COMMIT = "0123456789abcdef0123456789abcdef01234567"
LFS_FILES = ("model.bin",)


@dataclass
class HubFile:
    data: bytes
    lfs: bool

    @property
    def git_sha1(self) -> str:
        header = f"blob {len(self.data)}\0".encode()
        return hashlib.sha1(header + self.data, usedforsecurity=False).hexdigest()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else self.git_sha1


@dataclass
class FakeHub:
    repo: str
    files: dict[str, HubFile]
    tamper: set[str] = field(default_factory=set)
    requests: list[str] = field(default_factory=list)
    port: int = 0
    _server: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def downloads(self, name: str) -> int:
        return sum(1 for r in self.requests if r.startswith("GET ") and r.endswith(f"/{name}"))

    def start(self) -> FakeHub:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return None

            def do_HEAD(self) -> None:
                hub._serve(self, body=False)

            def do_GET(self) -> None:
                hub._serve(self, body=True)

        self.port = free_port()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _serve(self, h: BaseHTTPRequestHandler, *, body: bool) -> None:
        path = unquote(urlsplit(h.path).path)
        self.requests.append(f"{h.command} {path}")
        api = f"/api/models/{self.repo}/"
        resolve = f"/{self.repo}/resolve/"
        if path.startswith(api + "revision/"):
            siblings = [{"rfilename": n} for n in self.files]
            info = {"id": self.repo, "sha": COMMIT, "siblings": siblings}
            return _json(h, info, body=body)
        if path.startswith(api + "tree/"):
            return _json(h, [self._tree_entry(n, f) for n, f in self.files.items()], body=body)
        if path.startswith(resolve):
            name = path[len(resolve) :].split("/", 1)[-1]
            if name in self.files:
                return self._file(h, name, body=body)
        h.send_response(404)
        h.send_header("X-Error-Code", "EntryNotFound")
        h.send_header("Content-Length", "0")
        h.end_headers()

    def _tree_entry(self, name: str, f: HubFile) -> dict[str, object]:
        entry: dict[str, object] = {
            "type": "file",
            "path": name,
            "size": len(f.data),
            "oid": f.git_sha1,
        }
        if f.lfs:
            entry["lfs"] = {"oid": f.sha256, "size": len(f.data), "pointerSize": 134}
        return entry

    def _file(self, h: BaseHTTPRequestHandler, name: str, *, body: bool) -> None:
        f = self.files[name]
        data = f.data
        if name in self.tamper:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        h.send_response(200)
        h.send_header("X-Repo-Commit", COMMIT)
        h.send_header("ETag", f'"{f.etag}"')
        if f.lfs:
            h.send_header("X-Linked-Etag", f'"{f.etag}"')
            h.send_header("X-Linked-Size", str(len(data)))
        h.send_header("Content-Length", str(len(data)))
        h.send_header("Content-Type", "application/octet-stream")
        h.end_headers()
        if body:
            h.wfile.write(data)


def _json(h: BaseHTTPRequestHandler, value: object, *, body: bool) -> None:
    raw = json.dumps(value).encode()
    h.send_response(200)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(raw)))
    h.end_headers()
    if body:
        h.wfile.write(raw)


def hub_of_folder(repo: str, folder: Path) -> FakeHub:
    """A fake hub serving every file of `folder` as `repo` (model.bin as an LFS file)."""
    files = {
        p.name: HubFile(p.read_bytes(), lfs=p.name in LFS_FILES)
        for p in sorted(folder.iterdir())
        if p.is_file()
    }
    return FakeHub(repo=repo, files=files)
