#!/usr/bin/python3
"""PyTorch peer of bench/lora: one LoRA training step (forward, backward, AdamW) of a Llama-style
decoder, written the way PyTorch users write it: nn.Module per layer, separate q/k/v/o and
gate/up/down nn.Linear, PEFT-style LoRA wrappers (base_layer + lora_A + lora_B + scaling),
HF's rotate_half RoPE and eager attention, torch.optim.AdamW on the LoRA parameters.

  lora_py.py dump SIZE FILE            write initial weights, LoRA factors and tokens
                                       (safetensors, HF names) for both implementations
  lora_py.py run SIZE FILE STEPS WARMUP   time STEPS steps after WARMUP; prints one JSON line

Threads come from the environment (OMP_NUM_THREADS / OPENBLAS_NUM_THREADS), set by run.py.
"""
import json
import math
import os
import struct
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

SIZES = {
    # vocab, d_model, layers, heads, d_mlp, seq, batch
    "small": dict(vocab=48, d=64, layers=2, heads=4, d_mlp=256, seq=24, batch=32),
    "large": dict(vocab=512, d=512, layers=8, heads=8, d_mlp=1376, seq=128, batch=16),
}
RANK, ALPHA, LR, WD = 4, 8.0, 1e-3, 0.01


class RMSNorm(nn.Module):
    def __init__(self, d, eps=1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class LoraLinear(nn.Module):
    """PEFT's lora.Linear, reduced to what the step uses."""

    def __init__(self, base: nn.Linear, r: int, alpha: float):
        super().__init__()
        self.base_layer = base
        self.lora_A = nn.Linear(base.in_features, r, bias=False)
        self.lora_B = nn.Linear(r, base.out_features, bias=False)
        self.lora_dropout = nn.Identity()
        self.scaling = alpha / r

    def forward(self, x):
        result = self.base_layer(x)
        return result + self.lora_B(self.lora_A(self.lora_dropout(x))) * self.scaling


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin):
    return (q * cos) + (rotate_half(q) * sin), (k * cos) + (rotate_half(k) * sin)


class Attention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads, self.head_dim = heads, d // heads
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)

    def forward(self, x, cos, sin, mask):
        B, T, C = x.shape
        q = self.q_proj(x).view(B, T, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.heads, self.head_dim).transpose(1, 2)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        att = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.head_dim)
        att = att + mask
        att = F.softmax(att, dim=-1)
        y = torch.matmul(att, v)
        y = y.transpose(1, 2).contiguous().reshape(B, T, C)
        return self.o_proj(y)


class MLP(nn.Module):
    def __init__(self, d, d_mlp):
        super().__init__()
        self.gate_proj = nn.Linear(d, d_mlp, bias=False)
        self.up_proj = nn.Linear(d, d_mlp, bias=False)
        self.down_proj = nn.Linear(d_mlp, d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, d, heads, d_mlp):
        super().__init__()
        self.input_layernorm = RMSNorm(d)
        self.self_attn = Attention(d, heads)
        self.post_attention_layernorm = RMSNorm(d)
        self.mlp = MLP(d, d_mlp)

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class Inner(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.embed_tokens = nn.Embedding(s["vocab"], s["d"])
        self.layers = nn.ModuleList(Block(s["d"], s["heads"], s["d_mlp"]) for _ in range(s["layers"]))
        self.norm = RMSNorm(s["d"])


class LlamaForCausalLM(nn.Module):
    def __init__(self, s):
        super().__init__()
        self.model = Inner(s)
        self.lm_head = nn.Linear(s["d"], s["vocab"], bias=False)
        hd = s["d"] // s["heads"]
        inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        freqs = torch.outer(torch.arange(s["seq"], dtype=torch.float32), inv)
        emb = torch.cat((freqs, freqs), dim=-1)
        self.register_buffer("cos", emb.cos()[None, None], persistent=False)
        self.register_buffer("sin", emb.sin()[None, None], persistent=False)
        mask = torch.full((s["seq"], s["seq"]), float("-inf")).triu(1)
        self.register_buffer("mask", mask[None, None], persistent=False)

    def forward(self, tokens):
        T = tokens.shape[1]
        x = self.model.embed_tokens(tokens)
        cos, sin, mask = self.cos[:, :, :T], self.sin[:, :, :T], self.mask[:, :, :T, :T]
        for layer in self.model.layers:
            x = layer(x, cos, sin, mask)
        return self.lm_head(self.model.norm(x))


def add_lora(model):
    """Wraps every q/k/v/o/gate/up/down Linear (what peft.get_peft_model does)."""
    for block in model.model.layers:
        for parent, names in ((block.self_attn, ("q_proj", "k_proj", "v_proj", "o_proj")),
                              (block.mlp, ("gate_proj", "up_proj", "down_proj"))):
            for n in names:
                setattr(parent, n, LoraLinear(getattr(parent, n), RANK, ALPHA))
    for p in model.parameters():
        p.requires_grad_(False)
    for n, p in model.named_parameters():
        if "lora_" in n:
            p.requires_grad_(True)


def hf_name(n):
    """Module path -> the HF weight name (and LoRA factor names seedgrid's bench reads)."""
    n = n.replace(".base_layer", "")
    if ".lora_A." in n or ".lora_B." in n:
        base, which = n.split(".lora_")
        return "lora." + base + ".weight." + which[0]
    return n


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, t in tensors.items():
        t = t.detach().contiguous()
        dtype = {torch.float32: "F32", torch.int64: "I64"}[t.dtype]
        b = t.numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        dtype = {"F32": torch.float32, "I64": torch.int64}[e["dtype"]]
        out[name] = torch.frombuffer(bytearray(data[b:end]), dtype=dtype).reshape(e["shape"])
    return out


def build(size):
    s = SIZES[size]
    model = LlamaForCausalLM(s)
    add_lora(model)
    return s, model


def dump(size, path):
    torch.manual_seed(0)
    s, model = build(size)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "norm" in n:
                p.uniform_(0.8, 1.2)
            elif "lora_A" in n:
                nn.init.kaiming_uniform_(p, a=math.sqrt(5))
            elif "lora_B" in n:
                p.normal_(0.0, 0.01)  # not 0: the step-0 check exercises the adapters
            else:
                p.normal_(0.0, 0.02)
    tensors = {hf_name(n): p for n, p in model.named_parameters()}
    tensors["tokens"] = torch.randint(0, s["vocab"], (s["batch"], s["seq"]), dtype=torch.int64)
    write_safetensors(path, tensors)


def run(size, path, steps, warmup):
    s, model = build(size)
    init = read_safetensors(path)
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(init[hf_name(n)])
    tokens = init["tokens"]
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=LR, weight_decay=WD)

    def step():
        opt.zero_grad(set_to_none=True)
        logits = model(tokens)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, s["vocab"]), tokens[:, 1:].reshape(-1))
        loss.backward()
        opt.step()
        return loss

    loss0 = step().item()
    for _ in range(warmup - 1):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    print(json.dumps({"impl": "py", "size": size, "threads": torch.get_num_threads(), "steps": steps,
                      "median_ms": times[len(times) // 2], "mean_ms": sum(times) / len(times),
                      "loss0": loss0}))


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "dump":
        dump(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 6 and sys.argv[1] == "run":
        run(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        sys.exit(__doc__)
