"""Paper Fig 5 drawn: per adversarial prompt, each head's clean DLA and its DLA with the input resampled."""
from __future__ import annotations

from pathlib import Path

from erasure.plotting.style import plt, save


def plot_fig5(prompts: dict, path: str | Path, model_name: str, dpi: int) -> None:
    """Per prompt (columns): writer clean vs resampled (top row); comparison and auto heads (bottom row).

    Bars: clean value and resampled median; dark whisker 25-75 %, light whisker 12.5-87.5 %.
    """
    keys = list(prompts)
    fig, axes = plt.subplots(2, len(keys), figsize=(3.2 * len(keys), 7.5), squeeze=False)
    for col, key in enumerate(keys):
        res = prompts[key]
        rows = [[res["writer"]], list(dict.fromkeys([res["comparison_head"], res["auto_head"]]))]
        for row, head_names in enumerate(rows):
            ax = axes[row, col]
            labels, xpos = [], 0
            for i, name in enumerate(head_names):
                h = res["heads"][name]
                r = h["resampled"]
                colour = f"C{i}"
                if row == 0:
                    tag = " (writer)"
                elif name == res["comparison_head"]:
                    tag = " (comparison)" if name != res["auto_head"] else " (comparison = auto)"
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
            ax.set_xticklabels(labels, fontsize=8)
            ax.legend(fontsize=7.5, loc="best", framealpha=0.85)
            if col == 0:
                which = "stated pair" if res["direction"] == "pair" else "top 2"
                ax.set_ylabel(f"DLA on logit difference ({which})", fontsize=10)
            if row == 0:
                text = res["text"].replace("\n", "\\n").replace("\t", "\\t")
                text = text if len(text) <= 38 else "…" + text[-37:]
                shown = res["paper_pair"]["used_tokens"] if res["direction"] == "pair" else res["top2"]
                ax.set_title(f"{text}\n{shown[0]!r} vs {shown[1]!r} (diff {res['logit_diff']:.2f})",
                             fontsize=8.5)
    fig.suptitle(
        f"{model_name}: DLA of the writer (top) and of other heads (bottom), clean vs input resampled at the "
        f"last position\nbars: clean value / resampled median; whiskers: 25-75 % (dark), 12.5-87.5 % (light)",
        fontsize=10,
    )
    fig.tight_layout()
    save(fig, path, dpi)
