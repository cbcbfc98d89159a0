"""Stage dla_audit: for every head and MLP, its DLA against the total effect of ablating it, and who repairs the
difference (erasure.analysis.audit; docs/methods.md §9). Its own model load: the audit's passes start at each
component's layer and share nothing with the activations stage's clean pass but the prompts (README: "DLA audit").
Writes metrics/dla_audit.json, the DVC metrics rows metrics/audit_headline/ (the most repaired components),
plots/dla_audit.csv and figures/dla_audit.png."""
import resource
import sys
import time

from erasure.analysis.roles import resolve_roles
from erasure.errors import DataError, ParamError
from erasure.io import read_json
from erasure.mechanism.names import Component
from erasure.models.setup import prepare_model_stage
from erasure.params.load import Params
from erasure.paths import AUDIT_HEADLINE, FIGURES, METRICS, PLOTS
from erasure.stage import run_stage


def eraser_sets(params, writer: Component, erasers: list[Component]) -> dict[str, list[Component]]:
    """Component -> its erasers: every writer discovery names with erasers, and the run's writer with its own."""
    record = read_json(METRICS["discovery"], "re-run `dvc repro activations`")
    sets = {}
    try:
        for w in record["writers"]:
            named = [Component.parse(e["name"], f"{METRICS['discovery']}: erasers of {w['name']}", params.shape)
                     for e in w.get("erasers") or []]
            if named:
                sets[Component.parse(w["name"], str(METRICS["discovery"]), params.shape).name] = named
    except (KeyError, TypeError, AttributeError, ParamError) as err:
        raise DataError(f"{METRICS['discovery']} has no readable writers list ({err}): re-run "
                        "`dvc repro activations`") from None
    return sets | {writer.name: erasers}


def main(params: Params) -> None:
    from erasure.analysis.prompt_files import load_prompts

    t0 = time.perf_counter()
    settings = params.audit
    tokens, info = load_prompts(params)
    n = min(tokens.shape[0], settings.n_prompts or tokens.shape[0])  # all prompts when the set is smaller
    if settings.ablation == "resample" and n < 2:
        raise ParamError("audit.n_prompts is not allowed: resample needs at least 2 prompts")
    writer, erasers = resolve_roles(params)
    sets = eraser_sets(params, writer, erasers)

    from erasure.analysis.audit import keep_freed_memory, run_audit
    from erasure.analysis.audit_pool import AuditConfig, audit_record, headline, plot_rows
    from erasure.io import OutputSet, round_significant
    from erasure.mechanism.bootstrap import PromptBootstrap
    from erasure.models.load import load_model
    from erasure.plotting.audit import plot_audit

    keep_freed_memory()
    model = load_model(params)
    t_load = time.perf_counter() - t0
    cfg = AuditConfig.of(params)
    result = run_audit(model, tokens[:n], cfg, sets)
    st = params.stats
    boot = PromptBootstrap.of(n, st)
    header = {"model": params.model, "n_prompts": n, "seq_len": int(tokens.shape[1]), "prompts_sha256": info.sha256,
              "architecture": {"n_layers": model.cfg.n_layers, "n_heads": model.cfg.n_heads},
              "writer": writer.name, "erasers": {k: [c.name for c in v] for k, v in sets.items()}}
    digits = params.outputs.significant_digits
    record = round_significant(audit_record(result.tokens, result.valid, result.logit_rms, cfg, boot, header,
                                            model.cfg.n_layers), digits)
    with OutputSet() as out:  # replaced together: a fault in one leaves the previous set
        out.json(METRICS["dla_audit"], record)
        out.json_folder(AUDIT_HEADLINE, headline(record))
        out.csv(PLOTS["audit"], plot_rows(record), digits)
        out.file(FIGURES["audit"], lambda tmp: plot_audit(record, tmp, settings.dpi))
    top = [(c, record["components"][c]["repair_share"]) for c in record["ranking"][:5]]
    seconds = {"load": round(t_load, 1), **{k: round(v, 1) for k, v in result.seconds.items()},
               "total": round(time.perf_counter() - t0, 1)}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"dla_audit: {params.model}, {n} x {tokens.shape[1]} tokens, {settings.ablation} ablation, "
          f"{settings.direction}; most repaired {top}; {record['n_null']} null; seconds {seconds}; "
          f"peak RSS {peak:.2f} GB", file=sys.stderr)


if __name__ == "__main__":
    run_stage(main, setup=prepare_model_stage)
