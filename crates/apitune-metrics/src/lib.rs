//! Evaluation metrics, each bit-compatible with the Python tool the study used.
//!
//! - [`bleu`]: sacreBLEU 2.x corpus/sentence BLEU and Hugging Face `evaluate` BLEU, both over the
//!   shared [`tokenize_13a`] tokenizer.
//! - [`rouge`]: ROUGE-L F as computed by Google's `rouge-score` 0.1.2 with its default tokenizer.
//! - [`exact`]: exact match (stripped, and whitespace-insensitive).
//! - [`perplexity`]: token-weighted corpus perplexity from per-example NLL sums.
//! - [`difflib`]: CPython's `difflib.SequenceMatcher` ratio, autojunk included.
//! - [`api_match`]: API Pack's endpoint / API-call match, method+path and host match,
//!   hallucinated-endpoint rate.
//! - [`call`]: the HTTP call a snippet makes (method, URL, query, headers, body), per language.
//! - [`grounded`]: spec-grounded verdicts: a call resolved against the API's OpenAPI operations.
//! - [`syntax`]: per-language syntax correctness (tree-sitter, and ruff's parser for Python).
//! - [`bootstrap`]: 95% intervals of the headline metrics, resampling whole APIs.
//! - [`corpus`]: per-example and per-language aggregation ([`corpus::score_corpus`]).
//! - [`cli`]: the `apitune metrics` subcommand.

pub mod api_match;
pub mod bleu;
pub mod bootstrap;
pub mod call;
pub mod corpus;
pub mod difflib;
pub mod exact;
pub mod grounded;
pub mod perplexity;
pub mod pysum;
pub mod rouge;
pub mod syntax;
pub mod tokenize_13a;

pub use corpus::{CorpusScores, Example, ExampleScores, Scores, score_corpus};
