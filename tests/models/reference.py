"""Independent reference forward passes for the HF families seedgrid loads.

Written from the Hugging Face modeling files' conventions (modeling_llama.py, modeling_mistral.py,
modeling_qwen3.py, modeling_gemma2.py, modeling_gpt2.py, modeling_gpt_neox.py and the rope_init
functions of modeling_rope_utils.py), not from seedgrid's code: weights are used in the layout
the checkpoint stores them (GPT-2 Conv1D [in, out], NeoX query_key_value head-interleaved), so a
layout mistake in seedgrid shows up as a logits mismatch.

`dt` is the compute dtype. float32 is the reference; bfloat16/float16 emulate a low-precision
forward the way HF runs one (every op's result rounded to dt, norms and softmax in float32).
"""
import math

import torch
import torch.nn.functional as F

F32 = torch.float32


def _r(x, dt):
    return x.to(dt)


def lin(x, w, b=None, dt=F32):
    """nn.Linear: x @ w.T + b (w is [out, in]), accumulated in float32, rounded to dt."""
    y = x.float() @ w.float().t()
    if b is not None:
        y = y + b.float()
    return _r(y, dt)


def conv1d(x, w, b, dt=F32):
    """GPT-2's Conv1D: x @ w + b with w stored [in, out]."""
    return _r(x.float() @ w.float() + b.float(), dt)


def rms_norm(x, w, eps, dt):
    """LlamaRMSNorm: normalise in float32, cast back, then scale."""
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return _r(w.float() * _r(h, dt).float(), dt)


def gemma_rms_norm(x, w, eps, dt):
    """GemmaRMSNorm: float32 throughout, scale by (1 + w), cast back."""
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return _r(h * (1.0 + w.float()), dt)


def layer_norm(x, w, b, eps, dt):
    return _r(F.layer_norm(x.float(), (x.shape[-1],), w.float(), b.float(), eps), dt)


def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def act(name, x, dt):
    x = x.float()
    if name == "silu":
        y = x * torch.sigmoid(x)
    elif name in ("gelu_pytorch_tanh", "gelu_new"):
        y = gelu_tanh(x)
    elif name == "gelu":
        y = 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    else:
        raise ValueError(name)
    return _r(y, dt)


# ---- RoPE (modeling_rope_utils.py) -----------------------------------------------------------

def rope_inv_freq(cfg, dim, seq_len):
    """Returns (inv_freq [dim/2] float64, attention_scaling)."""
    base = float(cfg.get("rope_theta", cfg.get("rotary_emb_base", 10000.0)))
    inv = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    rs = cfg.get("rope_scaling") or {}
    kind = rs.get("rope_type", rs.get("type", "default"))
    if kind == "default":
        return inv, 1.0
    factor = float(rs["factor"])
    if kind == "linear":
        return inv / factor, 1.0
    if kind == "dynamic":
        max_pos = cfg["max_position_embeddings"]
        seq = seq_len if seq_len > max_pos else max_pos
        base = base * ((factor * seq / max_pos) - (factor - 1)) ** (dim / (dim - 2))
        return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)), 1.0
    if kind == "llama3":
        low, high = float(rs["low_freq_factor"]), float(rs["high_freq_factor"])
        old = float(rs["original_max_position_embeddings"])
        low_wl, high_wl = old / low, old / high
        wl = 2 * math.pi / inv
        out = torch.where(wl > low_wl, inv / factor, inv)
        smooth = (old / wl - low) / (high - low)
        smoothed = (1 - smooth) * out / factor + smooth * out
        medium = ~(wl < high_wl) & ~(wl > low_wl)
        return torch.where(medium, smoothed, out), 1.0
    if kind == "yarn":
        orig = rs.get("original_max_position_embeddings") or cfg["max_position_embeddings"]

        def mscale(scale, m=1.0):
            return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

        att = rs.get("attention_factor")
        if att is None:
            if rs.get("mscale") and rs.get("mscale_all_dim"):
                att = mscale(factor, rs["mscale"]) / mscale(factor, rs["mscale_all_dim"])
            else:
                att = mscale(factor)
        beta_fast = rs.get("beta_fast") or 32
        beta_slow = rs.get("beta_slow") or 1

        def corr(rot):
            return (dim * math.log(orig / (rot * 2 * math.pi))) / (2 * math.log(base))

        lo, hi = corr(beta_fast), corr(beta_slow)
        if rs.get("truncate", True):
            lo, hi = math.floor(lo), math.ceil(hi)
        lo, hi = max(lo, 0), min(hi, dim - 1)
        if lo == hi:
            hi += 0.001
        ramp = torch.clamp((torch.arange(dim // 2, dtype=torch.float64) - lo) / (hi - lo), 0, 1)
        extra = 1 - ramp
        pos_freqs = base ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)
        inv = (1.0 / (factor * pos_freqs)) * (1 - extra) + (1.0 / pos_freqs) * extra
        return inv, att
    raise ValueError(kind)


def cos_sin(cfg, dim, T, dt):
    inv, att = rope_inv_freq(cfg, dim, T)
    freqs = torch.outer(torch.arange(T, dtype=torch.float64), inv)
    emb = torch.cat([freqs, freqs], -1)
    return _r(emb.cos() * att, dt), _r(emb.sin() * att, dt)


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat([-x2, x1], -1)


def apply_rope(x, cos, sin, dt):
    """x [B, H, T, D]; cos/sin [T, D]."""
    return _r(x.float() * cos.float() + rotate_half(x).float() * sin.float(), dt)


def attention(q, k, v, scaling, dt, window=None, softcap=None):
    """Eager attention, q [B,H,T,D], k/v [B,KV,T,D]; causal (and sliding) mask."""
    H, KV, T = q.shape[1], k.shape[1], q.shape[2]
    k = k.repeat_interleave(H // KV, dim=1)  # repeat_kv
    v = v.repeat_interleave(H // KV, dim=1)
    s = _r(q.float() @ k.float().transpose(-1, -2), dt).float() * scaling
    s = _r(s, dt).float()
    if softcap:
        s = _r(torch.tanh(s / softcap) * softcap, dt).float()
    i = torch.arange(T).view(T, 1)
    j = torch.arange(T).view(1, T)
    allowed = j <= i
    if window:
        allowed = allowed & (i - j < window)
    s = s.masked_fill(~allowed, float("-inf"))
    p = _r(torch.softmax(s, -1), dt)
    return _r(p.float() @ v.float(), dt)


def split_heads(x, n, D):
    B, T = x.shape[:2]
    return x.view(B, T, n, D).transpose(1, 2)


def merge_heads(x):
    B, H, T, D = x.shape
    return x.transpose(1, 2).reshape(B, T, H * D)


# ---- Families ---------------------------------------------------------------------------------

def llama_style(cfg, W, tokens, dt):
    """LlamaForCausalLM and its relatives: Mistral (sliding window), Qwen3 (q/k norm), Gemma2
    (embedding scale, (1+w) norms, sandwich norms, soft-capping, alternating local layers)."""
    mt = cfg["model_type"]
    gemma = mt in ("gemma", "gemma2")
    d, H = cfg["hidden_size"], cfg["num_attention_heads"]
    KV = cfg.get("num_key_value_heads", H)
    D = cfg.get("head_dim") or d // H
    eps = cfg.get("rms_norm_eps", 1e-6)
    T = tokens.shape[1]
    norm = (lambda x, w: gemma_rms_norm(x, w, eps, dt)) if gemma else (
        lambda x, w: rms_norm(x, w, eps, dt))
    w = {k: _r(v, dt) for k, v in W.items()}
    h = w["model.embed_tokens.weight"][tokens]
    if gemma:
        h = _r(h.float() * torch.tensor(d ** 0.5, dtype=dt).float(), dt)
    cos, sin = cos_sin(cfg, D, T, dt)
    scaling = cfg["query_pre_attn_scalar"] ** -0.5 if mt == "gemma2" else D ** -0.5
    # GemmaMLP uses hidden_activation; HF falls back to gelu_pytorch_tanh when it is unset
    # (Gemma-1 configs say hidden_act "gelu", which HF no longer uses for the MLP).
    act_name = (cfg.get("hidden_activation") or "gelu_pytorch_tanh") if gemma else cfg["hidden_act"]
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        bias = lambda n: w.get(p + n)  # noqa: E731
        x = norm(h, w[p + "input_layernorm.weight"])
        q = split_heads(lin(x, w[p + "self_attn.q_proj.weight"], bias("self_attn.q_proj.bias"), dt), H, D)
        k = split_heads(lin(x, w[p + "self_attn.k_proj.weight"], bias("self_attn.k_proj.bias"), dt), KV, D)
        v = split_heads(lin(x, w[p + "self_attn.v_proj.weight"], bias("self_attn.v_proj.bias"), dt), KV, D)
        if mt == "qwen3":
            q = rms_norm(q, w[p + "self_attn.q_norm.weight"], eps, dt)
            k = rms_norm(k, w[p + "self_attn.k_norm.weight"], eps, dt)
        q, k = apply_rope(q, cos, sin, dt), apply_rope(k, cos, sin, dt)
        window, cap = None, None
        if mt == "mistral":
            window = cfg.get("sliding_window")
        if mt == "gemma2":
            window = cfg["sliding_window"] if l % 2 == 0 else None  # layer_types: even = sliding
            cap = cfg.get("attn_logit_softcapping")
        a = lin(merge_heads(attention(q, k, v, scaling, dt, window, cap)),
                w[p + "self_attn.o_proj.weight"], bias("self_attn.o_proj.bias"), dt)
        if mt == "gemma2":
            a = norm(a, w[p + "post_attention_layernorm.weight"])
            h = _r(h.float() + a.float(), dt)
            x = norm(h, w[p + "pre_feedforward_layernorm.weight"])
        else:
            h = _r(h.float() + a.float(), dt)
            x = norm(h, w[p + "post_attention_layernorm.weight"])
        g = act(act_name, lin(x, w[p + "mlp.gate_proj.weight"], None, dt), dt)
        u = lin(x, w[p + "mlp.up_proj.weight"], None, dt)
        m = lin(_r(g.float() * u.float(), dt), w[p + "mlp.down_proj.weight"], None, dt)
        if mt == "gemma2":
            m = norm(m, w[p + "post_feedforward_layernorm.weight"])
        h = _r(h.float() + m.float(), dt)
    h = norm(h, w["model.norm.weight"])
    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    logits = lin(h, head, None, dt).float()
    cap = cfg.get("final_logit_softcapping") if mt == "gemma2" else None
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def gpt2(cfg, W, tokens, dt):
    """GPT2LMHeadModel: learned positions, LayerNorm, Conv1D [in, out] weights, fused c_attn."""
    d, H = cfg["n_embd"], cfg["n_head"]
    D = d // H
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    T = tokens.shape[1]
    w = {k: _r(v, dt) for k, v in W.items()}
    h = _r(w["wte.weight"][tokens].float() + w["wpe.weight"][:T].float(), dt)
    for l in range(cfg["n_layer"]):
        p = f"h.{l}."
        x = layer_norm(h, w[p + "ln_1.weight"], w[p + "ln_1.bias"], eps, dt)
        qkv = conv1d(x, w[p + "attn.c_attn.weight"], w[p + "attn.c_attn.bias"], dt)
        q, k, v = (split_heads(t, H, D) for t in qkv.split(d, dim=2))
        a = attention(q, k, v, 1.0 / math.sqrt(D), dt)
        a = conv1d(merge_heads(a), w[p + "attn.c_proj.weight"], w[p + "attn.c_proj.bias"], dt)
        h = _r(h.float() + a.float(), dt)
        x = layer_norm(h, w[p + "ln_2.weight"], w[p + "ln_2.bias"], eps, dt)
        m = act(cfg.get("activation_function", "gelu_new"),
                conv1d(x, w[p + "mlp.c_fc.weight"], w[p + "mlp.c_fc.bias"], dt), dt)
        m = conv1d(m, w[p + "mlp.c_proj.weight"], w[p + "mlp.c_proj.bias"], dt)
        h = _r(h.float() + m.float(), dt)
    h = layer_norm(h, w["ln_f.weight"], w["ln_f.bias"], eps, dt)
    return lin(h, w["wte.weight"], None, dt).float()


def gpt_neox(cfg, W, tokens, dt):
    """GPTNeoXForCausalLM: fused query_key_value viewed [B, T, H, 3·D], partial rotary,
    parallel residual, LayerNorm, untied embed_out."""
    d, H = cfg["hidden_size"], cfg["num_attention_heads"]
    D = d // H
    rot = int(D * cfg.get("rotary_pct", 0.25))
    eps = cfg.get("layer_norm_eps", 1e-5)
    B, T = tokens.shape
    w = {k: _r(v, dt) for k, v in W.items()}
    cos, sin = cos_sin(cfg, rot, T, dt)
    h = w["gpt_neox.embed_in.weight"][tokens]
    for l in range(cfg["num_hidden_layers"]):
        p = f"gpt_neox.layers.{l}."
        x = layer_norm(h, w[p + "input_layernorm.weight"], w[p + "input_layernorm.bias"], eps, dt)
        qkv = lin(x, w[p + "attention.query_key_value.weight"],
                  w[p + "attention.query_key_value.bias"], dt)
        qkv = qkv.view(B, T, H, 3 * D).permute(0, 2, 1, 3)
        q, k, v = qkv[..., :D], qkv[..., D:2 * D], qkv[..., 2 * D:]
        q = torch.cat([apply_rope(q[..., :rot], cos, sin, dt), q[..., rot:]], -1)
        k = torch.cat([apply_rope(k[..., :rot], cos, sin, dt), k[..., rot:]], -1)
        a = attention(q, k, v, 1.0 / math.sqrt(D), dt)
        a = lin(merge_heads(a), w[p + "attention.dense.weight"], w[p + "attention.dense.bias"], dt)
        x2 = layer_norm(h if cfg.get("use_parallel_residual", True) else _r(h.float() + a.float(), dt),
                        w[p + "post_attention_layernorm.weight"],
                        w[p + "post_attention_layernorm.bias"], eps, dt)
        m = act(cfg.get("hidden_act", "gelu"),
                lin(x2, w[p + "mlp.dense_h_to_4h.weight"], w[p + "mlp.dense_h_to_4h.bias"], dt), dt)
        m = lin(m, w[p + "mlp.dense_4h_to_h.weight"], w[p + "mlp.dense_4h_to_h.bias"], dt)
        h = _r(h.float() + a.float() + m.float(), dt)
    h = layer_norm(h, w["gpt_neox.final_layer_norm.weight"], w["gpt_neox.final_layer_norm.bias"],
                   eps, dt)
    return lin(h, w["embed_out.weight"], None, dt).float()


FORWARD = {"gpt2": gpt2, "gpt_neox": gpt_neox}


def forward(cfg, W, tokens, dt=F32):
    return FORWARD.get(cfg["model_type"], llama_style)(cfg, W, tokens, dt)
