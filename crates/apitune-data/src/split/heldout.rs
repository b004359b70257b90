//! Which records go where: the APIs (level 3) and endpoints (level 2) held out whole, a seeded
//! sample of each level per group, and the training pool.

use std::collections::{HashMap, HashSet};

use super::scan::{Meta, Scan};
use super::{HeldoutScope, HeldoutSpec, rank};

pub(super) const LEVEL_BIT: [u8; 3] = [2, 4, 8];
pub(super) const TRAIN_BIT: u8 = 1;

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

    pub(super) fn group(&self, meta: &Meta) -> usize {
        match self.per {
            HeldoutScope::Lang => meta.lang as usize,
            HeldoutScope::Overall => 0,
        }
    }

    /// Records per group of each API (`key = |m| m.api`) or endpoint.
    pub(super) fn counts(
        &self,
        scan: &Scan,
        ids: usize,
        key: impl Fn(&Meta) -> u32,
    ) -> Vec<Vec<u64>> {
        let mut counts = vec![vec![0u64; self.groups]; ids];
        for meta in &scan.metas {
            counts[key(meta) as usize][self.group(meta)] += 1;
        }
        counts
    }

    /// Whether holding out records with `counts` per group brings a group of `level` that is
    /// still short (`covered`) closer to its quota.
    pub(super) fn helps(&self, level: usize, counts: &[u64], covered: &[u64]) -> bool {
        counts
            .iter()
            .zip(covered)
            .any(|(&n, &c)| n > 0 && c < self.sizes[level])
    }

    /// With an API cap on `level`, `ordered` (a seeded order) re-ordered so that the APIs take
    /// turns: every API's first record, then every API's second, each turn in seeded order. A
    /// sample taken from the front then spans as many APIs as its quota allows. Without a cap,
    /// `ordered` as it is.
    fn spread(&self, level: usize, metas: &[Meta], ordered: Vec<usize>) -> Vec<usize> {
        if self.api_caps[level] >= self.sizes[level] {
            return ordered;
        }
        let mut seen: HashMap<(u32, usize), u32> = HashMap::new();
        let mut turns: Vec<(u32, usize)> = ordered
            .into_iter()
            .map(|i| {
                let turn = seen
                    .entry((metas[i].api, self.group(&metas[i])))
                    .or_insert(0);
                *turn += 1;
                (*turn, i)
            })
            .collect();
        // A stable sort keeps the seeded order within each turn.
        turns.sort_by_key(|&(turn, _)| turn);
        turns.into_iter().map(|(_, i)| i).collect()
    }
}

/// How many records each API has given a level so far, per group, against the level's cap.
struct ApiTally {
    cap: u64,
    taken: HashMap<(u32, usize), u64>,
}

impl ApiTally {
    fn new(quotas: &Quotas, level: usize) -> Self {
        Self {
            cap: quotas.api_caps[level],
            taken: HashMap::new(),
        }
    }

    /// How many of `n` more records of `api` in `group` the cap still admits.
    fn room(&self, api: u32, group: usize, n: u64) -> u64 {
        let taken = self.taken.get(&(api, group)).copied().unwrap_or(0);
        n.min(self.cap.saturating_sub(taken))
    }

    fn take(&mut self, api: u32, group: usize, n: u64) {
        *self.taken.entry((api, group)).or_insert(0) += n;
    }

    /// Counts one record when the cap admits it.
    fn admit(&mut self, api: u32, group: usize) -> bool {
        let admitted = self.room(api, group, 1) == 1;
        if admitted {
            self.take(api, group, 1);
        }
        admitted
    }
}

/// Level 3: whole APIs in seeded order until every group's quota is covered, counting at most
/// the API cap of each, and at least `level3_apis` are out (at most half of them).
pub(super) fn hold_out_apis(scan: &Scan, seed: u64, quotas: &Quotas) -> HashSet<u32> {
    let names = &scan.apis.names;
    let counts = quotas.counts(scan, names.len(), |m| m.api);
    let mut order: Vec<u32> = (0..names.len() as u32).collect();
    order.sort_by_key(|&api| {
        (
            rank(seed, "level3-api", names[api as usize].as_bytes()),
            api,
        )
    });
    let mut heldout = HashSet::new();
    let mut covered = vec![0u64; quotas.groups];
    let cap = quotas.api_caps[2];
    for api in order {
        let unmet = covered.iter().any(|&c| c < quotas.sizes[2]);
        let too_few = heldout.len() < quotas.level3_apis;
        if !(unmet || too_few) || heldout.len() >= names.len() / 2 {
            break;
        }
        let counts: Vec<u64> = counts[api as usize].iter().map(|&n| n.min(cap)).collect();
        let has_records = counts.iter().any(|&n| n > 0);
        if quotas.helps(2, &counts, &covered) || (too_few && has_records) {
            heldout.insert(api);
            covered.iter_mut().zip(&counts).for_each(|(c, n)| *c += n);
        }
    }
    heldout
}

/// Level 2: whole endpoints of the remaining APIs in seeded order until every group's quota is
/// covered; an API always keeps one endpoint.
pub(super) fn hold_out_endpoints(
    scan: &Scan,
    seed: u64,
    quotas: &Quotas,
    heldout_apis: &HashSet<u32>,
) -> HashSet<u32> {
    let names = &scan.endpoints.names;
    let counts = quotas.counts(scan, names.len(), |m| m.endpoint);
    let mut live_endpoints = vec![0u64; scan.apis.names.len()];
    for &api in &scan.endpoint_api {
        live_endpoints[api as usize] += 1;
    }
    let mut order: Vec<u32> = (0..names.len() as u32)
        .filter(|e| !heldout_apis.contains(&scan.endpoint_api[*e as usize]))
        .collect();
    order.sort_by_key(|&e| {
        (
            rank(seed, "level2-endpoint", names[e as usize].as_bytes()),
            e,
        )
    });
    let mut heldout = HashSet::new();
    let mut covered = vec![0u64; quotas.groups];
    let mut tally = ApiTally::new(quotas, 1);
    for endpoint in order {
        if covered.iter().all(|&c| c >= quotas.sizes[1]) {
            break;
        }
        let api = scan.endpoint_api[endpoint as usize];
        let counts: Vec<u64> = (counts[endpoint as usize].iter().enumerate())
            .map(|(group, &n)| tally.room(api, group, n))
            .collect();
        if live_endpoints[api as usize] > 1 && quotas.helps(1, &counts, &covered) {
            heldout.insert(endpoint);
            live_endpoints[api as usize] -= 1;
            for (group, &n) in counts.iter().enumerate() {
                covered[group] += n;
                tally.take(api, group, n);
            }
        }
    }
    heldout
}

/// The APIs and endpoints held out whole.
pub(super) struct Heldout {
    pub(super) apis: HashSet<u32>,
    pub(super) endpoints: HashSet<u32>,
}

impl Heldout {
    pub(super) fn in_level3(&self, meta: &Meta) -> bool {
        self.apis.contains(&meta.api)
    }

    pub(super) fn in_level2(&self, meta: &Meta) -> bool {
        !self.in_level3(meta) && self.endpoints.contains(&meta.endpoint)
    }
}

/// Marks a seeded sample of `candidates`, up to the quota per group and the API cap per API and
/// group, as `level`'s records.
pub(super) fn sample_level(
    metas: &[Meta],
    (seed, quotas): (u64, &Quotas),
    level: usize,
    candidates: Vec<usize>,
    flags: &mut [u8],
) {
    let mut ordered = candidates;
    let purpose = ["level1", "level2", "level3"][level];
    ordered.sort_by_key(|&i| (rank(seed, purpose, &metas[i].hash), i));
    let ordered = quotas.spread(level, metas, ordered);
    let mut taken = vec![0u64; quotas.groups];
    let mut tally = ApiTally::new(quotas, level);
    for i in ordered {
        let group = quotas.group(&metas[i]);
        if taken[group] < quotas.sizes[level] && tally.admit(metas[i].api, group) {
            taken[group] += 1;
            flags[i] |= LEVEL_BIT[level];
        }
    }
}

/// Each record's flags: `TRAIN_BIT` and the `LEVEL_BIT`s of the test sets it is in.
pub(super) fn assign(
    scan: &Scan,
    (seed, quotas): (u64, &Quotas),
    heldout: &Heldout,
    level1_in_train: bool,
) -> Vec<u8> {
    let metas = &scan.metas;
    let mut flags = vec![0u8; metas.len()];
    let members =
        |pick: &dyn Fn(&Meta) -> bool| (0..metas.len()).filter(|&i| pick(&metas[i])).collect();
    sample_level(
        metas,
        (seed, quotas),
        2,
        members(&|m| heldout.in_level3(m)),
        &mut flags,
    );
    sample_level(
        metas,
        (seed, quotas),
        1,
        members(&|m| heldout.in_level2(m)),
        &mut flags,
    );
    let mut endpoint_train_records = vec![0u64; scan.endpoints.names.len()];
    for (i, meta) in metas.iter().enumerate() {
        if !heldout.in_level3(meta) && !heldout.in_level2(meta) {
            flags[i] |= TRAIN_BIT;
            endpoint_train_records[meta.endpoint as usize] += 1;
        }
    }
    // Level 1: new phrasings of training records.
    let mut order: Vec<usize> = (0..metas.len())
        .filter(|&i| flags[i] & TRAIN_BIT != 0 && metas[i].distinct_test)
        .collect();
    order.sort_by_key(|&i| (rank(seed, "level1", &metas[i].hash), i));
    let order = quotas.spread(0, metas, order);
    let mut taken = vec![0u64; quotas.groups];
    let mut tally = ApiTally::new(quotas, 0);
    for i in order {
        let group = quotas.group(&metas[i]);
        if taken[group] >= quotas.sizes[0] || tally.room(metas[i].api, group, 1) == 0 {
            continue;
        }
        if !level1_in_train {
            let endpoint = metas[i].endpoint as usize;
            if endpoint_train_records[endpoint] <= 1 {
                continue;
            }
            endpoint_train_records[endpoint] -= 1;
            flags[i] &= !TRAIN_BIT;
        }
        taken[group] += 1;
        tally.take(metas[i].api, group, 1);
        flags[i] |= LEVEL_BIT[0];
    }
    flags
}
