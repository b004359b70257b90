#!/usr/bin/env python3
"""PyTorch + PEFT side of benches/lora.rs: LoRA training tokens/s on the same model config, batch,
sequence length and thread count. Prints one JSON line. Versions: scripts/requirements-fixtures.txt.

    python benches/lora_peft.py --config '{"model_type": "gpt2", ...}' --targets c_attn,c_proj,c_fc \
        --threads 2 --batch 8 --seq 256 --steps 10
"""

import argparse
import json
import statistics
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoConfig, AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True, help="the model's config.json, as a JSON string")
    ap.add_argument("--targets", required=True)
    for name, default in [("threads", 2), ("batch", 8), ("seq", 256), ("steps", 10), ("warmup", 2), ("r", 16)]:
        ap.add_argument(f"--{name}", type=int, default=default)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", help="dtype of the frozen base (LoRA factors stay f32)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    fields = json.loads(a.config)
    model_type = fields.pop("model_type")
    # No dropout anywhere, as on the Rust side.
    fields.update({k: 0.0 for k in ["resid_pdrop", "embd_pdrop", "attn_pdrop", "attention_dropout"]})
    config = AutoConfig.for_model(model_type, **fields)
    device = torch.device(a.device)
    dtype = getattr(torch, a.dtype)
    with device:  # initialise in place: a 1.5B model is slow to initialise on the host
        base = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation="sdpa")
    model = get_peft_model(base, LoraConfig(r=a.r, lora_alpha=2 * a.r, lora_dropout=0.0, target_modules=a.targets.split(","),
                                            fan_in_fan_out=model_type == "gpt2"))
    for p in model.parameters():
        if p.requires_grad:
            p.data = p.data.float()
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-4)
    ids = torch.randint(0, config.vocab_size, (a.batch, a.seq), device=device)
    labels = ids.clone()
    labels[:, : a.seq // 4] = -100

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def step():
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        opt.zero_grad()
        return loss.item()  # read back, as the Rust side does every step

    for _ in range(a.warmup):
        step()
    times = []
    for _ in range(a.steps):
        sync()
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    print(json.dumps({"impl": f"torch {torch.__version__} + peft ({a.device})", "base_dtype": a.dtype, "threads": a.threads,
                      "trainable_params": sum(p.numel() for p in trainable),
                      "tokens_per_s": a.batch * a.seq / seconds, "seconds_per_step": seconds}))


if __name__ == "__main__":
    main()
