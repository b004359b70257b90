//! Cache keys: the named fields a stage's output depends on ([`KeyManifest`]), their canonical
//! encoding, and field-level diffs between two manifests (what `explain` prints for a miss).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ids::Key;

/// blake3 derive-key context for cache keys; changing the canonical encoding means a new version.
const KEY_CONTEXT: &str = "apitune cache key v1";

/// The named fields a key is computed from (kind, version, resolved params, input digests,
/// runtime facts, ...). Stored in every entry so `explain` can diff it against a new one.
///
/// # Canonical encoding (version 1)
///
/// The manifest is encoded as one JSON text with no insignificant whitespace:
/// - objects: members sorted by key, compared as Rust strings (byte-wise UTF-8 order);
/// - arrays: elements in order;
/// - strings: `"`-quoted; `"` and `\` are backslash-escaped, U+0008/0009/000A/000C/000D as
///   `\b \t \n \f \r`, other control characters below U+0020 as `\u00xx` (lower-case hex); every
///   other character is written as raw UTF-8 (the RFC 8785 string rules);
/// - numbers: a finite number whose value is an integer of magnitude below 2^127 is written as a
///   plain decimal integer (so `1`, `1.0` and `1e0` are one value); any other number is written
///   in Rust's shortest round-trip exponent form (`{:e}`: `2e-4`, `1.5e300`);
/// - `true`, `false`, `null` as in JSON.
///
/// The key is `blake3::derive_key("apitune cache key v1", canonical_json)`: the derive-key
/// context separates keys from every other blake3 hash in the cache and carries the encoding
/// version, so a future encoding change bumps the context string rather than silently colliding.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct KeyManifest(pub BTreeMap<String, Value>);

/// One difference between two key manifests. `path` addresses the value like `params.train.lr`
/// or `langs[1]`; `old`/`new` are `None` where the field is absent on that side.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FieldDiff {
    pub path: String,
    pub old: Option<Value>,
    pub new: Option<Value>,
}

impl KeyManifest {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a field, converting anything serde can serialize (params structs, digests, ...).
    ///
    /// # Panics
    /// If `value`'s `Serialize` impl fails (e.g. a map with non-string keys): that is a bug in
    /// the caller's types, not bad user input.
    pub fn with(mut self, name: impl Into<String>, value: impl Serialize) -> Self {
        let value = serde_json::to_value(value).expect("key manifest field must serialize to JSON");
        self.0.insert(name.into(), value);
        self
    }

    /// The canonical JSON text the key is hashed from (see the module docs).
    pub fn canonical_json(&self) -> String {
        let mut out = String::new();
        write_canonical_object(&mut out, self.0.iter());
        out
    }

    pub fn key(&self) -> Key {
        let mut hasher = blake3::Hasher::new_derive_key(KEY_CONTEXT);
        hasher.update(self.canonical_json().as_bytes());
        Key::from(hasher.finalize())
    }

    /// Field-level differences from `self` (old) to `other` (new), recursing into objects and
    /// arrays, in path order. Numbers equal under the canonical encoding (`1` and `1.0`) are
    /// equal here too, so an empty diff means an equal key.
    pub fn diff(&self, other: &KeyManifest) -> Vec<FieldDiff> {
        let as_object =
            |m: &KeyManifest| m.0.clone().into_iter().collect::<serde_json::Map<_, _>>();
        let mut diffs = Vec::new();
        diff_objects("", &as_object(self), &as_object(other), &mut diffs);
        diffs
    }
}

/// The canonical encoding of any JSON value (see the module docs).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(&mut out, value);
    out
}

fn write_canonical(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => write_canonical_number(out, n),
        Value::String(s) => write_canonical_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // serde_json here keeps insertion order (feature `preserve_order`), so sort.
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.cmp(b.0));
            write_canonical_object(out, members.into_iter());
        }
    }
}

/// `members` must already be sorted by key.
fn write_canonical_object<'a>(
    out: &mut String,
    members: impl Iterator<Item = (&'a String, &'a Value)>,
) {
    out.push('{');
    for (i, (name, value)) in members.enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_canonical_string(out, name);
        out.push(':');
        write_canonical(out, value);
    }
    out.push('}');
}

fn write_canonical_number(out: &mut String, n: &serde_json::Number) {
    if let Some(i) = n.as_i64() {
        write!(out, "{i}").unwrap();
    } else if let Some(u) = n.as_u64() {
        write!(out, "{u}").unwrap();
    } else {
        // Without serde_json's `arbitrary_precision`, a number that is neither i64 nor u64 is a
        // finite f64 (serde_json rejects NaN and infinities).
        let f = n.as_f64().expect("serde_json number is i64, u64 or f64");
        // Exactly 2^127 = i128::MAX + 1 as f64; every integral f64 below it converts exactly.
        const LIMIT: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0;
        if f.fract() == 0.0 && f.abs() < LIMIT {
            // `as` is exact here; -0.0 becomes 0.
            write!(out, "{}", f as i128).unwrap();
        } else {
            write!(out, "{f:e}").unwrap();
        }
    }
}

fn write_canonical_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => write!(out, "\\u{:04x}", c as u32).unwrap(),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn canonically_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => canonical_json(a) == canonical_json(b),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| canonically_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| canonically_equal(v, w)))
        }
        _ => a == b,
    }
}

/// `parent.name`, or `parent["na.me"]` when the name would make the path ambiguous.
fn member_path(parent: &str, name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '=' | ':'));
    match (plain, parent.is_empty()) {
        (true, true) => name.to_string(),
        (true, false) => format!("{parent}.{name}"),
        (false, _) => {
            let mut quoted = String::new();
            write_canonical_string(&mut quoted, name);
            format!("{parent}[{quoted}]")
        }
    }
}

fn diff_objects(
    path: &str,
    old: &serde_json::Map<String, Value>,
    new: &serde_json::Map<String, Value>,
    diffs: &mut Vec<FieldDiff>,
) {
    let mut names: Vec<&String> = old.keys().chain(new.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        diff_values(
            &member_path(path, name),
            old.get(name),
            new.get(name),
            diffs,
        );
    }
}

fn diff_values(path: &str, old: Option<&Value>, new: Option<&Value>, diffs: &mut Vec<FieldDiff>) {
    match (old, new) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => diff_objects(path, a, b, diffs),
        (Some(Value::Array(a)), Some(Value::Array(b))) => {
            for i in 0..a.len().max(b.len()) {
                diff_values(&format!("{path}[{i}]"), a.get(i), b.get(i), diffs);
            }
        }
        (Some(a), Some(b)) if canonically_equal(a, b) => {}
        (None, None) => {}
        (old, new) => diffs.push(FieldDiff {
            path: path.to_string(),
            old: old.cloned(),
            new: new.cloned(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn canonical_text_is_sorted_compact_and_normalises_numbers() {
        let value = json!({"b": [1.0, 2.5, -0.0, 2e-4, 1e300], "a": "q\"\\\n\u{1}é", "c": null});
        assert_eq!(
            canonical_json(&value),
            r#"{"a":"q\"\\\n\u0001é","b":[1,2.5e0,0,2e-4,1e300],"c":null}"#
        );
    }

    #[test]
    fn member_paths_quote_ambiguous_names() {
        assert_eq!(member_path("", "params"), "params");
        assert_eq!(member_path("params", "lr"), "params.lr");
        assert_eq!(
            member_path("expect", "eval.syntax"),
            r#"expect["eval.syntax"]"#
        );
    }
}
