//! `ingest`: API Pack files, JSONL or OpenAPI specs in, one `records.jsonl` of API records out.

use std::path::PathBuf;

use crate::data::{self, IngestParams};

use super::{PlanContext, RunContext, StageKind};

pub struct Ingest;

impl StageKind for Ingest {
    const KIND: &'static str = "ingest";
    const VERSION: u32 = 1;
    type Params = IngestParams;

    fn input_files(params: &IngestParams, ctx: &PlanContext) -> anyhow::Result<Vec<PathBuf>> {
        Ok(data::ingest_input_files(params, ctx.base_dir)?)
    }

    fn run(params: &IngestParams, ctx: &RunContext) -> anyhow::Result<serde_json::Value> {
        let progress = |n: u64| (ctx.progress)(n, None, "records");
        Ok(data::run_ingest(params, ctx.base_dir, ctx.out_dir, &progress)?)
    }
}
