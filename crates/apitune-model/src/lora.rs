//! LoRA: a low-rank side path `y = base(x) + dropout(x) Aᵀ Bᵀ · alpha/r` beside a frozen
//! projection, and adapters in PEFT's format (`adapter_config.json` + `adapter_model.safetensors`).
//!
//! The side path is its own module rather than a rewrite of the base weight (`W + s·A·B`), so the
//! backward pass never forms a dense gradient of the base: the base runs on detached weights and
//! only `A` and `B` require gradients.
//!
//! Tensors are kept in burn's `x · W` orientation: `A` is `[in, r]` and `B` is `[r, out]`. PEFT
//! stores the transposes, `lora_A.weight` `[r, in]` and `lora_B.weight` `[out, r]`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::{DType, Device, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use super::causal_lm::Model;
use super::checkpoint::{WeightLayout, child_name};
use super::error::{ModelError, Result};
use super::matmul_kernel::linear;
use super::registry::{CausalLm, ModelConfig};

pub const ADAPTER_CONFIG_FILE: &str = "adapter_config.json";
pub const ADAPTER_WEIGHTS_FILE: &str = "adapter_model.safetensors";
/// PEFT's prefix in front of the HF module name in adapter tensor keys.
const PEFT_PREFIX: &str = "base_model.model.";
/// The largest LoRA rank accepted (PEFT adapters use 4 to 256; the base's widths cap it anyway).
pub const MAX_LORA_RANK: usize = 65_536;

/// A projection `y = x W + b`, with an optional LoRA side path.
#[derive(Module, Debug)]
pub struct Projection {
    pub base: Linear,
    pub lora: Option<LoraPath>,
}

/// The trainable low-rank factors of one projection.
#[derive(Module, Debug)]
pub struct LoraPath {
    /// `[in, r]`
    pub a: Param<Tensor<2>>,
    /// `[r, out]`
    pub b: Param<Tensor<2>>,
    #[module(skip)]
    pub scale: f64,
    #[module(skip)]
    pub dropout: f64,
    #[module(skip)]
    pub dropout_rng: DropoutRng,
}

/// The host-side generator of dropout masks, shared by every LoRA path of a network.
///
/// Masks come from here rather than the backend's `random`: flex keeps one process-wide RNG,
/// which two training stages running side by side would interleave. The trainer reseeds it per
/// micro-batch ([`seed_dropout`]), so a resumed run draws the same masks as an uninterrupted one.
#[derive(Clone, Debug)]
pub struct DropoutRng(std::sync::Arc<std::sync::Mutex<StdRng>>);

impl Default for DropoutRng {
    fn default() -> Self {
        Self(std::sync::Arc::new(std::sync::Mutex::new(
            StdRng::seed_from_u64(0),
        )))
    }
}

impl DropoutRng {
    /// `x · mask / keep`, the mask Bernoulli(keep), like `torch.nn.Dropout`.
    fn apply<const D: usize>(&self, x: Tensor<D>, keep: f64) -> Tensor<D> {
        let dims = x.dims();
        let scale = (1.0 / keep) as f32;
        let values: Vec<f32> = {
            let mut rng = self
                .0
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            (0..dims.iter().product::<usize>())
                .map(|_| {
                    if rng.random::<f64>() < keep {
                        scale
                    } else {
                        0.0
                    }
                })
                .collect()
        };
        let mask = Tensor::<D>::from_data(TensorData::new(values, dims), &x.device());
        x * mask
    }
}

/// Reseeds the dropout masks of every LoRA path of `network` (no-op without LoRA).
pub fn seed_dropout(network: &mut CausalLm, seed: u64) {
    let shared = DropoutRng(std::sync::Arc::new(std::sync::Mutex::new(
        StdRng::seed_from_u64(seed),
    )));
    for (_, proj) in projections_mut(network) {
        if let Some(path) = proj.lora.as_mut() {
            path.dropout_rng = shared.clone();
        }
    }
}

impl From<Linear> for Projection {
    fn from(base: Linear) -> Self {
        Self { base, lora: None }
    }
}

impl Projection {
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let mut weight = self.base.weight.val();
        let mut bias = self.base.bias.as_ref().map(|b| b.val());
        if self.lora.is_some() {
            // Under an adapter the base is frozen.
            weight = weight.detach();
            bias = bias.map(Tensor::detach);
        }
        if weight.dtype() != DType::F32 {
            // A base stored in bf16 ([`store_base_as`]) is frozen and computes in f32: only its
            // storage shrinks.
            weight = weight.detach().cast(DType::F32);
        }
        let Some(lora) = &self.lora else {
            return linear(x, weight, bias);
        };
        let y = linear(x.clone(), weight, bias);
        let x = if lora.dropout > 0.0 && x.device().is_autodiff() {
            lora.dropout_rng.apply(x, 1.0 - lora.dropout)
        } else {
            x
        };
        // The scale goes on the r×out factor rather than on the N×out product: the same value up
        // to rounding, at a fraction of the work.
        let b = match lora.scale {
            1.0 => lora.b.val(),
            scale => lora.b.val().mul_scalar(scale),
        };
        y + linear(linear(x, lora.a.val(), None), b, None)
    }

    pub fn d_in(&self) -> usize {
        self.base.weight.dims()[0]
    }

    pub fn d_out(&self) -> usize {
        self.base.weight.dims()[1]
    }
}

/// Stores the frozen weight matrix of every projection in `dtype` (bf16 halves the memory of
/// most of a model's weights). They are still computed in f32. Call before [`attach`], which
/// freezes them.
pub fn store_base_as(network: &mut CausalLm, dtype: DType) {
    for (_, proj) in projections_mut(network) {
        let weight = proj.base.weight.val().detach().cast(dtype).detach();
        proj.base.weight = Param::from_tensor(weight);
    }
}

/// PEFT `LoraConfig` fields apitune uses, with PEFT's defaults (r=8, alpha=8, dropout 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct LoraSettings {
    pub r: usize,
    pub alpha: f64,
    pub dropout: f64,
    /// HF module-name suffixes (`c_attn`, `q_proj`, ...); empty means PEFT's default for the architecture.
    pub targets: Vec<String>,
}

/// Every field's default, for serde too (`#[serde(default)]`).
impl Default for LoraSettings {
    fn default() -> Self {
        Self {
            r: 8,
            alpha: 8.0,
            dropout: 0.0,
            targets: Vec::new(),
        }
    }
}

/// PEFT's default target modules for `config`'s architecture.
pub fn default_targets(config: &ModelConfig) -> Vec<String> {
    let names = config.architecture().default_lora_targets();
    names.iter().map(|s| s.to_string()).collect()
}

impl LoraSettings {
    /// Targets with the architecture default filled in.
    pub fn resolved_targets(&self, config: &ModelConfig) -> Vec<String> {
        if self.targets.is_empty() {
            default_targets(config)
        } else {
            self.targets.clone()
        }
    }

    pub fn scale(&self) -> f64 {
        self.alpha / self.r as f64
    }
}

/// PEFT's rule: a module is targeted when its name equals a target or ends with `.target`.
fn is_target(module: &str, targets: &[String]) -> bool {
    targets
        .iter()
        .any(|t| module == t || module.ends_with(&format!(".{t}")))
}

/// A module that holds projections, walked by name as PEFT walks `named_modules()`: each module
/// visits its children under their field names (which mirror HF's), so a projection's full name
/// (`transformer.h.0.attn.c_attn`) is never written out, and targets match it by suffix.
pub trait Projections {
    /// Appends every projection under this module, named `path.child...`.
    fn visit_projections<'m>(&'m mut self, path: &str, out: &mut Vec<(String, &'m mut Projection)>);
}

impl Projections for Projection {
    fn visit_projections<'m>(
        &'m mut self,
        path: &str,
        out: &mut Vec<(String, &'m mut Projection)>,
    ) {
        out.push((path.to_string(), self));
    }
}

impl<T: Projections> Projections for Vec<T> {
    fn visit_projections<'m>(
        &'m mut self,
        path: &str,
        out: &mut Vec<(String, &'m mut Projection)>,
    ) {
        for (i, module) in self.iter_mut().enumerate() {
            module.visit_projections(&child_name(path, i), out);
        }
    }
}

/// Implements [`Projections`] for a module by visiting the listed fields, in order.
macro_rules! projection_fields {
    ($module:ty { $($field:ident),+ $(,)? }) => {
        impl $crate::lora::Projections for $module {
            fn visit_projections<'m>(
                &'m mut self,
                path: &str,
                out: &mut Vec<(String, &'m mut $crate::lora::Projection)>,
            ) {
                $(self.$field.visit_projections(
                    &$crate::checkpoint::child_name(path, stringify!($field)),
                    out,
                );)+
            }
        }
    };
}
pub(crate) use projection_fields;

/// Every projection of the model with its full HF module name (`transformer.h.0.attn.c_attn`).
pub fn projections_mut(network: &mut CausalLm) -> Vec<(String, &mut Projection)> {
    let mut out = Vec::new();
    network.visit_projections("", &mut out);
    out
}

/// Freezes every base parameter and adds fresh LoRA factors to the targeted projections:
/// B zero, A Kaiming-uniform with a = √5 as PEFT (bound = 1/√in), drawn from `seed` on the host.
/// Returns the number of trainable parameters, r·(in+out) summed over the targets.
pub fn attach(
    network: CausalLm,
    settings: &LoraSettings,
    config: &ModelConfig,
    seed: u64,
) -> Result<(CausalLm, u64)> {
    if settings.r == 0 || settings.r > MAX_LORA_RANK {
        return Err(ModelError::InvalidInput(format!(
            "lora: r is {}; expected 1 to {MAX_LORA_RANK}",
            settings.r
        )));
    }
    if !(0.0..1.0).contains(&settings.dropout) {
        return Err(ModelError::InvalidInput(format!(
            "lora: dropout is {}; expected 0 to below 1",
            settings.dropout
        )));
    }
    let targets = settings.resolved_targets(config);
    let mut network = network.no_grad();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut trainable = 0u64;
    let mut matched = 0usize;
    for (name, proj) in projections_mut(&mut network) {
        if !is_target(&name, &targets) {
            continue;
        }
        matched += 1;
        let (d_in, d_out) = (proj.d_in(), proj.d_out());
        let device = proj.base.weight.device();
        let bound = 1.0 / (d_in as f64).sqrt();
        let a: Vec<f32> = (0..d_in * settings.r)
            .map(|_| rng.random_range(-bound..bound) as f32)
            .collect();
        proj.lora = Some(LoraPath {
            a: Param::from_tensor(Tensor::from_data(
                TensorData::new(a, [d_in, settings.r]),
                &device,
            )),
            b: Param::from_tensor(Tensor::zeros([settings.r, d_out], &device)),
            scale: settings.scale(),
            dropout: settings.dropout,
            dropout_rng: DropoutRng::default(),
        });
        trainable += (settings.r * (d_in + d_out)) as u64;
    }
    if matched == 0 {
        return Err(ModelError::InvalidInput(format!(
            "lora: no module of this {} model matches targets {targets:?}; use suffixes such as {:?}",
            config.model_type(),
            default_targets(config)
        )));
    }
    Ok((network, trainable))
}

/// `adapter_config.json`, as PEFT writes and reads it (the fields apitune sets).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdapterConfig {
    pub peft_type: String,
    #[serde(default)]
    pub task_type: Option<String>,
    pub r: usize,
    pub lora_alpha: f64,
    pub lora_dropout: f64,
    pub target_modules: Vec<String>,
    #[serde(default)]
    pub bias: String,
    #[serde(default)]
    pub fan_in_fan_out: bool,
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    #[serde(default)]
    pub inference_mode: bool,
    #[serde(default)]
    pub use_rslora: bool,
    #[serde(default)]
    pub use_dora: bool,
    /// Per-module ranks and alphas; apitune supports only the uniform `r` / `lora_alpha`.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub rank_pattern: serde_json::Map<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub alpha_pattern: serde_json::Map<String, serde_json::Value>,
}

/// Writes the model's LoRA factors as a PEFT adapter into `dir`.
pub fn save_adapter(
    network: &mut CausalLm,
    settings: &LoraSettings,
    config: &ModelConfig,
    dir: &Path,
) -> Result<()> {
    let mut tensors: BTreeMap<String, (Vec<usize>, Vec<u8>)> = BTreeMap::new();
    for (name, proj) in projections_mut(network) {
        let Some(lora) = &proj.lora else { continue };
        // PEFT: lora_A [r, in], lora_B [out, r].
        let a = lora.a.val().transpose().into_data();
        let b = lora.b.val().transpose().into_data();
        tensors.insert(
            format!("{PEFT_PREFIX}{name}.lora_A.weight"),
            (a.shape().to_vec(), f32_bytes(&a)?),
        );
        tensors.insert(
            format!("{PEFT_PREFIX}{name}.lora_B.weight"),
            (b.shape().to_vec(), f32_bytes(&b)?),
        );
    }
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(k, (shape, bytes))| {
            (
                k.clone(),
                TensorView::new(Dtype::F32, shape.clone(), bytes).expect("shape matches the bytes"),
            )
        })
        .collect();
    let mut metadata = std::collections::HashMap::new();
    metadata.insert("format".to_string(), "pt".to_string());
    let path = dir.join(ADAPTER_WEIGHTS_FILE);
    safetensors::serialize_to_file(views, Some(metadata), &path)
        .map_err(|e| ModelError::InvalidInput(format!("writing {}: {e}", path.display())))?;
    let adapter_config = AdapterConfig {
        peft_type: "LORA".into(),
        task_type: Some("CAUSAL_LM".into()),
        r: settings.r,
        lora_alpha: settings.alpha,
        lora_dropout: settings.dropout,
        target_modules: settings.resolved_targets(config),
        bias: "none".into(),
        fan_in_fan_out: config.architecture().weight_layout() == WeightLayout::InOut,
        base_model_name_or_path: None,
        inference_mode: true,
        use_rslora: false,
        use_dora: false,
        rank_pattern: Default::default(),
        alpha_pattern: Default::default(),
    };
    let path = dir.join(ADAPTER_CONFIG_FILE);
    let text = serde_json::to_string_pretty(&adapter_config).expect("plain JSON");
    std::fs::write(&path, text).map_err(|e| ModelError::io(&path, e))
}

fn f32_bytes(data: &TensorData) -> Result<Vec<u8>> {
    let values = data
        .try_to_vec::<f32>()
        .map_err(|e| ModelError::InvalidInput(format!("adapter tensor is not f32: {e:?}")))?;
    Ok(values.iter().flat_map(|v| v.to_le_bytes()).collect())
}

/// Reads `adapter_config.json` of `dir`.
pub fn read_adapter_config(dir: &Path) -> Result<AdapterConfig> {
    let path = dir.join(ADAPTER_CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
    let config: AdapterConfig = serde_json::from_str(&text).map_err(|error| ModelError::Json {
        path: path.clone(),
        error,
    })?;
    if config.peft_type != "LORA" {
        return Err(ModelError::InvalidInput(format!(
            "{}: peft_type {:?} is not LORA",
            path.display(),
            config.peft_type
        )));
    }
    if config.use_rslora
        || config.use_dora
        || !config.rank_pattern.is_empty()
        || !config.alpha_pattern.is_empty()
    {
        return Err(ModelError::InvalidInput(format!(
            "{}: rsLoRA, DoRA and per-module rank/alpha patterns are not supported; use a plain LoRA adapter",
            path.display()
        )));
    }
    if config.r == 0 || config.r > MAX_LORA_RANK {
        let message = format!(
            "{} is out of range; expected 1 to {MAX_LORA_RANK}",
            config.r
        );
        return Err(ModelError::config(&path, "r", message));
    }
    if !(0.0..1.0).contains(&config.lora_dropout) {
        let message = format!(
            "{} is out of range; expected 0 to below 1",
            config.lora_dropout
        );
        return Err(ModelError::config(&path, "lora_dropout", message));
    }
    Ok(config)
}

/// Fails unless every entry of `target_modules` names at least one projection in `modules`
/// (full HF names): an adapter for modules this model lacks was trained for another base.
fn check_targets(config: &AdapterConfig, modules: &[String], config_path: &Path) -> Result<()> {
    for target in &config.target_modules {
        if !modules
            .iter()
            .any(|m| is_target(m, std::slice::from_ref(target)))
        {
            let suffixes: BTreeSet<&str> = modules
                .iter()
                .filter_map(|m| m.rsplit('.').next())
                .collect();
            let suffixes: Vec<&str> = suffixes.into_iter().collect();
            let message = format!(
                "{target:?} names no projection of the base model (its projections: {}); \
                 this adapter was trained for a different base model",
                suffixes.join(", ")
            );
            return Err(ModelError::config(config_path, "target_modules", message));
        }
    }
    Ok(())
}

/// Attaches the PEFT adapter in `adapter_dir` to `network` (frozen), checking that every target
/// module and every adapter tensor names a projection of this model with matching shapes.
pub fn apply_adapter(network: CausalLm, adapter_dir: &Path) -> Result<CausalLm> {
    let config = read_adapter_config(adapter_dir)?;
    let path = adapter_dir.join(ADAPTER_WEIGHTS_FILE);
    let bytes = std::fs::read(&path).map_err(|e| ModelError::io(&path, e))?;
    let file = SafeTensors::deserialize(&bytes).map_err(|e| ModelError::CorruptWeights {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    let mut network = network.no_grad();
    let mut names: Vec<String> = file.names().into_iter().map(str::to_string).collect();
    let mut projections: BTreeMap<String, &mut Projection> =
        projections_mut(&mut network).into_iter().collect();
    let modules: Vec<String> = projections.keys().cloned().collect();
    check_targets(&config, &modules, &adapter_dir.join(ADAPTER_CONFIG_FILE))?;
    let mut applied = 0usize;
    for (name, proj) in projections.iter_mut() {
        let key_a = format!("{PEFT_PREFIX}{name}.lora_A.weight");
        let key_b = format!("{PEFT_PREFIX}{name}.lora_B.weight");
        let (a, b) = match (file.tensor(&key_a), file.tensor(&key_b)) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(_), Err(_)) => continue,
            (Ok(_), Err(_)) => {
                return Err(adapter_mismatch(&path, format!("{key_a} has no {key_b}")));
            }
            (Err(_), Ok(_)) => {
                return Err(adapter_mismatch(&path, format!("{key_b} has no {key_a}")));
            }
        };
        names.retain(|n| n != &key_a && n != &key_b);
        proj.lora = Some(read_lora_pair(
            &config,
            (&a, &key_a),
            (&b, &key_b),
            proj,
            &path,
        )?);
        applied += 1;
    }
    drop(projections);
    if let Some(unknown) = names.first() {
        return Err(adapter_mismatch(
            &path,
            format!("tensor {unknown} names no projection of this model"),
        ));
    }
    if applied == 0 {
        return Err(adapter_mismatch(&path, "no LoRA tensor found".into()));
    }
    Ok(network)
}

fn adapter_mismatch(path: &Path, detail: String) -> ModelError {
    ModelError::CorruptWeights {
        path: path.to_path_buf(),
        detail: format!("{detail}; this adapter was trained for a different base model"),
    }
}

/// The LoRA path of `proj` from PEFT's `lora_A` `[r, in]` and `lora_B` `[out, r]`, shapes checked
/// before anything is read.
fn read_lora_pair(
    config: &AdapterConfig,
    (a, key_a): (&TensorView, &str),
    (b, key_b): (&TensorView, &str),
    proj: &Projection,
    path: &Path,
) -> Result<LoraPath> {
    let (d_in, d_out, r) = (proj.d_in(), proj.d_out(), config.r);
    if a.shape() != [r, d_in] || b.shape() != [d_out, r] {
        return Err(adapter_mismatch(
            path,
            format!(
                "{key_a} is {:?} and {key_b} is {:?}, but the base projection maps {d_in} -> {d_out} (r = {r})",
                a.shape(),
                b.shape()
            ),
        ));
    }
    let device = proj.base.weight.device();
    let a = read_f32(a, key_a, path)?;
    let b = read_f32(b, key_b, path)?;
    // Stored row-major as `attach` makes them, so a loaded adapter computes bit for bit as the
    // one that was saved.
    let a = Tensor::<2>::from_data(TensorData::new(transposed(&a, r, d_in), [d_in, r]), &device);
    let b = Tensor::<2>::from_data(
        TensorData::new(transposed(&b, d_out, r), [r, d_out]),
        &device,
    );
    Ok(LoraPath {
        a: Param::from_tensor(a),
        b: Param::from_tensor(b),
        scale: config.lora_alpha / r as f64,
        dropout: config.lora_dropout,
        dropout_rng: DropoutRng::default(),
    })
}

/// The row-major `cols × rows` transpose of a row-major `rows × cols` matrix.
fn transposed(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols)
        .flat_map(|j| (0..rows).map(move |i| values[i * cols + j]))
        .collect()
}

fn read_f32(view: &TensorView, key: &str, path: &Path) -> Result<Vec<f32>> {
    let data = view.data();
    let values: Vec<f32> = match view.dtype() {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => {
            let detail = format!("{key}: unsupported dtype {other:?}");
            return Err(ModelError::CorruptWeights {
                path: path.to_path_buf(),
                detail,
            });
        }
    };
    super::checkpoint::check_finite(&values, key, path)?;
    Ok(values)
}

/// Loads the HF model in `base_dir` with the PEFT adapter in `adapter_dir` attached.
pub fn load_with_adapter(base_dir: &Path, adapter_dir: &Path, device: &Device) -> Result<Model> {
    let mut model = Model::load(base_dir, device)?;
    model.network = apply_adapter(model.network, adapter_dir)?;
    Ok(model)
}

/// Folds the LoRA factors of every projection into its base weight (`W + s·A·B`) and drops them.
pub fn merge_in_place(network: &mut CausalLm) {
    for (_, proj) in projections_mut(network) {
        if let Some(lora) = proj.lora.take() {
            let delta = lora.a.val().matmul(lora.b.val()).mul_scalar(lora.scale);
            let weight = proj.base.weight.val().detach() + delta;
            proj.base.weight = Param::from_tensor(weight);
        }
    }
}

/// `apitune merge`: writes `base + adapter` as a plain HF model directory into `out_dir`
/// (config, tokenizer and generation config copied from the base).
pub fn merge(base_dir: &Path, adapter_dir: &Path, out_dir: &Path) -> Result<PathBuf> {
    if out_dir
        .canonicalize()
        .is_ok_and(|out| base_dir.canonicalize().is_ok_and(|base| base == out))
    {
        return Err(ModelError::InvalidInput(format!(
            "{}: the output directory is the base model's; merging there would overwrite the weights \
             and copy config.json and tokenizer.json onto themselves (which empties them); choose another --out",
            out_dir.display()
        )));
    }
    let device = Device::flex();
    let mut model = load_with_adapter(base_dir, adapter_dir, &device)?;
    merge_in_place(&mut model.network);
    std::fs::create_dir_all(out_dir).map_err(|e| ModelError::io(out_dir, e))?;
    super::export::save_weights(
        &model.network,
        &model.config,
        &out_dir.join(super::checkpoint::SINGLE_FILE),
    )?;
    for file in [
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        let from = base_dir.join(file);
        if from.is_file() {
            std::fs::copy(&from, out_dir.join(file)).map_err(|e| ModelError::io(&from, e))?;
        }
    }
    Ok(out_dir.to_path_buf())
}
