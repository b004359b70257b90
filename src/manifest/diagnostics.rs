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
    doc: Option<toml_edit::Document<String>>,
}

impl SourceMap {
    pub fn new(path: &Path, text: &str) -> SourceMap {
        SourceMap {
            path: path.to_path_buf(),
            text: text.to_string(),
            doc: toml_edit::Document::parse(text.to_string()).ok(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn at_offset(&self, offset: usize) -> Origin {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Origin::File {
            path: self.path.clone(),
            line,
            col,
        }
    }

    /// Position of the deepest existing item along `path`; the key itself when `want_key`.
    pub fn locate(&self, path: &[String], want_key: bool) -> Origin {
        match self
            .doc
            .as_ref()
            .and_then(|doc| span_of(doc.as_item(), path, want_key))
        {
            Some(span) => self.at_offset(span.start),
            None => Origin::Whole(self.path.clone()),
        }
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
    // Transpositions and one-letter slips are the usual typos; Jaro-Winkler catches longer names.
    let max_edits = (name.chars().count() / 3).max(1);
    candidates
        .into_iter()
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
