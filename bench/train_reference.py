#!/usr/bin/env python3
"""The Python PyTorch reference for `streamlm bench train`.

StreamLM's GPT (model/gpt.cc) written nanoGPT-style in PyTorch eager mode:
token + learned position embeddings, pre-LayerNorm blocks of causal
self-attention (one fused qkv projection, an explicit causal mask, softmax)
and a tanh-GELU MLP, a final LayerNorm, the output projection tied to the
token embedding; mean next-token cross-entropy. Each step is the learner's
(learner/trainer.cc): zero_grad(set_to_none=True), loss, backward, clip_grad_norm_(1.0), AdamW
(betas 0.9/0.95, weight decay 0.01 on every parameter), loss.item().

Trains on random tokens (2 warm-up steps, then the timed ones) and prints one
JSON line with the fields and formulas of bench/train_bench.cc: tokens/s,
flops_per_token (6 per matmul parameter plus 12*layers*context*d_model),
achieved GFLOP/s, gemm GFLOP/s (best of 3 2048^3 fp32 matmuls on the same
threads in the same process, after a warm-up) and mfu = achieved / gemm.

Usage: train_reference.py [--config small|default|tiny] [--steps N] [--threads N]
"""

import argparse
import json
import math
import os
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    sys.exit("train_reference.py: python module 'torch' is missing "
             "(Debian: apt-get install python3-torch)")

# The presets of bench/train_bench.cc TrainBenchPreset(); "default" is the
# bootstrap model of common/config.h (vocabulary 2048, context 128, d_model
# 128, 4 layers, 4 heads, batch 16).
PRESETS = {
    "small": dict(vocab=8192, context=256, d_model=384, layers=6, heads=6, batch=8, steps=8),
    "default": dict(vocab=2048, context=128, d_model=128, layers=4, heads=4, batch=16, steps=10),
    "tiny": dict(vocab=256, context=32, d_model=32, layers=1, heads=2, batch=4, steps=3),
}
NORM_EPS = 1e-5


class CausalSelfAttention(nn.Module):
    def __init__(self, d_model, heads, context):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        # nanoGPT's explicit causal mask (this libtorch generation has no
        # scaled_dot_product_attention).
        self.register_buffer(
            "mask", torch.tril(torch.ones(context, context)).view(1, 1, context, context))

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.qkv(x).split(C, dim=2)
        hd = C // self.heads
        q = q.view(B, T, self.heads, hd).transpose(1, 2)
        k = k.view(B, T, self.heads, hd).transpose(1, 2)
        v = v.view(B, T, self.heads, hd).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        att = att.masked_fill(self.mask[:, :, :T, :T] == 0, float("-inf"))
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.proj(y)


class Block(nn.Module):
    def __init__(self, d_model, heads, context):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model, eps=NORM_EPS)
        self.attn = CausalSelfAttention(d_model, heads, context)
        self.ln2 = nn.LayerNorm(d_model, eps=NORM_EPS)
        self.fc = nn.Linear(d_model, 4 * d_model)
        self.fc_proj = nn.Linear(4 * d_model, d_model)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.fc_proj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class Gpt(nn.Module):
    def __init__(self, vocab, context, d_model, layers, heads):
        super().__init__()
        self.wte = nn.Embedding(vocab, d_model)
        self.wpe = nn.Embedding(context, d_model)
        self.blocks = nn.ModuleList([Block(d_model, heads, context) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(d_model, eps=NORM_EPS)
        self.lm_head = nn.Linear(d_model, vocab, bias=False)
        self.lm_head.weight = self.wte.weight  # tied
        # GPT-2 initialization, as GptImpl::InitWeights.
        residual_std = 0.02 / math.sqrt(2 * layers)
        for name, p in self.named_parameters():
            if "ln" in name:
                nn.init.ones_(p) if name.endswith("weight") else nn.init.zeros_(p)
            elif name.endswith("bias"):
                nn.init.zeros_(p)
            else:
                nn.init.normal_(p, 0.0, residual_std if name.endswith("proj.weight") else 0.02)

    def forward(self, tokens, targets):
        T = tokens.size(1)
        pos = torch.arange(T, dtype=torch.long)
        x = self.wte(tokens) + self.wpe(pos)
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))


def flops_per_token(c):
    """ModelConfig::TrainFlopsPerToken() for the gpt family."""
    d = c["d_model"]
    params = c["vocab"] * d + c["context"] * d + c["layers"] * (12 * d * d + 13 * d) + 2 * d
    matmul_params = params - c["context"] * d
    return 6.0 * matmul_params + 12.0 * c["layers"] * c["context"] * d


def gemm_gflops():
    """MeasureGemmGflops(): best of 3 products of two 2048x2048 fp32 matrices."""
    n = 2048
    with torch.no_grad():
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.mm(a, b)  # warm up
        best = 1e30
        for _ in range(3):
            t0 = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - t0)
    return 2.0 * n ** 3 / best / 1e9


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="small", choices=sorted(PRESETS))
    ap.add_argument("--steps", type=int, default=0, help="timed steps (default: the preset's)")
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads (0 = all cores)")
    ap.add_argument("--profile", action="store_true",
                    help="print torch.profiler's op table of one step to stderr")
    args = ap.parse_args()
    c = dict(PRESETS[args.config])
    steps = args.steps if args.steps > 0 else c["steps"]
    threads = args.threads if args.threads > 0 else (os.cpu_count() or 1)
    torch.set_num_threads(threads)
    torch.manual_seed(1)

    net = Gpt(c["vocab"], c["context"], c["d_model"], c["layers"], c["heads"])
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.01)
    T = c["context"]
    data = torch.randint(0, c["vocab"], (c["batch"], T + 1), dtype=torch.long)
    inputs, targets = data[:, :T], data[:, 1:]

    def step():
        net.train()
        opt.zero_grad(set_to_none=True)  # nanoGPT's train.py
        loss = net(inputs, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        net.eval()
        return loss.item()

    step()
    step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - t0
    if args.profile:
        from torch.profiler import profile, ProfilerActivity
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30),
              file=sys.stderr)

    tokens_per_s = steps * c["batch"] * T / seconds
    fpt = flops_per_token(c)
    achieved = fpt * tokens_per_s / 1e9
    gemm = gemm_gflops()
    params = sum(p.numel() for p in net.parameters())
    print(json.dumps({
        "config": args.config, "impl": "pytorch-eager", "torch": torch.__version__,
        "params": params, "batch": c["batch"], "context_tokens": T, "steps": steps,
        "tokens_per_s": tokens_per_s, "flops_per_token": fpt, "achieved_gflops": achieved,
        "gemm_gflops": gemm, "mfu": achieved / gemm, "threads": torch.get_num_threads(),
        "device": "cpu"}))


if __name__ == "__main__":
    main()
