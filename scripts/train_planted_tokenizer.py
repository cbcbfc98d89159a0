"""Train the planted-4l tokenizer and write ``erasure/models/assets/planted_tokenizer.json``.

A byte-level BPE (the `tokenizers` library), trained offline on the corpus of ``erasure.analysis.corpus``:

- every ``"text"`` document (pydoc topics + standard-library docstrings), plus
- every k-th ``"code"`` document, k chosen so that code is about 20% of the training characters
  (gelu-4l's training mix was 80% web text, 20% Python code), plus
- one seed document that repeats the paper's Fig 5 target words (" bottom", " top", " State",
  " University", " __", " get", " Church", " church") so they become single tokens, as they are in
  gelu-4l's tokenizer (the standard library never says " Church", and " University" once).

Like gelu-4l's ``gpt-neox-tokenizer-digits``: special tokens id 0 ``<|EOS|>``, id 1 ``<|BOS|>``,
id 2 ``<|PAD|>``; digits are split one per token; no BOS is added by the tokenizer itself
(TransformerLens prepends it). Vocabulary: ``VOCAB_SIZE`` (16384) ids, all < gelu-4l's d_vocab 48262.

Deterministic: the corpus order is fixed and the trainer is run single-threaded-equivalent (BPE merge
selection in `tokenizers` is deterministic for the same input); ``--check`` retrains into memory and
verifies the committed file is identical.

Usage: ``python scripts/train_planted_tokenizer.py [--out PATH] [--check]``
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from erasure.analysis.corpus import iter_documents  # noqa: E402

VOCAB_SIZE = 16384
SPECIAL_TOKENS = ["<|EOS|>", "<|BOS|>", "<|PAD|>"]  # ids 0, 1, 2 as in gelu-4l's tokenizer
CODE_SHARE = 0.20
FIG5_WORDS = [" bottom", " top", " State", " University", " __", " get", " Church", " church"]
SEED_REPEATS = 200
DEFAULT_OUT = ROOT / "erasure" / "models" / "assets" / "planted_tokenizer.json"


def training_documents() -> Iterator[str]:
    text = list(iter_documents("text"))
    code = list(iter_documents("code"))
    text_chars = sum(map(len, text))
    code_chars = sum(map(len, code))
    # stride so that code ~ CODE_SHARE of all training characters
    target = text_chars * CODE_SHARE / (1.0 - CODE_SHARE)
    stride = max(1, round(code_chars / target))
    yield from text
    yield from code[::stride]
    yield "".join(w * SEED_REPEATS for w in FIG5_WORDS)


def build_untrained() -> tuple[Tokenizer, trainers.BpeTrainer]:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    return tok, trainer


def train() -> Tokenizer:
    tok, trainer = build_untrained()
    tok.train_from_iterator(training_documents(), trainer=trainer)
    for i, s in enumerate(SPECIAL_TOKENS):
        assert tok.token_to_id(s) == i, (s, tok.token_to_id(s))
    return tok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true", help="retrain and compare with --out instead of writing")
    args = ap.parse_args()
    tok = train()
    blob = tok.to_str(pretty=False)
    digest = hashlib.sha256(blob.encode()).hexdigest()
    if args.check:
        old = args.out.read_text(encoding="utf-8")
        same = old == blob
        print(f"{'identical' if same else 'DIFFERENT'}: {args.out} (retrained sha256 {digest[:16]})")
        return 0 if same else 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(blob, encoding="utf-8")
    tmp.replace(args.out)
    single = [w for w in FIG5_WORDS if len(tok.encode(w).ids) == 1]
    print(f"wrote {args.out} ({len(blob.encode()):,} bytes, vocab {tok.get_vocab_size()}, sha256 {digest[:16]})")
    print(f"single-token Fig 5 words: {single}; not single: {[w for w in FIG5_WORDS if w not in single]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
