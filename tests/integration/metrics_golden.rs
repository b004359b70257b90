//! Compares apitune's metrics with values computed by the Python reference tools
//! (sacrebleu 2.5.1, rouge-score 0.1.2, CPython 3.11 difflib, HF evaluate's bleu algorithm) on the
//! pairs in tests/fixtures/metrics/golden.json, written by scripts/metrics_fixtures.py.

use std::path::PathBuf;

use apitune::metrics::bleu::{
    BleuStats, Preprocess, hf_bleu_corpus, hf_bleu_from_stats, sacrebleu_corpus,
    sacrebleu_from_stats, sacrebleu_sentence, segment_stats,
};
use apitune::metrics::difflib::{Match, SequenceMatcher, ratio};
use apitune::metrics::exact::exact_match;
use apitune::metrics::pysum::python_mean;
use apitune::metrics::rouge::{rouge_l, rouge_tokens};
use apitune::metrics::tokenize_13a::tokenize_13a;
use apitune::metrics::{Example, score_corpus};
use serde::Deserialize;

#[derive(Deserialize)]
struct Golden {
    pairs: Vec<Pair>,
    corpora: std::collections::BTreeMap<String, CorpusRef>,
}

#[derive(Deserialize)]
struct Stats {
    hyp_len: u64,
    ref_len: u64,
    correct: [u64; 4],
    total: [u64; 4],
}

impl From<&Stats> for BleuStats {
    fn from(s: &Stats) -> Self {
        BleuStats {
            hyp_len: s.hyp_len,
            ref_len: s.ref_len,
            correct: s.correct,
            total: s.total,
        }
    }
}

#[derive(Deserialize)]
struct RougeRef {
    #[serde(deserialize_with = "exact_f64")]
    precision: f64,
    #[serde(deserialize_with = "exact_f64")]
    recall: f64,
    #[serde(deserialize_with = "exact_f64")]
    fmeasure: f64,
}

#[derive(Deserialize)]
struct Pair {
    prediction: String,
    reference: String,
    lang: String,
    tok13a_prediction: String,
    sacrebleu_stats: Stats,
    hf_bleu_stats: Stats,
    #[serde(deserialize_with = "exact_f64")]
    sacrebleu_sentence: f64,
    #[serde(deserialize_with = "exact_f64")]
    sacrebleu_sentence_no_effective_order: f64,
    rouge_l: RougeRef,
    rouge_tokens_prediction: Vec<String>,
    #[serde(deserialize_with = "exact_f64")]
    difflib_ratio: f64,
    #[serde(deserialize_with = "exact_f64")]
    difflib_ratio_swapped: f64,
    difflib_blocks: Vec<[usize; 3]>,
    exact_match: bool,
    python_valid_prediction: bool,
    python_valid_reference: bool,
}

#[derive(Deserialize)]
struct CorpusRef {
    n: usize,
    #[serde(deserialize_with = "exact_f64")]
    sacrebleu_corpus: f64,
    #[serde(deserialize_with = "exact_f64")]
    sacrebleu_sentence_mean: f64,
    #[serde(deserialize_with = "exact_f64")]
    hf_bleu: f64,
    #[serde(deserialize_with = "exact_f64")]
    rouge_l_mean: f64,
    #[serde(deserialize_with = "exact_f64")]
    exact_match: f64,
}

/// Floats are stored as Python `repr` strings, parsed here with Rust's correctly rounded parser
/// (serde_json's default number parser may be one ULP off).
fn exact_f64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(serde::de::Error::custom)
}

fn golden() -> Golden {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/metrics/golden.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("golden.json parses")
}

/// 1e-9 relative, or exact at zero.
fn assert_close(what: &str, i: usize, got: f64, want: f64) {
    let ok = if want == 0.0 {
        got == 0.0
    } else {
        ((got - want) / want).abs() <= 1e-9
    };
    assert!(ok, "pair {i}: {what}: got {got:e}, Python {want:e}");
}

fn label(i: usize, p: &Pair) -> String {
    format!(
        "{i} ({}: {:?} / {:?})",
        p.lang,
        p.prediction.chars().take(40).collect::<String>(),
        p.reference.chars().take(40).collect::<String>()
    )
}

#[test]
fn fixture_is_substantial() {
    let g = golden();
    assert!(g.pairs.len() >= 300, "{} pairs", g.pairs.len());
    assert!(
        g.pairs
            .iter()
            .any(|p| p.reference.chars().count() >= 200 && p.prediction.chars().count() >= 200)
    );
}

#[test]
fn tokenizer_13a_matches_sacrebleu() {
    for (i, p) in golden().pairs.iter().enumerate() {
        let got = tokenize_13a(
            p.prediction
                .trim_end_matches(apitune::metrics::pysum::is_python_space),
        )
        .join(" ");
        assert_eq!(got, p.tok13a_prediction, "pair {}", label(i, p));
    }
}

#[test]
fn bleu_statistics_match_exactly() {
    for (i, p) in golden().pairs.iter().enumerate() {
        let sacre = segment_stats(&p.prediction, &p.reference, Preprocess::SacreBleu);
        assert_eq!(
            sacre,
            BleuStats::from(&p.sacrebleu_stats),
            "sacreBLEU stats, pair {}",
            label(i, p)
        );
        let hf = segment_stats(&p.prediction, &p.reference, Preprocess::HfEvaluate);
        assert_eq!(
            hf,
            BleuStats::from(&p.hf_bleu_stats),
            "HF stats, pair {}",
            label(i, p)
        );
    }
}

#[test]
fn sentence_bleu_matches_sacrebleu() {
    let mut bit_exact = 0;
    let g = golden();
    for (i, p) in g.pairs.iter().enumerate() {
        let got = sacrebleu_sentence(&p.prediction, &p.reference);
        assert_close("sentence_bleu", i, got, p.sacrebleu_sentence);
        bit_exact += usize::from(got.to_bits() == p.sacrebleu_sentence.to_bits());
        let stats = segment_stats(&p.prediction, &p.reference, Preprocess::SacreBleu);
        assert_close(
            "sentence_score(eff=no)",
            i,
            sacrebleu_from_stats(&stats, false),
            p.sacrebleu_sentence_no_effective_order,
        );
    }
    assert_eq!(
        bit_exact,
        g.pairs.len(),
        "every sentence score is bit-identical"
    );
}

#[test]
fn rouge_l_matches_rouge_score() {
    for (i, p) in golden().pairs.iter().enumerate() {
        assert_eq!(
            rouge_tokens(&p.prediction),
            p.rouge_tokens_prediction,
            "pair {}",
            label(i, p)
        );
        let got = rouge_l(&p.reference, &p.prediction);
        assert_close("rougeL precision", i, got.precision, p.rouge_l.precision);
        assert_close("rougeL recall", i, got.recall, p.rouge_l.recall);
        assert_close("rougeL f", i, got.fmeasure, p.rouge_l.fmeasure);
        assert_eq!(
            got.fmeasure.to_bits(),
            p.rouge_l.fmeasure.to_bits(),
            "bit-exact F, pair {}",
            label(i, p)
        );
    }
}

#[test]
fn difflib_matches_cpython_exactly() {
    for (i, p) in golden().pairs.iter().enumerate() {
        let mut sm = SequenceMatcher::new(&p.prediction, &p.reference);
        let want: Vec<Match> = p
            .difflib_blocks
            .iter()
            .map(|&[a, b, size]| Match { a, b, size })
            .collect();
        assert_eq!(sm.matching_blocks(), want, "blocks, pair {}", label(i, p));
        assert_eq!(
            ratio(&p.prediction, &p.reference),
            p.difflib_ratio,
            "ratio, pair {}",
            label(i, p)
        );
        assert_eq!(
            ratio(&p.reference, &p.prediction),
            p.difflib_ratio_swapped,
            "swapped ratio, pair {}",
            label(i, p)
        );
    }
}

#[test]
fn exact_match_matches_python_strip() {
    for (i, p) in golden().pairs.iter().enumerate() {
        assert_eq!(
            exact_match(&p.prediction, &p.reference),
            p.exact_match,
            "pair {}",
            label(i, p)
        );
    }
}

fn corpus_slice<'g>(g: &'g Golden, name: &str) -> &'g [Pair] {
    let n_hand = g.corpora["hand"].n;
    if name == "all" {
        &g.pairs
    } else if name == "hand" {
        &g.pairs[..n_hand]
    } else if name == "generated" {
        &g.pairs[n_hand..]
    } else {
        let k: usize = name
            .strip_prefix("chunk")
            .and_then(|k| k.parse().ok())
            .expect("chunk<k>");
        &g.pairs[k * 40..(k + 1) * 40]
    }
}

#[test]
fn corpus_scores_match_reference_tools() {
    let g = golden();
    assert!(g.corpora.len() > 5);
    for (name, want) in &g.corpora {
        let pairs = corpus_slice(&g, name);
        assert_eq!(pairs.len(), want.n, "{name}");
        let it = || {
            pairs
                .iter()
                .map(|p| (p.prediction.as_str(), p.reference.as_str()))
        };
        let sacre = sacrebleu_corpus(it());
        let hf = hf_bleu_corpus(it());
        let sentence: Vec<f64> = pairs
            .iter()
            .map(|p| sacrebleu_sentence(&p.prediction, &p.reference))
            .collect();
        let rouge: Vec<f64> = pairs
            .iter()
            .map(|p| rouge_l(&p.reference, &p.prediction).fmeasure)
            .collect();
        for (what, got, expected) in [
            ("corpus sacreBLEU", sacre, want.sacrebleu_corpus),
            ("HF bleu", hf, want.hf_bleu),
            (
                "sentence mean",
                python_mean(&sentence),
                want.sacrebleu_sentence_mean,
            ),
            ("ROUGE-L mean", python_mean(&rouge), want.rouge_l_mean),
        ] {
            assert_close(&format!("{name}: {what}"), 0, got, expected);
            assert_eq!(
                got.to_bits(),
                expected.to_bits(),
                "{name}: {what} bit-exact: {got} vs {expected}"
            );
        }

        // The public entry point aggregates to the same numbers.
        let examples: Vec<Example> = pairs
            .iter()
            .map(|p| Example {
                prediction: &p.prediction,
                reference: &p.reference,
                lang: &p.lang,
                known_endpoints: None,
                grounding: None,
                nll: None,
            })
            .collect();
        let scores = score_corpus(&examples);
        assert_eq!(
            scores.overall.sacrebleu_corpus, want.sacrebleu_corpus,
            "{name}"
        );
        assert_eq!(
            scores.overall.sacrebleu_sentence_mean, want.sacrebleu_sentence_mean,
            "{name}"
        );
        assert_eq!(scores.overall.hf_bleu, want.hf_bleu, "{name}");
        assert_eq!(scores.overall.rouge_l, want.rouge_l_mean, "{name}");
        assert_eq!(scores.overall.exact_match, want.exact_match, "{name}");
        let _ = hf_bleu_from_stats(&BleuStats::default());
    }
}

#[test]
fn python_syntax_agrees_with_ast_parse() {
    use apitune::metrics::api_match::SnippetLang;
    use apitune::metrics::syntax::check;
    let g = golden();
    let mut valid_seen = 0;
    for (i, p) in g.pairs.iter().enumerate() {
        for (text, want) in [
            (&p.prediction, p.python_valid_prediction),
            (&p.reference, p.python_valid_reference),
        ] {
            let got = check(text, SnippetLang::Python).is_valid();
            assert_eq!(
                got,
                want,
                "pair {}: ast.parse says {want} for {text:?}",
                label(i, p)
            );
            valid_seen += usize::from(want);
        }
    }
    assert!(
        valid_seen > 50,
        "the fixture holds enough valid Python ({valid_seen})"
    );
}

#[test]
fn generated_references_are_valid_code_with_readable_calls() {
    use apitune::metrics::api_match::{SnippetLang, extract_call};
    use apitune::metrics::syntax::check;
    let g = golden();
    let n_hand = g.corpora["hand"].n;
    let mut langs = std::collections::BTreeSet::new();
    for (i, p) in g.pairs.iter().enumerate().skip(n_hand) {
        let lang = SnippetLang::from_label(&p.lang).expect("generator uses API Pack labels");
        langs.insert(lang);
        let c = check(&p.reference, lang);
        assert!(c.is_valid(), "pair {}: {c:?}\n{}", label(i, p), p.reference);
        let call = extract_call(&p.reference, lang)
            .unwrap_or_else(|| panic!("pair {}: no call", label(i, p)));
        assert!(
            call.method.is_some() && call.host.is_some(),
            "pair {}: {call:?}",
            label(i, p)
        );
    }
    assert_eq!(
        langs.len(),
        SnippetLang::ALL.len(),
        "every language is generated"
    );
}
