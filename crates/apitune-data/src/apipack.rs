//! API Pack records (Guo et al. 2024, arXiv 2402.09615): JSON-array files read as streams, and
//! JSONL files that hold either API Pack records or `ApiRecord`s, one per line.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::ops::ControlFlow;
use std::path::Path;

use serde::{Deserialize, Deserializer};

use super::code_facts::{infer_host, infer_method};
use super::error::{BadReason, DataError, RecordLocation};
use super::json_array::{DEFAULT_MAX_ELEMENT_BYTES, for_each_array_element};
use super::lang::canonical_lang;
use super::record::ApiRecord;

/// What a reader hands on for every record: the record, or a skippable bad-record error. The
/// callback decides (per `on_bad_record`) whether an error stops the run, and may stop early.
pub type RecordCallback<'a> =
    dyn FnMut(Result<ApiRecord, DataError>) -> Result<ControlFlow<()>, DataError> + 'a;

#[derive(Debug, Deserialize)]
struct ApiPackRecord {
    api_name: String,
    #[serde(default, deserialize_with = "lenient_string")]
    api_description: String,
    api_call_data: ApiCallData,
    #[serde(deserialize_with = "lenient_string")]
    instruction: String,
    #[serde(default, deserialize_with = "lenient_string")]
    instruction_test: String,
    #[serde(default, deserialize_with = "lenient_optional_string")]
    unique_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ApiCallData {
    api_call: String,
    lang: String,
    #[serde(default, deserialize_with = "lenient_string")]
    functionality: String,
    #[serde(default)]
    api_arguments: serde_json::Value,
    #[serde(default, deserialize_with = "lenient_string")]
    description: String,
    #[serde(default, deserialize_with = "string_or_list")]
    domain: Vec<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    path: String,
}

/// Text fields in scraped data are sometimes null or numbers; read them as text.
fn lenient_string<'de, D: Deserializer<'de>>(de: D) -> Result<String, D::Error> {
    Ok(lenient_optional_string(de)?.unwrap_or_default())
}

fn lenient_optional_string<'de, D: Deserializer<'de>>(de: D) -> Result<Option<String>, D::Error> {
    use serde::de::Error;
    match serde_json::Value::deserialize(de)? {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::String(s) => Ok(Some(s)),
        serde_json::Value::Number(n) => Ok(Some(n.to_string())),
        serde_json::Value::Bool(b) => Ok(Some(b.to_string())),
        other => Err(D::Error::custom(format!(
            "expected a string, found {other}"
        ))),
    }
}

fn string_or_list<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<String>, D::Error> {
    use serde::de::Error;
    match serde_json::Value::deserialize(de)? {
        serde_json::Value::Null => Ok(Vec::new()),
        serde_json::Value::String(s) => Ok(vec![s]),
        serde_json::Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                serde_json::Value::String(s) => Ok(s),
                other => Err(D::Error::custom(format!(
                    "domain entries must be strings, found {other}"
                ))),
            })
            .collect(),
        other => Err(D::Error::custom(format!(
            "expected a string or a list of strings, found {other}"
        ))),
    }
}

impl ApiPackRecord {
    fn into_api_record(self, fallback_id: impl FnOnce() -> String) -> ApiRecord {
        let call = self.api_call_data;
        let method = infer_method(&call.api_call);
        let host = infer_host(&call.api_call);
        ApiRecord {
            api_name: self.api_name,
            api_description: self.api_description,
            lang: canonical_lang(&call.lang),
            path: call.path,
            method,
            functionality: call.functionality,
            description: call.description,
            domain: call.domain,
            instruction: self.instruction,
            instruction_test: self.instruction_test,
            code: call.api_call,
            api_arguments: match call.api_arguments {
                serde_json::Value::Null => super::record::empty_object(),
                other => other,
            },
            unique_id: self.unique_id.unwrap_or_else(fallback_id),
            host,
            base_url: None,
            spec_id: None,
        }
    }
}

fn classify(err: &serde_json::Error) -> BadReason {
    match err.classify() {
        serde_json::error::Category::Data => BadReason::WrongShape,
        _ => BadReason::InvalidJson,
    }
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Reads an API Pack file (one JSON array of records) as a stream.
pub fn read_apipack_array(
    path: &Path,
    on_record: &mut RecordCallback<'_>,
) -> Result<(), DataError> {
    let file = File::open(path).map_err(|e| DataError::io(path, "opening API Pack file", e))?;
    let reader = BufReader::with_capacity(1 << 20, file);
    let stem = file_stem(path);
    for_each_array_element(reader, path, DEFAULT_MAX_ELEMENT_BYTES, |element| {
        let location = RecordLocation::ArrayElement {
            index: element.index,
            byte_offset: element.byte_offset,
        };
        let parsed = serde_json::from_slice::<ApiPackRecord>(element.bytes)
            .map(|record| record.into_api_record(|| format!("{stem}_{}", element.index)))
            .map_err(|err| DataError::BadRecord {
                path: path.to_path_buf(),
                location,
                reason: classify(&err),
                message: err.to_string(),
            });
        on_record(parsed)
    })
}

/// Parses one JSON object that is either an API Pack record (has `api_call_data`) or an
/// `ApiRecord`. The language is canonicalised either way.
pub fn record_from_json_value(
    value: &serde_json::Value,
    fallback_id: impl FnOnce() -> String,
) -> Result<ApiRecord, serde_json::Error> {
    if value.get("api_call_data").is_some() {
        Ok(ApiPackRecord::deserialize(value)?.into_api_record(fallback_id))
    } else {
        let mut record = ApiRecord::deserialize(value)?;
        record.lang = canonical_lang(&record.lang);
        Ok(record)
    }
}

/// Reads a JSONL file of API Pack records and/or `ApiRecord`s. Blank lines are ignored.
pub fn read_jsonl(path: &Path, on_record: &mut RecordCallback<'_>) -> Result<(), DataError> {
    let file = File::open(path).map_err(|e| DataError::io(path, "opening JSONL file", e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let stem = file_stem(path);
    let mut line = Vec::new();
    let mut line_number: u64 = 0;
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| DataError::io(path, "reading JSONL file", e))?;
        if read == 0 {
            return Ok(());
        }
        line_number += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let location = RecordLocation::Line { line: line_number };
        let bad = |reason, message: String| DataError::BadRecord {
            path: path.to_path_buf(),
            location: location.clone(),
            reason,
            message,
        };
        let parsed = match serde_json::from_slice::<serde_json::Value>(&line) {
            Err(err) => Err(bad(BadReason::InvalidJson, err.to_string())),
            Ok(value) if !value.is_object() => Err(bad(
                BadReason::WrongShape,
                "expected one JSON object per line".to_string(),
            )),
            Ok(value) => record_from_json_value(&value, || format!("{stem}_{}", line_number - 1))
                .map_err(|err| bad(BadReason::WrongShape, err.to_string())),
        };
        if on_record(parsed)?.is_break() {
            return Ok(());
        }
    }
}
