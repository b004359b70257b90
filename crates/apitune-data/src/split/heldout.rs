//! Which records go where: the APIs (level 3) and endpoints (level 2) held out whole, a seeded
//! sample of each level per group, and the training pool.

use std::collections::HashSet;

use super::scan::{Meta, Scan};
use super::{HeldoutScope, HeldoutSpec, rank};

pub(super) const LEVEL_BIT: [u8; 3] = [2, 4, 8];
pub(super) const TRAIN_BIT: u8 = 1;

/// The held-out quotas and what they count (records per language, or overall).
pub(super) struct Quotas {
    pub(super) per: HeldoutScope,
    /// Records per group, for level1, level2, level3.
    pub(super) sizes: [u64; 3],
    pub(super) groups: usize,
}

impl Quotas {
    pub(super) fn new(spec: &HeldoutSpec, languages: usize) -> Self {
        Self {
            per: spec.per,
            sizes: [spec.level1, spec.level2, spec.level3].map(|n| n as u64),
            groups: match spec.per {
                HeldoutScope::Lang => languages,
                HeldoutScope::Overall => 1,
            },
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
}

/// Level 3: whole APIs in seeded order until every group's quota is covered (at most half).
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
    for api in order {
        let unmet = covered.iter().any(|&c| c < quotas.sizes[2]);
        if !unmet || heldout.len() >= names.len() / 2 {
            break;
        }
        let counts = &counts[api as usize];
        if quotas.helps(2, counts, &covered) {
            heldout.insert(api);
            covered.iter_mut().zip(counts).for_each(|(c, n)| *c += n);
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
    for endpoint in order {
        if covered.iter().all(|&c| c >= quotas.sizes[1]) {
            break;
        }
        let api = scan.endpoint_api[endpoint as usize] as usize;
        let counts = &counts[endpoint as usize];
        if live_endpoints[api] > 1 && quotas.helps(1, counts, &covered) {
            heldout.insert(endpoint);
            live_endpoints[api] -= 1;
            covered.iter_mut().zip(counts).for_each(|(c, n)| *c += n);
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

/// Marks a seeded sample of `candidates`, up to the quota per group, as `level`'s records.
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
    let mut taken = vec![0u64; quotas.groups];
    for i in ordered {
        let group = quotas.group(&metas[i]);
        if taken[group] < quotas.sizes[level] {
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
    let mut taken = vec![0u64; quotas.groups];
    for i in order {
        let group = quotas.group(&metas[i]);
        if taken[group] >= quotas.sizes[0] {
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
        flags[i] |= LEVEL_BIT[0];
    }
    flags
}
