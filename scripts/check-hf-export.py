#!/usr/bin/env python3
"""Checks an `hf` export of a GGUF model with Hugging Face transformers (issue 14 item 3): AutoTokenizer loads the
folder and gives the GGUF tokenizer's ids, and AutoModelForCausalLM loads it (and, given our logits, matches them).

Setup, once (outside the repo; transformers + tokenizers are enough without --model checks; torch is the CPU wheel):
    python3 -m venv /work/venv-tf && /work/venv-tf/bin/pip install "torch==2.13.0+cpu" transformers tokenizers

1. From the Swift suite, which exports SmolLM2 and the tokenizers of the llama.cpp vocab fixtures, writes a
   manifest with the GGUF tokenizer's ids (and our logits) and runs this script on it:
    POLICYPRUNE_TRANSFORMERS_PYTHON=/work/venv-tf/bin/python \\
      swift test -c release -Xswiftc -enable-testing --skip-build --filter HuggingFaceReferenceTests
2. By hand, on a folder written by `policyprune export --format hf`, the GGUF ids coming from `policyprune tokenize`:
    .build/release/policyprune export --model ../shared/models/smollm2-135m-instruct-q4_1/SmolLM2-135M-Instruct.Q4_1.gguf \\
      --format hf --dtype f16 --out /tmp/smol-hf
    /work/venv-tf/bin/python scripts/check-hf-export.py --folder /tmp/smol-hf \\
      --gguf ../shared/models/smollm2-135m-instruct-q4_1/SmolLM2-135M-Instruct.Q4_1.gguf \\
      --policyprune .build/release/policyprune --shared ../shared
3. On a manifest: /work/venv-tf/bin/python scripts/check-hf-export.py --manifest manifest.json

Manifest: {"folders": [{"label", "folder", "cases": [{"name", "text", "ids", "ids_special"?, "ids_parsed"?, "decoded"?}],
"model"?: {"ids": [...], "logits_f32": "raw little-endian float32 file, [len(ids), vocab]"}}]}.
`ids` = no BOS/EOS and special-token text as plain text (llama.cpp add_special=false, parse_special=false, which is
transformers' add_special_tokens=False with split_special_tokens=True); `ids_special` = with the BOS/EOS rule;
`ids_parsed` = special-token text parsed as the special token; `decoded` = our decode of `ids`.
Prints one JSON line per folder and a summary line last; exits 1 when any id differs.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile


def encode(tok, text, add, split):
    return tok(text, add_special_tokens=add, split_special_tokens=split)["input_ids"]


def check_folder(entry):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(entry["folder"])
    result = {"label": entry["label"], "tokenizer_class": type(tok).__name__, "cases": len(entry["cases"])}
    counts = {"ids": 0, "ids_special": 0, "ids_parsed": 0, "decoded": 0}
    totals = {k: 0 for k in counts}
    mismatches = []
    for case in entry["cases"]:
        text = case["text"]
        got = {"ids": lambda: encode(tok, text, False, True), "ids_special": lambda: encode(tok, text, True, True),
               "ids_parsed": lambda: encode(tok, text, False, False),
               "decoded": lambda: tok.decode(case["ids"], clean_up_tokenization_spaces=False)}
        for key in counts:
            if key not in case:
                continue
            totals[key] += 1
            value = got[key]()
            if value == case[key]:
                counts[key] += 1
            elif len(mismatches) < 8:
                mismatches.append({"case": case["name"], "mode": key, "text": text[:80],
                                   "transformers": value[:40] if isinstance(value, list) else value[:80],
                                   "gguf": case[key][:40] if isinstance(case[key], list) else case[key][:80]})
    result["identical"] = {k: f"{counts[k]}/{totals[k]}" for k in counts if totals[k]}
    result["ids_identical"] = all(counts[k] == totals[k] for k in ("ids", "ids_special", "ids_parsed"))
    result["mismatches"] = mismatches
    if "model" in entry:
        import numpy as np
        import torch
        from transformers import AutoModelForCausalLM

        torch.set_num_threads(2)
        model = AutoModelForCausalLM.from_pretrained(entry["folder"], dtype=torch.float32).eval()
        result["model_class"] = type(model).__name__
        ids = entry["model"]["ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].float().numpy()
        if "logits_f32" in entry["model"]:
            ours = np.fromfile(entry["model"]["logits_f32"], dtype="<f4").reshape(logits.shape)
            result["max_abs_logit_diff"] = float(np.abs(logits - ours).max())
            result["max_abs_logit"] = float(np.abs(ours).max())
        nll = torch.nn.functional.cross_entropy(torch.from_numpy(logits[:-1]), torch.tensor(ids[1:]))
        result["mean_nll"] = float(nll)
    return result


def manifest_from_folder(args):
    """Cases for a model folder: the eval texts and every vocab fixture string, GGUF ids from `policyprune tokenize`."""
    texts = []
    for path in sorted(glob.glob(os.path.join(args.shared, "models/eval_texts/*.txt"))):
        texts.append((os.path.basename(path), open(path, encoding="utf-8", newline="").read()))
    separator = "\n__ggml_vocab_test__\n"
    for path in sorted(glob.glob(os.path.join(args.shared, "fixtures/tokenizers/ggml-vocab-*.gguf.inp"))):
        raw = open(path, encoding="utf-8", newline="").read()
        parts = raw.split(separator)
        if raw.endswith(separator):
            parts = parts[:-1]
        name = os.path.basename(path)[len("ggml-vocab-"):-len(".gguf.inp")]
        texts += [(f"{name}#{k}", t) for k, t in enumerate(parts)]
    cases = []
    with tempfile.TemporaryDirectory() as scratch:
        for name, text in texts:
            file = os.path.join(scratch, "text")
            with open(file, "w", encoding="utf-8", newline="") as f:
                f.write(text)
            case = {"name": name, "text": text}
            for key, flags in (("ids", ["--no-special"]), ("ids_special", [])):
                out = subprocess.run([args.policyprune, "tokenize", "--model", args.gguf, "--file", file, "--json"] + flags,
                                     check=True, capture_output=True, text=True).stdout
                case[key] = json.loads(out)["ids"]
            cases.append(case)
    model_ids = cases[0]["ids"][:48]
    return {"folders": [{"label": os.path.basename(args.folder.rstrip("/")), "folder": args.folder, "cases": cases,
                         "model": {"ids": model_ids}}]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--manifest")
    parser.add_argument("--folder")
    parser.add_argument("--gguf")
    parser.add_argument("--policyprune")
    parser.add_argument("--shared", default="../shared")
    args = parser.parse_args()
    if args.manifest:
        manifest = json.load(open(args.manifest, encoding="utf-8"))
    elif args.folder and args.gguf and args.policyprune:
        manifest = manifest_from_folder(args)
    else:
        parser.error("give --manifest, or --folder with --gguf and --policyprune")

    import tokenizers
    import transformers

    results = [check_folder(entry) for entry in manifest["folders"]]
    for r in results:
        print(json.dumps(r, ensure_ascii=False))
    summary = {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
               "folders": len(results), "all_ids_identical": all(r["ids_identical"] for r in results),
               "results": [{k: r.get(k) for k in ("label", "identical", "model_class", "max_abs_logit_diff", "mean_nll") if k in r}
                           for r in results]}
    print(json.dumps(summary, ensure_ascii=False))
    return 0 if summary["all_ids_identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
