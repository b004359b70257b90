//! The `report` stage run through its `StageKind` impl over fake eval and lora-train artifacts:
//! 2 models × (zero-shot + LoRA at 100, 1000, 10000 samples).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use apitune::metrics::bootstrap::{Interval, Intervals};
use apitune::metrics::corpus::{GroundedSummary, Rate, Scores, SyntaxSummary};
use apitune::report::{
    self, AdapterInfo, EvalResults, LevelScores, ShowFormat, TrainStep, TrainSummary,
};
use apitune::stages::{Input, ReportParams, RunContext, StageKind};

const SAMPLES: [u64; 3] = [100, 1000, 10000];

fn rate(n: usize, r: Option<f64>) -> Rate {
    Rate {
        hits: r.map_or(0, |r| (r * n as f64).round() as usize),
        n: if r.is_some() { n } else { 0 },
        rate: r,
    }
}

/// Scores whose every metric is a known function of `exact`, so tests can predict each cell.
fn scores(n: usize, exact: f64, hallucinated: Option<f64>) -> Scores {
    Scores {
        n,
        exact_match: exact,
        exact_match_ignoring_whitespace: exact + 0.01,
        sacrebleu_corpus: exact * 100.0 + 10.0,
        sacrebleu_sentence_mean: exact * 100.0 + 5.0,
        hf_bleu: exact + 0.1,
        rouge_l: exact + 0.2,
        syntax: SyntaxSummary {
            checked: n,
            valid: n,
            unchecked: 0,
            fenced: 0,
            rate: Some(0.5 + exact / 2.0),
        },
        endpoint_match: rate(n, Some(exact + 0.3)),
        api_call_match: rate(n, Some(exact + 0.05)),
        method_path_match: rate(n, Some(exact + 0.3)),
        host_match: rate(n, Some(0.9)),
        hallucinated_endpoint: rate(n, hallucinated),
        perplexity: None,
        perplexity_n: 0,
        grounded: None,
        intervals: Some(intervals(exact)),
    }
}

/// Spec checks whose rates are known functions of `exact` (only gpt2's records came from specs).
fn grounded(n: usize, exact: f64) -> GroundedSummary {
    GroundedSummary {
        n,
        unchecked: n / 10,
        other_host: 0,
        unknown_path: 0,
        wrong_method: 0,
        call_valid: rate(n, Some(exact + 0.02)),
        params_complete: rate(n, Some(1.0)),
        params_known: rate(n, Some(1.0)),
        body_valid: rate(n, None),
        same_operation: rate(n, Some(exact / 2.0)),
    }
}

/// The report's default columns but the spec-grounded ones, which a report leaves out when no
/// arm was checked against a spec.
fn ungrounded_defaults() -> usize {
    report::Metric::defaults()
        .iter()
        .filter(|m| !m.is_grounded())
        .count()
}

/// Intervals of corpus BLEU and syntax around the values `scores` gives them.
fn intervals(exact: f64) -> Intervals {
    let bleu = exact * 100.0 + 10.0;
    let syntax = 0.5 + exact / 2.0;
    Intervals {
        confidence: 0.95,
        resamples: 1000,
        clusters: 7,
        metrics: [
            (
                "sacrebleu_corpus".to_string(),
                Interval {
                    low: bleu - 1.0,
                    high: bleu + 1.5,
                },
            ),
            (
                "syntax".to_string(),
                Interval {
                    low: syntax - 0.05,
                    high: syntax + 0.04,
                },
            ),
        ]
        .into(),
    }
}

struct Model {
    name: &'static str,
    zero_shot_exact: f64,
    /// Exact match of the LoRA at each of `SAMPLES`.
    lora_exact: [f64; 3],
}

const MODELS: [Model; 2] = [
    Model {
        name: "gpt2",
        zero_shot_exact: 0.10,
        lora_exact: [0.20, 0.25, 0.30],
    },
    Model {
        name: "qwen2-0.5b",
        zero_shot_exact: 0.30,
        lora_exact: [0.35, 0.42, 0.50],
    },
];

fn key_of(arm: &str) -> String {
    blake3::hash(arm.as_bytes()).to_hex().to_string()
}

fn eval_arm(model: &str, samples: Option<u64>) -> String {
    match samples {
        None => format!("baseline[model={model}]"),
        Some(s) => format!("eval[model={model},samples={s}]"),
    }
}

fn train_arm(model: &str, samples: u64) -> String {
    format!("lora[model={model},samples={samples}]")
}

fn results(model: &Model, samples: Option<u64>, exact: f64) -> EvalResults {
    // qwen has no known endpoints (hallucination not measurable) and no perplexity.
    let is_gpt2 = model.name == "gpt2";
    let hallucinated = is_gpt2.then_some(0.4 - exact);
    let perplexity = is_gpt2.then_some(20.0 - 30.0 * exact);
    let scores = |n: usize, exact: f64| Scores {
        grounded: is_gpt2.then(|| grounded(n, exact)),
        ..scores(n, exact, hallucinated)
    };
    let per_lang: BTreeMap<String, Scores> = [
        ("curl".to_string(), scores(60, exact)),
        ("python".to_string(), scores(40, exact / 2.0)),
    ]
    .into();
    let levels = (1..=3)
        .map(|l| {
            (
                format!("level{l}"),
                LevelScores {
                    overall: scores(100, exact / l as f64),
                    per_lang: per_lang.clone(),
                },
            )
        })
        .collect();
    EvalResults {
        arm: eval_arm(model.name, samples),
        model: model.name.to_string(),
        adapter: samples.map(|s| AdapterInfo {
            arm: train_arm(model.name, s),
            key: key_of(&train_arm(model.name, s)),
            samples: Some(s),
        }),
        samples,
        decoding: serde_json::json!({"greedy": true, "max_new_tokens": 256}),
        versions: serde_json::json!({"apitune": "0.1.0"}),
        overall: scores(300, exact),
        levels,
        per_lang,
        perplexity,
        shots: 0,
    }
}

struct Fixture {
    _root: tempfile::TempDir,
    inputs: Vec<Input>,
    out: PathBuf,
    work: PathBuf,
}

/// Writes every artifact; inputs are listed out of row order on purpose.
fn fixture() -> Fixture {
    let root = tempfile::tempdir().unwrap();
    let mut inputs = Vec::new();
    let mut add = |stage: &str, arm: String, kind: &str, run_facts: serde_json::Value| -> PathBuf {
        let dir = root.path().join(format!("artifact-{}", inputs.len()));
        std::fs::create_dir_all(&dir).unwrap();
        inputs.push(Input {
            stage: stage.into(),
            arm: arm.clone(),
            kind: kind.into(),
            key: key_of(&arm),
            dir: dir.clone(),
            run_facts,
        });
        dir
    };
    for model in MODELS.iter().rev() {
        for (i, &s) in SAMPLES.iter().enumerate().rev() {
            let dir = add(
                "eval",
                eval_arm(model.name, Some(s)),
                "eval",
                serde_json::Value::Null,
            );
            results(model, Some(s), model.lora_exact[i])
                .write(&dir)
                .unwrap();
            let dir = add(
                "lora",
                train_arm(model.name, s),
                "lora-train",
                serde_json::json!({ "seconds": s as f64 / 50.0 }),
            );
            let steps: Vec<TrainStep> = (0..=20u64)
                .map(|step| TrainStep {
                    step: step * 10,
                    loss: 3.0 / (1.0 + step as f64 * (i + 1) as f64 / 10.0),
                    lr: 2e-4,
                    grad_norm: 1.0,
                })
                .collect();
            apitune::artifacts::write_train_steps(&dir, &steps).unwrap();
            TrainSummary {
                samples: Some(s),
                model: model.name.into(),
                trainable_params: 294_912,
                tokens_seen: s * 120,
            }
            .write(&dir)
            .unwrap();
        }
        let dir = add(
            "baseline",
            eval_arm(model.name, None),
            "eval",
            serde_json::Value::Null,
        );
        results(model, None, model.zero_shot_exact)
            .write(&dir)
            .unwrap();
    }
    // A kind the report does not read.
    add(
        "data",
        "normalize".into(),
        "normalize",
        serde_json::Value::Null,
    );
    let out = root.path().join("out");
    let work = root.path().join("work");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    Fixture {
        _root: root,
        inputs,
        out,
        work,
    }
}

fn run_stage(f: &Fixture, params: &ReportParams) -> anyhow::Result<serde_json::Value> {
    let progress = |_: u64, _: Option<u64>, _: &str| {};
    let models = indexmap::IndexMap::new();
    let ctx = RunContext {
        device: None,
        arm: "report",
        base_dir: Path::new(env!("CARGO_MANIFEST_DIR")),
        seed: 7,
        models: &models,
        backend: apitune::model::Backend::Cpu,
        file_hashes: &serde_json::Value::Null,
        cache_root: &f.work,
        inputs: &f.inputs,
        out_dir: &f.out,
        work_dir: &f.work,
        progress: &progress,
    };
    apitune::stages::Report::run(params, &ctx)
}

/// Params as the manifest would give them: through the registry, defaults filled in.
fn default_params() -> ReportParams {
    let stage = apitune::stages::lookup("report").expect("report is registered");
    assert!(stage.aggregates());
    let resolved = stage
        .resolve(toml::Value::Table(toml::Table::new()))
        .map_err(|e| e[0].message.clone())
        .unwrap();
    serde_json::from_value(resolved).unwrap()
}

fn read(f: &Fixture, rel: &str) -> String {
    std::fs::read_to_string(f.out.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Row order of the main table: per model, zero-shot then ascending samples.
fn expected_rows() -> Vec<(&'static Model, Option<u64>, f64)> {
    MODELS
        .iter()
        .flat_map(|m| {
            std::iter::once((m, None, m.zero_shot_exact)).chain(
                SAMPLES
                    .iter()
                    .zip(m.lora_exact)
                    .map(move |(&s, e)| (m, Some(s), e)),
            )
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn report_json_rows_values_deltas_and_provenance() {
    let f = fixture();
    let summary = run_stage(&f, &default_params()).unwrap();
    assert_eq!(summary["headline"], "8 rows, 2 models");
    assert_eq!(summary["train_inputs"], 6);

    let json: serde_json::Value = serde_json::from_str(&read(&f, "report.json")).unwrap();
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 8);
    for (row, (model, samples, exact)) in rows.iter().zip(expected_rows()) {
        let arm = eval_arm(model.name, samples);
        assert_eq!(row["model"], model.name);
        assert_eq!(
            row["method"],
            if samples.is_some() {
                "lora"
            } else {
                "zero-shot"
            }
        );
        assert_eq!(row["samples"], serde_json::json!(samples));
        assert_eq!(row["eval"]["arm"], arm, "each row names its eval arm");
        assert_eq!(
            row["eval"]["key"],
            key_of(&arm),
            "each row carries its eval artifact's key"
        );
        let values = &row["values"];
        let keys: Vec<&str> = values
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            report::Metric::defaults()
                .iter()
                .map(|m| m.name())
                .collect::<Vec<_>>(),
            "columns in params order"
        );
        assert!(close(values["exact_match"].as_f64().unwrap(), exact));
        assert!(close(
            values["sacrebleu_corpus"].as_f64().unwrap(),
            exact * 100.0 + 10.0
        ));
        assert!(close(
            values["api_call_match"].as_f64().unwrap(),
            exact + 0.05
        ));
        if model.name == "gpt2" {
            assert!(close(
                values["perplexity"].as_f64().unwrap(),
                20.0 - 30.0 * exact
            ));
            assert!(close(
                values["hallucinated_endpoint"].as_f64().unwrap(),
                0.4 - exact
            ));
            assert!(close(values["call_valid"].as_f64().unwrap(), exact + 0.02));
            assert!(close(
                values["same_operation"].as_f64().unwrap(),
                exact / 2.0
            ));
        } else {
            assert!(
                values["perplexity"].is_null(),
                "unmeasured perplexity stays null, not 0"
            );
            assert!(values["hallucinated_endpoint"].is_null());
            assert!(
                values["call_valid"].is_null(),
                "records without a spec are not checked, not 0"
            );
        }
        match samples {
            None => {
                assert!(row["deltas"].as_object().unwrap().is_empty());
                assert!(row["baseline"].is_null());
            }
            Some(_) => {
                let base_arm = eval_arm(model.name, None);
                assert_eq!(row["baseline"]["arm"], base_arm);
                assert_eq!(row["baseline"]["key"], key_of(&base_arm));
                let d = &row["deltas"];
                assert!(close(
                    d["exact_match"].as_f64().unwrap(),
                    exact - model.zero_shot_exact
                ));
                assert!(close(
                    d["sacrebleu_sentence_mean"].as_f64().unwrap(),
                    (exact - model.zero_shot_exact) * 100.0
                ));
                if model.name == "gpt2" {
                    assert!(close(
                        d["perplexity"].as_f64().unwrap(),
                        -30.0 * (exact - model.zero_shot_exact)
                    ));
                } else {
                    assert!(d["perplexity"].is_null());
                }
            }
        }
    }

    // Levels: 3 levels × 8 rows, with level-wise deltas.
    let levels = json["levels"].as_array().unwrap();
    assert_eq!(levels.len(), 24);
    let l3: Vec<&serde_json::Value> = levels.iter().filter(|r| r["group"] == "level3").collect();
    assert_eq!(l3.len(), 8);
    let qwen_10k = l3
        .iter()
        .find(|r| r["model"] == "qwen2-0.5b" && r["samples"] == 10000)
        .unwrap();
    assert!(close(
        qwen_10k["values"]["exact_match"].as_f64().unwrap(),
        0.50 / 3.0
    ));
    assert!(close(
        qwen_10k["deltas"]["exact_match"].as_f64().unwrap(),
        (0.50 - 0.30) / 3.0
    ));
    assert!(
        qwen_10k["values"].get("perplexity").unwrap().is_null(),
        "perplexity is not broken down"
    );

    let per_lang = json["per_lang"].as_array().unwrap();
    assert_eq!(per_lang.len(), 16);
    let py = per_lang
        .iter()
        .find(|r| r["group"] == "python" && r["model"] == "gpt2" && r["samples"] == 1000)
        .unwrap();
    assert!(close(py["values"]["exact_match"].as_f64().unwrap(), 0.125));
    assert!(close(
        py["deltas"]["exact_match"].as_f64().unwrap(),
        0.125 - 0.05
    ));

    let training = json["training"].as_array().unwrap();
    assert_eq!(training.len(), 6);
    assert!(
        training
            .iter()
            .all(|t| t["steps"] == 21 && t["train"]["key"].as_str().unwrap().len() == 64)
    );
}

#[test]
fn markdown_shows_values_deltas_dashes_and_short_keys() {
    let f = fixture();
    run_stage(&f, &default_params()).unwrap();
    let md = read(&f, "report.md");
    let lines: Vec<&str> = md.lines().collect();
    let results_at = lines.iter().position(|l| *l == "## Results").unwrap();
    let table: Vec<Vec<String>> = lines[results_at + 2..]
        .iter()
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect();
    let header = &table[0];
    assert_eq!(&header[..4], ["model", "method", "samples", "n"]);
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let body = &table[2..];
    assert_eq!(body.len(), 8);
    for (cells, (model, samples, exact)) in body.iter().zip(expected_rows()) {
        assert_eq!(cells[0], model.name);
        assert_eq!(cells[2], samples.map_or("0".to_string(), |s| s.to_string()));
        let em = &cells[col("exact_match")];
        match samples {
            None => assert_eq!(*em, format!("{exact:.3}")),
            Some(_) => assert_eq!(
                *em,
                format!("{exact:.3} ({:+.3})", exact - model.zero_shot_exact)
            ),
        }
        assert_eq!(
            cells[col("eval key")],
            key_of(&eval_arm(model.name, samples))[..12]
        );
        if model.name == "qwen2-0.5b" {
            let ppl = &cells[col("perplexity")];
            assert_eq!(
                ppl, "–",
                "missing perplexity prints as a dash, never 0, without a delta"
            );
        }
    }
    // gpt2 at 10000 samples: perplexity 20 - 9 = 11 vs 17 zero-shot, a drop of 6.
    assert!(
        body[3][col("perplexity")] == "11.00 (-6.00)",
        "{:?}",
        body[3]
    );
    for section in [
        "## By API Pack level",
        "## By language",
        "## Training runs",
        "## Plots",
    ] {
        assert!(md.contains(section), "{section} missing");
    }
}

#[test]
fn csv_parses_back_to_the_same_numbers() {
    let f = fixture();
    run_stage(&f, &default_params()).unwrap();
    let text = read(&f, "report.csv");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    };
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 8);
    for (rec, (model, samples, exact)) in records.iter().zip(expected_rows()) {
        let arm = eval_arm(model.name, samples);
        assert_eq!(
            &rec[col("eval_arm")],
            arm,
            "arm names with commas survive quoting"
        );
        assert_eq!(&rec[col("eval_key")], key_of(&arm));
        assert_eq!(
            rec[col("exact_match")].parse::<f64>().unwrap(),
            exact,
            "full precision round-trips"
        );
        assert_eq!(
            &rec[col("samples")],
            samples.map_or(String::new(), |s| s.to_string())
        );
        match samples {
            None => assert_eq!(&rec[col("exact_match_delta")], ""),
            Some(_) => {
                let d: f64 = rec[col("exact_match_delta")].parse().unwrap();
                assert!(close(d, exact - model.zero_shot_exact));
            }
        }
        if model.name == "qwen2-0.5b" {
            assert_eq!(
                &rec[col("hallucinated_endpoint")],
                "",
                "missing is empty, not 0"
            );
            assert_eq!(&rec[col("perplexity_delta")], "");
        }
    }
}

fn attr(node: roxmltree::Node, name: &str) -> f64 {
    node.attribute(name)
        .unwrap_or_else(|| panic!("no {name}"))
        .parse()
        .unwrap()
}

#[test]
fn plots_are_well_formed_and_points_map_monotonically() {
    let f = fixture();
    let params = default_params();
    run_stage(&f, &params).unwrap();
    let mut plot_files: Vec<String> = std::fs::read_dir(f.out.join("plots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    plot_files.sort();
    let mut expected: Vec<String> = params
        .metrics
        .iter()
        .map(|m| format!("ablation-{m}.svg"))
        .collect();
    // Per-level curves of every metric measured per level (perplexity is measured overall only).
    expected.extend(
        params
            .metrics
            .iter()
            .filter(|m| m.name() != "perplexity")
            .map(|m| format!("levels-{m}.svg")),
    );
    expected.push("loss.svg".into());
    expected.sort();
    assert_eq!(plot_files, expected);
    for file in &plot_files {
        let text = read(&f, &format!("plots/{file}"));
        let doc = roxmltree::Document::parse(&text)
            .unwrap_or_else(|e| panic!("{file} is not well-formed XML: {e}"));
        assert_eq!(doc.root_element().tag_name().name(), "svg", "{file}");
    }

    let text = read(&f, "plots/ablation-exact_match.svg");
    let doc = roxmltree::Document::parse(&text).unwrap();
    let points: Vec<(String, f64, f64, f64, f64)> = doc
        .descendants()
        .filter(|n| n.has_tag_name("circle") && n.attribute("class") == Some("point"))
        .map(|n| {
            (
                n.attribute("data-series").unwrap().to_string(),
                attr(n, "data-x"),
                attr(n, "data-y"),
                attr(n, "cx"),
                attr(n, "cy"),
            )
        })
        .collect();
    assert_eq!(points.len(), 6, "one point per LoRA arm");
    for model in &MODELS {
        let mine: Vec<_> = points.iter().filter(|p| p.0 == model.name).collect();
        let xs: Vec<f64> = mine.iter().map(|p| p.1).collect();
        let ys: Vec<f64> = mine.iter().map(|p| p.2).collect();
        assert_eq!(xs, SAMPLES.map(|s| s as f64));
        assert_eq!(ys, model.lora_exact);
        // Log x: each decade is the same width.
        let gap1 = mine[1].3 - mine[0].3;
        let gap2 = mine[2].3 - mine[1].3;
        assert!(
            gap1 > 0.0 && (gap1 - gap2).abs() < 0.05,
            "log spacing: {gap1} vs {gap2}"
        );
    }
    // Larger values sit higher (smaller cy), across every series; x likewise orders cx.
    for a in &points {
        for b in &points {
            if a.2 > b.2 + 1e-12 {
                assert!(
                    a.4 < b.4,
                    "value {} above {} but cy {} >= {}",
                    a.2,
                    b.2,
                    a.4,
                    b.4
                );
            }
            if a.1 > b.1 {
                assert!(a.3 > b.3);
            }
        }
    }
    // y is linear: the dashed zero-shot lines sit where the points' mapping puts their values.
    let (p, q) = (&points[0], &points[points.len() - 1]);
    let y_of = |v: f64| p.4 + (v - p.2) * (q.4 - p.4) / (q.2 - p.2);
    let baselines: Vec<roxmltree::Node> = doc
        .descendants()
        .filter(|n| n.has_tag_name("line") && n.attribute("class") == Some("baseline"))
        .collect();
    assert_eq!(baselines.len(), 2);
    for line in baselines {
        assert_eq!(line.attribute("stroke-dasharray"), Some("6 4"));
        let model = MODELS
            .iter()
            .find(|m| Some(m.name) == line.attribute("data-series"))
            .unwrap();
        assert_eq!(attr(line, "data-y"), model.zero_shot_exact);
        assert!((attr(line, "y1") - y_of(model.zero_shot_exact)).abs() < 0.05);
    }

    // Perplexity: only gpt2 has values; qwen gets neither points nor a baseline.
    let text = read(&f, "plots/ablation-perplexity.svg");
    let doc = roxmltree::Document::parse(&text).unwrap();
    let series: Vec<&str> = doc
        .descendants()
        .filter_map(|n| n.attribute("data-series"))
        .collect();
    assert!(
        !series.is_empty() && series.iter().all(|s| *s == "gpt2"),
        "{series:?}"
    );

    let text = read(&f, "plots/loss.svg");
    let doc = roxmltree::Document::parse(&text).unwrap();
    let lines: Vec<roxmltree::Node> = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .collect();
    assert_eq!(lines.len(), 6, "one loss curve per lora-train arm");
    for line in lines {
        let pts: Vec<(f64, f64)> = line
            .attribute("points")
            .unwrap()
            .split(' ')
            .map(|p| {
                let (x, y) = p.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect();
        assert_eq!(pts.len(), 21);
        // Steps increase and the fixture's loss falls: x grows, y (downwards) grows.
        assert!(
            pts.windows(2).all(|w| w[1].0 > w[0].0 && w[1].1 > w[0].1),
            "{pts:?}"
        );
    }
}

#[test]
fn html_is_one_self_contained_page() {
    let f = fixture();
    run_stage(&f, &default_params()).unwrap();
    let html = read(&f, "report.html");
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("<style>"));
    assert!(!html.contains("<script"), "no JS needed");
    assert!(!html.contains("<link"), "no external stylesheets");
    assert!(!html.contains("<img"), "charts are inline SVG");
    let lower = html.to_lowercase();
    for attr in ["src=", "href=", "url("] {
        for (at, _) in lower.match_indices(attr) {
            let rest = lower[at + attr.len()..].trim_start_matches(['"', '\'', ' ']);
            assert!(
                !rest.starts_with("http:")
                    && !rest.starts_with("https:")
                    && !rest.starts_with("//"),
                "external reference: {}",
                &html[at..(at + 80).min(html.len())]
            );
        }
    }
    // Every chart is inline and well-formed on its own.
    let svgs: Vec<&str> = html
        .match_indices("<svg")
        .map(|(at, _)| &html[at..at + html[at..].find("</svg>").unwrap() + 6])
        .collect();
    // Per metric its ablation chart and, but for perplexity (overall only), its per-level chart;
    // then the loss chart.
    let metrics = default_params().metrics.len();
    assert_eq!(svgs.len(), metrics + (metrics - 1) + 1);
    for svg in svgs {
        roxmltree::Document::parse(svg).unwrap();
    }
    assert!(html.contains("8 rows, 2 models"));
    for (model, samples, _) in expected_rows() {
        let key = key_of(&eval_arm(model.name, samples));
        assert!(html.contains(&format!("data-eval-key=\"{key}\"")));
        assert!(
            html.contains(&format!(">{}</span>", &key[..12])),
            "short key shown"
        );
    }
    assert!(
        html.contains(r#"<span class="delta better">(+0.100)</span>"#),
        "gpt2 at 100 samples gains 0.1 exact match"
    );
    assert!(
        html.contains(r#"<span class="delta better">(-6.00)</span>"#),
        "a perplexity drop is an improvement"
    );
}

/// The page renders in headless Chromium with no console error and no outside request
/// (scripts/report_screenshot.sh). Without Chromium it fails when `APITUNE_REQUIRE_CHROMIUM` is
/// set (as `.ci/run` sets it once Chromium is installed), and is otherwise skipped with a note.
#[test]
fn html_renders_in_headless_chromium() {
    let browser = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            std::process::Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
    let Some(browser) = browser else {
        assert!(
            std::env::var_os("APITUNE_REQUIRE_CHROMIUM").is_none(),
            "APITUNE_REQUIRE_CHROMIUM is set but no chromium, chromium-browser or google-chrome runs"
        );
        eprintln!("skipped: no Chromium installed (Debian: apt-get install chromium)");
        return;
    };
    let f = fixture();
    run_stage(&f, &default_params()).unwrap();
    let html = f.out.join("report.html");
    let png = f.work.join("report.png");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/report_screenshot.sh");
    let out = std::process::Command::new("bash")
        .arg(script)
        .arg(&html)
        .arg(&png)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{browser}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&png).unwrap();
    assert!(
        bytes.starts_with(b"\x89PNG") && bytes.len() > 10_000,
        "a real screenshot, {} bytes",
        bytes.len()
    );
}

#[test]
fn show_renders_table_json_and_csv_from_the_artifact() {
    let f = fixture();
    run_stage(&f, &default_params()).unwrap();
    let table = report::show(&f.out, ShowFormat::Table).unwrap();
    assert!(table.starts_with("apitune report\n8 rows, 2 models\n"));
    assert_eq!(
        table
            .lines()
            .filter(|l| l.starts_with("| qwen2-0.5b "))
            .count(),
        4
    );
    assert!(table.contains("0.500 (+0.200)"));
    let json: serde_json::Value =
        serde_json::from_str(&report::show(&f.out, ShowFormat::Json).unwrap()).unwrap();
    assert_eq!(json["rows"].as_array().unwrap().len(), 8);
    assert_eq!(
        report::show(&f.out, ShowFormat::Csv).unwrap(),
        read(&f, "report.csv")
    );

    let empty = tempfile::tempdir().unwrap();
    let err = report::show(empty.path(), ShowFormat::Table).unwrap_err();
    assert!(format!("{err:#}").contains("report.json"), "{err:#}");
}

#[test]
fn params_select_columns_and_title() {
    let f = fixture();
    let stage = apitune::stages::lookup("report").unwrap();
    let params: toml::Value =
        toml::from_str("metrics = [\"rouge_l\", \"host_match\"]\ntitle = \"Ablation <1>\"")
            .unwrap();
    let params: ReportParams = serde_json::from_value(
        stage
            .resolve(params)
            .map_err(|e| e[0].message.clone())
            .unwrap(),
    )
    .unwrap();
    run_stage(&f, &params).unwrap();
    let csv_header = read(&f, "report.csv").lines().next().unwrap().to_string();
    assert!(
        csv_header.ends_with(",n,rouge_l,rouge_l_delta,host_match,host_match_delta"),
        "{csv_header}"
    );
    assert!(read(&f, "report.md").starts_with("# Ablation <1>\n"));
    assert!(read(&f, "report.html").contains("<title>Ablation &lt;1&gt;</title>"));
    assert!(f.out.join("plots/ablation-host_match.svg").exists());

    let bad: toml::Value = toml::from_str("metrics = [\"bleu\"]").unwrap();
    let errors = stage.resolve(bad).unwrap_err();
    assert_eq!(errors.len(), 1, "one problem, reported once");
    let err = &errors[0];
    assert_eq!(err.path, ["metrics", "0"]);
    assert!(
        err.message.contains("exact_match"),
        "names the known metrics: {}",
        err.message
    );
}

#[test]
fn bad_inputs_are_named_in_errors() {
    let f = fixture();
    let broken = f.inputs.iter().find(|i| i.kind == "eval").unwrap();
    std::fs::write(
        broken.dir.join("results.json"),
        r#"{"arm": "x", "model": 3}"#,
    )
    .unwrap();
    let err = format!("{:#}", run_stage(&f, &default_params()).unwrap_err());
    assert!(
        err.contains(&broken.arm) && err.contains("results.json") && err.contains("model"),
        "{err}"
    );

    let f = fixture();
    let train = f.inputs.iter().find(|i| i.kind == "lora-train").unwrap();
    let mut text = std::fs::read_to_string(train.dir.join("metrics.jsonl")).unwrap();
    text.push_str("{\"step\": 300, \"loss\": \"nan\"}\n");
    std::fs::write(train.dir.join("metrics.jsonl"), text).unwrap();
    let err = format!("{:#}", run_stage(&f, &default_params()).unwrap_err());
    assert!(
        err.contains(&train.arm) && err.contains("metrics.jsonl line 22"),
        "{err}"
    );

    let mut f = fixture();
    f.inputs.retain(|i| i.kind != "eval");
    let err = format!("{:#}", run_stage(&f, &default_params()).unwrap_err());
    assert!(err.contains("no `eval` input"), "{err}");
}

#[test]
fn intervals_show_as_a_table_and_as_bands_around_each_level_curve() {
    let f = fixture();
    run_stage(&f, &default_params()).unwrap();
    let md = read(&f, "report.md");
    let section = md
        .split("## 95% intervals")
        .nth(1)
        .expect("an interval section");
    // gpt2's LoRA on 1000 samples, level 2: BLEU is 100 × exact / 2 + 10, its interval [-1, +1.5].
    let exact = MODELS[0].lora_exact[1] / 2.0;
    let bleu = exact * 100.0 + 10.0;
    let cell = format!("{bleu:.2} [{:.2}, {:.2}]", bleu - 1.0, bleu + 1.5);
    let row = section
        .lines()
        .find(|l| l.starts_with("| level2") && l.contains("| gpt2") && l.contains("| 1000"))
        .expect("gpt2's level-2 row at 1000 samples");
    assert!(row.contains(&cell), "{cell} not in {row}");
    assert!(row.contains("| 7 "), "the APIs resampled: {row}");

    let svg = read(&f, "plots/levels-sacrebleu_corpus.svg");
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let bands: Vec<(String, String)> = doc
        .descendants()
        .filter(|n| n.has_tag_name("polygon") && n.attribute("class") == Some("band"))
        .map(|n| {
            let series = n.attribute("data-series").unwrap().to_string();
            (series, n.attribute("data-band").unwrap().to_string())
        })
        .collect();
    // Two models: one band per model and level.
    assert_eq!(bands.len(), 6, "{bands:?}");
    let (_, band) = bands
        .iter()
        .find(|(s, _)| s == "gpt2 · level2")
        .expect("gpt2's level-2 band");
    let at_1000 = band
        .split(' ')
        .find(|p| p.starts_with("1000:"))
        .expect("a band point at 1000 samples");
    let parts: Vec<f64> = at_1000.split(':').map(|v| v.parse().unwrap()).collect();
    assert!(
        close(parts[1], bleu - 1.0) && close(parts[2], bleu + 1.5),
        "{at_1000}"
    );
    // Zero-shot per level as a dashed line.
    let baselines = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("baseline"))
        .count();
    assert_eq!(baselines, 6);
}

#[test]
fn committed_example_results_match_the_format() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report");
    let results = EvalResults::load(&dir).unwrap();
    assert_eq!(results.training_samples(), Some(1000));
    assert_eq!(results.levels.len(), 3);
    assert!(results.overall.hallucinated_endpoint.rate.is_none());
    let summary = TrainSummary::load(&dir).unwrap();
    assert_eq!(summary.samples, Some(1000));
    assert_eq!(apitune::artifacts::load_train_steps(&dir).unwrap().len(), 3);
}

/// Writes the fixture's report to `$REPORT_SAMPLE_DIR` to look at (see scripts/report_screenshot.sh).
#[test]
#[ignore = "writes a sample report for manual inspection; set REPORT_SAMPLE_DIR"]
fn write_sample_report() {
    let target = std::env::var_os("REPORT_SAMPLE_DIR")
        .expect("set REPORT_SAMPLE_DIR to an output directory");
    let f = fixture();
    run_stage(&f, &default_params()).unwrap();
    let target = PathBuf::from(target);
    std::fs::create_dir_all(target.join("plots")).unwrap();
    for rel in ["report.html", "report.md", "report.csv", "report.json"] {
        std::fs::copy(f.out.join(rel), target.join(rel)).unwrap();
    }
    for entry in std::fs::read_dir(f.out.join("plots")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), target.join("plots").join(entry.file_name())).unwrap();
    }
}

fn single_input_fixture(entries: &[(EvalResults, &str)]) -> Fixture {
    let root = tempfile::tempdir().unwrap();
    let mut inputs = Vec::new();
    for (i, (results, arm)) in entries.iter().enumerate() {
        let dir = root.path().join(format!("eval-{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        results.write(&dir).unwrap();
        inputs.push(Input {
            stage: "eval".into(),
            arm: arm.to_string(),
            kind: "eval".into(),
            key: key_of(arm),
            dir,
            run_facts: serde_json::Value::Null,
        });
    }
    let out = root.path().join("out");
    let work = root.path().join("work");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    Fixture {
        _root: root,
        inputs,
        out,
        work,
    }
}

fn all_outputs(f: &Fixture) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> =
        ["report.md", "report.csv", "report.json", "report.html"]
            .iter()
            .map(|rel| (rel.to_string(), read(f, rel)))
            .collect();
    for entry in std::fs::read_dir(f.out.join("plots")).unwrap() {
        let entry = entry.unwrap();
        let name = format!("plots/{}", entry.file_name().into_string().unwrap());
        let text = std::fs::read_to_string(entry.path()).unwrap();
        roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        files.push((name, text));
    }
    files
}

#[test]
fn zero_shot_only_report_has_no_deltas_and_annotated_plots() {
    let mut zero = results(&MODELS[0], None, 0.1);
    zero.samples = Some(5); // ignored for a zero-shot row
    let f = single_input_fixture(&[(zero, "baseline")]);
    let summary = run_stage(&f, &default_params()).unwrap();
    assert_eq!(summary["headline"], "1 row, 1 model");
    let json: serde_json::Value = serde_json::from_str(&read(&f, "report.json")).unwrap();
    assert!(json["rows"][0]["samples"].is_null());
    for (name, text) in all_outputs(&f) {
        assert!(
            !text.contains("NaN") && !text.contains("inf"),
            "{name} prints a non-number"
        );
    }
    assert!(
        read(&f, "plots/ablation-exact_match.svg")
            .contains("no fine-tuned arm with a sample count")
    );
    assert!(read(&f, "plots/loss.svg").contains("no lora-train input"));
    assert!(
        !read(&f, "report.md").contains(" (+"),
        "no deltas without LoRA rows"
    );
}

#[test]
fn lora_without_baseline_and_whole_pool_arms() {
    let model = &MODELS[1];
    let mut whole_pool = results(model, Some(1), 0.6);
    whole_pool.adapter.as_mut().unwrap().samples = None;
    whole_pool.samples = None;
    let single = results(model, Some(300), 0.4);
    let mut empty = results(&MODELS[0], None, 0.0);
    empty.overall = Scores::default();
    empty.perplexity = None;
    let f = single_input_fixture(&[
        (whole_pool, "eval[all]"),
        (single, "eval[300]"),
        (empty, "baseline[empty]"),
    ]);
    run_stage(&f, &default_params()).unwrap();
    let all = all_outputs(&f);
    assert!(all.iter().all(|(_, t)| !t.contains("NaN")));

    let table = report::show(&f.out, ShowFormat::Table).unwrap();
    let row = |arm_key: &str| {
        table
            .lines()
            .find(|l| l.contains(&key_of(arm_key)[..12]))
            .unwrap_or_else(|| panic!("no row for {arm_key}"))
            .to_string()
    };
    let qwen_300 = row("eval[300]");
    assert!(
        qwen_300.contains("| 300 ") && qwen_300.contains("0.400") && !qwen_300.contains('('),
        "{qwen_300}"
    );
    let qwen_all = row("eval[all]");
    assert!(qwen_all.contains("| all "), "{qwen_all}");
    let empty = row("baseline[empty]");
    let dashes = empty.matches(" – ").count();
    assert_eq!(
        dashes,
        ungrounded_defaults(),
        "an unscored row shows only dashes (and no arm here was checked against a spec): {empty}"
    );
    // Whole-pool rows sort after every sample count.
    assert!(table.find(&key_of("eval[300]")[..12]) < table.find(&key_of("eval[all]")[..12]));

    let svg = read(&f, "plots/ablation-exact_match.svg");
    assert!(
        svg.contains("1 LoRA arm(s) trained on the whole pool are not plotted"),
        "{svg}"
    );
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let ticks: Vec<&str> = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("x-ticks"))
        .flat_map(|g| g.children().filter_map(|t| t.text()))
        .collect();
    assert!(
        ticks.len() >= 2,
        "a single sample count still gets an axis: {ticks:?}"
    );
    let point = doc
        .descendants()
        .find(|n| n.attribute("class") == Some("point"))
        .unwrap();
    let frame = doc
        .descendants()
        .find(|n| n.attribute("class") == Some("frame"))
        .unwrap();
    let (x0, w) = (attr(frame, "x"), attr(frame, "width"));
    assert!(
        attr(point, "cx") > x0 && attr(point, "cx") < x0 + w,
        "the point lies inside the plot"
    );
}
