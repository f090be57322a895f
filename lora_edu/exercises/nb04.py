"""Exercises of notebook 04 (a LoRA layer from scratch).

How to use them, and how they are written: :mod:`lora_edu.exercises`.

* 04.1 :data:`gpt2_medium_params` - trainable parameters of LoRA on GPT-2 medium's fused ``c_attn``;
* 04.2 :data:`merge_conv1d` - the merged weight of a GPT-2 ``Conv1D`` layer (stored (in, out));
* 04.3 :data:`gradients_at_init` - dL/dA and dL/dB of a LoRA layer at B = 0;
* 04.4 :data:`rslora_alpha` - the rsLoRA ``lora_alpha`` that trains exactly like standard LoRA at a rank;
* 04.5 :data:`extract_lora` - the best rank-r factors B, A of a given update (Eckart-Young).
"""

from __future__ import annotations

import math

import numpy as np

from lora_edu.exercises._core import (
    array_verdict,
    arrays_close,
    as_array,
    as_number,
    exercise,
    named_mistake,
    params_verdict,
    read_only,
)

__all__ = ["extract_lora", "gradients_at_init", "gpt2_medium_params", "merge_conv1d", "rslora_alpha"]


# --- 04.1: count LoRA parameters on GPT-2 medium's c_attn ---------------------------------------


@exercise("04.1", data=dict(n_layer=24, n_embd=1024, r=16, target_modules=("c_attn",)), answer_format="an int")
def gpt2_medium_params(answer, n_layer: int, n_embd: int, r: int, target_modules: tuple[str, ...]):
    """LoRA with r = 16 on GPT-2 medium's attention input projection only (target_modules=['c_attn']): how many
    trainable parameters does it add?"""
    k, d = n_embd, 3 * n_embd  # c_attn maps n_embd inputs to Q, K and V at once: d = 3 n_embd outputs
    right = n_layer * r * (k + d)
    why_right = (f"{n_layer} blocks x r (k + d) = {n_layer} x {r} x ({k} + {d}) = {right:,}: "
                 f"A is {r} x {k}, B is {d} x {r}")
    known = {
        n_layer * r * (k + k): f"you took c_attn as {k} x {k}; it computes Q, K and V at once, so it maps {k} -> {d}",
        n_layer * r * k: f"you counted only A ({r} x {k}); B ({d} x {r}) trains too",
        n_layer * r * d: f"you counted only B ({d} x {r}); A ({r} x {k}) trains too",
        r * (k + d): f"that is one block; GPT-2 medium has {n_layer} blocks, each with its own c_attn",
        n_layer * k * d: "that is the size of the frozen c_attn weights, not of the adapters",
        n_layer * r * k * d: "r x k x d is not a LoRA count: A and B have r (k + d) numbers together, not r k d",
        n_layer * (k + d): f"that is rank 1; multiply by r = {r}",
    }
    hint = f"count A (r x k) and B (d x r) of c_attn in each of the {n_layer} blocks (what are k and d for c_attn?)"
    return params_verdict(answer, right, why_right, known, hint)


# --- 04.2: merge into a Conv1D weight ---------------------------------------------------------


def _merge_problem() -> dict:
    rng = np.random.default_rng(404)
    k, d, r, alpha = 5, 3, 2, 8.0  # Conv1D: k = 5 inputs, d = 3 outputs; its weight is stored (k, d)
    return dict(
        W_stored=np.round(rng.standard_normal((k, d)), 2),
        A=np.round(rng.standard_normal((r, k)), 2),
        B=np.round(rng.standard_normal((d, r)), 2),  # non-zero: a trained adapter
        alpha=alpha,
        r=r,
    )


@exercise("04.2", data=read_only(_merge_problem()), answer_format="a (5, 3) array or tensor")
def merge_conv1d(answer, W_stored, A, B, alpha, r):
    """A GPT-2 Conv1D layer stores its weight as (in, out) = (k, d) and computes x W + b. Given its stored weight, a
    trained adapter A (r x k), B (d x r), alpha and r, compute the merged stored weight."""
    ans = as_array(answer)
    s = alpha / r
    delta = B @ A  # (d, k): the update in nn.Linear's (out, in) layout
    right = W_stored + s * delta.T
    if ans.shape != right.shape:
        if ans.shape == delta.shape:
            return False, (f"shape {ans.shape} is nn.Linear's (out, in) layout; this Conv1D stores its weight "
                           f"(in, out) = {right.shape}, so the update must be added transposed")
        return False, f"the merged weight has the stored weight's shape {right.shape}, got {ans.shape}"
    why_right = f"W + (alpha / r) (B A)^T with alpha / r = {s:g}: the layer now computes x W' + b in one product"
    known = [
        (W_stored, "that is the stored weight unchanged; B is not zero here, so the update is not zero"),
        (W_stored + delta.T, f"you forgot the scaling alpha / r = {s:g}"),
        (W_stored + alpha / math.sqrt(r) * delta.T, "that is rsLoRA's alpha / sqrt(r); this adapter uses alpha / r"),
        (W_stored - s * delta.T, "wrong sign: subtracting the update is unmerge, not merge"),
        (s * delta.T, "that is the update alone; the merged weight is the stored weight plus the update"),
        (W_stored + alpha * delta.T, "you multiplied by alpha; the scaling is alpha / r"),
    ]
    hint = "not W + (alpha / r) (B A)^T; check the product order B A (d x k) and the transpose"
    return array_verdict(ans, right, why_right, known, hint)


# --- 04.3: gradients at B = 0 -------------------------------------------------------------------


def _grad_problem() -> dict:
    rng = np.random.default_rng(43)
    n, k, d, r = 4, 5, 3, 2
    return dict(
        X=np.round(rng.standard_normal((n, k)), 2),  # n examples (rows), k inputs
        A=np.round(rng.standard_normal((r, k)), 2),
        G=np.round(rng.standard_normal((n, d)), 2),  # dL/dH for H = X W0^T + s X A^T B^T
        alpha=4.0,
        r=r,
    )


@exercise("04.3", answer_format="a pair (grad_A, grad_B) of arrays, shapes (2, 5) and (3, 2)",
          data=read_only(_grad_problem()))
def gradients_at_init(answer, X, A, G, alpha, r):
    """A LoRA layer computes H = X W0^T + s X A^T B^T (rows of X are the n examples), s = alpha / r, and B = 0 as at
    initialisation. Given X, A and G = dL/dH, compute (dL/dA, dL/dB)."""
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        return False, "give a pair (grad_A, grad_B): grad_A of A's shape (r, k), grad_B of B's shape (d, r)"
    gA, gB = as_array(answer[0], "grad_A"), as_array(answer[1], "grad_B")
    s = alpha / r
    right_A = np.zeros_like(A)  # s B^T G^T X with B = 0
    right_B = s * G.T @ X @ A.T  # (d, r)
    if gA.shape != right_A.shape:
        return False, f"grad_A must have A's shape {right_A.shape}, got {gA.shape}"
    if gB.shape != right_B.shape:
        if gB.shape == right_B.T.shape:
            return False, f"grad_B is transposed: it has B's shape (d, r) = {right_B.shape}"
        return False, f"grad_B must have B's shape (d, r) = {right_B.shape}, got {gB.shape}"
    if not arrays_close(gA, right_A):
        return False, ("grad_A is not zero: dL/dA = s B^T G^T X, and B = 0 at the start, so A gets no gradient "
                       "on the first step")
    if arrays_close(gB, right_B):
        return True, ("grad_A = s B^T G^T X = 0 and grad_B = s G^T X A^T != 0: the first step moves only B, "
                      "and the random A is what makes that gradient non-zero")
    if not np.any(gB):
        return False, "grad_B is not zero: dL/dB = s G^T (X A^T) involves A, which is random, not B"
    if arrays_close(gB, right_B / s):
        return False, f"you forgot the scaling s = alpha / r = {s:g}: the LoRA path is multiplied by it"
    if arrays_close(gB, -right_B):
        return False, "wrong sign: that is the step direction -dL/dB, not the gradient"
    return False, "grad_B is not s G^T X A^T; differentiate H = X W0^T + s X A^T B^T with respect to B"


# --- 04.4: the rsLoRA alpha that trains exactly like standard LoRA ---------------------------------


@exercise("04.4", data=dict(r_old=8, alpha_old=16, r_new=32), answer_format="a number (3 decimals are enough)")
def rslora_alpha(answer, r_old, alpha_old, r_new):
    """You tuned the learning rate for standard LoRA (s = lora_alpha / r) with lora_alpha = alpha_old at r_old, and
    follow the paper: lora_alpha stays fixed when r changes. Now you train at r_new with use_rslora=True (s = lora_alpha
    / sqrt(r)). Which lora_alpha makes this run identical to standard LoRA at r_new with lora_alpha = alpha_old?"""
    val = as_number(answer)
    if val is None:
        return False, f"give a number (lora_alpha), got {answer!r}"
    s = alpha_old / r_new  # the paper's rule at the new rank: lora_alpha stays alpha_old, s = alpha / r
    right = s * math.sqrt(r_new)  # rsLoRA: s = lora_alpha / sqrt(r_new)
    if math.isclose(val, right, rel_tol=5e-3):
        return True, (f"standard LoRA at r = {r_new} with lora_alpha = {alpha_old:g} has s = {alpha_old:g} / {r_new} = "
                      f"{s:g}; rsLoRA divides by sqrt({r_new}), so lora_alpha = {s:g} x sqrt({r_new}) = {right:.3f}. "
                      "Same s, same run: at one rank use_rslora is just another way of writing lora_alpha")
    s_old = alpha_old / r_old
    known = [
        (alpha_old, f"keeping lora_alpha = {alpha_old:g} gives rsLoRA s = {alpha_old:g} / sqrt({r_new}) = "
                    f"{alpha_old / math.sqrt(r_new):.3f}, {math.sqrt(r_new):.2f}x the {s:g} of standard LoRA: rsLoRA's "
                    "larger step, not the tuned one"),
        (s_old * math.sqrt(r_new), f"that keeps the old s = {s_old:g} from r = {r_old}; but the fixed-alpha rule has "
                                   f"s = {s:g} at r = {r_new}, and under Adam the same s at {r_new / r_old:g}x the "
                                   f"rank makes the first step {r_new / r_old:g}x larger (the drop grows like s r, "
                                   "section 7)"),
        (s_old * r_new, f"that is the standard-LoRA lora_alpha that keeps s = {s_old:g}; the question is about rsLoRA "
                        f"(s = lora_alpha / sqrt(r)) and the fixed-alpha rule (s = {s:g} at r = {r_new})"),
        (s, f"{s:g} is the scaling s itself; lora_alpha is what rsLoRA divides by sqrt({r_new})"),
        (alpha_old / math.sqrt(r_old) * math.sqrt(r_new), "that assumes the old adapter was rsLoRA too; it used "
         "standard scaling alpha / r"),
    ]
    if why := named_mistake(val, known, lambda a, b: math.isclose(a, b, rel_tol=5e-3)):
        return False, why
    return False, (f"with use_rslora=True, lora_alpha = {val:g} gives s = {val:g} / sqrt({r_new}) = "
                   f"{val / math.sqrt(r_new):.4f}, but standard LoRA at r = {r_new} with lora_alpha = {alpha_old:g} "
                   f"has s = {s:g}")


# --- 04.5: extract a rank-r LoRA from an update -------------------------------------------------


def _extract_problem() -> dict:
    rng = np.random.default_rng(45)
    d, k = 12, 10
    U = np.linalg.qr(rng.standard_normal((d, d)))[0][:, :k]
    V = np.linalg.qr(rng.standard_normal((k, k)))[0]
    sigma = np.array([9.0, 6.0, 4.0, 1.5, 1.0, 0.6, 0.4, 0.25, 0.15, 0.1])
    return dict(delta_W=U @ np.diag(sigma) @ V.T, r=3)


@exercise("04.5", answer_format="a pair (B, A): B of shape (12, 3), A of shape (3, 10)",
          data=read_only(_extract_problem()))
def extract_lora(answer, delta_W, r):
    """Extract a rank-r LoRA from a (full fine-tuning) update delta_W: factors B (d x r) and A (r x k) that make
    ||delta_W - B A||_F as small as any rank-r product can."""
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        return False, "give a pair (B, A) with B of shape (d, r) and A of shape (r, k)"
    B, A = as_array(answer[0], "B"), as_array(answer[1], "A")
    d, k = delta_W.shape
    if B.shape == (r, d) and A.shape == (k, r):
        return False, ("these are the study notes' shapes (A k x r, B r x d, used as x A B); "
                       f"in the paper's notation B is d x r = ({d}, {r}) and A is r x k = ({r}, {k})")
    if B.shape != (d, r) or A.shape != (r, k):
        return False, f"B must be (d, r) = ({d}, {r}) and A (r, k) = ({r}, {k}); got {B.shape} and {A.shape}"
    U, S, Vt = np.linalg.svd(delta_W, full_matrices=False)
    err = np.linalg.norm(delta_W - B @ A)
    best = math.sqrt(float(np.sum(S[r:] ** 2)))
    if math.isclose(err, best, rel_tol=1e-6, abs_tol=1e-9):
        return True, (f"||delta W - B A||_F = {best:.4f} = sqrt(sum of the discarded sigma_i^2): no rank-{r} "
                      "product does better (Eckart-Young)")
    Ur, Vr = U[:, :r], Vt[:r]
    if np.allclose(B @ A, Ur @ Vr, atol=1e-6):
        return False, "you dropped Sigma_r: U_r V_r^T has the right directions but unit singular values"
    if np.allclose(B @ A, Ur @ np.diag(S[:r] ** 2) @ Vr, atol=1e-6):
        return False, "Sigma_r is in there twice (U_r Sigma_r and Sigma_r V_r^T); split it, e.g. sqrt(Sigma_r) each"
    if np.allclose(B @ A, U[:, -r:] @ np.diag(S[-r:]) @ Vt[-r:], atol=1e-6):
        return False, "you kept the r smallest singular values; numpy orders them largest first"
    if not np.any(B @ A):
        return False, "B A = 0 keeps none of delta W; take the top r singular triplets"
    return False, f"||delta W - B A||_F = {err:.4f}, but the best rank-{r} product reaches {best:.4f}"

