//! `report`: tables and plots over every `eval` and `lora-train` arm it needs (see [`crate::report`]).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{RunContext, StageKind};
use crate::report::{self, Metric};
use crate::validate::{Problems, Validate};

pub struct Report;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportParams {
    /// Metric columns, in order; also one ablation plot each.
    #[serde(default = "Metric::defaults")]
    pub metrics: Vec<Metric>,
    /// Page title; defaults to "apitune report".
    #[serde(default)]
    pub title: Option<String>,
}

impl Validate for ReportParams {
    fn validate(&self, out: &mut Problems) {
        out.require(!self.metrics.is_empty(), "metrics", |p| {
            format!("{p} must list at least one metric (leave it out for the defaults)")
        });
    }
}

impl StageKind for Report {
    const KIND: &'static str = "report";
    // 2: 95% interval table, per-level curves with bands.
    const VERSION: u32 = 2;
    const AGGREGATES: bool = true;
    type Params = ReportParams;

    fn run(params: &ReportParams, ctx: &RunContext) -> anyhow::Result<serde_json::Value> {
        anyhow::ensure!(
            !params.metrics.is_empty(),
            "stage `{}`: `metrics` is empty; list at least one metric",
            ctx.arm
        );
        let (evals, trains) = report::load_inputs(ctx.inputs)?;
        if evals.is_empty() {
            anyhow::bail!(
                "stage `{}` has no `eval` input; add the eval stages to its `needs`",
                ctx.arm
            );
        }
        let title = params
            .title
            .clone()
            .unwrap_or_else(|| "apitune report".to_string());
        let written = report::write_report(ctx.out_dir, title, &params.metrics, &evals, &trains)?;
        let mut summary = serde_json::json!({
            "rows": written.rows.len(),
            "models": written.models.len(),
            "eval_inputs": evals.len(),
            "train_inputs": trains.len(),
            "files": [report::REPORT_HTML, report::REPORT_MD, report::REPORT_CSV, report::REPORT_JSON],
        });
        super::set_headline(&mut summary, written.headline.clone());
        Ok(summary)
    }
}
