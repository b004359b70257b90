//! The manifest's stages as a DAG of arms. A stage with a `matrix` expands into one arm per
//! combination of values (`lora[samples=1000]`); a stage that needs it fans out into one arm per
//! upstream arm, inheriting its labels (`eval[samples=1000]`). Arms of several needs are joined on
//! the axes they share, so `eval` of `lora[model=a,samples=N]` pairs with `baseline[model=a]`.

use std::collections::{BTreeSet, HashMap};

use indexmap::IndexMap;
use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};

use crate::manifest::{Diagnostic, Manifest, ManifestErrors, did_you_mean, label_value, set_path};
use crate::stages::DynStage;

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
}

impl Dag {
    pub fn build(manifest: &Manifest) -> Result<Dag, ManifestErrors> {
        let mut errors = Vec::new();
        check_needs(manifest, &mut errors);
        if !errors.is_empty() {
            return Err(ManifestErrors(errors));
        }
        let stage_order = stage_order(manifest)?;
        let mut dag = Dag {
            arms: Vec::new(),
            order: Vec::new(),
            stage_arms: IndexMap::new(),
        };
        // Stages without arms (their params or an upstream stage are broken) are not expanded
        // further, so one mistake is reported once, not again for every stage downstream.
        let mut unusable = manifest.broken.clone();
        for name in stage_order {
            let decl = &manifest.stages[&name];
            if decl.needs.iter().any(|n| unusable.contains(n)) {
                unusable.insert(name.clone());
                dag.stage_arms.insert(name, Vec::new());
                continue;
            }
            let before = errors.len();
            let arms = expand(manifest, decl, &dag, &mut errors);
            if errors.len() > before {
                unusable.insert(name.clone());
            }
            let ids: Vec<usize> = arms
                .into_iter()
                .map(|arm| {
                    dag.arms.push(arm);
                    dag.arms.len() - 1
                })
                .collect();
            dag.order.extend(&ids);
            dag.stage_arms.insert(name, ids);
        }
        // Keep manifest order for listing; `order` stays topological.
        let mut ordered = IndexMap::new();
        for name in manifest.stages.keys() {
            if let Some(ids) = dag.stage_arms.get(name) {
                ordered.insert(name.clone(), ids.clone());
            }
        }
        dag.stage_arms = ordered;
        for name in manifest.expect.keys() {
            if !unusable.is_empty() {
                break;
            }
            if let Err(help) = dag.check_expectation_target(name) {
                errors.push(manifest.error(
                    &["expect".into(), name.clone()],
                    true,
                    format!("`{name}` names no arm of this manifest"),
                    Some(help),
                ));
            }
        }
        if errors.is_empty() {
            Ok(dag)
        } else {
            Err(ManifestErrors(errors))
        }
    }

    pub fn arm_by_name(&self, name: &str) -> Option<usize> {
        self.arms.iter().position(|a| a.name == name)
    }

    /// Splits `eval[samples=1000].sacrebleu` into (arm, metric path).
    pub fn split_expectation<'a>(&self, target: &'a str) -> Option<(usize, &'a str)> {
        let split_from = target.rfind(']').unwrap_or(0);
        let dot = split_from + target[split_from..].find('.')?;
        let (arm, metric) = (&target[..dot], &target[dot + 1..]);
        Some((self.arm_by_name(arm)?, metric))
    }

    fn check_expectation_target(&self, target: &str) -> Result<(), String> {
        if self.split_expectation(target).is_some() {
            return Ok(());
        }
        let arm_part = match target.rfind(']') {
            Some(i) => &target[..=i],
            None => target.split('.').next().unwrap_or(target),
        };
        let names: Vec<&str> = self.arms.iter().map(|a| a.name.as_str()).collect();
        Err(match did_you_mean(arm_part, names.iter().copied()) {
            Some(best) => format!("write `ARM.METRIC`; did you mean `{best}`?"),
            None => format!("write `ARM.METRIC` with ARM one of: {}", names.join(", ")),
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
                let help = did_you_mean(need, manifest.stage_names())
                    .map(|b| format!("did you mean `{b}`?"))
                    .or_else(|| {
                        Some(format!(
                            "stages: {}",
                            manifest.stage_names().collect::<Vec<_>>().join(", ")
                        ))
                    });
                errors.push(manifest.error(
                    &at,
                    false,
                    format!("stage `{name}` needs `{need}`, which is not a stage"),
                    help,
                ));
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
fn stable_order(manifest: &Manifest) -> Vec<String> {
    let mut done = BTreeSet::new();
    let mut order = Vec::new();
    while order.len() < manifest.stages.len() {
        let next = manifest
            .stages
            .values()
            .find(|d| {
                !done.contains(&d.name)
                    && d.needs
                        .iter()
                        .all(|n| done.contains(n) || !manifest.stages.contains_key(n))
            })
            .expect("the graph is acyclic");
        done.insert(next.name.clone());
        order.push(next.name.clone());
    }
    order
}

struct Combo {
    labels: IndexMap<String, String>,
    inputs: Vec<usize>,
    /// Matrix values of the stage's own axes, to set into params.
    own: Vec<(String, toml::Value)>,
}

fn join(
    labels: &IndexMap<String, String>,
    other: &IndexMap<String, String>,
) -> Option<IndexMap<String, String>> {
    let mut out = labels.clone();
    for (k, v) in other {
        match out.get(k) {
            Some(existing) if existing != v => return None,
            Some(_) => {}
            None => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Some(out)
}

fn expand(
    manifest: &Manifest,
    decl: &crate::manifest::StageDecl,
    dag: &Dag,
    errors: &mut Vec<Diagnostic>,
) -> Vec<Arm> {
    let mut combos = vec![Combo {
        labels: IndexMap::new(),
        inputs: Vec::new(),
        own: Vec::new(),
    }];
    for need in &decl.needs {
        let upstream = &dag.stage_arms[need];
        if decl.kind.aggregates() {
            for c in &mut combos {
                c.inputs.extend(upstream);
            }
            continue;
        }
        combos = combos
            .into_iter()
            .flat_map(|c| {
                upstream.iter().filter_map(move |&u| {
                    let labels = join(&c.labels, &dag.arms[u].labels)?;
                    Some(Combo {
                        labels,
                        inputs: [c.inputs.clone(), vec![u]].concat(),
                        own: c.own.clone(),
                    })
                })
            })
            .collect();
    }
    for (axis, values) in &decl.matrix {
        combos = combos
            .into_iter()
            .flat_map(|c| {
                values.iter().filter_map(move |v| {
                    let one = IndexMap::from([(axis.clone(), label_value(v))]);
                    let labels = join(&c.labels, &one)?;
                    let own = [c.own.clone(), vec![(axis.clone(), v.clone())]].concat();
                    Some(Combo {
                        labels,
                        inputs: c.inputs.clone(),
                        own,
                    })
                })
            })
            .collect();
    }
    let stage_at = vec!["stages".to_string(), decl.name.clone()];
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
        return Vec::new();
    }
    let mut arms = Vec::new();
    let mut reported = BTreeSet::new();
    for combo in combos {
        let mut params = decl.params.clone();
        for (axis, value) in &combo.own {
            let path: Vec<String> = axis.split('.').map(str::to_string).collect();
            if let Err(msg) = set_path(&mut params, &path, value.clone()) {
                errors.push(manifest.error(
                    &[stage_at.clone(), vec!["matrix".into(), axis.clone()]].concat(),
                    true,
                    msg,
                    None,
                ));
            }
        }
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
        let resolved = decl
            .kind
            .resolve(toml::Value::Table(params))
            .and_then(|params| {
                let ctx = crate::stages::PlanContext {
                    base_dir: &manifest.base_dir,
                    seed: manifest.experiment.seed,
                    models: &manifest.models,
                    backend: "cpu",
                };
                match decl.kind.check(&params, &ctx) {
                    Ok(()) => Ok(params),
                    Err((path, message)) => Err(crate::stages::ParamError {
                        path: path
                            .split('.')
                            .filter(|s| !s.is_empty())
                            .map(str::to_string)
                            .collect(),
                        message,
                    }),
                }
            });
        match resolved {
            Ok(params) => arms.push(Arm {
                name,
                stage: decl.name.clone(),
                labels: combo.labels,
                kind: decl.kind,
                params,
                inputs: combo.inputs,
            }),
            Err(e) => {
                // One report per distinct problem, not per arm.
                if !reported.insert((e.path.clone(), e.message.clone())) {
                    continue;
                }
                let axis = decl
                    .matrix
                    .keys()
                    .find(|a| e.path.join(".").starts_with(a.as_str()));
                let (at, at_key) = match axis {
                    Some(axis) => (
                        [stage_at.clone(), vec!["matrix".into(), axis.clone()]].concat(),
                        true,
                    ),
                    None => (
                        [stage_at.clone(), e.path.clone()].concat(),
                        e.message.starts_with("unknown field"),
                    ),
                };
                let help = crate::manifest::hint_for_serde_message(&e.message);
                let arm_note = if decl.matrix.is_empty() {
                    String::new()
                } else {
                    format!(" (arm `{name}`)")
                };
                let field = if e.path.is_empty() {
                    String::new()
                } else {
                    format!("`{}`: ", e.path.join("."))
                };
                errors.push(manifest.error(
                    &at,
                    at_key,
                    format!("stage `{}`{arm_note}: {field}{}", decl.name, e.message),
                    help,
                ));
            }
        }
    }
    arms
}
