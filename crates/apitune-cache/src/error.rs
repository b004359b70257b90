use std::io;
use std::path::PathBuf;

use super::ids::Key;
use super::store::CACHE_MARKER;

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

    /// The OS error is part of the message and deliberately not a `#[source]`: chained error
    /// printing (`{:#}`) would show it twice.
    #[error("cannot {action} `{path}`: {}", describe_io(cause))]
    Io {
        action: &'static str,
        path: PathBuf,
        cause: io::Error,
    },

    #[error(
        "`{path}` is not an apitune cache: it is not empty and has no `{CACHE_MARKER}`; apitune \
         only uses (and deletes in) directories it created. Point --cache (or APITUNE_CACHE) at \
         a new or empty directory"
    )]
    Foreign { path: PathBuf },

    #[error(
        "the cache `{path}` has format {found:?}, but this apitune reads format {expected}; use \
         another cache directory for this version (or the apitune version that wrote it)"
    )]
    Format {
        path: PathBuf,
        found: String,
        expected: u32,
    },

    #[error(
        "`{path}` is a symbolic link; apitune never follows links inside its cache (it would \
         delete files elsewhere). Replace it with a real directory, or point --cache at the \
         link's target"
    )]
    LinkedSubdirectory { path: PathBuf },

    #[error("{}", describe_index_failure(path, cause))]
    Index { path: PathBuf, cause: sled::Error },

    #[error(
        "cannot {operation}: this cache was opened read-only; open it for writing (no --read-only)"
    )]
    ReadOnly { operation: &'static str },

    #[error(
        "cannot {operation} while other runs use the cache; wait for them to finish (this needs \
         the cache to itself)"
    )]
    NotExclusive { operation: &'static str },

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

    #[error(
        "cannot {action} the remote cache `{url}`: {message}; check the URL and the store's \
         credentials in the environment (AWS_*, GOOGLE_*, AZURE_*)"
    )]
    Remote {
        url: String,
        action: &'static str,
        message: String,
    },

    #[error("cannot write the entry metadata `{path}`: {source}")]
    Metadata {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// The OS error without Rust's " (os error N)" suffix, and for a full disk what to do.
fn describe_io(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(28) => "no space left on the device; free space on that file system (delete \
                     files outside the cache, or move the cache with --cache) and run again"
            .to_string(),
        Some(30) => {
            "the file system is read-only; point --cache at a writable directory".to_string()
        }
        _ => {
            let text = e.to_string();
            match text.find(" (os error") {
                Some(cut) => text[..cut].to_string(),
                None => text,
            }
        }
    }
}

fn describe_index_failure(path: &std::path::Path, cause: &sled::Error) -> String {
    match cause {
        sled::Error::Io(io) if matches!(io.raw_os_error(), Some(28) | Some(30)) => {
            format!(
                "cannot write the cache index `{}`: {}",
                path.display(),
                describe_io(io)
            )
        }
        _ => format!(
            "the cache index `{}` failed ({cause}); run `apitune verify --repair` to rebuild it \
             from the artifact directories",
            path.display()
        ),
    }
}

impl CacheError {
    /// The OS error behind this one, if any (to tell a full disk from a failed stage).
    pub fn os_error(&self) -> Option<&io::Error> {
        match self {
            CacheError::Io { cause, .. } => Some(cause),
            CacheError::Index {
                cause: sled::Error::Io(io),
                ..
            } => Some(io),
            _ => None,
        }
    }

    /// Whether the cache itself cannot be used right now (held by another run, read-only, full),
    /// as opposed to a stage failing: such failures get their own exit code.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            CacheError::Locked { .. }
                | CacheError::ReadOnly { .. }
                | CacheError::NotExclusive { .. }
        ) || self.os_error().is_some_and(is_environment_error)
    }
}

/// Out of space, read-only file system, permission denied, quota exceeded.
pub fn is_environment_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(28) | Some(30) | Some(13) | Some(1) | Some(122)
    )
}

fn holder(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("process {pid}"),
        None => "other apitune runs".to_string(),
    }
}

impl CacheError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> CacheError {
        let path = path.into();
        move |cause| CacheError::Io {
            action,
            path,
            cause,
        }
    }
}
