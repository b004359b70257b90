//! The experiment manifest: typed TOML with located errors, `-S` overrides and stage matrices.
//!
//! Loading reports every problem at once ([`ManifestErrors`]); each names `file:line:col` (or the
//! `-S` argument at fault) and suggests the closest valid name for a misspelt one.

mod diagnostics;
pub mod limits;
mod models;
mod overrides;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use diagnostics::{
    Diagnostic, ManifestErrors, Origin, SourceMap, did_you_mean, hint_for_serde_message, shorten,
};

/// Keys of a stage table that are the pipeline's, not the stage kind's params.
pub const STAGE_KEYS: [&str; 3] = ["kind", "needs", "matrix"];

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Short name of the study; shown in reports.
    pub name: String,
    /// Seeds every random choice (splits, shuffling, initialisation, sampling).
    #[serde(default)]
    pub seed: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where models run: `cpu`, `wgpu`, `cuda` or `auto` (the best one built in and present).
    /// `--backend` overrides it. The resolved backend enters the keys of model stages.
    #[serde(default)]
    pub backend: crate::model::Backend,
    /// Directories outside the project (the nearest directory above the manifest holding `.git`,
    /// else the manifest's directory) that inputs may come from, relative to the manifest.
    /// Anything else outside the project is refused as an input.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs_outside: Vec<String>,
}

/// `[cache]`: where artifacts are shared beyond this machine's cache directory.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CacheSection {
    /// A remote cache to read through and push to: `s3://bucket/prefix`, `gs://…`, `az://…`,
    /// `file:///shared/path` or a path. Credentials come from the store's environment
    /// variables, never from here. `--remote` and `APITUNE_REMOTE` override it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
}

/// `[executor]`: where `apitune run` runs stale arms. None of it enters a cache key: an arm's
/// artifact is the same wherever it ran.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExecutorSection {
    /// `local` (this process, the default) or `slurm` (one `sbatch` job per arm, running apitune
    /// on a compute node against this same cache directory, which must be on a shared file
    /// system). `run --executor` overrides it.
    #[serde(default)]
    pub kind: ExecutorKind,
    /// `sbatch --partition`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// `sbatch --account`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// `sbatch --time`, e.g. `"04:00:00"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// More `sbatch` flags for every job, e.g. `["--qos=normal", "--mem=16G"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sbatch_args: Vec<String>,
    /// `sbatch` flags per stage kind, after `sbatch_args`: `lora-train = ["--gres=gpu:1"]`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub resources: IndexMap<String, Vec<String>>,
    /// Stage kinds that run in the submitting process instead (cheap ones, such as `report`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub local_kinds: Vec<String>,
    /// The apitune executable the jobs run [default: this one]; it must be reachable at that
    /// path from the compute nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apitune: Option<String>,
    /// Seconds between two polls of the scheduler (`sacct`, else `squeue`) [default: 5].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_seconds: Option<f64>,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ExecutorKind {
    #[default]
    Local,
    Slurm,
}

/// A model: an HF checkpoint directory, or a random initialisation for small studies.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// HF-layout directory: config.json, *.safetensors (+ index), tokenizer.json.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `gpt2`, `gpt_bigcode` or `qwen2` (HF `model_type`), for random initialisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// `random` initialises weights from `config` instead of loading `path`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<String>,
    /// HF config.json fields for a random initialisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Map<String, serde_json::Value>>,
    /// Tokenizer: `{ path = "tokenizer.json" }` or `{ train_bpe = { vocab_size = N } }`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<serde_json::Map<String, serde_json::Value>>,
}

/// A bound on one metric that `check` enforces.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    /// Expected value; needs `tol`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Allowed absolute distance from `value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tol: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Another target (`ARM.METRIC`) this one must exceed: the 100K arm's score above the 1K
    /// arm's, whatever the exact numbers on this host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above: Option<String>,
    /// With `above`: this target's 95% bootstrap interval must lie wholly above the other's, so
    /// the difference is more than resampling noise (eval metrics with an interval only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub beyond_interval: bool,
}

/// One `[stages.NAME]` table, checked structurally; the kind is looked up and params are
/// type-checked per arm when the DAG is built.
#[derive(Clone, Debug)]
pub struct StageDecl {
    pub name: String,
    pub kind: String,
    pub needs: Vec<String>,
    /// Axis (a dotted param path) -> values, in declaration order.
    pub matrix: IndexMap<String, Vec<toml::Value>>,
    /// The stage table without `kind`, `needs` and `matrix`.
    pub params: toml::Table,
}

pub struct Manifest {
    pub path: PathBuf,
    /// Relative paths inside the manifest resolve against this directory.
    pub base_dir: PathBuf,
    pub experiment: Experiment,
    pub models: IndexMap<String, ModelSpec>,
    pub stages: IndexMap<String, StageDecl>,
    pub expect: IndexMap<String, Expectation>,
    pub cache: CacheSection,
    pub executor: ExecutorSection,
    source: SourceMap,
    overridden: Vec<(Vec<String>, String)>,
    /// Stages declared but unusable (bad kind or shape); their dependents are not checked further.
    pub(crate) broken: BTreeSet<String>,
}

impl Manifest {
    /// Reads and checks a manifest file, applying `-S path=value` overrides.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Manifest, ManifestErrors> {
        let text = manifest_text(path, read_manifest(path)?)?;
        Manifest::parse(path, &text, overrides)
    }

    /// Checks manifest `text` as if read from `path`.
    pub fn parse(
        path: &Path,
        text: &str,
        overrides: &[String],
    ) -> Result<Manifest, ManifestErrors> {
        let (manifest, errors) = Manifest::parse_partial(path, text, overrides)?;
        if errors.is_empty() {
            Ok(manifest)
        } else {
            Err(ManifestErrors(errors))
        }
    }

    /// Like [`Manifest::parse`], but returns what could be read alongside the errors, so that
    /// later checks (the DAG) can report their problems in the same pass. Fails outright only on
    /// unparsable TOML.
    pub fn parse_partial(
        path: &Path,
        text: &str,
        overrides: &[String],
    ) -> Result<(Manifest, Vec<Diagnostic>), ManifestErrors> {
        let source = SourceMap::new(path, text);
        let mut root: toml::Table = match text.parse() {
            Ok(t) => t,
            Err(e) => {
                let e: toml::de::Error = e;
                // The parser gives no position for keys past its recursion limit.
                let offset = e
                    .span()
                    .map(|s| s.start)
                    .or_else(|| diagnostics::deep_key_offset(text))
                    .unwrap_or(0);
                let message = format!("invalid TOML: {}", e.message());
                let help = e.span().is_none().then(|| {
                    "a dotted key or a nesting of tables and arrays is too deep".to_string()
                });
                return Err(ManifestErrors(vec![Diagnostic {
                    origin: source.at_offset(offset),
                    message,
                    help,
                }]));
            }
        };
        let mut errors = Vec::new();
        let mut overridden = Vec::new();
        for arg in overrides {
            match overrides::apply(&mut root, arg) {
                Ok(path) => overridden.push((path, arg.clone())),
                Err(d) => errors.push(d),
            }
        }
        let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let base_dir = if base_dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            base_dir
        };
        let mut manifest = Manifest {
            path: path.to_path_buf(),
            base_dir,
            experiment: Experiment {
                name: String::new(),
                seed: 0,
                description: None,
                backend: Default::default(),
                inputs_outside: Vec::new(),
            },
            models: IndexMap::new(),
            stages: IndexMap::new(),
            expect: IndexMap::new(),
            cache: CacheSection::default(),
            executor: ExecutorSection::default(),
            source,
            overridden,
            broken: BTreeSet::new(),
        };
        manifest.read_sections(root, &mut errors);
        Ok((manifest, errors))
    }

    fn read_sections(&mut self, root: toml::Table, errors: &mut Vec<Diagnostic>) {
        const SECTIONS: [&str; 6] = [
            "experiment",
            "models",
            "stages",
            "expect",
            "cache",
            "executor",
        ];
        let mut seen_experiment = false;
        for (key, value) in root {
            let at = vec![key.clone()];
            match key.as_str() {
                "experiment" => {
                    seen_experiment = true;
                    match self.typed::<Experiment>(value, &at) {
                        Ok(e) => self.experiment = e,
                        Err(d) => errors.push(d),
                    }
                }
                "models" => self.read_models(value, errors),
                "stages" => self.read_stages(value, errors),
                "cache" => match self.typed::<CacheSection>(value, &at) {
                    Ok(cache) => self.cache = cache,
                    Err(d) => errors.push(d),
                },
                "executor" => match self.typed::<ExecutorSection>(value, &at) {
                    Ok(executor) => self.executor = executor,
                    Err(d) => errors.push(d),
                },
                "expect" => match self.typed::<IndexMap<String, Expectation>>(value, &at) {
                    Ok(e) => {
                        for (name, exp) in &e {
                            if let Some(msg) = expectation_problem(exp) {
                                errors.push(self.error(
                                    &["expect".into(), name.clone()],
                                    false,
                                    msg,
                                    None,
                                ));
                            }
                        }
                        self.expect = e;
                    }
                    Err(d) => errors.push(d),
                },
                other => {
                    let help =
                        did_you_mean(other, SECTIONS).map(|s| format!("did you mean `[{s}]`?"));
                    let help = help.or_else(|| {
                        Some(format!(
                            "a manifest has the sections {}",
                            SECTIONS.join(", ")
                        ))
                    });
                    errors.push(self.error(&at, true, format!("unknown section `{other}`"), help));
                }
            }
        }
        if !seen_experiment {
            errors.push(Diagnostic {
                origin: self.source.at_offset(0),
                message: "missing `[experiment]` section".into(),
                help: Some("add `[experiment]` with `name = \"...\"` and `seed = N`".into()),
            });
        }
        if self.stages.is_empty() && errors.is_empty() {
            errors.push(Diagnostic {
                origin: self.source.at_offset(0),
                message: "the manifest declares no stages".into(),
                help: Some(
                    "add a `[stages.NAME]` table with a `kind`, e.g. kind = \"ingest\"".into(),
                ),
            });
        }
    }

    fn read_models(&mut self, value: toml::Value, errors: &mut Vec<Diagnostic>) {
        let models = match self.typed::<IndexMap<String, ModelSpec>>(value, &["models".into()]) {
            Ok(models) => models,
            Err(d) => return errors.push(d),
        };
        for (name, spec) in &models {
            let at = vec!["models".to_string(), name.clone()];
            if let Err(message) = limits::check_name("model", name) {
                errors.push(self.error(&at, true, message, Some(limits::name_help())));
                continue;
            }
            for (path, message) in models::spec_problems(name, spec) {
                errors.push(self.error(&[at.clone(), path].concat(), false, message, None));
            }
        }
        self.models = models;
    }

    fn read_stages(&mut self, value: toml::Value, errors: &mut Vec<Diagnostic>) {
        let toml::Value::Table(stages) = value else {
            errors.push(self.error(
                &["stages".into()],
                false,
                "`stages` must be a table of stage tables".into(),
                None,
            ));
            return;
        };
        for (name, table) in stages {
            let at = vec!["stages".to_string(), name.clone()];
            if let Err(message) = limits::check_name("stage", &name) {
                errors.push(self.error(&at, true, message, Some(limits::name_help())));
                self.broken.insert(name);
                continue;
            }
            let toml::Value::Table(mut table) = table else {
                errors.push(self.error(
                    &at,
                    false,
                    format!("stage `{name}` must be a table"),
                    None,
                ));
                self.broken.insert(name);
                continue;
            };
            let kind = self.stage_kind(&name, table.remove("kind"), errors);
            let needs = self.stage_needs(&at, table.remove("needs"), errors);
            let matrix = table
                .remove("matrix")
                .map(|m| self.stage_matrix(&at, m, errors));
            match (kind, matrix) {
                (Some(kind), None) => {
                    self.stages.insert(
                        name.clone(),
                        StageDecl {
                            name,
                            kind,
                            needs,
                            matrix: IndexMap::new(),
                            params: table,
                        },
                    );
                }
                (Some(kind), Some(Some(matrix))) => {
                    self.stages.insert(
                        name.clone(),
                        StageDecl {
                            name,
                            kind,
                            needs,
                            matrix,
                            params: table,
                        },
                    );
                }
                _ => {
                    self.broken.insert(name);
                }
            }
        }
    }

    fn stage_kind(
        &self,
        name: &str,
        kind: Option<toml::Value>,
        errors: &mut Vec<Diagnostic>,
    ) -> Option<String> {
        let at = vec!["stages".to_string(), name.to_string(), "kind".into()];
        match kind {
            Some(toml::Value::String(k)) => Some(k),
            Some(_) => {
                errors.push(self.error(&at, false, "`kind` must be a string".into(), None));
                None
            }
            None => {
                let help = Some("add e.g. `kind = \"ingest\"`".into());
                errors.push(self.error(
                    &at[..2],
                    true,
                    format!("stage `{name}` has no `kind`"),
                    help,
                ));
                None
            }
        }
    }

    fn stage_needs(
        &self,
        at: &[String],
        needs: Option<toml::Value>,
        errors: &mut Vec<Diagnostic>,
    ) -> Vec<String> {
        let at = [at, &["needs".to_string()]].concat();
        match needs {
            None => Vec::new(),
            Some(toml::Value::String(s)) => {
                let help = format!("write needs = [\"{}\"]", shorten(&s));
                errors.push(self.error(
                    &at,
                    false,
                    "`needs` must be an array of stage names, not a string".into(),
                    Some(help),
                ));
                Vec::new()
            }
            Some(v) => self.typed::<Vec<String>>(v, &at).unwrap_or_else(|d| {
                errors.push(d);
                Vec::new()
            }),
        }
    }

    /// The matrix of a stage; `None` when it is unusable (an error is reported).
    fn stage_matrix(
        &self,
        at: &[String],
        m: toml::Value,
        errors: &mut Vec<Diagnostic>,
    ) -> Option<IndexMap<String, Vec<toml::Value>>> {
        let mat_at = [at, &["matrix".to_string()]].concat();
        let toml::Value::Table(axes) = m else {
            let message =
                "`matrix` must be a table of arrays, e.g. matrix = { samples = [1000, 10000] }"
                    .into();
            errors.push(self.error(&mat_at, false, message, None));
            return Some(IndexMap::new());
        };
        let mut matrix = IndexMap::new();
        for (axis, values) in axes {
            match check_axis(&axis, values) {
                Ok(values) => {
                    matrix.insert(axis, values);
                }
                Err(msg) => errors.push(self.error(
                    &[mat_at.clone(), vec![axis]].concat(),
                    false,
                    msg,
                    None,
                )),
            }
        }
        // Checked before anything expands: the product is what the stage would become.
        let combinations = matrix
            .values()
            .fold(1usize, |n, v| n.saturating_mul(v.len()));
        if combinations > limits::MAX_ARMS {
            let sizes: Vec<String> = matrix.values().map(|v| v.len().to_string()).collect();
            let message = format!(
                "the matrix has {combinations} combinations ({}); a manifest may expand to at most {} arms",
                sizes.join(" × "),
                limits::MAX_ARMS
            );
            errors.push(self.error(
                &mat_at,
                true,
                message,
                Some("use fewer values per axis, or split the study into several manifests".into()),
            ));
            return None;
        }
        Some(matrix)
    }

    fn typed<T: serde::de::DeserializeOwned>(
        &self,
        value: toml::Value,
        at: &[String],
    ) -> Result<T, Diagnostic> {
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = [at.to_vec(), path_segments(e.path())].concat();
            let message = e.inner().message().to_string();
            let help = hint_for_serde_message(&message);
            let is_key = message.starts_with("unknown field");
            self.error(&path, is_key, message, help)
        })
    }

    /// A diagnostic located at a key path of the manifest (or at the `-S` that set it).
    pub fn error(
        &self,
        path: &[String],
        at_key: bool,
        message: String,
        help: Option<String>,
    ) -> Diagnostic {
        let origin = match self.overridden.iter().find(|(p, _)| path.starts_with(p)) {
            Some((_, arg)) if !path.is_empty() => Origin::Override(arg.clone()),
            _ => self.source.locate(path, at_key),
        };
        Diagnostic {
            origin,
            message,
            help,
        }
    }

    /// Names of all stages (usable or not), for suggestions.
    pub fn stage_names(&self) -> impl Iterator<Item = &str> {
        self.stages
            .keys()
            .map(String::as_str)
            .chain(self.broken.iter().map(String::as_str))
    }
}

pub fn read_manifest(path: &Path) -> Result<Vec<u8>, ManifestErrors> {
    std::fs::read(path).map_err(|e| {
        ManifestErrors(vec![Diagnostic {
            origin: Origin::Whole(path.to_path_buf()),
            message: format!("cannot read the manifest: {e}"),
            help: Some(
                "pass the path of a TOML manifest, e.g. `apitune run experiments/quickstart.toml`"
                    .into(),
            ),
        }])
    })
}

/// The manifest's text; invalid UTF-8 is an error at the line and column of the first bad byte.
pub fn manifest_text(path: &Path, bytes: Vec<u8>) -> Result<String, ManifestErrors> {
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let prefix = std::str::from_utf8(&bytes[..valid]).unwrap_or_default();
        let origin = diagnostics::origin_at(path, prefix, valid);
        ManifestErrors(vec![Diagnostic {
            origin,
            message: format!(
                "the manifest is not valid UTF-8 (byte 0x{:02x})",
                bytes[valid]
            ),
            help: Some("save the manifest as UTF-8".into()),
        }])
    })
}

fn expectation_problem(e: &Expectation) -> Option<String> {
    let numbers = [
        ("value", e.value),
        ("tol", e.tol),
        ("min", e.min),
        ("max", e.max),
    ];
    if let Some((field, Some(v))) = numbers
        .into_iter()
        .find(|(_, v)| v.is_some_and(|v| !v.is_finite()))
    {
        return Some(format!("`{field}` must be a finite number, got {v}"));
    }
    if e.beyond_interval && e.above.is_none() {
        return Some("`beyond_interval` needs `above` (the target to be above)".into());
    }
    match (e.value, e.tol, e.min, e.max) {
        (None, None, None, None) if e.above.is_none() => {
            Some("an expectation needs `value` and `tol`, `min` and/or `max`, or `above`".into())
        }
        (Some(_), None, _, _) => Some("`value` needs a `tol` (allowed absolute distance)".into()),
        (None, Some(_), _, _) => Some("`tol` needs a `value`".into()),
        (_, Some(t), _, _) if t < 0.0 => Some("`tol` must not be negative".into()),
        (_, _, Some(lo), Some(hi)) if lo > hi => {
            Some(format!("`min` ({lo}) is above `max` ({hi})"))
        }
        _ => None,
    }
}

fn check_axis(axis: &str, values: toml::Value) -> Result<Vec<toml::Value>, String> {
    let toml::Value::Array(values) = values else {
        return Err(format!(
            "matrix axis `{axis}` must be an array of values, e.g. {axis} = [1, 2]"
        ));
    };
    if values.is_empty() {
        return Err(format!("matrix axis `{axis}` has no values"));
    }
    if axis
        .split('.')
        .any(|s| s.is_empty() || STAGE_KEYS.contains(&s))
    {
        return Err(format!(
            "`{axis}` cannot be a matrix axis: name a param of the stage"
        ));
    }
    let mut seen = BTreeSet::new();
    for v in &values {
        if matches!(v, toml::Value::Table(_) | toml::Value::Array(_)) {
            return Err(format!(
                "matrix axis `{axis}` takes plain values (numbers, strings, booleans), not tables or arrays"
            ));
        }
        if !seen.insert(label_value(v)) {
            return Err(format!(
                "matrix axis `{axis}` lists `{}` twice",
                label_value(v)
            ));
        }
    }
    Ok(values)
}

/// How a matrix value appears in an arm name: `lora[samples=1000]`, `eval[model=tiny]`.
pub fn label_value(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Path segments of a serde error, as manifest keys.
pub fn path_segments(path: &serde_path_to_error::Path) -> Vec<String> {
    path.iter()
        .filter_map(|seg| match seg {
            serde_path_to_error::Segment::Map { key } => Some(key.clone()),
            serde_path_to_error::Segment::Seq { index } => Some(index.to_string()),
            serde_path_to_error::Segment::Enum { variant } => Some(variant.clone()),
            serde_path_to_error::Segment::Unknown => None,
        })
        .collect()
}

/// Sets `value` at a dotted `path` inside `table`, creating intermediate tables.
pub fn set_path(
    table: &mut toml::Table,
    path: &[String],
    value: toml::Value,
) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("empty key path")?;
    let mut cur = table;
    for (i, seg) in parents.iter().enumerate() {
        let entry = cur
            .entry(seg.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = match entry {
            toml::Value::Table(t) => t,
            _ => return Err(format!("`{}` is not a table", parents[..=i].join("."))),
        };
    }
    cur.insert(last.clone(), value);
    Ok(())
}
