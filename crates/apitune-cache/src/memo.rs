//! Memo logs: `memo/<id>/<name>.jsonl`, intermediate results keyed by less than a whole stage key
//! (eval generations depend on the model, prompts and decoding, not on the metric code), shared by
//! every arm that asks with the same material and extended across interrupted runs.
//!
//! A memo is appended to while a stage runs, so it cannot be published atomically like an
//! artifact. Instead every line carries its own checksum: `<compact JSON>\t<first 16 hex digits of
//! blake3(JSON)>\n`. A reader keeps the longest prefix of intact lines; a last line cut short by an
//! interruption is expected, while a damaged complete line is reported and dropped with everything
//! after it, so the stage regenerates from there.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::CacheError;
use super::store::{Cache, MEMO, list_children, unique_suffix};

const CHECKSUM_HEX: usize = 16;

/// What [`read_memo`] found: the intact prefix, and why it stops early when a complete line is
/// damaged (as opposed to cut short by an interruption).
#[derive(Debug)]
pub struct MemoContents<T> {
    pub items: Vec<T>,
    pub damaged: Option<String>,
}

/// The memo directory for `material` (any JSON identifying what the memo depends on), created
/// if needed under `root/memo/`.
pub fn memo_dir(cache_root: &Path, material: &serde_json::Value) -> Result<PathBuf, CacheError> {
    let id = super::canonical_json(material);
    let dir = cache_root
        .join(MEMO)
        .join(blake3::hash(id.as_bytes()).to_hex().as_str());
    fs::create_dir_all(&dir).map_err(CacheError::io("create the memo directory", &dir))?;
    Ok(dir)
}

fn checksum(json: &[u8]) -> String {
    blake3::hash(json).to_hex()[..CHECKSUM_HEX].to_string()
}

/// Reads the intact prefix of a memo log; a missing file is an empty memo.
pub fn read_memo<T: DeserializeOwned>(path: &Path) -> Result<MemoContents<T>, CacheError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(cause) => {
            return Err(CacheError::Io {
                action: "read",
                path: path.to_path_buf(),
                cause,
            });
        }
    };
    let mut items = Vec::new();
    let mut damaged = None;
    let mut rest = bytes.as_slice();
    let mut line_no = 0;
    while let Some(end) = rest.iter().position(|&b| b == b'\n') {
        line_no += 1;
        let line = &rest[..end];
        rest = &rest[end + 1..];
        match parse_line(line) {
            Ok(item) => items.push(item),
            Err(reason) => {
                damaged = Some(format!("`{}` line {line_no}: {reason}", path.display()));
                break;
            }
        }
    }
    Ok(MemoContents { items, damaged })
}

fn parse_line<T: DeserializeOwned>(line: &[u8]) -> Result<T, String> {
    let tab = line
        .iter()
        .rposition(|&b| b == b'\t')
        .ok_or("no checksum")?;
    let (json, sum) = (&line[..tab], &line[tab + 1..]);
    if sum != checksum(json).as_bytes() {
        return Err("checksum mismatch (the line was changed after it was written)".into());
    }
    serde_json::from_slice(json).map_err(|e| format!("not a memo record: {e}"))
}

/// Appends checksummed lines to a memo log.
pub struct MemoWriter {
    file: fs::File,
    path: PathBuf,
}

impl MemoWriter {
    /// Replaces the log at `path` with `items` (atomically: a crash leaves the old log or the new
    /// one) and opens it for appending.
    pub fn rewrite<T: Serialize>(path: &Path, items: &[T]) -> Result<MemoWriter, CacheError> {
        let tmp = path.with_extension(format!("tmp-{}", unique_suffix()));
        let mut writer = MemoWriter {
            file: fs::File::create(&tmp).map_err(CacheError::io("create", &tmp))?,
            path: tmp.clone(),
        };
        for item in items {
            writer.append(item)?;
        }
        writer.sync()?;
        fs::rename(&tmp, path).map_err(CacheError::io("replace", path))?;
        writer.path = path.to_path_buf();
        Ok(writer)
    }

    pub fn append<T: Serialize>(&mut self, item: &T) -> Result<(), CacheError> {
        let mut line = serde_json::to_vec(item).map_err(|source| CacheError::Metadata {
            path: self.path.clone(),
            source,
        })?;
        let sum = checksum(&line);
        line.push(b'\t');
        line.extend_from_slice(sum.as_bytes());
        line.push(b'\n');
        self.file
            .write_all(&line)
            .map_err(CacheError::io("append to", &self.path))
    }

    pub fn sync(&mut self) -> Result<(), CacheError> {
        self.file
            .sync_all()
            .map_err(CacheError::io("fsync", &self.path))
    }
}

impl Cache {
    pub fn memo_root(&self) -> PathBuf {
        self.root.join(MEMO)
    }

    /// Checks every memo log; a damaged one is cut back to its intact prefix (so the next run
    /// regenerates the rest) and reported as `(memo/<id>/<file>, reason)`. Leftovers of
    /// interrupted rewrites are removed.
    pub(crate) fn verify_memos(&self) -> Result<Vec<(String, String)>, CacheError> {
        self.writer("verify memos")?;
        let mut damaged = Vec::new();
        for (id, dir) in list_children(&self.memo_root())? {
            for (name, path) in list_children(&dir)? {
                if name.contains(".tmp-") {
                    super::store::remove_if_exists(&path)?;
                    continue;
                }
                let contents = read_memo::<serde_json::Value>(&path)?;
                if let Some(reason) = contents.damaged {
                    MemoWriter::rewrite(&path, &contents.items)?;
                    damaged.push((format!("{MEMO}/{id}/{name}"), reason));
                }
            }
        }
        Ok(damaged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(items: &[u32]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("level1.jsonl");
        let mut writer = MemoWriter::rewrite(&path, &items[..1]).unwrap();
        for item in &items[1..] {
            writer.append(item).unwrap();
        }
        writer.sync().unwrap();
        (dir, path)
    }

    #[test]
    fn intact_log_reads_back() {
        let (_dir, path) = written(&[1, 2, 3]);
        let read = read_memo::<u32>(&path).unwrap();
        assert_eq!(read.items, [1, 2, 3]);
        assert!(read.damaged.is_none());
    }

    #[test]
    fn a_line_cut_short_by_a_crash_is_not_damage() {
        let (_dir, path) = written(&[1, 2, 3]);
        let bytes = fs::read(&path).unwrap();
        fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
        let read = read_memo::<u32>(&path).unwrap();
        assert_eq!(read.items, [1, 2]);
        assert!(read.damaged.is_none());
    }

    #[test]
    fn a_changed_line_is_named_and_ends_the_usable_prefix() {
        let (_dir, path) = written(&[10, 20, 30]);
        let mut bytes = fs::read(&path).unwrap();
        let second = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
        bytes[second] = b'3'; // "20" -> "30": valid JSON, wrong checksum
        fs::write(&path, &bytes).unwrap();
        let read = read_memo::<u32>(&path).unwrap();
        assert_eq!(read.items, [10]);
        let why = read.damaged.unwrap();
        assert!(why.contains("line 2") && why.contains("checksum"), "{why}");
    }

    #[test]
    fn invalid_utf8_is_damage_not_an_error() {
        let (_dir, path) = written(&[1, 2]);
        let mut bytes = fs::read(&path).unwrap();
        bytes[0] = 0xff;
        fs::write(&path, &bytes).unwrap();
        let read = read_memo::<u32>(&path).unwrap();
        assert!(read.items.is_empty());
        assert!(read.damaged.unwrap().contains("line 1"));
    }
}
