//! The `eval` stage on a tiny fixture checkpoint: generation, scoring, artifacts, memoised
//! generations (re-scoring never re-generates), and the report built from it.

use crate::common;

use common::{Project, statuses};

fn manifest(limit: usize, extra: &str) -> String {
    let root = env!("CARGO_MANIFEST_DIR");
    format!(
        r#"[experiment]
name = "eval-test"
seed = 3
backend = "cpu"
inputs_outside = ["{root}"]

[models.tiny]
path = "{root}/tests/fixtures/models/gpt2-tiny"

[stages.ingest]
kind = "ingest"
source = {{ openapi = "{root}/experiments/data/specs/bookshop.yaml" }}
langs = ["curl", "python"]

[stages.split]
kind = "normalize"
needs = ["ingest"]
heldout = {{ level1 = 2, level2 = 2, level3 = 2 }}

[stages.baseline]
kind = "eval"
needs = ["split"]
model = "tiny"
limit = {limit}
decoding = {{ max_new_tokens = 8 }}
{extra}

[stages.report]
kind = "report"
needs = ["baseline"]
"#
    )
}

#[test]
fn eval_writes_results_and_samples_and_feeds_the_report() {
    let p = Project::new();
    p.write("m.toml", &manifest(3, ""));
    let out = p.run(&["run", "m.toml", "--format", "json"]);
    let json = out.expect_code(0).json();
    assert!(statuses(&json).iter().all(|(_, s)| s == "ran"), "{json}");

    let artifacts = p.path().join("cache/artifacts");
    let eval_dir = std::fs::read_dir(&artifacts)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|d| d.join("results.json").exists())
        .unwrap();
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(eval_dir.join("results.json")).unwrap())
            .unwrap();
    assert_eq!(results["model"], "tiny");
    assert!(results["adapter"].is_null());
    let levels = results["levels"].as_object().unwrap();
    assert_eq!(
        levels.keys().collect::<Vec<_>>(),
        ["level1", "level2", "level3"]
    );
    let n = results["overall"]["n"].as_u64().unwrap();
    assert!(n > 0 && n <= 9, "at most 3 per level: {n}");
    let ppl = results["perplexity"]
        .as_f64()
        .expect("perplexity is measured");
    assert!(ppl > 1.0 && ppl.is_finite(), "{ppl}");
    let samples = std::fs::read_to_string(eval_dir.join("samples.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = samples
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as u64, n);
    for s in &lines {
        assert!(s["prompt_hash"].as_str().unwrap().len() == 64);
        assert!(s["new_tokens"].as_u64().unwrap() <= 8);
        assert!(s["metrics"]["sacrebleu_sentence"].is_number(), "{s}");
    }

    let show = p.run(&["show", "m.toml"]);
    assert!(
        show.expect_code(0).stdout().contains("tiny"),
        "{}",
        show.stdout()
    );

    // A change that only affects scoring reuses the memoised generations: identical predictions.
    let memo = p.path().join("cache/memo");
    let memo_files = || std::fs::read_dir(&memo).unwrap().count();
    assert_eq!(memo_files(), 3, "one memo per level's prompts");
    let out = p.run(&[
        "run",
        "m.toml",
        "--format",
        "json",
        "-S",
        "stages.baseline.perplexity=false",
    ]);
    assert_eq!(
        statuses(&out.expect_code(0).json())[2],
        ("baseline".to_string(), "ran".to_string())
    );
    assert_eq!(memo_files(), 3, "no new generation run");

    // gc keeps the memos of live entries and drops those no live entry was made from.
    std::fs::create_dir_all(memo.join("0123abcd")).unwrap();
    std::fs::write(memo.join("0123abcd/level1.jsonl"), "{}\n").unwrap();
    let out = p.run(&["gc", "m.toml", "--dry-run"]);
    assert!(
        out.expect_code(0)
            .stdout()
            .contains("would remove memo/0123abcd"),
        "{}",
        out.stdout()
    );
    p.run(&["gc", "m.toml"]).expect_code(0);
    assert_eq!(memo_files(), 3);
}

#[test]
fn interrupted_generation_resumes_from_the_memo() {
    let p = Project::new();
    p.write("m.toml", &manifest(3, "batch_size = 1"));
    p.run(&["run", "m.toml"]).expect_code(0);
    let level1 = std::fs::read_dir(p.path().join("cache/memo"))
        .unwrap()
        .map(|e| e.unwrap().path().join("level1.jsonl"))
        .find(|f| f.exists())
        .expect("memo of level1");
    let full = std::fs::read_to_string(&level1).unwrap();
    assert_eq!(full.lines().count(), 3);
    // Simulate an interruption after the first generation, with a torn second line.
    let first = full.lines().next().unwrap();
    std::fs::write(&level1, format!("{first}\n{{\"index\": 1, \"prom")).unwrap();
    p.run(&["run", "m.toml", "-f", "baseline"]).expect_code(0);
    assert_eq!(
        std::fs::read_to_string(&level1).unwrap(),
        full,
        "resumed generation equals the uninterrupted one"
    );
}

#[test]
fn eval_errors_name_the_problem() {
    let p = Project::new();
    p.write(
        "m.toml",
        &manifest(3, "").replace("model = \"tiny\"", "model = \"tiny2\""),
    );
    let out = p.run(&["run", "m.toml"]);
    assert_eq!(out.code(), 2, "{}", out.stderr());
    assert!(
        out.stderr().contains("unknown model `tiny2`"),
        "{}",
        out.stderr()
    );
}
