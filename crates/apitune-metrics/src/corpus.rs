//! Scores a corpus of (prediction, reference, lang) examples: every metric per example, then
//! aggregated overall and per language.
//!
//! Aggregation follows the reference tools: corpus sacreBLEU and HF BLEU pool n-gram statistics;
//! "sentence sacreBLEU" is the plain mean of `sentence_bleu` scores (the study's second variant);
//! ROUGE-L is the plain mean of F-measures (HF reports a bootstrap median instead); rates are
//! micro-averages over the examples a metric applies to.

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::api_match::{ApiMatch, EndpointSet, SnippetLang, api_match};
use super::bleu::{BleuStats, hf_bleu_from_stats, sacrebleu_from_stats, segment_stats_both};
use super::bootstrap::Intervals;
use super::exact::{exact_match, exact_match_ignoring_whitespace};
use super::grounded::{CallCheck, CallStatus, ContractIndex, OperationRef};
use super::perplexity::{TokenNll, corpus_perplexity};
use super::pysum::python_mean;
use super::rouge::rouge_l;
use super::syntax::{SyntaxCheck, Verdict, check_label};

/// One scored item.
#[derive(Debug, Clone, Copy)]
pub struct Example<'a> {
    pub prediction: &'a str,
    pub reference: &'a str,
    /// API Pack `lang` label (`cURL`, `Python`, `javascript xhr`, ...); unknown labels are kept,
    /// scored on text metrics, and marked unchecked for syntax and API metrics.
    pub lang: &'a str,
    /// The API's operations, for the hallucinated-endpoint rate.
    pub known_endpoints: Option<&'a EndpointSet>,
    /// The model's NLL of the reference's target tokens (prompt excluded), for perplexity.
    pub nll: Option<TokenNll>,
    /// The API contract to check the predicted call against, when the example's spec is known.
    pub grounding: Option<Grounding<'a>>,
}

/// What a prediction's call is checked against (see [`crate::grounded`]).
#[derive(Clone, Copy)]
pub struct Grounding<'a> {
    pub contracts: &'a ContractIndex,
    /// The example's API; `None` resolves against every API of `contracts`.
    pub api: Option<usize>,
    /// The reference's operation, for `same_operation`.
    pub reference: Option<OperationRef>,
}

impl std::fmt::Debug for Grounding<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grounding")
            .field("api", &self.api)
            .field("reference", &self.reference)
            .finish_non_exhaustive()
    }
}

/// Every per-example metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExampleScores {
    /// Normalised language key (see [`lang_key`]).
    pub lang: String,
    pub exact_match: bool,
    pub exact_match_ignoring_whitespace: bool,
    /// `sacrebleu.sentence_bleu(pred, [ref]).score`.
    pub sacrebleu_sentence: f64,
    /// ROUGE-L F-measure.
    pub rouge_l: f64,
    pub syntax: SyntaxCheck,
    pub api: ApiMatch,
    pub sacrebleu_stats: BleuStats,
    pub hf_bleu_stats: BleuStats,
    pub nll: Option<TokenNll>,
    /// Spec-grounded verdicts, when the example's API contract is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grounded: Option<CallCheck>,
}

/// Hits out of the examples a rate applies to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Rate {
    pub hits: usize,
    pub n: usize,
    /// hits / n; `None` when no example applies.
    pub rate: Option<f64>,
}

impl Rate {
    fn from_flags(flags: impl Iterator<Item = Option<bool>>) -> Self {
        let (mut hits, mut n) = (0, 0);
        for f in flags.flatten() {
            n += 1;
            hits += usize::from(f);
        }
        Self {
            hits,
            n,
            rate: (n > 0).then(|| hits as f64 / n as f64),
        }
    }
}

/// Spec-grounded verdicts over the examples whose API contract is known (see
/// [`crate::grounded`]). `call_valid` counts unchecked snippets as not valid; the parameter and
/// body rates are of valid calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct GroundedSummary {
    /// Examples checked against a contract.
    pub n: usize,
    /// No call could be read from the snippet.
    pub unchecked: usize,
    pub other_host: usize,
    pub unknown_path: usize,
    pub wrong_method: usize,
    pub call_valid: Rate,
    pub params_complete: Rate,
    pub params_known: Rate,
    pub body_valid: Rate,
    pub same_operation: Rate,
}

impl GroundedSummary {
    /// `None` when `checks` is empty.
    pub fn of<'a>(checks: impl Iterator<Item = &'a CallCheck> + Clone) -> Option<Self> {
        let count = |status| checks.clone().filter(|c| c.status == status).count();
        let n = checks.clone().count();
        (n > 0).then(|| Self {
            n,
            unchecked: count(CallStatus::Unchecked),
            other_host: count(CallStatus::OtherHost),
            unknown_path: count(CallStatus::UnknownPath),
            wrong_method: count(CallStatus::WrongMethod),
            call_valid: Rate::from_flags(checks.clone().map(|c| Some(c.call_valid))),
            params_complete: Rate::from_flags(checks.clone().map(|c| c.params_complete)),
            params_known: Rate::from_flags(checks.clone().map(|c| c.params_known)),
            body_valid: Rate::from_flags(checks.clone().map(|c| c.body_valid)),
            same_operation: Rate::from_flags(checks.clone().map(|c| c.same_operation)),
        })
    }
}

/// Syntax correctness counts; `rate` is valid / checked, unchecked languages excluded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SyntaxSummary {
    pub checked: usize,
    pub valid: usize,
    pub unchecked: usize,
    pub fenced: usize,
    pub rate: Option<f64>,
}

/// Aggregated metrics of a set of examples.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub n: usize,
    pub exact_match: f64,
    pub exact_match_ignoring_whitespace: f64,
    /// `sacrebleu.corpus_bleu(preds, [refs]).score`, 0..100.
    pub sacrebleu_corpus: f64,
    /// Mean of `sacrebleu.sentence_bleu` scores, 0..100.
    pub sacrebleu_sentence_mean: f64,
    /// HF `evaluate` bleu, 0..1.
    pub hf_bleu: f64,
    /// Plain mean of ROUGE-L F-measures, 0..1.
    pub rouge_l: f64,
    pub syntax: SyntaxSummary,
    pub endpoint_match: Rate,
    pub api_call_match: Rate,
    pub method_path_match: Rate,
    pub host_match: Rate,
    pub hallucinated_endpoint: Rate,
    /// Token-weighted perplexity over the examples that carry an NLL; `None` without any.
    pub perplexity: Option<f64>,
    /// How many examples carried an NLL.
    pub perplexity_n: usize,
    /// Spec-grounded verdicts; `None` when no example had a known API contract.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grounded: Option<GroundedSummary>,
    /// Confidence intervals of the headline metrics, where the caller computed them
    /// ([`crate::bootstrap`]); results written before they existed have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intervals: Option<Intervals>,
}

/// Overall and per-language scores, plus every example's scores in input order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CorpusScores {
    pub overall: Scores,
    pub per_lang: BTreeMap<String, Scores>,
    pub examples: Vec<ExampleScores>,
}

/// The key a `lang` label is grouped under: the snippet family's name when known
/// (`cURL` -> `curl`, `javascript xhr` -> `javascript`), else the trimmed, lower-cased label.
pub fn lang_key(label: &str) -> String {
    SnippetLang::from_label(label)
        .map_or_else(|| label.trim().to_lowercase(), |l| l.name().to_owned())
}

/// Scores one example.
pub fn score_example(ex: &Example) -> ExampleScores {
    let (sacre, hf) = segment_stats_both(ex.prediction, ex.reference);
    let api = match SnippetLang::from_label(ex.lang) {
        Some(lang) => api_match(ex.prediction, ex.reference, lang, ex.known_endpoints),
        None => ApiMatch::default(),
    };
    ExampleScores {
        lang: lang_key(ex.lang),
        exact_match: exact_match(ex.prediction, ex.reference),
        exact_match_ignoring_whitespace: exact_match_ignoring_whitespace(
            ex.prediction,
            ex.reference,
        ),
        sacrebleu_sentence: sacrebleu_from_stats(&sacre, true),
        rouge_l: rouge_l(ex.reference, ex.prediction).fmeasure,
        syntax: check_label(ex.prediction, ex.lang),
        api,
        sacrebleu_stats: sacre,
        hf_bleu_stats: hf,
        nll: ex.nll,
        grounded: ex.grounding.map(|g| {
            g.contracts
                .check(ex.prediction, &lang_key(ex.lang), g.api, g.reference)
        }),
    }
}

/// Aggregates already scored examples (in their order, which fixes float summation order).
pub fn aggregate(examples: &[&ExampleScores]) -> Scores {
    let n = examples.len();
    let fraction = |f: &dyn Fn(&ExampleScores) -> bool| {
        if n == 0 {
            0.0
        } else {
            examples.iter().filter(|e| f(e)).count() as f64 / n as f64
        }
    };
    let mut sacre = BleuStats::default();
    let mut hf = BleuStats::default();
    for e in examples {
        sacre += e.sacrebleu_stats;
        hf += e.hf_bleu_stats;
    }
    let sentence: Vec<f64> = examples.iter().map(|e| e.sacrebleu_sentence).collect();
    let rouge: Vec<f64> = examples.iter().map(|e| e.rouge_l).collect();
    let mut syntax = SyntaxSummary::default();
    for e in examples {
        match e.syntax.verdict {
            Verdict::Valid => {
                syntax.checked += 1;
                syntax.valid += 1;
            }
            Verdict::Invalid => syntax.checked += 1,
            Verdict::Unchecked => syntax.unchecked += 1,
        }
        syntax.fenced += usize::from(e.syntax.fenced);
    }
    syntax.rate = (syntax.checked > 0).then(|| syntax.valid as f64 / syntax.checked as f64);
    let nlls: Vec<TokenNll> = examples.iter().filter_map(|e| e.nll).collect();
    Scores {
        n,
        exact_match: fraction(&|e| e.exact_match),
        exact_match_ignoring_whitespace: fraction(&|e| e.exact_match_ignoring_whitespace),
        sacrebleu_corpus: sacrebleu_from_stats(&sacre, false),
        sacrebleu_sentence_mean: python_mean(&sentence),
        hf_bleu: hf_bleu_from_stats(&hf),
        rouge_l: python_mean(&rouge),
        syntax,
        endpoint_match: Rate::from_flags(examples.iter().map(|e| e.api.endpoint_match)),
        api_call_match: Rate::from_flags(examples.iter().map(|e| e.api.api_call_match)),
        method_path_match: Rate::from_flags(examples.iter().map(|e| e.api.method_path_match)),
        host_match: Rate::from_flags(examples.iter().map(|e| e.api.host_match)),
        hallucinated_endpoint: Rate::from_flags(examples.iter().map(|e| e.api.hallucinated)),
        perplexity: corpus_perplexity(&nlls),
        perplexity_n: nlls.len(),
        grounded: GroundedSummary::of(examples.iter().filter_map(|e| e.grounded.as_ref())),
        intervals: None,
    }
}

/// Scores every example (in parallel) and aggregates overall and per language.
pub fn score_corpus(examples: &[Example]) -> CorpusScores {
    let scored: Vec<ExampleScores> = examples.par_iter().map(score_example).collect();
    let all: Vec<&ExampleScores> = scored.iter().collect();
    let mut by_lang: BTreeMap<String, Vec<&ExampleScores>> = BTreeMap::new();
    for e in &scored {
        by_lang.entry(e.lang.clone()).or_default().push(e);
    }
    let per_lang = by_lang
        .into_iter()
        .map(|(k, v)| (k, aggregate(&v)))
        .collect();
    let overall = aggregate(&all);
    CorpusScores {
        overall,
        per_lang,
        examples: scored,
    }
}
