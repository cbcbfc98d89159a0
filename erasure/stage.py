"""Entry point shared by the stage scripts: bad params or data end in one line, never a traceback.

Stage scripts import heavy modules (torch, TransformerLens) inside main(): checking params takes a moment, and for a
Hub model (`needs_model=True`) online or offline is decided before any Hugging Face library is imported (they read
their settings at import).
"""
from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable

from erasure.errors import DataError, ParamError
from erasure.io import os_error_text
from erasure.params.load import load_params


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so every `finally` (the outputs' temp files) runs before exit."""


def _terminate(signum, frame) -> None:
    raise Terminated


def _fail(message: str, code: int = 2) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def run_stage(main: Callable[[], None], needs_model: bool = False) -> None:
    """Validate params (and, when the stage loads a model, its device and the Hub), then run main().

    A ParamError/DataError, or an OS fault outside the outputs (a file that cannot be read, a folder that cannot be
    made), prints one line `error: ...` on stderr and exits 2; SIGTERM and Ctrl-C remove the outputs' temp files
    and exit 143 and 130.
    """
    signal.signal(signal.SIGTERM, _terminate)
    if not sys.stderr.isatty():  # tqdm's rule for its bars (erasure/progress.py), applied to the Hugging Face
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # libraries' (read at import; a user's value kept)
    try:
        params = load_params()
        if needs_model and params.entry.loader == "hub":
            from erasure.models.hub import prepare_hub

            prepare_hub(params.entry.hub_timeout_s)
        if needs_model:
            from erasure.models.device import compute_device

            compute_device(params.compute.device, params.compute.dtype)  # `cuda` without one: one line first
        main()
    except (ParamError, DataError) as err:
        _fail(str(err))
    except OSError as err:
        _fail(f"{err.filename or 'a file'}: {os_error_text(err)}")
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Terminated:
        _fail("terminated (SIGTERM)", 143)
