#!/usr/bin/env python3
"""Write tiny random Hugging Face checkpoints and their reference outputs for the Rust model tests.

Each fixture directory under tests/fixtures/models/ holds what a real HF model directory holds
(config.json, safetensors weights, tokenizer.json) plus what HF transformers computed on it:

  reference.json         prompts, their token ids, greedy continuations, per-prompt mean loss
  reference.safetensors  logits_<i>: float32 [prompt_len, vocab] for prompt i

The Rust tests compare against these files without Python. Rerun this script only when the fixture
set has to change; its outputs are committed. Versions are pinned in requirements-fixtures.txt.

    python scripts/model_fixtures.py            # writes tests/fixtures/models/
"""

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    GPTBigCodeConfig,
    GPTBigCodeForCausalLM,
    Qwen2Config,
    Qwen2ForCausalLM,
)

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "models"

VOCAB_SIZE = 320
EOS = "<|endoftext|>"
MAX_NEW_TOKENS = 16
# A greedy step whose best two logits are closer than this could flip between two correct
# implementations; such a fixture would test rounding, not the model, so the script refuses it.
MIN_GREEDY_MARGIN = 1e-3

CORPUS = [
    'curl --request GET --url "https://api.example.com/v1/users/{id}" --header "accept: application/json"',
    'curl --request POST --url https://api.example.com/v1/orders --header "content-type: application/json" --data \'{"item": 3}\'',
    'import http.client\nconn = http.client.HTTPSConnection("api.example.com")\nconn.request("GET", "/v1/users/42", headers=headers)',
    'res = conn.getresponse()\ndata = res.read()\nprint(data.decode("utf-8"))',
    'const options = {method: "GET", url: "https://api.example.com/v1/pets", headers: {accept: "application/json"}};',
    'OkHttpClient client = new OkHttpClient();\nRequest request = new Request.Builder().url("https://api.example.com/v1/pets").get().build();',
    'package main\nimport ("fmt"; "net/http")\nfunc main() { req, _ := http.NewRequest("GET", url, nil) }',
    'require "uri"\nrequire "net/http"\nurl = URI("https://api.example.com/v1/pets")\nrequest = Net::HTTP::Get.new(url)',
    "Return the list of pets owned by a user, sorted by name.",
    "Create a new order for the given customer and return its identifier.",
    "Delete the webhook subscription with the given id.",
    "You are an API client code generator. You MUST output ONLY valid code.",
    "### USER REQUEST:\nList all repositories of an organisation\n### OUTPUT:\n",
] * 4

PROMPTS = [
    "curl --request GET --url https://api.example.com/v1/users",
    "### USER REQUEST:\nDelete the webhook",
    "import http.client",
]


def train_tokenizer() -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS, trainer=trainer)
    return tokenizer


def reference_outputs(model, tokenizer: Tokenizer, eos_id: int):
    model.eval()
    logits_by_prompt = {}
    records = []
    with torch.no_grad():
        for i, prompt in enumerate(PROMPTS):
            ids = tokenizer.encode(prompt).ids
            input_ids = torch.tensor([ids])
            out = model(input_ids=input_ids, labels=input_ids)
            logits_by_prompt[f"logits_{i}"] = out.logits[0].float().contiguous()

            generated = model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                do_sample=False,
                max_new_tokens=MAX_NEW_TOKENS,
                eos_token_id=eos_id,
                pad_token_id=eos_id,
                output_scores=True,
                return_dict_in_generate=True,
            )
            new_tokens = generated.sequences[0, len(ids):].tolist()
            margins = []
            for step_scores in generated.scores:
                top2 = torch.topk(step_scores[0].float(), 2).values
                margins.append(float(top2[0] - top2[1]))
            if min(margins) < MIN_GREEDY_MARGIN:
                raise SystemExit(
                    f"greedy margin {min(margins):.2e} < {MIN_GREEDY_MARGIN} for prompt {i}: "
                    "change the seed"
                )
            records.append(
                {
                    "prompt": prompt,
                    "input_ids": ids,
                    "loss": float(out.loss),
                    "greedy_new_tokens": new_tokens,
                    "min_greedy_margin": min(margins),
                }
            )
    return logits_by_prompt, records


def randomize(model) -> None:
    """HF's init leaves biases at 0 and norm weights at 1, which would hide a missing bias or
    norm weight: give every parameter a distinct random value instead."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "ln" in name or "norm" in name:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            else:
                p.copy_(0.1 * torch.randn_like(p))


def write_fixture(name: str, model, tokenizer: Tokenizer, *, save) -> None:
    randomize(model)
    directory = OUT / name
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    eos_id = tokenizer.token_to_id(EOS)
    save(model, directory)
    tokenizer.save(str(directory / "tokenizer.json"))
    logits, records = reference_outputs(model, tokenizer, eos_id)
    save_file(logits, str(directory / "reference.safetensors"))
    reference = {
        "generator": "scripts/model_fixtures.py",
        "model_type": model.config.model_type,
        "eos_token_id": eos_id,
        "max_new_tokens": MAX_NEW_TOKENS,
        "prompts": records,
    }
    (directory / "reference.json").write_text(json.dumps(reference, indent=1) + "\n")
    print(f"{name}: {sum(p.numel() for p in model.parameters())} parameters")


def save_pretrained(**kwargs):
    def save(model, directory):
        model.save_pretrained(directory, **kwargs)

    return save


def save_rounded(dtype, strip_prefix: str):
    """Save weights in `dtype` and make the in-memory model use the same rounded values, so the
    reference outputs are those of the checkpoint as written. Names lose `strip_prefix`, as in
    the original hub GPT-2 checkpoint (`h.0.attn.c_attn.weight`, `wte.weight`)."""

    def save(model, directory):
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(p.to(dtype).float())
        model.config.save_pretrained(directory)
        tensors = {}
        for key, value in model.state_dict().items():
            if key == "lm_head.weight" and model.config.tie_word_embeddings:
                continue
            if key.endswith(".attn.bias") or key.endswith(".attn.masked_bias"):
                continue
            tensors[key.removeprefix(strip_prefix)] = value.to(dtype).contiguous()
        save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})

    return save


def save_bf16_pretrained(model, directory):
    """Round the weights to bf16 and save them as bf16, keeping the model itself (and its f32
    RoPE frequency buffer) in f32, as HF does when it computes rotary tables."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    state = {
        k: v.to(torch.bfloat16)
        for k, v in model.state_dict().items()
        if not (k == "lm_head.weight" and model.config.tie_word_embeddings)
    }
    model.save_pretrained(directory, state_dict=state)
    config_path = directory / "config.json"
    config = json.loads(config_path.read_text())
    config["dtype"] = "bfloat16"
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def main() -> None:
    tokenizer = train_tokenizer()
    eos_id = tokenizer.token_to_id(EOS)
    vocab = tokenizer.get_vocab_size()
    common = dict(vocab_size=vocab, bos_token_id=eos_id, eos_token_id=eos_id, initializer_range=0.1)

    torch.manual_seed(1)
    gpt2 = GPT2Config(
        n_layer=2, n_embd=64, n_head=4, n_inner=128, n_positions=64, **common
    )
    write_fixture(
        "gpt2-tiny",
        GPT2LMHeadModel._from_config(gpt2, attn_implementation="eager"),
        tokenizer,
        save=save_pretrained(),
    )

    torch.manual_seed(2)
    write_fixture(
        "gpt2-tiny-f16",
        GPT2LMHeadModel._from_config(gpt2, attn_implementation="eager"),
        tokenizer,
        save=save_rounded(torch.float16, strip_prefix="transformer."),
    )

    torch.manual_seed(3)
    bigcode = GPTBigCodeConfig(
        n_layer=2, n_embd=64, n_head=4, n_inner=128, n_positions=64, multi_query=True, **common
    )
    write_fixture(
        "bigcode-tiny-sharded",
        GPTBigCodeForCausalLM._from_config(bigcode, attn_implementation="eager"),
        tokenizer,
        save=save_pretrained(max_shard_size="100KB"),
    )

    torch.manual_seed(4)
    qwen2 = Qwen2Config(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=False,
        **common,
    )
    write_fixture(
        "qwen2-tiny",
        Qwen2ForCausalLM._from_config(qwen2, attn_implementation="eager"),
        tokenizer,
        save=save_pretrained(),
    )

    torch.manual_seed(5)
    qwen2_tied = Qwen2Config(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=1,
        max_position_embeddings=64,
        tie_word_embeddings=True,
        **common,
    )
    write_fixture(
        "qwen2-tiny-bf16-tied",
        Qwen2ForCausalLM._from_config(qwen2_tied, attn_implementation="eager"),
        tokenizer,
        save=save_bf16_pretrained,
    )


if __name__ == "__main__":
    main()
