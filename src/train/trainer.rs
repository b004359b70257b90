//! The training loop: micro-batches with gradient accumulation, masked causal-LM loss, global
//! gradient-norm clipping, AdamW (decoupled weight decay) under a warmup schedule, a per-step log,
//! and checkpoints that let an interrupted run continue where it stopped.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ExampleSet;
use super::batches::{Example, epoch_batches};
use super::checkpoint::{self as ckpt, TrainState};
use super::params::{decay_matrices, global_norm, renumber, scale_grads, trainable_count};
use super::schedule::{Schedule, learning_rate, warmup_steps};
use crate::artifacts::{TRAIN_METRICS_FILE, TrainStep};
use crate::model::{CausalLm, ForwardInput};

/// `train = { ... }` of a training stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TrainSettings {
    /// Peak learning rate.
    pub lr: f64,
    /// Passes over the training set (fractions allowed); ignored when `steps` is set.
    pub epochs: f64,
    /// Optimizer steps; overrides `epochs`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<u64>,
    /// Sequences per forward pass.
    pub micro_batch: usize,
    /// Micro-batches per optimizer step.
    pub grad_accum: usize,
    /// Tokens per sequence (prompt + target + EOS); longer sequences are cut and counted.
    pub max_len: usize,
    /// Warmup: a fraction of all steps when below 1 (HF warmup_ratio), else a number of steps.
    pub warmup: f64,
    pub schedule: Schedule,
    /// AdamW's decoupled weight decay, of matrices only: as HF's Trainer, biases and norm
    /// weights are not decayed.
    pub weight_decay: f64,
    /// Clip the global gradient norm to this (0 = no clipping).
    pub clip: f64,
    /// Save a checkpoint every this many optimizer steps (0 = never).
    pub checkpoint_every: u64,
}

/// Every field's default, for serde too (`#[serde(default)]`): what a manifest leaves out.
impl Default for TrainSettings {
    fn default() -> Self {
        Self {
            lr: 2e-4,
            epochs: 1.0,
            steps: None,
            micro_batch: 8,
            grad_accum: 1,
            max_len: 512,
            warmup: 0.0,
            schedule: Schedule::default(),
            weight_decay: 0.0,
            clip: 1.0,
            checkpoint_every: 50,
        }
    }
}

impl TrainSettings {
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.micro_batch > 0, "train.micro_batch must be at least 1");
        anyhow::ensure!(self.grad_accum > 0, "train.grad_accum must be at least 1");
        anyhow::ensure!(self.max_len >= 2, "train.max_len must be at least 2");
        anyhow::ensure!(
            self.lr > 0.0 && self.lr.is_finite(),
            "train.lr must be positive"
        );
        anyhow::ensure!(
            self.steps.is_some() || self.epochs > 0.0,
            "train.epochs must be positive (or set train.steps)"
        );
        anyhow::ensure!(
            self.warmup >= 0.0 && self.weight_decay >= 0.0 && self.clip >= 0.0,
            "train.warmup, weight_decay and clip must not be negative"
        );
        Ok(())
    }

    /// Optimizer steps for `examples` training sequences.
    pub fn total_steps(&self, examples: usize) -> u64 {
        self.steps.unwrap_or_else(|| {
            let micro_per_epoch = examples.div_ceil(self.micro_batch) as f64;
            ((self.epochs * micro_per_epoch) / self.grad_accum as f64)
                .ceil()
                .max(1.0) as u64
        })
    }
}

/// Where and how a run trains.
pub struct TrainRun<'a> {
    pub examples: &'a dyn ExampleSet,
    pub settings: &'a TrainSettings,
    pub seed: u64,
    /// An autodiff device; the network must live on it.
    pub device: &'a Device,
    /// Checkpoints and the running log; a rerun with the same directory resumes.
    pub work_dir: &'a Path,
    pub progress: &'a (dyn Fn(u64, Option<u64>, &str) + Sync),
}

pub struct TrainOutcome {
    pub network: CausalLm,
    pub steps: Vec<TrainStep>,
    pub trainable_params: u64,
    /// Real (non-padding) tokens run through the model.
    pub tokens_seen: u64,
    /// Training time, summed over interrupted attempts.
    pub seconds: f64,
    /// Step the run resumed from (0 for a fresh start).
    pub resumed_from: u64,
    /// Wall-clock seconds of each step this attempt ran, loss read back included (a run fact for
    /// benchmarks and progress, never written into the artifact).
    pub step_seconds: Vec<f64>,
}

/// Trains the parameters of `network` that require gradients.
pub fn train(network: CausalLm, run: &TrainRun) -> anyhow::Result<TrainOutcome> {
    let settings = run.settings;
    settings.validate()?;
    anyhow::ensure!(!run.examples.is_empty(), "no training examples");
    let total = settings.total_steps(run.examples.len());
    let warmup = warmup_steps(settings.warmup, total);
    let checkpoint_dir = run.work_dir.join("checkpoint");
    let (mut network, mut optimizer, mut state) = restore(network, &checkpoint_dir)?;
    let resumed_from = state.step;
    let metrics_path = run.work_dir.join(TRAIN_METRICS_FILE);
    let (mut steps, mut log) = reopen_log(&metrics_path, state.step)?;
    let trainable_params = trainable_count(&network);
    anyhow::ensure!(
        trainable_params > 0,
        "the model has no trainable parameters"
    );
    let mut micro_batches = MicroBatches::new(run);
    let started = Instant::now();
    let seconds_before = state.seconds;
    let mut step_seconds = Vec::new();
    while state.step < total {
        let step_started = Instant::now();
        let batches = micro_batches.of_step(state.step, settings.grad_accum);
        let (grads, loss, step_tokens) =
            accumulate_gradients(&mut network, run, state.step, &batches)?;
        let lr = learning_rate(settings.lr, settings.schedule, state.step, total, warmup);
        let grad_norm;
        (network, grad_norm) = update(network, &mut optimizer, grads, settings, lr);
        state.step += 1;
        state.tokens_seen += step_tokens;
        let seconds = step_started.elapsed().as_secs_f64();
        step_seconds.push(seconds);
        let record = TrainStep {
            step: state.step,
            loss,
            lr,
            grad_norm,
        };
        writeln!(log, "{}", serde_json::to_string(&record)?)?;
        steps.push(record);
        let tokens_per_s = step_tokens as f64 / seconds.max(1e-9);
        (run.progress)(
            state.step,
            Some(total),
            &format!("steps, loss {loss:.3}, {tokens_per_s:.0} tok/s"),
        );
        state.seconds = seconds_before + started.elapsed().as_secs_f64();
        if settings.checkpoint_every > 0
            && state.step % settings.checkpoint_every == 0
            && state.step < total
        {
            log.flush()?;
            ckpt::save(&checkpoint_dir, &state, &network, &optimizer)?;
        }
    }
    Ok(TrainOutcome {
        network,
        steps,
        trainable_params,
        tokens_seen: state.tokens_seen,
        seconds: seconds_before + started.elapsed().as_secs_f64(),
        resumed_from,
        step_seconds,
    })
}

/// AdamW as PEFT's trainer configures it, with the network and optimizer state of the checkpoint
/// in `checkpoint_dir` when there is one.
fn restore(
    network: CausalLm,
    checkpoint_dir: &Path,
) -> anyhow::Result<(CausalLm, ModuleOptimizer, TrainState)> {
    let optimizer = AdamWConfig::new()
        .with_beta_1(0.9)
        .with_beta_2(0.999)
        .with_epsilon(1e-8)
        // Decay is applied in `update`, to matrices only (burn's would reach biases and norms too).
        .with_weight_decay(0.0)
        .init();
    let Some((state, values, optimizer_bytes)) = ckpt::load(checkpoint_dir)? else {
        return Ok((renumber(network, None)?, optimizer, TrainState::default()));
    };
    let network = renumber(network, Some(values))
        .context("resuming from the checkpoint in the work directory")?;
    let optimizer = optimizer
        .from_bytes(optimizer_bytes)
        .map_err(|e| anyhow::anyhow!("reading the optimizer state of the checkpoint: {e:?}"))?;
    Ok((network, optimizer, state))
}

/// The log's steps before `step` (those the checkpoint covers), rewritten into a fresh log that
/// the run appends to.
fn reopen_log(path: &Path, step: u64) -> anyhow::Result<(Vec<TrainStep>, std::fs::File)> {
    let steps = ckpt::read_log(path, step)?;
    let mut log =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    for step in &steps {
        writeln!(log, "{}", serde_json::to_string(step)?)?;
    }
    Ok((steps, log))
}

/// The seeded micro-batches of each epoch, computed when the run reaches it.
struct MicroBatches {
    lengths: Vec<usize>,
    micro_batch: usize,
    seed: u64,
    per_epoch: u64,
    epoch: Option<(u64, Vec<Vec<usize>>)>,
}

impl MicroBatches {
    fn new(run: &TrainRun) -> Self {
        let micro_batch = run.settings.micro_batch;
        Self {
            lengths: (0..run.examples.len())
                .map(|i| run.examples.token_len(i))
                .collect(),
            micro_batch,
            seed: run.seed,
            per_epoch: run.examples.len().div_ceil(micro_batch) as u64,
            epoch: None,
        }
    }

    /// Example indices of micro-batch `m`, counted over the whole run.
    fn at(&mut self, m: u64) -> Vec<usize> {
        let epoch = m / self.per_epoch;
        if self.epoch.as_ref().is_none_or(|(e, _)| *e != epoch) {
            let batches = epoch_batches(&self.lengths, self.micro_batch, self.seed, epoch);
            self.epoch = Some((epoch, batches));
        }
        self.epoch.as_ref().expect("just set").1[(m % self.per_epoch) as usize].clone()
    }

    /// The `grad_accum` micro-batches of optimizer step `step`.
    fn of_step(&mut self, step: u64, grad_accum: usize) -> Vec<Vec<usize>> {
        let grad_accum = grad_accum as u64;
        (0..grad_accum)
            .map(|k| self.at(step * grad_accum + k))
            .collect()
    }
}

/// Gradients of the loss of one optimizer step over its `batches`, the loss (mean NLL per target
/// token over the whole step), and the real tokens run through the model.
fn accumulate_gradients(
    network: &mut CausalLm,
    run: &TrainRun,
    step: u64,
    batches: &[Vec<usize>],
) -> anyhow::Result<(GradientsParams, f64, u64)> {
    let fetched = batches
        .iter()
        .map(|batch| run.examples.fetch(batch))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let step_targets: usize = fetched.iter().flatten().map(Example::target_tokens).sum();
    let mut accumulator = GradientsAccumulator::new();
    let mut loss_sum = 0.0;
    let mut step_tokens = 0u64;
    for (k, batch) in fetched.iter().enumerate() {
        // Dropout masks are a function of (seed, micro-batch), whatever ran before.
        let micro = step * batches.len() as u64 + k as u64;
        crate::model::lora::seed_dropout(
            network,
            run.seed ^ micro.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let rows: Vec<&Example> = batch.iter().collect();
        let nll = batch_nll(network, &rows, run.device);
        let loss = nll.div_scalar(step_targets as f64);
        loss_sum += loss
            .clone()
            .into_data()
            .convert::<f64>()
            .try_into_vec::<f64>()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?[0];
        let grads = GradientsParams::from_grads(loss.backward(), &*network);
        accumulator.accumulate(&*network, grads);
        step_tokens += rows.iter().map(|r| r.tokens.len() as u64).sum::<u64>();
    }
    anyhow::ensure!(
        loss_sum.is_finite(),
        "loss became {loss_sum} at step {}: lower train.lr",
        step + 1
    );
    Ok((accumulator.grads(), loss_sum, step_tokens))
}

/// One optimizer step at learning rate `lr`: global-norm clipping, decoupled weight decay of the
/// matrices, AdamW. Returns the updated network and the gradient norm before clipping.
fn update(
    network: CausalLm,
    optimizer: &mut ModuleOptimizer,
    mut grads: GradientsParams,
    settings: &TrainSettings,
    lr: f64,
) -> (CausalLm, f64) {
    let grad_norm = global_norm(&network, &grads);
    if settings.clip > 0.0 && grad_norm > settings.clip {
        // As torch.nn.utils.clip_grad_norm_.
        scale_grads(&network, &mut grads, settings.clip / (grad_norm + 1e-6));
    }
    let mut network = network;
    if settings.weight_decay > 0.0 {
        network = decay_matrices(network, 1.0 - lr * settings.weight_decay);
    }
    (optimizer.step(lr, network, grads), grad_norm)
}

/// Summed negative log-likelihood of the target tokens of `rows` (right-padded into one batch).
///
/// Only the positions that predict a target token go through the vocabulary projection and the
/// cross-entropy: prompt and padding positions would be multiplied by a zero weight anyway, and
/// those two are the largest tensors of a step.
pub fn batch_nll(network: &CausalLm, rows: &[&Example], device: &Device) -> Tensor<1> {
    let width = rows.iter().map(|r| r.tokens.len()).max().unwrap_or(0);
    let batch = rows.len();
    let mut tokens = Vec::with_capacity(batch);
    let mut valid = Vec::with_capacity(batch);
    let mut scored = Vec::new();
    let mut targets = Vec::new();
    for (b, row) in rows.iter().enumerate() {
        let mut padded = row.tokens.clone();
        padded.resize(width, 0);
        valid.push(
            (0..width)
                .map(|j| j < row.tokens.len())
                .collect::<Vec<bool>>(),
        );
        for t in row.target_start.saturating_sub(1)..row.tokens.len().saturating_sub(1) {
            scored.push((b * width + t) as i64);
            targets.push(row.tokens[t + 1] as i64);
        }
        tokens.push(padded);
    }
    let input = ForwardInput::new(&tokens, &valid, 0, device);
    let hidden = network.forward_hidden(&input, None);
    if scored.is_empty() {
        // Nothing to score; a zero that still belongs to the graph, so backward has a root.
        return hidden.sum() * 0.0;
    }
    network.target_nll(hidden, scored, targets).sum()
}

/// The directory name of checkpoints inside a work directory.
pub fn checkpoint_dir(work_dir: &Path) -> PathBuf {
    work_dir.join("checkpoint")
}
