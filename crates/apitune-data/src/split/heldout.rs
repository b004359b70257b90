//! Which records go where: the APIs (level 3) and endpoints (level 2) held out whole, a seeded
//! sample of each level per group, and the training pool. Decisions stream over the sorted
//! counts and rows of [`super::scan`]; what stays in memory is bounded by the quotas and by the
//! largest API, not by the corpus.
//!
//! A level's sample takes candidates in seeded order (blake3 of seed, level and content), and
//! with an API cap the APIs take turns: every API's first record, then every API's second, each
//! turn in seeded order. A candidate's turn is its place among its API's candidates of its group,
//! so a candidate past the cap or the quota within its API can never be taken and is not kept.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::path::Path;

use extsort::Sortable;

use super::scan::{ApiCounts, EndpointCounts, Row};
use super::spill::{Recorded, Sorted, Spill, codec};
use super::{HeldoutScope, HeldoutSpec, rank};
use crate::error::DataError;

/// The held-out quotas and what they count (records per language, or overall).
pub(super) struct Quotas {
    pub(super) per: HeldoutScope,
    /// Records per group, for level1, level2, level3.
    pub(super) sizes: [u64; 3],
    /// The most records one API may give a level, per group (`max_api_percent` of its size).
    pub(super) api_caps: [u64; 3],
    pub(super) groups: usize,
    pub(super) level3_apis: usize,
}

impl Quotas {
    pub(super) fn new(spec: &HeldoutSpec, languages: usize) -> Self {
        let sizes = [spec.level1, spec.level2, spec.level3].map(|n| n as u64);
        let percent = spec.max_api_percent.min(100) as u64;
        Self {
            per: spec.per,
            sizes,
            api_caps: sizes.map(|size| (size * percent / 100).max(1)),
            groups: match spec.per {
                HeldoutScope::Lang => languages,
                HeldoutScope::Overall => 1,
            },
            level3_apis: spec.level3_apis,
        }
    }

    pub(super) fn group(&self, lang: u16) -> usize {
        match self.per {
            HeldoutScope::Lang => lang as usize,
            HeldoutScope::Overall => 0,
        }
    }

    /// Whether holding out records with `counts` per group brings a group of `level` that is
    /// still short (`covered`) closer to its quota.
    pub(super) fn helps(&self, level: usize, counts: &[u64], covered: &[u64]) -> bool {
        counts
            .iter()
            .zip(covered)
            .any(|(&n, &c)| n > 0 && c < self.sizes[level])
    }

    /// Whether every group of `level` has its quota.
    fn full(&self, level: usize, taken: &[u64]) -> bool {
        taken.iter().all(|&n| n >= self.sizes[level])
    }
}

/// How many records each API has given a level so far, per group, against the level's cap.
struct ApiTally {
    cap: u64,
    taken: HashMap<(u128, usize), u64>,
}

impl ApiTally {
    fn new(quotas: &Quotas, level: usize) -> Self {
        Self {
            cap: quotas.api_caps[level],
            taken: HashMap::new(),
        }
    }

    /// How many of `n` more records of `api` in `group` the cap still admits.
    fn room(&self, api: u128, group: usize, n: u64) -> u64 {
        let taken = self.taken.get(&(api, group)).copied().unwrap_or(0);
        n.min(self.cap.saturating_sub(taken))
    }

    fn take(&mut self, api: u128, group: usize, n: u64) {
        *self.taken.entry((api, group)).or_insert(0) += n;
    }
}

/// Level 3: whole APIs in seeded order (`apis` come in rank order) until every group's quota is
/// covered, counting at most the API cap of each, and at least `level3_apis` are out (at most
/// half of the `api_count` APIs).
pub(super) fn hold_out_apis(
    apis: &Recorded<ApiCounts>,
    api_count: u64,
    quotas: &Quotas,
) -> Result<HashSet<u128>, DataError> {
    let mut heldout = HashSet::new();
    let mut covered = vec![0u64; quotas.groups];
    let cap = quotas.api_caps[2];
    for api in apis.replay()? {
        let api = api?;
        let unmet = !quotas.full(2, &covered);
        let too_few = heldout.len() < quotas.level3_apis;
        if !(unmet || too_few) || heldout.len() as u64 >= api_count / 2 {
            break;
        }
        let counts: Vec<u64> = api.counts.iter().map(|&n| n.min(cap)).collect();
        let has_records = counts.iter().any(|&n| n > 0);
        if quotas.helps(2, &counts, &covered) || (too_few && has_records) {
            heldout.insert(api.api);
            covered.iter_mut().zip(&counts).for_each(|(c, n)| *c += n);
        }
    }
    Ok(heldout)
}

/// Level 2: whole endpoints of the remaining APIs in seeded order (`endpoints` come in rank
/// order) until every group's quota is covered; an API always keeps one endpoint.
pub(super) fn hold_out_endpoints(
    endpoints: Sorted<EndpointCounts>,
    quotas: &Quotas,
    heldout_apis: &HashSet<u128>,
) -> Result<HashSet<u128>, DataError> {
    let mut heldout = HashSet::new();
    let mut covered = vec![0u64; quotas.groups];
    let mut tally = ApiTally::new(quotas, 1);
    let mut taken_from: HashMap<u128, u64> = HashMap::new();
    for endpoint in endpoints {
        let endpoint = endpoint?;
        let api = endpoint.api;
        if heldout_apis.contains(&api) {
            continue;
        }
        if quotas.full(1, &covered) {
            break;
        }
        let counts: Vec<u64> = (endpoint.counts.iter().enumerate())
            .map(|(group, &n)| tally.room(api, group, n))
            .collect();
        let taken = taken_from.entry(api).or_insert(0);
        if endpoint.api_endpoints - *taken > 1 && quotas.helps(1, &counts, &covered) {
            heldout.insert(endpoint.endpoint);
            *taken += 1;
            for (group, &n) in counts.iter().enumerate() {
                covered[group] += n;
                tally.take(api, group, n);
            }
        }
    }
    Ok(heldout)
}

/// The APIs and endpoints held out whole.
pub(super) struct Heldout {
    pub(super) apis: HashSet<u128>,
    pub(super) endpoints: HashSet<u128>,
}

/// A record that a level may take, with what the sample and the level file need of it.
#[derive(Debug, Clone)]
pub(super) struct Candidate {
    /// Its API's turn (1 = the API's first record of its group); 0 for all without an API cap.
    pub(super) turn: u64,
    /// Seeded rank within the level.
    pub(super) key: u128,
    pub(super) seq: u64,
    pub(super) group: u16,
    pub(super) lang: u16,
    pub(super) api: u128,
    /// The API's first record (`seq`): ties between APIs go to the one met first.
    pub(super) api_first: u64,
    pub(super) endpoint: u128,
    /// Training records of its endpoint (level 1).
    pub(super) endpoint_train: u64,
    pub(super) offset: u64,
    pub(super) len: u32,
    pub(super) hash: [u8; 16],
}

impl Candidate {
    fn order(a: &Self, b: &Self) -> std::cmp::Ordering {
        (a.turn, a.key, a.seq).cmp(&(b.turn, b.key, b.seq))
    }
}

impl Sortable for Candidate {
    fn encode<W: Write>(&self, out: &mut W) -> std::io::Result<()> {
        codec::put(out, self.turn.to_le_bytes())?;
        codec::put(out, self.key.to_le_bytes())?;
        codec::put(out, self.seq.to_le_bytes())?;
        codec::put(out, self.group.to_le_bytes())?;
        codec::put(out, self.lang.to_le_bytes())?;
        codec::put(out, self.api.to_le_bytes())?;
        codec::put(out, self.api_first.to_le_bytes())?;
        codec::put(out, self.endpoint.to_le_bytes())?;
        codec::put(out, self.endpoint_train.to_le_bytes())?;
        codec::put(out, self.offset.to_le_bytes())?;
        codec::put(out, self.len.to_le_bytes())?;
        codec::put(out, self.hash)
    }

    fn decode<R: Read>(input: &mut R) -> std::io::Result<Self> {
        Ok(Self {
            turn: u64::from_le_bytes(codec::get(input)?),
            key: u128::from_le_bytes(codec::get(input)?),
            seq: u64::from_le_bytes(codec::get(input)?),
            group: u16::from_le_bytes(codec::get(input)?),
            lang: u16::from_le_bytes(codec::get(input)?),
            api: u128::from_le_bytes(codec::get(input)?),
            api_first: u64::from_le_bytes(codec::get(input)?),
            endpoint: u128::from_le_bytes(codec::get(input)?),
            endpoint_train: u64::from_le_bytes(codec::get(input)?),
            offset: u64::from_le_bytes(codec::get(input)?),
            len: u32::from_le_bytes(codec::get(input)?),
            hash: codec::get(input)?,
        })
    }
}

/// A training record, ordered by its seeded place in `train.jsonl`.
pub(super) struct TrainItem {
    pub(super) rank: u128,
    pub(super) seq: u64,
    pub(super) offset: u64,
    pub(super) len: u32,
    pub(super) lang: u16,
}

impl TrainItem {
    fn order(a: &Self, b: &Self) -> std::cmp::Ordering {
        (a.rank, a.seq).cmp(&(b.rank, b.seq))
    }
}

impl Sortable for TrainItem {
    fn encode<W: Write>(&self, out: &mut W) -> std::io::Result<()> {
        codec::put(out, self.rank.to_le_bytes())?;
        codec::put(out, self.seq.to_le_bytes())?;
        codec::put(out, self.offset.to_le_bytes())?;
        codec::put(out, self.len.to_le_bytes())?;
        codec::put(out, self.lang.to_le_bytes())
    }

    fn decode<R: Read>(input: &mut R) -> std::io::Result<Self> {
        Ok(Self {
            rank: u128::from_le_bytes(codec::get(input)?),
            seq: u64::from_le_bytes(codec::get(input)?),
            offset: u64::from_le_bytes(codec::get(input)?),
            len: u32::from_le_bytes(codec::get(input)?),
            lang: u16::from_le_bytes(codec::get(input)?),
        })
    }
}

/// Where every record went.
pub(super) struct Assignment {
    /// The training pool in its seeded order; skip `left_training`.
    pub(super) train: Sorted<TrainItem>,
    /// Training records before level 1 took any out.
    pub(super) train_records: u64,
    /// Level 1 records taken out of training (`level1_in_train = false`), by `seq`.
    pub(super) left_training: HashSet<u64>,
    /// Each level's records, in no particular order.
    pub(super) levels: [Vec<Candidate>; 3],
    /// Records of held-out APIs and endpoints that no level took.
    pub(super) heldout_unused: u64,
}

/// The seeded order and sample of one level's candidates.
struct LevelSample {
    level: usize,
    /// Candidates by (api, group, key, seq), to find each one's turn.
    by_api: Spill<Candidate>,
    /// Turns past this within an API are never taken (when `Some`).
    last_turn: Option<u64>,
    spread: bool,
}

impl LevelSample {
    fn new(work: &Path, quotas: &Quotas, level: usize, prunable: bool) -> Result<Self, DataError> {
        let (size, cap) = (quotas.sizes[level], quotas.api_caps[level]);
        let by_api = |a: &Candidate, b: &Candidate| {
            (a.api, a.group, a.key, a.seq).cmp(&(b.api, b.group, b.key, b.seq))
        };
        Ok(Self {
            level,
            by_api: Spill::new(work, std::mem::size_of::<Candidate>(), by_api)?,
            last_turn: prunable.then_some(size.min(cap)),
            spread: cap < size,
        })
    }

    /// Enters `row`, which this level may take.
    fn offer(
        &mut self,
        row: &Row,
        (seed, quotas): (u64, &Quotas),
        api_first: u64,
        endpoint_train: u64,
    ) -> Result<(), DataError> {
        let purpose = ["level1", "level2", "level3"][self.level];
        self.by_api.push(Candidate {
            turn: 0,
            key: rank(seed, purpose, &row.hash),
            seq: row.seq,
            group: quotas.group(row.lang) as u16,
            lang: row.lang,
            api: row.api,
            api_first,
            endpoint: row.endpoint,
            endpoint_train,
            offset: row.offset,
            len: row.len,
            hash: row.hash,
        })
    }

    /// Takes candidates in order up to the quota per group and the API cap per API and group.
    /// With `leave_training`, a level-1 record leaves training, and is only taken while its
    /// endpoint keeps another training record; those taken are added to `left`.
    fn take(
        self,
        (quotas, work): (&Quotas, &Path),
        leave_training: bool,
        left: &mut HashSet<u64>,
    ) -> Result<Vec<Candidate>, DataError> {
        let level = self.level;
        let mut in_order = Spill::new(work, std::mem::size_of::<Candidate>(), Candidate::order)?;
        let mut turn = 0;
        let mut previous: Option<(u128, u16)> = None;
        for candidate in self.by_api.sorted()? {
            let mut candidate = candidate?;
            let at = (candidate.api, candidate.group);
            turn = if previous == Some(at) { turn + 1 } else { 1 };
            previous = Some(at);
            if self.last_turn.is_some_and(|last| turn > last) {
                continue;
            }
            candidate.turn = if self.spread { turn } else { 0 };
            in_order.push(candidate)?;
        }
        let mut taken = vec![0u64; quotas.groups];
        let mut tally = ApiTally::new(quotas, level);
        let mut left_per_endpoint: HashMap<u128, u64> = HashMap::new();
        let mut members = Vec::new();
        for candidate in in_order.sorted()? {
            if quotas.full(level, &taken) {
                break;
            }
            let candidate = candidate?;
            let group = candidate.group as usize;
            if taken[group] >= quotas.sizes[level] || tally.room(candidate.api, group, 1) == 0 {
                continue;
            }
            if leave_training {
                let gone = left_per_endpoint.entry(candidate.endpoint).or_insert(0);
                if candidate.endpoint_train - *gone <= 1 {
                    continue;
                }
                *gone += 1;
                left.insert(candidate.seq);
            }
            taken[group] += 1;
            tally.take(candidate.api, group, 1);
            members.push(candidate);
        }
        Ok(members)
    }
}

/// Pass three, over the kept rows by API and endpoint (`apis` read beside them): training
/// pool, level candidates, and each level's sample. One endpoint's rows are in memory at a time.
pub(super) fn assign(
    (rows, apis): (&Recorded<Row>, &Recorded<ApiCounts>),
    (seed, quotas): (u64, &Quotas),
    heldout: &Heldout,
    level1_in_train: bool,
    work: &Path,
) -> Result<Assignment, DataError> {
    let mut samples = [
        LevelSample::new(work, quotas, 0, level1_in_train)?,
        LevelSample::new(work, quotas, 1, true)?,
        LevelSample::new(work, quotas, 2, true)?,
    ];
    let mut train = Spill::new(work, std::mem::size_of::<TrainItem>(), TrainItem::order)?;
    let mut heldout_unused = 0u64;
    let mut apis = apis.replay()?;
    let mut api: Option<ApiCounts> = None;
    let mut endpoint_rows: Vec<Row> = Vec::new();
    let mut rows = rows.replay()?.peekable();
    while let Some(row) = rows.next() {
        let row = row?;
        let ends = match rows.peek() {
            Some(Ok(next)) => (next.api, next.endpoint) != (row.api, row.endpoint),
            _ => true,
        };
        endpoint_rows.push(row);
        if !ends {
            continue;
        }
        while api.as_ref().is_none_or(|a| a.api != row.api) {
            api = Some(apis.next().ok_or_else(|| DataError::Split {
                path: work.to_path_buf(),
                message: "internal: a record's API is missing from the API counts".into(),
            })??);
        }
        let api_first = api.as_ref().expect("set above").first;
        let level = if heldout.apis.contains(&row.api) {
            Some(2)
        } else if heldout.endpoints.contains(&row.endpoint) {
            Some(1)
        } else {
            None
        };
        if let Some(level) = level {
            heldout_unused += endpoint_rows.len() as u64;
            for row in &endpoint_rows {
                samples[level].offer(row, (seed, quotas), api_first, 0)?;
            }
        } else {
            let endpoint_train = endpoint_rows.len() as u64;
            for row in &endpoint_rows {
                train.push(TrainItem {
                    rank: rank(seed, "train-order", &row.hash),
                    seq: row.seq,
                    offset: row.offset,
                    len: row.len,
                    lang: row.lang,
                })?;
                if row.distinct_test {
                    samples[0].offer(row, (seed, quotas), api_first, endpoint_train)?;
                }
            }
        }
        endpoint_rows.clear();
    }
    let mut left_training = HashSet::new();
    let [level1, level2, level3] = samples;
    let level3 = level3.take((quotas, work), false, &mut left_training)?;
    let level2 = level2.take((quotas, work), false, &mut left_training)?;
    let level1 = level1.take((quotas, work), !level1_in_train, &mut left_training)?;
    heldout_unused -= (level2.len() + level3.len()) as u64;
    Ok(Assignment {
        train_records: train.len(),
        train: train.sorted()?,
        left_training,
        levels: [level1, level2, level3],
        heldout_unused,
    })
}
