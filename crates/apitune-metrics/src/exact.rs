//! Exact match: the study's `pred.strip() == gold.strip()`, and a variant that ignores all
//! whitespace (formatting differences such as CRLF or re-indentation).

use super::pysum::{is_python_space, python_strip};

/// `prediction.strip() == reference.strip()` with Python's whitespace set.
pub fn exact_match(prediction: &str, reference: &str) -> bool {
    python_strip(prediction) == python_strip(reference)
}

/// Equal after deleting every whitespace character.
pub fn exact_match_ignoring_whitespace(prediction: &str, reference: &str) -> bool {
    fn strip(s: &str) -> impl Iterator<Item = char> + '_ {
        s.chars().filter(|&c| !is_python_space(c))
    }
    strip(prediction).eq(strip(reference))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_and_whitespace_insensitive() {
        assert!(exact_match("  curl x\n", "curl x"));
        assert!(!exact_match("curl  x", "curl x"));
        assert!(exact_match_ignoring_whitespace("a =\r\n 1", "a=1"));
        assert!(!exact_match_ignoring_whitespace("a=1", "a=2"));
        assert!(exact_match("", " \n"));
    }
}
