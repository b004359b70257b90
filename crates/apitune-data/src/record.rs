//! `ApiRecord`: the one record type every source is converted into. JSONL of `ApiRecord` is the
//! on-disk format between the data stages.

use serde::{Deserialize, Serialize};

/// One (instruction, API-call snippet) example with its API metadata.
///
/// `lang` is always canonical (see [`crate::lang::canonical_lang`]). In the held-out split
/// files, `instruction` is the query to prompt with (see [`crate::split`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ApiRecord {
    pub api_name: String,
    #[serde(default)]
    pub api_description: String,
    pub lang: String,
    /// OpenAPI path template, e.g. `/getbycat/{category}`.
    #[serde(default)]
    pub path: String,
    /// Upper-case HTTP method, when known (from the spec, or recognised in the code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default)]
    pub functionality: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub domain: Vec<String>,
    pub instruction: String,
    #[serde(default)]
    pub instruction_test: String,
    pub code: String,
    #[serde(default = "empty_object")]
    pub api_arguments: serde_json::Value,
    pub unique_id: String,
    /// Host name (no scheme, no path), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Server URL the path is appended to, when known (OpenAPI `servers[0].url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The OpenAPI spec the record was generated from (its path under the source root, without
    /// extension), whose contract ingest keeps for checking generated calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_id: Option<String>,
}

pub(crate) fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

impl ApiRecord {
    /// The endpoint this record calls: (method or "", path template).
    pub fn endpoint(&self) -> (&str, &str) {
        (self.method.as_deref().unwrap_or(""), self.path.as_str())
    }
}
