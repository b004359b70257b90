//! Stage kinds. Each kind is one type implementing [`StageKind`]: its params (which are the manifest
//! table of the stage), a `VERSION` that enters the cache key, the files it reads besides its input
//! artifacts, and `run`. Stages never call each other; they exchange artifact directories only.

mod command;
mod eval;
mod ingest;
mod lora_train;
mod normalize;
mod pretrain;
mod report;
mod retrieve;
mod training;

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use schemars::JsonSchema;

use crate::manifest::ModelSpec;
use crate::validate::{Validate, problems_of};
use serde::{Serialize, de::DeserializeOwned};

pub use command::Command;
pub use eval::Eval;
pub use ingest::Ingest;
pub use lora_train::LoraTrain;
pub use normalize::Normalize;
pub use pretrain::Pretrain;
pub use report::{Report, ReportParams};
pub use retrieve::Retrieve;

pub use crate::artifacts::Input;

/// What a running stage may use.
pub struct RunContext<'a> {
    /// Arm name of the running stage.
    pub arm: &'a str,
    /// Directory relative paths of the manifest resolve against.
    pub base_dir: &'a Path,
    /// The experiment seed.
    pub seed: u64,
    /// `[models]` of the manifest.
    pub models: &'a IndexMap<String, ModelSpec>,
    /// The compute backend, resolved (`cpu`, `wgpu` or `cuda`; never `auto`).
    pub backend: crate::model::Backend,
    /// The GPU this arm has to itself (`run --devices`), else the backend's default device.
    pub device: Option<usize>,
    /// Content hashes of the files the stage declared (`input_files`), as in its key.
    pub file_hashes: &'a serde_json::Value,
    /// The cache directory, for memo directories shared across keys (see [`RunContext::memo_dir`]).
    pub cache_root: &'a Path,
    pub inputs: &'a [Input],
    /// Fresh, empty directory: everything written here becomes the artifact.
    pub out_dir: &'a Path,
    /// Survives interruption, for checkpoints of long stages; removed once the artifact is published.
    pub work_dir: &'a Path,
    /// Reports progress (`done` of `total` units, unit name); cheap to call often.
    pub progress: &'a (dyn Fn(u64, Option<u64>, &str) + Sync),
}

impl RunContext<'_> {
    /// Where this arm's models run.
    pub fn device(&self) -> anyhow::Result<burn::tensor::Device> {
        Ok(self.backend.device_at(self.device)?)
    }

    /// A directory keyed by `material` alone, shared by every arm and key that asks with the same
    /// material: for intermediate results that depend on less than the stage's whole key
    /// (generations do not depend on the metric code that scores them).
    pub fn memo_dir(&self, material: &serde_json::Value) -> anyhow::Result<PathBuf> {
        Ok(crate::cache::memo::memo_dir(self.cache_root, material)?)
    }

    /// The directory of model `name` of `[models]`.
    pub fn model_dir(&self, name: &str) -> anyhow::Result<PathBuf> {
        model_path(self.models, self.base_dir, name)
    }

    /// The single input produced by a stage of `kind`; an error names the arm if there is none or several.
    pub fn input_of_kind(&self, kind: &str) -> anyhow::Result<&Input> {
        let mut found = self.inputs.iter().filter(|i| i.kind == kind);
        let first = found.next().ok_or_else(|| {
            anyhow::anyhow!(
                "stage `{}` needs an input of kind `{kind}`; add such a stage to its `needs`",
                self.arm
            )
        })?;
        if let Some(second) = found.next() {
            anyhow::bail!(
                "stage `{}` has several `{kind}` inputs (`{}`, `{}`); it takes exactly one",
                self.arm,
                first.arm,
                second.arm
            );
        }
        Ok(first)
    }
}

/// Facts known while planning, before anything runs.
pub struct PlanContext<'a> {
    pub base_dir: &'a Path,
    pub seed: u64,
    pub models: &'a IndexMap<String, ModelSpec>,
    /// The compute backend: resolved (`cpu`, `wgpu` or `cuda`) when planning keys, as the
    /// manifest declares it when only checking params.
    pub backend: crate::model::Backend,
}

/// The files of an HF model directory that determine its outputs.
pub const MODEL_FILES: [&str; 6] = [
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "model.safetensors",
    "model.safetensors.index.json",
];

impl<'a> PlanContext<'a> {
    /// The planning facts of `manifest`, for `backend`.
    pub fn of(manifest: &'a crate::manifest::Manifest, backend: crate::model::Backend) -> Self {
        PlanContext {
            base_dir: &manifest.base_dir,
            seed: manifest.experiment.seed,
            models: &manifest.models,
            backend,
        }
    }

    /// Whether `name` is a model of `[models]` with a directory; the error says what to fix.
    pub fn check_model(&self, name: &str) -> Result<(), String> {
        model_path(self.models, self.base_dir, name)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Files of model `name` that enter a key: its config, tokenizer and every weight file.
    pub fn model_files(&self, name: &str) -> anyhow::Result<Vec<PathBuf>> {
        let dir = model_path(self.models, self.base_dir, name)?;
        anyhow::ensure!(
            dir.join("config.json").is_file(),
            "model `{name}`: no config.json in {}",
            dir.display()
        );
        let mut files: Vec<PathBuf> = MODEL_FILES
            .iter()
            .map(|f| dir.join(f))
            .filter(|p| p.is_file())
            .collect();
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.ends_with(".safetensors") && !files.contains(&path) {
                files.push(path);
            }
        }
        files.sort();
        Ok(files)
    }
}

fn model_path(
    models: &IndexMap<String, ModelSpec>,
    base_dir: &Path,
    name: &str,
) -> anyhow::Result<PathBuf> {
    let spec = models.get(name).ok_or_else(|| {
        let names: Vec<&str> = models.keys().map(String::as_str).collect();
        let declared = if names.is_empty() {
            "nothing".into()
        } else {
            names.join(", ")
        };
        anyhow::anyhow!(
            "unknown model `{}`; [models] declares: {declared}",
            crate::manifest::shorten(name)
        )
    })?;
    let path = spec
        .path
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("model `{name}` has no `path`; a randomly initialised model is evaluated through the `pretrain` stage that trains it"))?;
    let dir = base_dir.join(path);
    anyhow::ensure!(
        dir.is_dir(),
        "model `{name}`: directory {} does not exist",
        dir.display()
    );
    Ok(dir)
}

/// A kind of stage.
pub trait StageKind: Send + Sync + 'static {
    /// Name used in manifests (`kind = "ingest"`).
    const KIND: &'static str;
    /// Bump when the stage's output for the same inputs changes; it enters the cache key.
    const VERSION: u32;
    /// Whether the stage consumes every arm of its needs at once (a report) instead of fanning out.
    const AGGREGATES: bool = false;
    /// Its [`Validate`] impl gives every numeric param its range, checked when the manifest is read.
    type Params: Serialize + DeserializeOwned + JsonSchema + Validate + Send + Sync;

    /// Files (or directories) read besides input artifacts; hashed by content into the key.
    fn input_files(_params: &Self::Params, _ctx: &PlanContext) -> anyhow::Result<Vec<PathBuf>> {
        Ok(Vec::new())
    }
    /// Checks params against the rest of the manifest (e.g. a model name exists), before anything
    /// runs; the error names the param at fault as `(param path, message)`.
    fn check(_params: &Self::Params, _ctx: &PlanContext) -> Result<(), (String, String)> {
        Ok(())
    }
    /// Facts of the run that change the output (seed, backend, dtype); they enter the key.
    fn runtime_facts(_params: &Self::Params, _ctx: &PlanContext) -> serde_json::Value {
        serde_json::Value::Null
    }
    /// Does the work, writing the artifact into `ctx.out_dir`; returns a JSON summary.
    fn run(params: &Self::Params, ctx: &RunContext) -> anyhow::Result<serde_json::Value>;
}

/// Object-safe view of a [`StageKind`] over JSON params, so the pipeline can hold any kind.
pub trait DynStage: Send + Sync {
    fn kind(&self) -> &'static str;
    fn version(&self) -> u32;
    fn aggregates(&self) -> bool;
    /// Type- and range-checks params and returns them with defaults filled in (what enters the
    /// key), or every problem found.
    fn resolve(&self, params: toml::Value) -> Result<serde_json::Value, Vec<ParamError>>;
    fn input_files(
        &self,
        params: &serde_json::Value,
        ctx: &PlanContext,
    ) -> anyhow::Result<Vec<PathBuf>>;
    fn check(&self, params: &serde_json::Value, ctx: &PlanContext) -> Result<(), (String, String)>;
    fn runtime_facts(&self, params: &serde_json::Value, ctx: &PlanContext) -> serde_json::Value;
    fn run(
        &self,
        params: &serde_json::Value,
        ctx: &RunContext,
    ) -> anyhow::Result<serde_json::Value>;
    fn params_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema;
}

/// A params type error, with the path inside the stage table where it happened.
#[derive(Debug)]
pub struct ParamError {
    pub path: Vec<String>,
    pub message: String,
}

struct Registered<K>(std::marker::PhantomData<K>);

fn typed<K: StageKind>(params: &serde_json::Value) -> anyhow::Result<K::Params> {
    Ok(serde_json::from_value(params.clone())?)
}

impl<K: StageKind> DynStage for Registered<K> {
    fn kind(&self) -> &'static str {
        K::KIND
    }
    fn version(&self) -> u32 {
        K::VERSION
    }
    fn aggregates(&self) -> bool {
        K::AGGREGATES
    }
    fn resolve(&self, params: toml::Value) -> Result<serde_json::Value, Vec<ParamError>> {
        let typed: K::Params = serde_path_to_error::deserialize(params).map_err(|e| {
            vec![ParamError {
                path: crate::manifest::path_segments(e.path()),
                message: e.inner().message().to_string(),
            }]
        })?;
        // Before JSON: it has no NaN or infinity, and would turn them into null.
        let problems = problems_of(&typed);
        if !problems.is_empty() {
            return Err(problems
                .into_iter()
                .map(|(path, message)| ParamError {
                    path: path.split('.').map(str::to_string).collect(),
                    message,
                })
                .collect());
        }
        serde_json::to_value(&typed).map_err(|e| {
            vec![ParamError {
                path: Vec::new(),
                message: e.to_string(),
            }]
        })
    }
    fn input_files(
        &self,
        params: &serde_json::Value,
        ctx: &PlanContext,
    ) -> anyhow::Result<Vec<PathBuf>> {
        K::input_files(&typed::<K>(params)?, ctx)
    }
    fn check(&self, params: &serde_json::Value, ctx: &PlanContext) -> Result<(), (String, String)> {
        match typed::<K>(params) {
            Ok(p) => K::check(&p, ctx),
            Err(e) => Err((String::new(), e.to_string())),
        }
    }
    fn runtime_facts(&self, params: &serde_json::Value, ctx: &PlanContext) -> serde_json::Value {
        typed::<K>(params)
            .map(|p| K::runtime_facts(&p, ctx))
            .unwrap_or(serde_json::Value::Null)
    }
    fn run(
        &self,
        params: &serde_json::Value,
        ctx: &RunContext,
    ) -> anyhow::Result<serde_json::Value> {
        K::run(&typed::<K>(params)?, ctx)
    }
    fn params_schema(&self, generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        K::Params::json_schema(generator)
    }
}

/// Puts a one-line summary where `run` shows it.
pub fn set_headline(summary: &mut serde_json::Value, headline: String) {
    if let Some(obj) = summary.as_object_mut() {
        obj.insert("headline".into(), serde_json::Value::String(headline));
    }
}

/// The one-line summary of a stage's JSON summary.
pub fn headline(summary: &serde_json::Value) -> String {
    if let Some(h) = summary.get("headline").and_then(|h| h.as_str()) {
        return h.to_string();
    }
    summary
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(_, v)| v.is_number())
                .take(4)
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// The examples of the `retrieve` stage the running stage needs, if it needs one.
fn retrieved_examples(ctx: &RunContext) -> anyhow::Result<Option<crate::data::retrieval::Shots>> {
    if !ctx.inputs.iter().any(|i| i.kind == "retrieve") {
        return Ok(None);
    }
    let input = ctx.input_of_kind("retrieve")?;
    let shots = crate::data::retrieval::Shots::read(&input.dir)
        .map_err(|e| anyhow::anyhow!("retrieve arm `{}`: {e}", input.arm))?;
    Ok(Some(shots))
}

static COMMAND: Registered<Command> = Registered(std::marker::PhantomData);
static EVAL: Registered<Eval> = Registered(std::marker::PhantomData);
static INGEST: Registered<Ingest> = Registered(std::marker::PhantomData);
static NORMALIZE: Registered<Normalize> = Registered(std::marker::PhantomData);
static PRETRAIN: Registered<Pretrain> = Registered(std::marker::PhantomData);
static LORA_TRAIN: Registered<LoraTrain> = Registered(std::marker::PhantomData);
static REPORT: Registered<Report> = Registered(std::marker::PhantomData);
static RETRIEVE: Registered<Retrieve> = Registered(std::marker::PhantomData);

/// Every stage kind this build knows, in manifest order of a typical study.
pub fn registry() -> [&'static dyn DynStage; 8] {
    [
        &INGEST,
        &NORMALIZE,
        &RETRIEVE,
        &PRETRAIN,
        &EVAL,
        &LORA_TRAIN,
        &REPORT,
        &COMMAND,
    ]
}

pub fn lookup(kind: &str) -> Option<&'static dyn DynStage> {
    registry().into_iter().find(|s| s.kind() == kind)
}
