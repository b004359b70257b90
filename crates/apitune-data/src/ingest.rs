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
use super::openapi::{ApiContract, api_contract, load_spec, snippets, spec_records};
use super::record::ApiRecord;
use super::walk::{Found, Kind, SkippedPath, Walker, canonical, display_path, has_glob_chars};

/// File written by [`run_ingest`] into its output directory.
pub const RECORDS_FILE: &str = "records.jsonl";
/// Ingest (of OpenAPI sources) and normalize output: one [`ApiContract`] per spec, JSONL.
pub const CONTRACTS_FILE: &str = "contracts.jsonl";

/// The contracts of `dir`'s [`CONTRACTS_FILE`] by spec id; empty when the file does not exist
/// (sources other than OpenAPI).
pub fn read_contracts(dir: &Path) -> Result<BTreeMap<String, ApiContract>, DataError> {
    let path = dir.join(CONTRACTS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(DataError::io(&path, "reading API contracts", e)),
    };
    let mut contracts = BTreeMap::new();
    for (number, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let contract: ApiContract = serde_json::from_str(line).map_err(|e| {
            let at_line = format!("line {}: {e}", number + 1);
            DataError::io(
                &path,
                "reading API contracts",
                std::io::Error::other(at_line),
            )
        })?;
        contracts.insert(contract.spec_id.clone(), contract);
    }
    Ok(contracts)
}

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
    /// Follow symbolic links inside source directories: each real file and directory is read
    /// once, and links that lead outside the directory a pattern names are skipped (name that
    /// directory in `source` to read it). By default links are skipped, with a warning.
    #[serde(default)]
    pub follow_links: bool,
}

struct InputFile {
    path: PathBuf,
    /// The file's path relative to the directory its pattern names, without extension (OpenAPI
    /// `unique_id` prefix).
    id: String,
}

/// The files that feed an ingest stage, in reading order, and the symbolic links left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestInputs {
    pub files: Vec<PathBuf>,
    /// Links the directory walks did not follow; worth a warning each.
    pub skipped: Vec<SkippedPath>,
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

/// Files found for one pattern, each with the directory its id is relative to, and the links
/// skipped on the way.
type PatternMatches = (Vec<(Found, PathBuf)>, Vec<SkippedPath>);

/// The files one pattern names (see [`PatternMatches`]).
fn find_pattern(
    pattern: &str,
    extensions: &[&str],
    follow_links: bool,
    base_dir: &Path,
) -> Result<PatternMatches, DataError> {
    let full = base_dir.join(pattern);
    let mut found: Vec<(Found, PathBuf)> = Vec::new();
    if has_glob_chars(pattern) {
        let (mut walker, root, matches) =
            Walker::expand_glob(extensions, follow_links, base_dir, pattern)?;
        for matched in matches {
            if matched.kind == Kind::Dir {
                let mut files = Vec::new();
                walker.walk_directory(&matched.path, &matched.canonical, &mut files)?;
                found.extend(files.into_iter().map(|f| (f, matched.path.clone())));
            } else {
                found.push((matched, root.clone()));
            }
        }
        return Ok((found, walker.skipped));
    }
    if full.is_dir() {
        let mut walker = Walker::new(extensions, follow_links, &full)?;
        let root = walker.root().to_path_buf();
        let mut files = Vec::new();
        walker.walk_directory(&full, &root, &mut files)?;
        found.extend(files.into_iter().map(|f| (f, full.clone())));
        return Ok((found, walker.skipped));
    }
    if full.is_file() {
        let parent = full.parent().map(Path::to_path_buf).unwrap_or_default();
        found.push((
            Found {
                canonical: canonical(&full)?,
                path: full,
                kind: Kind::File,
            },
            parent,
        ));
    }
    Ok((found, Vec::new()))
}

fn collect_inputs(
    params: &IngestParams,
    base_dir: &Path,
) -> Result<(Vec<InputFile>, Vec<SkippedPath>), DataError> {
    let source = &params.source;
    let mut inputs: Vec<InputFile> = Vec::new();
    let mut skipped: Vec<SkippedPath> = Vec::new();
    // Canonical paths: a file reached twice (two patterns, or links) is read once.
    let mut seen: BTreeSet<PathBuf> = BTreeSet::new();
    for pattern in source.patterns() {
        let (found, pattern_skipped) = find_pattern(
            pattern,
            source.directory_extensions(),
            params.follow_links,
            base_dir,
        )?;
        if found.is_empty() {
            let note = match pattern_skipped.as_slice() {
                [] => String::new(),
                [only] => format!("; {}", only.message(base_dir)),
                [first, rest @ ..] => format!(
                    "; {}, and {} more symbolic links",
                    first.message(base_dir),
                    rest.len()
                ),
            };
            return Err(DataError::NoMatch {
                pattern: pattern.to_string(),
                base: base_dir.to_path_buf(),
                note,
            });
        }
        skipped.extend(pattern_skipped);
        for (file, root) in found {
            if seen.insert(file.canonical) {
                let id = id_relative_to(&file.path, &root);
                inputs.push(InputFile {
                    path: file.path,
                    id,
                });
            }
        }
    }
    Ok((inputs, skipped))
}

/// Every file that feeds the ingest stage, in reading order (for content-keying the stage). Errors
/// when a pattern matches nothing.
pub fn ingest_input_files(
    params: &IngestParams,
    base_dir: &Path,
) -> Result<Vec<PathBuf>, DataError> {
    Ok(ingest_inputs(params, base_dir)?.files)
}

/// [`ingest_input_files`], with the symbolic links the directory walks skipped (see
/// [`IngestParams::follow_links`]).
pub fn ingest_inputs(params: &IngestParams, base_dir: &Path) -> Result<IngestInputs, DataError> {
    let (inputs, skipped) = collect_inputs(params, base_dir)?;
    Ok(IngestInputs {
        files: inputs.into_iter().map(|input| input.path).collect(),
        skipped,
    })
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

impl<'a> Sink<'a> {
    /// A sink writing to `file` (at `out_path`), keeping only `langs` when given.
    fn new(
        params: &IngestParams,
        (file, out_path): (File, PathBuf),
        langs: Option<&[String]>,
        progress: &'a dyn Fn(u64),
    ) -> Self {
        Self {
            writer: BufWriter::with_capacity(1 << 20, file),
            out_path,
            policy: params.on_bad_record,
            langs: langs.map(|l| l.iter().cloned().collect()),
            limit: params.limit,
            written: 0,
            per_lang: BTreeMap::new(),
            filtered_out: BTreeMap::new(),
            skipped: BTreeMap::new(),
            skipped_examples: Vec::new(),
            progress,
        }
    }
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

/// The contracts of the OpenAPI specs `pattern` names (a file, a directory searched recursively,
/// or a glob; relative to `base_dir`), each under the spec id ingest gives its records. A file
/// that is not an OpenAPI 3 document is an error naming it.
pub fn load_contracts(pattern: &str, base_dir: &Path) -> Result<Vec<ApiContract>, DataError> {
    let params = IngestParams {
        source: SourceSpec::Openapi(PathPatterns::One(pattern.to_string())),
        langs: None,
        on_bad_record: BadRecordPolicy::Error,
        limit: None,
        follow_links: false,
    };
    let (inputs, _links) = collect_inputs(&params, base_dir)?;
    inputs
        .iter()
        .map(|input| Ok(api_contract(&load_spec(&input.path)?, &input.id)))
        .collect()
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
    let langs = checked_langs(params)?;
    let (inputs, skipped_links) = collect_inputs(params, base_dir)?;
    std::fs::create_dir_all(out_dir)
        .map_err(|e| DataError::io(out_dir, "creating output directory", e))?;
    let out_path = out_dir.join(RECORDS_FILE);
    let file = File::create(&out_path)
        .map_err(|e| DataError::io(&out_path, "creating records file", e))?;
    let mut sink = Sink::new(params, (file, out_path.clone()), langs.as_deref(), progress);
    let generated_langs: Vec<String> =
        langs.unwrap_or_else(|| TARGET_LANGS.iter().map(|l| l.to_string()).collect());
    let mut files_summary = Vec::new();
    let mut totals = BTreeMap::<&'static str, u64>::new();
    let contracts_path = out_dir.join(CONTRACTS_FILE);
    let mut contracts = match params.source {
        SourceSpec::Openapi(_) => Some(BufWriter::new(
            File::create(&contracts_path)
                .map_err(|e| DataError::io(&contracts_path, "creating API contracts file", e))?,
        )),
        _ => None,
    };
    for input in &inputs {
        if sink.limit_reached() {
            break;
        }
        let written_before = sink.written;
        let skipped_before: u64 = sink.skipped.values().sum();
        let mut file_entry = json!({ "path": display_path(&input.path, base_dir) });
        match &params.source {
            SourceSpec::Openapi(_) => {
                let ingest = (generated_langs.as_slice(), &mut sink, &mut totals);
                if let Some(contract) = ingest_spec(input, ingest, &mut file_entry)?
                    && let Some(writer) = contracts.as_mut()
                {
                    write_json_line(writer, &contract)
                        .map_err(|e| DataError::io(&contracts_path, "writing API contracts", e))?;
                }
            }
            SourceSpec::Apipack(_) | SourceSpec::Jsonl(_) => {
                ingest_records(params, &input.path, &mut sink)?
            }
        }
        file_entry["records"] = json!(sink.written - written_before);
        file_entry["skipped"] = json!(sink.skipped.values().sum::<u64>() - skipped_before);
        files_summary.push(file_entry);
    }
    sink.writer
        .flush()
        .map_err(|e| DataError::io(&out_path, "writing records", e))?;
    if let Some(mut writer) = contracts {
        writer
            .flush()
            .map_err(|e| DataError::io(&contracts_path, "writing API contracts", e))?;
    }
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
    if !skipped_links.is_empty() {
        let links: Vec<Value> = skipped_links
            .iter()
            .map(
                |s| json!({ "path": display_path(&s.path, base_dir), "reason": s.reason.as_str() }),
            )
            .collect();
        summary["skipped_links"] = json!(links);
    }
    if !sink.skipped_examples.is_empty() {
        summary["skipped_examples"] = json!(sink.skipped_examples);
    }
    if !totals.is_empty() {
        summary["openapi"] = json!(totals);
    }
    Ok(summary)
}

/// `params.langs` in canonical names; an error when it is empty or names a language an OpenAPI
/// source cannot generate snippets for.
fn checked_langs(params: &IngestParams) -> Result<Option<Vec<String>>, DataError> {
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
    Ok(langs)
}

/// Records generated from one OpenAPI spec, in `langs`; its operation counts go into `totals`
/// and `file_entry`. Returns the spec's contract, `None` when the spec was skipped.
fn ingest_spec(
    input: &InputFile,
    (langs, sink, totals): (&[String], &mut Sink, &mut BTreeMap<&'static str, u64>),
    file_entry: &mut Value,
) -> Result<Option<ApiContract>, DataError> {
    let document = match load_spec(&input.path) {
        Ok(document) => document,
        Err(error) => return sink.reject(error).map(|()| None),
    };
    let stats = spec_records(&document, &input.id, langs, &mut |record| {
        Ok(sink.accept(&record)?.is_continue())
    })?;
    *totals.entry("operations").or_default() += stats.operations;
    *totals.entry("from_code_samples").or_default() += stats.from_code_samples;
    *totals.entry("unresolved_refs").or_default() += stats.unresolved_refs;
    file_entry["operations"] = json!(stats.operations);
    if stats.unresolved_refs > 0 {
        file_entry["unresolved_refs"] = json!(stats.unresolved_refs);
    }
    Ok(Some(api_contract(&document, &input.id)))
}

fn write_json_line(writer: &mut impl Write, value: &impl serde::Serialize) -> std::io::Result<()> {
    serde_json::to_writer(&mut *writer, value).map_err(std::io::Error::other)?;
    writer.write_all(b"\n")
}

/// The records of one API Pack array or JSONL file (by source, or by `.jsonl`/`.ndjson`).
fn ingest_records(params: &IngestParams, path: &Path, sink: &mut Sink) -> Result<(), DataError> {
    let is_jsonl = matches!(params.source, SourceSpec::Jsonl(_))
        || path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("jsonl") || e.eq_ignore_ascii_case("ndjson"));
    let mut on_record = |item: Result<ApiRecord, DataError>| match item {
        Ok(record) => sink.accept(&record),
        Err(error) => sink.reject(error).map(|()| ControlFlow::Continue(())),
    };
    if is_jsonl {
        read_jsonl(path, &mut on_record)
    } else {
        read_apipack_array(path, &mut on_record)
    }
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
