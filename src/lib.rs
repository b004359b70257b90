//! apitune: one TOML manifest in, a reproducible LLM fine-tuning study for API code generation out.
//!
//! The modules read like the pipeline: a [`manifest`] is planned into a DAG by [`pipeline`], whose
//! stages ([`stages`]) exchange artifacts only through the content-addressed [`cache`].

pub mod cache;
pub mod cli;
pub mod data;
pub mod manifest;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod report;
pub mod stages;
pub mod train;
