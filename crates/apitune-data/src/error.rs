//! Errors of the data stages. Every variant names the file (and record) it is about, so a user can
//! find the offending input without a debugger.

use std::path::PathBuf;

/// Why a single record (or spec) was rejected; the summary counts skipped inputs per reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BadReason {
    /// The bytes of the record are not valid JSON.
    InvalidJson,
    /// Valid JSON, but not the shape of an API Pack record or an `ApiRecord`.
    WrongShape,
    /// A spec file that could not be parsed as JSON/YAML or is not an OpenAPI document.
    InvalidSpec,
    /// A Swagger 2.0 document: only OpenAPI 3.x is converted.
    Swagger2Unsupported,
    /// An OpenAPI document with an `openapi` version other than 3.x.
    UnsupportedOpenApiVersion,
}

impl BadReason {
    /// Stable snake_case name used as a key in summaries.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::WrongShape => "wrong_shape",
            Self::InvalidSpec => "invalid_spec",
            Self::Swagger2Unsupported => "swagger2_unsupported",
            Self::UnsupportedOpenApiVersion => "unsupported_openapi_version",
        }
    }
}

/// Where in a file a bad record sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordLocation {
    /// Element `index` (0-based) of a JSON array, starting at `byte_offset`.
    ArrayElement { index: u64, byte_offset: u64 },
    /// Line `line` (1-based) of a JSONL file.
    Line { line: u64 },
    /// The whole file (a spec).
    WholeFile,
}

impl std::fmt::Display for RecordLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ArrayElement { index, byte_offset } => {
                write!(
                    f,
                    "record {index} (array element at byte offset {byte_offset})"
                )
            }
            Self::Line { line } => write!(f, "line {line}"),
            Self::WholeFile => write!(f, "whole file"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{}: {context}: {source}", path.display())]
    Io {
        path: PathBuf,
        context: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// One bad record (or spec). Skippable with `on_bad_record = "skip"`.
    #[error("{}: {location}: {} ({message}); fix or remove it, or set on_bad_record = \"skip\"", path.display(), reason.as_str())]
    BadRecord {
        path: PathBuf,
        location: RecordLocation,
        reason: BadReason,
        message: String,
    },

    /// The file as a whole cannot be read on (e.g. a JSON array cut off in the middle). Not
    /// skippable record by record: nothing after the damage can be located reliably.
    #[error("{}: {message}", path.display())]
    BadFile { path: PathBuf, message: String },

    /// `note` says what the walk skipped (symbolic links), or is empty.
    #[error("source pattern `{pattern}` matched no files (looked relative to {}){note}; check the path in the manifest", base.display())]
    NoMatch {
        pattern: String,
        base: PathBuf,
        note: String,
    },

    #[error("source pattern `{pattern}` is not a valid glob: {message}")]
    BadPattern { pattern: String, message: String },

    #[error("invalid data-stage parameters: {0}")]
    Params(String),

    #[error("{}: {message}", path.display())]
    Split { path: PathBuf, message: String },
}

impl DataError {
    pub(crate) fn io(
        path: impl Into<PathBuf>,
        context: &'static str,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            path: path.into(),
            context,
            source,
        }
    }

    /// The reason when this error is a skippable bad record.
    pub fn bad_reason(&self) -> Option<BadReason> {
        match self {
            Self::BadRecord { reason, .. } => Some(*reason),
            _ => None,
        }
    }
}
