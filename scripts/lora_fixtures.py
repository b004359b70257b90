#!/usr/bin/env python3
"""Reference numbers from HF PEFT for the Rust LoRA golden tests (tests/integration/lora_golden.rs).

For each tiny fixture model in tests/fixtures/models/ it builds a PEFT LoRA with seeded,
non-zero A and B, and records on a fixed batch (prompt tokens masked out of the loss, the loss a
mean over target tokens):

  loss_before   loss with the adapter
  grad_norms    L2 norm of the gradient of every LoRA tensor after one backward (PEFT key names)
  loss_after    loss after one torch.optim.AdamW step (lr 1e-2, betas 0.9/0.999, eps 1e-8, wd 0)

It writes tests/fixtures/lora/<model>/ (adapter_config.json + adapter_model.safetensors saved by
PEFT, reference.json). Rust loads the adapter PEFT saved and must reproduce the numbers within
1e-4 relative. Pinned versions: scripts/requirements-fixtures.txt.

    python scripts/lora_fixtures.py            # writes tests/fixtures/lora/<model>/ for CASES
    python scripts/lora_fixtures.py --check    # the other direction: loads the adapter apitune
        # wrote (tests/fixtures/lora/apitune-gpt2-tiny/, kept current by tests/integration/lora_golden.rs) in
        # PEFT and compares PEFT's logits with apitune's
"""

import json
import sys
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "tests" / "fixtures" / "models"
OUT = ROOT / "tests" / "fixtures" / "lora"

CASES = {
    "gpt2-tiny": ["c_attn", "c_proj", "c_fc"],
    "bigcode-tiny-sharded": ["c_attn", "c_proj", "c_fc"],
    "qwen2-tiny": ["q_proj", "k_proj", "v_proj", "o_proj"],
}
# Two rows of different lengths (right padding), prompt then target.
ROWS = [
    {"tokens": [5, 17, 42, 7, 99, 3, 64, 12, 8], "target_start": 4},
    {"tokens": [11, 2, 250, 31, 77, 9], "target_start": 2},
]
R, ALPHA, LR = 4, 8, 1e-2


def batch_loss(model):
    width = max(len(r["tokens"]) for r in ROWS)
    ids = torch.zeros((len(ROWS), width), dtype=torch.long)
    mask = torch.zeros((len(ROWS), width), dtype=torch.long)
    labels = torch.full((len(ROWS), width), -100, dtype=torch.long)
    for b, row in enumerate(ROWS):
        n = len(row["tokens"])
        ids[b, :n] = torch.tensor(row["tokens"])
        mask[b, :n] = 1
        labels[b, row["target_start"] : n] = torch.tensor(row["tokens"][row["target_start"] :])
    logits = model(input_ids=ids, attention_mask=mask).logits.float()
    shift_logits = logits[:, :-1].reshape(-1, logits.shape[-1])
    shift_labels = labels[:, 1:].reshape(-1)
    return torch.nn.functional.cross_entropy(shift_logits, shift_labels, ignore_index=-100, reduction="mean")


def main():
    torch.manual_seed(0)
    for name, targets in CASES.items():
        base = AutoModelForCausalLM.from_pretrained(MODELS / name, torch_dtype=torch.float32)
        base.eval()  # no dropout in the base; LoRA dropout is 0
        model = get_peft_model(base, LoraConfig(r=R, lora_alpha=ALPHA, lora_dropout=0.0, target_modules=targets))
        gen = torch.Generator().manual_seed(1234)
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if "lora_" in pname:
                    p.copy_((torch.rand(p.shape, generator=gen) - 0.5) * 0.2)
        out = OUT / name
        out.mkdir(parents=True, exist_ok=True)
        # Keep machine paths out of the committed config; PEFT's model card is not needed.
        model.peft_config["default"].base_model_name_or_path = f"tests/fixtures/models/{name}"
        model.save_pretrained(out)
        (out / "README.md").unlink(missing_ok=True)
        loss = batch_loss(model)
        loss.backward()
        grad_norms = {}
        for pname, p in model.named_parameters():
            if p.requires_grad:
                key = pname.replace(".default", "")
                grad_norms[key] = p.grad.norm().item()
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
        opt.step()
        with torch.no_grad():
            loss_after = batch_loss(model).item()
        ref = {
            "rows": ROWS,
            "r": R,
            "alpha": ALPHA,
            "lr": LR,
            "targets": targets,
            "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "loss_before": loss.item(),
            "grad_norms": grad_norms,
            "loss_after": loss_after,
        }
        (out / "reference.json").write_text(json.dumps(ref, indent=1) + "\n")
        print(name, ref["loss_before"], loss_after, ref["trainable_params"])


def check_apitune_adapter():
    adapter = OUT / "apitune-gpt2-tiny"
    ref = json.loads((adapter / "logits.json").read_text())
    base = AutoModelForCausalLM.from_pretrained(ROOT / ref["base"], torch_dtype=torch.float32)
    with torch.no_grad():
        plain = base(input_ids=torch.tensor([ref["tokens"]])).logits[0].reshape(-1)
    model = PeftModel.from_pretrained(base, adapter)  # injects the adapter into `base` in place
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ref["tokens"]])).logits[0].reshape(-1)
    want = torch.tensor(ref["logits"])
    diff = (logits - want).abs().max().item()
    base_diff = (plain - want).abs().max().item()
    print(f"apitune adapter in PEFT: max |logit diff| {diff:.3e} (without the adapter it would be {base_diff:.3e})")
    if not diff < 1e-4:
        sys.exit("PEFT's logits with apitune's adapter differ from apitune's")


if __name__ == "__main__":
    if "--check" in sys.argv[1:]:
        check_apitune_adapter()
    else:
        main()
