//! The `apitune` command line: parses arguments, calls the library, prints, and maps outcomes to
//! exit codes (0 ok, 1 stale or out of tolerance, 2 usage or manifest error, 3 stage failure,
//! 4 the cache cannot be used now: held by another run, read-only, or its disk is full).

use std::collections::{BTreeSet, HashMap};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::json;

use crate::cache::Cache;
use crate::manifest::{Manifest, ManifestErrors};
use crate::pipeline::plan::{self, ArmPlan, Decision, History, Keyer};
use crate::pipeline::scheduler::{self, ArmResult, Events, Outcome, RunOptions};
use crate::pipeline::{Dag, render};

pub const DEFAULT_MANIFEST: &str = "experiments/quickstart.toml";
/// Widest arm-name column in tables; longer names overflow it rather than widen every line.
const NAME_COLUMN: usize = 60;

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
    /// Re-hash every cached artifact; tampered ones are quarantined and never reused
    Verify(VerifyArgs),
    /// Remove cache entries no given manifest reaches
    Gc(GcArgs),
    /// Score a predictions file against references (BLEU, ROUGE-L, syntax, API match, ...)
    Metrics(crate::metrics::cli::MetricsArgs),
    /// Generate a completion with a model (and adapter) by hand
    Generate(crate::model::cli::GenerateArgs),
    /// Per-token and mean NLL of a target given a prompt, as JSON
    Score(crate::model::cli::ScoreArgs),
    /// Fold a LoRA adapter into its base model and write an HF checkpoint
    Merge(crate::model::cli::MergeArgs),
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
    pub backend: Option<crate::model::Backend>,
}

#[derive(Clone, Copy, Debug, Default, ValueEnum, PartialEq)]
pub enum Format {
    #[default]
    Table,
    Json,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub manifest: ManifestArgs,
    /// Plan only: print hit/miss per arm and run nothing
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Arms to run at once [default: number of CPUs]
    #[arg(short = 'j', long)]
    pub jobs: Option<usize>,
    /// Keep running independent arms after a failure
    #[arg(short = 'k', long)]
    pub keep_going: bool,
    /// Re-run the targets (all arms if none given) even when cached
    #[arg(short = 'f', long)]
    pub force: bool,
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    pub manifest: ManifestArgs,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub manifest: ManifestArgs,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
    /// Exit 1 when anything is stale
    #[arg(long)]
    pub exit_code: bool,
}

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// [MANIFEST] then the stage or arm to explain
    #[command(flatten)]
    pub manifest: ManifestArgs,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Clone, Copy, Debug, Default, ValueEnum)]
pub enum DagFormat {
    #[default]
    Ascii,
    Dot,
    Mermaid,
}

#[derive(Args, Debug)]
pub struct DagArgs {
    #[command(flatten)]
    pub manifest: ManifestArgs,
    #[arg(long, value_enum, default_value_t)]
    pub format: DagFormat,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    #[command(flatten)]
    pub manifest: ManifestArgs,
    #[arg(long, value_enum, default_value_t = crate::report::ShowFormat::Table)]
    pub format: crate::report::ShowFormat,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Also rebuild the index from the artifact directories
    #[arg(long)]
    pub repair: bool,
    #[arg(long, value_enum, default_value_t)]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct GcArgs {
    /// Manifests whose arms to keep [default: experiments/quickstart.toml]
    pub manifests: Vec<PathBuf>,
    /// List what would be removed, with sizes, and remove nothing
    #[arg(long)]
    pub dry_run: bool,
    #[arg(short = 'S', long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<String>,
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
    match &cli.command {
        Command::Run(args) if args.dry_run => plan_command(&cache_dir, &args.manifest, args.format),
        Command::Run(args) => run_command(&cache_dir, args),
        Command::Plan(args) => plan_command(&cache_dir, &args.manifest, args.format),
        Command::Status(args) => status_command(&cache_dir, args),
        Command::Check(args) => check_command(&cache_dir, args),
        Command::Show(args) => show_command(&cache_dir, args),
        Command::Explain(args) => explain_command(&cache_dir, args),
        Command::Dag(args) => {
            let loaded = Loaded::new(&args.manifest)?;
            let text = match args.format {
                DagFormat::Ascii => render::ascii(&loaded.dag),
                DagFormat::Dot => render::dot(&loaded.dag),
                DagFormat::Mermaid => render::mermaid(&loaded.dag),
            };
            print!("{text}");
            Ok(())
        }
        Command::Validate(args) => {
            let loaded = Loaded::new(args)?;
            let outside =
                crate::pipeline::inputs::arms_reading_outside(&loaded.manifest, &loaded.dag);
            if !outside.is_empty() {
                let errors = outside
                    .into_iter()
                    .map(|(id, error)| loaded.arm_error(id, &error))
                    .collect();
                return Err(Failure::Manifest(ManifestErrors(errors)));
            }
            println!(
                "{}: ok ({} stages, {} arms)",
                loaded.manifest.path.display(),
                loaded.manifest.stages.len(),
                loaded.dag.arms.len()
            );
            Ok(())
        }
        Command::Schema => {
            print!("{}", crate::pipeline::schema::manifest_schema_json());
            Ok(())
        }
        Command::Verify(args) => verify_command(&cache_dir, args),
        Command::Gc(args) => gc_command(&cache_dir, args),
        Command::Metrics(args) => match crate::metrics::cli::run(args) {
            Ok(0) => Ok(()),
            Ok(_) => Err(Failure::Stale(String::new())),
            // Bad input files are the user's to fix: a usage error.
            Err(e) => Err(Failure::Usage(format!("{e:#}"))),
        },
        Command::Generate(args) => {
            crate::model::cli::generate(args).map_err(|e| Failure::Usage(format!("{e:#}")))
        }
        Command::Score(args) => {
            crate::model::cli::score(args).map_err(|e| Failure::Usage(format!("{e:#}")))
        }
        Command::Merge(args) => {
            crate::model::cli::merge(args).map_err(|e| Failure::Usage(format!("{e:#}")))
        }
    }
}

/// A manifest, its DAG, and the targets named on the command line.
struct Loaded {
    manifest: Manifest,
    dag: Dag,
    targets: Vec<String>,
    backend_choice: Option<crate::model::Backend>,
}

impl Loaded {
    fn new(args: &ManifestArgs) -> Result<Loaded, Failure> {
        let (path, targets) = split_manifest_arg(&args.args);
        let mut loaded = Loaded::from_path(&path, &args.set, targets)?;
        loaded.backend_choice = args.backend;
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
            backend_choice: None,
        })
    }

    /// The resolved backend (`auto` becomes what this machine has), as it enters keys.
    fn backend(&self) -> Result<String, Failure> {
        let choice = self
            .backend_choice
            .unwrap_or(self.manifest.experiment.backend);
        choice
            .resolve()
            .map(|b| b.to_string())
            .map_err(|e| Failure::Usage(format!("{e}")))
    }

    fn keyer<'a>(&'a self, cache: &'a Cache) -> Result<Keyer<'a>, Failure> {
        let mut keyer = Keyer::new(&self.manifest, &self.dag, cache);
        keyer.backend = self.backend()?;
        Ok(keyer)
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

fn plans_for(
    cache_dir: &Path,
    loaded: &Loaded,
    forced: &BTreeSet<usize>,
) -> Result<Vec<ArmPlan>, Failure> {
    let cache = Cache::open_read_only(cache_dir)?;
    let keyer = loaded.keyer(&cache)?;
    Ok(plan::plan(&keyer, &loaded.selected()?, forced)?)
}

fn plan_command(cache_dir: &Path, args: &ManifestArgs, format: Format) -> Result<(), Failure> {
    let loaded = Loaded::new(args)?;
    let plans = plans_for(cache_dir, &loaded, &BTreeSet::new())?;
    print_plans(&plans, format);
    invalid_plans(&plans, &loaded)
}

/// Arms that cannot even be keyed (a missing input file, an input outside the project) are the
/// user's to fix: each is reported at its stage's place in the manifest.
fn invalid_plans(plans: &[ArmPlan], loaded: &Loaded) -> Result<(), Failure> {
    let invalid: Vec<crate::manifest::Diagnostic> = plans
        .iter()
        .filter_map(|p| match &p.decision {
            Decision::Invalid { error } => Some(loaded.arm_error(p.id, error)),
            _ => None,
        })
        .collect();
    if invalid.is_empty() {
        Ok(())
    } else {
        Err(Failure::Manifest(ManifestErrors(invalid)))
    }
}

fn print_plans(plans: &[ArmPlan], format: Format) {
    if format == Format::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "arms": plans })).expect("plain JSON")
        );
        return;
    }
    let width = plans
        .iter()
        .map(|p| p.arm.chars().count())
        .max()
        .unwrap_or(0);
    for p in plans {
        let (status, detail) = match &p.decision {
            Decision::Hit { key, .. } => ("hit", format!("key {}", short(&key.to_string()))),
            Decision::Miss { reason, .. } => ("miss", reason.clone()),
            Decision::Pending { after } => ("pending", format!("runs after {}", after.join(", "))),
            Decision::Invalid { error } => ("invalid", error.clone()),
        };
        println!(
            "{:<width$}  {:<10}  {:<7}  {detail}",
            p.arm,
            p.kind,
            status,
            width = width.min(NAME_COLUMN)
        );
    }
    let misses = plans.iter().filter(|p| !p.is_hit()).count();
    println!(
        "{} arms: {} cached, {} to run",
        plans.len(),
        plans.len() - misses,
        misses
    );
}

fn short(hex: &str) -> &str {
    &hex[..hex.len().min(12)]
}

fn status_command(cache_dir: &Path, args: &StatusArgs) -> Result<(), Failure> {
    let loaded = Loaded::new(&args.manifest)?;
    let plans = plans_for(cache_dir, &loaded, &BTreeSet::new())?;
    print_plans(&plans, args.format);
    invalid_plans(&plans, &loaded)?;
    let stale = plans.iter().filter(|p| !p.is_hit()).count();
    if args.exit_code && stale > 0 {
        return Err(Failure::Stale(format!(
            "{stale} of {} arms are not up to date",
            plans.len()
        )));
    }
    Ok(())
}

fn show_command(cache_dir: &Path, args: &ShowArgs) -> Result<(), Failure> {
    let loaded = Loaded::new(&args.manifest)?;
    let cache = Cache::open_read_only(cache_dir)?;
    let keyer = loaded.keyer(&cache)?;
    let plans = plan::plan(&keyer, &loaded.selected()?, &BTreeSet::new())?;
    let reports: Vec<&ArmPlan> = plans.iter().filter(|p| p.kind == "report").collect();
    if reports.is_empty() {
        return Err(Failure::Usage(
            "the manifest has no stage of kind `report`".into(),
        ));
    }
    let mut shown = 0;
    for p in reports {
        match &p.decision {
            Decision::Hit { key, .. } => {
                let entry = cache
                    .lookup(key)?
                    .ok_or_else(|| anyhow::anyhow!("cache entry {key} vanished"))?;
                if shown > 0 {
                    println!();
                }
                print!("{}", crate::report::show(&entry.dir, args.format)?);
                shown += 1;
            }
            _ => eprintln!(
                "`{}` is not up to date: run `apitune run` first (`apitune status` says why)",
                p.arm
            ),
        }
    }
    if shown == 0 {
        Err(Failure::Stale(String::new()))
    } else {
        Ok(())
    }
}

fn check_command(cache_dir: &Path, args: &StatusArgs) -> Result<(), Failure> {
    let loaded = Loaded::new(&args.manifest)?;
    if !loaded.targets.is_empty() {
        return Err(Failure::Usage(
            "check takes the whole manifest; it accepts no targets".into(),
        ));
    }
    let cache = Cache::open_read_only(cache_dir)?;
    let keyer = loaded.keyer(&cache)?;
    let report = crate::pipeline::check::check(&keyer)?;
    invalid_plans(&report.stale, &loaded)?;
    if args.format == Format::Json {
        let out = json!({ "passed": report.passed(), "stale": report.stale, "expectations": report.expectations });
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("plain JSON")
        );
    } else {
        for p in &report.stale {
            let why = match &p.decision {
                Decision::Miss { reason, .. } => reason.clone(),
                Decision::Pending { after } => format!("runs after {}", after.join(", ")),
                _ => String::new(),
            };
            println!("stale   {}  {why}", p.arm);
        }
        for e in &report.expectations {
            let value = e.value.map_or("-".to_string(), |v| format!("{v}"));
            let verdict = if e.ok { "ok" } else { "FAIL" };
            let problem = e
                .problem
                .as_deref()
                .map(|p| format!("  ({p})"))
                .unwrap_or_default();
            println!(
                "{verdict:<6}  {}  = {value}  expected {}{problem}",
                e.target, e.bound
            );
        }
        println!(
            "{}: {} arms stale, {} of {} expectations hold",
            if report.passed() {
                "check passed"
            } else {
                "check FAILED"
            },
            report.stale.len(),
            report.expectations.iter().filter(|e| e.ok).count(),
            report.expectations.len()
        );
    }
    if report.passed() {
        Ok(())
    } else {
        Err(Failure::Stale(String::new()))
    }
}

fn explain_command(cache_dir: &Path, args: &ExplainArgs) -> Result<(), Failure> {
    let loaded = Loaded::new(&args.manifest)?;
    if loaded.targets.is_empty() {
        return Err(Failure::Usage(
            "name the stage or arm to explain: apitune explain [MANIFEST] STAGE".into(),
        ));
    }
    let cache = Cache::open_read_only(cache_dir)?;
    let keyer = loaded.keyer(&cache)?;
    let plans = plan::plan(&keyer, &loaded.selected()?, &BTreeSet::new())?;
    let history = History::load(&cache)?;
    let wanted: BTreeSet<usize> = loaded
        .targets
        .iter()
        .flat_map(|t| {
            loaded
                .dag
                .stage_arms
                .get(t)
                .cloned()
                .or_else(|| loaded.dag.arm_by_name(t).map(|i| vec![i]))
                .unwrap_or_default()
        })
        .collect();
    let mut out = Vec::new();
    for p in plans.iter().filter(|p| wanted.contains(&p.id)) {
        let nearest = match &p.decision {
            Decision::Miss { .. } => {
                // Recompute the key manifest to show every differing field against the nearest entry.
                let digests: HashMap<_, _> = plans
                    .iter()
                    .filter_map(|q| match &q.decision {
                        Decision::Hit { digest, .. } => Some((q.id, *digest)),
                        _ => None,
                    })
                    .collect();
                let km = keyer.key_manifest(p.id, &digests)?;
                history
                    .nearest(&p.arm, &km)
                    .map(|(e, diffs)| (e.key.to_string(), diffs))
            }
            _ => None,
        };
        out.push((p, nearest));
    }
    if args.format == Format::Json {
        let arms: Vec<_> = out
            .iter()
            .map(|(p, nearest)| {
                json!({ "arm": p.arm, "decision": p.decision, "nearest": nearest.as_ref().map(|(k, d)| json!({
                    "key": k,
                    "differences": d.iter().map(|d| json!({"field": d.path, "old": d.old, "new": d.new})).collect::<Vec<_>>(),
                })) })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "arms": arms })).expect("plain JSON")
        );
        return Ok(());
    }
    for (p, nearest) in out {
        match &p.decision {
            Decision::Hit { key, .. } => {
                println!("{}: up to date (key {})", p.arm, short(&key.to_string()))
            }
            Decision::Pending { after } => println!(
                "{}: runs after {} (its key depends on their output)",
                p.arm,
                after.join(", ")
            ),
            Decision::Invalid { error } => println!("{}: cannot be keyed: {error}", p.arm),
            Decision::Miss { key, reason, .. } => {
                println!(
                    "{}: miss (new key {}): {reason}",
                    p.arm,
                    short(&key.to_string())
                );
                if let Some((old_key, diffs)) = nearest {
                    println!(
                        "  nearest cached key {}; differing fields:",
                        short(&old_key)
                    );
                    for d in diffs {
                        let show = |v: &Option<serde_json::Value>| {
                            v.as_ref().map_or("(unset)".into(), |v| v.to_string())
                        };
                        println!("    {}: {} → {}", d.path, show(&d.old), show(&d.new));
                    }
                }
            }
        }
    }
    Ok(())
}

fn run_command(cache_dir: &Path, args: &RunArgs) -> Result<(), Failure> {
    let loaded = Loaded::new(&args.manifest)?;
    let selected = loaded.selected()?;
    let forced: BTreeSet<usize> = if !args.force {
        BTreeSet::new()
    } else if loaded.targets.is_empty() {
        selected.clone()
    } else {
        loaded
            .dag
            .select(&loaded.targets)
            .map_err(Failure::Usage)?
            .into_iter()
            .filter(|id| {
                let arm = &loaded.dag.arms[*id];
                loaded
                    .targets
                    .iter()
                    .any(|t| *t == arm.stage || *t == arm.name)
            })
            .collect()
    };
    let cache = Cache::open(cache_dir)?;
    let keyer = loaded.keyer(&cache)?;
    // Problems a plan can see (a missing input file) are the user's to fix before anything runs.
    invalid_plans(&plan::plan(&keyer, &selected, &forced)?, &loaded)?;
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let opts = RunOptions {
        jobs,
        keep_going: args.keep_going,
        forced,
    };
    let reporter = Reporter::new(args.format == Format::Json);
    let results = scheduler::run(&keyer, &selected, &opts, &reporter);
    reporter.clear();
    if args.format == Format::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "arms": results })).expect("plain JSON")
        );
    } else {
        print_results(&results);
    }
    let failed: Vec<&ArmResult> = results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Failed(_)))
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    let unavailable = failed.iter().all(|r| r.unavailable);
    let details: Vec<String> = failed
        .iter()
        .map(|r| match &r.outcome {
            Outcome::Failed(msg) => format!("error: {msg}"),
            _ => unreachable!(),
        })
        .collect();
    if unavailable {
        return Err(Failure::Unavailable(details.join("\n")));
    }
    Err(Failure::Stage(details.join("\n")))
}

fn print_results(results: &[ArmResult]) {
    let width = results
        .iter()
        .map(|r| r.arm.chars().count())
        .max()
        .unwrap_or(0);
    for r in results {
        let (status, detail) = match &r.outcome {
            Outcome::Hit => ("cached", crate::stages::headline(&r.summary)),
            Outcome::Ran => {
                let secs = match (r.started_unix_ms, r.finished_unix_ms) {
                    (Some(s), Some(f)) => format!("{:>6.1}s  ", (f - s) as f64 / 1000.0),
                    _ => String::new(),
                };
                (
                    "ran",
                    format!("{secs}{}", crate::stages::headline(&r.summary)),
                )
            }
            Outcome::Failed(_) => ("FAILED", String::new()),
            Outcome::Skipped(why) => ("skipped", why.clone()),
        };
        println!(
            "{:<width$}  {:<10}  {:<7}  {detail}",
            r.arm,
            r.kind,
            status,
            width = width.min(NAME_COLUMN)
        );
    }
    let count = |f: fn(&Outcome) -> bool| results.iter().filter(|r| f(&r.outcome)).count();
    println!(
        "{} arms: {} ran, {} cached, {} failed, {} skipped",
        results.len(),
        count(|o| *o == Outcome::Ran),
        count(|o| *o == Outcome::Hit),
        count(|o| matches!(o, Outcome::Failed(_))),
        count(|o| matches!(o, Outcome::Skipped(_)))
    );
}

/// Progress on stderr: a spinner per running arm on a terminal, plain lines otherwise.
struct Reporter {
    quiet: bool,
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Reporter {
    fn new(quiet: bool) -> Reporter {
        let multi = (!quiet && std::io::stderr().is_terminal()).then(MultiProgress::new);
        Reporter {
            quiet,
            multi,
            bars: Mutex::new(HashMap::new()),
        }
    }

    fn clear(&self) {
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
    }
}

impl Events for Reporter {
    fn started(&self, arm: &str) {
        if self.quiet {
            return;
        }
        match &self.multi {
            Some(multi) => {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {prefix} {msg} [{elapsed}]")
                        .expect("valid template"),
                );
                bar.set_prefix(arm.to_string());
                bar.enable_steady_tick(Duration::from_millis(120));
                self.bars
                    .lock()
                    .expect("reporter lock")
                    .insert(arm.to_string(), bar);
            }
            None => eprintln!("running {arm}"),
        }
    }

    fn progress(&self, arm: &str, done: u64, total: Option<u64>, unit: &str) {
        if let Some(bar) = self.bars.lock().expect("reporter lock").get(arm) {
            match total {
                Some(t) => bar.set_message(format!("{done}/{t} {unit}")),
                None => bar.set_message(format!("{done} {unit}")),
            }
        }
    }

    fn finished(&self, result: &ArmResult) {
        if self.quiet {
            return;
        }
        if let Some(bar) = self.bars.lock().expect("reporter lock").remove(&result.arm) {
            bar.finish_and_clear();
        }
        let line = match &result.outcome {
            Outcome::Ran => format!("done    {}", result.arm),
            Outcome::Failed(msg) => format!(
                "FAILED  {}: {}",
                result.arm,
                msg.lines().next().unwrap_or("")
            ),
            _ => return,
        };
        match &self.multi {
            Some(m) => {
                let _ = m.println(line);
            }
            None => eprintln!("{line}"),
        }
    }
}

fn verify_command(cache_dir: &Path, args: &VerifyArgs) -> Result<(), Failure> {
    let cache = Cache::open(cache_dir)?;
    let report = cache.verify(args.repair)?;
    if args.format == Format::Json {
        let quarantined: Vec<_> = report
            .quarantined
            .iter()
            .map(|(k, why)| json!({"key": k.to_string(), "reason": why}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "checked": report.checked, "ok": report.ok, "quarantined": quarantined,
                "reindexed": report.reindexed, "dropped_index": report.dropped_index,
                "memos_damaged": report.memos_damaged.iter().map(|(m, why)| json!({"memo": m, "reason": why})).collect::<Vec<_>>(),
            }))
            .expect("plain JSON")
        );
    } else {
        for (key, why) in &report.quarantined {
            println!("quarantined {}: {why}", short(&key.to_string()));
        }
        for (memo, why) in &report.memos_damaged {
            println!("memo {memo}: {why}; dropped from there, regenerated by the next run");
        }
        println!(
            "{} artifacts checked: {} ok, {} quarantined{}",
            report.checked,
            report.ok,
            report.quarantined.len(),
            if args.repair {
                format!(
                    "; index: {} re-indexed, {} dropped",
                    report.reindexed, report.dropped_index
                )
            } else {
                String::new()
            }
        );
    }
    if report.quarantined.is_empty() && report.memos_damaged.is_empty() {
        Ok(())
    } else {
        Err(Failure::Stale(format!(
            "{} damaged artifacts were moved to quarantine and {} damaged memos cut back; the next run rebuilds them",
            report.quarantined.len(),
            report.memos_damaged.len()
        )))
    }
}

fn gc_command(cache_dir: &Path, args: &GcArgs) -> Result<(), Failure> {
    let manifests = if args.manifests.is_empty() {
        vec![PathBuf::from(DEFAULT_MANIFEST)]
    } else {
        args.manifests.clone()
    };
    let cache = if args.dry_run {
        Cache::open_read_only(cache_dir)?
    } else {
        Cache::open(cache_dir)?
    };
    let mut keep = std::collections::HashSet::new();
    for path in &manifests {
        let loaded = Loaded::from_path(path, &args.set, Vec::new())?;
        let keyer = loaded.keyer(&cache)?;
        for p in plan::plan(&keyer, &loaded.selected()?, &BTreeSet::new())? {
            if let Decision::Hit { key, .. } = p.decision {
                keep.insert(key);
            }
        }
    }
    // Memo directories (eval generations) live as long as an entry that was made from them.
    let live_memos: std::collections::HashSet<String> = cache
        .entries()?
        .iter()
        .filter(|e| keep.contains(&e.key))
        .flat_map(|e| {
            e.meta.summary["memo"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let report = cache.gc(&keep, &live_memos, args.dry_run)?;
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for (what, bytes) in &report.removed {
        println!("{verb} {what} ({})", human_bytes(*bytes));
    }
    println!(
        "{verb} {} items, {}; kept {} entries",
        report.removed.len(),
        human_bytes(report.bytes),
        report.kept
    );
    Ok(())
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
