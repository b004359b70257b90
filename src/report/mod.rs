//! Results tables and plots of a study, from cached `eval` and `lora-train` artifacts.
//!
//! The `report` stage loads its inputs ([`inputs`]), builds one [`Report`] ([`table`]) and writes
//! `report.json` (that structure), `report.md`, `report.csv`, `report.html` (self-contained) and
//! `plots/*.svg`. [`show`] renders a written report again for `apitune show`.

pub mod html;
pub mod metric;
pub mod plots;
pub mod svg;
pub mod table;
pub mod text;

use std::path::Path;

use anyhow::Context;

pub use crate::artifacts::{AdapterInfo, EvalResults, LevelScores, TrainStep, TrainSummary};
pub use metric::Metric;
pub use table::{EvalInput, Report, Row, TrainInput};

use crate::artifacts::Input;

pub const REPORT_JSON: &str = "report.json";
pub const REPORT_MD: &str = "report.md";
pub const REPORT_CSV: &str = "report.csv";
pub const REPORT_HTML: &str = "report.html";
pub const PLOTS_DIR: &str = "plots";
pub const LOSS_PLOT: &str = "plots/loss.svg";

/// Relative path of a metric's ablation chart.
pub fn ablation_plot(metric: Metric) -> String {
    format!("{PLOTS_DIR}/ablation-{metric}.svg")
}

/// Relative path of a metric's per-level ablation chart.
pub fn levels_plot(metric: Metric) -> String {
    format!("{PLOTS_DIR}/levels-{metric}.svg")
}

/// Loads every `eval` and `lora-train` input; other kinds are ignored. Errors name the arm.
pub fn load_inputs(inputs: &[Input]) -> anyhow::Result<(Vec<EvalInput>, Vec<TrainInput>)> {
    let mut evals = Vec::new();
    let mut trains = Vec::new();
    for input in inputs {
        match input.kind.as_str() {
            "eval" => {
                let results = EvalResults::load(&input.dir).with_context(|| {
                    format!(
                        "eval arm `{}` (key {})",
                        input.arm,
                        table::short_key(&input.key)
                    )
                })?;
                evals.push(EvalInput {
                    arm: input.arm.clone(),
                    key: input.key.clone(),
                    results,
                });
            }
            "lora-train" => {
                let context = || {
                    format!(
                        "lora-train arm `{}` (key {})",
                        input.arm,
                        table::short_key(&input.key)
                    )
                };
                let summary = TrainSummary::load(&input.dir).with_context(context)?;
                let steps = crate::artifacts::load_train_steps(&input.dir).with_context(context)?;
                let seconds = input.run_facts["seconds"].as_f64();
                trains.push(TrainInput {
                    arm: input.arm.clone(),
                    key: input.key.clone(),
                    summary,
                    steps,
                    seconds,
                });
            }
            _ => {}
        }
    }
    Ok((evals, trains))
}

/// Builds the report and writes every output file into `out_dir`.
pub fn write_report(
    out_dir: &Path,
    title: String,
    metrics: &[Metric],
    evals: &[EvalInput],
    trains: &[TrainInput],
) -> anyhow::Result<Report> {
    // Spec-grounded columns only where some arm was checked against a spec (OpenAPI sources).
    let metrics: Vec<Metric> = metrics
        .iter()
        .copied()
        .filter(|m| {
            !m.is_grounded()
                || evals
                    .iter()
                    .any(|e| m.of_scores(&e.results.overall).is_some())
        })
        .collect();
    let metrics = metrics.as_slice();
    let report = table::build(title, metrics, evals, trains);
    let write = |rel: &str, text: &str| {
        let path = out_dir.join(rel);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    };
    std::fs::create_dir_all(out_dir.join(PLOTS_DIR))
        .with_context(|| format!("cannot create {}", out_dir.join(PLOTS_DIR).display()))?;

    let mut charts = Vec::new();
    for &m in metrics {
        let svg = plots::ablation(&report, m);
        write(&ablation_plot(m), &svg)?;
        charts.push((format!("{m} vs training samples"), svg));
        if let Some(svg) = plots::levels(&report, m) {
            write(&levels_plot(m), &svg)?;
            charts.push((format!("{m} vs training samples, by level"), svg));
        }
    }
    let loss = plots::loss(trains);
    write(LOSS_PLOT, &loss)?;
    charts.push(("training loss".to_string(), loss));

    write(
        REPORT_JSON,
        &(serde_json::to_string_pretty(&report)? + "\n"),
    )?;
    write(REPORT_MD, &text::markdown(&report))?;
    write(REPORT_CSV, &text::csv(&report)?)?;
    write(REPORT_HTML, &html::page(&report, &charts))?;
    Ok(report)
}

/// Reads `report.json` from a report artifact directory.
pub fn load_report(report_dir: &Path) -> anyhow::Result<Report> {
    let path = report_dir.join(REPORT_JSON);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {}; is this a `report` stage's artifact?",
            path.display()
        )
    })?;
    let mut de = serde_json::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let at = e.path().to_string();
        anyhow::anyhow!(
            "{} at `{at}`: {}; it was written by another apitune version, rerun the report stage",
            path.display(),
            e.into_inner()
        )
    })
}

/// How `apitune show` prints a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShowFormat {
    /// Title, headline and the results table as padded Markdown.
    Table,
    /// `report.json`.
    Json,
    /// The results table as CSV.
    Csv,
}

/// Renders the results of a report artifact directory.
pub fn show(report_dir: &Path, format: ShowFormat) -> anyhow::Result<String> {
    let report = load_report(report_dir)?;
    Ok(match format {
        ShowFormat::Table => {
            let (header, cells) = text::main_table(&report);
            format!(
                "{}\n{}\n\n{}",
                report.title,
                report.headline,
                text::markdown_table(&header, &cells)
            )
        }
        ShowFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
        ShowFormat::Csv => text::csv(&report)?,
    })
}
