//! The passes over the ingest output that come before any held-out decision: normalise each
//! record, drop empty ones and repeats, and sort what is left of them (positions, ids, hashes;
//! never the records) by API and endpoint, with the counts the held-out choices need. Everything
//! that grows with the corpus goes through [`super::spill`].

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

use extsort::Sortable;
use fixedbitset::FixedBitSet;

use super::heldout::Quotas;
use super::spill::{Recorded, Sorted, Spill, Tape, codec};
use super::{NormalizeParams, parse_record_line, rank};
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

/// What the split keeps of a surviving record: where it is, what it belongs to and its content
/// hash. APIs and endpoints are named by their seeded ranks (blake3 of seed and name), which
/// both identify them and give the order in which they are drawn for the held-out levels.
#[derive(Debug, Clone, Copy)]
pub(super) struct Row {
    /// Position among the ingest output's non-empty records (input order).
    pub(super) seq: u64,
    pub(super) offset: u64,
    pub(super) len: u32,
    pub(super) lang: u16,
    pub(super) distinct_test: bool,
    pub(super) hash: [u8; 16],
    pub(super) api: u128,
    pub(super) endpoint: u128,
}

impl Sortable for Row {
    fn encode<W: Write>(&self, out: &mut W) -> std::io::Result<()> {
        codec::put(out, self.seq.to_le_bytes())?;
        codec::put(out, self.offset.to_le_bytes())?;
        codec::put(out, self.len.to_le_bytes())?;
        codec::put(out, self.lang.to_le_bytes())?;
        codec::put(out, [self.distinct_test as u8])?;
        codec::put(out, self.hash)?;
        codec::put(out, self.api.to_le_bytes())?;
        codec::put(out, self.endpoint.to_le_bytes())
    }

    fn decode<R: Read>(input: &mut R) -> std::io::Result<Self> {
        Ok(Self {
            seq: u64::from_le_bytes(codec::get(input)?),
            offset: u64::from_le_bytes(codec::get(input)?),
            len: u32::from_le_bytes(codec::get(input)?),
            lang: u16::from_le_bytes(codec::get(input)?),
            distinct_test: codec::get::<_, 1>(input)?[0] != 0,
            hash: codec::get(input)?,
            api: u128::from_le_bytes(codec::get(input)?),
            endpoint: u128::from_le_bytes(codec::get(input)?),
        })
    }
}

/// One kept record's API and endpoint by name, for `endpoints.jsonl`.
pub(super) struct CatalogueEntry {
    pub(super) api_name: String,
    pub(super) method: Option<String>,
    pub(super) path: String,
    pub(super) host: Option<String>,
    pub(super) seq: u64,
}

impl CatalogueEntry {
    fn order(a: &Self, b: &Self) -> std::cmp::Ordering {
        (&a.api_name, &a.method, &a.path, a.seq).cmp(&(&b.api_name, &b.method, &b.path, b.seq))
    }
}

impl Sortable for CatalogueEntry {
    fn encode<W: Write>(&self, out: &mut W) -> std::io::Result<()> {
        codec::put_str(out, &self.api_name)?;
        codec::put_opt_str(out, self.method.as_deref())?;
        codec::put_str(out, &self.path)?;
        codec::put_opt_str(out, self.host.as_deref())?;
        codec::put(out, self.seq.to_le_bytes())
    }

    fn decode<R: Read>(input: &mut R) -> std::io::Result<Self> {
        Ok(Self {
            api_name: codec::get_str(input)?,
            method: codec::get_opt_str(input)?,
            path: codec::get_str(input)?,
            host: codec::get_opt_str(input)?,
            seq: u64::from_le_bytes(codec::get(input)?),
        })
    }
}

/// An API's records per group, its number of endpoints and its first record.
pub(super) struct ApiCounts {
    pub(super) api: u128,
    pub(super) counts: Vec<u64>,
    pub(super) endpoints: u64,
    /// The smallest `seq` of its records: ties between APIs go to the one met first.
    pub(super) first: u64,
}

impl Sortable for ApiCounts {
    fn encode<W: Write>(&self, out: &mut W) -> std::io::Result<()> {
        codec::put(out, self.api.to_le_bytes())?;
        codec::put_counts(out, &self.counts)?;
        codec::put(out, self.endpoints.to_le_bytes())?;
        codec::put(out, self.first.to_le_bytes())
    }

    fn decode<R: Read>(input: &mut R) -> std::io::Result<Self> {
        Ok(Self {
            api: u128::from_le_bytes(codec::get(input)?),
            counts: codec::get_counts(input)?,
            endpoints: u64::from_le_bytes(codec::get(input)?),
            first: u64::from_le_bytes(codec::get(input)?),
        })
    }
}

/// An endpoint's records per group, with its API and that API's number of endpoints.
pub(super) struct EndpointCounts {
    pub(super) endpoint: u128,
    pub(super) api: u128,
    pub(super) counts: Vec<u64>,
    pub(super) api_endpoints: u64,
}

impl Sortable for EndpointCounts {
    fn encode<W: Write>(&self, out: &mut W) -> std::io::Result<()> {
        codec::put(out, self.endpoint.to_le_bytes())?;
        codec::put(out, self.api.to_le_bytes())?;
        codec::put_counts(out, &self.counts)?;
        codec::put(out, self.api_endpoints.to_le_bytes())
    }

    fn decode<R: Read>(input: &mut R) -> std::io::Result<Self> {
        Ok(Self {
            endpoint: u128::from_le_bytes(codec::get(input)?),
            api: u128::from_le_bytes(codec::get(input)?),
            counts: codec::get_counts(input)?,
            api_endpoints: u64::from_le_bytes(codec::get(input)?),
        })
    }
}

/// Interns strings to dense ids (languages: a handful).
#[derive(Default)]
struct Interner {
    ids: HashMap<String, u16>,
    names: Vec<String>,
}

impl Interner {
    fn id(&mut self, name: &str, input_path: &Path) -> Result<u16, DataError> {
        if let Some(id) = self.ids.get(name) {
            return Ok(*id);
        }
        let id = u16::try_from(self.names.len()).map_err(|_| DataError::Split {
            path: input_path.to_path_buf(),
            message: "more than 65,535 distinct languages".into(),
        })?;
        self.ids.insert(name.to_string(), id);
        self.names.push(name.to_string());
        Ok(id)
    }
}

/// The kept records, sorted by API and endpoint, with the counts and catalogue the held-out
/// choices and the output files need.
pub(super) struct Corpus {
    pub(super) input_records: u64,
    pub(super) kept: u64,
    pub(super) dropped: BTreeMap<&'static str, u64>,
    /// Languages of the kept records, in order of first appearance.
    pub(super) langs: Vec<String>,
    pub(super) quotas: Quotas,
    /// Kept rows by (api, endpoint, seq); their `lang` indexes `langs`.
    pub(super) rows: Recorded<Row>,
    /// Per API in rank order.
    pub(super) apis: Recorded<ApiCounts>,
    pub(super) api_count: u64,
    /// Per endpoint in rank order.
    pub(super) endpoints: Sorted<EndpointCounts>,
    pub(super) endpoint_count: u64,
    /// Every non-empty record's API and endpoint by name; `duplicates` says which to skip.
    pub(super) catalogue: Sorted<CatalogueEntry>,
    /// The `seq`s dropped as repeats.
    pub(super) duplicates: FixedBitSet,
}

/// Rows and catalogue entries of the non-empty records, before de-duplication.
struct Read1 {
    input_records: u64,
    non_empty: u64,
    dropped: BTreeMap<&'static str, u64>,
    langs: Interner,
    rows: Spill<Row>,
    catalogue: Spill<CatalogueEntry>,
}

fn by_hash(a: &Row, b: &Row) -> std::cmp::Ordering {
    (a.hash, a.seq).cmp(&(b.hash, b.seq))
}

fn by_api(a: &Row, b: &Row) -> std::cmp::Ordering {
    (a.api, a.endpoint, a.seq).cmp(&(b.api, b.endpoint, b.seq))
}

fn by_endpoint(a: &EndpointCounts, b: &EndpointCounts) -> std::cmp::Ordering {
    a.endpoint.cmp(&b.endpoint)
}

/// In-memory size of a catalogue entry, strings included (typical lengths), for run sizing.
const CATALOGUE_ENTRY_BYTES: usize = 200;

impl Corpus {
    /// Normalises each record of `input_path`, drops empty ones and (with `dedup`) repeats, and
    /// sorts the rest by API; temporary files go under `work`.
    pub(super) fn read(
        params: &NormalizeParams,
        seed: u64,
        input_path: &Path,
        work: &Path,
    ) -> Result<Self, DataError> {
        let first = read_rows(params, seed, input_path, work)?;
        let mut dropped = first.dropped;
        let mut duplicates = FixedBitSet::with_capacity(first.non_empty as usize);
        // Per first-pass language id: kept records and the first kept `seq`.
        let mut lang_seen: Vec<(u64, u64)> = vec![(0, u64::MAX); first.langs.names.len()];
        let mut sorted_by_api = Spill::new(work, std::mem::size_of::<Row>(), by_api)?;
        let mut keep = |row: Row| -> Result<(), DataError> {
            let seen = &mut lang_seen[row.lang as usize];
            seen.0 += 1;
            seen.1 = seen.1.min(row.seq);
            sorted_by_api.push(row)
        };
        if params.dedup {
            let mut previous: Option<[u8; 16]> = None;
            for row in first.rows.sorted()? {
                let row = row?;
                if previous == Some(row.hash) {
                    *dropped.entry("duplicate").or_default() += 1;
                    duplicates.insert(row.seq as usize);
                    continue;
                }
                previous = Some(row.hash);
                keep(row)?;
            }
        } else {
            for row in first.rows.sorted()? {
                keep(row?)?;
            }
        }
        // Languages renumbered densely over the kept records, in order of first appearance.
        let mut order: Vec<usize> = (0..lang_seen.len())
            .filter(|&l| lang_seen[l].0 > 0)
            .collect();
        order.sort_by_key(|&l| lang_seen[l].1);
        let mut dense = vec![u16::MAX; lang_seen.len()];
        for (new, &old) in order.iter().enumerate() {
            dense[old] = new as u16;
        }
        let langs: Vec<String> = order
            .iter()
            .map(|&l| first.langs.names[l].clone())
            .collect();
        let quotas = Quotas::new(&params.heldout, langs.len());
        let grouped = group_by_api(sorted_by_api.sorted()?, &dense, &quotas, work)?;
        let rows = grouped.rows.finish()?;
        let apis = grouped.apis.finish()?;
        let endpoints = endpoints_by_rank(&apis, grouped.endpoints.finish()?, &quotas, work)?;
        Ok(Self {
            input_records: first.input_records,
            kept: rows.len(),
            dropped,
            langs,
            quotas,
            rows,
            api_count: apis.len(),
            apis,
            endpoint_count: endpoints.len(),
            endpoints: endpoints.sorted()?,
            catalogue: first.catalogue.sorted()?,
            duplicates,
        })
    }
}

/// Pass one: every non-empty record's row (sorted by hash when de-duplicating, by API when
/// not) and catalogue entry.
fn read_rows(
    params: &NormalizeParams,
    seed: u64,
    input_path: &Path,
    work: &Path,
) -> Result<Read1, DataError> {
    let file = File::open(input_path)
        .map_err(|e| DataError::io(input_path, "opening ingest output", e))?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let order = if params.dedup { by_hash } else { by_api };
    let mut first = Read1 {
        input_records: 0,
        non_empty: 0,
        dropped: BTreeMap::new(),
        langs: Interner::default(),
        rows: Spill::new(work, std::mem::size_of::<Row>(), order)?,
        catalogue: Spill::new(work, CATALOGUE_ENTRY_BYTES, CatalogueEntry::order)?,
    };
    let (mut offset, mut line_number, mut line) = (0u64, 0u64, Vec::new());
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| DataError::io(input_path, "reading ingest output", e))?;
        if read == 0 {
            return Ok(first);
        }
        let at = offset;
        offset += read as u64;
        line_number += 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        first.input_records += 1;
        let record = normalize_record(
            parse_record_line(&line, input_path, line_number)?,
            params.tab_width,
        );
        let empty = if record.code.is_empty() {
            Some("empty_code")
        } else if record.instruction.is_empty() {
            Some("empty_instruction")
        } else {
            None
        };
        if let Some(reason) = empty {
            *first.dropped.entry(reason).or_default() += 1;
            continue;
        }
        let len = u32::try_from(read).map_err(|_| DataError::Split {
            path: input_path.to_path_buf(),
            message: format!("line {line_number} is longer than 4 GiB"),
        })?;
        let seq = first.non_empty;
        first.non_empty += 1;
        let (method, path) = record.endpoint();
        let endpoint_key = format!("{}\u{0}{method}\u{0}{path}", record.api_name);
        first.rows.push(Row {
            seq,
            offset: at,
            len,
            lang: first.langs.id(&record.lang, input_path)?,
            distinct_test: !record.instruction_test.is_empty()
                && record.instruction_test != record.instruction,
            hash: content_hash(&record),
            api: rank(seed, "level3-api", record.api_name.as_bytes()),
            endpoint: rank(seed, "level2-endpoint", endpoint_key.as_bytes()),
        })?;
        first.catalogue.push(CatalogueEntry {
            api_name: record.api_name,
            method: record.method,
            path: record.path,
            host: record.host,
            seq,
        })?;
    }
}

/// The kept rows by API, with counts per API and per endpoint, all in API order.
struct Grouped {
    rows: Tape<Row>,
    apis: Tape<ApiCounts>,
    endpoints: Tape<EndpointCounts>,
}

/// Pass two, over the kept rows by API: each API's and endpoint's records per group. Rows are
/// written again (languages renumbered by `dense`) for the passes after the held-out choices.
fn group_by_api(
    rows: Sorted<Row>,
    dense: &[u16],
    quotas: &Quotas,
    work: &Path,
) -> Result<Grouped, DataError> {
    let mut grouped = Grouped {
        rows: Tape::new(work)?,
        apis: Tape::new(work)?,
        endpoints: Tape::new(work)?,
    };
    let mut api: Option<ApiCounts> = None;
    let mut endpoint: Option<EndpointCounts> = None;
    for row in rows {
        let mut row = row?;
        row.lang = dense[row.lang as usize];
        grouped.rows.push(&row)?;
        if endpoint
            .as_ref()
            .is_some_and(|e| e.endpoint != row.endpoint)
        {
            grouped.endpoints.push(&endpoint.take().expect("checked"))?;
        }
        if api.as_ref().is_some_and(|a| a.api != row.api) {
            grouped.apis.push(&api.take().expect("checked"))?;
        }
        let api = api.get_or_insert_with(|| ApiCounts {
            api: row.api,
            counts: vec![0; quotas.groups],
            endpoints: 0,
            first: row.seq,
        });
        let endpoint = endpoint.get_or_insert_with(|| {
            api.endpoints += 1;
            EndpointCounts {
                endpoint: row.endpoint,
                api: row.api,
                counts: vec![0; quotas.groups],
                api_endpoints: 0,
            }
        });
        let group = quotas.group(row.lang);
        api.counts[group] += 1;
        api.first = api.first.min(row.seq);
        endpoint.counts[group] += 1;
    }
    if let Some(endpoint) = endpoint {
        grouped.endpoints.push(&endpoint)?;
    }
    if let Some(api) = api {
        grouped.apis.push(&api)?;
    }
    Ok(grouped)
}

/// The endpoints, each with its API's number of endpoints (read beside `apis`, in the same API
/// order), sorted by rank.
fn endpoints_by_rank(
    apis: &Recorded<ApiCounts>,
    endpoints: Recorded<EndpointCounts>,
    quotas: &Quotas,
    work: &Path,
) -> Result<Spill<EndpointCounts>, DataError> {
    let item_bytes = std::mem::size_of::<EndpointCounts>() + 8 * quotas.groups;
    let mut by_rank = Spill::new(work, item_bytes, by_endpoint)?;
    let mut apis = apis.replay()?;
    let mut api: Option<ApiCounts> = None;
    for endpoint in endpoints.replay()? {
        let mut endpoint = endpoint?;
        while api.as_ref().is_none_or(|a| a.api != endpoint.api) {
            api = Some(apis.next().ok_or_else(|| DataError::Split {
                path: work.to_path_buf(),
                message: "internal: an endpoint's API is missing from the API counts".into(),
            })??);
        }
        endpoint.api_endpoints = api.as_ref().expect("set above").endpoints;
        by_rank.push(endpoint)?;
    }
    Ok(by_rank)
}
