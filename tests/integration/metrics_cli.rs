//! `apitune metrics` file handling: pairing, field selection and error messages.

use std::path::{Path, PathBuf};

use apitune::cli::metrics::{
    MetricsArgs, OutputFormat, SampleVerdicts, check_calls, evaluate, render_calls_table,
    render_table,
};
use apitune::metrics::grounded::CallStatus;

fn write(dir: &Path, name: &str, lines: &[&str]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n")).unwrap();
    path
}

fn args(predictions: PathBuf, references: Option<PathBuf>) -> MetricsArgs {
    MetricsArgs {
        predictions,
        references,
        field: "prediction".into(),
        ref_field: "reference".into(),
        lang_field: "lang".into(),
        lang: None,
        id_field: "id".into(),
        api_field: "api_name".into(),
        nll_field: "sum_nll".into(),
        tokens_field: "n_tokens".into(),
        format: OutputFormat::Json,
        per_example: true,
        spec: None,
        per_sample: false,
    }
}

const CURL: &str = r#"curl --request GET --url 'https://api.example.com/v1/pets/%7Bid%7D'"#;

#[test]
fn pairs_by_id_regardless_of_order() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "p.jsonl",
        &[
            r#"{"id": 2, "prediction": "print(2)"}"#,
            "",
            r#"{"id": 1, "prediction": "curl --request GET --url 'https://api.example.com/v1/pets/7'"}"#,
        ],
    );
    let r = write(
        dir.path(),
        "r.jsonl",
        &[
            &serde_json::json!({"id": 1, "reference": CURL, "lang": "cURL", "api_name": "pets"})
                .to_string(),
            r#"{"id": 2, "reference": "print(2)", "lang": "Python"}"#,
        ],
    );
    let scores = evaluate(&args(p, Some(r))).unwrap();
    assert_eq!(scores.overall.n, 2);
    assert_eq!(scores.examples[0].lang, "python");
    assert!(scores.examples[0].exact_match);
    assert_eq!(scores.examples[1].lang, "curl");
    assert_eq!(scores.examples[1].api.method_path_match, Some(true));
    assert_eq!(
        scores.examples[1].api.hallucinated,
        Some(false),
        "endpoint known from the references of `pets`"
    );
    assert_eq!(scores.per_lang["python"].syntax.valid, 1);
    assert!(render_table(&scores).contains("ALL"));
}

#[test]
fn pairs_by_line_without_ids_and_reads_inline_references() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "p.jsonl",
        &[r#"{"prediction": "a b c d", "reference": "a b c d", "lang": "go"}"#],
    );
    let scores = evaluate(&args(p.clone(), None)).unwrap();
    assert_eq!(scores.overall.exact_match, 1.0);
    let r = write(
        dir.path(),
        "r.jsonl",
        &[
            r#"{"reference": "x", "lang": "go"}"#,
            r#"{"reference": "y", "lang": "go"}"#,
        ],
    );
    let err = evaluate(&args(p, Some(r))).unwrap_err().to_string();
    assert!(err.contains("1 predictions but 2 references"), "{err}");
}

#[test]
fn errors_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "p.jsonl",
        &[
            r#"{"prediction": "x", "reference": "y", "lang": "go"}"#,
            "{not json",
        ],
    );
    let err = format!("{:#}", evaluate(&args(p, None)).unwrap_err());
    assert!(
        err.contains("p.jsonl:2") && err.contains("not valid JSON"),
        "{err}"
    );

    let p = write(
        dir.path(),
        "q.jsonl",
        &[r#"{"text": "x", "reference": "y", "lang": "go"}"#],
    );
    let err = evaluate(&args(p, None)).unwrap_err().to_string();
    assert!(
        err.contains("q.jsonl:1") && err.contains("`prediction`") && err.contains("text"),
        "{err}"
    );

    let p = write(
        dir.path(),
        "n.jsonl",
        &[r#"{"prediction": 3, "reference": "y", "lang": "go"}"#],
    );
    let err = evaluate(&args(p, None)).unwrap_err().to_string();
    assert!(
        err.contains("n.jsonl:1") && err.contains("must be a string"),
        "{err}"
    );

    let p = write(
        dir.path(),
        "l.jsonl",
        &[r#"{"prediction": "x", "reference": "y"}"#],
    );
    let err = evaluate(&args(p, None)).unwrap_err().to_string();
    assert!(err.contains("l.jsonl:1") && err.contains("--lang"), "{err}");

    let p = write(
        dir.path(),
        "d.jsonl",
        &[r#"{"id": "a", "prediction": "x", "lang": "go"}"#],
    );
    let r = write(
        dir.path(),
        "dr.jsonl",
        &[
            r#"{"id": "a", "reference": "x"}"#,
            r#"{"id": "a", "reference": "y"}"#,
        ],
    );
    let err = evaluate(&args(p, Some(r))).unwrap_err().to_string();
    assert!(
        err.contains("dr.jsonl:2") && err.contains("duplicate id `a`"),
        "{err}"
    );

    let err = format!(
        "{:#}",
        evaluate(&args(dir.path().join("missing.jsonl"), None)).unwrap_err()
    );
    assert!(err.contains("missing.jsonl"), "{err}");
}

#[test]
fn perplexity_is_token_weighted_over_records_with_nll() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "p.jsonl",
        &[
            r#"{"prediction": "x", "reference": "x", "lang": "go", "sum_nll": 2.0, "n_tokens": 1}"#,
            r#"{"prediction": "x", "reference": "x", "lang": "go", "sum_nll": 0.0, "n_tokens": 3}"#,
            r#"{"prediction": "x", "reference": "x", "lang": "go"}"#,
        ],
    );
    let scores = evaluate(&args(p, None)).unwrap();
    assert_eq!(scores.overall.perplexity_n, 2);
    assert!((scores.overall.perplexity.unwrap() - 0.5f64.exp()).abs() < 1e-12);
    let p = write(
        dir.path(),
        "bad.jsonl",
        &[r#"{"prediction": "x", "reference": "x", "lang": "go", "sum_nll": 2.0}"#],
    );
    let err = evaluate(&args(p, None)).unwrap_err().to_string();
    assert!(
        err.contains("bad.jsonl:1") && err.contains("together"),
        "{err}"
    );
}

#[test]
fn unknown_languages_are_scored_on_text_but_unchecked_for_syntax() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "p.jsonl",
        &[r#"{"prediction": "fn main() {}", "reference": "fn main() {}", "lang": "Rust"}"#],
    );
    let scores = evaluate(&args(p, None)).unwrap();
    let rust = &scores.per_lang["rust"];
    assert_eq!(rust.exact_match, 1.0);
    assert_eq!(
        (rust.syntax.checked, rust.syntax.unchecked, rust.syntax.rate),
        (0, 1, None)
    );
    assert_eq!(rust.endpoint_match.n, 0);
}

#[test]
fn arguments_parse_with_clap_defaults() {
    use clap::{CommandFactory, Parser};
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        metrics: MetricsArgs,
    }
    Cli::command().debug_assert();
    let cli =
        Cli::try_parse_from(["apitune", "--predictions", "p.jsonl", "--format", "json"]).unwrap();
    let a = cli.metrics;
    assert_eq!(a.predictions, PathBuf::from("p.jsonl"));
    assert_eq!(a.references, None);
    assert_eq!(
        (
            a.field.as_str(),
            a.ref_field.as_str(),
            a.lang_field.as_str()
        ),
        ("prediction", "reference", "lang")
    );
    assert_eq!(a.format, OutputFormat::Json);
    assert!(
        Cli::try_parse_from(["apitune", "--predictions", "p.jsonl", "--format", "yaml"]).is_err()
    );
    assert!(
        Cli::try_parse_from(["apitune"]).is_err(),
        "--predictions is required"
    );
}

/// A spec with one collection endpoint (required query parameter, JSON body) and one item.
const SPEC: &str = r#"{
  "openapi": "3.0.3",
  "info": {"title": "Pets"},
  "servers": [{"url": "https://api.pets.test/v1"}],
  "paths": {
    "/pets": {
      "get": {"parameters": [{"name": "status", "in": "query", "required": true}]},
      "post": {"requestBody": {"required": true, "content": {"application/json": {"schema": {
        "type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}}}}}
    },
    "/pets/{petId}": {"get": {}}
  }
}"#;

fn spec_args(dir: &Path, predictions: &[serde_json::Value]) -> MetricsArgs {
    std::fs::create_dir_all(dir.join("specs")).unwrap();
    std::fs::write(dir.join("specs/pets.json"), SPEC).unwrap();
    let lines: Vec<String> = predictions.iter().map(|p| p.to_string()).collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let mut args = args(write(dir, "p.jsonl", &lines), None);
    args.spec = Some(dir.join("specs").to_string_lossy().into_owned());
    args
}

#[test]
fn spec_checks_calls_without_references() {
    let dir = tempfile::tempdir().unwrap();
    let args = spec_args(
        dir.path(),
        &[
            serde_json::json!({"id": "ok", "lang": "curl", "prediction": "curl 'https://api.pets.test/v1/pets?status=sold'"}),
            serde_json::json!({"id": "no-status", "lang": "python", "prediction": "import requests\nrequests.get('https://api.pets.test/v1/pets', params={'colour': 'red'})"}),
            serde_json::json!({"id": "bad-body", "lang": "javascript", "prediction": "fetch('https://api.pets.test/v1/pets', {method: 'POST', body: JSON.stringify({age: 3})})"}),
            serde_json::json!({"id": "other-host", "lang": "curl", "prediction": "curl https://evil.test/v1/pets"}),
            serde_json::json!({"id": "prose", "lang": "go", "prediction": "I cannot help with that."}),
        ],
    );
    let report = check_calls(&args).unwrap();
    assert!(!report.has_references);
    let by_id: std::collections::HashMap<&str, &SampleVerdicts> =
        report.samples.iter().map(|s| (s.id.as_str(), s)).collect();
    let ok = &by_id["ok"].verdicts;
    assert_eq!(
        (ok.status, ok.params_complete, ok.params_known),
        (CallStatus::Valid, Some(true), Some(true))
    );
    assert_eq!(ok.same_operation, None, "no reference to compare with");
    let no_status = &by_id["no-status"].verdicts;
    assert_eq!(no_status.missing_params, ["query:status"]);
    assert_eq!(no_status.unknown_params, ["colour"]);
    let bad_body = &by_id["bad-body"].verdicts;
    assert_eq!(
        (bad_body.operation.as_deref(), bad_body.body_valid),
        (Some("POST /pets"), Some(false))
    );
    assert_eq!(by_id["other-host"].verdicts.status, CallStatus::OtherHost);
    assert_eq!(by_id["prose"].verdicts.status, CallStatus::Unchecked);
    let overall = report.overall;
    assert_eq!(
        (overall.n, overall.unchecked, overall.other_host),
        (5, 1, 1)
    );
    assert_eq!(overall.call_valid.hits, 3);
    assert_eq!(
        overall.call_valid.rate,
        Some(0.6),
        "unchecked snippets count as not valid"
    );
    assert_eq!(overall.params_complete.n, 3, "of valid calls");
    assert!(render_calls_table(&report).contains("ALL"));
}

#[test]
fn spec_with_references_adds_same_operation_to_the_full_scores() {
    let dir = tempfile::tempdir().unwrap();
    let reference = "curl --request GET --url 'https://api.pets.test/v1/pets/%7BpetId%7D'";
    let args = spec_args(
        dir.path(),
        &[
            serde_json::json!({"id": 1, "lang": "curl", "reference": reference, "prediction": "curl https://api.pets.test/v1/pets/7"}),
            serde_json::json!({"id": 2, "lang": "curl", "reference": reference, "prediction": "curl 'https://api.pets.test/v1/pets?status=a'"}),
        ],
    );
    let scores = evaluate(&args).unwrap();
    let grounded = scores.overall.grounded.expect("calls checked");
    assert_eq!(grounded.call_valid.hits, 2);
    assert_eq!(
        (grounded.same_operation.hits, grounded.same_operation.n),
        (1, 2)
    );
    assert_eq!(
        scores.examples[0].grounded.as_ref().unwrap().same_operation,
        Some(true)
    );
    assert!(render_table(&scores).contains("calls checked against the spec"));
}

#[test]
fn per_sample_prints_one_object_per_prediction_with_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let args = spec_args(
        dir.path(),
        &[
            serde_json::json!({"id": "a", "lang": "curl", "prediction": "curl -X DELETE https://api.pets.test/v1/pets/1"}),
            serde_json::json!({"lang": "curl", "prediction": "curl https://api.pets.test/v1/owners"}),
        ],
    );
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_apitune"))
        .args(["metrics", "--per-sample", "--spec"])
        .arg(args.spec.as_ref().unwrap())
        .arg("--predictions")
        .arg(&args.predictions)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["id"], "a");
    assert_eq!(lines[0]["status"], "wrong_method");
    assert_eq!(lines[0]["call_valid"], false);
    assert!(
        lines[1]["id"].as_str().unwrap().ends_with("p.jsonl:2"),
        "{}",
        lines[1]
    );
    assert_eq!(lines[1]["status"], "unknown_path");
    // A missing spec is a usage error naming the path.
    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_apitune"))
        .args(["metrics", "--spec", "no/such/specs", "--predictions"])
        .arg(&args.predictions)
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no/such/specs"));
}
