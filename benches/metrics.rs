//! Side-by-side benchmark: apitune's metrics vs sacrebleu + rouge-score in Python on the same
//! (prediction, reference) pairs, asserting identical numbers.
//!
//!     cargo bench --bench metrics
//!
//! Environment:
//! - `APITUNE_METRICS_PYTHON`: a Python with sacrebleu 2.5.1 and rouge-score 0.1.2 (default
//!   `python3`); without one, only the Rust side runs, on pairs generated here.
//! - `APITUNE_METRICS_BENCH_N`: number of pairs (default 100000).
//! - `APITUNE_METRICS_BENCH_PAIRS`: an existing JSONL file of pairs to use instead.
//! - `APITUNE_METRICS_BENCH_RUNS`: Rust repetitions (default 5; Python runs once, it is slow).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use apitune::metrics::bleu::{
    BleuStats, hf_bleu_from_stats, sacrebleu_from_stats, segment_stats_both,
};
use apitune::metrics::pysum::python_mean;
use apitune::metrics::rouge::rouge_l;
use apitune::metrics::{Example, score_corpus};
use rayon::prelude::*;
use serde::Deserialize;

#[path = "support/host.rs"]
mod host;

#[derive(Deserialize)]
struct PairRecord {
    prediction: String,
    reference: String,
    lang: String,
}

/// The four numbers the Python side computes.
#[derive(Debug, Clone, Copy, PartialEq)]
struct TextScores {
    sacrebleu_corpus: f64,
    sacrebleu_sentence_mean: f64,
    rouge_l_mean: f64,
    hf_bleu: f64,
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/metrics_fixtures.py")
}

fn python() -> Option<String> {
    let py = std::env::var("APITUNE_METRICS_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", "import sacrebleu, rouge_score"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(py)
}

fn read_pairs(path: &Path) -> Vec<PairRecord> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), i + 1))
        })
        .collect()
}

/// Pairs for a Python-less run: reference snippets with deterministic edits.
fn synthetic_pairs(n: usize) -> Vec<PairRecord> {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    (0..n)
        .map(|i| {
            let reference = format!(
                "curl --request GET \\\n  --url 'https://api{}.example.com/v{}/items/{}?limit={}' \\\n  --header 'X-RapidAPI-Key: SOME_STRING_VALUE'",
                i % 50,
                i % 3,
                next() % 1000,
                next() % 100
            );
            let mut prediction = reference.clone();
            let cut = (next() as usize) % prediction.len();
            prediction.truncate(cut.max(prediction.len() / 2));
            PairRecord { prediction, reference, lang: "curl".into() }
        })
        .collect()
}

fn rust_text_scores(pairs: &[PairRecord]) -> TextScores {
    let per: Vec<(BleuStats, BleuStats, f64, f64)> = pairs
        .par_iter()
        .map(|p| {
            let (sacre, hf) = segment_stats_both(&p.prediction, &p.reference);
            (
                sacre,
                hf,
                sacrebleu_from_stats(&sacre, true),
                rouge_l(&p.reference, &p.prediction).fmeasure,
            )
        })
        .collect();
    let (mut sacre, mut hf) = (BleuStats::default(), BleuStats::default());
    for (s, h, _, _) in &per {
        sacre += *s;
        hf += *h;
    }
    let sentence: Vec<f64> = per.iter().map(|x| x.2).collect();
    let rouge: Vec<f64> = per.iter().map(|x| x.3).collect();
    TextScores {
        sacrebleu_corpus: sacrebleu_from_stats(&sacre, false),
        sacrebleu_sentence_mean: python_mean(&sentence),
        rouge_l_mean: python_mean(&rouge),
        hf_bleu: hf_bleu_from_stats(&hf),
    }
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn time_runs<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        last = Some(std::hint::black_box(f()));
        times.push(t.elapsed());
    }
    (median(times), last.expect("at least one run"))
}

fn main() {
    println!("{}", host::stamp());
    let n = env_usize("APITUNE_METRICS_BENCH_N", 100_000);
    let runs = env_usize("APITUNE_METRICS_BENCH_RUNS", 5).max(1);
    let python = python();
    let tmp = tempfile::tempdir().expect("temp dir");
    let (pairs_path, pairs) = load_pairs(python.as_deref(), tmp.path(), n);
    let rust = bench_rust(&pairs, runs);
    let (Some(py), Some(path)) = (python, pairs_path) else {
        return;
    };
    compare_python(&py, &path, &rust);
}

/// The pairs to score: `APITUNE_METRICS_BENCH_PAIRS`, or `n` generated by the Python script, or
/// (without Python) `n` synthetic ones. Returns their file too when there is one.
fn load_pairs(python: Option<&str>, tmp: &Path, n: usize) -> (Option<PathBuf>, Vec<PairRecord>) {
    let pairs_path = match (std::env::var("APITUNE_METRICS_BENCH_PAIRS"), python) {
        (Ok(p), _) => Some(PathBuf::from(p)),
        (Err(_), Some(py)) => {
            let path = tmp.join("pairs.jsonl");
            let status = Command::new(py)
                .arg(script())
                .args(["generate", &n.to_string()])
                .arg(&path)
                .status()
                .expect("run the pair generator");
            assert!(status.success(), "pair generator failed");
            Some(path)
        }
        (Err(_), None) => None,
    };
    let pairs = match &pairs_path {
        Some(p) => read_pairs(p),
        None => {
            eprintln!(
                "no Python with sacrebleu and rouge-score (set APITUNE_METRICS_PYTHON): Rust side only"
            );
            synthetic_pairs(n)
        }
    };
    println!(
        "pairs: {} ({} threads)",
        pairs.len(),
        rayon::current_num_threads()
    );
    (pairs_path, pairs)
}

/// Rust's timings (all threads, one thread, all metrics), checking the numbers agree.
struct RustTimes {
    scores: TextScores,
    text: std::time::Duration,
    text_one_thread: std::time::Duration,
    all: std::time::Duration,
}

fn bench_rust(pairs: &[PairRecord], runs: usize) -> RustTimes {
    let (rust_text_time, rust) = time_runs(runs, || rust_text_scores(pairs));
    // The Python tools use one core: also time Rust on one thread for a per-core comparison.
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("thread pool");
    let (rust_text_time_1t, rust_1t) =
        one_thread.install(|| time_runs(runs, || rust_text_scores(pairs)));
    assert_eq!(rust, rust_1t, "thread count must not change any number");
    let examples: Vec<Example> = pairs
        .iter()
        .map(|p| Example {
            prediction: &p.prediction,
            reference: &p.reference,
            lang: &p.lang,
            known_endpoints: None,
            grounding: None,
            nll: None,
        })
        .collect();
    let (rust_full_time, full) = time_runs(runs, || score_corpus(&examples));
    assert_eq!(full.overall.sacrebleu_corpus, rust.sacrebleu_corpus);
    assert_eq!(full.overall.rouge_l, rust.rouge_l_mean);
    println!(
        "rust  text metrics (sacreBLEU corpus+sentence, HF BLEU, ROUGE-L): median {:>9.3} s over {runs} runs",
        rust_text_time.as_secs_f64()
    );
    println!(
        "rust  text metrics, one thread:                                median {:>9.3} s over {runs} runs",
        rust_text_time_1t.as_secs_f64()
    );
    println!(
        "rust  all metrics (+ exact, difflib/API match, syntax parse):     median {:>9.3} s over {runs} runs",
        rust_full_time.as_secs_f64()
    );
    println!("rust  {rust:?}");
    println!(
        "rust  syntax valid {:?} of checked {}",
        full.overall.syntax.rate, full.overall.syntax.checked
    );
    RustTimes {
        scores: rust,
        text: rust_text_time,
        text_one_thread: rust_text_time_1t,
        all: rust_full_time,
    }
}

/// sacrebleu and rouge-score on the same pairs: their time, and bit-for-bit equal numbers.
fn compare_python(py: &str, path: &Path, rust: &RustTimes) {
    let out = Command::new(py)
        .arg(script())
        .arg("score")
        .arg(path)
        .output()
        .expect("run the Python scorer");
    assert!(
        out.status.success(),
        "Python scorer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("Python scorer prints JSON");
    let num = |k: &str| -> f64 {
        v[k].as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{k} in {v}"))
    };
    let python_scores = TextScores {
        sacrebleu_corpus: num("sacrebleu_corpus"),
        sacrebleu_sentence_mean: num("sacrebleu_sentence_mean"),
        rouge_l_mean: num("rouge_l_mean"),
        hf_bleu: num("hf_bleu"),
    };
    let python_time = v["seconds"].as_f64().expect("seconds");
    println!(
        "python same text metrics (sacrebleu, rouge-score):            {python_time:>9.3} s (one run, scoring only)"
    );
    println!("python {python_scores:?}");
    assert_eq!(rust.scores, python_scores, "Rust and Python disagree");
    println!("identical numbers: yes (bit-for-bit)");
    println!(
        "speed-up, text metrics: {:.1}x ({:.1}x on one thread)",
        python_time / rust.text.as_secs_f64(),
        python_time / rust.text_one_thread.as_secs_f64()
    );
    println!(
        "speed-up, Rust doing all metrics vs Python text metrics: {:.1}x",
        python_time / rust.all.as_secs_f64()
    );
}
