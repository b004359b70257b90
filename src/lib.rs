//! apitune: one TOML manifest in, a reproducible LLM fine-tuning study for API code generation out.
//!
//! The modules read like the pipeline: a [`manifest`] is planned into a DAG by [`pipeline`], whose
//! stages ([`stages`]) exchange artifacts only through the content-addressed [`cache`], in the
//! file formats [`artifacts`] defines.
//!
//! This crate is the application layer. The layers below it are crates of their own, re-exported
//! here under their module names: [`cache`], [`data`], [`metrics`] and [`model`].

pub use apitune_cache as cache;
pub use apitune_data as data;
pub use apitune_metrics as metrics;
pub use apitune_model as model;

pub mod artifacts;
pub mod cli;
pub mod manifest;
pub mod pipeline;
pub mod report;
pub mod stages;
pub mod train;
pub mod validate;

/// Keeps tensor-sized blocks in the heap. glibc hands freed blocks above its adaptive mmap
/// threshold back to the OS, and burn allocates and frees such blocks in every op, so each step
/// faulted its pages in again: 5-10% of a LoRA training step in `perf`, +17-20% tokens/s when
/// tuned. Call once at the start of `main`, before other threads exist.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any other thread runs.
    unsafe {
        // 32 MiB is glibc's largest mmap threshold on 64-bit; larger blocks are still mapped.
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

/// Restores the default action of SIGPIPE, which Rust ignores: `apitune show | head` then ends
/// quietly when `head` exits, as Unix tools do, instead of panicking in `println!` on EPIPE.
pub fn quiet_on_closed_pipe() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: resets one signal's disposition; called at the start of `main`, before other threads.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
