//! `normalize`: cleans and de-duplicates records, then splits them by seed into a training pool and
//! API Pack's three held-out levels.

use crate::data::{self, NormalizeParams};

use super::{PlanContext, RunContext, StageKind};

pub struct Normalize;

impl StageKind for Normalize {
    const KIND: &'static str = "normalize";
    const VERSION: u32 = 1;
    type Params = NormalizeParams;

    fn runtime_facts(_params: &NormalizeParams, ctx: &PlanContext) -> serde_json::Value {
        serde_json::json!({ "seed": ctx.seed })
    }

    fn run(params: &NormalizeParams, ctx: &RunContext) -> anyhow::Result<serde_json::Value> {
        let input = ctx.input_of_kind("ingest")?;
        Ok(data::run_normalize(params, ctx.seed, &input.dir, ctx.out_dir)?)
    }
}
