//! The ingest stage: every source into one `records.jsonl` of `ApiRecord`s.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::apipack::{read_apipack_array, read_jsonl};
use super::error::DataError;
use super::lang::{TARGET_LANGS, canonical_lang};
use super::openapi::{load_spec, snippets, spec_records};
use super::record::ApiRecord;

/// File written by [`run_ingest`] into its output directory.
pub const RECORDS_FILE: &str = "records.jsonl";

/// One path/glob or a list of them, relative to the manifest's base directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum PathPatterns {
    One(String),
    Many(Vec<String>),
}

impl PathPatterns {
    pub fn patterns(&self) -> Vec<&str> {
        match self {
            Self::One(pattern) => vec![pattern.as_str()],
            Self::Many(patterns) => patterns.iter().map(String::as_str).collect(),
        }
    }
}

/// Where records come from. Directories are searched recursively; globs (`data/*.json`) allowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum SourceSpec {
    /// OpenAPI 3.0/3.1 specs, JSON or YAML (`.json`, `.yaml`, `.yml`).
    Openapi(PathPatterns),
    /// API Pack files: one JSON array each (`.jsonl`/`.ndjson` files are read as JSONL).
    Apipack(PathPatterns),
    /// JSONL of API Pack records or `ApiRecord`s.
    Jsonl(PathPatterns),
}

impl SourceSpec {
    fn kind(&self) -> &'static str {
        match self {
            Self::Openapi(_) => "openapi",
            Self::Apipack(_) => "apipack",
            Self::Jsonl(_) => "jsonl",
        }
    }

    fn patterns(&self) -> Vec<&str> {
        match self {
            Self::Openapi(p) | Self::Apipack(p) | Self::Jsonl(p) => p.patterns(),
        }
    }

    /// Extensions picked up when a pattern names a directory.
    fn directory_extensions(&self) -> &'static [&'static str] {
        match self {
            Self::Openapi(_) => &["json", "yaml", "yml"],
            Self::Apipack(_) => &["json", "jsonl", "ndjson"],
            Self::Jsonl(_) => &["jsonl", "ndjson"],
        }
    }
}

/// What to do with a record (or spec) that cannot be read.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum BadRecordPolicy {
    /// Stop with an error naming the file and record.
    #[default]
    Error,
    /// Skip it and count it (per reason) in the summary.
    Skip,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestParams {
    pub source: SourceSpec,
    /// Languages to keep (canonicalised: `cURL` = `curl`). For OpenAPI sources, the languages to
    /// generate; default: all ten API Pack languages.
    #[serde(default)]
    pub langs: Option<Vec<String>>,
    #[serde(default)]
    pub on_bad_record: BadRecordPolicy,
    /// Stop after this many records (in file order).
    #[serde(default)]
    pub limit: Option<usize>,
}

struct InputFile {
    path: PathBuf,
    /// The file's path relative to the directory its pattern names, without extension (OpenAPI
    /// `unique_id` prefix).
    id: String,
}

fn has_glob_chars(pattern: &str) -> bool {
    pattern.contains(['*', '?', '['])
}

fn walk_directory(
    dir: &Path,
    extensions: &[&str],
    out: &mut Vec<PathBuf>,
) -> Result<(), DataError> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, "listing directory", e))?;
    let mut paths: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| DataError::io(dir, "listing directory", e))?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        paths.push(entry.path());
    }
    paths.sort();
    for path in paths {
        if path.is_dir() {
            walk_directory(&path, extensions, out)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| extensions.iter().any(|x| x.eq_ignore_ascii_case(e)))
        {
            out.push(path);
        }
    }
    Ok(())
}

fn id_relative_to(path: &Path, root: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap_or(path);
    let without_extension = relative.with_extension("");
    let text = without_extension.to_string_lossy().replace('\\', "/");
    if text.is_empty() {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    } else {
        text
    }
}

fn collect_inputs(source: &SourceSpec, base_dir: &Path) -> Result<Vec<InputFile>, DataError> {
    let mut inputs: Vec<InputFile> = Vec::new();
    let mut seen: BTreeSet<PathBuf> = BTreeSet::new();
    for pattern in source.patterns() {
        let full = base_dir.join(pattern);
        let mut found: Vec<(PathBuf, PathBuf)> = Vec::new(); // (file, root for its id)
        if has_glob_chars(pattern) {
            let full_text = full.to_string_lossy().into_owned();
            let matches = glob::glob(&full_text).map_err(|e| DataError::BadPattern {
                pattern: pattern.to_string(),
                message: e.to_string(),
            })?;
            let root: PathBuf = full
                .components()
                .take_while(|c| !has_glob_chars(&c.as_os_str().to_string_lossy()))
                .collect();
            for entry in matches {
                let path = entry.map_err(|e| {
                    let path = e.path().to_path_buf();
                    DataError::io(path, "matching glob", e.into())
                })?;
                if path.is_dir() {
                    let mut files = Vec::new();
                    walk_directory(&path, source.directory_extensions(), &mut files)?;
                    found.extend(files.into_iter().map(|f| (f, path.clone())));
                } else {
                    found.push((path, root.clone()));
                }
            }
        } else if full.is_dir() {
            let mut files = Vec::new();
            walk_directory(&full, source.directory_extensions(), &mut files)?;
            found.extend(files.into_iter().map(|f| (f, full.clone())));
        } else if full.is_file() {
            let parent = full.parent().map(Path::to_path_buf).unwrap_or_default();
            found.push((full.clone(), parent));
        }
        if found.is_empty() {
            return Err(DataError::NoMatch {
                pattern: pattern.to_string(),
                base: base_dir.to_path_buf(),
            });
        }
        for (path, root) in found {
            if seen.insert(path.clone()) {
                let id = id_relative_to(&path, &root);
                inputs.push(InputFile { path, id });
            }
        }
    }
    Ok(inputs)
}

/// Every file that feeds the ingest stage, in reading order (for content-keying the stage). Errors
/// when a pattern matches nothing.
pub fn ingest_input_files(
    params: &IngestParams,
    base_dir: &Path,
) -> Result<Vec<PathBuf>, DataError> {
    Ok(collect_inputs(&params.source, base_dir)?
        .into_iter()
        .map(|input| input.path)
        .collect())
}

fn display_path(path: &Path, base_dir: &Path) -> String {
    path.strip_prefix(base_dir)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

/// Counts and the output writer shared by all readers of one ingest run.
struct Sink<'a> {
    writer: BufWriter<File>,
    out_path: PathBuf,
    policy: BadRecordPolicy,
    langs: Option<BTreeSet<String>>,
    limit: Option<usize>,
    written: u64,
    per_lang: BTreeMap<String, u64>,
    filtered_out: BTreeMap<String, u64>,
    skipped: BTreeMap<&'static str, u64>,
    skipped_examples: Vec<String>,
    progress: &'a dyn Fn(u64),
}

const SKIPPED_EXAMPLES_KEPT: usize = 10;

impl Sink<'_> {
    fn limit_reached(&self) -> bool {
        self.limit.is_some_and(|limit| self.written >= limit as u64)
    }

    fn accept(&mut self, record: &ApiRecord) -> Result<ControlFlow<()>, DataError> {
        if self.limit_reached() {
            return Ok(ControlFlow::Break(()));
        }
        if let Some(langs) = &self.langs
            && !langs.contains(&record.lang)
        {
            *self.filtered_out.entry(record.lang.clone()).or_default() += 1;
            return Ok(ControlFlow::Continue(()));
        }
        serde_json::to_writer(&mut self.writer, record).map_err(|e| {
            DataError::io(&self.out_path, "writing records", std::io::Error::other(e))
        })?;
        self.writer
            .write_all(b"\n")
            .map_err(|e| DataError::io(&self.out_path, "writing records", e))?;
        self.written += 1;
        *self.per_lang.entry(record.lang.clone()).or_default() += 1;
        if self.written.is_multiple_of(1000) {
            (self.progress)(self.written);
        }
        Ok(if self.limit_reached() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        })
    }

    /// A bad record: an error under `error`, counted under `skip`. Non-record errors always stop.
    fn reject(&mut self, error: DataError) -> Result<(), DataError> {
        match (self.policy, error.bad_reason()) {
            (BadRecordPolicy::Skip, Some(reason)) => {
                *self.skipped.entry(reason.as_str()).or_default() += 1;
                if self.skipped_examples.len() < SKIPPED_EXAMPLES_KEPT {
                    self.skipped_examples.push(error.to_string());
                }
                Ok(())
            }
            _ => Err(error),
        }
    }
}

/// Reads every input of `params` and writes `out_dir/records.jsonl`. Returns the summary: record
/// counts per language, skipped inputs per reason, and per-file counts (paths relative to
/// `base_dir`). `progress` gets the running record count every 1000 records.
pub fn run_ingest(
    params: &IngestParams,
    base_dir: &Path,
    out_dir: &Path,
    progress: &dyn Fn(u64),
) -> Result<Value, DataError> {
    let langs: Option<Vec<String>> = params
        .langs
        .as_ref()
        .map(|langs| langs.iter().map(|l| canonical_lang(l)).collect());
    if let (SourceSpec::Openapi(_), Some(langs)) = (&params.source, &langs) {
        let probe = probe_request();
        if let Some(unknown) = langs
            .iter()
            .find(|lang| snippets::render(lang, &probe).is_none())
        {
            return Err(DataError::Params(format!(
                "no snippet generator for language `{unknown}`; OpenAPI sources support {}",
                TARGET_LANGS.join(", ")
            )));
        }
    }
    if langs.as_ref().is_some_and(Vec::is_empty) {
        return Err(DataError::Params(
            "`langs` is empty: list at least one language or leave it out".into(),
        ));
    }
    let inputs = collect_inputs(&params.source, base_dir)?;
    std::fs::create_dir_all(out_dir)
        .map_err(|e| DataError::io(out_dir, "creating output directory", e))?;
    let out_path = out_dir.join(RECORDS_FILE);
    let file = File::create(&out_path)
        .map_err(|e| DataError::io(&out_path, "creating records file", e))?;
    let mut sink = Sink {
        writer: BufWriter::with_capacity(1 << 20, file),
        out_path: out_path.clone(),
        policy: params.on_bad_record,
        langs: langs.clone().map(|l| l.into_iter().collect()),
        limit: params.limit,
        written: 0,
        per_lang: BTreeMap::new(),
        filtered_out: BTreeMap::new(),
        skipped: BTreeMap::new(),
        skipped_examples: Vec::new(),
        progress,
    };
    let generated_langs: Vec<String> = langs
        .clone()
        .unwrap_or_else(|| TARGET_LANGS.iter().map(|l| l.to_string()).collect());
    let mut files_summary = Vec::new();
    let mut totals = BTreeMap::<&'static str, u64>::new();

    for input in &inputs {
        if sink.limit_reached() {
            break;
        }
        let written_before = sink.written;
        let skipped_before: u64 = sink.skipped.values().sum();
        let mut file_entry = json!({ "path": display_path(&input.path, base_dir) });
        match &params.source {
            SourceSpec::Openapi(_) => match load_spec(&input.path) {
                Err(error) => sink.reject(error)?,
                Ok(document) => {
                    let stats =
                        spec_records(&document, &input.id, &generated_langs, &mut |record| {
                            Ok(sink.accept(&record)?.is_continue())
                        })?;
                    *totals.entry("operations").or_default() += stats.operations;
                    *totals.entry("from_code_samples").or_default() += stats.from_code_samples;
                    *totals.entry("unresolved_refs").or_default() += stats.unresolved_refs;
                    file_entry["operations"] = json!(stats.operations);
                    if stats.unresolved_refs > 0 {
                        file_entry["unresolved_refs"] = json!(stats.unresolved_refs);
                    }
                }
            },
            SourceSpec::Apipack(_) | SourceSpec::Jsonl(_) => {
                let is_jsonl = matches!(params.source, SourceSpec::Jsonl(_))
                    || input
                        .path
                        .extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| {
                            e.eq_ignore_ascii_case("jsonl") || e.eq_ignore_ascii_case("ndjson")
                        });
                let mut on_record = |item: Result<ApiRecord, DataError>| match item {
                    Ok(record) => sink.accept(&record),
                    Err(error) => sink.reject(error).map(|()| ControlFlow::Continue(())),
                };
                if is_jsonl {
                    read_jsonl(&input.path, &mut on_record)?;
                } else {
                    read_apipack_array(&input.path, &mut on_record)?;
                }
            }
        }
        file_entry["records"] = json!(sink.written - written_before);
        file_entry["skipped"] = json!(sink.skipped.values().sum::<u64>() - skipped_before);
        files_summary.push(file_entry);
    }
    sink.writer
        .flush()
        .map_err(|e| DataError::io(&out_path, "writing records", e))?;
    (sink.progress)(sink.written);

    let mut summary = json!({
        "source": params.source.kind(),
        "records": sink.written,
        "per_lang": sink.per_lang,
        "skipped": sink.skipped,
        "skipped_total": sink.skipped.values().sum::<u64>(),
        "filtered_out_by_lang": sink.filtered_out,
        "limit_reached": sink.limit_reached(),
        "files": files_summary,
    });
    if !sink.skipped_examples.is_empty() {
        summary["skipped_examples"] = json!(sink.skipped_examples);
    }
    if !totals.is_empty() {
        summary["openapi"] = json!(totals);
    }
    Ok(summary)
}

fn probe_request() -> super::openapi::request::HttpRequest {
    super::openapi::request::HttpRequest {
        method: "GET".into(),
        scheme: "https".into(),
        host: "probe".into(),
        base_path: String::new(),
        path: "/".into(),
        query: Vec::new(),
        headers: Vec::new(),
        body: None,
    }
}
