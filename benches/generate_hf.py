#!/usr/bin/env python3
"""HF transformers side of benches/generate.rs: greedy generation speed of a randomly
initialised GPT-2-small-shaped model on the CPU. Prints one JSON object on stdout.

Run by the Rust bench (python from $APITUNE_BENCH_PYTHON); versions pinned in
scripts/requirements-fixtures.txt.
"""

import argparse
import json
import time

import torch
from transformers import GPT2Config, GPT2LMHeadModel


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--prompt-len", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()

    torch.manual_seed(0)
    config = GPT2Config(n_layer=12, n_embd=768, n_head=12, n_positions=1024, vocab_size=50257)
    device = torch.device(args.device)
    model = GPT2LMHeadModel(config).eval().to(device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    results = {}
    for batch in [int(b) for b in args.batches.split(",")]:
        input_ids = torch.randint(0, config.vocab_size, (batch, args.prompt_len)).to(device)
        best = float("inf")
        # On CUDA one untimed warm-up first (context, kernel loading, allocator), as on the Rust side.
        for timed in [False] * (device.type == "cuda") + [True] * args.repeats:
            sync()
            start = time.perf_counter()
            with torch.inference_mode():
                out = model.generate(
                    input_ids=input_ids,
                    attention_mask=torch.ones_like(input_ids),
                    do_sample=False,
                    max_new_tokens=args.new_tokens,
                    min_new_tokens=args.new_tokens,
                    pad_token_id=0,
                    use_cache=True,
                )
            sync()
            if timed:
                best = min(best, time.perf_counter() - start)
            assert out.shape[1] == args.prompt_len + args.new_tokens
        results[str(batch)] = {"seconds": best, "tokens_per_s": batch * args.new_tokens / best}
    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
                "results": results,
            }
        )
    )


if __name__ == "__main__":
    main()
