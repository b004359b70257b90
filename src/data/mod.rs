//! The data half of the pipeline: sources -> `ApiRecord` JSONL (ingest), then normalisation,
//! de-duplication and API Pack's held-out levels (normalize), and the study's prompt.
//!
//! - [`record`]: `ApiRecord`, the one record type; JSONL of it between stages.
//! - [`apipack`], [`json_array`]: API Pack's one-array-per-file format, read as a stream; JSONL.
//! - [`openapi`]: OpenAPI 3.x specs -> one record per operation per language.
//! - [`ingest`]: the ingest stage's params and `run_ingest`.
//! - [`normalize`], [`split`]: the normalize stage's params and `run_normalize`; `read_records`,
//!   `take_samples`.
//! - [`prompt`]: the prompt template.

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
pub mod split;

pub use error::{BadReason, DataError, RecordLocation};
pub use ingest::{BadRecordPolicy, IngestParams, PathPatterns, RECORDS_FILE, SourceSpec, ingest_input_files, run_ingest};
pub use lang::{TARGET_LANGS, canonical_lang};
pub use prompt::prompt;
pub use record::ApiRecord;
pub use split::{
    ENDPOINTS_FILE, HeldoutScope, HeldoutSpec, KnownEndpoint, KnownEndpoints, LEVEL_FILES, NormalizeParams, TRAIN_FILE,
    read_endpoints, read_records, run_normalize, take_samples,
};
