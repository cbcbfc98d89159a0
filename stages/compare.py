"""Stage compare: the sweep's per-model discovery results side by side (metrics/comparison.json, one figure).

Its input, sweep/<model>.json, is collected from DVC experiments by `python -m scripts.collect_sweep`."""
import sys

from erasure.errors import DataError
from erasure.params.load import Params
from erasure.paths import COMPARISON, FIGURES, SWEEP_DIR
from erasure.schemas import SWEEP_REMEDY, read_sweep_file
from erasure.stage import run_stage


def read_sweep() -> dict[str, dict]:
    """model -> its collected record, from every sweep/<model>.json (each checked: erasure.schemas.SweepRecord)."""
    collected = {}
    for path in sorted(SWEEP_DIR.glob("*.json")):
        record = read_sweep_file(path)
        if record["model"] in collected:
            raise DataError(f"{path} holds {record['model']!r} again (another sweep file has it): {SWEEP_REMEDY}")
        collected[record["model"]] = record
    return collected


def main(params: Params) -> None:
    collected = read_sweep()  # a broken file stops the stage before the heavy imports
    if not any(name in collected for name in params.compare.models):
        raise DataError(f"{SWEEP_DIR} holds none of compare.models ({', '.join(params.compare.models)}): collect "
                        "their experiments first (`python -m scripts.collect_sweep`)")

    from erasure.analysis.comparison import compare
    from erasure.io import OutputSet, round_significant
    from erasure.planted_truth import planted_truth
    from erasure.plotting.audit import plot_depth
    from erasure.plotting.comparison import plot_comparison

    truth = planted_truth()
    result = round_significant(compare(collected, params.compare, truth), params.outputs.significant_digits)
    with OutputSet() as out:  # replaced together: a fault in one leaves the previous set
        out.json(COMPARISON, result)
        out.file(FIGURES["comparison"], lambda tmp: plot_comparison(result, tmp, params.compare.dpi,
                                                                    truth_erasure=truth.total_erasure))
        out.file(FIGURES["audit_depth"], lambda tmp: plot_depth(
            {m: collected.get(m, {}).get("audit") for m in params.compare.models}, tmp, params.compare.dpi))
    control = result["control"]
    print(f"compare: {result['n_run']} of {len(result['models'])} models collected; control recovered: "
          f"{None if control is None else control['recovered']}; gelu-4l-like: {result['gelu4l_like'] or 'none'}",
          file=sys.stderr)


if __name__ == "__main__":
    run_stage(main)
