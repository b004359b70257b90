//! Records of a JSONL file read back by position, without keeping them in memory: one pass
//! notes where each record starts, and a record is re-read (and re-parsed) when it is needed.
//! A training run over 100K records then holds 16 bytes per record instead of the records.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::parse_record_line;
use crate::error::DataError;
use crate::record::ApiRecord;

/// Where a record's line lies in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    offset: u64,
    len: u32,
    line: u32,
}

/// The records of one JSONL file that a scan kept, by position.
#[derive(Debug)]
pub struct IndexedRecords {
    path: PathBuf,
    spans: Vec<Span>,
    file: Mutex<File>,
}

impl IndexedRecords {
    /// Reads the first `limit` records of `path` (all when `None`; blank lines are skipped as
    /// [`super::read_records`] does), calls `keep` on each in order, and indexes those it
    /// returns `true` for. Errors when the file holds fewer than `limit` records.
    pub fn scan(
        path: &Path,
        limit: Option<usize>,
        mut keep: impl FnMut(&ApiRecord) -> Result<bool, DataError>,
    ) -> Result<Self, DataError> {
        let io = |what: &'static str| move |e| DataError::io(path, what, e);
        let file = File::open(path).map_err(io("opening records file"))?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut spans = Vec::new();
        let (mut offset, mut line_number, mut seen) = (0u64, 0u64, 0usize);
        let mut line = Vec::new();
        while limit.is_none_or(|n| seen < n) {
            line.clear();
            let read = reader
                .read_until(b'\n', &mut line)
                .map_err(io("reading records file"))?;
            if read == 0 {
                break;
            }
            line_number += 1;
            let start = offset;
            offset += read as u64;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            seen += 1;
            let record = parse_record_line(&line, path, line_number)?;
            if keep(&record)? {
                spans.push(Span {
                    offset: start,
                    len: u32::try_from(read).map_err(|_| too_long(path, line_number))?,
                    line: u32::try_from(line_number).unwrap_or(u32::MAX),
                });
            }
        }
        if let Some(n) = limit.filter(|&n| seen < n) {
            return Err(DataError::Split {
                path: path.to_path_buf(),
                message: format!(
                    "{n} training samples requested but the training pool holds only {seen}; lower `samples` or ingest more data"
                ),
            });
        }
        let file = File::open(path).map_err(io("opening records file"))?;
        Ok(Self {
            path: path.to_path_buf(),
            spans,
            file: Mutex::new(file),
        })
    }

    /// Records kept by the scan.
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The `i`-th kept record, read again from the file. Errors if the file changed since the
    /// scan in a way that moves or breaks the record.
    pub fn get(&self, i: usize) -> Result<ApiRecord, DataError> {
        let span = self.spans[i];
        let mut bytes = vec![0; span.len as usize];
        {
            let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
            file.seek(SeekFrom::Start(span.offset))
                .and_then(|_| file.read_exact(&mut bytes))
                .map_err(|e| DataError::io(&self.path, "re-reading a record", e))?;
        }
        parse_record_line(&bytes, &self.path, u64::from(span.line))
    }
}

fn too_long(path: &Path, line: u64) -> DataError {
    DataError::Split {
        path: path.to_path_buf(),
        message: format!("line {line} is longer than 4 GiB; is this a records file?"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: usize) -> String {
        serde_json::json!({
            "api_name": "pets", "lang": "curl", "instruction": format!("call {id}"),
            "code": format!("curl https://x/pets/{id}"), "unique_id": id.to_string(),
        })
        .to_string()
    }

    #[test]
    fn re_reads_the_kept_records_of_a_prefix_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train.jsonl");
        let lines: Vec<String> = (0..10).map(record).collect();
        // A blank line in the middle is skipped, as read_records does.
        let text = format!("{}\n\n{}\n", lines[..4].join("\n"), lines[4..].join("\n"));
        std::fs::write(&path, text).unwrap();
        let odd = |r: &ApiRecord| Ok(r.unique_id.parse::<usize>().unwrap() % 2 == 1);
        let index = IndexedRecords::scan(&path, Some(8), odd).unwrap();
        let ids: Vec<String> = (0..index.len())
            .map(|i| index.get(i).unwrap().unique_id)
            .collect();
        assert_eq!(ids, ["1", "3", "5", "7"]);
        let all: Vec<ApiRecord> = super::super::take_samples(&path, 8).unwrap();
        assert_eq!(index.get(2).unwrap(), all[5]);

        let error = IndexedRecords::scan(&path, Some(11), |_| Ok(true)).unwrap_err();
        assert!(error.to_string().contains("holds only 10"), "{error}");
    }
}
