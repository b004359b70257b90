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
