//! The plan: for every selected arm, its cache key and whether it is a hit, a miss (and why), or
//! pending on an upstream arm that must run first (whose output, and so this key, is not known yet).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use serde::Serialize;
use serde_json::{Value, json};

use super::Dag;
use super::inputs::InputScope;
use crate::cache::{Cache, Digest, Entry, FieldDiff, Key, KeyManifest, Lookup};
use crate::manifest::Manifest;
use crate::stages::PlanContext;

#[derive(Clone, Debug, Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Decision {
    /// Cached and up to date.
    Hit { key: Key, digest: Digest },
    /// Must run; `reason` says why, `changes` lists the key fields that differ from the nearest
    /// cached entry of the same arm.
    Miss {
        key: Key,
        reason: String,
        changes: Vec<Change>,
    },
    /// Waits for upstream arms that must run first.
    Pending { after: Vec<String> },
    /// Its key cannot be computed (e.g. an input file is missing).
    Invalid { error: String },
}

#[derive(Clone, Debug, Serialize)]
pub struct Change {
    pub field: String,
    pub old: Option<Value>,
    pub new: Option<Value>,
}

impl From<FieldDiff> for Change {
    fn from(d: FieldDiff) -> Change {
        Change {
            field: d.path,
            old: d.old,
            new: d.new,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ArmPlan {
    pub arm: String,
    pub kind: String,
    #[serde(flatten)]
    pub decision: Decision,
    #[serde(skip)]
    pub id: usize,
}

impl ArmPlan {
    pub fn is_hit(&self) -> bool {
        matches!(self.decision, Decision::Hit { .. })
    }
}

/// Computes cache keys; the one place that decides what a key is made of.
pub struct Keyer<'a> {
    pub manifest: &'a Manifest,
    pub dag: &'a Dag,
    pub cache: &'a Cache,
    /// The resolved compute backend (`cpu`, `wgpu`, `cuda`).
    pub backend: crate::model::Backend,
    scope: InputScope,
}

impl<'a> Keyer<'a> {
    pub fn new(
        manifest: &'a Manifest,
        dag: &'a Dag,
        cache: &'a Cache,
        backend: crate::model::Backend,
    ) -> Keyer<'a> {
        Keyer {
            manifest,
            dag,
            cache,
            backend,
            scope: InputScope::of(manifest),
        }
    }

    pub fn plan_context(&self) -> PlanContext<'_> {
        PlanContext::of(self.manifest, self.backend)
    }

    /// The key manifest of arm `id`, given the digests of its inputs' artifacts.
    pub fn key_manifest(
        &self,
        id: usize,
        input_digests: &HashMap<usize, Digest>,
    ) -> anyhow::Result<KeyManifest> {
        let arm = &self.dag.arms[id];
        let ctx = self.plan_context();
        let mut inputs = BTreeMap::new();
        for input in &arm.inputs {
            let digest = input_digests.get(input).ok_or_else(|| {
                anyhow::anyhow!(
                    "input `{}` of `{}` has no artifact yet",
                    self.dag.arms[*input].name,
                    arm.name
                )
            })?;
            inputs.insert(
                self.dag.arms[*input].name.clone(),
                json!(digest.to_string()),
            );
        }
        let mut files = BTreeMap::new();
        for path in arm.kind.input_files(&arm.params, &ctx)? {
            self.scope.check(&path)?;
            let hash = self.cache.hash_path(&path)?;
            files.insert(
                display_relative(&path, &self.manifest.base_dir),
                json!(hash.to_hex().to_string()),
            );
        }
        let mut fields = BTreeMap::new();
        fields.insert("kind".to_string(), json!(arm.kind.kind()));
        fields.insert("version".to_string(), json!(arm.kind.version()));
        fields.insert("params".to_string(), arm.params.clone());
        fields.insert(
            "inputs".to_string(),
            Value::Object(inputs.into_iter().collect()),
        );
        fields.insert(
            "files".to_string(),
            Value::Object(files.into_iter().collect()),
        );
        fields.insert(
            "runtime".to_string(),
            arm.kind.runtime_facts(&arm.params, &ctx),
        );
        Ok(KeyManifest(fields))
    }
}

/// A path as it appears in keys and messages: relative to the manifest's directory, `/`-separated.
pub fn display_relative(path: &Path, base: &Path) -> String {
    let rel = path.strip_prefix(base).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// Cached entries grouped by arm name, for finding the nearest key of a miss.
pub struct History {
    by_arm: HashMap<String, Vec<Entry>>,
}

impl History {
    pub fn load(cache: &Cache) -> anyhow::Result<History> {
        let mut by_arm: HashMap<String, Vec<Entry>> = HashMap::new();
        for entry in cache.entries()? {
            by_arm
                .entry(entry.meta.stage.clone())
                .or_default()
                .push(entry);
        }
        for entries in by_arm.values_mut() {
            entries.sort_by_key(|e| std::cmp::Reverse(e.created_unix_ms));
        }
        Ok(History { by_arm })
    }

    /// The cached entry of `arm` whose key differs from `km` in the fewest fields (newest first on
    /// ties), with those differences.
    pub fn nearest(&self, arm: &str, km: &KeyManifest) -> Option<(&Entry, Vec<FieldDiff>)> {
        self.by_arm
            .get(arm)?
            .iter()
            .map(|e| (e, e.meta.key_manifest.diff(km)))
            .min_by_key(|(_, d)| d.len())
    }

    pub fn miss_reason(&self, arm: &str, km: &KeyManifest) -> (String, Vec<Change>) {
        match self.nearest(arm, km) {
            None => ("never ran".to_string(), Vec::new()),
            Some((_, diffs)) if diffs.is_empty() => (
                "cached artifact is missing or was quarantined".to_string(),
                Vec::new(),
            ),
            Some((_, diffs)) => (
                summarize(&diffs),
                diffs.into_iter().map(Change::from).collect(),
            ),
        }
    }
}

/// One line naming what changed: `params.train.lr 0.0002 → 0.0001; input ingest changed`.
pub fn summarize(diffs: &[FieldDiff]) -> String {
    let show = |v: &Option<Value>| {
        v.as_ref()
            .map_or("(unset)".to_string(), |v| truncate(&v.to_string(), 40))
    };
    let mut parts: Vec<String> = diffs
        .iter()
        .take(3)
        .map(|d| {
            if let Some(input) = member(&d.path, "inputs") {
                format!("input `{input}` changed")
            } else if let Some(file) = member(&d.path, "files") {
                format!("file `{file}` changed")
            } else {
                format!("{} {} → {}", d.path, show(&d.old), show(&d.new))
            }
        })
        .collect();
    if diffs.len() > 3 {
        parts.push(format!("and {} more", diffs.len() - 3));
    }
    parts.join("; ")
}

/// The member name in a diff path under `section`: `files.x` or `files["a.txt"]` -> the name.
fn member<'a>(path: &'a str, section: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(section)?;
    rest.strip_prefix('.')
        .or_else(|| rest.strip_prefix("[\"").and_then(|r| r.strip_suffix("\"]")))
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}

/// Plans the `selected` arms. `forced` arms are misses even when cached.
pub fn plan(
    keyer: &Keyer,
    selected: &BTreeSet<usize>,
    forced: &BTreeSet<usize>,
) -> anyhow::Result<Vec<ArmPlan>> {
    let history = History::load(keyer.cache)?;
    let mut digests: HashMap<usize, Digest> = HashMap::new();
    let mut plans: Vec<ArmPlan> = Vec::new();
    let mut waiting: HashMap<usize, Vec<String>> = HashMap::new();
    for &id in keyer.dag.order.iter().filter(|id| selected.contains(id)) {
        let arm = &keyer.dag.arms[id];
        let blocked: Vec<String> = arm
            .inputs
            .iter()
            .filter(|i| !digests.contains_key(i))
            .map(|i| keyer.dag.arms[*i].name.clone())
            .collect();
        let decision = if !blocked.is_empty() {
            waiting.insert(id, blocked.clone());
            Decision::Pending { after: blocked }
        } else {
            match keyer.key_manifest(id, &digests) {
                Err(e) => Decision::Invalid {
                    error: format!("{e:#}"),
                },
                Ok(km) => {
                    let key = km.key();
                    match keyer.cache.find(&key)? {
                        Lookup::Found(entry) if !forced.contains(&id) => {
                            digests.insert(id, entry.digest);
                            Decision::Hit {
                                key,
                                digest: entry.digest,
                            }
                        }
                        Lookup::Found(_) => Decision::Miss {
                            key,
                            reason: "forced".into(),
                            changes: Vec::new(),
                        },
                        Lookup::Damaged(reason) => Decision::Miss {
                            key,
                            reason,
                            changes: Vec::new(),
                        },
                        Lookup::Absent => {
                            let (reason, changes) = history.miss_reason(&arm.name, &km);
                            Decision::Miss {
                                key,
                                reason,
                                changes,
                            }
                        }
                    }
                }
            }
        };
        plans.push(ArmPlan {
            arm: arm.name.clone(),
            kind: arm.kind.kind().to_string(),
            decision,
            id,
        });
    }
    Ok(plans)
}
