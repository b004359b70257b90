//! Causal language models on burn: HF checkpoints (GPT-2, GPTBigCode, Qwen2) or random init,
//! tokenizers, generation with a KV cache, and target scoring.
//!
//! Load a model directory with [`Model::load`], then [`generate`] or [`score`]; the CLI entry
//! points are in [`cli`].

pub mod bigcode;
pub mod causal_lm;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod device;
pub mod error;
pub mod export;
pub mod generate;
pub mod gpt2;
pub mod layers;
pub mod lora;
pub mod qwen2;
pub mod sampling;
pub mod score;
pub mod tokenizer;

pub use causal_lm::{CausalLm, Model};
pub use checkpoint::{Checkpoint, WeightSource};
pub use config::{ModelConfig, SpecialTokens};
pub use device::Backend;
pub use error::ModelError;
pub use generate::{FinishReason, Generation, GenerationConfig, TokenGeneration, generate, generate_tokens};
pub use layers::{ForwardInput, KvCache};
pub use sampling::Sampling;
pub use score::{TargetScore, score, score_tokens};
pub use tokenizer::{END_OF_TEXT, load_tokenizer, train_bpe};
