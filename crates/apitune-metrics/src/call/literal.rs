//! String-literal escapes, decoded the way the languages do for the escapes snippets use.

use std::iter::Peekable;
use std::str::Chars;

/// How a language treats a backslash before a character it gives no meaning.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Unknown {
    /// JavaScript, Ruby, Go, Java, C: the character alone (the last three reject or warn, and
    /// dropping the backslash is what a reader of the snippet expects).
    Drop,
    /// PHP, Swift: the backslash stays, which also keeps Swift's `\(expr)` interpolation and
    /// PHP's `\'` in double quotes as written.
    Keep,
}

/// The value of a double-quoted-style literal's body: `\n \t \r \0 \b \f \v \\ \" \' \$ \xHH \uXXXX
/// \u{X…}` and octal `\NNN` decoded, a backslash-newline removed.
pub(super) fn unescape(body: &str, unknown: Unknown) -> String {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(next) = chars.next() else {
            out.push('\\');
            break;
        };
        match next {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'v' => out.push('\u{b}'),
            // `\$` only matters to PHP, Ruby and JS, where it is a `$`.
            '\\' | '"' | '$' => out.push(next),
            '\'' if unknown == Unknown::Drop => out.push('\''),
            '\n' => {}
            '0'..='7' => {
                let mut value = next.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    match chars.peek().and_then(|d| d.to_digit(8)) {
                        Some(digit) => {
                            value = value * 8 + digit;
                            chars.next();
                        }
                        None => break,
                    }
                }
                out.extend(char::from_u32(value));
            }
            'x' => match hex_digits(&mut chars, 1, 2) {
                Some(value) => out.extend(char::from_u32(value)),
                None => keep_or_drop(&mut out, next, unknown),
            },
            'u' if chars.peek() == Some(&'{') => {
                chars.next();
                let mut digits = String::new();
                while let Some(&d) = chars.peek() {
                    chars.next();
                    if d == '}' {
                        break;
                    }
                    digits.push(d);
                }
                let value = u32::from_str_radix(&digits, 16).ok();
                out.push(value.and_then(char::from_u32).unwrap_or('\u{fffd}'));
            }
            'u' => match hex_digits(&mut chars, 4, 4) {
                Some(value) => out.push(char::from_u32(value).unwrap_or('\u{fffd}')),
                None => keep_or_drop(&mut out, next, unknown),
            },
            other => keep_or_drop(&mut out, other, unknown),
        }
    }
    out
}

/// The value of a single-quoted Ruby or PHP literal's body: only `\\` and `\'` are escapes.
pub(super) fn unescape_single_quoted(body: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('\\', Some('\\' | '\'')) => out.extend(chars.next()),
            _ => out.push(c),
        }
    }
    out
}

/// `text` without its opening and closing quotes; a literal cut off by truncation has no closing
/// one.
pub(super) fn strip_quotes<'a>(text: &'a str, open: &str, close: &str) -> &'a str {
    let inner = text.strip_prefix(open).unwrap_or(text);
    inner.strip_suffix(close).unwrap_or(inner)
}

/// The value of `min..=max` hex digits ahead, consumed only when there are enough.
fn hex_digits(chars: &mut Peekable<Chars>, min: usize, max: usize) -> Option<u32> {
    let digits: Vec<u32> = chars
        .clone()
        .map_while(|d| d.to_digit(16))
        .take(max)
        .collect();
    if digits.len() < min {
        return None;
    }
    for _ in 0..digits.len() {
        chars.next();
    }
    Some(digits.iter().fold(0, |value, digit| value * 16 + digit))
}

fn keep_or_drop(out: &mut String, c: char, unknown: Unknown) {
    if unknown == Unknown::Keep {
        out.push('\\');
    }
    out.push(c);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_escapes_decode_in_every_language() {
        for unknown in [Unknown::Drop, Unknown::Keep] {
            assert_eq!(
                unescape(r#"a\"b\\c\nd\te\u00e9\x41\101\u{1F600}"#, unknown),
                "a\"b\\c\nd\te\u{e9}AA\u{1F600}"
            );
        }
    }

    #[test]
    fn unknown_escapes_follow_the_language() {
        assert_eq!(unescape(r"\$x \/ \' \(y)", Unknown::Drop), "$x / ' (y)");
        assert_eq!(unescape(r"\$x \/ \' \(y)", Unknown::Keep), r"$x \/ \' \(y)");
        assert_eq!(unescape(r"trailing\", Unknown::Drop), "trailing\\");
        assert_eq!(unescape(r"\u{zz} \u12", Unknown::Drop), "\u{fffd} u12");
    }

    #[test]
    fn single_quotes_know_two_escapes() {
        assert_eq!(unescape_single_quoted(r"it\'s a\\b \n"), r"it's a\b \n");
    }

    #[test]
    fn quotes_are_stripped_even_when_the_closing_one_is_missing() {
        assert_eq!(strip_quotes("\"abc\"", "\"", "\""), "abc");
        assert_eq!(strip_quotes("\"abc", "\"", "\""), "abc");
        assert_eq!(strip_quotes("\"", "\"", "\""), "");
    }
}
