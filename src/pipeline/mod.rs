//! From manifest to executed stages: the DAG of arms, the plan (hit or miss, and why), and the
//! parallel scheduler.

pub mod check;
pub mod dag;
pub mod inputs;
pub mod plan;
pub mod render;
pub mod scheduler;

pub use dag::{Arm, Dag};
