"""A GGUF with a real architecture's exact shapes, a real vocabulary and seeded random weights.

For memory and speed measurements of models larger than the ones in ../shared/models (the weights are random,
so perplexities mean nothing; shapes, tensor types, tokenizer and file layout are those of the real model).
Needs gguf-py (PyPI `gguf`, 0.19 here) and numpy:

    python scripts/make-synthetic-gguf.py --preset qwen2.5-1.5b \
        --vocab ../shared/fixtures/tokenizers/ggml-vocab-qwen2.gguf --type q8_0 --out /tmp/qwen2.5-1.5b-synthetic.gguf

The vocabulary file is one of llama.cpp's vocab-only GGUFs (../shared/fixtures/tokenizers); its tokenizer.* keys
are copied as they are. Weights are N(0, 0.02) from numpy's PCG64 with --seed; norms are 1, biases 0.
"""
import argparse
import numpy as np
import gguf

# Hyperparameters of the released models (their config.json files on Hugging Face).
PRESETS = {
    "qwen2.5-0.5b": dict(arch="qwen2", hidden=896, ffn=4864, layers=24, heads=14, kv_heads=2, tied=True,
                         theta=1e6, eps=1e-6, context=32768, bias=True),
    "qwen2.5-1.5b": dict(arch="qwen2", hidden=1536, ffn=8960, layers=28, heads=12, kv_heads=2, tied=True,
                         theta=1e6, eps=1e-6, context=32768, bias=True),
    "qwen2.5-3b": dict(arch="qwen2", hidden=2048, ffn=11008, layers=36, heads=16, kv_heads=2, tied=True,
                       theta=1e6, eps=1e-6, context=32768, bias=True),
}
TYPES = {"f32": gguf.GGMLQuantizationType.F32, "f16": gguf.GGMLQuantizationType.F16,
         "q8_0": gguf.GGMLQuantizationType.Q8_0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", choices=sorted(PRESETS), required=True)
    ap.add_argument("--vocab", required=True, help="a vocab-only GGUF whose tokenizer.* keys are copied")
    ap.add_argument("--type", choices=sorted(TYPES), default="q8_0", help="type of the 2-D weights")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    p = PRESETS[a.preset]
    arch = p["arch"]
    vocab = gguf.GGUFReader(a.vocab)
    n_vocab = len(vocab.fields["tokenizer.ggml.tokens"].data)

    w = gguf.GGUFWriter(a.out, arch)
    w.add_name(f"{a.preset} (synthetic: random weights, real shapes)")
    w.add_block_count(p["layers"])
    w.add_context_length(p["context"])
    w.add_embedding_length(p["hidden"])
    w.add_feed_forward_length(p["ffn"])
    w.add_head_count(p["heads"])
    w.add_head_count_kv(p["kv_heads"])
    w.add_rope_freq_base(p["theta"])
    w.add_layer_norm_rms_eps(p["eps"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0 if a.type == "q8_0" else
                    gguf.LlamaFileType.MOSTLY_F16 if a.type == "f16" else gguf.LlamaFileType.ALL_F32)
    for key, field in vocab.fields.items():
        if not key.startswith("tokenizer."):
            continue
        vtype = field.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            sub = field.types[1]
            if sub == gguf.GGUFValueType.STRING:
                vals = [bytes(field.parts[i]).decode("utf-8", errors="surrogateescape") for i in field.data]
            else:
                vals = [field.parts[i][0].item() for i in field.data]
            w.add_array(key, vals)
        elif vtype == gguf.GGUFValueType.STRING:
            w.add_string(key, bytes(field.parts[field.data[0]]).decode("utf-8"))
        else:
            w.add_key_value(key, field.parts[field.data[0]][0].item(), vtype)

    rng = np.random.Generator(np.random.PCG64(a.seed))
    qtype = TYPES[a.type]

    def matrix(name, rows, cols):
        x = (rng.standard_normal((rows, cols), dtype=np.float32) * 0.02).astype(np.float32)
        if qtype == gguf.GGMLQuantizationType.F32:
            w.add_tensor(name, x)
        elif qtype == gguf.GGMLQuantizationType.F16:
            w.add_tensor(name, x.astype(np.float16))
        else:
            w.add_tensor(name, gguf.quants.quantize(x, qtype), raw_dtype=qtype)

    def vector(name, n, value):
        w.add_tensor(name, np.full((n,), value, dtype=np.float32))

    h, f, hd = p["hidden"], p["ffn"], p["hidden"] // p["heads"]
    kv = p["kv_heads"] * hd
    matrix("token_embd.weight", n_vocab, h)
    vector("output_norm.weight", h, 1.0)
    if not p["tied"]:
        matrix("output.weight", n_vocab, h)
    for i in range(p["layers"]):
        b = f"blk.{i}."
        vector(b + "attn_norm.weight", h, 1.0)
        matrix(b + "attn_q.weight", h, h)
        matrix(b + "attn_k.weight", kv, h)
        matrix(b + "attn_v.weight", kv, h)
        if p["bias"]:
            vector(b + "attn_q.bias", h, 0.0)
            vector(b + "attn_k.bias", kv, 0.0)
            vector(b + "attn_v.bias", kv, 0.0)
        matrix(b + "attn_output.weight", h, h)
        vector(b + "ffn_norm.weight", h, 1.0)
        matrix(b + "ffn_gate.weight", f, h)
        matrix(b + "ffn_up.weight", f, h)
        matrix(b + "ffn_down.weight", h, f)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
