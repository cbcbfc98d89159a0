"""Stage prompts: the prompt set of the selected model, saved once as tokens + sha256 (data/prompts), and which
inputs it came from (metrics/inputs.json: Hub commits and the weights' sha256, so the report says which bytes)."""
from erasure.models.setup import prepare_model_stage
from erasure.params.load import Params
from erasure.paths import INPUTS, PROMPTS_DIR
from erasure.stage import run_stage


def main(params: Params) -> None:
    from erasure.analysis.prompt_files import save_prompts
    from erasure.analysis.prompts import build_prompts
    from erasure.io import OutputSet
    from erasure.models.load import LoadedFrom, bos_token_id, model_tokenizer

    loaded = LoadedFrom()
    tokenizer = model_tokenizer(params, loaded)
    tokens, info = build_prompts(params, tokenizer, bos_token_id(params, tokenizer))
    info["hub"] = {**loaded.repos, **info.pop("datasets")}
    with OutputSet() as out:  # replaced together: a fault in one leaves the previous set
        saved = {}
        out.file(PROMPTS_DIR, lambda tmp: saved.update(save_prompts(tmp, tokens, info)))
        info = saved
        out.json(INPUTS, {"model": params.model, "hub": info["hub"], "prompts_sha256": info["sha256"]})
    print(f"prompts: {tuple(tokens.shape)} ({info['n_text']} text + {info['n_code']} code) for {params.model}")


if __name__ == "__main__":
    run_stage(main, setup=prepare_model_stage)
