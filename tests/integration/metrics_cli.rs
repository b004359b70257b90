//! `apitune metrics` file handling: pairing, field selection and error messages.

use std::path::{Path, PathBuf};

use apitune::cli::metrics::{MetricsArgs, OutputFormat, evaluate, render_table};

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
