//! What a benchmark number needs beside it to mean anything on another machine: the host it was
//! measured on (a machine stamp: CPU model, vector extensions, cores, caches as the OS reports
//! them) and, for the model benches, a calibration line: the f32 matrix-product speed of each
//! side's kernel on the same shapes, so a ratio can be read against the host.
//!
//! Included by each bench with `#[path = "support/host.rs"] mod host;`.

#![allow(dead_code)]

use std::time::Instant;

/// Matrix-product shapes `[m, k, n]` of the calibration: a square one, and the two shapes of a
/// CPU-sized LoRA step's projections (8 × 256 tokens, d = 256 → 768 and back).
pub const GEMM_SHAPES: [[usize; 3]; 3] = [[1024, 1024, 1024], [2048, 256, 768], [2048, 768, 256]];

/// Vector extensions that decide which kernels a CPU gets, in the order they were introduced.
const FLAGS: [&str; 10] = [
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "amx_tile",
];

/// One line: `machine: MODEL · N logical CPUs · flags … · L1d … L2 … L3 … (as reported)`.
pub fn stamp() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        cpuinfo
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let model = field("model name").unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let flags_line = field("flags").unwrap_or_default();
    let present: Vec<&str> = flags_line.split_whitespace().collect();
    let flags: Vec<&str> = FLAGS
        .iter()
        .copied()
        .filter(|f| present.contains(f))
        .collect();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!(
        "machine: {model} · {cpus} logical CPUs · {} · {} (as the OS reports them)",
        if flags.is_empty() {
            "no x86 vector flags".to_string()
        } else {
            flags.join(" ")
        },
        caches()
    )
}

/// Cache levels of CPU 0 from sysfs: `L1d 32K L1i 32K L2 512K L3 32768K`.
fn caches() -> String {
    let mut out = Vec::new();
    for index in 0..8 {
        let dir = format!("/sys/devices/system/cpu/cpu0/cache/index{index}");
        let read = |f: &str| {
            std::fs::read_to_string(format!("{dir}/{f}"))
                .ok()
                .map(|s| s.trim().to_string())
        };
        let (Some(level), Some(kind), Some(size)) = (read("level"), read("type"), read("size"))
        else {
            break;
        };
        let suffix = match kind.as_str() {
            "Data" => "d",
            "Instruction" => "i",
            _ => "",
        };
        out.push(format!("L{level}{suffix} {size}"));
    }
    if out.is_empty() {
        "caches not reported".into()
    } else {
        out.join(" ")
    }
}

/// f32 GFLOP/s of apitune's matrix product (burn's flex backend, the kernel every CPU run uses)
/// on `[m, k, n]`: the best of five after one warm-up.
pub fn apitune_gemm_gflops([m, k, n]: [usize; 3]) -> f64 {
    use burn::tensor::{Device, Tensor, TensorData};
    let device = Device::flex();
    let values = |len: usize| {
        (0..len)
            .map(|i| ((i % 97) as f32) * 0.01)
            .collect::<Vec<f32>>()
    };
    let a = Tensor::<2>::from_data(TensorData::new(values(m * k), [m, k]), &device);
    let b = Tensor::<2>::from_data(TensorData::new(values(k * n), [k, n]), &device);
    let mut best = f64::INFINITY;
    for run in 0..6 {
        let started = Instant::now();
        let product = a.clone().matmul(b.clone());
        // Reading one value back waits for the product.
        let _ = product.slice([0..1, 0..1]).into_data();
        let seconds = started.elapsed().as_secs_f64();
        if run > 0 {
            best = best.min(seconds);
        }
    }
    2.0 * (m * k * n) as f64 / best / 1e9
}

/// torch.matmul's f32 GFLOP/s on the same shapes and thread count, from `python`
/// (`benches/gemm_torch.py`); `None` when it cannot run.
pub fn torch_gemm_gflops(python: &std::ffi::OsStr, threads: &str) -> Option<Vec<f64>> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/gemm_torch.py");
    let shapes: Vec<String> = GEMM_SHAPES
        .iter()
        .map(|[m, k, n]| format!("{m}x{k}x{n}"))
        .collect();
    let out = std::process::Command::new(python)
        .arg(script)
        .args(["--threads", threads, "--shapes", &shapes.join(",")])
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&out.stderr));
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let values: Vec<f64> = text
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    (values.len() == GEMM_SHAPES.len()).then_some(values)
}

/// `calibration: f32 GEMM GFLOP/s (T threads): 1024x1024x1024 apitune A [torch B, A/B×]; …`.
pub fn calibration(python: Option<&std::ffi::OsStr>, threads: &str) -> String {
    let torch = python.and_then(|p| torch_gemm_gflops(p, threads));
    let parts: Vec<String> = GEMM_SHAPES
        .iter()
        .enumerate()
        .map(|(i, &shape)| {
            let ours = apitune_gemm_gflops(shape);
            let [m, k, n] = shape;
            match &torch {
                Some(t) => format!(
                    "{m}x{k}x{n} apitune {ours:.0} torch {:.0} ({:.2}x)",
                    t[i],
                    ours / t[i]
                ),
                None => format!("{m}x{k}x{n} apitune {ours:.0}"),
            }
        })
        .collect();
    format!(
        "calibration: f32 GEMM GFLOP/s ({threads} threads): {}",
        parts.join("; ")
    )
}
