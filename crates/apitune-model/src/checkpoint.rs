//! Safetensors checkpoints (single file or sharded with `model.safetensors.index.json`) and the
//! weight source the architectures build their parameters from.
//!
//! Files are memory-mapped and each tensor is converted to f32 straight into the tensor the model
//! keeps, so loading never holds a second full copy of the weights in memory.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use memmap2::Mmap;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use safetensors::tensor::{Dtype, Metadata, SafeTensors};

use super::error::{ModelError, Result};

pub const SINGLE_FILE: &str = "model.safetensors";
pub const SHARD_INDEX: &str = "model.safetensors.index.json";

/// One mapped safetensors file and its parsed header.
struct Shard {
    path: PathBuf,
    mmap: Mmap,
    header_len: usize,
    metadata: Metadata,
}

impl Shard {
    fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| ModelError::io(path, e))?;
        // SAFETY: the map is read-only; a file changed underneath while we read it could yield
        // garbage weights, as with any reader, but no memory unsafety in our use of the bytes.
        let mmap = unsafe { Mmap::map(&file) }.map_err(|e| ModelError::io(path, e))?;
        let (header_len, metadata) =
            SafeTensors::read_metadata(&mmap).map_err(|e| ModelError::CorruptWeights {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })?;
        Ok(Self {
            path: path.to_path_buf(),
            mmap,
            header_len,
            metadata,
        })
    }
}

/// The tensors of a model directory, found by name across all its shards.
pub struct Checkpoint {
    dir: PathBuf,
    shards: Vec<Shard>,
    /// tensor name -> index into `shards`
    locations: HashMap<String, usize>,
}

#[derive(serde::Deserialize)]
struct ShardIndex {
    weight_map: BTreeMap<String, String>,
}

impl Checkpoint {
    /// Opens `dir/model.safetensors`, or every shard listed in `dir/model.safetensors.index.json`.
    pub fn open(dir: &Path) -> Result<Self> {
        let index_path = dir.join(SHARD_INDEX);
        let single = dir.join(SINGLE_FILE);
        if index_path.is_file() {
            Self::open_sharded(dir, &index_path)
        } else if single.is_file() {
            let shard = Shard::open(&single)?;
            let locations = shard
                .metadata
                .tensors()
                .into_keys()
                .map(|name| (name, 0))
                .collect();
            Ok(Self {
                dir: dir.to_path_buf(),
                shards: vec![shard],
                locations,
            })
        } else {
            Err(ModelError::NoWeights {
                dir: dir.to_path_buf(),
            })
        }
    }

    fn open_sharded(dir: &Path, index_path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(index_path).map_err(|e| ModelError::io(index_path, e))?;
        let index: ShardIndex = serde_json::from_str(&text).map_err(|error| ModelError::Json {
            path: index_path.to_path_buf(),
            error,
        })?;
        let files: BTreeSet<&String> = index.weight_map.values().collect();
        let mut shards = Vec::with_capacity(files.len());
        let mut shard_of_file = HashMap::new();
        for file in files {
            let shard_path = dir.join(file);
            if !shard_path.is_file() {
                return Err(ModelError::CorruptWeights {
                    path: index_path.to_path_buf(),
                    detail: format!("it lists shard {file:?}, which does not exist"),
                });
            }
            shard_of_file.insert(file.clone(), shards.len());
            shards.push(Shard::open(&shard_path)?);
        }
        let mut locations = HashMap::with_capacity(index.weight_map.len());
        for (name, file) in &index.weight_map {
            let shard = shard_of_file[file];
            if shards[shard].metadata.info(name).is_none() {
                return Err(ModelError::CorruptWeights {
                    path: index_path.to_path_buf(),
                    detail: format!(
                        "it places tensor {name:?} in {file:?}, which does not hold it"
                    ),
                });
            }
            locations.insert(name.clone(), shard);
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            shards,
            locations,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn contains(&self, name: &str) -> bool {
        self.locations.contains_key(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.locations.keys().map(String::as_str)
    }

    /// Reads tensor `name`, checks its shape, converts it to f32 and puts it on `device`.
    pub fn load<const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
        device: &Device,
    ) -> Result<Tensor<D>> {
        let values = self.read_f32(name, &shape)?;
        Ok(Tensor::from_data(TensorData::new(values, shape), device))
    }

    /// Reads matrix `name` stored `[rows, cols]` and returns it transposed, `[cols, rows]`,
    /// laid out contiguously (the transpose happens during the f32 conversion, no extra copy).
    pub fn load_transposed(
        &self,
        name: &str,
        [rows, cols]: [usize; 2],
        device: &Device,
    ) -> Result<Tensor<2>> {
        let values = self.read_f32(name, &[rows, cols])?;
        let mut transposed = vec![0f32; values.len()];
        for (r, row) in values.chunks_exact(cols).enumerate() {
            for (c, &value) in row.iter().enumerate() {
                transposed[c * rows + r] = value;
            }
        }
        drop(values);
        Ok(Tensor::from_data(
            TensorData::new(transposed, [cols, rows]),
            device,
        ))
    }

    fn read_f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let shard =
            &self.shards[*self
                .locations
                .get(name)
                .ok_or_else(|| ModelError::MissingTensor {
                    name: name.to_string(),
                    searched: self.describe_files(),
                })?];
        let info = shard
            .metadata
            .info(name)
            .expect("locations only lists tensors present in their shard header");
        if info.shape != *shape {
            return Err(ModelError::ShapeMismatch {
                path: shard.path.clone(),
                name: name.to_string(),
                expected: shape.to_vec(),
                found: info.shape.clone(),
            });
        }
        let start = 8 + shard.header_len + info.data_offsets.0;
        let end = 8 + shard.header_len + info.data_offsets.1;
        let bytes = &shard.mmap[start..end];
        let values = to_f32(bytes, info.dtype).ok_or_else(|| ModelError::UnsupportedDtype {
            path: shard.path.clone(),
            name: name.to_string(),
            dtype: format!("{:?}", info.dtype),
        })?;
        check_finite(&values, name, &shard.path)?;
        Ok(values)
    }

    fn describe_files(&self) -> String {
        let files: Vec<String> = self
            .shards
            .iter()
            .map(|s| s.path.display().to_string())
            .collect();
        files.join(", ")
    }
}

/// Fails on the first NaN or infinite value of tensor `name` (from `path`): such weights only
/// produce NaN logits, so the file is corrupt.
pub(crate) fn check_finite(values: &[f32], name: &str, path: &Path) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(index) => Err(ModelError::NonFiniteWeights {
            path: path.to_path_buf(),
            name: name.to_string(),
            index,
            value: values[index],
        }),
    }
}

fn to_f32(bytes: &[u8], dtype: Dtype) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("chunk of 8")) as f32)
            .collect(),
        _ => return None,
    })
}

/// How a fresh (random) parameter is initialised.
#[derive(Debug, Clone, Copy)]
pub enum Init {
    /// N(0, std²), HF's `initializer_range` for weights.
    Normal {
        std: f64,
    },
    Zeros,
    Ones,
}

/// How a projection matrix is stored in the checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum WeightLayout {
    /// `[in, out]`: GPT-2's Conv1D; also what burn's `Linear` keeps.
    InOut,
    /// `[out, in]`: `torch.nn.Linear`, used by GPTBigCode and Qwen2.
    OutIn,
}

/// Where parameters come from while an architecture builds itself: random init from a config,
/// or a checkpoint. Architectures ask for tensors by their HF name (without the body prefix such
/// as `transformer.` or `model.`); the checkpoint source accepts names with or without it.
pub struct WeightSource<'a> {
    kind: SourceKind<'a>,
    device: Device,
    used: BTreeSet<String>,
}

enum SourceKind<'a> {
    /// Boxed: the generator state is large next to a reference.
    Random(Box<StdRng>),
    Checkpoint {
        checkpoint: &'a Checkpoint,
        body_prefix: &'static str,
    },
}

impl<'a> WeightSource<'a> {
    /// Random parameters drawn from `seed` on the host, so a seed gives the same weights on
    /// every backend.
    pub fn random(device: &Device, seed: u64) -> Self {
        Self {
            kind: SourceKind::Random(Box::new(StdRng::seed_from_u64(seed))),
            device: device.clone(),
            used: BTreeSet::new(),
        }
    }

    /// Parameters read from `checkpoint`, where the model body's tensors may carry
    /// `body_prefix` (e.g. `transformer.`) or not.
    pub fn checkpoint(
        checkpoint: &'a Checkpoint,
        body_prefix: &'static str,
        device: &Device,
    ) -> Self {
        Self {
            kind: SourceKind::Checkpoint {
                checkpoint,
                body_prefix,
            },
            device: device.clone(),
            used: BTreeSet::new(),
        }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn is_random(&self) -> bool {
        matches!(self.kind, SourceKind::Random(_))
    }

    /// The checkpoint name under which a body tensor is stored, if present.
    fn resolve(&self, name: &str) -> Option<String> {
        let SourceKind::Checkpoint {
            checkpoint,
            body_prefix,
        } = &self.kind
        else {
            return None;
        };
        let prefixed = format!("{body_prefix}{name}");
        [prefixed, name.to_string()]
            .into_iter()
            .find(|candidate| checkpoint.contains(candidate))
    }

    /// Whether the checkpoint holds tensor `name` (always false for random init).
    pub fn contains(&self, name: &str) -> bool {
        self.resolve(name).is_some()
    }

    /// A body tensor of the given shape.
    pub fn tensor<const D: usize>(
        &mut self,
        name: &str,
        shape: [usize; D],
        init: Init,
    ) -> Result<Tensor<D>> {
        match &mut self.kind {
            SourceKind::Random(rng) => Ok(match init {
                Init::Normal { std } => {
                    let values = normal_samples(rng, shape.iter().product(), std);
                    Tensor::from_data(TensorData::new(values, shape), &self.device)
                }
                Init::Zeros => Tensor::zeros(shape, &self.device),
                Init::Ones => Tensor::ones(shape, &self.device),
            }),
            SourceKind::Checkpoint {
                checkpoint,
                body_prefix,
            } => {
                let (checkpoint, body_prefix) = (*checkpoint, *body_prefix);
                let Some(stored) = self.resolve(name) else {
                    return Err(ModelError::MissingTensor {
                        name: format!("{body_prefix}{name}"),
                        searched: checkpoint.describe_files(),
                    });
                };
                let tensor = checkpoint.load(&stored, shape, &self.device)?;
                self.used.insert(stored);
                Ok(tensor)
            }
        }
    }

    /// A projection weight as burn's `Linear` wants it, `[in, out]` and contiguous (burn's
    /// `linear` is several times slower on a transposed view). An `[out, in]` checkpoint tensor
    /// is transposed while it is converted.
    pub fn matrix(
        &mut self,
        name: &str,
        d_in: usize,
        d_out: usize,
        layout: WeightLayout,
        std: f64,
    ) -> Result<Tensor<2>> {
        if self.is_random() || layout == WeightLayout::InOut {
            return self.tensor(name, [d_in, d_out], Init::Normal { std });
        }
        let SourceKind::Checkpoint {
            checkpoint,
            body_prefix,
        } = &self.kind
        else {
            unreachable!("random sources returned above");
        };
        let (checkpoint, body_prefix) = (*checkpoint, *body_prefix);
        let Some(stored) = self.resolve(name) else {
            return Err(ModelError::MissingTensor {
                name: format!("{body_prefix}{name}"),
                searched: checkpoint.describe_files(),
            });
        };
        let tensor = checkpoint.load_transposed(&stored, [d_out, d_in], &self.device)?;
        self.used.insert(stored);
        Ok(tensor)
    }

    /// Checkpoint tensors no module asked for, except buffers HF itself recomputes.
    pub fn unused(&self) -> Vec<String> {
        let SourceKind::Checkpoint { checkpoint, .. } = &self.kind else {
            return Vec::new();
        };
        let mut unused: Vec<String> = checkpoint
            .names()
            .filter(|name| !self.used.contains(*name) && !is_recomputed_buffer(name))
            .map(str::to_string)
            .collect();
        unused.sort();
        unused
    }
}

/// The HF name of child `name` of the module named `path` (`""` is the root): `path.name`.
pub fn child_name(path: &str, name: impl std::fmt::Display) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

/// A [`WeightSource`] seen under a name prefix, as candle's `VarBuilder::pp`: a module names only
/// its own tensors (`weight`, `bias`) and hands each child a scope under the child's name
/// (`h`, `0`, `attn`), so a full name such as `h.0.attn.c_attn.weight` is never written out.
pub struct Weights<'s, 'a> {
    source: &'s mut WeightSource<'a>,
    prefix: String,
}

impl<'a> WeightSource<'a> {
    /// The scope of the whole model body.
    pub fn root(&mut self) -> Weights<'_, 'a> {
        Weights {
            source: self,
            prefix: String::new(),
        }
    }
}

impl<'a> Weights<'_, 'a> {
    /// The scope of child `name` (a field name or a layer index).
    pub fn pp(&mut self, name: impl std::fmt::Display) -> Weights<'_, 'a> {
        Weights {
            prefix: child_name(&self.prefix, name),
            source: self.source,
        }
    }

    fn name(&self, leaf: &str) -> String {
        child_name(&self.prefix, leaf)
    }

    pub fn device(&self) -> &Device {
        self.source.device()
    }

    /// Tensor `leaf` of this scope (see [`WeightSource::tensor`]).
    pub fn tensor<const D: usize>(
        &mut self,
        leaf: &str,
        shape: [usize; D],
        init: Init,
    ) -> Result<Tensor<D>> {
        let name = self.name(leaf);
        self.source.tensor(&name, shape, init)
    }

    /// Projection matrix `leaf` of this scope (see [`WeightSource::matrix`]).
    pub fn matrix(
        &mut self,
        leaf: &str,
        [d_in, d_out]: [usize; 2],
        layout: WeightLayout,
        std: f64,
    ) -> Result<Tensor<2>> {
        let name = self.name(leaf);
        self.source.matrix(&name, d_in, d_out, layout, std)
    }
}

/// Buffers some checkpoints carry that the model derives itself (causal masks, RoPE tables).
fn is_recomputed_buffer(name: &str) -> bool {
    name.ends_with(".attn.bias")
        || name.ends_with(".attn.masked_bias")
        || name.ends_with("rotary_emb.inv_freq")
}

/// `count` draws from N(0, std²) (Box-Muller over the seeded stream).
fn normal_samples(rng: &mut StdRng, count: usize, std: f64) -> Vec<f32> {
    let mut values = Vec::with_capacity(count + 1);
    while values.len() < count {
        let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]: ln stays finite
        let u2: f64 = rng.random();
        let radius = (-2.0 * u1.ln()).sqrt() * std;
        let angle = std::f64::consts::TAU * u2;
        values.push((radius * angle.cos()) as f32);
        values.push((radius * angle.sin()) as f32);
    }
    values.truncate(count);
    values
}
