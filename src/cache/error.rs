use std::io;
use std::path::PathBuf;

use super::ids::Key;

/// Everything that can go wrong in the cache. Each message names the path involved and what the
/// user can do about it.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error(
        "the cache {path} is in use by {}; wait for that run to finish, or point this run at \
         another cache directory",
        holder(*pid)
    )]
    Locked { pid: Option<u32>, path: PathBuf },

    #[error("cannot {action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "the cache index `{path}` failed ({source}); run `apitune verify --repair` to rebuild it \
         from the artifact directories"
    )]
    Index {
        path: PathBuf,
        #[source]
        source: sled::Error,
    },

    #[error(
        "cannot {operation}: this cache was opened read-only; open it for writing (no --read-only)"
    )]
    ReadOnly { operation: &'static str },

    #[error(
        "stage output `{path}` cannot be published: {reason}; stages must write regular files \
         with UTF-8 names into their staging directory"
    )]
    InvalidArtifact { path: PathBuf, reason: String },

    #[error(
        "cannot publish under key {staged}: the entry's key manifest hashes to {from_manifest}; \
         the key must be computed with KeyManifest::key() from the same manifest"
    )]
    KeyMismatch { staged: Key, from_manifest: Key },

    #[error("cannot write the entry metadata `{path}`: {source}")]
    Metadata {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

fn holder(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("process {pid}"),
        None => "another process".to_string(),
    }
}

impl CacheError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> CacheError {
        let path = path.into();
        move |source| CacheError::Io {
            action,
            path,
            source,
        }
    }
}
