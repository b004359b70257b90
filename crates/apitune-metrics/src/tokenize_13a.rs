//! The `13a` tokenizer of sacreBLEU (mteval-v13a), shared by sacreBLEU and HF `evaluate` BLEU.
//!
//! sacreBLEU applies four regex substitutions in sequence. Each pattern is a fixed one- or
//! two-character class sequence, so Python's leftmost, non-overlapping `re.sub` is reproduced by a
//! single left-to-right byte scan per rule: on a match emit the replacement and skip both
//! characters, otherwise copy one byte. Working on UTF-8 bytes is equivalent to working on code
//! points here because the only classes a non-ASCII character can satisfy are the negated
//! `[^0-9]` ones, and spaces are only ever inserted next to ASCII bytes.

use std::borrow::Cow;

use super::pysum::python_split;

/// Characters sacreBLEU pads with spaces: `[\{-\~\[-\` -\&\(-\+\:-\@\/]`.
#[inline]
fn is_padded_symbol(b: u8) -> bool {
    matches!(b, b'{'..=b'~' | b'['..=b'`' | b' '..=b'&' | b'('..=b'+' | b':'..=b'@' | b'/')
}

#[inline]
fn is_period_or_comma(b: u8) -> bool {
    b == b'.' || b == b','
}

/// Tokenizes one line exactly like `sacrebleu.tokenizers.tokenizer_13a.Tokenizer13a` and returns
/// the tokens (sacreBLEU joins them with single spaces and splits again, which is the same).
/// The caller applies sacreBLEU's `rstrip()` where the metric requires it.
pub fn tokenize_13a(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    tokenize_13a_into(line, &mut String::new(), &mut out);
    out
}

/// Like [`tokenize_13a`], reusing `scratch` and appending owned tokens to `tokens`.
pub fn tokenize_13a_into(line: &str, scratch: &mut String, tokens: &mut Vec<String>) {
    let normalized = normalize(line);
    let padded = apply_rules(&normalized, scratch);
    tokens.extend(python_split(padded).map(str::to_owned));
}

/// Returns the padded and split text as one string whose whitespace-separated parts are the
/// tokens; the fast path for callers that intern tokens themselves.
pub fn tokenize_13a_spaced<'s>(line: &str, scratch: &'s mut String) -> &'s str {
    let normalized = normalize(line);
    apply_rules(&normalized, scratch)
}

fn normalize(line: &str) -> Cow<'_, str> {
    if !line.contains(['<', '\n', '&']) {
        return Cow::Borrowed(line);
    }
    let mut text = line
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if text.contains('&') {
        text = text
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    Cow::Owned(text)
}

fn apply_rules<'s>(text: &str, scratch: &'s mut String) -> &'s str {
    let mut a: Vec<u8> = Vec::with_capacity(text.len() * 2 + 2);
    a.push(b' ');
    for &b in text.as_bytes() {
        if is_padded_symbol(b) {
            a.extend_from_slice(&[b' ', b, b' ']);
        } else {
            a.push(b);
        }
    }
    a.push(b' ');
    // ([^0-9])([\.,]) -> "\1 \2 "
    let b = scan_pairs(
        &a,
        |x, y| !x.is_ascii_digit() && is_period_or_comma(y),
        |out, x, y| {
            out.extend_from_slice(&[x, b' ', y, b' ']);
        },
    );
    // ([\.,])([^0-9]) -> " \1 \2"
    let c = scan_pairs(
        &b,
        |x, y| is_period_or_comma(x) && !y.is_ascii_digit(),
        |out, x, y| {
            out.extend_from_slice(&[b' ', x, b' ', y]);
        },
    );
    // ([0-9])(-) -> "\1 \2 "
    let d = scan_pairs(
        &c,
        |x, y| x.is_ascii_digit() && y == b'-',
        |out, x, y| {
            out.extend_from_slice(&[x, b' ', y, b' ']);
        },
    );
    scratch.clear();
    // The rules only insert ASCII spaces at character boundaries (see module docs).
    scratch.push_str(std::str::from_utf8(&d).expect("13a rules keep UTF-8 boundaries"));
    scratch.as_str()
}

fn scan_pairs(
    input: &[u8],
    is_match: impl Fn(u8, u8) -> bool,
    replace: impl Fn(&mut Vec<u8>, u8, u8),
) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 4 + 4);
    let mut i = 0;
    while i < input.len() {
        if i + 1 < input.len() && is_match(input[i], input[i + 1]) {
            replace(&mut out, input[i], input[i + 1]);
            i += 2;
        } else {
            out.push(input[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_punctuation_but_keeps_numbers() {
        assert_eq!(
            tokenize_13a("Hello, world. 3.14 and 1,000 -- 5-6 x-y a.b"),
            [
                "Hello", ",", "world", ".", "3.14", "and", "1,000", "--", "5", "-", "6", "x-y",
                "a", ".", "b"
            ]
        );
    }

    #[test]
    fn unescapes_entities_and_joins_hyphenated_line_breaks() {
        assert_eq!(
            tokenize_13a("a &amp; b &quot;c&quot; hy-\nphen\nx"),
            ["a", "&", "b", "\"", "c", "\"", "hyphen", "x"]
        );
    }

    #[test]
    fn non_overlapping_matches_like_python_re_sub() {
        // "a.," : rule 2 consumes "a.", leaving ",b" for rule 3.
        assert_eq!(tokenize_13a("a.,b"), ["a", ".", ",", "b"]);
        assert_eq!(tokenize_13a("é.ü"), ["é", ".", "ü"]);
    }
}
