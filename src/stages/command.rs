//! `command`: runs a shell command as a stage, for steps apitune has no kind for (and for tests that
//! need a stage of known duration). The command writes its artifact into `$APITUNE_OUT`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::Stdio;

use anyhow::Context;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{PlanContext, RunContext, StageKind};
use crate::validate::{Problems, Validate};

pub struct Command;

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandParams {
    /// Run with `sh -c` in the manifest's directory. Environment: `APITUNE_OUT` (write the artifact
    /// here), `APITUNE_WORK` (survives interruption), `APITUNE_SEED`, and `APITUNE_INPUT_<STAGE>`
    /// (upper-case stage name, `-` as `_`) for each input artifact directory.
    pub run: String,
    /// Files or directories the command reads; their content enters the cache key.
    #[serde(default)]
    pub deps: Vec<String>,
    /// Extra environment variables; they enter the cache key.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

impl Validate for CommandParams {
    fn validate(&self, out: &mut Problems) {
        // What the OS cannot pass to a process.
        out.require(!self.run.contains('\0'), "run", |p| {
            format!("{p} must not contain NUL bytes")
        });
        for (i, dep) in self.deps.iter().enumerate() {
            out.require(
                !dep.is_empty() && !dep.contains('\0'),
                &format!("deps.{i}"),
                |p| format!("{p} must be a non-empty path without NUL bytes"),
            );
        }
        for (name, value) in &self.env {
            let ok = !name.is_empty() && !name.contains(['=', '\0']) && !value.contains('\0');
            out.require(ok, &format!("env.{name}"), |_| {
                format!(
                    "environment variable `{}` needs a non-empty name without `=` and no NUL bytes",
                    crate::manifest::shorten(name)
                )
            });
        }
    }
}

impl StageKind for Command {
    const KIND: &'static str = "command";
    const VERSION: u32 = 1;
    type Params = CommandParams;

    fn input_files(params: &CommandParams, ctx: &PlanContext) -> anyhow::Result<Vec<PathBuf>> {
        params
            .deps
            .iter()
            .map(|dep| {
                let path = ctx.base_dir.join(dep);
                anyhow::ensure!(
                    path.exists(),
                    "dependency `{dep}` does not exist (looked for {})",
                    path.display()
                );
                Ok(path)
            })
            .collect()
    }

    fn run(params: &CommandParams, ctx: &RunContext) -> anyhow::Result<serde_json::Value> {
        let log_path = ctx.work_dir.join("command.log");
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-c")
            .arg(&params.run)
            .current_dir(ctx.base_dir)
            .env("APITUNE_OUT", ctx.out_dir)
            .env("APITUNE_WORK", ctx.work_dir)
            .env("APITUNE_SEED", ctx.seed.to_string())
            .envs(&params.env)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        for input in ctx.inputs {
            let var = format!(
                "APITUNE_INPUT_{}",
                input.stage.to_uppercase().replace('-', "_")
            );
            cmd.env(var, &input.dir);
        }
        let started = std::time::Instant::now();
        let status = cmd
            .status()
            .with_context(|| format!("starting `sh -c {}`", params.run))?;
        if !status.success() {
            let mut text = String::new();
            std::fs::File::open(&log_path)?.read_to_string(&mut text)?;
            let tail: Vec<&str> = text.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            anyhow::bail!(
                "command `{}` failed ({status}); last output:\n{}",
                params.run,
                tail.join("\n")
            );
        }
        Ok(serde_json::json!({ "seconds": started.elapsed().as_secs_f64() }))
    }
}
