//! `ingest`: API Pack files, JSONL or OpenAPI specs in, one `records.jsonl` of API records out.

use std::path::PathBuf;

use crate::data::{self, IngestParams};

use super::{PlanContext, RunContext, StageKind};

pub struct Ingest;

impl StageKind for Ingest {
    const KIND: &'static str = "ingest";
    const VERSION: u32 = 2;
    type Params = IngestParams;

    fn input_files(params: &IngestParams, ctx: &PlanContext) -> anyhow::Result<Vec<PathBuf>> {
        Ok(data::ingest_input_files(params, ctx.base_dir)?)
    }

    fn run(params: &IngestParams, ctx: &RunContext) -> anyhow::Result<serde_json::Value> {
        let progress = |n: u64| (ctx.progress)(n, None, "records");
        let mut summary = data::run_ingest(params, ctx.base_dir, ctx.out_dir, &progress)?;
        let count = |k: &str| summary.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
        let langs = summary
            .get("per_lang")
            .and_then(|v| v.as_object())
            .map_or(0, |m| m.len());
        let headline = format!(
            "{} records in {langs} languages, {} skipped",
            count("records"),
            count("skipped_total")
        );
        super::set_headline(&mut summary, headline);
        Ok(summary)
    }
}
