"""Entry point shared by the stage scripts: bad params or data end in one line, never a traceback.

Stage scripts import heavy modules (torch, TransformerLens) inside main(): checking params takes a moment, and for a
Hub model (`needs_model=True`) online or offline is decided before any Hugging Face library is imported (they read
their settings at import).
"""
from __future__ import annotations

import sys
from collections.abc import Callable

from erasure.errors import DataError, ParamError
from erasure.params.load import load_params


def run_stage(main: Callable[[], None], needs_model: bool = False) -> None:
    """Validate params (and, when the stage loads a model, its device and the Hub), then run main().

    A ParamError/DataError prints `error: ...` on stderr and exits 2.
    """
    try:
        params = load_params()
        if needs_model and params.entry.loader == "hub":
            from erasure.models.hub import prepare_hub

            prepare_hub(params.entry.hub_timeout_s)
        if needs_model:
            from erasure.models.device import compute_device

            compute_device(params.compute.device)  # `cuda` without one: one line before any work
        main()
    except (ParamError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
