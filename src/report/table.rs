//! The report's data: one row per eval arm (model × zero-shot/LoRA × training samples), deltas
//! against the same model's zero-shot row, per-language and per-level breakdowns, and training
//! runs. `report.json` is this structure; every other output is rendered from it.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::metric::Metric;
use crate::artifacts::{AdapterInfo, EvalResults, TrainStep, TrainSummary};
use crate::metrics::bootstrap::Interval;
use crate::metrics::corpus::Scores;

/// An `eval` input, loaded.
#[derive(Debug, Clone)]
pub struct EvalInput {
    pub arm: String,
    /// Cache key (hex) of the eval artifact.
    pub key: String,
    pub results: EvalResults,
}

/// A `lora-train` input, loaded.
#[derive(Debug, Clone)]
pub struct TrainInput {
    pub arm: String,
    /// Cache key (hex) of the lora-train artifact.
    pub key: String,
    pub summary: TrainSummary,
    pub steps: Vec<TrainStep>,
    /// Wall-clock seconds of training, a run fact from the entry's metadata (absent if unknown).
    pub seconds: Option<f64>,
}

/// Whether a row evaluates the base model or a fine-tuned adapter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    ZeroShot,
    Lora,
}

/// The method column: `zero-shot` / `LoRA`, with the retrieved examples per prompt when the arm
/// used a `retrieve` stage (`3-shot`, `LoRA + 3-shot`).
pub fn method_label(method: Method, shots: usize) -> String {
    match (method, shots) {
        (_, 0) => method.label().to_string(),
        (Method::ZeroShot, k) => format!("{k}-shot"),
        (Method::Lora, k) => format!("LoRA + {k}-shot"),
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Method {
    pub fn label(self) -> &'static str {
        match self {
            Method::ZeroShot => "zero-shot",
            Method::Lora => "LoRA",
        }
    }
}

/// Where a number came from: a stage arm and its artifact's cache key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    pub arm: String,
    pub key: String,
}

impl Source {
    /// The first 12 hex digits, as `apitune` prints keys elsewhere.
    pub fn short_key(&self) -> &str {
        short_key(&self.key)
    }
}

pub fn short_key(key: &str) -> &str {
    key.get(..12).unwrap_or(key)
}

/// Values and deltas of one set of scores.
pub type Values = IndexMap<Metric, Option<f64>>;

/// 95% bootstrap intervals (resampled by API) of the metrics that have one.
pub type Intervals = IndexMap<Metric, Interval>;

/// The intervals of `scores` for the report's `metrics`, and how many APIs they resampled.
fn intervals_of(metrics: &[Metric], scores: &Scores) -> (Intervals, Option<usize>) {
    let Some(computed) = &scores.intervals else {
        return (Intervals::new(), None);
    };
    let intervals = metrics
        .iter()
        .filter_map(|&m| computed.metrics.get(m.name()).map(|i| (m, *i)))
        .collect();
    (intervals, Some(computed.clusters))
}

/// One row of the main table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub model: String,
    pub method: Method,
    /// Retrieved examples per prompt (0: the study's plain prompt).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub shots: usize,
    /// Training samples of the adapter; `None` for zero-shot, or a LoRA trained on the whole pool.
    pub samples: Option<u64>,
    /// The eval arm that produced the numbers.
    pub eval: Source,
    pub adapter: Option<AdapterInfo>,
    /// The zero-shot row the deltas are taken against; `None` for zero-shot rows, or when the model
    /// has no zero-shot row.
    pub baseline: Option<Source>,
    /// Examples scored.
    pub n: usize,
    pub values: Values,
    /// Fine-tuned minus zero-shot, per metric; empty for zero-shot rows.
    pub deltas: Values,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub intervals: Intervals,
    /// APIs the intervals resampled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apis: Option<usize>,
}

/// One row of a breakdown table (per language, or per held-out level).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BreakdownRow {
    /// Language key or level name.
    pub group: String,
    pub model: String,
    pub method: Method,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub shots: usize,
    pub samples: Option<u64>,
    pub eval: Source,
    pub n: usize,
    pub values: Values,
    pub deltas: Values,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub intervals: Intervals,
    /// APIs the intervals resampled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apis: Option<usize>,
}

/// One `lora-train` run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingRow {
    pub train: Source,
    pub model: String,
    pub samples: Option<u64>,
    pub trainable_params: u64,
    pub tokens_seen: u64,
    pub seconds: Option<f64>,
    pub steps: usize,
    /// Loss at the last logged step.
    pub final_loss: Option<f64>,
}

/// Everything a report shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub title: String,
    pub headline: String,
    pub metrics: Vec<Metric>,
    /// Models in row order.
    pub models: Vec<String>,
    pub rows: Vec<Row>,
    pub per_lang: Vec<BreakdownRow>,
    pub levels: Vec<BreakdownRow>,
    pub training: Vec<TrainingRow>,
}

/// Builds the report from loaded inputs. Rows sort by model name, then zero-shot before LoRA, then
/// retrieved examples per prompt, then training samples, then arm name, so the order never depends on the order inputs arrive in.
pub fn build(
    title: String,
    metrics: &[Metric],
    evals: &[EvalInput],
    trains: &[TrainInput],
) -> Report {
    let mut models: Vec<String> = evals.iter().map(|e| e.results.model.clone()).collect();
    models.sort();
    models.dedup();
    let mut ordered: Vec<&EvalInput> = evals.iter().collect();
    // A LoRA on the whole pool (no sample count) sorts after every sample count.
    ordered.sort_by_cached_key(|e| {
        let r = &e.results;
        (
            r.model.clone(),
            method_of(r),
            r.shots,
            lora_samples(r).unwrap_or(u64::MAX),
            e.arm.clone(),
        )
    });

    let baselines: Vec<Option<&EvalInput>> =
        ordered.iter().map(|e| baseline_for(e, &ordered)).collect();

    let rows: Vec<Row> = ordered
        .iter()
        .zip(&baselines)
        .map(|(e, base)| overall_row(metrics, e, *base))
        .collect();
    let per_lang = breakdown(metrics, &ordered, &baselines, |r| {
        r.per_lang.iter().map(|(k, s)| (k.clone(), s)).collect()
    });
    let levels = breakdown(metrics, &ordered, &baselines, |r| {
        r.levels
            .iter()
            .map(|(k, l)| (k.clone(), &l.overall))
            .collect()
    });

    let training = sorted_trains(trains)
        .into_iter()
        .map(training_row)
        .collect();
    let headline = format!(
        "{}, {}",
        plural(rows.len(), "row"),
        plural(models.len(), "model")
    );
    Report {
        title,
        headline,
        metrics: metrics.to_vec(),
        models,
        rows,
        per_lang,
        levels,
        training,
    }
}

/// The overall row of eval `e`, with its deltas against `base` (its zero-shot baseline).
fn overall_row(metrics: &[Metric], e: &EvalInput, base: Option<&EvalInput>) -> Row {
    let values = overall_values(metrics, &e.results);
    let deltas = match base {
        Some(b) => deltas(&values, &overall_values(metrics, &b.results)),
        None => Values::new(),
    };
    let (intervals, apis) = intervals_of(metrics, &e.results.overall);
    Row {
        model: e.results.model.clone(),
        method: method_of(&e.results),
        shots: e.results.shots,
        samples: lora_samples(&e.results),
        eval: source(e),
        adapter: e.results.adapter.clone(),
        baseline: base.map(source),
        n: e.results.overall.n,
        values,
        deltas,
        intervals,
        apis,
    }
}

fn training_row(t: &TrainInput) -> TrainingRow {
    TrainingRow {
        train: Source {
            arm: t.arm.clone(),
            key: t.key.clone(),
        },
        model: t.summary.model.clone(),
        samples: t.summary.samples,
        trainable_params: t.summary.trainable_params,
        tokens_seen: t.summary.tokens_seen,
        seconds: t.seconds,
        steps: t.steps.len(),
        final_loss: t.steps.last().map(|s| s.loss).filter(|l| l.is_finite()),
    }
}

/// Training runs by model, then samples (whole pool last), then arm name.
pub fn sorted_trains(trains: &[TrainInput]) -> Vec<&TrainInput> {
    let mut sorted: Vec<&TrainInput> = trains.iter().collect();
    sorted.sort_by_cached_key(|t| {
        (
            t.summary.model.clone(),
            t.summary.samples.map_or(u64::MAX, |s| s),
            t.arm.clone(),
        )
    });
    sorted
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Training samples of a LoRA row; zero-shot rows have none, whatever the results say.
fn lora_samples(results: &EvalResults) -> Option<u64> {
    results.adapter.as_ref().and(results.training_samples())
}

fn method_of(results: &EvalResults) -> Method {
    if results.adapter.is_some() {
        Method::Lora
    } else {
        Method::ZeroShot
    }
}

fn source(e: &EvalInput) -> Source {
    Source {
        arm: e.arm.clone(),
        key: e.key.clone(),
    }
}

/// The zero-shot arm a LoRA arm is compared with: of the same model, preferring one decoded the same
/// way; among equals, the first in row order.
fn baseline_for<'a>(e: &EvalInput, ordered: &[&'a EvalInput]) -> Option<&'a EvalInput> {
    e.results.adapter.as_ref()?;
    let candidates: Vec<&'a EvalInput> = ordered
        .iter()
        .copied()
        .filter(|c| c.results.adapter.is_none() && c.results.model == e.results.model)
        .collect();
    // The zero-shot row prompted the same way, else decoded the same way, else any.
    let alike = |c: &&EvalInput| c.results.decoding == e.results.decoding;
    candidates
        .iter()
        .copied()
        .find(|c| alike(c) && c.results.shots == e.results.shots)
        .or_else(|| candidates.iter().copied().find(alike))
        .or(candidates.first().copied())
}

fn values_of(metrics: &[Metric], scores: &Scores, perplexity: Option<f64>) -> Values {
    metrics
        .iter()
        .map(|&m| {
            let v = match m {
                Metric::Perplexity => perplexity.filter(|p| p.is_finite()),
                _ => m.of_scores(scores),
            };
            (m, v)
        })
        .collect()
}

fn overall_values(metrics: &[Metric], results: &EvalResults) -> Values {
    values_of(metrics, &results.overall, results.perplexity)
}

fn deltas(values: &Values, base: &Values) -> Values {
    values
        .iter()
        .map(|(m, v)| {
            let d = match (v, base.get(m).copied().flatten()) {
                (Some(v), Some(b)) => Some(v - b),
                _ => None,
            };
            (*m, d)
        })
        .collect()
}

/// Rows grouped first (language or level, sorted), then in main-table order.
fn breakdown<'r>(
    metrics: &[Metric],
    ordered: &[&'r EvalInput],
    baselines: &[Option<&'r EvalInput>],
    groups: impl Fn(&'r EvalResults) -> Vec<(String, &'r Scores)>,
) -> Vec<BreakdownRow> {
    let mut by_group: BTreeMap<String, Vec<BreakdownRow>> = BTreeMap::new();
    for (e, base) in ordered.iter().zip(baselines) {
        let base_groups: BTreeMap<String, &Scores> = base
            .map(|b| groups(&b.results).into_iter().collect())
            .unwrap_or_default();
        for (group, scores) in groups(&e.results) {
            // Perplexity is measured over the whole test set only.
            let values = values_of(metrics, scores, None);
            let deltas = match (base, base_groups.get(&group)) {
                (Some(_), Some(b)) => deltas(&values, &values_of(metrics, b, None)),
                _ => Values::new(),
            };
            let (intervals, apis) = intervals_of(metrics, scores);
            by_group
                .entry(group.clone())
                .or_default()
                .push(BreakdownRow {
                    group,
                    model: e.results.model.clone(),
                    method: method_of(&e.results),
                    shots: e.results.shots,
                    samples: lora_samples(&e.results),
                    eval: source(e),
                    n: scores.n,
                    values,
                    deltas,
                    intervals,
                    apis,
                });
        }
    }
    by_group.into_values().flatten().collect()
}
