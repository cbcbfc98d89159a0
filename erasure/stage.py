"""Entry point shared by the stage scripts: bad params or data end in one line, never a traceback.

Stage scripts import heavy modules (torch, TransformerLens) inside main(), so that checking params and the
Hub (`needs_model=True`) happens within seconds of the start.
"""
from __future__ import annotations

import sys
from collections.abc import Callable

from erasure.errors import DataError, ParamError
from erasure.params.load import load_params


def run_stage(main: Callable[[], None], needs_model: bool = False) -> None:
    """Validate params (and the Hub when the stage loads a model), then run main().

    A ParamError/DataError prints `error: ...` on stderr and exits 2.
    """
    try:
        params = load_params()
        if needs_model:
            from erasure.models.hub import preflight

            preflight(params)
        main()
    except (ParamError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
