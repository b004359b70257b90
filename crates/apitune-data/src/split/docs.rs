//! `docs.jsonl`: what a user has for an API that training never saw, its spec's documentation
//! examples. For every level-3 API generated from an OpenAPI spec, each of its records in the
//! training phrasing (an example per operation and language, as the spec renders it). Retrieval
//! draws level-3 in-context examples from here, never from the level-3 test file.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use super::super::error::DataError;
use super::super::normalize::normalize_record;
use super::read_records;

pub const DOCS_FILE: &str = "docs.jsonl";

/// Writes `out_dir/docs.jsonl` from the ingest records at `input_path`: the spec-generated
/// records of the APIs in `level3_path`. Returns how many records it holds.
pub(super) fn write_docs(
    input_path: &Path,
    level3_path: &Path,
    tab_width: usize,
    out_dir: &Path,
) -> Result<u64, DataError> {
    let mut heldout_apis = BTreeSet::new();
    if level3_path.exists() {
        for record in read_records(level3_path) {
            heldout_apis.insert(record?.api_name);
        }
    }
    let out_path = out_dir.join(DOCS_FILE);
    let file = File::create(&out_path)
        .map_err(|e| DataError::io(&out_path, "creating documentation examples", e))?;
    let mut out = BufWriter::new(file);
    let mut written = 0;
    if !heldout_apis.is_empty() {
        for record in read_records(input_path) {
            let record = normalize_record(record?, tab_width);
            let documented = record.spec_id.is_some() && heldout_apis.contains(&record.api_name);
            if !documented || record.code.is_empty() || record.instruction.is_empty() {
                continue;
            }
            serde_json::to_writer(&mut out, &record).map_err(|e| {
                DataError::io(&out_path, "writing documentation examples", e.into())
            })?;
            out.write_all(b"\n")
                .map_err(|e| DataError::io(&out_path, "writing documentation examples", e))?;
            written += 1;
        }
    }
    out.flush()
        .map_err(|e| DataError::io(&out_path, "writing documentation examples", e))?;
    Ok(written)
}
