"""Independent PyTorch reference for PolicyPrune's int8 forwards (issue 12): how far plain W8A8 fake quantization
moves each window's NLL of SmolLM2-135M on WikiText-2, dense and with a 50 % pruning plan. Int8ReferenceTests
compares PolicyPrune's int8 forward (which adds per-token outlier decomposition) against these numbers.

What it computes
----------------
Model: SmolLM2-135M-Instruct from ../shared/models/smollm2-135m-instruct-q4_1 (the Q4_1 GGUF, loaded by transformers'
GGUF reader into float32). Data: WikiText-2 raw test as ../shared/fixtures/make/03_perplexity.py (rows joined with
"\n\n", whitespace-only rows empty), tokenized with ../shared/fixtures/tokenizers/smollm2-135m-instruct.tokenizer.json
without special tokens; the FIRST 64 non-overlapping 128-token windows, each scored on its own; a window's NLL is the
mean over its 127 predicted tokens of -log_softmax(logits.double()).

Models: "dense", and "plan": the plan file given on the command line (a PolicyPrune plan.json keeping every
attention block, KV group and MLP) applied by slicing each layer's gate_proj/up_proj rows and down_proj columns to
its "kept_channels". The kept channels are copied into the output, so the test rebuilds the same model.

Variants (fake quantization, float32 arithmetic; only the final log_softmax is float64), applied to every nn.Linear
in the decoder layers (q, k, v, o, gate, up, down) and to lm_head (a quantized copy; the embedding lookup stays):
  f32      no quantization
  w8       weights only: per output row symmetric s8, scale = max|w_row|/127,
           w_deq = clamp(round(w/scale), -127, 127) * scale  (torch.round: half to even)
  a8u      activations only, per token (row of the Linear's input), asymmetric u8:
           lo = min(min x, 0), hi = max(max x, 0), scale = (hi-lo)/255 (1 if 0),
           zero = clamp(round(-lo/scale), 0, 255), q = clamp(round(x/scale)+zero, 0, 255), x_deq = (q-zero)*scale
  w8a8u    w8 + a8u (PolicyPrune's scheme without its outlier decomposition; on the plan this script quantizes the
           sliced matrices, while PolicyPrune keeps each row's dense scale, slightly coarser)
  w8a8s    w8 + per-token symmetric s8 activations: scale = max|x|/127 (1 if 0)
Per model and variant: rel_w = (NLL_q - NLL_f32)/NLL_f32 per window, with mean rel, mean |rel|, max |rel| and its
window, and the windows with |rel| > 1 %.

How to run (made 2026-12-01 with torch 2.13.0+cpu, transformers 5.24.0, gguf 0.19.0, tokenizers 0.23.3; ~8 min
on one core). The plan was made by the session-10 run in RESULTS.md "int8 per-window NLL against a PyTorch W8A8
reference", which gives its commands:
  python3 -m venv venv && venv/bin/pip install torch transformers gguf safetensors numpy tokenizers
  venv/bin/python make_w8a8_reference.py PLAN.json     # -> w8a8_smollm2_wikitext2_w128.json beside this file
"""
import copy
import gzip
import json
import os
import sys
import time

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
# ../shared beside the package root (four levels up from this folder), or $POLICYPRUNE_SHARED.
SHARED = os.environ.get("POLICYPRUNE_SHARED") or os.path.normpath(os.path.join(HERE, "..", "..", "..", "..", "..", "shared"))
GGUF = os.path.join(SHARED, "models", "smollm2-135m-instruct-q4_1", "SmolLM2-135M-Instruct.Q4_1.gguf")
OUT = os.path.join(HERE, "w8a8_smollm2_wikitext2_w128.json")
TOKENIZER = os.path.join(SHARED, "fixtures", "tokenizers", "smollm2-135m-instruct.tokenizer.json")
WIKI = os.path.join(SHARED, "data", "wikitext2", "wiki.test.raw.gz")
FIXTURE = os.path.join(SHARED, "fixtures", "perplexity", "smollm2-135m_wikitext2_w128.json")
N_WIN = 64
W = 128
BATCH = 8
VARIANTS = ["f32", "w8", "a8u", "w8a8u", "w8a8s"]


# ----------------------------------------------------------------------------------------------- data
def wikitext_ids():
    with gzip.open(WIKI, "rt", encoding="utf-8") as f:
        rows = [line if line.strip() else "" for line in f]
    text = "\n\n".join(rows)
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(TOKENIZER)
    return tok, text, tok.encode(text, add_special_tokens=False).ids


# ----------------------------------------------------------------------------------------------- quantizers
def quant_weight_rows(w):
    """Per output row symmetric s8, float32."""
    w = w.detach().float()
    scale = w.abs().amax(dim=1, keepdim=True) / 127.0
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    return torch.clamp(torch.round(w / scale), -127, 127) * scale


def quant_act_u8(x):
    lo = torch.clamp(x.amin(dim=-1, keepdim=True), max=0.0)
    hi = torch.clamp(x.amax(dim=-1, keepdim=True), min=0.0)
    scale = (hi - lo) / 255.0
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    zero = torch.clamp(torch.round(-lo / scale), 0, 255)
    q = torch.clamp(torch.round(x / scale) + zero, 0, 255)
    return (q - zero) * scale


def quant_act_s8(x):
    scale = x.abs().amax(dim=-1, keepdim=True) / 127.0
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    return torch.clamp(torch.round(x / scale), -127, 127) * scale


class FakeQuantLinear(nn.Module):
    def __init__(self, lin, wq, act):
        super().__init__()
        w = lin.weight.detach().clone().float()
        self.weight = nn.Parameter(quant_weight_rows(w) if wq else w, requires_grad=False)
        self.bias = None if lin.bias is None else nn.Parameter(lin.bias.detach().clone(), requires_grad=False)
        self.act = act

    def forward(self, x):
        if self.act == "u8":
            x = quant_act_u8(x)
        elif self.act == "s8":
            x = quant_act_s8(x)
        return nn.functional.linear(x, self.weight, self.bias)


def fake_quantize(model, variant):
    """Returns a deep copy with every decoder-layer Linear and the lm_head replaced (head gets its own copy)."""
    if variant == "f32":
        return model
    wq = variant.startswith("w8")
    act = {"w8": None, "a8u": "u8", "w8a8u": "u8", "w8a8s": "s8"}[variant]
    m = copy.deepcopy(model)
    replaced = 0
    for layer in m.model.layers:
        for parent, names in [(layer.self_attn, ["q_proj", "k_proj", "v_proj", "o_proj"]),
                              (layer.mlp, ["gate_proj", "up_proj", "down_proj"])]:
            for name in names:
                setattr(parent, name, FakeQuantLinear(getattr(parent, name), wq, act))
                replaced += 1
    # lm_head: tied to embed_tokens; FakeQuantLinear copies the weight, so the embedding stays float32
    m.lm_head = FakeQuantLinear(m.lm_head, wq, act)
    assert replaced == 7 * len(m.model.layers)
    assert not torch.equal(m.lm_head.weight, m.model.embed_tokens.weight) or not wq
    assert m.lm_head.weight.data_ptr() != m.model.embed_tokens.weight.data_ptr()
    m.eval()
    return m


# ----------------------------------------------------------------------------------------------- plan
def apply_plan(model, plan):
    m = copy.deepcopy(model)
    layers = plan["layers"]
    assert len(layers) == len(m.model.layers)
    nkv = m.config.num_key_value_heads
    for layer, p in zip(m.model.layers, layers):
        assert p["attention"] and p["mlp"], "only plans keeping every attention block and MLP are handled"
        assert sorted(p["kept_kv_groups"]) == list(range(nkv)), "KV-group pruning not handled here"
        idx = torch.tensor(p["kept_channels"], dtype=torch.long)
        mlp = layer.mlp
        for name in ["gate_proj", "up_proj"]:
            old = getattr(mlp, name)
            new = nn.Linear(old.in_features, len(idx), bias=False)
            new.weight = nn.Parameter(old.weight.detach()[idx].clone(), requires_grad=False)
            setattr(mlp, name, new)
        old = mlp.down_proj
        new = nn.Linear(len(idx), old.out_features, bias=False)
        new.weight = nn.Parameter(old.weight.detach()[:, idx].clone(), requires_grad=False)
        mlp.down_proj = new
    m.eval()
    return m


# ----------------------------------------------------------------------------------------------- scoring
@torch.no_grad()
def token_nlls(model, x):
    """x [n, W] long -> per-token NLL [n, W-1] float64 numpy."""
    out = []
    for b in range(0, x.shape[0], BATCH):
        xb = x[b:b + BATCH]
        lg = model(xb).logits.double()
        lp = torch.log_softmax(lg[:, :-1], dim=-1)
        out.append((-lp.gather(-1, xb[:, 1:, None]).squeeze(-1)).numpy())
    return np.concatenate(out, 0)


def summarize(win_q, win_f):
    rel = (np.asarray(win_q) - np.asarray(win_f)) / np.asarray(win_f)
    a = np.abs(rel)
    i = int(np.argmax(a))
    return {"mean_nll": float(np.mean(win_q)), "mean_nll_f32": float(np.mean(win_f)),
            "mean_rel": float(np.mean(rel)), "mean_abs_rel": float(np.mean(a)),
            "max_abs_rel": float(a[i]), "max_abs_rel_window": i, "rel_at_max": float(rel[i]),
            "windows_abs_rel_gt_1pct": int(np.sum(a > 0.01)),
            "top3_abs_rel": [[int(k), float(rel[k])] for k in np.argsort(-a)[:3]],
            "windows_gt_1pct": [int(k) for k in np.nonzero(a > 0.01)[0]],
            "rel": [float(v) for v in rel]}


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_w8a8_reference.py PLAN.json")
    plan_path = sys.argv[1]
    torch.set_num_threads(1)
    from transformers import AutoModelForCausalLM
    tok, text, ids = wikitext_ids()
    n_total = len(ids) // W
    x = torch.tensor(ids[:N_WIN * W], dtype=torch.long).view(N_WIN, W)
    res = {"about": __doc__.split("How to run")[0].strip(),
           "torch": torch.__version__, "n_chars": len(text), "n_tokens": len(ids), "n_windows_total": n_total,
           "window": W, "n_windows": N_WIN, "first20_ids": ids[:20], "plan": os.path.basename(plan_path)}
    fx = json.load(open(FIXTURE)) if os.path.exists(FIXTURE) else None
    if fx is not None:
        res["fixture_check"] = {"n_tokens_equal": fx["n_tokens"] == len(ids),
                                "first20_equal": fx["first20_ids"] == ids[:20]}
        import hashlib
        sha = hashlib.sha256(",".join(str(int(i)) for i in ids).encode("ascii")).hexdigest()
        res["fixture_check"]["sha256_ids_equal"] = sha == fx["sha256_ids"]
        print("fixture token checks:", res["fixture_check"], flush=True)

    base = AutoModelForCausalLM.from_pretrained(os.path.dirname(GGUF), gguf_file=os.path.basename(GGUF),
                                                dtype=torch.float32, attn_implementation="sdpa")
    base.eval()
    plan = json.load(open(plan_path))
    models = {"dense": base, "plan": apply_plan(base, plan)}
    res["plan_kept_channels"] = [p["kept_channels"] for p in plan["layers"]]

    tok_nll = {}
    res["window_nll"] = {}
    res["summary"] = {}
    for mname, model in models.items():
        res["window_nll"][mname] = {}
        res["summary"][mname] = {}
        for v in VARIANTS:
            t0 = time.time()
            qm = fake_quantize(model, v)
            t = token_nlls(qm, x)
            del qm
            tok_nll[f"{mname}__{v}"] = t
            wm = t.mean(1)
            res["window_nll"][mname][v] = [float(a) for a in wm]
            line = f"{mname:5s} {v:6s} mean window NLL {np.mean(wm):.9f}  ({time.time() - t0:.0f}s)"
            if v != "f32":
                s = summarize(wm, res["window_nll"][mname]["f32"])
                res["summary"][mname][v] = s
                line += (f"  mean rel {s['mean_rel']:+.5f} mean|rel| {s['mean_abs_rel']:.5f} max|rel| "
                         f"{s['max_abs_rel']:.5f} (w{s['max_abs_rel_window']}) >1%: {s['windows_abs_rel_gt_1pct']}")
            print(line, flush=True)
        res["summary"][mname]["f32_mean_window_nll"] = float(np.mean(res["window_nll"][mname]["f32"]))

    # f32 sanity check against the perplexity fixture's first windows (same tokens, an independent transformers run)
    f32d = np.asarray(res["window_nll"]["dense"]["f32"])
    chk = {"dense_f32_mean": float(f32d.mean()), "plan_f32_mean": float(np.mean(res["window_nll"]["plan"]["f32"]))}
    if fx is not None and "first64" in fx:
        fw = np.asarray(fx["first64"]["window_mean_nll"])
        chk["fixture_first64_mean"] = fx["first64"]["mean_of_window_mean_nll"]
        chk["max_abs_window_diff_vs_fixture"] = float(np.max(np.abs(f32d - fw)))
    res["f32_checks"] = chk
    print("f32 checks:", chk, flush=True)

    # worst plan window under w8a8u: 5 tokens whose NLL moved most
    s = res["summary"]["plan"]["w8a8u"]
    wi = s["max_abs_rel_window"]
    tf, tq = tok_nll["plan__f32"][wi], tok_nll["plan__w8a8u"][wi]
    d = tq - tf
    order = np.argsort(-np.abs(d))[:5]
    wids = x[wi].tolist()
    detail = []
    for j in order:
        pos = int(j) + 1  # index of the predicted token inside the window (1..127)
        detail.append({"position_in_window": pos, "global_token_index": wi * W + pos, "token_id": wids[pos],
                       "token_text": tok.decode([wids[pos]]), "context_prev_text": tok.decode(wids[max(0, pos - 8):pos]),
                       "nll_f32": float(tf[j]), "nll_w8a8u": float(tq[j]), "delta": float(d[j])})
    res["worst_window_plan_w8a8u"] = {
        "window": wi, "window_nll_f32": float(tf.mean()), "window_nll_w8a8u": float(tq.mean()),
        "rel": s["rel_at_max"], "sum_delta_all_tokens": float(d.sum()),
        "sum_delta_top5": float(sum(e["delta"] for e in detail)), "top5_tokens": detail}
    print(json.dumps(res["worst_window_plan_w8a8u"], indent=1, ensure_ascii=False), flush=True)

    with open(OUT + ".tmp", "w", encoding="utf-8") as f:
        json.dump(res, f, indent=1, ensure_ascii=False)
    os.replace(OUT + ".tmp", OUT)
    print("wrote", OUT, flush=True)


if __name__ == "__main__":
    main()
