//! `-S path=value`: overrides any manifest value from the command line.
//!
//! The value is read as a TOML value (`1e-4`, `true`, `[1, 2]`, `"text"`); where that fails, or where
//! the value it replaces is a string, it is taken as a plain string. Type checking happens when the
//! manifest is read, and errors name the `-S` argument.

use super::{Diagnostic, Origin, did_you_mean, set_path};

/// Applies one override; returns the key path it set.
pub fn apply(root: &mut toml::Table, arg: &str) -> Result<Vec<String>, Diagnostic> {
    let fail = |message: String, help: Option<String>| Diagnostic {
        origin: Origin::Override(arg.to_string()),
        message,
        help,
    };
    let (path, raw) = split_assignment(arg).ok_or_else(|| {
        fail(
            "expected `path=value`".into(),
            Some("e.g. -S stages.lora.train.lr=1e-4".into()),
        )
    })?;
    let path: Vec<String> = toml_edit::Key::parse(path.trim())
        .map_err(|e| fail(format!("`{path}` is not a dotted key path: {e}"), None))?
        .into_iter()
        .map(|k| k.get().to_string())
        .collect();
    // Sections and named entries must exist: a typo there would silently add a new stage or model.
    let section = &path[0];
    let Some(section_value) = root.get(section) else {
        let names: Vec<&str> = root.keys().map(String::as_str).collect();
        let help =
            did_you_mean(section, names.iter().copied()).map(|s| format!("did you mean `{s}`?"));
        return Err(fail(
            format!("unknown path: the manifest has no `{section}`"),
            help,
        ));
    };
    if matches!(section.as_str(), "stages" | "models") {
        let Some(name) = path.get(1) else {
            return Err(fail(
                format!("name a value inside `{section}`, e.g. {section}.NAME.param=value"),
                None,
            ));
        };
        let names: Vec<&str> = section_value
            .as_table()
            .map(|t| t.keys().map(String::as_str).collect())
            .unwrap_or_default();
        if !names.contains(&name.as_str()) {
            let help = did_you_mean(name, names.iter().copied())
                .map(|s| format!("did you mean `{s}`?"))
                .or_else(|| Some(format!("{section}: {}", names.join(", "))));
            return Err(fail(
                format!("unknown path: no `{name}` in `{section}`"),
                help,
            ));
        }
        if path.len() < 3 {
            return Err(fail(format!("name a field of `{section}.{name}`"), None));
        }
    }
    let existing = lookup(root, &path);
    let value = match (
        raw.parse::<toml::Value>().ok().or_else(|| parse_value(raw)),
        existing,
    ) {
        (Some(v), Some(toml::Value::String(_))) if !v.is_str() => {
            toml::Value::String(raw.to_string())
        }
        (Some(v), _) => v,
        (None, _) => toml::Value::String(raw.to_string()),
    };
    set_path(root, &path, value)
        .map_err(|m| fail(format!("cannot set `{}`: {m}", path.join(".")), None))?;
    Ok(path)
}

/// Splits at the first `=` outside quotes, so quoted keys may contain `=`:
/// `expect."eval[samples=1000].syntax".min=0.9`.
fn split_assignment(arg: &str) -> Option<(&str, &str)> {
    let mut quote = None;
    for (i, c) in arg.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '=') => return Some((&arg[..i], &arg[i + 1..])),
            _ => {}
        }
    }
    None
}

fn parse_value(raw: &str) -> Option<toml::Value> {
    let doc: toml::Table = format!("v = {raw}").parse().ok()?;
    doc.get("v").cloned()
}

fn lookup<'a>(root: &'a toml::Table, path: &[String]) -> Option<&'a toml::Value> {
    let (first, rest) = path.split_first()?;
    let mut cur = root.get(first)?;
    for seg in rest {
        cur = cur.as_table()?.get(seg)?;
    }
    Some(cur)
}
