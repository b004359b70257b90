//! The `apitune` command line: parses arguments, calls the library, prints, and maps outcomes to
//! exit codes (0 ok, 1 stale or out of tolerance, 2 usage or manifest error, 3 stage failure,
//! 4 the cache cannot be used now: held by another run, read-only, or its disk is full).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::cache::Cache;
use crate::manifest::{Manifest, ManifestErrors};
use crate::pipeline::Dag;
use crate::pipeline::plan::Keyer;
use crate::pipeline::scheduler::{self};

mod dag;
mod explain;
mod gc;
mod job;
pub mod metrics;
pub mod model;
mod plan;
mod remote;
mod run;
mod show;
mod status;
mod verify;

pub use dag::{DagArgs, DagFormat};
pub use explain::ExplainArgs;
pub use gc::GcArgs;
pub use plan::PlanArgs;
pub use remote::RemoteArgs;
pub use run::RunArgs;
pub use show::ShowArgs;
pub use status::StatusArgs;
pub use verify::VerifyArgs;

pub const DEFAULT_MANIFEST: &str = "experiments/quickstart.toml";
/// Widest arm-name column in tables; longer names overflow it rather than widen every line.
const NAME_COLUMN: usize = 60;

/// The values of `--backend` (the library's [`crate::model::Backend`], as clap lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    /// flex, burn's pure-Rust CPU backend (always built).
    Cpu,
    /// wgpu (Vulkan/Metal/DX12); needs the `wgpu` cargo feature.
    Wgpu,
    /// CUDA; needs the `cuda` cargo feature and an NVIDIA driver.
    Cuda,
    /// The best backend built in and present: CUDA, else wgpu on a hardware GPU, else the CPU.
    /// A software Vulkan adapter (lavapipe) does not count: it is far slower than flex.
    Auto,
}

impl From<BackendArg> for crate::model::Backend {
    fn from(arg: BackendArg) -> Self {
        match arg {
            BackendArg::Cpu => Self::Cpu,
            BackendArg::Wgpu => Self::Wgpu,
            BackendArg::Cuda => Self::Cuda,
            BackendArg::Auto => Self::Auto,
        }
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "apitune",
    version,
    about = "One TOML manifest in, a reproducible LLM fine-tuning study for API code generation out"
)]
pub struct Cli {
    /// Cache directory (artifacts, index, work dirs) [env: APITUNE_CACHE] [default: ./cache]
    #[arg(long, global = true)]
    pub cache: Option<PathBuf>,
    /// Remote cache to read through (run, plan, status, check) or push to / pull from:
    /// s3://bucket/prefix, gs://…, az://…, file:///path or a path [env: APITUNE_REMOTE]
    /// [default: the manifest's `[cache] remote`]
    #[arg(long, global = true, value_name = "URL")]
    pub remote: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the stale stages of a manifest (all of them, or TARGETS and what they need)
    Run(RunArgs),
    /// Show what `run` would do: per arm, hit or miss and why (same as `run --dry-run`)
    Plan(PlanArgs),
    /// Is every arm cached and up to date? With --exit-code, exit 1 if not
    Status(StatusArgs),
    /// CI gate: exit 0 only if every arm is cached and up to date and every [expect] holds; runs nothing
    Check(StatusArgs),
    /// Why does an arm miss the cache: field-level difference from its nearest cached key
    Explain(ExplainArgs),
    /// Print the results table of the manifest's cached report
    Show(ShowArgs),
    /// Print the DAG of arms
    Dag(DagArgs),
    /// Check a manifest and report every error at once
    Validate(ManifestArgs),
    /// Print the JSON Schema of manifests
    Schema,
    /// Upload the manifest's cached arms that the remote cache lacks
    Push(RemoteArgs),
    /// Download the manifest's arms that the remote cache has and this one lacks (verified)
    Pull(RemoteArgs),
    /// Re-hash every cached artifact; tampered ones are quarantined and never reused
    Verify(VerifyArgs),
    /// Remove cache entries no given manifest reaches
    Gc(GcArgs),
    /// Score a predictions file against references (BLEU, ROUGE-L, syntax, API match, ...)
    Metrics(metrics::MetricsArgs),
    /// Generate a completion with a model (and adapter) by hand
    Generate(model::GenerateArgs),
    /// Per-token and mean NLL of a target given a prompt, as JSON
    Score(model::ScoreArgs),
    /// Fold a LoRA adapter into its base model and write an HF checkpoint
    Merge(model::MergeArgs),
    /// Compute one arm in a batch job (what `run --executor slurm` submits)
    #[command(hide = true)]
    Job(job::JobArgs),
}

#[derive(Args, Debug, Clone)]
pub struct ManifestArgs {
    /// Manifest path, then stage or arm names [default manifest: experiments/quickstart.toml]
    #[arg(value_name = "MANIFEST] [TARGET")]
    pub args: Vec<String>,
    /// Override a manifest value: -S stages.lora.train.lr=1e-4
    #[arg(short = 'S', long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<String>,
    /// Where models run [default: the manifest's experiment.backend, else auto]
    #[arg(long, value_enum)]
    pub backend: Option<BackendArg>,
}

#[derive(Clone, Copy, Debug, Default, ValueEnum, PartialEq)]
pub enum Format {
    #[default]
    Table,
    Json,
}

/// An outcome that ends the process with a specific exit code.
#[derive(Debug)]
pub enum Failure {
    /// Something is stale or out of tolerance (exit 1).
    Stale(String),
    /// Bad usage or manifest (exit 2).
    Usage(String),
    Manifest(ManifestErrors),
    /// A stage failed (exit 3).
    Stage(String),
    /// The cache cannot be used now: locked by another run, read-only, out of space (exit 4).
    Unavailable(String),
    /// Anything else that stopped the command (exit 3).
    Other(anyhow::Error),
}

impl Failure {
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Stale(_) => 1,
            Failure::Usage(_) | Failure::Manifest(_) => 2,
            Failure::Stage(_) | Failure::Other(_) => 3,
            Failure::Unavailable(_) => 4,
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Failure {
        if scheduler::is_environment_failure(&e) {
            Failure::Unavailable(format!("{e:#}"))
        } else {
            Failure::Other(e)
        }
    }
}

impl From<crate::cache::CacheError> for Failure {
    fn from(e: crate::cache::CacheError) -> Failure {
        use crate::cache::CacheError;
        match e {
            e if e.is_unavailable() => Failure::Unavailable(e.to_string()),
            e @ (CacheError::Foreign { .. }
            | CacheError::Format { .. }
            | CacheError::LinkedSubdirectory { .. }) => Failure::Usage(e.to_string()),
            e => Failure::Other(e.into()),
        }
    }
}

pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    match dispatch(&cli) {
        Ok(()) => 0,
        Err(failure) => {
            match &failure {
                Failure::Stale(msg) | Failure::Stage(msg) => {
                    if !msg.is_empty() {
                        eprintln!("{msg}");
                    }
                }
                Failure::Usage(msg) | Failure::Unavailable(msg) => eprintln!("error: {msg}"),
                Failure::Manifest(errors) => eprintln!("{errors}"),
                Failure::Other(e) => eprintln!("error: {e:#}"),
            }
            failure.exit_code()
        }
    }
}

fn dispatch(cli: &Cli) -> Result<(), Failure> {
    let cache_dir = cli
        .cache
        .clone()
        .or_else(|| std::env::var_os("APITUNE_CACHE").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("cache"));
    let _ = remote::REMOTE_FLAG.set(cli.remote.clone());
    match &cli.command {
        Command::Run(args) if args.dry_run => {
            plan::plan_command(&cache_dir, &args.manifest, args.format)
        }
        Command::Run(args) => run::run_command(&cache_dir, args),
        Command::Plan(args) => plan::plan_command(&cache_dir, &args.manifest, args.format),
        Command::Status(args) => status::status_command(&cache_dir, args),
        Command::Check(args) => status::check_command(&cache_dir, args),
        Command::Show(args) => show::show_command(&cache_dir, args),
        Command::Explain(args) => explain::explain_command(&cache_dir, args),
        Command::Dag(args) => dag::dag_command(args),
        Command::Validate(args) => dag::validate_command(args),
        Command::Schema => {
            print!("{}", crate::pipeline::schema::manifest_schema_json());
            Ok(())
        }
        Command::Push(args) => remote::push_command(&cache_dir, args),
        Command::Pull(args) => remote::pull_command(&cache_dir, args),
        Command::Verify(args) => verify::verify_command(&cache_dir, args),
        Command::Gc(args) => gc::gc_command(&cache_dir, args),
        Command::Metrics(args) => match metrics::run(args) {
            Ok(0) => Ok(()),
            Ok(_) => Err(Failure::Stale(String::new())),
            // Bad input files are the user's to fix: a usage error.
            Err(e) => Err(Failure::Usage(format!("{e:#}"))),
        },
        Command::Generate(args) => {
            model::generate(args).map_err(|e| Failure::Usage(format!("{e:#}")))
        }
        Command::Score(args) => model::score(args).map_err(|e| Failure::Usage(format!("{e:#}"))),
        Command::Merge(args) => model::merge(args).map_err(|e| Failure::Usage(format!("{e:#}"))),
        Command::Job(args) => job::job_command(&cache_dir, args),
    }
}

/// A manifest, its DAG, and the targets named on the command line.
struct Loaded {
    manifest: Manifest,
    dag: Dag,
    targets: Vec<String>,
    /// The `--set` overrides it was loaded with.
    overrides: Vec<String>,
    backend_choice: Option<crate::model::Backend>,
}

impl Loaded {
    fn new(args: &ManifestArgs) -> Result<Loaded, Failure> {
        let (path, targets) = split_manifest_arg(&args.args);
        let mut loaded = Loaded::from_path(&path, &args.set, targets)?;
        loaded.backend_choice = args.backend.map(Into::into);
        loaded.overrides = args.set.clone();
        Ok(loaded)
    }

    fn from_path(path: &Path, set: &[String], targets: Vec<String>) -> Result<Loaded, Failure> {
        if !path.exists() {
            let hint = if path == Path::new(DEFAULT_MANIFEST) {
                "run apitune from the repository root, or pass a manifest path"
            } else {
                "check the path"
            };
            return Err(Failure::Usage(format!(
                "manifest `{}` not found: {hint}",
                path.display()
            )));
        }
        let (manifest, dag) = crate::pipeline::load(path, set).map_err(Failure::Manifest)?;
        Ok(Loaded {
            manifest,
            dag,
            targets,
            overrides: Vec::new(),
            backend_choice: None,
        })
    }

    /// The resolved backend (`auto` becomes what this machine has), as it enters keys.
    fn backend(&self) -> Result<crate::model::Backend, Failure> {
        let choice = self
            .backend_choice
            .unwrap_or(self.manifest.experiment.backend);
        choice.resolve().map_err(|e| Failure::Usage(format!("{e}")))
    }

    fn keyer<'a>(&'a self, cache: &'a Cache) -> Result<Keyer<'a>, Failure> {
        Ok(Keyer::new(
            &self.manifest,
            &self.dag,
            cache,
            self.backend()?,
        ))
    }

    /// `error` of arm `id`, located at its stage's place in the manifest.
    fn arm_error(&self, id: usize, error: &str) -> crate::manifest::Diagnostic {
        let arm = &self.dag.arms[id];
        let message = format!("`{}`: {error}", arm.name);
        self.manifest.error(
            &["stages".to_string(), arm.stage.clone()],
            true,
            message,
            None,
        )
    }

    fn selected(&self) -> Result<BTreeSet<usize>, Failure> {
        self.dag.select(&self.targets).map_err(Failure::Usage)
    }
}

/// The first argument is the manifest when it looks like one (`*.toml` or an existing file).
fn split_manifest_arg(args: &[String]) -> (PathBuf, Vec<String>) {
    match args.split_first() {
        Some((first, rest)) if first.ends_with(".toml") || Path::new(first).is_file() => {
            (PathBuf::from(first), rest.to_vec())
        }
        _ => (PathBuf::from(DEFAULT_MANIFEST), args.to_vec()),
    }
}

fn short(hex: &str) -> &str {
    &hex[..hex.len().min(12)]
}
