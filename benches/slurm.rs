//! What the Slurm executor costs per arm: the same manifests run by the local executor and by
//! `--executor slurm` on the cluster `scripts/slurm-local.sh start` brings up, alternating, each
//! run into a fresh cache. A chain of trivial arms gives the latency each submitted arm adds
//! (submission, scheduling, starting apitune on the node, noticing the end); a fan of independent
//! arms gives the throughput. Medians of the release binary.
//!
//! eval "$(scripts/slurm-local.sh start)" && cargo bench --bench slurm

use std::process::Command;
use std::time::Instant;

#[path = "support/host.rs"]
mod host;

const ROUNDS: usize = 3;
const CHAIN: usize = 6;
const FAN: usize = 24;

fn manifest(kind: &str, round: usize) -> String {
    let mut text = format!("[experiment]\nname = \"slurm-bench\"\nseed = {round}\n");
    match kind {
        "chain" => {
            for i in 0..CHAIN {
                text += &format!(
                    "\n[stages.s{i}]\nkind = \"command\"\nrun = \"echo {i} > $APITUNE_OUT/n\"\n"
                );
                if i > 0 {
                    text += &format!("needs = [\"s{}\"]\n", i - 1);
                }
            }
        }
        _ => {
            let values: Vec<String> = (0..FAN).map(|i| format!("\"{i}\"")).collect();
            text += &format!(
                "\n[stages.fan]\nkind = \"command\"\nrun = \"echo $N > $APITUNE_OUT/n\"\nmatrix = {{ \"env.N\" = [{}] }}\n",
                values.join(", ")
            );
        }
    }
    text
}

/// Seconds for one run of `kind` (round `round`) with `executor`, into a fresh cache.
fn run_once(kind: &str, executor: &str, round: usize) -> f64 {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("m.toml"), manifest(kind, round)).unwrap();
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_apitune"))
        .current_dir(dir.path())
        .args(["--cache", "cache", "run", "m.toml", "--executor", executor])
        .output()
        .expect("apitune runs");
    let seconds = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    seconds
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    println!("{}", host::stamp());
    let slurm_up = Command::new("squeue")
        .args(["--me", "-h"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !slurm_up {
        println!("no Slurm cluster answers (squeue): start one with scripts/slurm-local.sh start");
        return;
    }
    for (kind, arms) in [("chain", CHAIN), ("fan", FAN)] {
        let (mut local, mut slurm) = (Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            // Alternating, so drift on a busy host affects both sides alike.
            local.push(run_once(kind, "local", round));
            slurm.push(run_once(kind, "slurm", round));
        }
        let (l, s) = (median(local.clone()), median(slurm.clone()));
        println!(
            "{kind:<5} {arms:>2} arms: local median {l:.2} s {local:.2?}, slurm median {s:.2} s {slurm:.2?}; {:.2} s more per arm ({:.1}x)",
            (s - l) / arms as f64,
            s / l
        );
    }
}
