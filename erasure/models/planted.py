"""planted-4l: a TEST INSTRUMENT with gelu-4l's shape and an erasure mechanism built in by construction.

This is **not a trained model** and says nothing about gelu-4l. It is a HookedTransformer whose weights are
written by hand (plus seeded random noise) so that the paper's analyses have a known right answer: the
pipeline run on planted-4l must recover :func:`planted_truth`, which follows from the construction below
and was not measured from the model.

Shape (= gelu-4l after TransformerLens' default processing): 4 layers, d_model 512, 8 heads of d_head 64,
d_mlp 2048, GELU, d_vocab 48262, n_ctx 1024, ``normalization_type="LNPre"`` (LayerNorm weights folded),
learned absolute positions, untied W_E/W_U, float32, ``default_prepend_bos=True``, no value biases, and every
vector written to the residual stream has zero mean over d_model (as after ``center_writing_weights``);
W_U is centred over the vocabulary (``center_unembed``). The tokenizer is :func:`planted_tokenizer`
(byte-level BPE with 16384 ids trained on ``erasure.corpus``; ids 16384..48261 are never produced and get
b_U = -30 so the model never predicts them).

Construction (seeded by ``seed``; the numbers in CAPITALS are module constants):

* **Residual subspaces.** A seeded orthonormal basis of the 511-dim space orthogonal to the all-ones vector
  is split into disjoint blocks: S (7 dims, where the writer writes), R_e (1 dim, a direction shared by all
  token embeddings), R_pos (6 dims, smooth positional features), P (64 dims, random position codes used for
  "attend to the current position" heads) and F (the remaining 433 dims: token content and all noise).
  Inside F, K (64 dims) is what the token head reads and U (64 dims) is where it writes.
* **Embeddings.** ``W_E[t]`` = a random unit vector in F times N_T, plus N_E·(1 + 0.05·z_t) along R_e
  (z_t standard normal: a slight token dependence). ``W_pos[p]`` = a random unit vector in P times N_C, plus
  A_POS·(cos, sin)(ω_k p) for k = 1, 2, 3 in R_pos (ω_k = π k / n_ctx). Because the blocks are orthogonal and
  the norms are fixed, the layer-0 LN scale is σ_0 = sqrt((N_T² + N_E²(1+0.05 z)² + N_C² + 3 A_POS²)/512),
  nearly the same at every position.
* **Writer L0H2.** W_Q = W_K = 0, so it attends uniformly to positions 0..p. Its OV reads R_e (gain so that the
  constant part of its output has norm WRITER_CONST = 7) and R_pos (positional part of norm WRITER_POS = 3 at
  p = 0, shrinking as the running mean averages the cos/sin features) and writes them into S. Its output o[p]
  is thus a mostly positional vector in S that barely depends on the tokens. Nothing else writes into S
  except tiny zero-mean token-dependent leaks of the noise heads (below), so PR(resid, o) = 1 from resid_mid0
  to resid_post1, and PR(resid_pre0, o) = 0.
* **Erasers L2H2..L2H7.** Q/K read the position codes P, scaled so that the score of the own position is
  DIAG_SCORE = 40 (random codes give other positions scores of about ±5), so each head attends to its own
  position (attention weight > 0.999). The first 7 value dimensions read S: W_V[:, :7] = -f_h · σ_ref · B_S and
  W_O[:7] = B_S^T, so the head writes -f_h · (σ_ref/σ_2[p]) · P_S(resid_pre2[p]) = -f_h (σ_ref/σ_2) o[p],
  where σ_ref = SIGMA_REF is the *design* layer-2 LN scale, computed from the constants alone (the blocks are
  orthogonal, so energies add): sqrt((N_T² + N_E² + N_C² + 3 A_POS² + WRITER_CONST² + WRITER_POS² +
  2 NOISE_MLP_NORM²)/512 + eps). Hence median PR(out_h, o) = -f_h up to the spread of σ_2 around σ_ref, the
  sum over the six heads is -Σ f_h = -0.87, and PR(resid_mid2, o) = 1 - 0.87 = 0.13. They read o ONLY through
  their values (queries/keys see P only), so the V-composition patch of docs/methods.md §4.1 (subtract o from
  ``blocks.2.hook_v_input``, freeze ``blocks.2.ln1.hook_scale``) removes exactly their S output: patched
  PR ≈ 0, PR(resid_mid2, o) patched = 1. Their other 57 value dims are small random noise written into F.
  Paper Fig 4 then holds by construction: the erasers' V-composition part is -Σ f_h (σ_ref/σ_2) o, so its DLA
  on any direction is -Σ f_h (σ_ref/σ_2) times the writer's DLA (slope ≈ -0.87, r ≈ -1).
* **Token head L3H1.** Attends to its own position (like the erasers), reads the token subspace K (W_V = B_K)
  and writes it into U with gain GAMMA. W_U's U block is built so that token t's output direction is the
  unembedding of a seeded "successor" π(t): the head alone gives π(t) a logit of about 8, so it dominates the
  clean top-2 logit difference and its DLA changes completely when its input is resampled from another prompt.
* **Everything else** (L0H0/1/3-7, L1H*, L2H0/1, L3H0/2-7, all MLPs) is seeded random noise writing into F
  (zero PR onto o): heads with small random Q/K (diffuse attention; output norms 0.3-0.6 after averaging),
  GELU MLPs with output norm ~NOISE_MLP_NORM = 1.5. So that their PRs have a small zero-median spread instead
  of an exact 0, each noise head has N_LEAK value dims that read token content (F) only and also write into
  S with gain LEAK, each MLP has N_LEAK mirrored neuron pairs (w, -w) -> (+l, -l) that add the linear term
  Σ_k (x·w_k) l_k to S (gelu(a) - gelu(-a) = a), and the token head's W_O has a LEAK/8 part into S. These
  leaks are linear in token content, whose mean over tokens is ~0, so they do not move the medians.
* **Unembedding.** W_U columns: the U part above (gain KAPPA_U), a random S part (std S_G) so the writer has a
  DLA on every logit difference, random F noise (std S_F), and the four tokens the paper finds aligned with
  L0H2 (" bottom", " State", " __", " Church") get an extra ALIGN along the constant direction of o, which
  makes them the four tokens the mean writer output boosts most. Columns >= 16384 (ids the tokenizer never
  produces) are random like the rest but get b_U = -30; b_U is 0 elsewhere. All biases other than b_U are 0.

Measured at seed 0 on 8 × 256 tokens of ``corpus`` text, BOS included (these numbers justify the tolerances
of :func:`planted_truth`; they are not the truth): σ_2/σ_ref median 1.004, q12.5–q87.5 0.998–1.013 (BOS
1.024); median PR of L2H2..L2H7 -0.140, -0.030, -0.120, -0.261, -0.181, -0.140 (planted -0.14, -0.03, -0.12,
-0.26, -0.18, -0.14), summed -0.873; after the V-patch every eraser within 0.002 of 0; every other component
|median PR| ≤ 0.003; PR(resid_post1, o) 1.008, PR(resid_mid2, o) 0.138 clean and 1.004 patched; Fig 4
(top-2 directions) slope -0.866, r -0.999; median relative change of o between two prompt batches 0.004 vs
1.40 for the token head, whose median DLA on the clean top-2 difference is 4.3. Seeds 1 and 2 and code
prompts give the same to within 0.005 (σ_2/σ_ref 0.994–1.012). Build time: 1.6–3.2 s of CPU, 2.6–4.7 s wall
on the shared 2-core machine under load (generating the weights is ~1.3 s of that).
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from erasure.planted_truth import ERASURE_FRACTIONS, TOKEN_HEAD, WRITER

if TYPE_CHECKING:  # torch is imported by the builders only
    import torch

__all__ = [
    "build_planted_model",
    "planted_tokenizer",
    "planted_config",
    "TOKENIZER_PATH",
]

TOKENIZER_PATH = Path(__file__).resolve().parent / "assets" / "planted_tokenizer.json"
TOKENIZER_VOCAB = 16384  # ids the planted tokenizer can produce

# gelu-4l's processed shape
D_MODEL, N_LAYERS, N_HEADS, D_HEAD, D_MLP, D_VOCAB, N_CTX = 512, 4, 8, 64, 2048, 48262, 1024

ALIGNED_WORDS = (" bottom", " State", " __", " Church")

# ---- design norms (residual-stream units; LN scale ≈ 1) ----
DIM_S, DIM_RPOS, DIM_P, DIM_K, DIM_U = 7, 6, 64, 64, 64
N_T = 18.0  # token content norm (in F)
N_E = 6.0  # shared embedding direction (R_e)
E_JITTER = 0.05  # relative per-token jitter of the shared direction
N_C = 8.0  # position code norm (in P)
A_POS = 2.0  # amplitude of each (cos, sin) positional pair (in R_pos)
WRITER_CONST = 7.0  # norm of the constant part of the writer output
WRITER_POS = 3.0  # norm of the positional part of the writer output at p = 0
DIAG_SCORE = 40.0  # target attention score of "attend to self" heads on their own position
GAMMA = 2.0  # token head gain
KAPPA_U = 0.6  # unembedding gain of the token head's successor directions
S_G = 0.05  # std of W_U's S block
S_F = 0.03  # std of W_U's F block
ALIGN = 0.33  # extra W_U weight of the aligned words along the writer's constant direction
NOISE_HEAD_NORM = 1.0  # rough output norm of a noise head
NOISE_MLP_NORM = 1.5  # rough output norm of a noise MLP
ERASER_NOISE_NORM = 0.5  # rough output norm of an eraser's 57 noise value dims
S_QK = 0.05  # std of noise heads' W_Q/W_K entries (diffuse attention)
LEAK = 0.04  # gain of a noise head's token-dependent leak into S
N_LEAK = 4  # value dims of a noise head that read F only and leak into S
UNUSED_LOGIT_BIAS = -30.0  # b_U for ids the tokenizer never produces
EPS = 1e-5
GELU_SQ = 0.4252  # E[gelu(z)^2], z ~ N(0, 1) (exact GELU; numerical integral)


def _design_sigma(energy: float) -> float:
    return math.sqrt(energy / D_MODEL + EPS)


# design LN scales (from the constants only)
SIGMA_0 = _design_sigma(N_T**2 + N_E**2 + N_C**2 + 3 * A_POS**2)
# design layer-2 LN scale: every designed vector reaching resid_pre2 (orthogonal blocks, so energies add):
# embeddings, the writer's constant part and its positional part at p = 0, and the two noise MLPs (layers 0,
# 1). The 15 noise heads of layers 0-1 (norm ~0.4 each after their diffuse attention averages) are left out.
SIGMA_REF = _design_sigma(
    N_T**2 + N_E**2 + N_C**2 + 3 * A_POS**2 + WRITER_CONST**2 + WRITER_POS**2 + 2 * NOISE_MLP_NORM**2
)


@cache
def _tokenizer_file_ok() -> str:
    if not TOKENIZER_PATH.is_file():
        raise FileNotFoundError(
            f"{TOKENIZER_PATH} is missing; regenerate it with `python scripts/train_planted_tokenizer.py`"
        )
    return str(TOKENIZER_PATH)


def planted_tokenizer(add_bos_token: bool = True):
    """The planted-4l tokenizer as a ``transformers.PreTrainedTokenizerFast``.

    Special tokens as gelu-4l's: ``<|EOS|>`` = 0 (eos), ``<|BOS|>`` = 1 (bos), ``<|PAD|>`` = 2 (pad). By
    default it prepends BOS itself (``add_bos_token=True``), which is how TransformerLens sets up gelu-4l's
    tokenizer (``model.tokenizer``); use ``tokenizer(text, add_special_tokens=False)`` for raw ids.
    """
    from transformers import PreTrainedTokenizerFast

    path = _tokenizer_file_ok()
    tok = PreTrainedTokenizerFast(
        tokenizer_file=path,
        bos_token="<|BOS|>",
        eos_token="<|EOS|>",
        pad_token="<|PAD|>",
        add_bos_token=add_bos_token,
        model_max_length=N_CTX,
        padding_side="right",
    )
    # TransformerLens' set_tokenizer reads init_kwargs["name_or_path"]
    tok.init_kwargs.setdefault("name_or_path", path)
    tok.name_or_path = path
    assert tok.bos_token_id == 1 and tok.eos_token_id == 0 and tok.pad_token_id == 2
    return tok


def planted_config(seed: int = 0):
    import torch
    from transformer_lens import HookedTransformerConfig

    return HookedTransformerConfig(
        model_name="planted-4l",
        n_layers=N_LAYERS,
        d_model=D_MODEL,
        n_heads=N_HEADS,
        d_head=D_HEAD,
        d_mlp=D_MLP,
        act_fn="gelu",
        d_vocab=D_VOCAB,
        d_vocab_out=D_VOCAB,
        n_ctx=N_CTX,
        normalization_type="LNPre",
        positional_embedding_type="standard",
        original_architecture="neel",
        default_prepend_bos=True,
        eps=EPS,
        dtype=torch.float32,
        device="cpu",
        seed=None,
        init_weights=False,
    )


def _ortho_basis(gen: torch.Generator) -> torch.Tensor:
    """(d_model, d_model-1) orthonormal columns spanning the zero-mean hyperplane (float64)."""
    import torch

    a = torch.randn(D_MODEL, D_MODEL, generator=gen, dtype=torch.float64)
    a[:, 0] = 1.0
    q, _ = torch.linalg.qr(a)
    return q[:, 1:].contiguous()


def _unit_rows(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


def _single_token_id(tokenizer, word: str) -> int | None:
    ids = tokenizer(word, add_special_tokens=False)["input_ids"]
    return ids[0] if len(ids) == 1 else None


def _planted_state_dict(seed: int, tokenizer) -> dict[str, torch.Tensor]:
    import torch

    gen = torch.Generator().manual_seed(int(seed))

    def randn(*shape):
        return torch.randn(*shape, generator=gen)

    basis = _ortho_basis(gen)
    i = 0

    def take(n: int) -> torch.Tensor:
        nonlocal i
        block = basis[:, i : i + n]
        i += n
        return block

    basis = basis.float()
    B_S, B_Re, B_Rpos, B_P = take(DIM_S), take(1), take(DIM_RPOS), take(DIM_P)
    B_F = basis[:, i:]
    dim_f = B_F.shape[1]
    B_K, B_U = B_F[:, :DIM_K], B_F[:, DIM_K : DIM_K + DIM_U]
    # everything outside F (incl. the all-ones direction), to project big random matrices onto F cheaply
    B_notF = torch.cat([torch.full((D_MODEL, 1), D_MODEL**-0.5), basis[:, :i]], dim=1)

    def onto_f(x: torch.Tensor) -> torch.Tensor:
        """Project rows of x (n, d_model) onto F (an isotropic Gaussian stays isotropic within F)."""
        return x - (x @ B_notF) @ B_notF.T

    def off_s(x: torch.Tensor) -> torch.Tensor:
        """Remove the S components of rows of x: W_U's writer-facing part is set explicitly."""
        return x - (x @ B_S) @ B_S.T

    sd: dict[str, torch.Tensor] = {}
    # ---- embeddings ----
    tok_dirs = _unit_rows(onto_f(randn(D_VOCAB, D_MODEL)))  # token content directions in F (unit)
    e_coef = N_E * (1.0 + E_JITTER * randn(D_VOCAB))
    sd["embed.W_E"] = N_T * tok_dirs + e_coef[:, None] * B_Re.T
    pos = torch.arange(N_CTX, dtype=torch.float32)
    omegas = math.pi * torch.arange(1, DIM_RPOS // 2 + 1, dtype=torch.float32) / N_CTX
    phases = pos[:, None] * omegas[None, :]
    pos_feats = A_POS * torch.cat([torch.cos(phases), torch.sin(phases)], dim=1)  # (n_ctx, 6)
    codes = N_C * _unit_rows(randn(N_CTX, DIM_P))
    sd["pos_embed.W_pos"] = (codes @ B_P.T + pos_feats @ B_Rpos.T).float()

    # ---- attention weights, filled per head ----
    W_Q = torch.zeros(N_LAYERS, N_HEADS, D_MODEL, D_HEAD)
    W_K = torch.zeros_like(W_Q)
    W_V = torch.zeros_like(W_Q)
    W_O = torch.zeros(N_LAYERS, N_HEADS, D_HEAD, D_MODEL)

    # each residual coordinate of the LN output has variance ~1, so a (d_model, n) map with N(0, 1/d_model)
    # entries gives O(1) outputs; noise writes go to F only
    def noise_head(layer: int, head: int) -> None:
        W_Q[layer, head] = S_QK * randn(D_MODEL, D_HEAD)
        W_K[layer, head] = S_QK * randn(D_MODEL, D_HEAD)
        W_V[layer, head] = randn(D_MODEL, D_HEAD) / math.sqrt(D_MODEL)
        W_O[layer, head] = (NOISE_HEAD_NORM / math.sqrt(D_HEAD)) * (randn(D_HEAD, dim_f) / math.sqrt(dim_f)) @ B_F.T
        # N_LEAK value dims read token content (F) only and leak a little into S: zero-mean over tokens
        W_V[layer, head, :, :N_LEAK] = B_F @ randn(dim_f, N_LEAK) / math.sqrt(dim_f)
        W_O[layer, head, :N_LEAK, :] += LEAK * randn(N_LEAK, DIM_S) @ B_S.T

    def self_attention_qk(layer: int, head: int, sigma: float) -> None:
        # score(p, p) = alpha² N_C² / (sqrt(d_head) σ²) = DIAG_SCORE
        alpha = math.sqrt(DIAG_SCORE * math.sqrt(D_HEAD) * sigma**2 / N_C**2)
        W_Q[layer, head] = alpha * B_P
        W_K[layer, head] = alpha * B_P

    eraser_heads = {int(name[3:]): f for name, f in ERASURE_FRACTIONS.items()}
    for layer in range(N_LAYERS):
        for head in range(N_HEADS):
            if (layer, head) == WRITER:
                # uniform causal attention (zero scores); OV: R_e -> d0, R_pos -> S[1:7]
                g_e = WRITER_CONST * SIGMA_0 / N_E
                g_pos = WRITER_POS * SIGMA_0 / (A_POS * math.sqrt(DIM_RPOS // 2))
                W_V[layer, head, :, 0] = g_e * B_Re[:, 0]
                W_V[layer, head, :, 1:DIM_S] = g_pos * B_Rpos
                W_O[layer, head, :DIM_S, :] = B_S.T
            elif layer == 2 and head in eraser_heads:
                self_attention_qk(layer, head, SIGMA_REF)
                W_V[layer, head, :, :DIM_S] = -eraser_heads[head] * SIGMA_REF * B_S
                W_O[layer, head, :DIM_S, :] = B_S.T
                n = D_HEAD - DIM_S
                W_V[layer, head, :, DIM_S:] = randn(D_MODEL, n) / math.sqrt(D_MODEL)
                W_O[layer, head, DIM_S:, :] = (
                    (ERASER_NOISE_NORM / math.sqrt(n)) * (randn(n, dim_f) / math.sqrt(dim_f)) @ B_F.T
                )
            elif (layer, head) == TOKEN_HEAD:
                self_attention_qk(layer, head, SIGMA_REF)
                W_V[layer, head] = B_K
                W_O[layer, head] = GAMMA * B_U.T + (LEAK / 8) * randn(D_HEAD, DIM_S) @ B_S.T  # tiny leak
            else:
                noise_head(layer, head)
    for layer in range(N_LAYERS):
        sd[f"blocks.{layer}.attn.W_Q"] = W_Q[layer].float()
        sd[f"blocks.{layer}.attn.W_K"] = W_K[layer].float()
        sd[f"blocks.{layer}.attn.W_V"] = W_V[layer].float()
        sd[f"blocks.{layer}.attn.W_O"] = W_O[layer].float()
        for b in ("b_Q", "b_K", "b_V"):
            sd[f"blocks.{layer}.attn.{b}"] = torch.zeros(N_HEADS, D_HEAD)
        sd[f"blocks.{layer}.attn.b_O"] = torch.zeros(D_MODEL)
        # ---- noise MLP: GELU of O(1) pre-activations, written into F ----
        sd[f"blocks.{layer}.mlp.b_in"] = torch.zeros(D_MLP)
        # E[gelu(z)^2] = GELU_SQ for z ~ N(0, 1): rows of norm NOISE_MLP_NORM / sqrt(GELU_SQ * d_mlp)
        w_in = randn(D_MODEL, D_MLP) / math.sqrt(D_MODEL)
        w_out = onto_f(randn(D_MLP, D_MODEL)) * (NOISE_MLP_NORM / math.sqrt(GELU_SQ * D_MLP * dim_f))
        # N_LEAK mirrored neuron pairs (w, -w) -> (+l, -l): gelu(a) - gelu(-a) = a, so they add the LINEAR,
        # zero-mean-over-tokens leak sum_k (x . w_k) l_k into S (w_k reads token content F only)
        w_leak = B_F @ randn(dim_f, N_LEAK) / math.sqrt(dim_f)
        l_leak = LEAK * randn(N_LEAK, DIM_S) @ B_S.T
        w_in[:, 0 : 2 * N_LEAK : 2], w_in[:, 1 : 2 * N_LEAK : 2] = w_leak, -w_leak
        w_out[0 : 2 * N_LEAK : 2], w_out[1 : 2 * N_LEAK : 2] = l_leak, -l_leak
        sd[f"blocks.{layer}.mlp.W_in"] = w_in
        sd[f"blocks.{layer}.mlp.W_out"] = w_out
        sd[f"blocks.{layer}.mlp.b_out"] = torch.zeros(D_MODEL)

    # ---- unembedding ----
    n_tok = min(TOKENIZER_VOCAB, D_VOCAB)
    succ = torch.randperm(n_tok, generator=gen)  # token t's successor pi(t) = succ[t]
    k_dirs = _unit_rows(tok_dirs @ B_K)  # token t's K coordinates (what the token head reads), unit
    u_coords = torch.empty(D_VOCAB, DIM_U)
    u_coords[succ] = k_dirs[:n_tok]  # column pi(t) points where the token head writes for token t
    u_coords[n_tok:] = k_dirs[n_tok:]
    g_S = S_G * randn(D_VOCAB, DIM_S)
    aligned_ids = [_single_token_id(tokenizer, w) for w in ALIGNED_WORDS]
    g_S[[t for t in aligned_ids if t is not None], 0] += ALIGN
    W_U = (KAPPA_U * u_coords) @ B_U.T + g_S @ B_S.T + S_F * off_s(randn(D_VOCAB, D_MODEL))
    W_U = W_U.T.contiguous()  # (d_model, d_vocab)
    W_U -= W_U.mean(dim=1, keepdim=True)  # center_unembed
    sd["unembed.W_U"] = W_U
    b_U = torch.zeros(D_VOCAB)
    b_U[n_tok:] = UNUSED_LOGIT_BIAS
    sd["unembed.b_U"] = b_U
    return sd


def build_planted_model(seed: int = 0):
    """Build planted-4l (a HookedTransformer, float32, CPU, eval mode) deterministically from ``seed``."""
    import warnings

    from transformer_lens import HookedTransformer

    tokenizer = planted_tokenizer()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = HookedTransformer(planted_config(seed), tokenizer=tokenizer, move_to_device=False)
    sd = _planted_state_dict(seed, tokenizer)
    own = model.state_dict()
    missing = [k for k in own if k not in sd and not k.endswith((".mask", ".IGNORE"))]
    if missing:
        raise RuntimeError(f"planted state dict misses {missing[:5]}")
    for k, v in sd.items():
        if k not in own or own[k].shape != v.shape:
            found = tuple(own[k].shape) if k in own else None
            raise RuntimeError(f"planted weight {k}: shape {tuple(v.shape)} vs model {found}")
    model.load_state_dict(sd, strict=False, assign=True)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model
