//! The metric columns a report can show, how each is read from eval results, and how it is printed.

use serde::{Deserialize, Serialize};

use crate::metrics::corpus::Scores;

/// A report column.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Fraction of exact matches, 0..1.
    ExactMatch,
    /// Exact match after removing all whitespace, 0..1.
    ExactMatchIgnoringWhitespace,
    /// Corpus sacreBLEU, 0..100.
    SacrebleuCorpus,
    /// Mean sentence sacreBLEU, 0..100.
    SacrebleuSentenceMean,
    /// HF `evaluate` BLEU, 0..1.
    HfBleu,
    /// Mean ROUGE-L F-measure, 0..1.
    RougeL,
    /// Syntactically valid fraction of checked snippets, 0..1.
    Syntax,
    /// Fraction whose called URL is close to the reference's (difflib ratio above the threshold), 0..1.
    EndpointMatch,
    /// Fraction with an endpoint match whose whole snippet is also close to the reference, 0..1.
    ApiCallMatch,
    /// Fraction whose HTTP method and path match the reference's, 0..1.
    MethodPathMatch,
    /// Fraction whose host matches the reference's, 0..1.
    HostMatch,
    /// Fraction of predictions calling an endpoint the API does not have; lower is better.
    HallucinatedEndpoint,
    /// Perplexity of the references; lower is better. Only measured overall.
    Perplexity,
    /// Fraction whose HTTP call resolves to an operation of the API's OpenAPI spec (host, path
    /// template, method); snippets without a readable call count as not valid, 0..1.
    CallValid,
    /// Of valid calls, the fraction sending every required parameter, 0..1.
    ParamsComplete,
    /// Of valid calls, the fraction sending no undeclared query parameter, 0..1.
    ParamsKnown,
    /// Of valid calls with a JSON request schema, the fraction whose body validates, 0..1.
    BodyValid,
    /// Fraction whose call resolves to the reference's operation, 0..1.
    SameOperation,
}

impl Metric {
    pub const ALL: [Metric; 18] = [
        Metric::ExactMatch,
        Metric::ExactMatchIgnoringWhitespace,
        Metric::SacrebleuCorpus,
        Metric::SacrebleuSentenceMean,
        Metric::HfBleu,
        Metric::RougeL,
        Metric::Syntax,
        Metric::EndpointMatch,
        Metric::ApiCallMatch,
        Metric::MethodPathMatch,
        Metric::HostMatch,
        Metric::HallucinatedEndpoint,
        Metric::Perplexity,
        Metric::CallValid,
        Metric::ParamsComplete,
        Metric::ParamsKnown,
        Metric::BodyValid,
        Metric::SameOperation,
    ];

    /// The report's default columns.
    pub fn defaults() -> Vec<Metric> {
        vec![
            Metric::ExactMatch,
            Metric::SacrebleuCorpus,
            Metric::SacrebleuSentenceMean,
            Metric::HfBleu,
            Metric::RougeL,
            Metric::Syntax,
            Metric::EndpointMatch,
            Metric::ApiCallMatch,
            Metric::HallucinatedEndpoint,
            Metric::Perplexity,
            Metric::CallValid,
            Metric::SameOperation,
        ]
    }

    /// Whether the metric checks calls against an OpenAPI spec (present only where the
    /// evaluated records came from specs).
    pub fn is_grounded(self) -> bool {
        matches!(
            self,
            Metric::CallValid
                | Metric::ParamsComplete
                | Metric::ParamsKnown
                | Metric::BodyValid
                | Metric::SameOperation
        )
    }

    /// The name used in params, CSV headers, JSON keys and plot file names.
    pub fn name(self) -> &'static str {
        match self {
            Metric::ExactMatch => "exact_match",
            Metric::ExactMatchIgnoringWhitespace => "exact_match_ignoring_whitespace",
            Metric::SacrebleuCorpus => "sacrebleu_corpus",
            Metric::SacrebleuSentenceMean => "sacrebleu_sentence_mean",
            Metric::HfBleu => "hf_bleu",
            Metric::RougeL => "rouge_l",
            Metric::Syntax => "syntax",
            Metric::EndpointMatch => "endpoint_match",
            Metric::ApiCallMatch => "api_call_match",
            Metric::MethodPathMatch => "method_path_match",
            Metric::HostMatch => "host_match",
            Metric::HallucinatedEndpoint => "hallucinated_endpoint",
            Metric::Perplexity => "perplexity",
            Metric::CallValid => "call_valid",
            Metric::ParamsComplete => "params_complete",
            Metric::ParamsKnown => "params_known",
            Metric::BodyValid => "body_valid",
            Metric::SameOperation => "same_operation",
        }
    }

    pub fn from_name(name: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Whether a larger value is better (colours deltas).
    pub fn higher_is_better(self) -> bool {
        !matches!(self, Metric::HallucinatedEndpoint | Metric::Perplexity)
    }

    /// The value in a set of scores; `None` when no example it applies to was scored.
    /// Perplexity is not part of [`Scores`]; read it from the results instead.
    pub fn of_scores(self, scores: &Scores) -> Option<f64> {
        if scores.n == 0 {
            return None;
        }
        match self {
            Metric::ExactMatch => Some(scores.exact_match),
            Metric::ExactMatchIgnoringWhitespace => Some(scores.exact_match_ignoring_whitespace),
            Metric::SacrebleuCorpus => Some(scores.sacrebleu_corpus),
            Metric::SacrebleuSentenceMean => Some(scores.sacrebleu_sentence_mean),
            Metric::HfBleu => Some(scores.hf_bleu),
            Metric::RougeL => Some(scores.rouge_l),
            Metric::Syntax => scores.syntax.rate,
            Metric::EndpointMatch => scores.endpoint_match.rate,
            Metric::ApiCallMatch => scores.api_call_match.rate,
            Metric::MethodPathMatch => scores.method_path_match.rate,
            Metric::HostMatch => scores.host_match.rate,
            Metric::HallucinatedEndpoint => scores.hallucinated_endpoint.rate,
            Metric::Perplexity => None,
            Metric::CallValid => scores.grounded?.call_valid.rate,
            Metric::ParamsComplete => scores.grounded?.params_complete.rate,
            Metric::ParamsKnown => scores.grounded?.params_known.rate,
            Metric::BodyValid => scores.grounded?.body_valid.rate,
            Metric::SameOperation => scores.grounded?.same_operation.rate,
        }
        .filter(|v| v.is_finite())
    }

    /// Prints a value at the precision its scale warrants; missing values print as `–`.
    pub fn format(self, value: Option<f64>) -> String {
        match value {
            None => MISSING.to_string(),
            Some(v) => format!("{v:.*}", self.decimals()),
        }
    }

    /// Prints a difference with its sign; missing prints as `–`.
    pub fn format_delta(self, delta: Option<f64>) -> String {
        match delta {
            None => MISSING.to_string(),
            Some(d) => {
                let text = format!("{d:+.*}", self.decimals());
                // `-0.000` reads as a regression that is not there.
                if text
                    .trim_start_matches(['+', '-'])
                    .chars()
                    .all(|c| c == '0' || c == '.')
                {
                    format!("±{}", &text[1..])
                } else {
                    text
                }
            }
        }
    }

    fn decimals(self) -> usize {
        match self {
            Metric::SacrebleuCorpus | Metric::SacrebleuSentenceMean | Metric::Perplexity => 2,
            _ => 3,
        }
    }
}

/// What a missing value prints as.
pub const MISSING: &str = "–";

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for m in Metric::ALL {
            assert_eq!(Metric::from_name(m.name()), Some(m));
            assert_eq!(serde_json::to_value(m).unwrap(), m.name());
        }
    }

    #[test]
    fn formatting_keeps_scale_sign_and_dash() {
        assert_eq!(Metric::ExactMatch.format(Some(0.25)), "0.250");
        assert_eq!(Metric::SacrebleuCorpus.format(Some(41.234)), "41.23");
        assert_eq!(Metric::Perplexity.format(None), "–");
        assert_eq!(Metric::ExactMatch.format_delta(Some(0.1)), "+0.100");
        assert_eq!(Metric::ExactMatch.format_delta(Some(-0.1)), "-0.100");
        assert_eq!(
            Metric::ExactMatch.format_delta(Some(-0.0001)),
            "±0.000",
            "no phantom regression"
        );
        assert_eq!(Metric::ExactMatch.format_delta(None), "–");
    }

    #[test]
    fn unscored_sets_have_no_values() {
        let scores = Scores::default();
        assert!(Metric::ALL.iter().all(|m| m.of_scores(&scores).is_none()));
    }
}
