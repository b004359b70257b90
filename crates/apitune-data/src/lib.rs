//! The data half of the pipeline: sources -> `ApiRecord` JSONL (ingest), then normalisation,
//! de-duplication and API Pack's held-out levels (normalize), and the study's prompt.
//!
//! - [`record`]: `ApiRecord`, the one record type; JSONL of it between stages.
//! - [`apipack`], [`json_array`]: API Pack's one-array-per-file format, read as a stream; JSONL.
//! - [`openapi`]: OpenAPI 3.x specs -> one record per operation per language.
//! - [`ingest`]: the ingest stage's params and [`run_ingest`]; [`walk`]: the files a source pattern
//!   names (symbolic links skipped and reported unless `follow_links`).
//! - [`normalize`], [`split`]: the normalize stage's params and [`run_normalize`];
//!   [`read_records`], [`take_samples`], [`read_endpoints`].
//! - [`prompt`]: the prompt template, with retrieved examples or without.
//! - [`retrieval`]: in-context examples per prompt (BM25, same API, leak-free pools).
//!
//! Decisions worth knowing:
//! - Language labels are trimmed, lower-cased and mapped onto API Pack's ten languages
//!   (`javascript xhr` -> `javascript`, `Node.js` -> `node`, `Shell` -> `curl`, `C` -> `libcurl`);
//!   see [`lang`].
//! - API Pack records have no method or host: both are recognised in the code where the snippet
//!   has an httpsnippet shape ([`code_facts`]), RapidAPI's `https//` scheme included.
//! - OpenAPI: instruction = summary (or the description's first sentence, or the operationId in
//!   words) + "using the <API>"; instruction_test = the description's first sentence when it says
//!   something else, otherwise a question form: always a different phrasing, deterministic.
//!   Required parameters become `api_arguments` and appear in the snippet (placeholders
//!   `SOME_<TYPE>_VALUE`, security as `REPLACE_KEY_VALUE` / `Bearer REPLACE_BEARER_TOKEN` /
//!   `Basic REPLACE_BASIC_AUTH`); path templates stay in the URL as `%7Bid%7D`. A relative server
//!   URL gets the host `localhost` and no `host` in the record. Swagger 2.0 files are skipped
//!   (`swagger2_unsupported`). API descriptions keep their first paragraph (500 characters at
//!   most), operation descriptions 1000 characters; example bodies expand at most 200 schema
//!   nodes, 6 levels deep.
//! - Held-out sizes count records per level per language by default; level 1 stays in training
//!   unless `level1_in_train = false`; see [`split`] for the exact rules.

pub mod apipack;
pub mod code_facts;
pub mod error;
pub mod ingest;
pub mod json_array;
pub mod lang;
pub mod normalize;
pub mod openapi;
pub mod prompt;
pub mod record;
pub mod retrieval;
pub mod split;
pub mod walk;

pub use error::{BadReason, DataError, RecordLocation};
pub use ingest::{
    BadRecordPolicy, CONTRACTS_FILE, IngestInputs, IngestParams, PathPatterns, RECORDS_FILE,
    SourceSpec, ingest_input_files, ingest_inputs, load_contracts, read_contracts, run_ingest,
};
pub use lang::{TARGET_LANGS, canonical_lang};
pub use prompt::{prompt, prompt_with_examples};
pub use record::ApiRecord;
pub use split::{
    DOCS_FILE, ENDPOINTS_FILE, HeldoutScope, HeldoutSpec, IndexedRecords, KnownEndpoint,
    KnownEndpoints, LEVEL_FILES, NormalizeParams, SPILL_BUDGET_ENV, TRAIN_FILE, read_endpoints,
    read_records, run_normalize, take_samples,
};
pub use walk::{SkipReason, SkippedPath};
