//! `apitune dag` and `apitune validate`: the DAG of arms, and a manifest check.

use clap::{Args, ValueEnum};

use crate::manifest::ManifestErrors;
use crate::pipeline::render;

use super::{Failure, Loaded, ManifestArgs};

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

pub(super) fn dag_command(args: &DagArgs) -> Result<(), Failure> {
    let loaded = Loaded::new(&args.manifest)?;
    let text = match args.format {
        DagFormat::Ascii => render::ascii(&loaded.dag),
        DagFormat::Dot => render::dot(&loaded.dag),
        DagFormat::Mermaid => render::mermaid(&loaded.dag),
    };
    print!("{text}");
    Ok(())
}

/// Everything `run` would refuse before starting: manifest errors and inputs outside the project.
pub(super) fn validate_command(args: &ManifestArgs) -> Result<(), Failure> {
    let loaded = Loaded::new(args)?;
    let outside = crate::pipeline::inputs::arms_reading_outside(&loaded.manifest, &loaded.dag);
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
