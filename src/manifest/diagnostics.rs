//! Manifest errors that point at the place to fix: `file:line:col`, or the `-S` override that
//! caused them, with a did-you-mean for misspelt names.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Where a problem is.
#[derive(Clone, Debug, PartialEq)]
pub enum Origin {
    File {
        path: PathBuf,
        line: usize,
        col: usize,
    },
    /// A `-S path=value` command-line override.
    Override(String),
    /// No better place is known than the file itself.
    Whole(PathBuf),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub origin: Origin,
    pub message: String,
    pub help: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::File { path, line, col } => write!(f, "{}:{line}:{col}: ", path.display())?,
            Origin::Override(arg) => write!(f, "-S {arg}: ")?,
            Origin::Whole(path) => write!(f, "{}: ", path.display())?,
        }
        write!(f, "{}", self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// Every problem found in a manifest; `validate` shows them all at once.
#[derive(Debug)]
pub struct ManifestErrors(pub Vec<Diagnostic>);

impl fmt::Display for ManifestErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "error: {d}")?;
        }
        if self.0.len() > 1 {
            write!(f, "\n{} errors", self.0.len())?;
        }
        Ok(())
    }
}

impl std::error::Error for ManifestErrors {}

/// Maps key paths of a manifest to positions in its text.
pub struct SourceMap {
    path: PathBuf,
    text: String,
    /// Byte offset of the start of each line, so a position costs a binary search.
    line_starts: Vec<usize>,
    doc: Option<toml_edit::Document<String>>,
}

impl SourceMap {
    pub fn new(path: &Path, text: &str) -> SourceMap {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        let doc = toml_edit::Document::parse(text.to_string()).ok();
        SourceMap {
            path: path.to_path_buf(),
            text: text.to_string(),
            line_starts,
            doc,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `file:line:col` of a byte offset (1-based; columns count characters).
    pub fn at_offset(&self, offset: usize) -> Origin {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let col = self.text[self.line_starts[line - 1]..offset]
            .chars()
            .count()
            + 1;
        Origin::File {
            path: self.path.clone(),
            line,
            col,
        }
    }

    /// Position of the deepest existing item along `path`; the key itself when `want_key`. The
    /// start of the file when not even the first key is found.
    pub fn locate(&self, path: &[String], want_key: bool) -> Origin {
        let span = self
            .doc
            .as_ref()
            .and_then(|doc| span_of(doc.as_item(), path, want_key));
        self.at_offset(span.map_or(0, |s| s.start))
    }
}

/// `file:line:col` of a byte offset into `text`, without building a [`SourceMap`].
pub fn origin_at(path: &Path, text: &str, offset: usize) -> Origin {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Origin::File {
        path: path.to_path_buf(),
        line,
        col,
    }
}

/// Segments a dotted key may have before the TOML parser gives up (its recursion limit).
const TOML_KEY_DEPTH: usize = 80;

/// Byte offset of the first dotted key deeper than the TOML parser accepts: its error for such a
/// key carries no position. A heuristic scan (strings and comments skipped), used only then.
pub fn deep_key_offset(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let (mut i, mut start, mut dots) = (0, None, 0);
    while i < bytes.len() {
        match bytes[i] {
            q @ (b'"' | b'\'') => {
                start = start.or(Some(i));
                i += 1;
                while i < bytes.len() && bytes[i] != q && bytes[i] != b'\n' {
                    i += if q == b'"' && bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'.' if start.is_some() => dots += 1,
            b' ' | b'\t' => {}
            b'#' | b'=' | b'[' | b']' | b'{' | b'}' | b',' | b'\n' => {
                if dots >= TOML_KEY_DEPTH {
                    return start;
                }
                if bytes[i] == b'#' {
                    i = text[i..].find('\n').map_or(bytes.len(), |n| i + n);
                }
                (start, dots) = (None, 0);
            }
            _ => start = start.or(Some(i)),
        }
        i += 1;
    }
    start.filter(|_| dots >= TOML_KEY_DEPTH)
}

/// `s`, or its first characters and its length when it is too long to quote in a message.
pub fn shorten(s: &str) -> String {
    const SHOWN: usize = 40;
    let len = s.chars().count();
    if len <= SHOWN + 8 {
        s.to_string()
    } else {
        format!(
            "{}… ({len} characters)",
            s.chars().take(SHOWN).collect::<String>()
        )
    }
}

fn span_of(root: &toml_edit::Item, path: &[String], want_key: bool) -> Option<Range<usize>> {
    let mut item = root;
    let mut best = item.span();
    for (depth, seg) in path.iter().enumerate() {
        let last = depth + 1 == path.len();
        let (key_span, next) = match item {
            toml_edit::Item::Table(t) => match t.get_key_value(seg) {
                Some((k, v)) => (k.span(), v),
                None => return best,
            },
            toml_edit::Item::Value(toml_edit::Value::InlineTable(t)) => {
                match t.get_key_value(seg) {
                    Some((k, v)) => (k.span(), v),
                    None => return best,
                }
            }
            toml_edit::Item::Value(toml_edit::Value::Array(a)) => {
                let Some(v) = seg.parse::<usize>().ok().and_then(|i| a.get(i)) else {
                    return best;
                };
                if last {
                    return v.span().or(best);
                }
                // Array elements are values, not items: descend through a temporary.
                let item = toml_edit::Item::Value(v.clone());
                return span_of(&item, &path[depth + 1..], want_key)
                    .or(v.span())
                    .or(best);
            }
            toml_edit::Item::ArrayOfTables(a) => {
                let Some(t) = seg.parse::<usize>().ok().and_then(|i| a.get(i)) else {
                    return best;
                };
                let item = toml_edit::Item::Table(t.clone());
                return span_of(&item, &path[depth + 1..], want_key)
                    .or(t.span())
                    .or(best);
            }
            _ => return best,
        };
        best = if last && want_key {
            key_span.or(next.span())
        } else {
            next.span().or(key_span).or(best)
        };
        item = next;
    }
    best
}

/// The closest of `candidates` to a misspelt `name`, if one is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    // Edit distances cost length × length: names longer than any valid one are no typos.
    const LONGEST: usize = 256;
    if name.len() > LONGEST {
        return None;
    }
    // Transpositions and one-letter slips are the usual typos; Jaro-Winkler catches longer names.
    let max_edits = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| c.len() <= LONGEST)
        .map(|c| {
            (
                strsim::damerau_levenshtein(name, c),
                strsim::jaro_winkler(name, c),
                c,
            )
        })
        .filter(|(edits, jw, _)| *edits <= max_edits || *jw > 0.85)
        .min_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)))
        .map(|(_, _, c)| c)
}

/// Turns serde's "unknown field `x`, expected one of `a`, `b`" into a did-you-mean hint.
pub fn hint_for_serde_message(message: &str) -> Option<String> {
    if message.ends_with("expected a string") {
        return Some("quote the value; on the command line: -S 'path=\"value\"'".into());
    }
    let unknown = ["unknown field `", "unknown variant `"]
        .iter()
        .find_map(|p| message.strip_prefix(p))?;
    let (name, rest) = unknown.split_once('`')?;
    let expected: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    if let Some(best) = did_you_mean(name, expected.iter().copied()) {
        return Some(format!("did you mean `{best}`?"));
    }
    if expected.is_empty() {
        None
    } else {
        Some(format!("expected one of: {}", expected.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_unknown_field_gets_a_suggestion() {
        let msg = "unknown field `lrr`, expected one of `lr`, `epochs`, `warmup`";
        assert_eq!(
            hint_for_serde_message(msg).as_deref(),
            Some("did you mean `lr`?")
        );
        let msg = "unknown field `zzz`, expected `lr` or `epochs`";
        assert_eq!(
            hint_for_serde_message(msg).as_deref(),
            Some("expected one of: lr, epochs")
        );
    }

    #[test]
    fn offsets_and_deep_keys_have_positions() {
        let map = SourceMap::new(Path::new("m.toml"), "a = 1\nbé = 2\n");
        let pos = |o| match map.at_offset(o) {
            Origin::File { line, col, .. } => (line, col),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            (pos(0), pos(6), pos(9), pos(100)),
            ((1, 1), (2, 1), (2, 3), (3, 1))
        );
        let deep = vec!["a"; 81].join(".");
        assert_eq!(
            deep_key_offset(&format!("x = 1\n[t]\n{deep} = 1\n")),
            Some(10)
        );
        assert_eq!(
            deep_key_offset(&format!("x = \"{deep}\" # {deep}\ny = 1.5\n")),
            None
        );
        assert_eq!(shorten("abc"), "abc");
        assert_eq!(
            shorten(&"x".repeat(100)),
            format!("{}… (100 characters)", "x".repeat(40))
        );
    }

    #[test]
    fn locate_points_at_key_and_value() {
        let text = "[a]\nx = 1\n[b.c]\ny = { z = [1, 2] }\n";
        let map = SourceMap::new(Path::new("m.toml"), text);
        let at = |p: &[&str], k| match map
            .locate(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>(), k)
        {
            Origin::File { line, col, .. } => (line, col),
            other => panic!("{other:?}"),
        };
        assert_eq!(at(&["a", "x"], true), (2, 1));
        assert_eq!(at(&["a", "x"], false), (2, 5));
        assert_eq!(at(&["b", "c", "y", "z"], true), (4, 7));
        assert_eq!(at(&["b", "c", "y", "z", "1"], false), (4, 15));
        assert_eq!(at(&["a", "missing"], true), (2, 1).min(at(&["a"], false)));
    }
}
