//! Python's float `sum()` and string-whitespace rules, which the reference tools rely on.
//!
//! The golden fixtures are produced with CPython 3.11, whose `sum()` adds floats left to right
//! without compensation (3.12 switched to Neumaier summation), so averaging here is a plain
//! left-to-right fold to stay bit-identical.

/// `sum(values)` as CPython 3.11 computes it for a list of floats.
pub fn python_sum(values: impl IntoIterator<Item = f64>) -> f64 {
    values.into_iter().fold(0.0, |acc, v| acc + v)
}

/// `sum(values) / len(values)`, 0.0 for an empty input (Python would raise).
pub fn python_mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    python_sum(values.iter().copied()) / values.len() as f64
}

/// `str.isspace()` for one character: Unicode `White_Space` plus the four ASCII information
/// separators U+001C..U+001F, which Python treats as whitespace (bidi class B/S) and Rust does not.
#[inline]
pub fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `s.split()` with no arguments.
pub fn python_split(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_python_space).filter(|t| !t.is_empty())
}

/// `s.strip()` with no arguments.
pub fn python_strip(s: &str) -> &str {
    s.trim_matches(is_python_space)
}

/// `s.rstrip()` with no arguments.
pub fn python_rstrip(s: &str) -> &str {
    s.trim_end_matches(is_python_space)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_are_python_whitespace() {
        assert_eq!(
            python_split("a\u{1c}b\u{a0}c\u{85}d").collect::<Vec<_>>(),
            ["a", "b", "c", "d"]
        );
        assert_eq!(python_strip("\u{1f} x \u{3000}"), "x");
        assert!(!is_python_space('\u{200b}'));
    }
}
