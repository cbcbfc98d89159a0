"""Entry point shared by the stage scripts: bad params or data end in one line, never a traceback.

params.yaml is read and checked once, here, and passed: a stage is `main(params)`. Stage scripts import heavy
modules (torch, TransformerLens) inside main(); a stage that loads a model passes `setup=prepare_model_stage`
(erasure/models/setup.py), which settles the Hub and the device first. This module imports no model code, so the
stages that load no model do not depend on it.
"""
from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable

from erasure.errors import DataError, ParamError
from erasure.io import os_error_text
from erasure.params.load import Params, load_params


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so every `finally` (the outputs' temp files) runs before exit."""


def _terminate(signum, frame) -> None:
    raise Terminated


def _fail(message: str, code: int = 2) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def run_stage(main: Callable[[Params], None], setup: Callable[[Params], None] | None = None) -> None:
    """Load and check params, run `setup(params)` (a model stage's Hub and device), then `main(params)`.

    A ParamError/DataError, or an OS fault outside the outputs (a file that cannot be read, a folder that cannot be
    made), prints one line `error: ...` on stderr and exits 2; SIGTERM and Ctrl-C remove the outputs' temp files
    and exit 143 and 130.
    """
    signal.signal(signal.SIGTERM, _terminate)
    if not sys.stderr.isatty():  # tqdm's rule for its bars (erasure/progress.py), applied to the Hugging Face
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # libraries' (read at import; a user's value kept)
    try:
        params = load_params()
        if setup is not None:
            setup(params)
        main(params)
    except (ParamError, DataError) as err:
        _fail(str(err))
    except OSError as err:
        _fail(f"{err.filename or 'a file'}: {os_error_text(err)}")
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Terminated:
        _fail("terminated (SIGTERM)", 143)
