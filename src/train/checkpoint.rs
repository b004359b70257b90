//! Checkpoints of a training run inside the stage's work directory: the trainable tensors (in
//! visit order), the optimizer state, and where the run stands. The data order needs no state of
//! its own: it is a function of the seed and the step, so resuming at step `s` replays the same
//! micro-batches an uninterrupted run would have seen.
//!
//! A checkpoint is written into a sibling directory and renamed into place, so a kill while
//! saving leaves the previous checkpoint intact.

use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::optim::ModuleOptimizer;
use burn::tensor::{Bytes, TensorData};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use super::params::trainable_values;
use crate::artifacts::TrainStep;
use crate::model::CausalLm;

const STATE_FILE: &str = "state.json";
const TENSORS_FILE: &str = "trainable.safetensors";
const OPTIMIZER_FILE: &str = "optimizer.bpk";

/// Where a run stands after its last finished optimizer step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    pub step: u64,
    pub tokens_seen: u64,
    pub seconds: f64,
}

pub fn save(
    dir: &Path,
    state: &TrainState,
    network: &CausalLm,
    optimizer: &ModuleOptimizer,
) -> anyhow::Result<()> {
    let staging = sibling(dir, "saving");
    if staging.exists() {
        std::fs::remove_dir_all(&staging)
            .with_context(|| format!("removing {}", staging.display()))?;
    }
    std::fs::create_dir_all(&staging).with_context(|| format!("creating {}", staging.display()))?;
    let values = trainable_values(network);
    let encoded: Vec<(String, Vec<usize>, Vec<u8>)> = values
        .iter()
        .enumerate()
        .map(|(i, data)| {
            let floats = data
                .try_to_vec::<f32>()
                .map_err(|e| anyhow::anyhow!("trainable tensor {i}: {e:?}"))?;
            Ok((
                i.to_string(),
                data.shape().to_vec(),
                floats.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    let views: Vec<(String, TensorView)> = encoded
        .iter()
        .map(|(name, shape, bytes)| {
            (
                name.clone(),
                TensorView::new(Dtype::F32, shape.clone(), bytes).expect("shape matches"),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &staging.join(TENSORS_FILE))?;
    let optimizer_bytes = optimizer
        .into_bytes()
        .map_err(|e| anyhow::anyhow!("serialising the optimizer state: {e:?}"))?;
    std::fs::write(staging.join(OPTIMIZER_FILE), &*optimizer_bytes)?;
    std::fs::write(
        staging.join(STATE_FILE),
        serde_json::to_string_pretty(state)?,
    )?;
    let old = sibling(dir, "old");
    if dir.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old)?;
        }
        std::fs::rename(dir, &old)?;
    }
    std::fs::rename(&staging, dir)
        .with_context(|| format!("publishing checkpoint {}", dir.display()))?;
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    Ok(())
}

/// The checkpoint in `dir`, if one was completed (falling back to the previous one when a kill
/// hit between the two renames of [`save`]).
pub fn load(dir: &Path) -> anyhow::Result<Option<(TrainState, Vec<TensorData>, Bytes)>> {
    let dir = if dir.join(STATE_FILE).is_file() {
        dir.to_path_buf()
    } else if sibling(dir, "old").join(STATE_FILE).is_file() {
        sibling(dir, "old")
    } else {
        return Ok(None);
    };
    let read = |name: &str| -> anyhow::Result<Vec<u8>> {
        let path = dir.join(name);
        std::fs::read(&path).with_context(|| format!("reading checkpoint file {}", path.display()))
    };
    let state: TrainState =
        serde_json::from_slice(&read(STATE_FILE)?).context("checkpoint state.json")?;
    let tensor_bytes = read(TENSORS_FILE)?;
    let file =
        SafeTensors::deserialize(&tensor_bytes).context("checkpoint trainable.safetensors")?;
    let mut values = Vec::new();
    for i in 0.. {
        let Ok(view) = file.tensor(&i.to_string()) else {
            break;
        };
        let floats: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        values.push(TensorData::new(floats, view.shape().to_vec()));
    }
    let optimizer = Bytes::from_bytes_vec(read(OPTIMIZER_FILE)?);
    Ok(Some((state, values, optimizer)))
}

/// The first `steps` records of a running `metrics.jsonl` (the log may run past the checkpoint).
pub fn read_log(path: &Path, steps: u64) -> anyhow::Result<Vec<TrainStep>> {
    if steps == 0 || !path.is_file() {
        return Ok(Vec::new());
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let records: Vec<TrainStep> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(steps as usize)
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .with_context(|| format!("parsing {}", path.display()))?;
    anyhow::ensure!(
        records.len() as u64 == steps,
        "{} holds fewer steps than its checkpoint",
        path.display()
    );
    Ok(records)
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("checkpoint");
    dir.with_file_name(format!("{name}.{suffix}"))
}
