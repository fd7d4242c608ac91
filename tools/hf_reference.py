#!/usr/bin/env python3
"""Writes tiny Hugging Face-format checkpoints and their expected logits for
model/hf_checkpoint_test.cc, from independent PyTorch implementations of the
published architectures (GPT-2: Radford et al. 2019; Llama: Touvron et al.
2023, with grouped-query attention; Qwen2: Llama plus q/k/v biases), with the
tensor layouts of Hugging Face's checkpoints (GPT-2's Conv1D weights are
[in, out]). Run with Debian's python3-torch:

    /usr/bin/python3 tools/hf_reference.py tests/data/hf
"""
import json
import math
import os
import struct
import sys

import torch

V = 300


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def tiny_bpe():
    m = bytes_to_unicode()
    vocab = {m[b]: b for b in range(256)}
    merges = [("t", "h"), ("th", "e"), ("Ġ", "the"), ("e", "r"), ("Ġ", "s")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    return vocab, merges


def write_safetensors(path, tensors, dtype):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        if dtype == "F32":
            data = t.to(torch.float32).numpy().tobytes()
        elif dtype == "F16":
            data = t.to(torch.float16).numpy().tobytes()
        else:  # BF16: numpy has no bfloat16, so move the bits as int16
            data = t.to(torch.bfloat16).view(torch.int16).numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def rounded(t, dtype):
    return {"F32": t, "F16": t.half().float(), "BF16": t.bfloat16().float()}[dtype]


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(((x - mu) ** 2).mean(-1, keepdim=True) + eps) * w + b


def attention(q, k, v):  # [B, H, T, hd], causal
    T = q.shape[2]
    att = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    att = att.masked_fill(~torch.tril(torch.ones(T, T, dtype=torch.bool)), float("-inf"))
    return att.softmax(-1) @ v


def gpt2_forward(p, cfg, tokens):
    B, T = tokens.shape
    D, H = cfg["n_embd"], cfg["n_head"]
    x = p["wte.weight"][tokens] + p["wpe.weight"][torch.arange(T)]
    for i in range(cfg["n_layer"]):
        g = lambda n: p[f"h.{i}.{n}"]
        h = layer_norm(x, g("ln_1.weight"), g("ln_1.bias"), 1e-5)
        qkv = h @ g("attn.c_attn.weight") + g("attn.c_attn.bias")  # Conv1D: x @ W
        q, k, v = (t.view(B, T, H, D // H).transpose(1, 2) for t in qkv.split(D, -1))
        y = attention(q, k, v).transpose(1, 2).reshape(B, T, D)
        x = x + y @ g("attn.c_proj.weight") + g("attn.c_proj.bias")
        h = layer_norm(x, g("ln_2.weight"), g("ln_2.bias"), 1e-5)
        h = h @ g("mlp.c_fc.weight") + g("mlp.c_fc.bias")
        h = 0.5 * h * (1 + torch.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h ** 3)))
        x = x + h @ g("mlp.c_proj.weight") + g("mlp.c_proj.bias")
    x = layer_norm(x, p["ln_f.weight"], p["ln_f.bias"], 1e-5)
    return x @ p["wte.weight"].T


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def scaled_inv_freq(inv, scaling):
    """RoPE frequencies under a config.json "rope_scaling" entry, as the
    published recipes define them: "linear" (position interpolation, Chen et
    al. 2023) divides every frequency by the factor; "llama3" (Llama 3.1)
    divides the low frequencies (wavelength above original_len /
    low_freq_factor) by the factor, keeps the high ones (wavelength below
    original_len / high_freq_factor), and blends linearly in between."""
    if not scaling:
        return inv
    kind = scaling.get("rope_type", scaling.get("type"))
    factor = scaling["factor"]
    if kind == "linear":
        return inv / factor
    assert kind == "llama3", kind
    old_len = scaling["original_max_position_embeddings"]
    low, high = scaling["low_freq_factor"], scaling["high_freq_factor"]
    out = []
    for f in inv.tolist():
        wavelen = 2 * math.pi / f
        if wavelen < old_len / high:
            out.append(f)
        elif wavelen > old_len / low:
            out.append(f / factor)
        else:
            smooth = (old_len / wavelen - low) / (high - low)
            out.append((1 - smooth) * f / factor + smooth * f)
    return torch.tensor(out, dtype=torch.float64)


def llama_forward(p, cfg, tokens):
    B, T = tokens.shape
    D, H, KV = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = D // H
    inv = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    inv = scaled_inv_freq(inv, cfg.get("rope_scaling"))
    ang = torch.outer(torch.arange(T, dtype=torch.float64), inv)
    cos = torch.cat([ang, ang], -1).cos().float()
    sin = torch.cat([ang, ang], -1).sin().float()

    def rope(t):  # rotate pairs (i, i + hd/2)
        a, b = t[..., : hd // 2], t[..., hd // 2:]
        return t * cos + torch.cat([-b, a], -1) * sin

    x = p["model.embed_tokens.weight"][tokens]
    for i in range(cfg["num_hidden_layers"]):
        g = lambda n: p[f"model.layers.{i}.{n}"]
        bias = lambda n: p.get(f"model.layers.{i}.{n}", 0)
        h = rms_norm(x, g("input_layernorm.weight"), cfg["rms_norm_eps"])
        q = (h @ g("self_attn.q_proj.weight").T + bias("self_attn.q_proj.bias")).view(B, T, H, hd).transpose(1, 2)
        k = (h @ g("self_attn.k_proj.weight").T + bias("self_attn.k_proj.bias")).view(B, T, KV, hd).transpose(1, 2)
        v = (h @ g("self_attn.v_proj.weight").T + bias("self_attn.v_proj.bias")).view(B, T, KV, hd).transpose(1, 2)
        q, k = rope(q), rope(k)
        k = k.repeat_interleave(H // KV, dim=1)
        v = v.repeat_interleave(H // KV, dim=1)
        y = attention(q, k, v).transpose(1, 2).reshape(B, T, D)
        x = x + y @ g("self_attn.o_proj.weight").T
        h = rms_norm(x, g("post_attention_layernorm.weight"), cfg["rms_norm_eps"])
        gate = h @ g("mlp.gate_proj.weight").T
        x = x + (gate * torch.sigmoid(gate) * (h @ g("mlp.up_proj.weight").T)) @ g("mlp.down_proj.weight").T
    x = rms_norm(x, p["model.norm.weight"], cfg["rms_norm_eps"])
    head = p["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else p["lm_head.weight"]
    return x @ head.T


def make(gen, shape, std=0.2):
    return torch.randn(*shape, generator=gen) * std


def gpt2(out, gen):
    D, L, H, T = 32, 2, 4, 16
    cfg = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": V,
           "n_positions": T, "n_ctx": T, "n_embd": D, "n_layer": L, "n_head": H,
           "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new"}
    p = {"wte.weight": make(gen, (V, D)), "wpe.weight": make(gen, (T, D)),
         "ln_f.weight": 1 + make(gen, (D,), 0.1), "ln_f.bias": make(gen, (D,), 0.1)}
    for i in range(L):
        b = f"h.{i}."
        p.update({b + "ln_1.weight": 1 + make(gen, (D,), 0.1), b + "ln_1.bias": make(gen, (D,), 0.1),
                  b + "attn.c_attn.weight": make(gen, (D, 3 * D)), b + "attn.c_attn.bias": make(gen, (3 * D,), 0.05),
                  b + "attn.c_proj.weight": make(gen, (D, D)), b + "attn.c_proj.bias": make(gen, (D,), 0.05),
                  b + "ln_2.weight": 1 + make(gen, (D,), 0.1), b + "ln_2.bias": make(gen, (D,), 0.1),
                  b + "mlp.c_fc.weight": make(gen, (D, 4 * D)), b + "mlp.c_fc.bias": make(gen, (4 * D,), 0.05),
                  b + "mlp.c_proj.weight": make(gen, (4 * D, D)), b + "mlp.c_proj.bias": make(gen, (D,), 0.05),
                  b + "attn.bias": torch.tril(torch.ones(T, T)).view(1, 1, T, T)})  # HF's mask buffer
    stored = {("transformer." + k): v for k, v in p.items()}
    stored["lm_head.weight"] = p["wte.weight"]
    os.makedirs(out, exist_ok=True)
    write_safetensors(f"{out}/model.safetensors", stored, "F32")
    json.dump(cfg, open(f"{out}/config.json", "w"), indent=1)
    vocab, merges = tiny_bpe()
    vocab["<|endoftext|>"] = len(vocab)
    json.dump(vocab, open(f"{out}/vocab.json", "w"))
    with open(f"{out}/merges.txt", "w") as f:
        f.write("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    return cfg, p, gpt2_forward, T


def llama(out, gen, qwen, rope_scaling=None):
    D, L, H, KV, FF, T = 32, 2, 4, 2, 48, 16
    dtype = "F16" if qwen else "BF16"
    cfg = {"model_type": "qwen2" if qwen else "llama",
           "architectures": ["Qwen2ForCausalLM" if qwen else "LlamaForCausalLM"],
           "vocab_size": V, "hidden_size": D, "num_hidden_layers": L, "num_attention_heads": H,
           "num_key_value_heads": KV, "intermediate_size": FF, "rope_theta": 10000.0,
           "rms_norm_eps": 1e-6, "max_position_embeddings": T, "tie_word_embeddings": qwen,
           "hidden_act": "silu", "torch_dtype": "float16" if qwen else "bfloat16"}
    if rope_scaling:
        cfg["rope_scaling"] = rope_scaling
    hd = D // H
    p = {"model.embed_tokens.weight": make(gen, (V, D)), "model.norm.weight": 1 + make(gen, (D,), 0.1)}
    if not qwen:
        p["lm_head.weight"] = make(gen, (V, D))
    for i in range(L):
        b = f"model.layers.{i}."
        p.update({b + "input_layernorm.weight": 1 + make(gen, (D,), 0.1),
                  b + "post_attention_layernorm.weight": 1 + make(gen, (D,), 0.1),
                  b + "self_attn.q_proj.weight": make(gen, (H * hd, D)),
                  b + "self_attn.k_proj.weight": make(gen, (KV * hd, D)),
                  b + "self_attn.v_proj.weight": make(gen, (KV * hd, D)),
                  b + "self_attn.o_proj.weight": make(gen, (D, H * hd)),
                  b + "mlp.gate_proj.weight": make(gen, (FF, D)),
                  b + "mlp.up_proj.weight": make(gen, (FF, D)),
                  b + "mlp.down_proj.weight": make(gen, (D, FF))})
        if qwen:
            p.update({b + "self_attn.q_proj.bias": make(gen, (H * hd,), 0.05),
                      b + "self_attn.k_proj.bias": make(gen, (KV * hd,), 0.05),
                      b + "self_attn.v_proj.bias": make(gen, (KV * hd,), 0.05)})
    p = {k: rounded(v, dtype) for k, v in p.items()}  # the reference sees stored values
    os.makedirs(out, exist_ok=True)
    names = sorted(p)
    if qwen:  # two shards with an index
        half = len(names) // 2
        shards = {"model-00001-of-00002.safetensors": names[:half],
                  "model-00002-of-00002.safetensors": names[half:]}
        for f, ns in shards.items():
            write_safetensors(f"{out}/{f}", {n: p[n] for n in ns}, dtype)
        json.dump({"metadata": {}, "weight_map": {n: f for f, ns in shards.items() for n in ns}},
                  open(f"{out}/model.safetensors.index.json", "w"), indent=1)
    else:
        write_safetensors(f"{out}/model.safetensors", p, dtype)
    json.dump(cfg, open(f"{out}/config.json", "w"), indent=1)
    vocab, merges = tiny_bpe()
    pre = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    if qwen:
        pre = {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"},
             "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]}
    tok = {"version": "1.0", "added_tokens": [{"id": len(vocab), "content": "<|endoftext|>", "special": True}],
           "pre_tokenizer": pre, "decoder": {"type": "ByteLevel"},
           "model": {"type": "BPE", "vocab": vocab, "merges": [f"{a} {b}" for a, b in merges]}}
    json.dump(tok, open(f"{out}/tokenizer.json", "w"))
    return cfg, p, llama_forward, T


def main():
    root = sys.argv[1]
    gen = torch.Generator().manual_seed(11)
    # Head size 8: wavelengths 2*pi*{1, 10, 100, 1000}; with an original
    # context of 64 and factors 1 / 4 the llama3 rule keeps the first,
    # blends the second and divides the last two.
    llama3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
              "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
    linear = {"type": "linear", "factor": 4.0}
    for name, build in [("gpt2", lambda o: gpt2(o, gen)), ("llama", lambda o: llama(o, gen, False)),
                        ("qwen2", lambda o: llama(o, gen, True)),
                        ("llama3_rope", lambda o: llama(o, gen, False, llama3)),
                        ("llama_linear_rope", lambda o: llama(o, gen, False, linear))]:
        out = f"{root}/{name}"
        cfg, p, fwd, T = build(out)
        tokens = torch.randint(0, V, (2, T), generator=gen)
        with torch.no_grad():
            logits = fwd(p, cfg, tokens)
        json.dump({"tokens": tokens.tolist(),
                   "logits": [[[round(v, 6) for v in row] for row in seq] for seq in logits.tolist()]},
                  open(f"{out}/expected_logits.json", "w"))


if __name__ == "__main__":
    main()
