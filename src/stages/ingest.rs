//! `ingest`: API Pack files, JSONL or OpenAPI specs in, one `records.jsonl` of API records out.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::data::{self, IngestParams, SourceSpec};
use crate::validate::{MAX_RECORDS, Problems, Validate};

use super::{PlanContext, RunContext, StageKind};

pub struct Ingest;

impl Validate for IngestParams {
    fn validate(&self, out: &mut Problems) {
        let (kind, patterns) = match &self.source {
            SourceSpec::Openapi(p) => ("openapi", p),
            SourceSpec::Apipack(p) => ("apipack", p),
            SourceSpec::Jsonl(p) => ("jsonl", p),
        };
        let patterns: Vec<String> = patterns
            .patterns()
            .into_iter()
            .map(str::to_string)
            .collect();
        out.names(&format!("source.{kind}"), &patterns, "path or glob");
        if let Some(langs) = &self.langs {
            out.names("langs", langs, "language");
        }
        out.opt_int("limit", self.limit, 1, MAX_RECORDS);
    }
}

impl StageKind for Ingest {
    const KIND: &'static str = "ingest";
    // 3: OpenAPI records name their spec, whose contract is written beside them.
    const VERSION: u32 = 3;
    type Params = IngestParams;

    fn input_files(params: &IngestParams, ctx: &PlanContext) -> anyhow::Result<Vec<PathBuf>> {
        let inputs = data::ingest_inputs(params, ctx.base_dir)?;
        for skipped in &inputs.skipped {
            warn_once(format!(
                "warning: ingest: {}",
                skipped.message(ctx.base_dir)
            ));
        }
        Ok(inputs.files)
    }

    fn run(params: &IngestParams, ctx: &RunContext) -> anyhow::Result<serde_json::Value> {
        let progress = |n: u64| (ctx.progress)(n, None, "records");
        let mut summary = data::run_ingest(params, ctx.base_dir, ctx.out_dir, &progress)?;
        let count = |k: &str| summary.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
        let langs = summary
            .get("per_lang")
            .and_then(|v| v.as_object())
            .map_or(0, |m| m.len());
        let mut headline = format!(
            "{} records in {langs} languages, {} skipped",
            count("records"),
            count("skipped_total")
        );
        let links = summary
            .get("skipped_links")
            .and_then(|v| v.as_array())
            .map_or(0, Vec::len);
        if links > 0 {
            headline.push_str(&format!(", {links} symbolic links not followed"));
        }
        super::set_headline(&mut summary, headline);
        Ok(summary)
    }
}

/// Prints `message` to stderr unless this process printed it already (planning and running
/// both list a stage's inputs).
fn warn_once(message: String) {
    static PRINTED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let mut printed = PRINTED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if !printed.contains(&message) {
        eprintln!("{message}");
        printed.insert(message);
    }
}
