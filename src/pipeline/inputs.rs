//! Which files a manifest may read: those inside its project (the nearest directory above the
//! manifest that holds `.git`, else the manifest's own directory) and inside the directories it
//! names in `[experiment] inputs_outside`. A manifest from elsewhere cannot make apitune read (and
//! record the hashes and paths of) `/etc/shadow` without saying so.

use std::path::{Path, PathBuf};

use crate::manifest::Manifest;

pub struct InputScope {
    /// Canonical directories inputs may live under; the project first.
    roots: Vec<PathBuf>,
}

impl InputScope {
    pub fn of(manifest: &Manifest) -> InputScope {
        let base = manifest
            .base_dir
            .canonicalize()
            .unwrap_or_else(|_| manifest.base_dir.clone());
        let project = base
            .ancestors()
            .find(|dir| dir.join(".git").exists())
            .unwrap_or(&base)
            .to_path_buf();
        let mut roots = vec![project];
        for extra in &manifest.experiment.inputs_outside {
            let dir = manifest.base_dir.join(extra);
            roots.push(dir.canonicalize().unwrap_or(dir));
        }
        InputScope { roots }
    }

    /// Errors when `path` (after resolving symbolic links) lies outside every allowed directory.
    pub fn check(&self, path: &Path) -> anyhow::Result<()> {
        let real = path
            .canonicalize()
            .map_err(|e| anyhow::anyhow!("cannot resolve input `{}`: {e}", path.display()))?;
        if self.roots.iter().any(|root| real.starts_with(root)) {
            return Ok(());
        }
        anyhow::bail!(
            "input `{}` lies outside the project `{}`; if the manifest should read it, add its \
             directory to `[experiment] inputs_outside`",
            path.display(),
            self.roots[0].display()
        )
    }
}

/// Arms whose existing input files lie outside the manifest's scope, with the error, so that
/// `validate` refuses what `run` would. Inputs that cannot be listed or do not exist yet are left to
/// `plan`, which reports them with the file system's reason.
pub fn arms_reading_outside(manifest: &Manifest, dag: &super::Dag) -> Vec<(usize, String)> {
    let scope = InputScope::of(manifest);
    let ctx = crate::stages::PlanContext::of(manifest, manifest.experiment.backend);
    let mut found = Vec::new();
    for (id, arm) in dag.arms.iter().enumerate() {
        let Ok(files) = arm.kind.input_files(&arm.params, &ctx) else {
            continue;
        };
        if let Some(error) = files
            .iter()
            .filter(|path| path.exists())
            .find_map(|path| scope.check(path).err())
        {
            found.push((id, format!("{error:#}")));
        }
    }
    found
}
