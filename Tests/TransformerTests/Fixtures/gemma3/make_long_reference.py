# Golden values of Gemma 3 270M (the GGUF that ../../../../shared/models/gemma3-270m/fetch.sh assembles) on one
# 640-token sequence: longer than the 512-token sliding window, so positions from 512 on see fewer keys on the
# local layers than on the global ones. The short prompts of shared/fixtures/families/gemma3-270m never reach
# the window. transformers dequantizes the GGUF to F32 and runs eager attention in F32, as make_reference.py does.
# Run in a venv with torch, transformers (5.24 here) and gguf:
#   python make_long_reference.py DIR_WITH_GGUF > long_reference.json
# The ids are BOS followed by a fixed pseudo-random walk over ordinary vocabulary (no special tokens), so the
# file needs no tokenizer and no text corpus: id[i] = 1000 + (i * 7919 + (i * i) % 104729) % 200000.
import torch, json, sys
from transformers import AutoModelForCausalLM
import transformers
d, f = sys.argv[1], "gemma-3-270m-q4_k_m.gguf"
m = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32, attn_implementation="eager").eval()
n = 640
ids = [2] + [1000 + (i * 7919 + (i * i) % 104729) % 200000 for i in range(1, n)]
with torch.no_grad():
    logits = m(torch.tensor([ids])).logits[0].double()
positions = [100, 511, 512, 575, 639]
out = {"model": f, "sha256": "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
       "made_with": f"torch {torch.__version__}, transformers {transformers.__version__}, F32 eager attention",
       "ids": ids, "positions": []}
for p in positions:
    top = torch.topk(logits[p], 10)
    out["positions"].append({"position": p, "top10_ids": top.indices.tolist(), "top10_logits": top.values.tolist(),
                             "logsumexp": torch.logsumexp(logits[p], -1).item()})
json.dump(out, sys.stdout, indent=1)
