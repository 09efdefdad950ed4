#!/usr/bin/python3
"""PyTorch side of bench/models: a Qwen3-0.6B-shaped checkpoint and its LoRA training step.

  qwen3_py.py write DIR [--dtype bfloat16|float32] [--layers 28]
      writes DIR/config.json (Qwen/Qwen3-0.6B's published config) and DIR/model.safetensors with
      random weights (N(0, 0.02), norms 1; tied embeddings: no lm_head) in the tensor order HF's
      save_pretrained writes (sorted by name), plus DIR/tokens.json (4 rows of 256 random ids).
  qwen3_py.py train DIR STEPS WARMUP RANK LAYER_LO LAYER_HI [TOKENS.json]
      loads DIR into an eager Qwen3ForCausalLM written here from HF's modeling_qwen3.py
      conventions (separate q/k/v/o and gate/up/down nn.Linear, q_norm/k_norm per head before
      RoPE, repeat_kv for grouped-query attention, eager softmax attention in float32, tied
      lm_head), wraps q/k/v/o/gate/up/down of layers [LAYER_LO, LAYER_HI) in PEFT-style LoRA
      (rank RANK, alpha 2·RANK, B = 0), and times STEPS steps after WARMUP of: forward, HF's
      CausalLM loss (logits for every position, shifted cross-entropy), backward, AdamW on the
      LoRA parameters. Prints one JSON line (median, loss0, peak RSS).
  qwen3_py.py read FILE
      reads FILE into memory in 16 MiB chunks; prints the time (the read-loop baseline).
  qwen3_py.py read-whole FILE
      reads FILE into one fresh buffer of its size (what a loader that keeps the bytes does:
      every page of it touched for the first time); prints the time.

Threads come from the environment (OMP_NUM_THREADS), set by run.py. Compute is float32 (a
bf16 checkpoint is converted on load, tensor by tensor, as seedgrid does).
"""
import json
import math
import os
import resource
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../tests/models"))
from test_families import QWEN3_06B  # noqa: E402  Qwen/Qwen3-0.6B's published config.json

BATCH, SEQ = 4, 256
ST = {"F32": (np.float32, None), "BF16": (np.int16, torch.bfloat16), "F16": (np.float16, None)}


def tensor_shapes(c):
    d, H, KV, D, m = (c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"],
                      c["head_dim"], c["intermediate_size"])
    t = {"model.embed_tokens.weight": (c["vocab_size"], d)}
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        t.update({p + "input_layernorm.weight": (d,), p + "self_attn.q_proj.weight": (H * D, d),
                  p + "self_attn.k_proj.weight": (KV * D, d),
                  p + "self_attn.v_proj.weight": (KV * D, d),
                  p + "self_attn.q_norm.weight": (D,), p + "self_attn.k_norm.weight": (D,),
                  p + "self_attn.o_proj.weight": (d, H * D),
                  p + "post_attention_layernorm.weight": (d,),
                  p + "mlp.gate_proj.weight": (m, d), p + "mlp.up_proj.weight": (m, d),
                  p + "mlp.down_proj.weight": (d, m)})
    t["model.norm.weight"] = (d,)
    return t


def write(dir_, dtype="bfloat16", layers=28):
    os.makedirs(dir_, exist_ok=True)
    cfg = dict(QWEN3_06B, num_hidden_layers=layers, max_window_layers=layers, torch_dtype=dtype)
    with open(os.path.join(dir_, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    tdt, name = (torch.bfloat16, "BF16") if dtype == "bfloat16" else (torch.float32, "F32")
    # The order safetensors' serializer writes (HF save_pretrained): same-dtype tensors sorted
    # by name, so q_proj and k_proj are not neighbours while gate_proj and up_proj are.
    shapes = dict(sorted(tensor_shapes(cfg).items()))
    header, offset = {}, 0
    for n, s in shapes.items():
        nbytes = math.prod(s) * (2 if name == "BF16" else 4)
        header[n] = {"dtype": name, "shape": list(s), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    g = torch.Generator().manual_seed(0)
    path = os.path.join(dir_, "model.safetensors")
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for n, s in shapes.items():
            w = torch.ones(s) if len(s) == 1 else torch.randn(s, generator=g) * 0.02
            w = w.to(tdt)
            f.write((w.view(torch.int16) if tdt == torch.bfloat16 else w).numpy().tobytes())
    os.replace(path + ".tmp", path)
    tokens = torch.randint(0, cfg["vocab_size"], (BATCH, SEQ), generator=g)
    with open(os.path.join(dir_, "tokens.json"), "w") as f:
        json.dump(tokens.tolist(), f)


def load_into(model, dir_):
    """Streams the checkpoint into the model's parameters tensor by tensor (float32), so that
    at most one tensor is held twice: what from_pretrained(low_cpu_mem_usage=True) does."""
    params = dict(model.named_parameters())
    path = os.path.join(dir_, "model.safetensors")
    seen = set()
    with open(path, "rb") as f, torch.no_grad():
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        for name, e in header.items():
            if name == "__metadata__":
                continue
            b, end = e["data_offsets"]
            np_dt, view = ST[e["dtype"]]
            f.seek(base + b)
            a = np.fromfile(f, dtype=np_dt, count=(end - b) // np.dtype(np_dt).itemsize)
            t = torch.from_numpy(a)
            if view is not None:
                t = t.view(view)
            params[name].copy_(t.reshape(e["shape"]))
            seen.add(name)
            del a, t
    missing = set(params) - seen - {"lm_head.weight"}
    assert not missing, sorted(missing)[:5]


class RMSNorm(nn.Module):  # Qwen3RMSNorm
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        dt = x.dtype
        x = x.to(torch.float32)
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dt)


class LoraLinear(nn.Module):
    """PEFT's lora.Linear, reduced to what the step uses (dropout 0: Identity)."""

    def __init__(self, base, r, alpha):
        super().__init__()
        self.base_layer = base
        self.lora_A = nn.Linear(base.in_features, r, bias=False)
        self.lora_B = nn.Linear(r, base.out_features, bias=False)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)
        self.lora_dropout = nn.Identity()
        self.scaling = alpha / r

    def forward(self, x):
        return self.base_layer(x) + self.lora_B(self.lora_A(self.lora_dropout(x))) * self.scaling


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def repeat_kv(x, n):
    if n == 1:
        return x
    B, KV, T, D = x.shape
    return x[:, :, None].expand(B, KV, n, T, D).reshape(B, KV * n, T, D)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, self.H, self.KV, self.D = (c["hidden_size"], c["num_attention_heads"],
                                      c["num_key_value_heads"], c["head_dim"])
        self.q_proj = nn.Linear(d, self.H * self.D, bias=False)
        self.k_proj = nn.Linear(d, self.KV * self.D, bias=False)
        self.v_proj = nn.Linear(d, self.KV * self.D, bias=False)
        self.o_proj = nn.Linear(self.H * self.D, d, bias=False)
        self.q_norm = RMSNorm(self.D, c["rms_norm_eps"])
        self.k_norm = RMSNorm(self.D, c["rms_norm_eps"])
        self.scaling = self.D ** -0.5

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        q = self.q_norm(self.q_proj(x).view(B, T, -1, self.D)).transpose(1, 2)
        k = self.k_norm(self.k_proj(x).view(B, T, -1, self.D)).transpose(1, 2)
        v = self.v_proj(x).view(B, T, -1, self.D).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k, v = repeat_kv(k, self.H // self.KV), repeat_kv(v, self.H // self.KV)
        w = torch.matmul(q, k.transpose(2, 3)) * self.scaling + mask
        w = F.softmax(w, dim=-1, dtype=torch.float32).to(q.dtype)
        y = torch.matmul(w, v).transpose(1, 2).reshape(B, T, -1)
        return self.o_proj(y)


class MLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, m = c["hidden_size"], c["intermediate_size"]
        self.gate_proj = nn.Linear(d, m, bias=False)
        self.up_proj = nn.Linear(d, m, bias=False)
        self.down_proj = nn.Linear(m, d, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.input_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.self_attn = Attention(c)
        self.post_attention_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.mlp = MLP(c)

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class Inner(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.layers = nn.ModuleList(Layer(c) for _ in range(c["num_hidden_layers"]))
        self.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])


class Qwen3ForCausalLM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.model = Inner(c)
        self.lm_head = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)
        self.lm_head.weight = self.model.embed_tokens.weight  # tied

    def forward(self, tokens, labels):
        B, T = tokens.shape
        D = self.c["head_dim"]
        inv = 1.0 / (self.c["rope_theta"] ** (torch.arange(0, D, 2, dtype=torch.float32) / D))
        freqs = torch.outer(torch.arange(T, dtype=torch.float32), inv)
        emb = torch.cat((freqs, freqs), -1)
        cos, sin = emb.cos()[None, None], emb.sin()[None, None]
        mask = torch.full((T, T), torch.finfo(torch.float32).min).triu(1)[None, None]
        x = self.model.embed_tokens(tokens)
        for layer in self.model.layers:
            x = layer(x, cos, sin, mask)
        logits = self.lm_head(self.model.norm(x)).float()
        # HF ForCausalLMLoss: shift, cross-entropy over every position.
        return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                               labels[:, 1:].reshape(-1))


def build(dir_, rank, lo, hi):
    with open(os.path.join(dir_, "config.json")) as f:
        c = json.load(f)
    # No random init of the base (it is overwritten by the checkpoint; untouched pages of
    # torch.empty cost no memory), as from_pretrained skips it.
    saved = nn.Linear.reset_parameters, nn.Embedding.reset_parameters
    nn.Linear.reset_parameters = nn.Embedding.reset_parameters = lambda self: None
    try:
        model = Qwen3ForCausalLM(c)
    finally:
        nn.Linear.reset_parameters, nn.Embedding.reset_parameters = saved
    load_into(model, dir_)
    for l in range(lo, hi):
        layer = model.model.layers[l]
        for parent, names in ((layer.self_attn, ("q_proj", "k_proj", "v_proj", "o_proj")),
                              (layer.mlp, ("gate_proj", "up_proj", "down_proj"))):
            for n in names:
                setattr(parent, n, LoraLinear(getattr(parent, n), rank, 2.0 * rank))
    for n, p in model.named_parameters():
        p.requires_grad_("lora_" in n)
    return model


def train(dir_, steps, warmup, rank, lo, hi, tokens_path=None):
    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = build(dir_, rank, lo, hi)
    load_ms = (time.perf_counter() - t0) * 1e3
    with open(tokens_path or os.path.join(dir_, "tokens.json")) as f:
        tokens = torch.tensor(json.load(f), dtype=torch.long)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = model(tokens, tokens)
        loss.backward()
        opt.step()
        return loss.item()

    loss0 = step()
    for _ in range(max(1, warmup) - 1):
        step()
    ms = []
    for _ in range(steps):
        t = time.perf_counter()
        step()
        ms.append((time.perf_counter() - t) * 1e3)
    ms.sort()
    print(json.dumps({
        "impl": "py", "threads": torch.get_num_threads(), "steps": steps,
        "median_ms": ms[len(ms) // 2], "min_ms": ms[0], "max_ms": ms[-1], "loss0": loss0,
        "lora_params": sum(p.numel() for p in params), "load_ms": load_ms,
        "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def read_file(path):
    buf = bytearray(16 << 20)
    mv = memoryview(buf)
    t = time.perf_counter()
    total = 0
    with open(path, "rb", buffering=0) as f:
        while True:
            n = f.readinto(mv)
            if not n:
                break
            total += n
    print(json.dumps({"impl": "read", "bytes": total, "ms": (time.perf_counter() - t) * 1e3}))


def read_whole(path):
    """The file read into one buffer it keeps, as a loader that owns its weights must: fresh
    anonymous memory (mmap: zero pages until written, no memset first, and no MADV_HUGEPAGE,
    which numpy's large arrays get and which stalls on compaction here), every page of it
    touched for the first time by the read."""
    import mmap
    size = os.path.getsize(path)
    t = time.perf_counter()
    buf = mmap.mmap(-1, size)
    mv = memoryview(buf)
    total = 0
    with open(path, "rb", buffering=0) as f:
        while total < size:
            n = f.readinto(mv[total:])
            if not n:
                break
            total += n
    ms = (time.perf_counter() - t) * 1e3
    mv.release()
    buf.close()
    print(json.dumps({"impl": "read_whole", "bytes": total, "ms": ms}))


def main():
    a = sys.argv[1:]
    if a and a[0] == "write":
        dtype = a[a.index("--dtype") + 1] if "--dtype" in a else "bfloat16"
        layers = int(a[a.index("--layers") + 1]) if "--layers" in a else 28
        write(a[1], dtype, layers)
    elif a and a[0] == "train" and len(a) in (7, 8):
        train(a[1], int(a[2]), int(a[3]), int(a[4]), int(a[5]), int(a[6]), *a[7:])
    elif a and a[0] == "read" and len(a) == 2:
        read_file(a[1])
    elif a and a[0] == "read-whole" and len(a) == 2:
        read_whole(a[1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
