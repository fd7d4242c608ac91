#!/usr/bin/env python3
"""Writes the GPT reference fixture used by model/model_test.cc.

An independent implementation of the GPT-2 forward pass (Radford et al.
2019: learned positions, pre-LayerNorm blocks, tanh-GELU MLP, tied output
embedding), written with plain PyTorch tensor ops from the published
architecture, on random weights. The C++ model must reproduce its logits and
loss. Run with Debian's python3-torch:

    /usr/bin/python3 tools/gpt_reference.py tests/data
"""
import json
import math
import struct
import sys

import torch

V, T, D, L, H = 64, 16, 32, 2, 4


def layer_norm(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def forward(p, tokens):
    B, S = tokens.shape
    x = p["wte.weight"][tokens] + p["wpe.weight"][torch.arange(S)]
    for i in range(L):
        g = lambda n: p[f"blocks.{i}.{n}"]
        h = layer_norm(x, g("ln1.weight"), g("ln1.bias"))
        qkv = h @ g("attn.qkv.weight").T + g("attn.qkv.bias")
        q, k, v = qkv.split(D, dim=-1)
        hd = D // H
        q = q.view(B, S, H, hd).transpose(1, 2)
        k = k.view(B, S, H, hd).transpose(1, 2)
        v = v.view(B, S, H, hd).transpose(1, 2)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        causal = torch.tril(torch.ones(S, S, dtype=torch.bool))
        att = att.masked_fill(~causal, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, S, D)
        x = x + y @ g("attn.proj.weight").T + g("attn.proj.bias")
        h = layer_norm(x, g("ln2.weight"), g("ln2.bias"))
        h = gelu_tanh(h @ g("fc.weight").T + g("fc.bias"))
        x = x + h @ g("fc_proj.weight").T + g("fc_proj.bias")
    x = layer_norm(x, p["ln_f.weight"], p["ln_f.bias"])
    return x @ p["wte.weight"].T


def main():
    out = sys.argv[1]
    g = torch.Generator().manual_seed(7)
    r = lambda *s, std=0.2: torch.randn(*s, generator=g) * std
    p = {"wte.weight": r(V, D), "wpe.weight": r(T, D),
         "ln_f.weight": 1 + r(D, std=0.1), "ln_f.bias": r(D, std=0.1)}
    for i in range(L):
        b = f"blocks.{i}."
        p[b + "ln1.weight"] = 1 + r(D, std=0.1)
        p[b + "ln1.bias"] = r(D, std=0.1)
        p[b + "attn.qkv.weight"] = r(3 * D, D)
        p[b + "attn.qkv.bias"] = r(3 * D, std=0.05)
        p[b + "attn.proj.weight"] = r(D, D)
        p[b + "attn.proj.bias"] = r(D, std=0.05)
        p[b + "ln2.weight"] = 1 + r(D, std=0.1)
        p[b + "ln2.bias"] = r(D, std=0.1)
        p[b + "fc.weight"] = r(4 * D, D)
        p[b + "fc.bias"] = r(4 * D, std=0.05)
        p[b + "fc_proj.weight"] = r(D, 4 * D)
        p[b + "fc_proj.bias"] = r(D, std=0.05)

    # safetensors, written by hand: u64 header length, JSON header, F32 data.
    header, blobs, off = {}, [], 0
    for name in sorted(p):
        data = p[name].contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(p[name].shape),
                        "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(f"{out}/gpt_reference.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))

    tokens = torch.randint(0, V, (2, T), generator=g)
    with torch.no_grad():
        logits = forward(p, tokens[:, :-1])
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, V), tokens[:, 1:].reshape(-1))
    json.dump({"config": {"family": "gpt", "vocab_size": V, "context_tokens": T,
                          "d_model": D, "layers": L, "heads": H},
               "tokens": tokens.tolist(),
               "logits": [[[round(v, 7) for v in row] for row in seq]
                          for seq in logits.tolist()],
               "loss": loss.item()},
              open(f"{out}/gpt_reference.json", "w"))


if __name__ == "__main__":
    main()
