"""PyTorch's F32 forward on the shapes `policyprune bench` times: the same model (a GGUF dequantized to F32 by
transformers, or a Hugging Face folder), `--batch` x `--seq` random token ids, logits and per-token NLL, best of
`--repeats` passes after one warm-up, `--threads` intra-op threads. Prints one JSON object on stdout.

    python scripts/bench_peers_torch.py --model M.gguf --batch 8 --seq 128 --repeats 3 --threads 2
"""
import argparse, json, os, time

import torch
import transformers
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if os.path.isdir(a.model):
        m = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32, attn_implementation="sdpa")
    else:
        d, f = os.path.split(os.path.abspath(a.model))
        m = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32, attn_implementation="sdpa")
    m.eval()
    g = torch.Generator().manual_seed(a.seed)
    ids = torch.randint(0, m.config.vocab_size, (a.batch, a.seq), generator=g)

    def one_pass():
        with torch.inference_mode():
            logits = m(ids, use_cache=False).logits
            nll = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                                    ids[:, 1:].reshape(-1), reduction="none")
            return float(nll.mean())

    one_pass()  # warm-up
    best = float("inf")
    for _ in range(a.repeats):
        t = time.perf_counter()
        one_pass()
        best = min(best, time.perf_counter() - t)
    print(json.dumps({"peer": f"PyTorch {torch.__version__} (transformers {transformers.__version__}, sdpa, F32)",
                      "threads": a.threads, "batch": a.batch, "seq": a.seq, "seconds": best,
                      "tokensPerSecond": a.batch * a.seq / best}))


if __name__ == "__main__":
    main()
