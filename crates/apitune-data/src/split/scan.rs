//! Pass one over the ingest output: normalise each record, drop empty ones and repeats, and keep
//! only each survivor's position and group ids (memory grows with the record count, not with the
//! records' size).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use super::{NormalizeParams, parse_record_line};
use crate::error::DataError;
use crate::normalize::normalize_record;
use crate::record::ApiRecord;

pub(super) fn content_hash(record: &ApiRecord) -> [u8; 16] {
    let mut hasher = blake3::Hasher::new();
    for part in [&record.lang, &record.instruction, &record.code] {
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().as_bytes()[..16]
        .try_into()
        .expect("16 bytes")
}

/// What pass one keeps of each surviving record: where it is and what it belongs to.
pub(super) struct Meta {
    pub(super) offset: u64,
    pub(super) len: u32,
    pub(super) lang: u16,
    pub(super) api: u32,
    pub(super) endpoint: u32,
    pub(super) hash: [u8; 16],
    pub(super) distinct_test: bool,
}

/// Interns strings to dense ids.
#[derive(Default)]
pub(super) struct Interner {
    pub(super) ids: HashMap<String, u32>,
    pub(super) names: Vec<String>,
}

impl Interner {
    pub(super) fn id(&mut self, name: &str) -> u32 {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = self.names.len() as u32;
        self.ids.insert(name.to_string(), id);
        self.names.push(name.to_string());
        id
    }
}

#[derive(Default)]
pub(super) struct ApiEndpoints {
    pub(super) hosts: BTreeSet<String>,
    pub(super) endpoints: BTreeSet<(Option<String>, String)>,
}

/// Pass one over the ingest output: every surviving record's position and group ids, the
/// catalogue of endpoints, and what was dropped. Records themselves are not kept.
#[derive(Default)]
pub(super) struct Scan {
    pub(super) metas: Vec<Meta>,
    pub(super) langs: Interner,
    pub(super) apis: Interner,
    /// Keys `api \0 method \0 path`.
    pub(super) endpoints: Interner,
    /// The API of each endpoint id.
    pub(super) endpoint_api: Vec<u32>,
    pub(super) catalogue: BTreeMap<String, ApiEndpoints>,
    pub(super) dropped: BTreeMap<&'static str, u64>,
    pub(super) input_records: u64,
    pub(super) seen: HashSet<[u8; 16]>,
}

impl Scan {
    /// Normalises each record of `input_path`, drops empty ones and (with `dedup`) repeats.
    pub(super) fn read(params: &NormalizeParams, input_path: &Path) -> Result<Self, DataError> {
        let file = File::open(input_path)
            .map_err(|e| DataError::io(input_path, "opening ingest output", e))?;
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut scan = Self::default();
        let (mut offset, mut line_number, mut line) = (0u64, 0u64, Vec::new());
        loop {
            line.clear();
            let read = reader
                .read_until(b'\n', &mut line)
                .map_err(|e| DataError::io(input_path, "reading ingest output", e))?;
            if read == 0 {
                return Ok(scan);
            }
            let at = (offset, read, line_number + 1);
            offset += read as u64;
            line_number += 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            scan.input_records += 1;
            let record = normalize_record(
                parse_record_line(&line, input_path, line_number)?,
                params.tab_width,
            );
            scan.add(record, params.dedup, at, input_path)?;
        }
    }

    /// Keeps `record`, read at `(offset, length, line)`, unless it is empty or a repeat.
    pub(super) fn add(
        &mut self,
        record: ApiRecord,
        dedup: bool,
        (offset, read, line_number): (u64, usize, u64),
        input_path: &Path,
    ) -> Result<(), DataError> {
        let empty = if record.code.is_empty() {
            Some("empty_code")
        } else if record.instruction.is_empty() {
            Some("empty_instruction")
        } else {
            None
        };
        let hash = match empty {
            None => content_hash(&record),
            Some(_) => [0; 16],
        };
        let dropped = empty.or_else(|| (dedup && !self.seen.insert(hash)).then_some("duplicate"));
        if let Some(reason) = dropped {
            *self.dropped.entry(reason).or_default() += 1;
            return Ok(());
        }
        let lang = self.langs.id(&record.lang);
        let lang = u16::try_from(lang).map_err(|_| DataError::Split {
            path: input_path.to_path_buf(),
            message: "more than 65,535 distinct languages".into(),
        })?;
        let (api, endpoint) = self.catalogue_endpoint(&record);
        let distinct_test =
            !record.instruction_test.is_empty() && record.instruction_test != record.instruction;
        self.metas.push(Meta {
            offset,
            len: u32::try_from(read).map_err(|_| DataError::Split {
                path: input_path.to_path_buf(),
                message: format!("line {line_number} is longer than 4 GiB"),
            })?,
            lang,
            api,
            endpoint,
            hash,
            distinct_test,
        });
        Ok(())
    }

    /// The (api, endpoint) ids of `record`, entered in the catalogue when new.
    pub(super) fn catalogue_endpoint(&mut self, record: &ApiRecord) -> (u32, u32) {
        let api = self.apis.id(&record.api_name);
        let (method, path) = record.endpoint();
        let endpoint = self
            .endpoints
            .id(&format!("{}\u{0}{method}\u{0}{path}", record.api_name));
        let new_endpoint = endpoint as usize == self.endpoint_api.len();
        if new_endpoint {
            self.endpoint_api.push(api);
        }
        let entry = self.catalogue.entry(record.api_name.clone()).or_default();
        if new_endpoint {
            entry
                .endpoints
                .insert((record.method.clone(), record.path.clone()));
        }
        if let Some(host) = &record.host {
            entry.hosts.insert(host.clone());
        }
        (api, endpoint)
    }
}
