#!/usr/bin/env python3
"""PyTorch + PEFT side of benches/lora.rs: LoRA training tokens/s on the same GPT-2-shaped model,
batch, sequence length and thread count. Prints one JSON line. Versions: scripts/requirements-fixtures.txt.

    python benches/lora_peft.py --threads 2 --layers 4 --embd 256 --vocab 4096 --batch 8 --seq 256 --steps 10
"""

import argparse
import json
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import GPT2Config, GPT2LMHeadModel


def main():
    ap = argparse.ArgumentParser()
    for name, default in [("threads", 2), ("layers", 4), ("embd", 256), ("heads", 4), ("vocab", 4096), ("batch", 8), ("seq", 256), ("steps", 10), ("warmup", 2), ("r", 16)]:
        ap.add_argument(f"--{name}", type=int, default=default)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=a.vocab, n_positions=max(512, a.seq), n_embd=a.embd, n_layer=a.layers, n_head=a.heads,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = get_peft_model(GPT2LMHeadModel(config), LoraConfig(r=a.r, lora_alpha=2 * a.r, lora_dropout=0.0,
                                                                target_modules=["c_attn", "c_proj", "c_fc"], fan_in_fan_out=True))
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    ids = torch.randint(0, a.vocab, (a.batch, a.seq))
    labels = ids.clone()
    labels[:, : a.seq // 4] = -100
    def step():
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        opt.step()
        opt.zero_grad()
    for _ in range(a.warmup):
        step()
    start = time.perf_counter()
    for _ in range(a.steps):
        step()
    seconds = time.perf_counter() - start
    print(json.dumps({"impl": f"torch {torch.__version__} + peft", "threads": a.threads,
                      "tokens_per_s": a.batch * a.seq * a.steps / seconds, "seconds_per_step": seconds / a.steps}))


if __name__ == "__main__":
    main()
