"""Everything the paper template can name: the metrics, the claims with their verification status, the params
and provenance (dvc.yaml stage, its params, the git commit) of every figure, and the prompt set."""
from __future__ import annotations

import hashlib
import json
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from erasure.errors import DataError
from erasure.formatting import as_number, level_text
from erasure.io import read_json
from erasure.markup import md_text
from erasure.mechanism.stats import QUANTILES
from erasure.paper.sentences import sentence_choices, writer_checkpoint
from erasure.paper.values import Node
from erasure.paths import COMPARISON, DVC_YAML, FIGURES, METRIC_FILES, PROMPTS_DIR
from erasure.verification.findings import findings_md
from erasure.verification.metrics import MISSING, Metrics, lookup
from erasure.verification.provenance import read_yaml, resolve_templated, stage_outputs
from erasure.verification.report import display, failure_lines, interval_cell, verdict_cell
from erasure.verification.verify import failed_results


def pipeline_code(dvc_yaml: dict) -> list[str]:
    """dvc.yaml and every stage dep that is not some stage's output: the code (and templates) a run comes from.
    params.yaml is not among them: each figure names its params by a hash, so a run with `-S` is not dirty."""
    outputs = list(stage_outputs(dvc_yaml))
    deps = {str(DVC_YAML)}
    for stage in (dvc_yaml.get("stages") or {}).values():
        deps.update(d for d in stage.get("deps") or [] if isinstance(d, str))

    def produced(dep: str) -> bool:
        return any(dep == o or dep.startswith(o + "/") or o.startswith(dep + "/") for o in outputs)
    return sorted(d for d in deps if not produced(d))


def git_commit(root: Path, code: list[str]) -> str:
    """The last commit that changed the pipeline's code (12 hex digits), plus "+dirty" if it has uncommitted
    changes. Outputs do not count: committing regenerated outputs leaves it unchanged, so a clone of that commit
    rebuilds the same paper byte for byte."""
    spec = ["--", *code]
    try:
        head = subprocess.run(["git", "-C", str(root), "log", "-1", "--format=%H", *spec], capture_output=True,
                              text=True, timeout=20)
        if head.returncode != 0:
            return "unknown (not a git checkout)"
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", *spec], capture_output=True,
                                text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return "unknown (git not available)"
    return (head.stdout.strip()[:12] or "uncommitted") + ("+dirty" if status.stdout.strip() else "")


def stage_param_names(dvc_yaml: dict, stage: str, params: dict) -> list[str]:
    """The params a dvc.yaml stage declares (sections or keys), `${...}` resolved from params."""
    spec = ((dvc_yaml.get("stages") or {}).get(stage) or {}).get("params") or []
    names: list[str] = []
    for item in spec:
        if isinstance(item, str):
            names.append(item)
        elif isinstance(item, dict):  # {params_file: [keys]}: only params.yaml is used here
            for keys in item.values():
                names += list(keys or [])
    return [resolve_templated(name, params) for name in names]


def stage_params(names: list[str], params: dict) -> list[tuple[str, Any]]:
    """(dotted name, value) of every param leaf under the named sections or keys."""
    return [leaf for name in names for leaf in _leaves(name, lookup(params, name))]


def _leaves(prefix: str, value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, dict) and value:
        return [leaf for k, v in value.items() for leaf in _leaves(f"{prefix}.{k}", v)]
    if isinstance(value, list) and value and any(isinstance(v, (dict, list)) for v in value):
        return [leaf for i, v in enumerate(value) for leaf in _leaves(f"{prefix}.{i}", v)]
    return [(prefix, "(not in params.yaml)" if value is MISSING else value)]


def params_hash(params: list[tuple[str, Any]]) -> str:
    """8 hex digits of the sha256 of a stage's param values: equal hashes, equal params."""
    text = json.dumps([[name, value] for name, value in params], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


@dataclass
class Figure:
    key: str
    path: str
    exists: bool
    stage: str | None
    sections: list[str]  # the stage's params as dvc.yaml names them (`models.${model}` resolved)
    params: list[tuple[str, Any]]
    commit: str

    @property
    def image(self) -> str:
        """The Markdown image (path relative to paper/), or a visible note when the file is absent."""
        if not self.exists:
            return (f"> **Figure not produced:** `{self.path}` is absent "
                    f"(stage `{self.stage or '?'}` has not run for this model).")
        return f"![{self.path}](../{self.path})"

    @property
    def provenance(self) -> str:
        """One line: the stage, which params shaped it and a hash of their values, the commit."""
        names = ", ".join(f"`{n}`" for n in self.sections) or "none"
        return (f"<small>Stage `{self.stage or '?'}` · params {names} (hash `{params_hash(self.params)}`) · "
                f"commit `{self.commit}`.</small>")


def prompt_info(root: Path, params: dict, fig1: dict | None = None) -> dict:
    """The prompt set that produced the metrics: data/prompts/tokens.json (+ tokens.npy's shape), else the
    header of metrics/fig1_resid.json, else params.yaml."""
    info: dict[str, Any] = {}
    model = params.get("model")
    cfg = ((params.get("models") or {}).get(model) or {}).get("prompts") or {}
    info.update({k: cfg.get(k) for k in ("source", "n_text", "n_code", "seq_len", "seed")})
    info["from"] = "params.yaml"
    if fig1 and fig1.get("n_prompts") is not None:
        info.update({"n_prompts": fig1.get("n_prompts"), "seq_len": fig1.get("seq_len", info["seq_len"])})
        info["from"] = "metrics/fig1_resid.json and params.yaml"
    meta_path = root / PROMPTS_DIR / "tokens.json"
    if meta_path.exists():
        meta = read_json(meta_path, "re-run `dvc repro prompts`")
        if not isinstance(meta, dict):
            raise DataError(f"{meta_path} holds {type(meta).__name__}, not a mapping: re-run `dvc repro prompts`")
        info.update({k: meta[k] for k in ("source", "n_text", "n_code", "sha256", "model") if k in meta})
        info["from"] = str(PROMPTS_DIR / "tokens.json")
    tokens = root / PROMPTS_DIR / "tokens.npy"
    if tokens.exists():
        import numpy as np

        try:
            shape = np.load(tokens, mmap_mode="r").shape
        except (ValueError, OSError, EOFError) as err:
            raise DataError(f"{tokens} is corrupt ({type(err).__name__}): re-run `dvc repro prompts`") from None
        if len(shape) != 2:
            raise DataError(f"{tokens} has shape {shape}, not (prompts, seq_len): re-run `dvc repro prompts`")
        info["n_prompts"], info["seq_len"] = int(shape[0]), int(shape[1])
    if info.get("n_prompts") is None and isinstance(info.get("n_text"), int) and isinstance(info.get("n_code"), int):
        info["n_prompts"] = info["n_text"] + info["n_code"]
    info["sha256_short"] = (info.get("sha256") or "")[:12] or None
    return info


def _ordinal(q: float) -> str:
    text = f"{q:g}"
    return text + ("th" if not text.endswith(("1", "2", "3")) or text.endswith(("11", "12", "13"))
                   else {"1": "st", "2": "nd", "3": "rd"}[text[-1]])


def _ci_label(fig4: dict | None) -> str:
    """The level of fig4's intervals (`bootstrap.level` of its metrics file), e.g. 0.95 -> 95%."""
    level = ((fig4 or {}).get("bootstrap") or {}).get("level")
    return "confidence" if as_number(level) is None else level_text(level)


def build_context(root: str | Path, params: dict, registry: dict, verification: dict | None) -> dict:
    root = Path(root)
    dvc_yaml = read_yaml(root / DVC_YAML) or {}
    owners = stage_outputs(dvc_yaml)
    metrics = Metrics(root)
    m = {Path(f).stem: metrics.file(f) for f in METRIC_FILES}
    run_model = params.get("model")
    paper = registry.get("paper", {})
    commit = git_commit(root, pipeline_code(dvc_yaml))
    figures = {}
    for key, file in FIGURES.items():
        path = str(file)
        stage = owners.get(path)
        sections = stage_param_names(dvc_yaml, stage, params) if stage else []
        figures[key] = Figure(key=key, path=path, exists=(root / path).is_file(), stage=stage, sections=sections,
                              params=stage_params(sections, params), commit=commit)
    results = {r["id"]: r for r in (verification or {}).get("claims", [])}
    claims = {}
    for entry in registry["claims"]:
        r = results.get(entry["id"], {})
        claims[entry["id"]] = {**entry, "status": r.get("status", "NOT RUN"), "reproduced": r.get("reproduced"),
                               "diff": r.get("diff"), "reason": r.get("reason", "verification has not run")}
    fig1 = m.get("fig1_resid") or {}
    fig2 = m.get("fig2_components") or {}
    writer = fig1.get("writer") or ((params.get("models") or {}).get(run_model) or {}).get("writer")
    erasers = fig2.get("erasers") or ((params.get("models") or {}).get(run_model) or {}).get("erasers")
    is_paper_model = run_model == paper.get("model")
    banner = None
    if not is_paper_model:
        banner = (f"These results are from **{run_model}**, not {paper.get('model')}, so they are **not** the paper's "
                  f"claims: the paper's values are shown for reference and every claim is NOT RUN.")
    fig5_params = (params.get("fig5") or {}).get("prompts")
    checkpoints = list(fig1["checkpoints"]) if isinstance(fig1.get("checkpoints"), dict) else []
    says = sentence_choices(m)
    table_cks = key_checkpoints(checkpoints, fig1, writer) or MISSING
    checkpoints = checkpoints or MISSING
    failed = failed_results(verification) if verification else []
    findings = (verification or {}).get("findings")
    comparison = _read_json(root / COMPARISON)
    return {
        "model": run_model,
        "is_paper_model": is_paper_model,
        "banner": banner,
        "paper": Node(paper, "claims.yaml:paper"),
        "claims": Node(claims, "claims"),
        "m": Node(m, "metrics"),
        "params": Node(params, "params"),
        "fig5_prompts": Node(fig5_params, "params.fig5.prompts"),
        "checkpoints": Node(checkpoints, "metrics.fig1_resid.checkpoints"),
        "table_checkpoints": Node(table_cks, "metrics.fig1_resid.checkpoints"),
        "says": Node(says, "says"),
        "rules_table": rules_table(says),
        "failures": failure_lines(failed, (verification or {}).get("figure_gaps") or []),
        "findings": findings_md(findings) if findings else None,
        "q": {k: _ordinal(v) for k, v in QUANTILES.items()},  # q.q25 = "25th": percentile names from stats.py
        "ci": _ci_label(m.get("fig4_dla")),
        "writer": Node(writer, "writer"),
        "roles_auto": ((params.get("models") or {}).get(run_model) or {}).get("writer") == "auto",
        "erasers": Node(erasers, "erasers"),
        "figs": figures,
        "commit": commit,
        "prompts": Node(prompt_info(root, params, fig1), "prompts"),
        "verification": Node(verification or {}, "verification"),
        "verification_table": verification_table(verification, registry),
        "comparison": Node(comparison, "metrics.comparison"),
        "rotary_short_of_yes": [c["model"] for c in (comparison or {}).get("models") or []
                                if c.get("ran") and c.get("positions") == "rotary" and c.get("verdict") != "yes"],
        "metric_models": Node((verification or {}).get("metric_models") or
                              {f: metrics.model_of(f) for f in METRIC_FILES if metrics.file(f) is not None},
                              "metric_models"),
    }


def key_checkpoints(names: list[str], fig1: dict, writer: Any, most: int = 12) -> list[str]:
    """The rows of the paper's Fig 1 table: every checkpoint up to `most`; in deeper models the first, the
    writer's, the entering and erasure checkpoints, the one after it and the last (the full table is in
    metrics/fig1_resid.json)."""
    if len(names) <= most:
        return names
    first = writer_checkpoint(str(writer), names)
    erase = fig1.get("erasure_checkpoint")
    after = names[names.index(erase) + 1] if erase in names and names.index(erase) + 1 < len(names) else None
    keep = {names[0], first, fig1.get("entering_checkpoint"), erase, after, names[-1]}
    return [n for n in names if n in keep]


def rules_table(says: dict) -> str:
    """The appendix: every sentence rule, what it measured on this run, and the sentence it chose."""
    rows = ["| sentence | rule | measured | chosen |", "|---|---|---|---|"]
    for rule in says.values():
        measured = ", ".join(f"{k} {display(v)}" for k, v in rule["measured"].items()) or "—"
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in (
            rule["sentence"], rule["rule"], measured, rule["choice"].replace("_", " "))) + " |")
    return "\n".join(rows)


def _read_json(path: Path) -> Any:
    """A JSON file, or None when it is absent or unreadable (the template says so)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def verification_table(verification: dict | None, registry: dict) -> str:
    """A compact Markdown table of the verification report (full report: paper/verification.md). Why claims are
    NOT RUN is said once above the table, not in every row."""
    if not verification:
        return "> **Verification has not run:** `paper/verification.json` is absent."
    not_run = [r for r in verification.get("claims", []) if r["status"] == "NOT RUN"]
    reasons = Counter(r["reason"] for r in not_run)
    rows = [f"**NOT RUN** ({n} of {len(verification['claims'])} claims): {md_text(reason)}."
            for reason, n in reasons.items()]
    rows += ["", "| claim | source | paper | reproduced | interval | decided by | verdict |",
             "|---|---|---|---|---|---|---|"]
    sections = {e["id"]: f"{e['source']} {e['section']}" for e in registry["claims"]}
    for r in verification.get("claims", []):
        rows.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in (
            f"**{r['id']}**: {r['text']}", sections.get(r["id"], ""), display(r["paper_value"]),
            display(r["reproduced"]), interval_cell(r.get("interval")), r["tolerance"] or "—", _verdict(r))) + " |")
    if verification.get("planted"):
        rows += ["", "| planted-truth check | expected | reproduced | interval | decided by | verdict |",
                 "|---|---|---|---|---|---|"]
        for r in verification["planted"]:
            rows.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in (
                f"**{r['id']}**: {r['text']}", display(r["paper_value"]), display(r["reproduced"]),
                interval_cell(r.get("interval")), r["tolerance"] or "—", _verdict(r))) + " |")
    return "\n".join(rows).lstrip("\n")


def _verdict(r: dict) -> str:
    """PASS with its level, FAIL with its reason; NOT RUN alone (its reason is above the table)."""
    return "NOT RUN" if r["status"] == "NOT RUN" else verdict_cell(r, fail_reason=True)
