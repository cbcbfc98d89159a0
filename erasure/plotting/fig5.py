"""Paper Fig 5 drawn: per adversarial prompt, each head's clean DLA and its DLA with the input resampled."""
from __future__ import annotations

from pathlib import Path

from erasure.mechanism.names import display_token
from erasure.plotting.style import plain_text, plt, save


@plain_text
def plot_fig5(prompts: dict, path: str | Path, model_name: str, dpi: int) -> None:
    """Per adversarial prompt (rows): the writer clean vs resampled (left); comparison and auto heads (right).

    Bars: clean value and resampled median; dark whisker 25-75 %, light whisker 12.5-87.5 %. Two columns keep
    the figure as wide as the paper's page, so its text is read at full size.
    """
    keys = list(prompts)
    fig, axes = plt.subplots(len(keys), 2, figsize=(7.2, 2.3 * len(keys) + 0.9), squeeze=False)
    for row, key in enumerate(keys):
        res = prompts[key]
        columns = [[res["writer"]], list(dict.fromkeys([res["comparison_head"], res["auto_head"]]))]
        for col, head_names in enumerate(columns):
            ax = axes[row, col]
            labels, xpos = [], 0
            for i, name in enumerate(head_names):
                h = res["heads"][name]
                r = h["resampled"]
                colour = f"C{i}"
                if col == 0:
                    tag = " (writer)" if name.startswith("L") else " (writer; input: ln2)"
                elif name == res["comparison_head"]:
                    picked = "comparison" if res["comparison_source"] == "params" else "runner-up |DLA|"
                    tag = f" ({picked})" if name != res["auto_head"] else f" ({picked} = auto)"
                else:
                    tag = " (auto: max |DLA|)"
                ax.bar(xpos, h["clean"], color=colour, alpha=0.9, width=0.8, label=f"{name}{tag}")
                ax.bar(xpos + 1, r["median"], color=colour, alpha=0.45, width=0.8)
                ax.vlines(xpos + 1, r["q12_5"], r["q87_5"], color="0.55", lw=5, alpha=0.5)
                ax.vlines(xpos + 1, r["q25"], r["q75"], color="black", lw=2)
                labels += ["clean", "resampled"]
                xpos += 2
            ax.axhline(0, color="grey", ls="--", lw=0.8)
            ax.set_xticks(range(len(labels)))
            ax.set_xticklabels(labels, fontsize=7.5)
            ax.tick_params(axis="y", labelsize=7.5)
            ax.legend(fontsize=7, loc="best", framealpha=0.85)
        text = res["text"].replace("\n", "\\n").replace("\t", "\\t")
        text = text if len(text) <= 44 else "…" + text[-43:]
        shown = res["paper_pair"]["used_tokens"] if res["direction"] == "pair" else res["top2"]
        axes[row, 0].set_title(f"{key}: {text}", fontsize=8, loc="left")
        axes[row, 1].set_title(f"{display_token(shown[0])} vs {display_token(shown[1])} "
                               f"(diff {res['logit_diff']:.2f})", fontsize=8, loc="left")
        which = "stated pair" if res["direction"] == "pair" else "top 2"
        axes[row, 0].set_ylabel(f"DLA ({which})", fontsize=8)
    fig.suptitle(
        f"{model_name}: DLA of the writer (left) and of other heads (right), clean vs input resampled at the last\n"
        "position. Bars: clean value / resampled median; whiskers: 25-75 % (dark), 12.5-87.5 % (light)",
        fontsize=8.5,
    )
    fig.tight_layout()
    save(fig, path, dpi)
