"""Exercises of notebook 07 (where LoRA went next: DoRA, PiSSA, adapter arithmetic).

How to use them, and how they are written: :mod:`lora_edu.exercises`.

* 07.1 :data:`dora_params` - trainable parameters of DoRA on GPT-2's ``c_attn``;
* 07.2 :data:`dora_merge` - the merged weight of a DoRA layer, by hand;
* 07.3 :data:`pissa_factors` - PiSSA's B, A and frozen residual for a given W0;
* 07.4 :data:`combine_adapters` - one adapter equal to a weighted sum of two (not PEFT's "linear");
* 07.5 :data:`pissa_as_lora` - a trained PiSSA adapter as a plain LoRA for the original W0.
"""

from __future__ import annotations

import numpy as np

from lora_edu.exercises._core import array_verdict, arrays_close, as_array, exercise, params_verdict, read_only

__all__ = ["combine_adapters", "dora_merge", "dora_params", "pissa_as_lora", "pissa_factors"]


def _factors(answer: object, d: int, k: int, names: tuple[str, str], inner: str,
             about: str) -> tuple[tuple[np.ndarray, np.ndarray] | None, str]:
    """The pair ``answer`` as factors (B, A) of shapes (d, inner) and (inner, k), or (None, what is wrong)."""
    b, a = names
    if not isinstance(answer, (tuple, list)) or len(answer) != 2:
        return None, f"give a pair ({b}, {a}): {about}"
    B, A = as_array(answer[0]), as_array(answer[1])
    if B.ndim == 2 and A.ndim == 2 and B.shape[0] == d and A.shape[1] == k and B.shape[1] == A.shape[0]:
        return (B, A), ""
    if B.ndim == 2 and A.ndim == 2 and B.shape[1] == k and A.shape[0] == d:
        return None, f"swapped: give ({b}, {a}) with {b} of shape (d, {inner}) and {a} of shape ({inner}, k)"
    return None, f"{b} must be (d, {inner}) = ({d}, ?) and {a} ({inner}, k) = (?, {k}) with the same {inner}"


# --- 07.1: DoRA's parameter count -------------------------------------------------------------


@exercise("07.1", data=dict(n_layer=12, n_embd=768, r=8, target_modules=("c_attn",)), answer_format="an int")
def dora_params(answer, n_layer: int, n_embd: int, r: int, target_modules: tuple[str, ...]):
    """DoRA with r = 8 on GPT-2 small's attention input projection (target_modules=['c_attn'], 12 blocks, hidden size
    768): how many trainable parameters does it add?"""
    k, d = n_embd, 3 * n_embd  # c_attn: n_embd inputs -> Q, K and V at once
    lora = n_layer * r * (k + d)
    right = lora + n_layer * d
    why_right = (f"per block r (k + d) = {r} x ({k} + {d}) for A and B, plus d = {d} magnitudes (one per "
                 f"output unit): {n_layer} x {r * (k + d) + d:,} = {right:,}, {right - lora:,} more than LoRA")
    known = {
        lora: f"that is plain LoRA ({lora:,}); DoRA also trains one magnitude per output unit of each layer",
        lora + n_layer * k: (f"one magnitude per *input* ({k}); DoRA's vector has one entry per output unit "
                             f"(d = {d} for c_attn): the paper's 'column' is an output in PyTorch's (out, in) layout"),
        r * (k + d) + d: f"that is one block; GPT-2 has {n_layer} blocks, each with its own c_attn",
        n_layer * (r * (k + k) + k): f"c_attn maps {k} -> {d} (Q, K and V at once), not {k} -> {k}",
        n_layer * (r * (k + d) + k * d): "the magnitude is a vector, not a full matrix: d numbers, not d x k",
        n_layer * d: "that counts only the magnitudes; A and B train too",
    }
    hint = f"count A (r x k), B (d x r) and the magnitude vector, in each of {n_layer} blocks"
    return params_verdict(answer, right, why_right, known, hint)


# --- 07.2: merge a DoRA layer by hand --------------------------------------------------------


def _dora_problem() -> dict:
    rng = np.random.default_rng(702)
    d, k, r = 3, 4, 2
    W0 = np.round(rng.standard_normal((d, k)), 2)
    return dict(
        W0=W0,                                                  # (d, k): h = W0 x
        A=np.round(rng.standard_normal((r, k)), 2),
        B=np.round(0.5 * rng.standard_normal((d, r)), 2),       # trained: not zero
        m=np.round(np.linalg.norm(W0, axis=1) * np.array([1.3, 0.8, 1.1]), 2),  # trained magnitudes, one per output
        alpha=4.0,
        r=r,
    )


@exercise("07.2", data=read_only(_dora_problem()), answer_format="a (3, 4) array or tensor")
def dora_merge(answer, W0, A, B, m, alpha, r):
    """A trained DoRA layer has W0 (d x k, h = W0 x), A (r x k), B (d x r), the magnitudes m (d values), alpha and r.
    Compute the weight W' that merging writes into the layer."""
    ans = as_array(answer)
    s = alpha / r
    V = W0 + s * B @ A
    right = (m / np.linalg.norm(V, axis=1))[:, None] * V
    if ans.shape != right.shape:
        if ans.shape == right.T.shape:
            return False, f"shape {ans.shape}: the merged weight has W0's (d, k) layout {right.shape}"
        return False, f"the merged weight has W0's shape {right.shape}, got {ans.shape}"
    why_right = ("W' = m * V / ||V||_c with V = W0 + s B A: every row (output unit) of V is scaled to length "
                 "m_i, so the merged layer runs at plain-Linear speed")
    known = [
        (m[:, None] * V / np.linalg.norm(V, axis=0)[None, :],
         "you normalised the columns (one norm per input); DoRA's norm is per output unit: the rows of the "
         "(d, k) weight (PEFT: torch.linalg.norm(weight, dim=1))"),
        ((m / np.linalg.norm(W0 + B @ A, axis=1))[:, None] * (W0 + B @ A),
         f"you forgot the scaling s = alpha / r = {s:g}"),
        ((m / np.linalg.norm(W0, axis=1))[:, None] * V, "you divided by ||W0||_c; the norm is of W0 + s B A, the "
         "direction after the update"),
        (V, "that is LoRA's merged weight W0 + s B A; DoRA rescales each row to its magnitude m_i"),
        ((m / np.linalg.norm(W0, axis=1))[:, None] * W0, "that rescales W0 alone; the direction is W0 + s B A"),
        (m[:, None] * V, "the direction must be a unit vector per row: divide V by its row norms first"),
        (W0, "that is W0 itself, the frozen weight: the merged W' adds s B A and rescales each row to m_i"),
    ]
    hint = "not m * V / ||V||_c with V = W0 + s B A (row norms, s = alpha / r)"
    return array_verdict(ans, right, why_right, known, hint)


# --- 07.3: PiSSA's factors and residual --------------------------------------------------------


def _pissa_problem() -> dict:
    rng = np.random.default_rng(703)
    d, k = 6, 5
    U = np.linalg.qr(rng.standard_normal((d, d)))[0][:, :k]
    V = np.linalg.qr(rng.standard_normal((k, k)))[0]
    sigma = np.array([5.0, 3.0, 1.2, 0.7, 0.3])  # distinct, so the top-2 triplets are unique up to sign
    return dict(W0=U @ np.diag(sigma) @ V.T, r=2, alpha=4.0)


@exercise("07.3", answer_format="a triple (B, A, W_res) of arrays, shapes (6, 2), (2, 5), (6, 5)",
          data=read_only(_pissa_problem()))
def pissa_factors(answer, W0, r, alpha):
    """Initialise a PiSSA adapter of rank r (scaling s = alpha / r) on W0: give B (d x r), A (r x k) and the frozen
    residual W_res, as PEFT's init_lora_weights='pissa' does."""
    if not isinstance(answer, (tuple, list)) or len(answer) != 3:
        return False, "give a triple (B, A, W_res): B (d, r), A (r, k) and the frozen residual W_res (d, k)"
    B, A, W_res = (as_array(a) for a in answer)
    d, k = W0.shape
    if B.shape != (d, r) or A.shape != (r, k) or W_res.shape != (d, k):
        return False, f"shapes must be B {(d, r)}, A {(r, k)}, W_res {(d, k)}; got {B.shape}, {A.shape}, {W_res.shape}"
    s = alpha / r
    U, S, Vt = np.linalg.svd(W0, full_matrices=False)
    principal = (U[:, :r] * S[:r]) @ Vt[:r]
    minor = (U[:, -r:] * S[-r:]) @ Vt[-r:]
    if arrays_close(s * B @ A, minor):
        return False, "those are the r *smallest* singular triplets (MiLoRA's choice); PiSSA takes the largest"
    if arrays_close(B @ A, principal) and not arrays_close(s * B @ A, principal):
        return False, (f"B A is U_r S_r V_r^T, but the layer adds s B A with s = {s:g}: divide S_r by s "
                       "(B = U_r sqrt(S_r / s), A = sqrt(S_r / s) V_r^T)")
    if not arrays_close(s * B @ A, principal):
        return False, "s B A must be the best rank-r part of W0, U_r S_r V_r^T (the top r singular triplets)"
    if arrays_close(W_res, W0):
        return False, ("W_res must be W0 - U_r S_r V_r^T: with W0 itself frozen the layer would compute "
                       "W0 + U_r S_r V_r^T, not W0, at the start")
    if not arrays_close(W_res, W0 - principal):
        return False, "W_res + s B A must equal W0 exactly: the residual is W0 - U_r S_r V_r^T"
    target = np.diag(S[:r] / s)
    if not (arrays_close(B.T @ B, target) and arrays_close(A @ A.T, target)):
        return False, ("B A and the residual are right, but the split is not PiSSA's: both factors get "
                       "sqrt(S_r / s) (B^T B = A A^T = S_r / s), so B and A start at the same scale")
    return True, (f"B = U_r sqrt(S_r / s), A = sqrt(S_r / s) V_r^T with s = {s:g}, and W_res = W0 - U_r S_r V_r^T: "
                  "the layer still computes W0 x, but the top singular directions now train "
                  "(any sign flip of a pair (u_i, v_i) is as good)")


# --- 07.4: the exact weighted sum of two adapters ----------------------------------------------


def _combine_problem() -> dict:
    rng = np.random.default_rng(704)
    d, k, r = 4, 5, 2
    return dict(
        B1=np.round(rng.standard_normal((d, r)), 2), A1=np.round(rng.standard_normal((r, k)), 2), s1=2.0,
        B2=np.round(rng.standard_normal((d, r)), 2), A2=np.round(rng.standard_normal((r, k)), 2), s2=0.5,
        w1=1.0, w2=0.6,
    )


@exercise("07.4", answer_format="a pair (B, A): B of shape (4, r_total), A of shape (r_total, 5)",
          data=read_only(_combine_problem()))
def combine_adapters(answer, B1, A1, s1, B2, A2, s2, w1, w2):
    """Two adapters (B1, A1, scaling s1) and (B2, A2, s2) were trained on one base. Build one adapter (B, A), used with
    scaling 1, that adds exactly w1 times the first update plus w2 times the second."""
    factors, why = _factors(answer, B1.shape[0], A1.shape[1], ("B", "A"), "r_total",
                            "B (d, r_total) and A (r_total, k), with scaling 1")
    if factors is None:
        return False, why
    B, A = factors
    right = w1 * s1 * B1 @ A1 + w2 * s2 * B2 @ A2
    got = B @ A
    why_right = (f"B A = w1 s1 B1 A1 + w2 s2 B2 A2 with rank up to {B1.shape[1] + B2.shape[1]}: e.g. B = [B1, B2] "
                 "and A = [w1 s1 A1; w2 s2 A2] (PEFT's combination_type='cat')")
    c1, c2 = np.sqrt(w1 * s1), np.sqrt(w2 * s2)
    known = [
        ((c1 * B1 + c2 * B2) @ (c1 * A1 + c2 * A2),
         "that is PEFT's combination_type='linear': summing the B's and the A's separately adds the cross "
         "terms B1 A2 and B2 A1, so B A is not the sum of the two updates"),
        (w1 * B1 @ A1 + w2 * B2 @ A2, f"you left out the adapters' scalings s1 = {s1:g} and s2 = {s2:g}"),
        (s1 * B1 @ A1 + s2 * B2 @ A2, f"you left out the weights w1 = {w1:g} and w2 = {w2:g}"),
        (B1 @ A1 + B2 @ A2, "you left out both the scalings s_i and the weights w_i"),
        ((B1 + B2) @ (A1 + A2), "summing the B's and the A's separately adds the cross terms B1 A2 and B2 A1 "
                                "(and leaves out the weights and scalings); stack the factors instead"),
        (w1 * s1 * B1 @ A1, "that is the first adapter's update alone; the second one must be added too"),
        (w2 * s2 * B2 @ A2, "that is the second adapter's update alone; the first one must be added too"),
        (B1 @ A1, "that is the first adapter alone, unweighted; the result must hold both updates"),
    ]
    hint = "B A must equal w1 s1 B1 A1 + w2 s2 B2 A2 (check which factor carries the weights and scalings)"
    return array_verdict(got, right, why_right, known, hint)


# --- 07.5: a trained PiSSA adapter as a plain LoRA for the original W0 --------------------------


def _pissa_lora_problem() -> dict:
    rng = np.random.default_rng(705)
    d, k, r = 5, 4, 2
    B0, A0 = np.round(rng.standard_normal((d, r)), 2), np.round(rng.standard_normal((r, k)), 2)
    return dict(
        B0=B0, A0=A0,                                            # PiSSA's initial factors
        B=np.round(B0 + 0.3 * rng.standard_normal((d, r)), 2),  # after training
        A=np.round(A0 + 0.3 * rng.standard_normal((r, k)), 2),
        s=2.0,
    )


@exercise("07.5", answer_format="a pair (B_new, A_new): B_new of shape (5, r_new), A_new of shape (r_new, 4)",
          data=read_only(_pissa_lora_problem()))
def pissa_as_lora(answer, B0, A0, B, A, s):
    """A PiSSA adapter started at (B0, A0) with the residual W_res = W0 - s B0 A0 frozen, and trained to (B, A). Give
    factors (B_new, A_new) of a plain LoRA, same scaling s, for the original W0 that computes the same layer."""
    factors, why = _factors(answer, B.shape[0], A.shape[1], ("B_new", "A_new"), "r_new",
                            "factors of a LoRA that adds s B_new A_new to the original W0")
    if factors is None:
        return False, why
    Bn, An = factors
    right = B @ A - B0 @ A0  # W_res + s B A = W0 + s (B A - B0 A0)
    got = Bn @ An
    why_right = (f"W_res + s B A = W0 + s (B A - B0 A0): e.g. B_new = [B, -B0], A_new = [A; A0], rank "
                 f"{Bn.shape[1]} (PEFT's path_initial_model_for_weight_conversion does exactly this, rank 2r)")
    known = [
        (B @ A, "that LoRA adds s B A to W0, but the trained model is W_res + s B A = W0 - s B0 A0 + s B A: "
                "the initial principal part must be subtracted"),
        ((B - B0) @ (A - A0), "(B - B0)(A - A0) is not B A - B0 A0: the cross terms B A0 + B0 A are missing"),
        (B @ A + B0 @ A0, "sign: the residual already had s B0 A0 taken out, so it is subtracted, not added"),
        (s * right, f"the LoRA is used with the same scaling s = {s:g}; do not multiply the factors by it"),
        (B0 @ A0, "that is the initial principal part B0 A0 (the PiSSA start); the fine-tune's change is B A - B0 A0"),
        (-(B0 @ A0), "that removes the initial principal part but forgets the trained B A: the change is B A - B0 A0"),
    ]
    hint = "s B_new A_new must equal the whole change from the original W0, s (B A - B0 A0)"
    return array_verdict(got, right, why_right, known, hint)

