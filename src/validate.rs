//! Range checks of stage params: every numeric param has a valid range, checked when the
//! manifest is read (so `validate` fails where `run` would, before anything runs). Params types
//! implement [`Validate`]; each problem is a `(field path, message)` pair that the manifest turns
//! into a located error.

use std::fmt::Display;

/// Most passes over the training set (`train.epochs`).
pub const MAX_EPOCHS: f64 = 10_000.0;
/// Most optimizer steps (`train.steps`, and `train.warmup` as a step count).
pub const MAX_STEPS: u64 = 10_000_000;
/// Most sequences per forward pass, prompts per generation batch, micro-batches per step.
pub const MAX_BATCH: u64 = 65_536;
/// Longest sequence in tokens (`train.max_len`, `decoding.max_new_tokens`): a model's positions.
pub const MAX_POSITIONS: u64 = crate::model::config::MAX_POSITIONS as u64;
/// Most records a count may name (`samples`, `limit`, held-out level sizes).
pub const MAX_RECORDS: u64 = 1_000_000_000;
/// Largest LoRA rank.
pub const MAX_LORA_RANK: u64 = 4096;
/// Largest vocabulary of a model or tokenizer (`decoding.top_k`).
pub const MAX_VOCAB: u64 = crate::model::config::MAX_VOCAB as u64;

/// Params with ranges beyond what their types say.
pub trait Validate {
    /// Adds every out-of-range value to `out`.
    fn validate(&self, out: &mut Problems);
}

/// An unsigned integer param.
pub trait Count: Copy + Display {
    fn count(self) -> u64;
}

impl Count for usize {
    fn count(self) -> u64 {
        self as u64
    }
}

impl Count for u64 {
    fn count(self) -> u64 {
        self
    }
}

/// Problems found by [`Validate`]: `(dotted field path, message)`, in field order.
#[derive(Debug, Default)]
pub struct Problems {
    prefix: String,
    list: Vec<(String, String)>,
}

impl Problems {
    pub fn new() -> Problems {
        Problems::default()
    }

    pub fn into_vec(self) -> Vec<(String, String)> {
        self.list
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Checks the fields of a nested value, whose paths get `field.` in front.
    pub fn nested(&mut self, field: &str, value: &impl Validate) {
        let path = self.path(field);
        let saved = std::mem::replace(&mut self.prefix, path);
        value.validate(self);
        self.prefix = saved;
    }

    fn path(&self, field: &str) -> String {
        if self.prefix.is_empty() {
            field.to_string()
        } else {
            format!("{}.{field}", self.prefix)
        }
    }

    /// Records a problem with `field` unless `ok`.
    pub fn require(&mut self, ok: bool, field: &str, message: impl FnOnce(&str) -> String) {
        if !ok {
            let path = self.path(field);
            let message = message(&path);
            self.list.push((path, message));
        }
    }

    /// An integer in `min..=max`.
    pub fn int<T: Count>(&mut self, field: &str, value: T, min: u64, max: u64) {
        let v = value.count();
        self.require(v >= min && v <= max, field, |p| {
            format!("{p} must be between {min} and {max}, got {value}")
        });
    }

    /// An optional integer in `min..=max` when set.
    pub fn opt_int<T: Count>(&mut self, field: &str, value: Option<T>, min: u64, max: u64) {
        if let Some(v) = value {
            self.int(field, v, min, max);
        }
    }

    /// A finite number in `min..=max`, or `min..max` when `max_open`, or `(min, ..` when `min_open`.
    pub fn float(
        &mut self,
        field: &str,
        value: f64,
        (min, min_open): (f64, bool),
        (max, max_open): (f64, bool),
    ) {
        let above = if min_open { value > min } else { value >= min };
        let below = if max_open { value < max } else { value <= max };
        let range = format!(
            "{}{min}, {max}{}",
            if min_open { "(" } else { "[" },
            if max_open { ")" } else { "]" }
        );
        self.require(value.is_finite() && above && below, field, |p| {
            format!("{p} must be a finite number in {range}, got {value}")
        });
    }

    /// A finite number > 0 and at most `max`.
    pub fn positive(&mut self, field: &str, value: f64, max: f64) {
        self.require(
            value.is_finite() && value > 0.0 && value <= max,
            field,
            |p| format!("{p} must be a finite number > 0 and at most {max}, got {value}"),
        );
    }

    /// A list that must not be empty (when set), of non-empty strings without NUL bytes.
    pub fn names(&mut self, field: &str, values: &[String], what: &str) {
        self.require(!values.is_empty(), field, |p| {
            format!("{p} must list at least one {what}")
        });
        if let Some(i) = values.iter().position(|v| v.is_empty() || v.contains('\0')) {
            self.require(false, &format!("{field}.{i}"), |p| {
                format!("{p}: a {what} must be a non-empty string without NUL bytes")
            });
        }
    }
}

/// Checks `value` and returns its problems.
pub fn problems_of(value: &impl Validate) -> Vec<(String, String)> {
    let mut out = Problems::new();
    value.validate(&mut out);
    out.into_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct T {
        n: usize,
        x: f64,
        inner: Option<Inner>,
    }
    struct Inner(u64);
    impl Validate for Inner {
        fn validate(&self, out: &mut Problems) {
            out.int("k", self.0, 1, 3);
        }
    }
    impl Validate for T {
        fn validate(&self, out: &mut Problems) {
            out.int("n", self.n, 1, 10);
            out.float("x", self.x, (0.0, false), (1.0, true));
            if let Some(i) = &self.inner {
                out.nested("inner", i);
            }
        }
    }

    #[test]
    fn problems_name_the_field_and_the_range() {
        let p = problems_of(&T {
            n: 0,
            x: f64::NAN,
            inner: Some(Inner(9)),
        });
        assert_eq!(
            p[0],
            ("n".into(), "n must be between 1 and 10, got 0".into())
        );
        assert_eq!(
            p[1],
            (
                "x".into(),
                "x must be a finite number in [0, 1), got NaN".into()
            )
        );
        assert_eq!(
            p[2],
            (
                "inner.k".into(),
                "inner.k must be between 1 and 3, got 9".into()
            )
        );
        assert!(
            problems_of(&T {
                n: 1,
                x: 0.5,
                inner: None
            })
            .is_empty()
        );
    }
}
