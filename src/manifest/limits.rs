//! The bounds a manifest must stay within: name lengths and characters, and the number of arms.

/// Longest stage or model name, in characters.
pub const MAX_NAME_LEN: usize = 64;
/// Most arms a manifest may expand to (all stages together).
pub const MAX_ARMS: usize = 100_000;

/// Whether `name` is a usable stage or model name; the error says what is wrong.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    let len = name.chars().count();
    if name.is_empty() {
        return Err(format!("{what} name is empty"));
    }
    if len > MAX_NAME_LEN {
        return Err(format!(
            "{what} name `{}` is {len} characters long; at most {MAX_NAME_LEN} are allowed",
            super::shorten(name)
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(format!(
            "{what} name `{name}` contains `{}`",
            bad.escape_debug()
        ));
    }
    Ok(())
}

/// Help for a bad name.
pub fn name_help() -> String {
    format!("use 1 to {MAX_NAME_LEN} ASCII letters, digits, `-` and `_`")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_and_safe() {
        assert!(check_name("stage", "lora_1-b").is_ok());
        assert!(check_name("stage", "").unwrap_err().contains("empty"));
        assert!(
            check_name("stage", "a.b")
                .unwrap_err()
                .contains("contains `.`")
        );
        assert!(check_name("stage", "é").is_err());
        let long = "a".repeat(70_000);
        let err = check_name("stage", &long).unwrap_err();
        assert!(err.contains("70000 characters") && err.len() < 200, "{err}");
    }
}
