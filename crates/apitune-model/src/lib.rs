//! Causal language models on burn: HF checkpoints (GPT-2, GPTBigCode, Qwen2) or random init,
//! tokenizers, generation with a KV cache, and target scoring.
//!
//! Load a model directory with [`Model::load`] (or build one with [`Model::random`] and a
//! tokenizer from [`train_bpe`]), then [`generate`] or [`score`]; the CLI entry points are in
//! [`cli`]. Lower-level pieces for training: [`CausalLm`] (a burn `Module`; field paths mirror
//! HF tensor names, e.g. `transformer.h.0.attn.c_attn`) with [`ForwardInput`] and [`KvCache`].
//!
//! Backends ([`Backend`]): flex, burn's pure-Rust CPU backend, is always built; the default
//! `avx512` feature compiles gemm's AVX-512 kernels, which gemm selects at run time only on CPUs
//! that report avx512f (others use the AVX2/FMA or scalar kernels). `wgpu` and `cuda` are cargo
//! features; `cuda` cannot build without network access to GitHub (cubecl-llvm downloads LLVM).

pub mod attention_kernel;
pub mod causal_lm;
pub mod checkpoint;
pub mod config;
pub mod device;
pub mod error;
pub mod export;
pub mod generate;
pub mod gpt2;
pub mod kernels;
pub mod layers;
pub mod lora;
pub mod matmul_kernel;
pub mod norm_kernel;
pub mod qwen2;
pub mod registry;
pub mod sampling;
pub mod score;
pub mod tokenizer;

pub use causal_lm::{CausalLm, Model};
pub use checkpoint::{Checkpoint, WeightSource, Weights};
pub use config::{ModelConfig, SpecialTokens};
pub use device::Backend;
pub use error::ModelError;
pub use generate::{
    FinishReason, Generation, GenerationConfig, TokenGeneration, generate, generate_from_ids,
    generate_tokens,
};
pub use layers::{ForwardInput, KvCache};
pub use sampling::Sampling;
pub use score::{TargetScore, score, score_tokens};
pub use tokenizer::{END_OF_TEXT, load_tokenizer, train_bpe};
