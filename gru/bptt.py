"""GRUBPTT: the GRU's equations over a chunk of T steps, with the backward pass through time written out.

Cho et al. 2014 (arXiv:1406.1078v3), §2.3, Eqs. (5)-(8), or torch.nn.GRU's form of them (the
"cudnn" variant of gru/model.py, whose docstring gives both); gru/model.py's GRULayer calls it
with backward="manual". Moved here from gru/model.py unchanged, to keep that file near STYLE's size.
"""
import torch


class GRUBPTT(torch.autograd.Function):
    """Eqs. (5)-(8) (b_hn None) or torch.nn.GRU's form (b_hn given) over T steps, and their
    backward pass through time.

    forward(a (B, T, 3H) = x @ W + b, U (H, 3H), b_hn (H,) or (B, H) or None, h0 (B, H)) -> h (B, T, H).
    A b_hn of shape (B, H) holds a term of each sequence inside the reset (GRULayer.unroll's inner).
    The loops read and write (B, ...) slices of preallocated buffers, in place; index t is step
    t+1 of the paper: h[t] is h_{t-1} of that step, h[t+1] its h_t (h[0] = h_0). Only the
    recurrent products are inside the loops; the weight gradients come after, in one matmul per
    left operand over all steps (cho: h_{t-1} for U_r, U_z and r ⊙ h_{t-1} for U; cudnn: h_{t-1})."""

    @staticmethod
    def forward(ctx, a, U, b_hn, h0):
        B, T, H3 = a.shape
        H, cho = H3 // 3, b_hn is None
        G = a.clone(memory_format=torch.contiguous_format)            # a_t, then [r|z|h~]  (B, T, 3H)
        S = a.new_empty(B, T, H)                                      # h_1 .. h_T
        # cho: r ⊙ h_{t-1}, the input of U; cudnn: U h_{t-1} + b_hn, what the reset scales  (B, T, H)
        P = a.new_empty(B, T, H)
        rz, r, z, n = (x.unbind(1) for x in (G[..., :2 * H], G[..., :H], G[..., H:2 * H], G[..., 2 * H:]))
        h, p = (h0, *S.unbind(1)), P.unbind(1)
        if cho:
            U_rz, U_h = U[:, :2 * H].contiguous(), U[:, 2 * H:].contiguous()
        else:
            # [0 | 0 | b_hn], (3H,) or (B, 3H), added to the step's one matmul
            bias, g = torch.cat([b_hn.new_zeros(*b_hn.shape[:-1], 2 * H), b_hn], -1), a.new_empty(B, H3)
        for t in range(T):
            if cho:
                # r, z = σ(W_r x + U_r h_{t-1}), σ(W_z x + U_z h_{t-1})           (Eqs. 5, 6)
                rz[t].addmm_(h[t], U_rz).sigmoid_()                   # (B, H) @ (H, 2H)
                # h~ = tanh(W x + U (r ⊙ h_{t-1}))                                 (Eq. 8)
                torch.mul(r[t], h[t], out=p[t])
                torch.tanh(n[t].addmm_(p[t], U_h), out=n[t])               # (B, H) @ (H, H)
            else:
                # [U_r h | U_z h | U h + b_hn]: the one matmul of the step        (B, H) @ (H, 3H)
                torch.addmm(bias, h[t], U, out=g)
                rz[t].add_(g[:, :2 * H]).sigmoid_()
                p[t].copy_(g[:, 2 * H:])
                # n = tanh(W x + b + r ⊙ (U h_{t-1} + b_hn))
                torch.tanh(n[t].addcmul_(r[t], p[t]), out=n[t])
            # h_t = z ⊙ h_{t-1} + (1 - z) ⊙ h~ = h~ + z ⊙ (h_{t-1} - h~)          (Eq. 7)
            torch.sub(h[t], n[t], out=h[t + 1]).mul_(z[t]).add_(n[t])
        ctx.save_for_backward(G, S, P, U, h0)
        ctx.cho, ctx.per_sequence = cho, b_hn is not None and b_hn.dim() == 2
        return S

    @staticmethod
    def backward(ctx, grad_h):
        G, S, P, U, h0 = ctx.saved_tensors
        cho, (B, T, H3) = ctx.cho, G.shape
        H, one = H3 // 3, G.new_ones(())
        rz, r, z, n = (x.unbind(1) for x in (G[..., :2 * H], G[..., :H], G[..., H:2 * H], G[..., 2 * H:]))
        h, p = (h0, *S.unbind(1)), P.unbind(1)
        # dL/da_t (B, T, 3H), the error at the gates' inputs [r|z|h~], filled step by step.
        # cudnn: the step's product is g = [U_r h | U_z h | U h + b_hn] and dL/dg = [dA_r | dA_z |
        # dA_h ⊙ r], so the loop fills dL/dg in dA (one matmul back to h_{t-1}), with dA_h aside in D_h
        dA = torch.empty_like(G)
        D_h = dA[..., 2 * H:] if cho else G.new_empty(B, T, H)
        dA_, dA_rz, dA_r, dA_z, dA_3 = (x.unbind(1) for x in (
            dA, dA[..., :2 * H], dA[..., :H], dA[..., H:2 * H], dA[..., 2 * H:]))
        dA_h = D_h.unbind(1)
        dH = grad_h.clone(memory_format=torch.contiguous_format)      # dL/dh_t from above  (B, T, H)
        dH_, grad_h0 = dH.unbind(1), G.new_zeros(B, H)
        dH_prev = (grad_h0, *dH_[:-1])                                # where dL/dh_{t-1} goes
        if cho:
            U_rzT, U_hT = U[:, :2 * H].T.contiguous(), U[:, 2 * H:].T.contiguous()
        else:
            U_T = U.T.contiguous()
        tmp, tmp2, dsig = G.new_empty(B, H), G.new_empty(B, H), G.new_empty(B, 2 * H)
        for t in range(T - 1, -1, -1):
            dh = dH_[t]                                               # dL/dh_t, all of it by now
            # σ' = σ (1 - σ) for r and z at once
            torch.addcmul(rz[t], rz[t], rz[t], value=-1, out=dsig)   # (B, 2H)
            # Eq. (7), (8): dL/da_h = dL/dh_t (1 - z) (1 - h~²)
            torch.addcmul(dh, dh, z[t], value=-1, out=tmp)
            torch.addcmul(one, n[t], n[t], value=-1, out=tmp2)
            torch.mul(tmp, tmp2, out=dA_h[t])
            # Eqs. (7), (6): dL/da_z = dL/dh_t (h_{t-1} - h~) z (1 - z)
            torch.sub(h[t], n[t], out=tmp)
            torch.mul(dh, tmp, out=dA_z[t]).mul_(dsig[:, H:])
            if cho:
                # Eqs. (8), (5): dL/d(r ⊙ h_{t-1}) = dL/da_h U^T; dL/da_r = that ⊙ h_{t-1} r (1 - r)
                torch.mm(dA_h[t], U_hT, out=tmp)                     # (B, H) @ (H, H)
                torch.mul(tmp, h[t], out=dA_r[t]).mul_(dsig[:, :H])
                # dL/dh_{t-1} += dL/dh_t z + dL/d(r ⊙ h_{t-1}) r + [dL/da_r|dL/da_z] [U_r|U_z]^T
                dH_prev[t].addcmul_(dh, z[t]).addcmul_(tmp, r[t]).addmm_(dA_rz[t], U_rzT)
            else:
                # dL/d(U h + b_hn) = dL/da_h r; dL/da_r = dL/da_h (U h + b_hn) r (1 - r)
                torch.mul(dA_h[t], r[t], out=dA_3[t])
                torch.mul(dA_h[t], p[t], out=dA_r[t]).mul_(dsig[:, :H])
                # dL/dh_{t-1} += dL/dh_t z + dL/dg U^T: the one matmul of the step
                dH_prev[t].addcmul_(dh, z[t]).addmm_(dA_[t], U_T)    # (B, 3H) @ (3H, H)
        # dL/dU = sum_t (left operand)^T dL/d(product): all steps at once
        h_prev = torch.cat([h0.unsqueeze(1), S[:, :-1]], 1).view(B * T, H)   # h_0 .. h_{T-1}  (B T, H)
        dA2 = dA.view(B * T, H3)
        if cho:
            grad_U = torch.cat([h_prev.T @ dA2[:, :2 * H],           # (H, B T) @ (B T, 2H): U_r, U_z
                                P.view(B * T, H).T @ dA2[:, 2 * H:]], 1)   # (H, B T) @ (B T, H): U
            return dA, grad_U, None, grad_h0
        grad_U = h_prev.T @ dA2                                       # (H, B T) @ (B T, 3H)
        grad_b_hn = dA[..., 2 * H:].sum(1)                            # (B, H): summed over the steps
        if not ctx.per_sequence:
            grad_b_hn = grad_b_hn.sum(0)                              # (H,): and over the batch
        dA[..., 2 * H:] = D_h                                         # now dA is dL/da  (B, T, 3H)
        return dA, grad_U, grad_b_hn, grad_h0
