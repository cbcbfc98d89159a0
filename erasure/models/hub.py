"""Reachability of the Hugging Face Hub, checked before any heavy import so an offline run fails in seconds."""
from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from erasure.errors import DataError
from erasure.params.load import Params

OFFLINE_HINT = "offline models: planted-4l, smollm2-135m (run `dvc exp run -S model=planted-4l`)"


def hub_reachable(timeout_s: float) -> bool:
    """True when a TCP connection to the Hub's endpoint opens within timeout_s."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout_s).close()
        return True
    except OSError:
        return False


def hub_cached(repo_id: str, repo_type: str = "model") -> bool:
    """True when the local Hugging Face cache already holds a snapshot of repo_id."""
    from huggingface_hub import constants

    folder = f"{repo_type}s--{repo_id.replace('/', '--')}"
    return (Path(constants.HF_HUB_CACHE) / folder / "snapshots").is_dir()


def require_hub(repo_id: str, what: str, timeout_s: float, repo_type: str = "model") -> None:
    """Fail fast with one clear line when repo_id can be neither downloaded nor read from the local cache."""
    if hub_reachable(timeout_s):
        return
    if hub_cached(repo_id, repo_type):
        os.environ["HF_HUB_OFFLINE"] = "1"
        return
    raise DataError(
        f"cannot reach the Hugging Face Hub within {timeout_s:g} s to download {what} ({repo_id}) and it is not "
        f"in the local cache; {OFFLINE_HINT}"
    )


def preflight(params: Params) -> None:
    """Before loading anything: the Hub-backed model must be reachable (or cached)."""
    cfg = params.entry
    if cfg.loader == "hub":
        require_hub(cfg.hf_repo, params.model, cfg.hub_timeout_s)
