"""Tiny seeded random models of each supported family, built with transformers, and their reference logits.

Run with a Python that has torch, transformers and sentencepiece (the project used torch 2.13 CPU, transformers
5.24, sentencepiece 0.2):

    python make_families.py [--llama-cpp DIR]

For each family (llama3 with llama3 RoPE scaling, qwen2, qwen3, mistral) it writes `<family>/`:
  - `config.json`, `model.safetensors` (float32 weights, ~0.2 MB),
  - `tokenizer.model`: a 320-piece SentencePiece BPE model trained here on a fixed text. The Swift tests never
    tokenize; it exists only because llama.cpp's `convert_hf_to_gguf.py` refuses a folder without a vocabulary,
  - `reference.json`: the fixed token ids and transformers' float32 logits [tokens, vocab] for them.
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
}

MODEL_CLASSES = {"llama3": transformers.LlamaForCausalLM, "qwen2": transformers.Qwen2ForCausalLM,
                 "qwen3": transformers.Qwen3ForCausalLM, "mistral": transformers.MistralForCausalLM}


def train_tokenizer(path: Path):
    """A 320-piece SentencePiece BPE model (byte fallback), trained on a fixed text, written to `path`."""
    words = ("the model prunes heads and channels of a small language model by policy gradient "
             "qwen llama mistral rope scaling bias norm tiny seeded random weights reference logits").split()
    lines = [" ".join(words[(i * 7 + j) % len(words)] for j in range(12)) for i in range(400)]
    text = path.with_suffix(".txt")
    text.write_text("\n".join(lines))
    spm.SentencePieceTrainer.train(input=str(text), model_prefix=str(path.with_suffix("")), vocab_size=VOCAB,
                                   model_type="bpe", byte_fallback=True, character_coverage=1.0,
                                   bos_id=1, eos_id=2, unk_id=0, pad_id=-1, minloglevel=2,
                                   normalization_rule_name="identity")
    text.unlink()
    path.with_suffix(".vocab").unlink()


def build(name: str):
    config_class, kwargs = FAMILIES[name]
    config = config_class(**kwargs)
    torch.manual_seed(1234)
    model = MODEL_CLASSES[name](config).to(torch.float32).eval()
    with torch.no_grad():
        # Random norms and biases (transformers initialises them to 1 and 0), so a misplaced one shows.
        for pname, p in model.named_parameters():
            if pname.endswith("norm.weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif pname.endswith(".bias"):
                p.copy_(0.5 * torch.randn_like(p))
        logits = model(torch.tensor([TOKENS])).logits[0].to(torch.float32)
    out = HERE / name
    out.mkdir(exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    for extra in ("generation_config.json",):
        (out / extra).unlink(missing_ok=True)
    train_tokenizer(out / "tokenizer.model")
    (out / "reference.json").write_text(json.dumps({
        "tokens": TOKENS, "vocab": VOCAB,
        "transformers": transformers.__version__, "torch": torch.__version__,
        "logits": [round(float(v), 7) for v in logits.flatten()]}))
    print(name, "max |logit|", float(logits.abs().max()))


def convert(name: str, llama_cpp: Path):
    env = dict(os.environ, PYTHONPATH=str(llama_cpp / "gguf-py"))
    subprocess.run([sys.executable, str(llama_cpp / "convert_hf_to_gguf.py"), str(HERE / name),
                    "--outtype", "f32", "--outfile", str(HERE / f"{name}.gguf")], check=True, env=env)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--llama-cpp", type=Path, help="llama.cpp source tree, to convert each folder to GGUF")
    args = parser.parse_args()
    for name in FAMILIES:
        build(name)
        if args.llama_cpp:
            convert(name, args.llama_cpp)
