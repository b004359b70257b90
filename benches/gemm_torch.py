"""torch.matmul f32 GFLOP/s on the shapes apitune's benches calibrate with (see benches/support/host.rs).

Prints one number per shape, in order: the best of five runs after one warm-up.

    python benches/gemm_torch.py --threads 2 --shapes 1024x1024x1024,2048x256x768
"""

import argparse
import time

import torch


def gflops(m: int, k: int, n: int) -> float:
    a = torch.arange(m * k, dtype=torch.float32).remainder(97).mul(0.01).reshape(m, k)
    b = torch.arange(k * n, dtype=torch.float32).remainder(97).mul(0.01).reshape(k, n)
    best = float("inf")
    for run in range(6):
        started = time.perf_counter()
        torch.matmul(a, b)
        seconds = time.perf_counter() - started
        if run > 0:
            best = min(best, seconds)
    return 2.0 * m * k * n / best / 1e9


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--shapes", required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shapes = [tuple(int(x) for x in s.split("x")) for s in args.shapes.split(",")]
    print(" ".join(f"{gflops(*shape):.1f}" for shape in shapes))


if __name__ == "__main__":
    main()
