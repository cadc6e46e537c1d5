"""Tiny seeded random models of each supported family, built with transformers, and their reference logits.

Run with a Python that has torch, transformers and sentencepiece (the project used torch 2.13 CPU, transformers
5.24, sentencepiece 0.2):

    python make_families.py [--llama-cpp DIR] [FAMILY ...]

For each family named (default: all of llama3 with llama3 RoPE scaling, qwen2, qwen3, mistral, phi3 with a sliding
window, phi3-longrope, gemma3) it writes `<family>/`:
  - `config.json`, `model.safetensors` (float32 weights, ~0.2 MB),
  - `tokenizer.model`: a 320-piece SentencePiece BPE model trained here on a fixed text. The Swift tests never
    tokenize; it exists only because llama.cpp's `convert_hf_to_gguf.py` refuses a folder without a vocabulary,
  - `reference.json`: the fixed token ids and transformers' float32 logits [tokens, vocab] for them; a family with
    `PREFIXES` also has `prefix_logits`: for each prefix length, the logits of that many first tokens run alone.
With `--llama-cpp DIR` (a llama.cpp source tree: `convert_hf_to_gguf.py` and `gguf-py/`) it also converts each
folder with llama.cpp's own converter to `<family>.gguf` (float32) beside the folders.
"""
import argparse, json, os, subprocess, sys
from pathlib import Path

import torch
import transformers
import sentencepiece as spm

HERE = Path(__file__).resolve().parent
VOCAB = 320
TOKENS = [1, 17, 250, 3, 99, 310, 42, 42, 7, 128, 64, 200, 5, 319, 11, 77, 150, 2, 33, 260, 90, 180, 12, 300]

COMMON = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
              num_key_value_heads=2, vocab_size=VOCAB, rms_norm_eps=1e-6, hidden_act="silu")

FAMILIES = {
    # Llama 3.x: llama3 RoPE scaling with original_max_position_embeddings 32 and factor 4, so the wavelengths
    # of head width 16 at theta 10000 fall in all three bands (kept, scaled, smoothed).
    "llama3": (transformers.LlamaConfig, dict(
        COMMON, max_position_embeddings=128, tie_word_embeddings=False,
        rope_parameters=dict(rope_type="llama3", rope_theta=10000.0, factor=4.0, low_freq_factor=1.0,
                             high_freq_factor=4.0, original_max_position_embeddings=32))),
    # Qwen2/Qwen2.5: q/k/v biases, tied embeddings (as the small Qwen2.5 models), theta 1e6.
    "qwen2": (transformers.Qwen2Config, dict(
        COMMON, max_position_embeddings=128, tie_word_embeddings=True,
        rope_parameters=dict(rope_type="default", rope_theta=1000000.0), use_sliding_window=False)),
    # Qwen3: per-head q/k RMSNorm, no biases, head_dim 32 independent of hidden / heads (64 / 4 = 16).
    "qwen3": (transformers.Qwen3Config, dict(
        COMMON, head_dim=32, max_position_embeddings=128, tie_word_embeddings=True, attention_bias=False,
        rope_parameters=dict(rope_type="default", rope_theta=1000000.0), use_sliding_window=False)),
    # Mistral: plain llama layout; sliding_window null as in Mistral 7B v0.2+.
    "mistral": (transformers.MistralConfig, dict(
        COMMON, max_position_embeddings=128, tie_word_embeddings=False, sliding_window=None,
        rope_parameters=dict(rope_type="default", rope_theta=10000.0))),
    # Phi-3: fused qkv_proj and gate_up_proj, default RoPE, and a sliding window of 8 keys (transformers applies
    # `sliding_window` to every layer, eager and sdpa alike: key j is seen from query i when j > i - 8), shorter
    # than the 24 test tokens so the window hides keys. Phi-3-mini-4k has 2047 against a 4096 context.
    "phi3": (transformers.Phi3Config, dict(
        COMMON, max_position_embeddings=128, original_max_position_embeddings=128, tie_word_embeddings=False,
        sliding_window=8, rope_parameters=dict(rope_type="default", rope_theta=10000.0),
        bos_token_id=1, eos_token_id=2, pad_token_id=None)),
    # Phi-3 128k / Phi-3.5 style LongRoPE: per-frequency short and long divisors and the attention factor
    # sqrt(1 + ln(64 / 16) / ln 16) on cos and sin. transformers uses the long factors when a call's positions pass
    # original_max_position_embeddings (16): the 24 tokens do, the 16-token prefix does not. Tied embeddings as in
    # Phi-4-mini; no sliding window.
    "phi3-longrope": (transformers.Phi3Config, dict(
        COMMON, max_position_embeddings=64, original_max_position_embeddings=16, tie_word_embeddings=True,
        sliding_window=None, bos_token_id=1, eos_token_id=2, pad_token_id=None,
        rope_parameters=dict(rope_type="longrope", rope_theta=10000.0,
                             short_factor=[1.0, 1.1, 1.3, 1.6, 2.0, 2.5, 3.1, 3.8],
                             long_factor=[1.0, 1.9, 3.6, 6.8, 13.0, 24.0, 45.0, 85.0]))),
    # Gemma 3 (text): six layers so the default pattern (`sliding_window_pattern` 6, the one llama.cpp's gemma3
    # assumes) gives five sliding-window layers (window 8 < the 24 test tokens, RoPE base 10,000) and one global
    # (base 1e6); head_dim 32 with 4 heads (q width 128 ≠ hidden 64, as the 270M's 1024 ≠ 640), 2 KV heads, per-head
    # q/k norms, post-sublayer norms, GELU-tanh, embeddings × sqrt(64), tied head. query_pre_attn_scalar equals
    # head_dim as in every Gemma 3 but the 27B (llama.cpp derives the scale from the head width).
    "gemma3": (transformers.Gemma3TextConfig, dict(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=6, num_attention_heads=4,
        num_key_value_heads=2, head_dim=32, rms_norm_eps=1e-6, hidden_activation="gelu_pytorch_tanh",
        query_pre_attn_scalar=32, sliding_window=8, max_position_embeddings=128, tie_word_embeddings=True,
        rope_parameters=dict(full_attention=dict(rope_type="default", rope_theta=1000000.0),
                             sliding_attention=dict(rope_type="default", rope_theta=10000.0)),
        bos_token_id=1, eos_token_id=2, pad_token_id=0)),
}

# Where random norm weights are centred: Gemma's RMSNorm multiplies by (1 + weight), so its weights centre on 0.
NORM_CENTRE = {"gemma3": 0.0}

# Prefix lengths whose logits are stored as well (a prefix is run on its own, not sliced from the full run).
PREFIXES = {"phi3-longrope": [16]}

MODEL_CLASSES = {"llama3": transformers.LlamaForCausalLM, "qwen2": transformers.Qwen2ForCausalLM,
                 "qwen3": transformers.Qwen3ForCausalLM, "mistral": transformers.MistralForCausalLM,
                 "phi3": transformers.Phi3ForCausalLM, "phi3-longrope": transformers.Phi3ForCausalLM,
                 "gemma3": transformers.Gemma3ForCausalLM}


def train_tokenizer(path: Path, extra=()):
    """A 320-piece SentencePiece BPE model (byte fallback), trained on a fixed text, written to `path`; `extra`:
    user-defined symbols (phi3: `<|endoftext|>`, which llama.cpp's vocabulary loader looks up in any model whose
    name says Phi-3, failing with `unordered_map::at` without it)."""
    words = ("the model prunes heads and channels of a small language model by policy gradient "
             "qwen llama mistral rope scaling bias norm tiny seeded random weights reference logits").split()
    lines = [" ".join(words[(i * 7 + j) % len(words)] for j in range(12)) for i in range(400)]
    text = path.with_suffix(".txt")
    text.write_text("\n".join(lines))
    spm.SentencePieceTrainer.train(input=str(text), model_prefix=str(path.with_suffix("")), vocab_size=VOCAB,
                                   model_type="bpe", byte_fallback=True, character_coverage=1.0,
                                   bos_id=1, eos_id=2, unk_id=0, pad_id=-1, minloglevel=2,
                                   normalization_rule_name="identity", user_defined_symbols=list(extra))
    text.unlink()
    path.with_suffix(".vocab").unlink()


def build(name: str):
    config_class, kwargs = FAMILIES[name]
    config = config_class(**kwargs)
    torch.manual_seed(1234)
    model = MODEL_CLASSES[name](config).to(torch.float32).eval()
    with torch.no_grad():
        # Random norms and biases (transformers initialises them to 1, or Gemma's to 0, and 0), so a misplaced one
        # shows.
        for pname, p in model.named_parameters():
            if pname.endswith("norm.weight"):
                p.copy_(NORM_CENTRE.get(name, 1.0) + 0.2 * torch.randn_like(p))
            elif pname.endswith(".bias"):
                p.copy_(0.5 * torch.randn_like(p))
        logits = model(torch.tensor([TOKENS])).logits[0].to(torch.float32)
        prefixes = {str(n): model(torch.tensor([TOKENS[:n]])).logits[0].to(torch.float32) for n in PREFIXES.get(name, [])}
    out = HERE / name
    out.mkdir(exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    for extra in ("generation_config.json",):
        (out / extra).unlink(missing_ok=True)
    train_tokenizer(out / "tokenizer.model", ["<|endoftext|>"] if name.startswith("phi3") else [])
    reference = {"tokens": TOKENS, "vocab": VOCAB, "transformers": transformers.__version__, "torch": torch.__version__,
                 "logits": [round(float(v), 7) for v in logits.flatten()]}
    if prefixes:
        reference["prefix_logits"] = {n: [round(float(v), 7) for v in p.flatten()] for n, p in prefixes.items()}
    (out / "reference.json").write_text(json.dumps(reference))
    print(name, "max |logit|", float(logits.abs().max()))


def convert(name: str, llama_cpp: Path):
    env = dict(os.environ, PYTHONPATH=str(llama_cpp / "gguf-py"))
    subprocess.run([sys.executable, str(llama_cpp / "convert_hf_to_gguf.py"), str(HERE / name),
                    "--outtype", "f32", "--outfile", str(HERE / f"{name}.gguf")], check=True, env=env)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--llama-cpp", type=Path, help="llama.cpp source tree, to convert each folder to GGUF")
    parser.add_argument("families", nargs="*", help="families to build (default: all)")
    args = parser.parse_args()
    unknown = [name for name in args.families if name not in FAMILIES]
    if unknown:
        parser.error(f"unknown families {unknown}; known: {list(FAMILIES)}")
    for name in args.families or FAMILIES:
        build(name)
        if args.llama_cpp:
            convert(name, args.llama_cpp)
