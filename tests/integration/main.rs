//! The integration tests, one module per area, linked into one binary (one link of the library
//! and burn instead of one per file). `cargo test --test integration MODULE::` runs one area.

mod common;
mod model_support;

#[cfg(unix)]
mod cache_crash;
mod cache_key;
mod cache_store;
mod data_bundled;
mod data_fuzz;
mod data_normalize;
mod data_retrieval;
mod data_sources;
mod eval_stage;
mod lora_adapter;
mod lora_golden;
mod metrics_api;
mod metrics_cli;
mod metrics_golden;
mod metrics_syntax;
mod model_checkpoint_errors;
mod model_cli;
mod model_generate;
mod model_init;
mod model_reference;
#[cfg(feature = "wgpu")]
mod model_wgpu;
mod pipeline_fuzz;
mod pipeline_manifest;
mod pipeline_run;
mod quickstart;
mod remote_cache;
mod report_stage;
mod slurm_executor;
mod train_pipeline;
