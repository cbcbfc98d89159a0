"""A local stand-in of the Hugging Face Hub, so the real Hub clients can be tested offline.

Serves a folder laid out as ``<root>/models/<org>/<name>/...`` and ``<root>/datasets/<org>/<name>/...``: each
folder is a repo on one branch, ``main``, whose commit sha is derived from its files (so it is stable and changes
when a file does). It answers what huggingface_hub (2.4 here, 0.17 under ``datasets`` 2.14), transformers,
TransformerLens and ``datasets`` request, with the headers they parse:

- ``HEAD/GET /{repo}/resolve/{rev}/{path}`` (datasets: ``/datasets/{repo}/...``): ``X-Repo-Commit``, a quoted
  ``ETag`` (the git blob sha1), ``Content-Length``, ``Range`` -> 206 with ``Content-Range``. Files the repo's
  ``.gitattributes`` marks ``filter=lfs`` are answered like the Hub answers LFS files: a 302 to a separate CDN
  origin with ``X-Linked-Etag`` (the sha256) and ``X-Linked-Size``; the CDN serves the bytes (``Range`` too).
- a missing file: 404 ``X-Error-Code: EntryNotFound`` with ``X-Repo-Commit`` (clients cache "does not exist");
  an unknown repo: 401 ``RepoNotFound``; an unknown revision: 404 ``RevisionNotFound``.
- ``GET /api/{models|datasets}/{repo}`` and ``.../revision/{rev}`` (``sha``, ``siblings``, ``lastModified``,
  ``cardData``; ``?blobs=true`` adds sizes and LFS info), ``.../tree/{rev}[/{path}]`` (``recursive``, ``expand``
  adds ``lastCommit``; paged with a ``Link`` header as the Hub does), ``POST .../paths-info/{rev}``,
  ``.../refs``, ``.../commits/{rev}``.
- renamed repos: ``<root>/renamed.json`` (``{"models": {"gpt2": "openai-community/gpt2"}}``) answers the old id
  with a 307 to the new one, as the Hub does for ``gpt2``.

Hand-written because the one mirror server on PyPI (olah) answers a missing file with 401 instead of 404, answers
``/api/models/{repo}`` with 401, and ignores ``Range`` in its local-folder mode, each of which breaks a client;
huggingface_hub's own test doubles need the online staging Hub.

Not shown: Xet transfers (no ``X-Xet-*`` headers are sent, so clients use plain HTTP), signed CDN URLs that
expire, rate limits (429), gated/private repos and tokens, more than one commit per repo.

Use ``with serve(root) as url:`` in a test (server in a thread, stopped on exit), or
``python -m tests.hub_standin ROOT [--log FILE]``, which prints the url on its first stdout line and serves until
killed by its PID.
"""
from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import NamedTuple
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

import yaml

REPO_TYPES = ("models", "datasets")
BRANCH = "main"
DATE = "2023-09-01T00:00:00.000Z"  # every repo's one commit (fixed, so listings are byte-stable)
PAGE_SIZE = 1000  # tree entries per page, as the Hub pages them
PAGE_SIZE_EXPAND = 50
LFS_POINTER_SIZE = 134
API_ROUTES = ("revision", "tree", "paths-info", "refs", "commits")


class Request(NamedTuple):
    """One answered request: which server (``hub`` or ``cdn``), method, path with query, status."""

    server: str
    method: str
    path: str
    status: int


@dataclass(frozen=True)
class RepoFile:
    path: str
    file: Path
    size: int
    blob_id: str  # git blob sha1, the Hub's ETag for a file kept in git
    sha256: str | None  # set when the file is in LFS (its ETag then)


@dataclass
class Repo:
    repo_type: str  # "models" | "datasets"
    repo_id: str
    files: dict[str, RepoFile]
    dirs: dict[str, str] = field(default_factory=dict)  # folder path -> tree oid ("" = the root)
    sha: str = ""


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_patterns(folder: Path) -> list[str]:
    """Patterns that the repo's .gitattributes puts in LFS (``filter=lfs``)."""
    attributes = folder / ".gitattributes"
    if not attributes.is_file():
        return []
    patterns = []
    for line in attributes.read_text().splitlines():
        parts = line.split()
        if len(parts) > 1 and not parts[0].startswith("#") and "filter=lfs" in parts[1:]:
            patterns.append(parts[0])
    return patterns


def in_lfs(path: str, patterns: list[str]) -> bool:
    """gitattributes matching: a pattern without '/' matches the file name at any depth."""
    name = path.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(path if "/" in p else name, p.lstrip("/")) for p in patterns)


def scan_repo(repo_type: str, repo_id: str, folder: Path) -> Repo:
    """Index a repo folder: blob ids, LFS sha256s, folder oids and the commit sha, all from the file contents."""
    patterns = lfs_patterns(folder)
    files = {}
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = file.relative_to(folder).as_posix()
        data = file.read_bytes()
        sha256 = hashlib.sha256(data).hexdigest() if in_lfs(rel, patterns) else None
        files[rel] = RepoFile(rel, file, len(data), git_blob_sha1(data), sha256)
    repo = Repo(repo_type, repo_id, files)
    children: dict[str, list[str]] = {"": []}
    for rel, entry in files.items():
        parts = rel.split("/")
        for depth in range(1, len(parts)):
            children.setdefault("/".join(parts[:depth]), [])
        children["/".join(parts[:-1])].append(f"{parts[-1]} {entry.blob_id}")
    for folder_path in sorted(children, key=lambda p: -p.count("/") - (p != "")):
        oid = hashlib.sha1("\n".join(sorted(children[folder_path])).encode()).hexdigest()
        repo.dirs[folder_path] = oid
        if folder_path:
            parent, _, name = folder_path.rpartition("/")
            children[parent].append(f"{name}/ {oid}")
    repo.sha = hashlib.sha1(f"{repo_type}/{repo_id} {repo.dirs['']}".encode()).hexdigest()
    return repo


class RepoIndex:
    """The repos under root, each scanned once on first use."""

    def __init__(self, root: Path):
        self.root = root
        self._repos: dict[tuple[str, str], Repo | None] = {}
        self._lock = threading.Lock()
        renamed = root / "renamed.json"
        self.renamed: dict[str, dict[str, str]] = json.loads(renamed.read_text()) if renamed.is_file() else {}

    def get(self, repo_type: str, repo_id: str) -> Repo | None:
        key = (repo_type, repo_id)
        with self._lock:
            if key not in self._repos:
                folder = self.root / repo_type / repo_id
                ok = repo_id.count("/") == 1 and ".." not in repo_id.split("/") and folder.is_dir()
                self._repos[key] = scan_repo(repo_type, repo_id, folder) if ok else None
            return self._repos[key]

    def lfs_blob(self, sha256: str) -> RepoFile | None:
        with self._lock:
            repos = [r for r in self._repos.values() if r is not None]
        return next((f for r in repos for f in r.files.values() if f.sha256 == sha256), None)


def file_entry(f: RepoFile, repo: Repo, expand: bool) -> dict:
    entry: dict = {"type": "file", "oid": f.blob_id, "size": f.size, "path": f.path}
    if f.sha256 is not None:
        entry["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": LFS_POINTER_SIZE}
    if expand:
        entry["lastCommit"] = last_commit(repo)
    return entry


def dir_entry(path: str, repo: Repo, expand: bool) -> dict:
    entry: dict = {"type": "directory", "oid": repo.dirs[path], "size": 0, "path": path}
    if expand:
        entry["lastCommit"] = last_commit(repo)
    return entry


def last_commit(repo: Repo) -> dict:
    return {"id": repo.sha, "title": "Upload folder", "date": DATE}


def card_data(repo: Repo) -> dict | None:
    """The README's YAML front matter, as the Hub returns it in ``cardData``."""
    readme = repo.files.get("README.md")
    if readme is None:
        return None
    text = readme.file.read_text()
    if not text.startswith("---\n"):
        return None
    data = yaml.safe_load(text[4 : text.index("\n---", 4)])
    return data if isinstance(data, dict) else None


def repo_info(repo: Repo, blobs: bool) -> dict:
    siblings = []
    for f in repo.files.values():
        sibling: dict = {"rfilename": f.path}
        if blobs:
            sibling.update(size=f.size, blobId=f.blob_id)
            if f.sha256 is not None:
                sibling["lfs"] = {"size": f.size, "sha256": f.sha256, "pointerSize": LFS_POINTER_SIZE}
        siblings.append(sibling)
    info = {
        "_id": repo.sha[:24],
        "id": repo.repo_id,
        "author": repo.repo_id.split("/")[0],
        "sha": repo.sha,
        "lastModified": DATE,
        "createdAt": DATE,
        "private": False,
        "gated": False,
        "disabled": False,
        "downloads": 0,
        "likes": 0,
        "tags": [],
        "siblings": siblings,
        "usedStorage": sum(f.size for f in repo.files.values()),
    }
    if repo.repo_type == "models":
        info["modelId"] = repo.repo_id
    card = card_data(repo)
    if card is not None:
        info["cardData"] = card
    return info


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """(first, last) of a single ``bytes=`` range; None = whole file; "unsatisfiable" past the end."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first_text, _, last_text = header[len("bytes=") :].strip().partition("-")
    try:
        if first_text == "":
            first, last = max(0, size - int(last_text)), size - 1
        else:
            first = int(first_text)
            last = min(int(last_text), size - 1) if last_text else size - 1
    except ValueError:
        return None
    if first >= size or first > last:
        return "unsatisfiable"
    return first, last


class HubError(Exception):
    def __init__(self, status: int, code: str | None, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as clients expect of the Hub
    timeout = 30
    server: StandinServer

    def log_message(self, format, *args):
        """Quiet: answered requests go to the request log instead."""

    def setup(self):
        super().setup()
        self.server.connections.add(self.connection)

    def finish(self):
        self.server.connections.discard(self.connection)
        super().finish()

    def do_HEAD(self):
        self.dispatch("HEAD")

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def dispatch(self, method: str) -> None:
        self.method = method
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        self.query = parse_qs(url.query)
        segments = url.path.strip("/").split("/")
        try:
            self.server.route(self, segments)
        except HubError as err:
            headers = {"X-Error-Message": err.message, **err.headers}
            if err.code:
                headers["X-Error-Code"] = err.code
            self.send_json({"error": err.message}, status=err.status, headers=headers)

    def send(self, status: int, body: bytes, headers: dict, content_length: int | None = None) -> None:
        self.server.record(Request(self.server.name, self.method, self.path, status))  # before the client has it
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body) if content_length is None else content_length))
        self.end_headers()
        if self.method != "HEAD":
            self.wfile.write(body)

    def send_json(self, obj, status: int = 200, headers: dict | None = None) -> None:
        body = json.dumps(obj).encode()
        self.send(status, body, {"Content-Type": "application/json; charset=utf-8", **(headers or {})})

    def send_file(self, f: RepoFile, headers: dict) -> None:
        """The file's bytes, or the one range asked for (206 + Content-Range)."""
        headers = {"Accept-Ranges": "bytes", "Content-Type": "application/octet-stream", **headers}
        span = parse_range(self.headers.get("Range"), f.size)
        if span == "unsatisfiable":
            self.send(416, b"", {**headers, "Content-Range": f"bytes */{f.size}"})
            return
        if span is None:
            data = b"" if self.method == "HEAD" else f.file.read_bytes()
            self.send(200, data, headers, content_length=f.size)
            return
        first, last = span
        with f.file.open("rb") as fh:
            fh.seek(first)
            data = b"" if self.method == "HEAD" else fh.read(last - first + 1)
        headers["Content-Range"] = f"bytes {first}-{last}/{f.size}"
        self.send(206, data, headers, content_length=last - first + 1)


class StandinServer(ThreadingHTTPServer):
    """One origin (the Hub or its CDN) on 127.0.0.1; records every answered request."""

    daemon_threads = True

    def __init__(self, name: str, standin: HubStandin):
        super().__init__(("127.0.0.1", 0), Handler)
        self.name = name
        self.standin = standin
        self.connections: set[socket.socket] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def record(self, request: Request) -> None:
        self.standin.record(request)

    def route(self, h: Handler, segments: list[str]) -> None:
        if self.name == "cdn":
            self.standin.cdn(h, segments)
        else:
            self.standin.hub(h, segments)

    def close_connections(self) -> None:
        """End keep-alive connections too, so a stopped Hub answers nothing."""
        for conn in list(self.connections):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class HubStandin:
    """The stand-in Hub plus its CDN origin (LFS downloads are redirected there, as on the Hub)."""

    def __init__(self, root: Path, log: list[Request] | None = None, log_file: Path | None = None):
        self.index = RepoIndex(Path(root))
        self.log = log
        self.log_file = log_file.open("a", buffering=1) if log_file is not None else None
        self._log_lock = threading.Lock()
        self.hub_server = StandinServer("hub", self)
        self.cdn_server = StandinServer("cdn", self)
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        return self.hub_server.url

    def record(self, request: Request) -> None:
        with self._log_lock:
            if self.log is not None:
                self.log.append(request)
            if self.log_file is not None:
                self.log_file.write(" ".join(map(str, request)) + "\n")

    def start(self) -> None:
        for server in (self.hub_server, self.cdn_server):
            thread = threading.Thread(target=server.serve_forever, name=f"hub-standin-{server.name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        for server in (self.hub_server, self.cdn_server):
            server.shutdown()
            server.close_connections()
            server.server_close()
        for thread in self._threads:
            thread.join()
        if self.log_file is not None:
            self.log_file.close()

    # --- routing -------------------------------------------------------------------------------------------

    def hub(self, h: Handler, segments: list[str]) -> None:
        if segments == ["api", "agent-harnesses"] and h.method == "GET":
            h.send_json({"standardEnvVars": [], "harnesses": {}})  # huggingface_hub's telemetry registry, empty
        elif segments[0] == "api" and len(segments) >= 3 and segments[1] in REPO_TYPES:
            self.api(h, segments[1], segments[2:])
        elif "resolve" in segments and h.method in ("GET", "HEAD"):
            at = segments.index("resolve")
            repo_type = "datasets" if segments[0] == "datasets" else "models"
            id_segments = segments[1:at] if repo_type == "datasets" else segments[:at]
            if len(id_segments) < 1 or len(segments) < at + 3:
                raise HubError(404, None, "Not found")
            prefix = "/datasets/" if repo_type == "datasets" else "/"
            repo = self.repo(h, repo_type, "/".join(id_segments), prefix)
            self.resolve(h, repo, segments[at + 1], "/".join(segments[at + 2 :]))
        else:
            raise HubError(404, None, "Not found")

    def repo(self, h: Handler, repo_type: str, repo_id: str, prefix: str) -> Repo:
        """The repo, or a 307 for a renamed one, or 401 RepoNotFound (the Hub's answer, also for private repos).

        prefix: the url path before the repo id (``/``, ``/datasets/``, ``/api/models/``...).
        """
        new_id = self.index.renamed.get(repo_type, {}).get(repo_id)
        if new_id is not None:
            raise HubError(307, None, "Moved", {"Location": prefix + new_id + h.path[len(prefix + repo_id) :]})
        repo = self.index.get(repo_type, repo_id)
        if repo is None:
            raise HubError(401, "RepoNotFound", "Repository not found")
        return repo

    @staticmethod
    def revision(repo: Repo, rev: str) -> None:
        rev = unquote(rev)
        if rev not in (BRANCH, repo.sha):
            raise HubError(404, "RevisionNotFound", f"Invalid rev id: {rev}")

    def resolve(self, h: Handler, repo: Repo, rev: str, path: str) -> None:
        self.revision(repo, rev)
        commit = {"X-Repo-Commit": repo.sha}
        f = repo.files.get(unquote(path))
        if f is None:
            raise HubError(404, "EntryNotFound", "Entry not found", commit)
        name = f.path.rsplit("/", 1)[-1]
        disposition = {"Content-Disposition": f"inline; filename*=UTF-8''{quote(name)}; filename=\"{name}\";"}
        if f.sha256 is not None:
            headers = {
                **commit,
                "Location": f"{self.cdn_server.url}/lfs/{f.sha256}",
                "X-Linked-Etag": f'"{f.sha256}"',
                "X-Linked-Size": str(f.size),
            }
            h.send(302, b"", headers)
        else:
            h.send_file(f, {**commit, **disposition, "ETag": f'"{f.blob_id}"'})

    def cdn(self, h: Handler, segments: list[str]) -> None:
        f = self.index.lfs_blob(segments[-1]) if len(segments) == 2 and segments[0] == "lfs" else None
        if f is None or h.method not in ("GET", "HEAD"):
            raise HubError(404, None, "Not found")
        h.send_file(f, {"ETag": f'"{f.sha256}"'})

    def api(self, h: Handler, repo_type: str, rest: list[str]) -> None:
        n_id = 1 if len(rest) == 1 or rest[1] in API_ROUTES else 2
        repo = self.repo(h, repo_type, "/".join(rest[:n_id]), f"/api/{repo_type}/")
        route, args = (rest[n_id], rest[n_id + 1 :]) if len(rest) > n_id else ("", [])
        blobs = h.query.get("blobs", ["false"])[0].lower() in ("1", "true")
        if route == "" and h.method == "GET":
            h.send_json(repo_info(repo, blobs))
        elif route == "revision" and len(args) == 1 and h.method == "GET":
            self.revision(repo, args[0])
            h.send_json(repo_info(repo, blobs))
        elif route == "tree" and args and h.method == "GET":
            self.revision(repo, args[0])
            self.tree(h, repo, unquote("/".join(args[1:])))
        elif route == "paths-info" and len(args) == 1 and h.method == "POST":
            self.revision(repo, args[0])
            self.paths_info(h, repo)
        elif route == "refs" and not args and h.method == "GET":
            ref = {"name": BRANCH, "ref": f"refs/heads/{BRANCH}", "targetCommit": repo.sha}
            refs: dict = {"branches": [ref], "converts": [], "tags": []}
            if h.query.get("include_prs"):
                refs["pullRequests"] = []
            h.send_json(refs)
        elif route == "commits" and len(args) == 1 and h.method == "GET":
            self.revision(repo, args[0])
            author = repo.repo_id.split("/")[0]
            h.send_json([{**last_commit(repo), "message": "", "authors": [{"user": author}]}])
        else:
            raise HubError(404, None, "Not found")

    @staticmethod
    def flag(h: Handler, name: str) -> bool:
        return h.query.get(name, ["false"])[0].lower() in ("1", "true")

    def tree(self, h: Handler, repo: Repo, path: str) -> None:
        """Entries under path (folders too), one level or recursive; paged like the Hub with a Link header."""
        path = path.strip("/")
        if path not in repo.dirs:
            raise HubError(404, "EntryNotFound", f"{path} does not exist on {BRANCH}", {"X-Repo-Commit": repo.sha})
        recursive, expand = self.flag(h, "recursive"), self.flag(h, "expand")
        prefix = f"{path}/" if path else ""
        entries = []
        for p in sorted(set(repo.dirs) - {""} | set(repo.files)):
            if not p.startswith(prefix) or (not recursive and "/" in p[len(prefix) :]):
                continue
            entries.append(dir_entry(p, repo, expand) if p in repo.dirs else file_entry(repo.files[p], repo, expand))
        size = PAGE_SIZE_EXPAND if expand else PAGE_SIZE
        start = int(h.query.get("cursor", ["0"])[0])
        headers = {}
        if start + size < len(entries):
            query = {k: v[0] for k, v in h.query.items()} | {"cursor": str(start + size)}
            next_url = f"http://{h.headers['Host']}{urlsplit(h.path).path}?{urlencode(query)}"
            headers["Link"] = f'<{next_url}>; rel="next"'
        h.send_json(entries[start : start + size], headers=headers)

    @staticmethod
    def paths_info(h: Handler, repo: Repo) -> None:
        """Info on the paths posted (form or JSON); paths that do not exist are left out, as on the Hub."""
        if h.headers.get("Content-Type", "").startswith("application/json"):
            form = json.loads(h.body or b"{}")
            paths, expand = form.get("paths", []), bool(form.get("expand", False))
        else:
            form = parse_qs(h.body.decode())
            paths = form.get("paths", [])
            expand = form.get("expand", ["false"])[0].lower() in ("1", "true")
        out = []
        for p in dict.fromkeys(x.strip("/") for x in ([paths] if isinstance(paths, str) else paths)):
            if p in repo.files:
                out.append(file_entry(repo.files[p], repo, expand))
            elif p in repo.dirs and p:
                out.append(dir_entry(p, repo, expand))
        h.send_json(out)


@contextmanager
def serve(root: Path | str, log: list[Request] | None = None) -> Iterator[str]:
    """Serve root in this process; yields the Hub url (for HF_ENDPOINT); stops both servers on exit.

    Answered requests are appended to ``log`` when given.
    """
    standin = HubStandin(Path(root), log=log)
    standin.start()
    try:
        yield standin.url
    finally:
        standin.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="folder holding models/<org>/<name>/ and datasets/<org>/<name>/")
    parser.add_argument("--log", type=Path, help="append one line per answered request: server method path status")
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        print(f"error: root {args.root} is not a directory (expected models/<org>/<name>/ folders)", file=sys.stderr)
        return 2
    standin = HubStandin(args.root, log_file=args.log)
    standin.start()
    print(standin.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        standin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
