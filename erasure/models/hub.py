"""The Hugging Face Hub, online or from the local cache, decided once per stage process.

huggingface_hub reads HF_HUB_OFFLINE, HF_ENDPOINT and HF_HOME when it is imported, so `prepare_hub` runs before any
Hugging Face library is imported (the stage entry point calls it). Every later access goes through huggingface_hub's
own cache API (`resolve_revision`, `snapshot_download`, `hf_hub_download`, `get_cached_repo_tree`), which serves the
cache when the process is offline; whatever is missing from the cache ends in one line naming it and how to get it.
"""
from __future__ import annotations

import os
import socket
import sys
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

from erasure.errors import DataError

DEFAULT_ENDPOINT = "https://huggingface.co"
OFFLINE_HINT = "offline models: planted-4l, smollm2-135m, gemma3-270m (run `dvc exp run -S model=planted-4l`)"
_TRUE = {"1", "ON", "YES", "TRUE"}
_UNREACHABLE = "ERASURE_HUB_UNREACHABLE"  # set by prepare_hub, so the messages can say why we are offline


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT).rstrip("/")


def offline_forced() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) as huggingface_hub itself reads it."""
    flag = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return flag.upper() in _TRUE


def hub_reachable(timeout_s: float) -> bool:
    """True when a TCP connection to the Hub's endpoint opens within timeout_s."""
    url = urlparse(endpoint())
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout_s).close()
        return True
    except OSError:
        return False


def prepare_hub(timeout_s: float) -> bool:
    """Decide online or offline for this process before huggingface_hub is imported; True when online.

    Offline (HF_HUB_OFFLINE set, or the endpoint unreachable within timeout_s) means: everything from the cache.
    The Hub's metadata and download timeouts are bounded by timeout_s too, so a hanging server cannot hang a stage.
    """
    if "huggingface_hub" in sys.modules:
        raise RuntimeError("prepare_hub must run before huggingface_hub is imported (it reads its settings then)")
    for var in ("HF_HUB_ETAG_TIMEOUT", "HF_HUB_DOWNLOAD_TIMEOUT"):
        os.environ.setdefault(var, f"{timeout_s:g}")
    if offline_forced():
        return False
    if hub_reachable(timeout_s):
        return True
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ[_UNREACHABLE] = endpoint()
    return False


def offline_reason() -> str:
    """Why this process reads only the cache (for errors and notes)."""
    if _UNREACHABLE in os.environ:
        return f"cannot reach the Hugging Face Hub ({os.environ[_UNREACHABLE]})"
    return "HF_HUB_OFFLINE is set" if os.environ.get("HF_HUB_OFFLINE") else "TRANSFORMERS_OFFLINE is set"


def _download_hint(repo_id: str, repo_type: str) -> str:
    kind = " --repo-type dataset" if repo_type == "dataset" else ""
    return f"get it once with network (`dvc repro`, or `hf download {repo_id}{kind}`; README: Offline)"


@contextmanager
def hub_errors(what: str, repo_id: str, repo_type: str = "model"):
    """Turn huggingface_hub's failures into one DataError line naming what is missing and how to get it."""
    import httpx2  # huggingface_hub's HTTP client: its transport errors are not OSErrors
    from huggingface_hub import errors

    try:
        yield
    except (errors.LocalEntryNotFoundError, errors.OfflineModeIsEnabled, errors.CachedRepoTreeNotFoundError,
            errors.RevisionResolutionError) as err:
        why = offline_reason() if offline_forced() else f"cannot reach the Hugging Face Hub ({endpoint()})"
        incomplete = " completely" if isinstance(err, errors.IncompleteSnapshotError) else ""
        raise DataError(
            f"{why} and {what} ({repo_id}) is not{incomplete} in the local cache: "
            f"{_download_hint(repo_id, repo_type)}; {OFFLINE_HINT}"
        ) from None
    except errors.RevisionNotFoundError:
        raise DataError(f"{what} ({repo_id}): the requested revision does not exist on the Hub") from None
    except (errors.RepositoryNotFoundError, errors.GatedRepoError):
        raise DataError(f"{what}: the Hub has no accessible repository {repo_id}") from None
    except errors.EntryNotFoundError as err:
        raise DataError(f"{what} ({repo_id}): a file is missing on the Hub ({str(err).splitlines()[0]})") from None
    except errors.HfHubHTTPError as err:
        raise DataError(f"{what} ({repo_id}): the Hub answered {str(err).splitlines()[0]}") from None
    except (httpx2.HTTPError, OSError) as err:  # a transfer that broke off, or a disk error while downloading
        raise DataError(f"{what} ({repo_id}): download failed ({type(err).__name__}: {err})") from None


def resolve(repo_id: str, revision: str | None, what: str, repo_type: str = "model"):
    """The commit `revision` (default: main) points to: asked of the Hub, or read from the cache's refs offline."""
    from huggingface_hub import HfApi

    with hub_errors(what, repo_id, repo_type):
        return HfApi().resolve_revision(repo_id, repo_type=repo_type, revision=revision)


def snapshot(repo_id: str, revision, what: str, repo_type: str = "model", allow_patterns=None) -> Path:
    """The local folder of a (partial) snapshot: downloaded when online, checked complete when offline."""
    from huggingface_hub import snapshot_download

    with hub_errors(what, repo_id, repo_type):
        return Path(snapshot_download(repo_id, repo_type=repo_type, revision=revision, allow_patterns=allow_patterns))


def cached_file_list(repo_id: str, revision, what: str, repo_type: str = "model") -> list[str]:
    """Every file of the repo at that commit, from the tree listing the cache keeps (a snapshot call writes it)."""
    from huggingface_hub import get_cached_repo_tree

    with hub_errors(what, repo_id, repo_type):
        return [entry.path for entry in get_cached_repo_tree(repo_id, repo_type=repo_type, revision=revision.resolved)]


def download(repo_id: str, filename: str, revision, what: str, repo_type: str = "model") -> Path:
    """One file of the repo at that commit (from the cache when it is there)."""
    from huggingface_hub import hf_hub_download

    with hub_errors(f"{what} file {filename}", repo_id, repo_type):
        return Path(hf_hub_download(repo_id, filename, repo_type=repo_type, revision=revision))
