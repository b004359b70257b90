//! The `generate` and `score` entry points the binary wires up, parsed as clap would parse them.

use crate::model_support;

use apitune::cli::model::{GenerateArgs, ScoreArgs, generate, score};
use clap::Parser;
use model_support::{copy_fixture, fixture_dir};

#[derive(Parser)]
struct GenerateCli {
    #[command(flatten)]
    args: GenerateArgs,
}

#[derive(Parser)]
struct ScoreCli {
    #[command(flatten)]
    args: ScoreArgs,
}

fn model_arg() -> String {
    fixture_dir("qwen2-tiny").display().to_string()
}

#[test]
fn generate_parses_flags_and_runs() {
    let cli = GenerateCli::try_parse_from([
        "generate",
        "--model",
        &model_arg(),
        "--max-new-tokens",
        "4",
        "--temperature",
        "0.7",
        "--top-k",
        "5",
        "--top-p",
        "0.9",
        "--seed",
        "3",
        "--backend",
        "cpu",
        "--format",
        "json",
        "--stop",
        "\n",
        "curl --request",
        "import http",
    ])
    .unwrap();
    assert_eq!(cli.args.prompt, ["curl --request", "import http"]);
    assert_eq!(cli.args.top_k, Some(5));
    generate(&cli.args).unwrap();
}

#[test]
fn generate_reports_a_missing_adapter_with_its_path() {
    let cli = GenerateCli::try_parse_from([
        "generate",
        "--model",
        &model_arg(),
        "--adapter",
        "some/adapter",
        "x",
    ])
    .unwrap();
    let err = format!("{:#}", generate(&cli.args).unwrap_err());
    assert!(
        err.contains("some/adapter") && err.contains("adapter_config.json"),
        "{err}"
    );
}

#[test]
fn generate_reports_a_bad_model_dir_with_its_path() {
    let cli = GenerateCli::try_parse_from([
        "generate",
        "--model",
        "no/such/model",
        "--backend",
        "cpu",
        "x",
    ])
    .unwrap();
    let err = format!("{:#}", generate(&cli.args).unwrap_err());
    assert!(
        err.contains("no/such/model") && err.contains("config.json"),
        "{err}"
    );
}

#[test]
fn generate_rejects_bad_sampling_options() {
    let cli = GenerateCli::try_parse_from([
        "generate",
        "--model",
        &model_arg(),
        "--top-p",
        "1.5",
        "--temperature",
        "1",
        "x",
    ])
    .unwrap();
    let err = generate(&cli.args).unwrap_err().to_string();
    assert!(err.contains("top_p"), "{err}");
}

#[test]
fn score_parses_and_runs() {
    let cli = ScoreCli::try_parse_from([
        "score",
        "--model",
        &model_arg(),
        "--prompt",
        "curl --request",
        "--target",
        " GET",
        "--backend",
        "cpu",
    ])
    .unwrap();
    assert_eq!(cli.args.prompt, "curl --request");
    assert_eq!(cli.args.target, " GET");
    assert_eq!(cli.args.adapter, None);
    score(&cli.args).unwrap();
}

/// `generate --adapter` and `merge` through the binary: the merged checkpoint generates exactly
/// what base + adapter generate.
#[test]
fn adapter_generation_equals_the_merged_checkpoint() {
    let root = env!("CARGO_MANIFEST_DIR");
    let base = format!("{root}/tests/fixtures/models/gpt2-tiny");
    let adapter = format!("{root}/tests/fixtures/lora/gpt2-tiny");
    let out = tempfile::tempdir().unwrap();
    let merged = out.path().join("merged");
    let bin = env!("CARGO_BIN_EXE_apitune");
    let run = |args: &[&str]| {
        let o = std::process::Command::new(bin).args(args).output().unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    run(&[
        "merge",
        "--model",
        &base,
        "--adapter",
        &adapter,
        "--out",
        merged.to_str().unwrap(),
    ]);
    let with_adapter = run(&[
        "generate",
        "--model",
        &base,
        "--adapter",
        &adapter,
        "--max-new-tokens",
        "12",
        "--backend",
        "cpu",
        "curl",
    ]);
    let from_merged = run(&[
        "generate",
        "--model",
        merged.to_str().unwrap(),
        "--max-new-tokens",
        "12",
        "--backend",
        "cpu",
        "curl",
    ]);
    let plain = run(&[
        "generate",
        "--model",
        &base,
        "--max-new-tokens",
        "12",
        "--backend",
        "cpu",
        "curl",
    ]);
    assert_eq!(with_adapter, from_merged);
    assert_ne!(
        with_adapter, plain,
        "the fixture adapter changes the output"
    );

    // `score --adapter` scores with the adapter applied: as the merged checkpoint does.
    let score = |model: &str, adapter: Option<&str>| -> serde_json::Value {
        let mut args = vec!["score", "--model", model, "--backend", "cpu"];
        if let Some(adapter) = adapter {
            args.extend(["--adapter", adapter]);
        }
        args.extend(["--prompt", "curl --request", "--target", " GET https://api"]);
        serde_json::from_str(&run(&args)).unwrap()
    };
    let adapted = score(&base, Some(&adapter));
    let merged_score = score(merged.to_str().unwrap(), None);
    let plain_score = score(&base, None);
    let nll = |v: &serde_json::Value| v["total_nll"].as_f64().unwrap();
    let tokens = adapted["target_tokens"].as_array().unwrap();
    assert!(!tokens.is_empty());
    let summed: f64 = tokens.iter().map(|t| t["nll"].as_f64().unwrap()).sum();
    assert!((summed - nll(&adapted)).abs() < 1e-4, "{adapted}");
    let mean = nll(&adapted) / tokens.len() as f64;
    assert!((adapted["mean_nll"].as_f64().unwrap() - mean).abs() < 1e-9);
    assert!((adapted["perplexity"].as_f64().unwrap() - mean.exp()).abs() < 1e-6);
    assert_eq!(adapted["adapter"].as_str(), Some(adapter.as_str()));
    assert!(
        (nll(&adapted) - nll(&merged_score)).abs() < 1e-3,
        "adapter {} vs merged {}",
        nll(&adapted),
        nll(&merged_score)
    );
    assert!(
        (nll(&adapted) - nll(&plain_score)).abs() > 1e-3,
        "the fixture adapter changes the score"
    );
}

/// Runs the `apitune` binary; returns its exit code (None when a signal killed it) and stderr.
fn run_apitune(args: &[&str]) -> (Option<i32>, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_apitune"))
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A config.json implying a model no machine can hold: `generate`, `score` and `merge` exit 2
/// with the field and its range, instead of aborting on the allocation.
#[test]
fn impossible_config_is_a_usage_error_not_an_abort() {
    let dir = copy_fixture("gpt2-tiny");
    let config = dir.path().join("config.json");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("\"n_layer\": 2", "\"n_layer\": 1000000000"),
    )
    .unwrap();
    let model = dir.path().to_str().unwrap();
    let adapter = format!(
        "{}/tests/fixtures/lora/gpt2-tiny",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = dir.path().join("merged");
    let commands: [&[&str]; 3] = [
        &["generate", "--model", model, "--backend", "cpu", "curl"],
        &[
            "score",
            "--model",
            model,
            "--prompt",
            "curl",
            "--target",
            " -X",
            "--backend",
            "cpu",
        ],
        &[
            "merge",
            "--model",
            model,
            "--adapter",
            &adapter,
            "--out",
            out.to_str().unwrap(),
        ],
    ];
    for args in commands {
        let (code, stderr) = run_apitune(args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        let expected = "n_layer: 1000000000 is out of range; expected 1 to 1024";
        assert!(
            stderr.contains("config.json") && stderr.contains(expected),
            "{stderr}"
        );
    }
}

/// A prompt containing a tokenizer token whose id is past the model's vocabulary (an added
/// token gets the next free id, 320 = vocab_size): a clear usage error at load (it used to
/// panic in the embedding lookup, exit 101).
#[test]
fn tokenizer_beyond_the_vocabulary_is_a_usage_error_not_a_panic() {
    let dir = copy_fixture("qwen2-tiny");
    let path = dir.path().join("tokenizer.json");
    let mut tokenizer: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    tokenizer["added_tokens"].as_array_mut().unwrap().push(serde_json::json!({"id": 320, "content": "<|extra|>",
        "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}));
    std::fs::write(&path, tokenizer.to_string()).unwrap();
    let model = dir.path().to_str().unwrap();
    let commands: [&[&str]; 2] = [
        &[
            "generate",
            "--model",
            model,
            "--backend",
            "cpu",
            "--max-new-tokens",
            "2",
            "curl <|extra|>",
        ],
        &[
            "score",
            "--model",
            model,
            "--prompt",
            "curl",
            "--target",
            "<|extra|>",
            "--backend",
            "cpu",
        ],
    ];
    for args in commands {
        let (code, stderr) = run_apitune(args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("tokenizer.json") && stderr.contains("has id 320"),
            "{stderr}"
        );
    }
}
