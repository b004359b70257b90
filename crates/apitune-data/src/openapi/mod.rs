//! OpenAPI 3.0/3.1 documents (JSON or YAML) into `ApiRecord`s: one record per operation per
//! target language, with an httpsnippet-shaped snippet (or the spec's own `x-code-samples` /
//! `x-codeSamples` entry for that language when it has one).
//!
//! Swagger 2.0 documents are skipped with the counted reason `swagger2_unsupported` (APIs.guru's
//! npm collection ships 3.x only); they are bad records under `on_bad_record = "error"`.

mod contract;
pub mod depth;
mod operation;
mod refs;
pub mod request;
pub mod snippets;

use std::path::Path;

use serde_json::Value;

use super::error::{BadReason, DataError, RecordLocation};
use super::lang::canonical_lang;
use super::record::ApiRecord;

pub use contract::{ApiContract, BodyContract, OperationContract, ParamContract, api_contract};
pub use operation::{Operation, operations};
pub use refs::Resolver;

/// Longest API description kept (its first paragraph).
pub const MAX_API_DESCRIPTION_CHARS: usize = 500;

/// The deepest nesting serde_json accepts (it refuses the next level quickly, while parsing).
const JSON_NESTING_LIMIT: usize = 127;

/// Reads a spec file into a JSON value (YAML by extension `.yaml`/`.yml`, JSON otherwise).
pub fn load_spec(path: &Path) -> Result<Value, DataError> {
    let bad = |message: String| DataError::BadRecord {
        path: path.to_path_buf(),
        location: RecordLocation::WholeFile,
        reason: BadReason::InvalidSpec,
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, "reading OpenAPI spec", e))?;
    let is_yaml = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"));
    let too_deep = |line: u64, limit: usize| DataError::BadRecord {
        path: path.to_path_buf(),
        location: RecordLocation::Line { line },
        reason: BadReason::InvalidSpec,
        message: format!("nesting deeper than {limit} levels; OpenAPI specs never need this"),
    };
    let document: Value = if is_yaml {
        // The YAML parser takes super-linear time on deep nesting before its own limit stops it.
        if let Some(line) = depth::yaml_too_deep(&bytes, depth::MAX_YAML_NESTING) {
            return Err(too_deep(line, depth::MAX_YAML_NESTING));
        }
        serde_norway::from_slice(&bytes).map_err(|e| bad(format!("not valid YAML: {e}")))?
    } else {
        serde_json::from_slice(&bytes).map_err(|e| {
            // serde_json stops at its recursion limit as it reads: linear time.
            if e.to_string().starts_with("recursion limit exceeded") {
                too_deep(e.line() as u64, JSON_NESTING_LIMIT)
            } else {
                bad(format!("not valid JSON: {e}"))
            }
        })?
    };
    check_version(path, &document)?;
    Ok(document)
}

fn check_version(path: &Path, document: &Value) -> Result<(), DataError> {
    let bad = |reason, message: String| DataError::BadRecord {
        path: path.to_path_buf(),
        location: RecordLocation::WholeFile,
        reason,
        message,
    };
    if !document.is_object() {
        return Err(bad(
            BadReason::InvalidSpec,
            "an OpenAPI document must be an object".into(),
        ));
    }
    if let Some(version) = document.get("openapi") {
        let version = version
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| version.to_string());
        if !version.starts_with("3.") {
            return Err(bad(
                BadReason::UnsupportedOpenApiVersion,
                format!("openapi version {version}: only 3.0 and 3.1 are supported"),
            ));
        }
        if !document.get("paths").is_some_and(Value::is_object)
            && document.get("webhooks").is_none()
        {
            return Err(bad(BadReason::InvalidSpec, "no `paths` object".into()));
        }
        return Ok(());
    }
    if document.get("swagger").is_some() {
        return Err(bad(
            BadReason::Swagger2Unsupported,
            "Swagger 2.0 document: convert it to OpenAPI 3 (e.g. with swagger2openapi)".into(),
        ));
    }
    Err(bad(
        BadReason::InvalidSpec,
        "no `openapi` version field: not an OpenAPI document".into(),
    ))
}

/// Counts from converting one spec.
#[derive(Debug, Default, Clone)]
pub struct SpecStats {
    pub operations: u64,
    pub records: u64,
    pub from_code_samples: u64,
    pub unresolved_refs: u64,
}

/// What a spec's `info` says about the whole API.
struct ApiInfo {
    /// `info.title`, or the spec's id when it has none.
    name: String,
    /// The first paragraph of `info.description`.
    description: String,
    /// `x-apisguru-categories`: the records' domain where an operation has no tags.
    categories: Vec<String>,
}

impl ApiInfo {
    fn of(document: &Value, spec_id: &str) -> Self {
        let info = document.get("info");
        let text = |key: &str| {
            info.and_then(|i| i.get(key))
                .and_then(Value::as_str)
                .unwrap_or("")
                .trim()
                .to_string()
        };
        let mut name = text("title");
        if name.is_empty() {
            name = spec_id.to_string();
        }
        // API Pack's api_description is a line or two; specs often hold pages of markdown here.
        let full = text("description");
        let first_paragraph = full
            .split("\n\n")
            .map(str::trim)
            .find(|p| !p.is_empty())
            .unwrap_or("");
        let categories = info
            .and_then(|i| i.get("x-apisguru-categories"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Self {
            name,
            description: operation::truncate_text(first_paragraph, MAX_API_DESCRIPTION_CHARS),
            categories,
        }
    }
}

/// Converts a loaded spec into records for `langs`, calling `emit` for each; `emit` returns
/// `false` to stop. `spec_id` (the spec's path relative to the source root, without extension)
/// prefixes every `unique_id`.
pub fn spec_records(
    document: &Value,
    spec_id: &str,
    langs: &[String],
    emit: &mut dyn FnMut(ApiRecord) -> Result<bool, DataError>,
) -> Result<SpecStats, DataError> {
    let resolver = Resolver::new(document);
    let mut stats = SpecStats::default();
    let ApiInfo {
        name: api_name,
        description: api_description,
        categories: api_categories,
    } = ApiInfo::of(document, spec_id);
    for (op_index, op) in operations(document, &resolver).into_iter().enumerate() {
        stats.operations += 1;
        let (instruction, instruction_test) = op.phrasings(&api_name);
        let domain = if op.tags.is_empty() {
            api_categories.clone()
        } else {
            op.tags.clone()
        };
        for lang in langs {
            let sample = op
                .code_samples
                .iter()
                .find(|(label, _)| canonical_lang(label) == *lang);
            let code = match sample {
                Some((_, source)) => {
                    stats.from_code_samples += 1;
                    source.clone()
                }
                None => match snippets::render(lang, &op.request) {
                    Some(code) => code,
                    None => continue,
                },
            };
            let record = ApiRecord {
                api_name: api_name.clone(),
                api_description: api_description.clone(),
                lang: lang.clone(),
                path: op.request.path.clone(),
                method: Some(op.request.method.clone()),
                functionality: op.functionality.clone(),
                description: op.description.clone(),
                domain: domain.clone(),
                instruction: instruction.clone(),
                instruction_test: instruction_test.clone(),
                code,
                api_arguments: op.arguments.clone(),
                unique_id: format!("{spec_id}_{op_index}_{lang}"),
                host: op.known_host.clone(),
                base_url: Some(op.base_url.clone()),
                spec_id: Some(spec_id.to_string()),
            };
            stats.records += 1;
            if !emit(record)? {
                stats.unresolved_refs = resolver.unresolved.get();
                return Ok(stats);
            }
        }
    }
    stats.unresolved_refs = resolver.unresolved.get();
    Ok(stats)
}
