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
        let (value, ok, problem) = match evaluate(keyer, &plans, target, exp) {
            Ok((value, Ok(()))) => (Some(value), true, None),
            Ok((value, Err(why))) => (Some(value), false, why),
            Err(problem) => (None, false, Some(problem)),
        };
        expectations.push(ExpectationResult {
            target: target.clone(),
            value,
            bound,
            ok,
            problem,
        });
    }
    let stale = plans.into_iter().filter(|p| !p.is_hit()).collect();
    Ok(CheckReport {
        stale,
        expectations,
    })
}

/// The target's value and whether `exp` holds on it (with why not, where there is more to say
/// than the bound); `Err` when the target cannot be read.
fn evaluate(
    keyer: &Keyer,
    plans: &[ArmPlan],
    target: &str,
    exp: &Expectation,
) -> Result<(f64, Result<(), Option<String>>), String> {
    let entry = cached_entry(keyer, plans, target)?;
    let metric = metric_of(keyer, target)?;
    let value = metric_value(&entry, metric)?;
    if !holds(exp, value) {
        return Ok((value, Err(None)));
    }
    let Some(other) = &exp.above else {
        return Ok((value, Ok(())));
    };
    let other_entry = cached_entry(keyer, plans, other)?;
    let other_metric = metric_of(keyer, other)?;
    let other_value = metric_value(&other_entry, other_metric)?;
    if value <= other_value {
        return Ok((
            value,
            Err(Some(format!("not above `{other}` = {other_value}"))),
        ));
    }
    if exp.beyond_interval {
        let (low, _) = interval(&entry, metric)?;
        let (_, other_high) = interval(&other_entry, other_metric)?;
        if low <= other_high {
            let why = format!(
                "its interval's low end {low} does not clear `{other}`'s high end {other_high}: the difference is within resampling noise"
            );
            return Ok((value, Err(Some(why))));
        }
    }
    Ok((value, Ok(())))
}

fn metric_of<'a>(keyer: &Keyer, target: &'a str) -> Result<&'a str, String> {
    keyer
        .dag
        .split_expectation(target)
        .map(|(_, metric)| metric)
        .ok_or_else(|| "names no arm".to_string())
}

/// The verified cache entry of the arm `target` names, or why there is none to read.
fn cached_entry(
    keyer: &Keyer,
    plans: &[ArmPlan],
    target: &str,
) -> Result<crate::cache::Entry, String> {
    let (arm, _) = keyer
        .dag
        .split_expectation(target)
        .ok_or_else(|| format!("`{target}` names no arm"))?;
    let plan = plans
        .iter()
        .find(|p| p.id == arm)
        .expect("every arm is planned");
    let Decision::Hit { key, .. } = &plan.decision else {
        return Err(format!("`{}` is not up to date; run it first", plan.arm));
    };
    let entry = keyer
        .cache
        .lookup(key)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("cache entry {key} vanished during check"))?;
    keyer
        .cache
        .verify_for_use(&entry)
        .map_err(|e| e.to_string())?
        .map(|()| entry)
}

/// The 95% interval of `metric` in an eval arm's results: a summary metric (`sacrebleu_corpus`)
/// has its interval under `overall`, a scores path (`levels.level3.overall.syntax`) next to it.
fn interval(entry: &crate::cache::Entry, metric: &str) -> Result<(f64, f64), String> {
    let metric = metric.strip_suffix(".rate").unwrap_or(metric);
    let (scores, name) = metric.rsplit_once('.').unwrap_or(("overall", metric));
    let at = format!("{scores}.intervals.metrics.{name}");
    let bound = |end: &str| {
        metric_value(entry, &format!("{at}.{end}")).map_err(|_| {
            format!("`{metric}` has no interval (eval results carry 95% intervals of their headline metrics)")
        })
    };
    Ok((bound("low")?, bound("high")?))
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
    if let Some(other) = &e.above {
        let how = if e.beyond_interval {
            " beyond its interval"
        } else {
            ""
        };
        parts.push(format!("> {other}{how}"));
    }
    parts.join(", ")
}
