#!/usr/bin/env bash
# The GPU checks of the wgpu build, as one script: the model numerics tests on wgpu (against flex
# and against HF's recorded outputs), the LoRA golden tests against PEFT on wgpu, the generation
# benchmark (apitune on wgpu beside transformers on CUDA) and LoRA training of a
# Qwen2.5-1.5B-shaped model (apitune on wgpu beside PyTorch + PEFT on CUDA).
#
# Build the binaries where cargo works, then run this where the GPU is:
#
#     scripts/gpu_check.sh --build .gpu            # here: release test/bench binaries -> .gpu/,
#                                                  # and .gpu.tar.xz (~43 MB: they share most code)
#     scripts/gpu_check.sh --run .gpu OUT_DIR      # there: needs a Vulkan loader and driver,
#                                                  # and python3 with torch, transformers, peft
#
# The stripped binaries are ~90 MB each (the integration tests, two benches); one xz stream with a dictionary larger than a binary
# stores the shared code once. Unpack there with `xz -dc .gpu.tar.xz | tar xf -`.
#
# The binaries look for tests/fixtures and benches/*.py under the checkout they were built in
# (CARGO_MANIFEST_DIR); `--run` links that path to the current checkout when it is elsewhere.
set -uo pipefail

TESTS=(model_wgpu model_reference model_generate lora_golden)
BENCHES=(generate lora)

build() {
    local dest=$1
    mkdir -p "$dest"
    local args=(--release --features wgpu --no-run --message-format=json-render-diagnostics)
    args+=(--test integration)  # TESTS are modules of the one integration test binary
    for b in "${BENCHES[@]}"; do args+=(--bench "$b"); done
    # `cargo test --no-run` builds the benches too when named; executables come back as JSON.
    cargo test "${args[@]}" | python3 -c '
import json, sys, shutil, os
dest = sys.argv[1]
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("reason") == "compiler-artifact" and msg.get("executable") and msg["target"]["kind"][0] in ("test", "bench"):
        shutil.copy(msg["executable"], os.path.join(dest, msg["target"]["name"]))
        print("built", msg["target"]["name"])
' "$dest" || exit 1
    strip "$dest"/* && ls -la "$dest"
    printf 'manifest_dir=%s\ncommit=%s\n' "$PWD" "$(git rev-parse HEAD 2>/dev/null)" >"$dest/built_in"
    tar cf - "$dest" | xz -T1 --lzma2=preset=6,dict=768MiB >"$dest.tar.xz" && ls -la "$dest.tar.xz"
}

run() {
    local bins=$1 out=$2
    mkdir -p "$out"
    local built_in
    built_in=$(sed -n 's/^manifest_dir=//p' "$bins/built_in")
    if [ "$built_in" != "$PWD" ] && [ ! -e "$built_in" ]; then
        mkdir -p "$(dirname "$built_in")" && ln -s "$PWD" "$built_in"
    fi
    export APITUNE_BENCH_PYTHON=${APITUNE_BENCH_PYTHON:-python3}
    (cat "$bins/built_in"; nvidia-smi -L; ldconfig -p | grep -c libvulkan; uname -m; nproc) 2>&1 | tee "$out/machine.txt"

    # The numerics tests in parallel (tiny models; mostly shader compilation and launch latency).
    local pids=()
    APITUNE_REQUIRE_WGPU=1 timeout 150 "$bins/integration" model_wgpu:: >"$out/model_wgpu.log" 2>&1 &
    pids+=($!)
    for t in model_reference model_generate lora_golden; do
        APITUNE_TEST_BACKEND=wgpu timeout 150 "$bins/integration" "$t::" >"$out/$t.log" 2>&1 &
        pids+=($!)
    done
    local i=0
    for t in "${TESTS[@]}"; do
        wait "${pids[$i]}"
        echo "== test $t: exit $? ($(grep -E '^test result' "$out/$t.log" | tail -1))" | tee -a "$out/summary.txt"
        i=$((i + 1))
    done

    APITUNE_BENCH_BACKEND=wgpu APITUNE_BENCH_BATCHES=1,8,32 timeout 120 "$bins/generate" --bench >"$out/bench_generate.log" 2>&1
    echo "== bench generate: exit $?" | tee -a "$out/summary.txt"
    APITUNE_BENCH_BACKEND=wgpu APITUNE_BENCH_SHAPE=qwen2.5-1.5b APITUNE_BENCH_STEPS=${APITUNE_BENCH_STEPS:-8} \
        timeout 260 "$bins/lora" --bench >"$out/bench_lora.log" 2>&1
    echo "== bench lora: exit $?" | tee -a "$out/summary.txt"
    tail -n 30 "$out"/*.log
}

case "${1:-}" in
    --build) build "${2:?destination folder}" ;;
    --run) run "${2:?binaries folder}" "${3:?output folder}" ;;
    *) sed -n '2,17p' "$0"; exit 2 ;;
esac
