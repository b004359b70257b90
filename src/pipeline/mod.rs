//! From manifest to executed stages: the DAG of arms, the plan (hit or miss, and why), the
//! parallel scheduler, and where arms run (this process, or Slurm jobs).

pub mod check;
pub mod dag;
pub mod inputs;
pub mod plan;
pub mod render;
pub mod scheduler;
pub mod schema;
pub mod slurm;

pub use dag::{Arm, Dag};

use std::path::Path;

use crate::manifest::{Manifest, ManifestErrors, manifest_text, read_manifest};

/// Reads a manifest, then builds its DAG, reporting the problems of both at once.
pub fn load(path: &Path, overrides: &[String]) -> Result<(Manifest, Dag), ManifestErrors> {
    load_bytes(path, read_manifest(path)?, overrides)
}

/// Like [`load`], for manifest bytes read from `path`.
pub fn load_bytes(
    path: &Path,
    bytes: Vec<u8>,
    overrides: &[String],
) -> Result<(Manifest, Dag), ManifestErrors> {
    let text = manifest_text(path, bytes)?;
    let (manifest, mut errors) = Manifest::parse_partial(path, &text, overrides)?;
    match Dag::build(&manifest) {
        Ok(dag) if errors.is_empty() => Ok((manifest, dag)),
        Ok(_) => Err(ManifestErrors(errors)),
        Err(ManifestErrors(more)) => {
            errors.extend(more);
            Err(ManifestErrors(errors))
        }
    }
}
