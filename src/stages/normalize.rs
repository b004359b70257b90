//! `normalize`: cleans and de-duplicates records, then splits them by seed into a training pool and
//! API Pack's three held-out levels.

use anyhow::Context;

use crate::data::{self, NormalizeParams};
use crate::validate::{MAX_RECORDS, Problems, Validate};

use super::{PlanContext, RunContext, StageKind};

pub struct Normalize;

/// Widest tab stop `tab_width` may set.
const MAX_TAB_WIDTH: u64 = 64;

impl Validate for NormalizeParams {
    fn validate(&self, out: &mut Problems) {
        let heldout = &self.heldout;
        for (level, size) in [
            ("level1", heldout.level1),
            ("level2", heldout.level2),
            ("level3", heldout.level3),
        ] {
            out.int(&format!("heldout.{level}"), size, 0, MAX_RECORDS);
        }
        out.int("heldout.max_api_percent", heldout.max_api_percent, 1, 100);
        out.int("heldout.level3_apis", heldout.level3_apis, 0, MAX_RECORDS);
        out.opt_int("samples", self.samples, 1, MAX_RECORDS);
        out.int("tab_width", self.tab_width, 1, MAX_TAB_WIDTH);
    }
}

impl StageKind for Normalize {
    const KIND: &'static str = "normalize";
    // 2: the ingest's API contracts are passed on.
    const VERSION: u32 = 2;
    type Params = NormalizeParams;

    fn runtime_facts(_params: &NormalizeParams, ctx: &PlanContext) -> serde_json::Value {
        serde_json::json!({ "seed": ctx.seed })
    }

    fn run(params: &NormalizeParams, ctx: &RunContext) -> anyhow::Result<serde_json::Value> {
        let input = ctx.input_of_kind("ingest")?;
        let mut summary = data::run_normalize(params, ctx.seed, &input.dir, ctx.out_dir)?;
        // The specs' contracts travel with the split, for the eval stages' grounded checks.
        let contracts = input.dir.join(data::CONTRACTS_FILE);
        if contracts.exists() {
            let copy = ctx.out_dir.join(data::CONTRACTS_FILE);
            std::fs::copy(&contracts, &copy).with_context(|| {
                format!("copying {} to {}", contracts.display(), copy.display())
            })?;
        }
        let total = |split: &str| summary["splits"][split]["total"].as_u64().unwrap_or(0);
        let headline = format!(
            "train {} · level1 {} · level2 {} · level3 {}",
            total("train"),
            total("level1"),
            total("level2"),
            total("level3")
        );
        super::set_headline(&mut summary, headline);
        Ok(summary)
    }
}
