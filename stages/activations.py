"""Stage activations: every forward pass of the pipeline (erasure.analysis.passes). One clean pass over the prompts
feeds discovery (metrics/discovery.json, data/discovery_atlas.npz) and the per-token tables with paper Fig 4's
points (data/activations); then paper Fig 5's passes (metrics/fig5_adversarial.json)."""
import json
import resource
import sys
import time

from erasure.models.setup import prepare_model_stage
from erasure.params.load import Params
from erasure.paths import ACTIVATIONS_DIR, DISCOVERY_ATLAS, METRICS
from erasure.stage import run_stage


def main(params: Params) -> None:
    from erasure.analysis.prompt_files import load_prompts

    t0 = time.perf_counter()
    tokens, info = load_prompts(params)  # checked before TransformerLens is imported: a bad file stops it in seconds
    from erasure.analysis.activations import write_meta
    from erasure.analysis.discovery.atlas import write_atlas
    from erasure.analysis.discovery.discover import atlas_of
    from erasure.analysis.fig4_points import check_start_pos
    from erasure.analysis.passes import run_passes
    from erasure.io import OutputSet, round_significant
    from erasure.models.load import bos_token_id, load_model

    check_start_pos(params.fig4.code_variant.start_pos, tokens.shape[1])
    model = load_model(params)
    t_load = time.perf_counter() - t0
    digits = params.outputs.significant_digits

    def tables(tmp):  # the long pass writes the tables into the folder's temp as it goes
        done = run_passes(model, tokens, params, tmp, bos_token_id(params, model.tokenizer))
        write_meta(tmp, done.tables_meta | {"model": params.model, "prompts_sha256": info.sha256,
                                            "is_code": info.is_code})
        return done

    with OutputSet() as out:  # replaced together, once every output is written (erasure.io.OutputSet)
        done = out.file(ACTIVATIONS_DIR, tables)
        record = round_significant(done.discovery.record | {"prompts_sha256": info.sha256}, digits)
        out.file(DISCOVERY_ATLAS, lambda tmp: write_atlas(atlas_of(done.discovery), tmp))
        out.json(METRICS["discovery"], record)
        out.json(METRICS["fig5_adversarial"], done.fig5, digits)
    sel = record["selected"]
    print(
        f"activations: {params.model}, {tokens.shape[0]} x {tokens.shape[1]} tokens on {model.cfg.device} "
        f"({model.cfg.dtype}); tables: writer {done.tables_meta['writer']}, patched layers "
        f"{done.tables_meta['patch_layers']}; discovery: top writer "
        f"{record['writers'][0]['name'] if record['writers'] else None}, selected {sel['writer']} with erasers "
        f"{sel['erasers']}, rediscovered = {record['rediscovered']}; V-comp prompts "
        f"{'kept from the clean pass' if done.subset_kept else 'run again (beyond compute.memory_gb)'}",
        file=sys.stderr,
    )
    seconds = {"load": t_load, **done.seconds, "total": time.perf_counter() - t0}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"activations: seconds {json.dumps({k: round(v, 1) for k, v in seconds.items()})}; peak RSS {peak:.2f} GB",
          file=sys.stderr)


if __name__ == "__main__":
    run_stage(main, setup=prepare_model_stage)
