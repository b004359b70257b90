//! Re-planning a fully cached 100-arm sweep (plus a 100-arm fan-out downstream): how long
//! `apitune status` and `apitune run` take when there is nothing to do. Medians of repeated runs
//! of the release binary, which is what a user or CI waits for.
//!
//! cargo bench --bench replan

use std::process::Command;
use std::time::Instant;

#[path = "support/host.rs"]
mod host;

fn apitune(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_apitune"))
        .current_dir(dir)
        .arg("--cache")
        .arg(dir.join("cache"))
        .args(args)
        .output()
        .expect("apitune runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn median_ms(mut f: impl FnMut(), runs: usize) -> f64 {
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[runs / 2]
}

fn main() {
    println!("{}", host::stamp());
    let dir = tempfile::tempdir().expect("temp dir");
    let values: Vec<String> = (0..100).map(|i| format!("\"{i}\"")).collect();
    std::fs::write(dir.path().join("input.txt"), "x\n".repeat(1000)).unwrap();
    let manifest = format!(
        r#"[experiment]
name = "sweep"

[stages.prep]
kind = "command"
run = "cp input.txt $APITUNE_OUT/"
deps = ["input.txt"]

[stages.train]
kind = "command"
needs = ["prep"]
run = "echo $N > $APITUNE_OUT/n"
matrix = {{ "env.N" = [{}] }}

[stages.eval]
kind = "command"
needs = ["train"]
run = "cp $APITUNE_INPUT_TRAIN/n $APITUNE_OUT/"
"#,
        values.join(", ")
    );
    std::fs::write(dir.path().join("m.toml"), manifest).unwrap();
    let t = Instant::now();
    apitune(dir.path(), &["run", "m.toml", "-j", "2"]);
    println!(
        "first run (201 arms, each a shell command): {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let status = median_ms(
        || drop(apitune(dir.path(), &["status", "m.toml", "--exit-code"])),
        15,
    );
    let run = median_ms(|| drop(apitune(dir.path(), &["run", "m.toml"])), 15);
    println!("status of the cached 201-arm sweep: median {status:.1} ms over 15 runs");
    println!("run of the cached 201-arm sweep (nothing to do): median {run:.1} ms over 15 runs");
}
