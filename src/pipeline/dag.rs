//! The manifest's stages as a DAG of arms. A stage with a `matrix` expands into one arm per
//! combination of values (`lora[samples=1000]`); a stage that needs it fans out into one arm per
//! upstream arm, inheriting its labels (`eval[samples=1000]`). Arms of several needs are joined on
//! the axes they share, so `eval` of `lora[model=a,samples=N]` pairs with `baseline[model=a]`.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};

use indexmap::IndexMap;
use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};

use crate::manifest::limits::MAX_ARMS;
use crate::manifest::{
    Diagnostic, Manifest, ManifestErrors, did_you_mean, label_value, set_path, shorten,
};
use crate::stages::{DynStage, ParamError};

pub struct Arm {
    /// `stage` or `stage[axis=value,...]`.
    pub name: String,
    pub stage: String,
    pub labels: IndexMap<String, String>,
    pub kind: &'static dyn DynStage,
    /// Type-checked params with defaults filled in: what enters the cache key.
    pub params: serde_json::Value,
    /// Arms whose artifacts this arm reads, by index.
    pub inputs: Vec<usize>,
}

pub struct Dag {
    pub arms: Vec<Arm>,
    /// Arms in an order where every arm comes after its inputs.
    pub order: Vec<usize>,
    /// Stage name -> its arms.
    pub stage_arms: IndexMap<String, Vec<usize>>,
    /// Arm name -> index, for lookups by name.
    names: HashMap<String, usize>,
}

/// Suggestions (did-you-mean) computed per check; each compares against every name, so a
/// manifest with thousands of mistakes gets plain errors after the first ones.
const SUGGESTIONS: usize = 20;

/// At most this many names are listed in a help text.
const LISTED: usize = 20;

/// `names` joined for a help text, the first [`LISTED`] of them.
fn listing<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    let shown: Vec<String> = names.iter().take(LISTED).map(|n| shorten(n)).collect();
    match names.len().checked_sub(LISTED) {
        Some(more) if more > 0 => format!("{} and {more} more", shown.join(", ")),
        _ => shown.join(", "),
    }
}

/// The registered kind of every stage; an unknown kind is a located error (with the nearest known
/// kind), and its stage has no arms.
fn stage_kinds(
    manifest: &Manifest,
    errors: &mut Vec<Diagnostic>,
) -> HashMap<String, &'static dyn DynStage> {
    let mut kinds = HashMap::new();
    for (name, decl) in &manifest.stages {
        match crate::stages::lookup(&decl.kind) {
            Some(kind) => {
                kinds.insert(name.clone(), kind);
            }
            None => {
                let known: Vec<&str> = crate::stages::registry().iter().map(|s| s.kind()).collect();
                let help = match did_you_mean(&decl.kind, known.iter().copied()) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None => format!("known kinds: {}", known.join(", ")),
                };
                errors.push(manifest.error(
                    &["stages".into(), name.clone(), "kind".into()],
                    false,
                    format!("unknown stage kind `{}`", shorten(&decl.kind)),
                    Some(help),
                ));
            }
        }
    }
    kinds
}

impl Dag {
    pub fn build(manifest: &Manifest) -> Result<Dag, ManifestErrors> {
        let mut errors = Vec::new();
        let kinds = stage_kinds(manifest, &mut errors);
        // A broken `needs` leaves no order to expand in; unknown kinds alone do not.
        let mut need_errors = Vec::new();
        check_needs(manifest, &mut need_errors);
        if !need_errors.is_empty() {
            errors.extend(need_errors);
            return Err(ManifestErrors(errors));
        }
        let stage_order = stage_order(manifest)?;
        let mut dag = Dag {
            arms: Vec::new(),
            order: Vec::new(),
            stage_arms: IndexMap::new(),
            names: HashMap::new(),
        };
        // Stages without arms (their params or an upstream stage are broken) are not expanded
        // further, so one mistake is reported once, not again for every stage downstream.
        let mut unusable = manifest.broken.clone();
        // Past the arm limit (reported once), the remaining stages are not expanded.
        let mut over_limit = false;
        for name in stage_order {
            let decl = &manifest.stages[&name];
            let Some(&kind) = kinds.get(&name) else {
                unusable.insert(name.clone());
                dag.stage_arms.insert(name, Vec::new());
                continue;
            };
            if over_limit || decl.needs.iter().any(|n| unusable.contains(n)) {
                unusable.insert(name.clone());
                dag.stage_arms.insert(name, Vec::new());
                continue;
            }
            let before = errors.len();
            let arms = expand(manifest, decl, kind, &dag, &mut errors).unwrap_or_else(|| {
                over_limit = true;
                Vec::new()
            });
            if errors.len() > before {
                unusable.insert(name.clone());
            }
            dag.add_stage(name, arms);
        }
        dag.order_stages_as(manifest);
        if unusable.is_empty() {
            dag.check_expectations(manifest, &mut errors);
        }
        if errors.is_empty() {
            Ok(dag)
        } else {
            Err(ManifestErrors(errors))
        }
    }

    /// Appends stage `name`'s arms (in topological order).
    fn add_stage(&mut self, name: String, arms: Vec<Arm>) {
        let ids: Vec<usize> = arms
            .into_iter()
            .map(|arm| {
                self.names.insert(arm.name.clone(), self.arms.len());
                self.arms.push(arm);
                self.arms.len() - 1
            })
            .collect();
        self.order.extend(&ids);
        self.stage_arms.insert(name, ids);
    }

    /// Lists stages in manifest order; `order` stays topological.
    fn order_stages_as(&mut self, manifest: &Manifest) {
        let mut ordered = IndexMap::new();
        for name in manifest.stages.keys() {
            if let Some(ids) = self.stage_arms.get(name) {
                ordered.insert(name.clone(), ids.clone());
            }
        }
        self.stage_arms = ordered;
    }

    /// Every `[expect]` entry must name an arm.
    fn check_expectations(&self, manifest: &Manifest, errors: &mut Vec<Diagnostic>) {
        let mut suggest = SUGGESTIONS;
        for (name, expectation) in &manifest.expect {
            if let Err(help) = self.check_expectation_target(name, &mut suggest) {
                let message = format!("`{}` names no arm of this manifest", shorten(name));
                errors.push(manifest.error(
                    &["expect".into(), name.clone()],
                    true,
                    message,
                    Some(help),
                ));
            }
            let Some(other) = &expectation.above else {
                continue;
            };
            if let Err(help) = self.check_expectation_target(other, &mut suggest) {
                let message = format!(
                    "`above = \"{}\"` names no arm of this manifest",
                    shorten(other)
                );
                errors.push(manifest.error(
                    &["expect".into(), name.clone(), "above".into()],
                    false,
                    message,
                    Some(help),
                ));
            }
        }
    }

    pub fn arm_by_name(&self, name: &str) -> Option<usize> {
        match self.names.get(name) {
            Some(&i) if self.arms.get(i).is_some_and(|a| a.name == name) => Some(i),
            // `arms` is public: arms added after `build` are found by a scan.
            _ => self.arms.iter().position(|a| a.name == name),
        }
    }

    /// Splits `eval[samples=1000].sacrebleu` into (arm, metric path).
    pub fn split_expectation<'a>(&self, target: &'a str) -> Option<(usize, &'a str)> {
        let split_from = target.rfind(']').unwrap_or(0);
        let dot = split_from + target[split_from..].find('.')?;
        let (arm, metric) = (&target[..dot], &target[dot + 1..]);
        Some((self.arm_by_name(arm)?, metric))
    }

    fn check_expectation_target(&self, target: &str, suggest: &mut usize) -> Result<(), String> {
        if self.split_expectation(target).is_some() {
            return Ok(());
        }
        let arm_part = match target.rfind(']') {
            Some(i) => &target[..=i],
            None => target.split('.').next().unwrap_or(target),
        };
        let names = || self.arms.iter().map(|a| a.name.as_str());
        *suggest = suggest.saturating_sub(1);
        let best = if *suggest > 0 {
            did_you_mean(arm_part, names())
        } else {
            None
        };
        Err(match best {
            Some(best) => format!("write `ARM.METRIC`; did you mean `{best}`?"),
            None => format!("write `ARM.METRIC` with ARM one of: {}", listing(names())),
        })
    }

    /// The arms named by `targets` (stage names or arm names) and everything upstream of them;
    /// all arms when `targets` is empty.
    pub fn select(&self, targets: &[String]) -> Result<BTreeSet<usize>, String> {
        if targets.is_empty() {
            return Ok((0..self.arms.len()).collect());
        }
        let mut wanted = Vec::new();
        for t in targets {
            if let Some(ids) = self.stage_arms.get(t) {
                wanted.extend(ids);
            } else if let Some(id) = self.arm_by_name(t) {
                wanted.push(id);
            } else {
                let names: Vec<&str> = self
                    .stage_arms
                    .keys()
                    .map(String::as_str)
                    .chain(self.arms.iter().map(|a| a.name.as_str()))
                    .collect();
                let hint = did_you_mean(t, names.iter().copied())
                    .map(|b| format!("; did you mean `{b}`?"))
                    .unwrap_or_default();
                return Err(format!("no stage or arm `{t}` in the manifest{hint}"));
            }
        }
        let mut selected = BTreeSet::new();
        while let Some(id) = wanted.pop() {
            if selected.insert(id) {
                wanted.extend(&self.arms[id].inputs);
            }
        }
        Ok(selected)
    }

    /// The arms downstream of `id`, including itself.
    pub fn downstream(&self, id: usize) -> BTreeSet<usize> {
        let mut out = BTreeSet::from([id]);
        for &a in &self.order {
            if self.arms[a].inputs.iter().any(|i| out.contains(i)) {
                out.insert(a);
            }
        }
        out
    }
}

fn check_needs(manifest: &Manifest, errors: &mut Vec<Diagnostic>) {
    let mut suggest = SUGGESTIONS;
    for (name, decl) in &manifest.stages {
        let mut seen = BTreeSet::new();
        for (i, need) in decl.needs.iter().enumerate() {
            let at = vec!["stages".into(), name.clone(), "needs".into(), i.to_string()];
            if manifest.broken.contains(need) {
                continue;
            } else if need == name {
                errors.push(manifest.error(
                    &at,
                    false,
                    format!("stage `{name}` needs itself"),
                    None,
                ));
            } else if !manifest.stages.contains_key(need) {
                suggest = suggest.saturating_sub(1);
                let best = if suggest > 0 {
                    did_you_mean(need, manifest.stage_names())
                } else {
                    None
                };
                let help = best
                    .map(|b| format!("did you mean `{b}`?"))
                    .unwrap_or_else(|| format!("stages: {}", listing(manifest.stage_names())));
                let message = format!(
                    "stage `{name}` needs `{}`, which is not a stage",
                    shorten(need)
                );
                errors.push(manifest.error(&at, false, message, Some(help)));
            } else if !seen.insert(need) {
                errors.push(manifest.error(
                    &at,
                    false,
                    format!("stage `{name}` lists `{need}` twice in `needs`"),
                    None,
                ));
            }
        }
    }
}

fn stage_order(manifest: &Manifest) -> Result<Vec<String>, ManifestErrors> {
    let mut graph = DiGraph::<&str, ()>::new();
    let nodes: HashMap<&str, NodeIndex> = manifest
        .stages
        .keys()
        .map(|n| (n.as_str(), graph.add_node(n)))
        .collect();
    for (name, decl) in &manifest.stages {
        for need in decl.needs.iter().filter(|n| nodes.contains_key(n.as_str())) {
            graph.add_edge(nodes[need.as_str()], nodes[name.as_str()], ());
        }
    }
    match toposort(&graph, None) {
        Ok(_) => Ok(stable_order(manifest)),
        Err(_) => {
            let errors = tarjan_scc(&graph)
                .into_iter()
                .filter(|scc| scc.len() > 1)
                .map(|mut scc| {
                    scc.sort_by_key(|n| manifest.stages.get_index_of(graph[*n]));
                    let names: Vec<&str> = scc.iter().map(|n| graph[*n]).collect();
                    let first = names[0].to_string();
                    manifest.error(
                        &["stages".into(), first, "needs".into()],
                        false,
                        format!(
                            "the stages {} need each other in a cycle",
                            names
                                .iter()
                                .map(|n| format!("`{n}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        Some("remove one of these `needs` so that data flows one way".into()),
                    )
                })
                .collect();
            Err(ManifestErrors(errors))
        }
    }
}

/// Topological order that keeps manifest order wherever dependencies allow (Kahn's algorithm,
/// always taking the earliest declared ready stage), so listings and runs read like the manifest.
/// O((stages + needs) · log stages).
fn stable_order(manifest: &Manifest) -> Vec<String> {
    let stages = &manifest.stages;
    let mut waiting_on = vec![0usize; stages.len()];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); stages.len()];
    for (i, decl) in stages.values().enumerate() {
        for need in decl
            .needs
            .iter()
            .filter_map(|n| stages.get_index_of(n))
            .collect::<BTreeSet<_>>()
        {
            waiting_on[i] += 1;
            dependents[need].push(i);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> = (0..stages.len())
        .filter(|&i| waiting_on[i] == 0)
        .map(Reverse)
        .collect();
    let mut order = Vec::with_capacity(stages.len());
    while let Some(Reverse(i)) = ready.pop() {
        order.push(stages[i].name.clone());
        for &d in &dependents[i] {
            waiting_on[d] -= 1;
            if waiting_on[d] == 0 {
                ready.push(Reverse(d));
            }
        }
    }
    assert_eq!(order.len(), stages.len(), "the graph is acyclic");
    order
}

#[derive(Default)]
struct Combo {
    labels: IndexMap<String, String>,
    inputs: Vec<usize>,
    /// Matrix values of the stage's own axes, to set into params.
    own: Vec<(String, toml::Value)>,
}

/// One way to extend a combination: an upstream arm, or one value of a matrix axis.
struct Row<'a> {
    labels: Cow<'a, IndexMap<String, String>>,
    input: Option<usize>,
    own: Option<(String, toml::Value)>,
}

/// Every pairing of a combo with a row whose labels agree on the axes both have: a hash join on
/// those axes. The arms of a stage all have the same axes (each is the union of its needs' axes
/// and its own), so the shared axes are those of the first combo and row. Fails with the number
/// of pairings, before making them, when there are more than `budget`.
fn join_all(combos: Vec<Combo>, rows: &[Row], budget: usize) -> Result<Vec<Combo>, usize> {
    let (Some(first), Some(first_row)) = (combos.first(), rows.first()) else {
        return Ok(Vec::new());
    };
    let shared: Vec<&String> = first
        .labels
        .keys()
        .filter(|k| first_row.labels.contains_key(*k))
        .collect();
    let key_of = |labels: &IndexMap<String, String>| -> Option<Vec<String>> {
        shared.iter().map(|k| labels.get(*k).cloned()).collect()
    };
    let mut index: HashMap<Vec<String>, Vec<usize>> = HashMap::new();
    for (i, row) in rows.iter().enumerate() {
        if let Some(key) = key_of(&row.labels) {
            index.entry(key).or_default().push(i);
        }
    }
    let matches: Vec<&[usize]> = combos
        .iter()
        .map(|c| {
            key_of(&c.labels)
                .and_then(|k| index.get(&k))
                .map_or(&[][..], Vec::as_slice)
        })
        .collect();
    let count = matches
        .iter()
        .fold(0usize, |n, m| n.saturating_add(m.len()));
    if count > budget {
        return Err(count);
    }
    let mut out = Vec::with_capacity(count);
    for (c, hits) in combos.iter().zip(matches) {
        for row in hits.iter().map(|&i| &rows[i]) {
            let mut labels = c.labels.clone();
            for (k, v) in row.labels.iter() {
                labels.entry(k.clone()).or_insert_with(|| v.clone());
            }
            let inputs = c.inputs.iter().copied().chain(row.input).collect();
            let own = c.own.iter().cloned().chain(row.own.clone()).collect();
            out.push(Combo {
                labels,
                inputs,
                own,
            });
        }
    }
    Ok(out)
}

/// The combinations a stage expands to: one per agreeing choice of an arm of each need and a
/// value of each matrix axis; the whole upstream for an aggregating stage.
fn combinations(
    decl: &crate::manifest::StageDecl,
    kind: &'static dyn DynStage,
    dag: &Dag,
    budget: usize,
) -> Result<Vec<Combo>, usize> {
    let mut combos = vec![Combo::default()];
    for need in &decl.needs {
        let upstream = &dag.stage_arms[need];
        if kind.aggregates() {
            for c in &mut combos {
                c.inputs.extend(upstream);
            }
            continue;
        }
        let rows: Vec<Row> = upstream
            .iter()
            .map(|&u| Row {
                labels: Cow::Borrowed(&dag.arms[u].labels),
                input: Some(u),
                own: None,
            })
            .collect();
        combos = join_all(combos, &rows, budget)?;
    }
    for (axis, values) in &decl.matrix {
        let rows: Vec<Row> = values
            .iter()
            .map(|v| Row {
                labels: Cow::Owned(IndexMap::from([(axis.clone(), label_value(v))])),
                input: None,
                own: Some((axis.clone(), v.clone())),
            })
            .collect();
        combos = join_all(combos, &rows, budget)?;
    }
    Ok(combos)
}

/// The arms of a stage; `None` when they would take the manifest past [`MAX_ARMS`] (reported).
fn expand(
    manifest: &Manifest,
    decl: &crate::manifest::StageDecl,
    kind: &'static dyn DynStage,
    dag: &Dag,
    errors: &mut Vec<Diagnostic>,
) -> Option<Vec<Arm>> {
    let stage_at = vec!["stages".to_string(), decl.name.clone()];
    let combos = match combinations(decl, kind, dag, MAX_ARMS.saturating_sub(dag.arms.len())) {
        Ok(combos) => combos,
        Err(count) => {
            let before = if dag.arms.is_empty() {
                String::new()
            } else {
                format!(
                    " (after the {} arms of the stages before it)",
                    dag.arms.len()
                )
            };
            let message = format!(
                "stage `{}` expands to {count} or more arms{before}; a manifest may expand to at most {MAX_ARMS} arms",
                decl.name
            );
            let help =
                Some("use fewer matrix values, or split the study into several manifests".into());
            errors.push(manifest.error(&stage_at, true, message, help));
            return None;
        }
    };
    if combos.is_empty() {
        errors.push(manifest.error(
            &stage_at,
            true,
            format!(
                "stage `{}` expands to no arms: the arms of its needs agree on no matrix value",
                decl.name
            ),
            Some("give the stages it needs matrices with common values on shared axes".into()),
        ));
        return Some(Vec::new());
    }
    let mut arms = Vec::new();
    let mut reported = BTreeSet::new();
    for combo in combos {
        let name = if combo.labels.is_empty() {
            decl.name.clone()
        } else {
            let inner: Vec<String> = combo
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            format!("{}[{}]", decl.name, inner.join(","))
        };
        match resolve_arm(manifest, decl, kind, &combo) {
            Ok(params) => arms.push(Arm {
                name,
                stage: decl.name.clone(),
                labels: combo.labels,
                kind,
                params,
                inputs: combo.inputs,
            }),
            Err(problems) => {
                for e in problems {
                    // One report per distinct problem, not per arm.
                    if reported.insert((e.path.clone(), e.message.clone())) {
                        errors.push(param_error(manifest, decl, &name, e));
                    }
                }
            }
        }
    }
    Some(arms)
}

/// The params of one arm: the stage's, with the combo's matrix values set, type-, range- and
/// manifest-checked.
fn resolve_arm(
    manifest: &Manifest,
    decl: &crate::manifest::StageDecl,
    kind: &'static dyn DynStage,
    combo: &Combo,
) -> Result<serde_json::Value, Vec<ParamError>> {
    let mut params = decl.params.clone();
    for (axis, value) in &combo.own {
        let path: Vec<String> = axis.split('.').map(str::to_string).collect();
        set_path(&mut params, &path, value.clone()).map_err(|message| {
            vec![ParamError {
                path: path.clone(),
                message,
            }]
        })?;
    }
    let params = kind.resolve(toml::Value::Table(params))?;
    let ctx = crate::stages::PlanContext::of(manifest, manifest.experiment.backend);
    match kind.check(&params, &ctx) {
        Ok(()) => Ok(params),
        Err((path, message)) => Err(vec![ParamError {
            path: path
                .split('.')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            message,
        }]),
    }
}

/// A located diagnostic for a problem with the params of arm `arm`: at the matrix axis that set
/// the value, else at the param.
fn param_error(
    manifest: &Manifest,
    decl: &crate::manifest::StageDecl,
    arm: &str,
    e: ParamError,
) -> Diagnostic {
    let stage_at = vec!["stages".to_string(), decl.name.clone()];
    let dotted = e.path.join(".");
    let axis = decl.matrix.keys().find(|a| dotted.starts_with(a.as_str()));
    let (at, at_key) = match axis {
        Some(axis) => (
            [stage_at, vec!["matrix".into(), axis.clone()]].concat(),
            true,
        ),
        None => (
            [stage_at, e.path.clone()].concat(),
            e.message.starts_with("unknown field"),
        ),
    };
    let help = crate::manifest::hint_for_serde_message(&e.message);
    let arm_note = if decl.matrix.is_empty() {
        String::new()
    } else {
        format!(" (arm `{arm}`)")
    };
    // Range messages name their field already.
    let field = if e.path.is_empty() || e.message.starts_with(&dotted) {
        String::new()
    } else {
        format!("`{dotted}`: ")
    };
    manifest.error(
        &at,
        at_key,
        format!("stage `{}`{arm_note}: {field}{}", decl.name, e.message),
        help,
    )
}
