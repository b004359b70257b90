//! Learning-rate schedules, as HF transformers defines them: warmup from 0, then linear or cosine
//! decay to 0 at the last step, or constant.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    #[default]
    Linear,
    Cosine,
    Constant,
}

/// Learning rate of optimizer step `step` (0-based) of `total`, after `warmup` warmup steps.
/// Same factors as `get_{linear,cosine,constant}_schedule_with_warmup`.
pub fn learning_rate(peak: f64, schedule: Schedule, step: u64, total: u64, warmup: u64) -> f64 {
    if step < warmup {
        return peak * step as f64 / warmup.max(1) as f64;
    }
    let progress = (step - warmup) as f64 / total.saturating_sub(warmup).max(1) as f64;
    peak * match schedule {
        Schedule::Linear => (1.0 - progress).max(0.0),
        Schedule::Cosine => (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0),
        Schedule::Constant => 1.0,
    }
}

/// Warmup steps: a fraction of `total` when below 1 (HF `warmup_ratio`, rounded up), else a count.
pub fn warmup_steps(warmup: f64, total: u64) -> u64 {
    if warmup < 1.0 {
        (warmup * total as f64).ceil() as u64
    } else {
        warmup as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_warmup_then_decay() {
        assert_eq!(learning_rate(1.0, Schedule::Linear, 0, 10, 2), 0.0);
        assert_eq!(learning_rate(1.0, Schedule::Linear, 1, 10, 2), 0.5);
        assert_eq!(learning_rate(1.0, Schedule::Linear, 2, 10, 2), 1.0);
        assert_eq!(learning_rate(1.0, Schedule::Linear, 6, 10, 2), 0.5);
        assert!((learning_rate(1.0, Schedule::Cosine, 6, 10, 2) - 0.5).abs() < 1e-12);
        assert_eq!(learning_rate(1.0, Schedule::Constant, 9, 10, 2), 1.0);
        assert_eq!(warmup_steps(0.03, 100), 3);
        assert_eq!(warmup_steps(5.0, 100), 5);
    }
}
