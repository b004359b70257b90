//! Errors of model loading, generation and scoring. Each names the file (and tensor or field) at
//! fault and, where there is one, what the user can do about it.

use std::path::{Path, PathBuf};

/// Everything that can go wrong between a model directory on disk and generated text.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    // The OS error is part of the message, not a `source`: error chains would print it twice.
    #[error("{path}: cannot read: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },

    #[error("{}invalid JSON: {error}", located(.path))]
    Json {
        path: PathBuf,
        error: serde_json::Error,
    },

    #[error(
        "{}unknown model_type {found:?}; supported architectures: {}",
        located(.path),
        super::registry::SUPPORTED_ARCHITECTURES.join(", ")
    )]
    UnknownArchitecture { path: PathBuf, found: String },

    /// A config field out of range or inconsistent; `path` is empty for a config that has no
    /// file (one built from a manifest table).
    #[error("{}{field}: {message}", located(.path))]
    InvalidConfig {
        path: PathBuf,
        field: &'static str,
        message: String,
    },

    #[error(
        "{dir}: no model.safetensors or model.safetensors.index.json found \
         (PyTorch .bin checkpoints are not supported: convert them to safetensors first)"
    )]
    NoWeights { dir: PathBuf },

    #[error(
        "{path}: not a valid safetensors file ({detail}); the file may be truncated or corrupt"
    )]
    CorruptWeights { path: PathBuf, detail: String },

    #[error("{path}: tensor {name:?}: expected shape {expected:?}, found {found:?}")]
    ShapeMismatch {
        path: PathBuf,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },

    #[error("tensor {name:?} not found in {searched}")]
    MissingTensor { name: String, searched: String },

    #[error(
        "{path}: tensor {name:?} has dtype {dtype}; only F32, F16, BF16 and F64 weights can be loaded"
    )]
    UnsupportedDtype {
        path: PathBuf,
        name: String,
        dtype: String,
    },

    #[error("{path}: tensor {name:?} holds {value} at element {index}; the weights are corrupt")]
    NonFiniteWeights {
        path: PathBuf,
        name: String,
        index: usize,
        value: f32,
    },

    #[error("{path}: tokenizer: {message}")]
    Tokenizer { path: PathBuf, message: String },

    #[error("backend {backend}: {message}")]
    Backend {
        backend: &'static str,
        message: String,
    },

    /// The device failed while running the model (out of memory, a buffer over the adapter's
    /// limit, a lost device).
    #[error("the compute device failed {0}; try a smaller batch or model, or another --backend")]
    Device(String),

    #[error("{0}")]
    InvalidInput(String),
}

/// `"{path}: "`, or nothing for an empty path.
fn located(path: &Path) -> String {
    if path.as_os_str().is_empty() {
        String::new()
    } else {
        format!("{}: ", path.display())
    }
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            error: source,
        }
    }

    pub(crate) fn config(
        path: impl Into<PathBuf>,
        field: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self::InvalidConfig {
            path: path.into(),
            field,
            message: message.into(),
        }
    }
}
