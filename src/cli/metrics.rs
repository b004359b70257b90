//! `apitune metrics`: score a predictions file against references.
//!
//! Both inputs are JSONL, one JSON object per line (blank lines skipped). Pairing:
//! - when `--references` is omitted, each prediction record carries its own reference
//!   (`--ref-field`);
//! - when every record of both files has an `id` field (`--id-field`, string or number),
//!   records are paired by id: every prediction id must occur exactly once among the
//!   references, and each file's ids must be unique; references without a prediction are
//!   reported as an error (a partial run is scored only if you trim the references);
//! - otherwise by line order, and the two files must hold the same number of records.
//!
//! The language comes from `--lang-field` of the prediction record, else of the reference
//! record, else `--lang`; without any of them the command fails. When references carry
//! `--api-field` (default `api_name`), the endpoints read from all references of an API form its
//! known endpoints and the hallucinated-endpoint rate is reported.
//!
//! With `--spec PATH` (an OpenAPI file, directory or glob) every prediction's HTTP call is also
//! checked against the specs' operations (`call_valid`, `params_complete`, `params_known`,
//! `body_valid`, and `same_operation` where the reference's call resolves too; see
//! [`crate::metrics::grounded`]). References are then optional: without them only the call
//! checks are reported. `--per-sample` prints one JSON object per prediction (its `id`, or
//! `file:line` without one) with its verdicts instead of the summary.
//!
//! Prints scores to stdout (`--format json`: [`CorpusScores`] without per-example rows unless
//! `--per-example`; `--format table`: one row per language). Returns the exit code.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Map, Value};

use crate::metrics::api_match::{EndpointSet, SnippetLang, extract_call};
use crate::metrics::corpus::{
    CorpusScores, Example, GroundedSummary, Grounding, Scores, lang_key, score_corpus,
};
use crate::metrics::grounded::{CallCheck, ContractIndex};
use crate::metrics::perplexity::TokenNll;

#[derive(clap::Args, Debug, Clone)]
pub struct MetricsArgs {
    /// JSONL file of model outputs.
    #[arg(long, value_name = "P.jsonl")]
    pub predictions: PathBuf,
    /// JSONL file of references; omit when the prediction records carry the reference.
    #[arg(long, value_name = "R.jsonl")]
    pub references: Option<PathBuf>,
    /// Field holding the prediction text.
    #[arg(long, default_value = "prediction")]
    pub field: String,
    /// Field holding the reference code.
    #[arg(long, default_value = "reference")]
    pub ref_field: String,
    /// Field holding the language label (API Pack's `lang`).
    #[arg(long, default_value = "lang")]
    pub lang_field: String,
    /// Language for records that have no language field.
    #[arg(long)]
    pub lang: Option<String>,
    /// Field used to pair records when both files carry it.
    #[arg(long, default_value = "id")]
    pub id_field: String,
    /// Reference field naming the API, for the hallucinated-endpoint rate.
    #[arg(long, default_value = "api_name")]
    pub api_field: String,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Prediction fields with the summed target-token NLL and the token count, for perplexity
    /// (used when both are present).
    #[arg(long, default_value = "sum_nll")]
    pub nll_field: String,
    #[arg(long, default_value = "n_tokens")]
    pub tokens_field: String,
    /// Include every example's scores in JSON output.
    #[arg(long)]
    pub per_example: bool,
    /// OpenAPI spec(s) to check each prediction's HTTP call against: a file, a directory
    /// (searched recursively for .json/.yaml/.yml) or a glob. References become optional.
    #[arg(long, value_name = "PATH")]
    pub spec: Option<String>,
    /// With --spec: print one JSON object per prediction (`id`, `lang`, verdicts), not the summary.
    #[arg(long, requires = "spec")]
    pub per_sample: bool,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Json,
    Table,
}

/// One JSONL record with where it came from, for error messages.
struct Record {
    fields: Map<String, Value>,
    origin: String,
}

impl Record {
    fn text(&self, field: &str) -> Result<Option<&str>> {
        match self.fields.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => bail!(
                "{}: field `{field}` must be a string, found {}",
                self.origin,
                kind(other)
            ),
        }
    }

    fn required_text(&self, field: &str) -> Result<&str> {
        self.text(field)?.ok_or_else(|| {
            let present: Vec<&str> = self.fields.keys().map(String::as_str).collect();
            anyhow!(
                "{}: no string field `{field}` (fields present: {})",
                self.origin,
                present.join(", ")
            )
        })
    }

    fn nll(&self, nll_field: &str, tokens_field: &str) -> Result<Option<TokenNll>> {
        match (self.fields.get(nll_field), self.fields.get(tokens_field)) {
            (None, None) => Ok(None),
            (Some(nll), Some(tokens)) => match (nll.as_f64(), tokens.as_u64()) {
                (Some(sum_nll), Some(n_tokens)) if sum_nll.is_finite() && sum_nll >= 0.0 => {
                    Ok(Some(TokenNll { sum_nll, n_tokens }))
                }
                _ => bail!(
                    "{}: `{nll_field}` must be a finite non-negative number and `{tokens_field}` a non-negative integer",
                    self.origin
                ),
            },
            _ => bail!(
                "{}: `{nll_field}` and `{tokens_field}` must be given together",
                self.origin
            ),
        }
    }

    fn id(&self, field: &str) -> Option<String> {
        match self.fields.get(field)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn read_jsonl(path: &Path) -> Result<Vec<Record>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut records = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let origin = format!("{}:{}", path.display(), i + 1);
        let value: Value = serde_json::from_str(line).with_context(|| {
            format!("{origin}: not valid JSON (each line must be one JSON object)")
        })?;
        let Value::Object(fields) = value else {
            bail!("{origin}: expected a JSON object, found {}", kind(&value));
        };
        records.push(Record { fields, origin });
    }
    Ok(records)
}

/// Pairs each prediction with its reference record (see the module docs for the rules).
fn pair<'r>(
    preds: &'r [Record],
    refs: &'r [Record],
    args: &MetricsArgs,
) -> Result<Vec<(&'r Record, &'r Record)>> {
    let all_have_ids =
        |rs: &[Record]| !rs.is_empty() && rs.iter().all(|r| r.id(&args.id_field).is_some());
    if all_have_ids(preds) && all_have_ids(refs) {
        let mut by_id: HashMap<String, &Record> = HashMap::new();
        for r in refs {
            let id = r.id(&args.id_field).expect("checked above");
            if let Some(first) = by_id.insert(id.clone(), r) {
                bail!(
                    "{}: duplicate {} `{id}` (first at {})",
                    r.origin,
                    args.id_field,
                    first.origin
                );
            }
        }
        let mut seen = HashSet::new();
        let mut pairs = Vec::with_capacity(preds.len());
        for p in preds {
            let id = p.id(&args.id_field).expect("checked above");
            if !seen.insert(id.clone()) {
                bail!(
                    "{}: duplicate {} `{id}` among predictions",
                    p.origin,
                    args.id_field
                );
            }
            let r = by_id.get(&id).ok_or_else(|| {
                anyhow!("{}: no reference has {} `{id}`", p.origin, args.id_field)
            })?;
            pairs.push((p, *r));
        }
        if let Some(unpaired) = refs
            .iter()
            .find(|r| !seen.contains(&r.id(&args.id_field).expect("checked above")))
        {
            bail!(
                "{}: reference {} `{}` has no prediction ({} predictions, {} references); score a subset by trimming the references",
                unpaired.origin,
                args.id_field,
                unpaired.id(&args.id_field).unwrap_or_default(),
                preds.len(),
                refs.len()
            );
        }
        return Ok(pairs);
    }
    if preds.len() != refs.len() {
        bail!(
            "{} predictions but {} references: without an `{}` field in every record, files are paired by line and must have equal length",
            preds.len(),
            refs.len(),
            args.id_field
        );
    }
    Ok(preds.iter().zip(refs).collect())
}

struct Row<'r> {
    nll: Option<TokenNll>,
    prediction: &'r str,
    /// `None` only with `--spec`.
    reference: Option<&'r str>,
    lang: String,
    api: Option<&'r str>,
    /// The prediction's id, or where it is (`file:line`).
    id: String,
}

fn build_rows<'r>(
    pairs: &[(&'r Record, &'r Record)],
    args: &'r MetricsArgs,
) -> Result<Vec<Row<'r>>> {
    pairs
        .iter()
        .map(|&(p, r)| {
            let lang = match (p.text(&args.lang_field)?, r.text(&args.lang_field)?, &args.lang) {
                (Some(l), _, _) | (None, Some(l), _) => l.to_owned(),
                (None, None, Some(l)) => l.clone(),
                (None, None, None) => bail!(
                    "{}: no `{}` field in the prediction or its reference; pass --lang-field or --lang",
                    p.origin,
                    args.lang_field
                ),
            };
            let reference = match args.spec {
                Some(_) => r.text(&args.ref_field)?,
                None => Some(r.required_text(&args.ref_field)?),
            };
            Ok(Row {
                nll: p.nll(&args.nll_field, &args.tokens_field)?,
                prediction: p.required_text(&args.field)?,
                reference,
                lang,
                api: r.text(&args.api_field)?,
                id: p.id(&args.id_field).unwrap_or_else(|| p.origin.clone()),
            })
        })
        .collect()
}

/// Known endpoints per API: the (method, path) of every reference of that API.
fn endpoints_from_references(rows: &[Row]) -> HashMap<(String, String), EndpointSet> {
    let mut sets: HashMap<(String, String), EndpointSet> = HashMap::new();
    for row in rows {
        let (Some(api), Some(lang)) = (row.api, SnippetLang::from_label(&row.lang)) else {
            continue;
        };
        let Some(call) = row.reference.and_then(|r| extract_call(r, lang)) else {
            continue;
        };
        let Some(method) = call.method else { continue };
        let set = sets
            .entry((api.to_owned(), lang.name().to_owned()))
            .or_default();
        let endpoint = crate::metrics::api_match::Endpoint {
            method,
            path: call.path,
        };
        if !set.endpoints.contains(&endpoint) {
            set.endpoints.push(endpoint);
        }
    }
    sets
}

/// Runs the subcommand; prints to stdout and returns the process exit code.
pub fn run(args: &MetricsArgs) -> Result<i32> {
    if args.spec.is_some() {
        let report = check_calls(args)?;
        if args.per_sample {
            for sample in &report.samples {
                println!("{}", serde_json::to_string(sample)?);
            }
            return Ok(0);
        }
        if !report.has_references {
            match args.format {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
                OutputFormat::Table => print!("{}", render_calls_table(&report)),
            }
            return Ok(0);
        }
    }
    let mut scores = evaluate(args)?;
    match args.format {
        OutputFormat::Json => {
            if !args.per_example {
                scores.examples.clear();
            }
            println!("{}", serde_json::to_string_pretty(&scores)?);
        }
        OutputFormat::Table => print!("{}", render_table(&scores)),
    }
    Ok(0)
}

/// Reads and pairs the files named by `args` and hands their rows to `f`.
fn with_rows<T>(args: &MetricsArgs, f: impl FnOnce(&[Row]) -> Result<T>) -> Result<T> {
    let preds = read_jsonl(&args.predictions)?;
    let refs_storage;
    let refs: &[Record] = match &args.references {
        Some(path) => {
            refs_storage = read_jsonl(path)?;
            &refs_storage
        }
        None => &preds,
    };
    if preds.is_empty() {
        bail!("{}: no records to score", args.predictions.display());
    }
    let pairs = if args.references.is_some() {
        pair(&preds, refs, args)?
    } else {
        preds.iter().map(|p| (p, p)).collect()
    };
    f(&build_rows(&pairs, args)?)
}

/// The contracts of `--spec`, or none.
fn load_contracts(args: &MetricsArgs) -> Result<Option<ContractIndex>> {
    let Some(pattern) = &args.spec else {
        return Ok(None);
    };
    let contracts = crate::data::load_contracts(pattern, Path::new("."))
        .with_context(|| format!("reading the OpenAPI specs of --spec {pattern}"))?;
    if contracts.iter().all(|c| c.operations.is_empty()) {
        bail!("--spec {pattern}: no operations in the specs found there");
    }
    Ok(Some(ContractIndex::new(contracts)))
}

/// Reads, pairs and scores the files named by `args` (everything `run` does except printing).
pub fn evaluate(args: &MetricsArgs) -> Result<CorpusScores> {
    let contracts = load_contracts(args)?;
    with_rows(args, |rows| {
        if let Some(row) = rows.iter().find(|r| r.reference.is_none()) {
            bail!(
                "{}: no string field `{}`: text metrics need every reference (with --spec alone, only calls are checked)",
                row.id,
                args.ref_field
            );
        }
        let endpoint_sets = endpoints_from_references(rows);
        let examples: Vec<Example> = rows
            .iter()
            .map(|row| Example {
                prediction: row.prediction,
                reference: row.reference.unwrap_or_default(),
                lang: &row.lang,
                known_endpoints: row
                    .api
                    .and_then(|api| endpoint_sets.get(&(api.to_owned(), lang_key(&row.lang)))),
                nll: row.nll,
                grounding: contracts.as_ref().map(|contracts| Grounding {
                    contracts,
                    api: None,
                    reference: reference_operation(contracts, row),
                }),
            })
            .collect();
        Ok(score_corpus(&examples))
    })
}

/// The operation the reference's call resolves to, among all the specs.
fn reference_operation(
    contracts: &ContractIndex,
    row: &Row,
) -> Option<crate::metrics::grounded::OperationRef> {
    let call = crate::metrics::call::parse_call(&lang_key(&row.lang), row.reference?)?;
    contracts.resolve(&call, None).ok()
}

/// One prediction's verdicts (`--per-sample`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SampleVerdicts {
    pub id: String,
    pub lang: String,
    #[serde(flatten)]
    pub verdicts: CallCheck,
}

/// The call checks of every prediction against `--spec`, without text metrics.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CallsReport {
    pub overall: GroundedSummary,
    pub per_lang: BTreeMap<String, GroundedSummary>,
    /// Whether every prediction had a reference (then `run` prints the full scores).
    #[serde(skip)]
    pub has_references: bool,
    #[serde(skip)]
    pub samples: Vec<SampleVerdicts>,
}

/// Checks every prediction's call against the specs of `--spec` (which must be given).
pub fn check_calls(args: &MetricsArgs) -> Result<CallsReport> {
    let contracts = load_contracts(args)?.ok_or_else(|| anyhow!("--spec is required"))?;
    with_rows(args, |rows| {
        let samples: Vec<SampleVerdicts> = rows
            .iter()
            .map(|row| {
                let lang = lang_key(&row.lang);
                let reference = reference_operation(&contracts, row);
                let verdicts = contracts.check(row.prediction, &lang, None, reference);
                SampleVerdicts {
                    id: row.id.clone(),
                    lang,
                    verdicts,
                }
            })
            .collect();
        let mut by_lang: BTreeMap<String, Vec<&CallCheck>> = BTreeMap::new();
        for s in &samples {
            by_lang.entry(s.lang.clone()).or_default().push(&s.verdicts);
        }
        let summary =
            |checks: Vec<&CallCheck>| GroundedSummary::of(checks.into_iter()).unwrap_or_default();
        Ok(CallsReport {
            overall: summary(samples.iter().map(|s| &s.verdicts).collect()),
            per_lang: by_lang.into_iter().map(|(l, c)| (l, summary(c))).collect(),
            has_references: rows.iter().all(|r| r.reference.is_some()),
            samples,
        })
    })
}

/// The call-check table: one row per language and one for all.
pub fn render_calls_table(report: &CallsReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", grounded_header("lang"));
    for (lang, s) in &report.per_lang {
        let _ = writeln!(out, "{}", grounded_row(lang, s));
    }
    let _ = writeln!(out, "{}", grounded_row("ALL", &report.overall));
    out
}

fn grounded_header(first: &str) -> String {
    format!(
        "{first:<12} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "n", "unchk", "valid%", "params%", "known%", "body%", "sameop%", "host✗", "path✗", "meth✗"
    )
}

fn grounded_row(name: &str, s: &GroundedSummary) -> String {
    format!(
        "{name:<12} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        s.n,
        s.unchecked,
        pct(s.call_valid.rate),
        pct(s.params_complete.rate),
        pct(s.params_known.rate),
        pct(s.body_valid.rate),
        pct(s.same_operation.rate),
        s.other_host,
        s.unknown_path,
        s.wrong_method,
    )
}

fn pct(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_owned(), |v| format!("{:.1}", 100.0 * v))
}

/// A fixed-width table, one row per language and one for all.
pub fn render_table(scores: &CorpusScores) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<12} {:>6} {:>6} {:>6} {:>9} {:>9} {:>7} {:>7} {:>7} {:>8} {:>8} {:>8} {:>8}",
        "lang",
        "n",
        "EM%",
        "EMws%",
        "sBLEU",
        "sBLEUsnt",
        "HFBLEU",
        "ROUGE-L",
        "syntax%",
        "endpt%",
        "call%",
        "meth+p%",
        "halluc%"
    );
    let mut row = |name: &str, s: &Scores| {
        let _ = writeln!(
            out,
            "{:<12} {:>6} {:>6.1} {:>6.1} {:>9.2} {:>9.2} {:>7.4} {:>7.4} {:>7} {:>8} {:>8} {:>8} {:>8}",
            name,
            s.n,
            100.0 * s.exact_match,
            100.0 * s.exact_match_ignoring_whitespace,
            s.sacrebleu_corpus,
            s.sacrebleu_sentence_mean,
            s.hf_bleu,
            s.rouge_l,
            pct(s.syntax.rate),
            pct(s.endpoint_match.rate),
            pct(s.api_call_match.rate),
            pct(s.method_path_match.rate),
            pct(s.hallucinated_endpoint.rate),
        );
    };
    for (lang, s) in &scores.per_lang {
        row(lang, s);
    }
    row("ALL", &scores.overall);
    if let Some(overall) = &scores.overall.grounded {
        let _ = writeln!(
            out,
            "\ncalls checked against the spec:\n{}",
            grounded_header("lang")
        );
        for (lang, s) in &scores.per_lang {
            if let Some(g) = &s.grounded {
                let _ = writeln!(out, "{}", grounded_row(lang, g));
            }
        }
        let _ = writeln!(out, "{}", grounded_row("ALL", overall));
    }
    out
}
