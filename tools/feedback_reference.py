#!/usr/bin/env python3
"""Writes the feedback-objective fixture used by learner/objectives_test.cc.

An independent PyTorch implementation of the published losses, written from
the papers and checked against TRL's formulation:
  DPO  (Rafailov et al. 2023, eq. 7; TRL DPOTrainer, loss_type="sigmoid")
  KTO  (Ethayarajh et al. 2024, eq. 7; TRL KTOTrainer, loss_type="kto"),
       with the reference point z0 estimated on mismatched pairs and detached
  SFT  mean token cross-entropy over the response (TRL SFTTrainer on
       completions only)
Log-probabilities are summed over the response tokens (label != -100), as in
TRL's get_batch_logps. Inputs are random logits; the fixture holds the loss
and its gradient with respect to the logits, in float64. Run with Debian's
python3-torch:

    /usr/bin/python3 tools/feedback_reference.py tests/data
"""
import json
import sys

import torch

IGNORE = -100
V, L = 11, 6


def logps(logits, labels):
    """Sum over labelled positions of log p(label)."""
    mask = labels != IGNORE
    safe = torch.where(mask, labels, torch.zeros_like(labels))
    lp = torch.log_softmax(logits, dim=-1)
    per_token = torch.gather(lp, 2, safe.unsqueeze(2)).squeeze(2)
    return (per_token * mask).sum(-1)


def dpo_loss(pc, pr, rc, rr, beta):
    # -log sigma(beta * log(pi_c/ref_c) - beta * log(pi_r/ref_r))
    z = beta * ((pc - rc) - (pr - rr))
    return -torch.nn.functional.logsigmoid(z).mean()


def kto_loss(p, r, desirable, p_kl, r_kl, beta, w_d, w_u):
    z0 = (p_kl - r_kl).mean().clamp(min=0).detach()
    ratio = p - r
    losses = []
    for i in range(p.shape[0]):
        if desirable[i]:
            losses.append(w_d * (1 - torch.sigmoid(beta * (ratio[i] - z0))))
        else:
            losses.append(w_u * (1 - torch.sigmoid(beta * (z0 - ratio[i]))))
    return torch.stack(losses).mean()


def sft_loss(logits, labels):
    mask = labels != IGNORE
    lp = torch.log_softmax(logits, dim=-1)
    safe = torch.where(mask, labels, torch.zeros_like(labels))
    nll = -torch.gather(lp, 2, safe.unsqueeze(2)).squeeze(2)
    return (nll * mask).sum() / mask.sum()


def labels_for(n, gen):
    """Random targets; the first 1-3 positions (prompt) and a random tail
    (padding) are not scored."""
    lab = torch.randint(0, V, (n, L), generator=gen)
    for i in range(n):
        start = int(torch.randint(1, 4, (1,), generator=gen))
        end = L - int(torch.randint(0, 2, (1,), generator=gen))
        lab[i, :start] = IGNORE
        lab[i, end:] = IGNORE
    return lab


def flat(t):
    return [float(x) for x in t.detach().reshape(-1).tolist()]


def main(out_dir):
    torch.manual_seed(7)
    gen = torch.Generator().manual_seed(7)
    fx = {"vocab": V, "length": L}

    # DPO: 3 pairs.
    beta = 0.1
    c = (torch.randn(3, L, V, generator=gen, dtype=torch.float64) * 2).requires_grad_()
    r = (torch.randn(3, L, V, generator=gen, dtype=torch.float64) * 2).requires_grad_()
    cl, rl = labels_for(3, gen), labels_for(3, gen)
    ref_c = torch.randn(3, generator=gen, dtype=torch.float64) * 3 - 8
    ref_r = torch.randn(3, generator=gen, dtype=torch.float64) * 3 - 8
    loss = dpo_loss(logps(c, cl), logps(r, rl), ref_c, ref_r, beta)
    loss.backward()
    fx["dpo"] = {"beta": beta, "n": 3,
                 "chosen_logits": flat(c), "chosen_labels": cl.reshape(-1).tolist(),
                 "rejected_logits": flat(r), "rejected_labels": rl.reshape(-1).tolist(),
                 "ref_chosen": flat(ref_c), "ref_rejected": flat(ref_r),
                 "loss": float(loss), "grad_chosen": flat(c.grad), "grad_rejected": flat(r.grad)}

    # KTO: 4 rated responses (2 up, 2 down) and their mismatched KL pairs.
    beta, w_d, w_u = 0.5, 1.0, 1.33
    y = (torch.randn(4, L, V, generator=gen, dtype=torch.float64) * 2).requires_grad_()
    kl = (torch.randn(4, L, V, generator=gen, dtype=torch.float64) * 2).requires_grad_()
    yl, kll = labels_for(4, gen), labels_for(4, gen)
    ref = torch.randn(4, generator=gen, dtype=torch.float64) * 3 - 8
    ref_kl = torch.randn(4, generator=gen, dtype=torch.float64) * 3 - 16
    desirable = [True, False, True, False]
    loss = kto_loss(logps(y, yl), ref, desirable, logps(kl, kll), ref_kl, beta, w_d, w_u)
    loss.backward()
    z0 = float((logps(kl, kll) - ref_kl).mean().clamp(min=0))
    fx["kto"] = {"beta": beta, "desirable_weight": w_d, "undesirable_weight": w_u, "n": 4,
                 "logits": flat(y), "labels": yl.reshape(-1).tolist(), "ref": flat(ref),
                 "desirable": desirable, "kl_logits": flat(kl), "kl_labels": kll.reshape(-1).tolist(),
                 "ref_kl": flat(ref_kl), "z0": z0, "loss": float(loss), "grad": flat(y.grad),
                 "grad_kl_is_zero": kl.grad is None or bool((kl.grad == 0).all())}

    # SFT: 2 corrections.
    s = (torch.randn(2, L, V, generator=gen, dtype=torch.float64) * 2).requires_grad_()
    sl = labels_for(2, gen)
    loss = sft_loss(s, sl)
    loss.backward()
    fx["sft"] = {"n": 2, "logits": flat(s), "labels": sl.reshape(-1).tolist(),
                 "loss": float(loss), "grad": flat(s.grad)}

    with open(f"{out_dir}/feedback_reference.json", "w") as f:
        json.dump(fx, f)
    print(f"wrote {out_dir}/feedback_reference.json")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data")
