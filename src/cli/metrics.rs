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
//! Prints scores to stdout (`--format json`: [`CorpusScores`] without per-example rows unless
//! `--per-example`; `--format table`: one row per language). Returns the exit code.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Map, Value};

use crate::metrics::api_match::{EndpointSet, SnippetLang, extract_call};
use crate::metrics::corpus::{CorpusScores, Example, Scores, lang_key, score_corpus};
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
    reference: &'r str,
    lang: String,
    api: Option<&'r str>,
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
            Ok(Row {
                nll: p.nll(&args.nll_field, &args.tokens_field)?,
                prediction: p.required_text(&args.field)?,
                reference: r.required_text(&args.ref_field)?,
                lang,
                api: r.text(&args.api_field)?,
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
        let Some(call) = extract_call(row.reference, lang) else {
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

/// Reads, pairs and scores the files named by `args` (everything `run` does except printing).
pub fn evaluate(args: &MetricsArgs) -> Result<CorpusScores> {
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
    let rows = build_rows(&pairs, args)?;
    let endpoint_sets = endpoints_from_references(&rows);
    let examples: Vec<Example> = rows
        .iter()
        .map(|row| Example {
            prediction: row.prediction,
            reference: row.reference,
            lang: &row.lang,
            known_endpoints: row
                .api
                .and_then(|api| endpoint_sets.get(&(api.to_owned(), lang_key(&row.lang)))),
            nll: row.nll,
        })
        .collect();
    Ok(score_corpus(&examples))
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
    out
}
