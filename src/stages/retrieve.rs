//! `retrieve`: the in-context examples of every training record and held-out query (BM25 over
//! instructions, leak-free pools; see [`crate::data::retrieval`]). `lora-train` and `eval` stages
//! that need a `retrieve` stage put its examples before their prompts, so training and test
//! prompts are built the same way.

use crate::data::retrieval::{self, MAX_SHOTS, RetrievalParams};
use crate::validate::{Problems, Validate};

use super::{RunContext, StageKind};

pub struct Retrieve;

impl Validate for RetrievalParams {
    fn validate(&self, out: &mut Problems) {
        out.int("k", self.k, 1, MAX_SHOTS as u64);
    }
}

impl StageKind for Retrieve {
    const KIND: &'static str = "retrieve";
    const VERSION: u32 = 1;
    type Params = RetrievalParams;

    fn run(params: &RetrievalParams, ctx: &RunContext) -> anyhow::Result<serde_json::Value> {
        let split = ctx.input_of_kind("normalize")?;
        let mut summary = retrieval::build_shots(&split.dir, params, ctx.out_dir)?;
        let level = |name: &str| {
            let s = &summary["splits"][name];
            format!(
                "{name} {}/{}",
                s["with_shots"].as_u64().unwrap_or(0),
                s["queries"].as_u64().unwrap_or(0)
            )
        };
        let headline = format!(
            "{} examples per prompt · with examples: {} · {} · {} · {}",
            params.k,
            level("train"),
            level("level1"),
            level("level2"),
            level("level3")
        );
        super::set_headline(&mut summary, headline);
        Ok(summary)
    }
}
