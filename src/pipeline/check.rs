//! `check`: the CI gate. Passes only when every arm of the manifest is cached and up to date and
//! every `[expect]` entry holds on the cached results. Runs nothing.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use super::plan::{self, ArmPlan, Decision, Keyer};
use crate::manifest::Expectation;

#[derive(Debug, Serialize)]
pub struct ExpectationResult {
    pub target: String,
    pub value: Option<f64>,
    pub bound: String,
    pub ok: bool,
    /// Why it failed when it could not be evaluated (stale arm, missing metric).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CheckReport {
    pub stale: Vec<ArmPlan>,
    pub expectations: Vec<ExpectationResult>,
}

impl CheckReport {
    pub fn passed(&self) -> bool {
        self.stale.is_empty() && self.expectations.iter().all(|e| e.ok)
    }
}

pub fn check(keyer: &Keyer) -> anyhow::Result<CheckReport> {
    let all: BTreeSet<usize> = (0..keyer.dag.arms.len()).collect();
    let plans = plan::plan(keyer, &all, &BTreeSet::new())?;
    let mut expectations = Vec::new();
    for (target, exp) in &keyer.manifest.expect {
        let bound = describe(exp);
        let Some((arm, metric)) = keyer.dag.split_expectation(target) else {
            expectations.push(ExpectationResult {
                target: target.clone(),
                value: None,
                bound,
                ok: false,
                problem: Some("names no arm".into()),
            });
            continue;
        };
        let plan = plans
            .iter()
            .find(|p| p.id == arm)
            .expect("every arm is planned");
        let Decision::Hit { key, .. } = &plan.decision else {
            let problem = format!("`{}` is not up to date; run it first", plan.arm);
            expectations.push(ExpectationResult {
                target: target.clone(),
                value: None,
                bound,
                ok: false,
                problem: Some(problem),
            });
            continue;
        };
        let entry = keyer
            .cache
            .lookup(key)?
            .ok_or_else(|| anyhow::anyhow!("cache entry {key} vanished during check"))?;
        if let Err(damage) = keyer.cache.verify_for_use(&entry)? {
            expectations.push(ExpectationResult {
                target: target.clone(),
                value: None,
                bound,
                ok: false,
                problem: Some(damage),
            });
            continue;
        }
        match metric_value(&entry, metric) {
            Ok(value) => {
                let ok = holds(exp, value);
                expectations.push(ExpectationResult {
                    target: target.clone(),
                    value: Some(value),
                    bound,
                    ok,
                    problem: None,
                });
            }
            Err(problem) => expectations.push(ExpectationResult {
                target: target.clone(),
                value: None,
                bound,
                ok: false,
                problem: Some(problem),
            }),
        }
    }
    let stale = plans.into_iter().filter(|p| !p.is_hit()).collect();
    Ok(CheckReport {
        stale,
        expectations,
    })
}

/// Finds `metric` (a dotted path) in the arm's summary, then in `metrics.json` or `results.json`
/// inside its artifact.
pub fn metric_value(entry: &crate::cache::Entry, metric: &str) -> Result<f64, String> {
    let mut sources = vec![("summary".to_string(), entry.meta.summary.clone())];
    for file in ["metrics.json", "results.json"] {
        let path = entry.dir.join(file);
        if let Ok(text) = std::fs::read_to_string(&path) {
            match serde_json::from_str(&text) {
                Ok(v) => sources.push((file.to_string(), v)),
                Err(e) => return Err(format!("{} is not valid JSON: {e}", path.display())),
            }
        }
    }
    for (_, source) in &sources {
        if let Some(v) = lookup(source, metric) {
            return v
                .as_f64()
                .ok_or_else(|| format!("`{metric}` is {v}, not a number"));
        }
    }
    let available: Vec<String> = sources
        .iter()
        .flat_map(|(_, v)| v.as_object().into_iter().flat_map(|o| o.keys().cloned()))
        .collect();
    Err(format!(
        "no metric `{metric}` in the arm's results (top-level names: {})",
        available.join(", ")
    ))
}

fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    // Whole-key match first, so metric names containing dots still resolve.
    if let Some(v) = value.get(path) {
        return Some(v);
    }
    let (head, rest) = path.split_once('.')?;
    lookup(value.get(head)?, rest)
}

fn holds(e: &Expectation, v: f64) -> bool {
    let near = match (e.value, e.tol) {
        (Some(want), Some(tol)) => (v - want).abs() <= tol,
        _ => true,
    };
    near && e.min.is_none_or(|lo| v >= lo) && e.max.is_none_or(|hi| v <= hi)
}

fn describe(e: &Expectation) -> String {
    let mut parts = Vec::new();
    if let (Some(v), Some(t)) = (e.value, e.tol) {
        parts.push(format!("{v} ± {t}"));
    }
    if let Some(lo) = e.min {
        parts.push(format!("≥ {lo}"));
    }
    if let Some(hi) = e.max {
        parts.push(format!("≤ {hi}"));
    }
    parts.join(", ")
}
