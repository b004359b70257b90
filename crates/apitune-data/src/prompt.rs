//! The prompt template of the public study "LLM Fine-Tuning for API Code Generation", character
//! for character.

use serde::Serialize;

use super::record::ApiRecord;
use super::retrieval::ShotExample;

/// The prompt for `record` asking for `lang` code. The target (reference code) follows it
/// directly in training text.
///
/// `{api_arguments as JSON}` is rendered the way Python's `json.dumps` does by default (the study's
/// notebooks are Python): `", "` and `": "` separators, non-ASCII escaped as `\uXXXX`.
pub fn prompt(record: &ApiRecord, lang: &str) -> String {
    format!(
        "You are an API client code generator. You MUST output ONLY valid {lang} code. No comments. No explanations. No markdown. Only raw code.\n\n### USER REQUEST:\n{}\n\n### ENDPOINT PATH:\n{}\n\n### DESCRIPTION:\n{}\n\n### PARAMETERS:\n{}\n\n### OUTPUT:\n",
        record.instruction,
        record.path,
        record.description,
        python_json_dumps(&record.api_arguments),
    )
}

/// The prompt for `record` with retrieved examples before it (API Pack's retrieval prompt: the
/// API's description, the examples, then the actual task), in the study's template. Without
/// examples it is [`prompt`] itself, so records that retrieved nothing are asked as before.
pub fn prompt_with_examples(record: &ApiRecord, lang: &str, examples: &[&ShotExample]) -> String {
    if examples.is_empty() {
        return prompt(record, lang);
    }
    let mut shown = String::new();
    for example in examples {
        shown.push_str(&format!(
            "### EXAMPLE REQUEST:\n{}\n\n### EXAMPLE OUTPUT:\n{}\n\n",
            example.instruction, example.code
        ));
    }
    format!(
        "You are an API client code generator. You MUST output ONLY valid {lang} code. No comments. No explanations. No markdown. Only raw code.\n\n### API:\n{}: {}\n\n{shown}### YOUR ACTUAL TASK:\n\n### USER REQUEST:\n{}\n\n### ENDPOINT PATH:\n{}\n\n### DESCRIPTION:\n{}\n\n### PARAMETERS:\n{}\n\n### OUTPUT:\n",
        record.api_name,
        record.api_description,
        record.instruction,
        record.path,
        record.description,
        python_json_dumps(&record.api_arguments),
    )
}

/// `json.dumps(value)` with Python's defaults.
pub fn python_json_dumps(value: &serde_json::Value) -> String {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, PythonFormatter);
    value
        .serialize(&mut serializer)
        .expect("serialising a JSON value into memory cannot fail");
    String::from_utf8(out).expect("the formatter writes ASCII only")
}

struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
    ) -> std::io::Result<()> {
        writer.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        for c in fragment.chars() {
            if c.is_ascii() {
                writer.write_all(&[c as u8])?;
            } else {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(writer, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }

    fn write_char_escape<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        char_escape: serde_json::ser::CharEscape,
    ) -> std::io::Result<()> {
        use serde_json::ser::CharEscape;
        // Python writes control characters as \u00XX except the named ones, like serde_json.
        match char_escape {
            CharEscape::Quote => writer.write_all(b"\\\""),
            CharEscape::ReverseSolidus => writer.write_all(b"\\\\"),
            CharEscape::Backspace => writer.write_all(b"\\b"),
            CharEscape::FormFeed => writer.write_all(b"\\f"),
            CharEscape::LineFeed => writer.write_all(b"\\n"),
            CharEscape::CarriageReturn => writer.write_all(b"\\r"),
            CharEscape::Tab => writer.write_all(b"\\t"),
            CharEscape::AsciiControl(byte) => write!(writer, "\\u{byte:04x}"),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_style_json() {
        assert_eq!(
            python_json_dumps(&json!({"a": [1, 2], "b": "é\n"})),
            r#"{"a": [1, 2], "b": "\u00e9\n"}"#
        );
        assert_eq!(python_json_dumps(&json!({})), "{}");
        assert_eq!(python_json_dumps(&json!("😀")), r#""\ud83d\ude00""#);
    }
}
