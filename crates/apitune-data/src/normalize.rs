//! The study's normalisation of code and text, applied by the normalize stage.
//!
//! Code: BOM dropped, CRLF/CR -> LF, tabs expanded to tab stops (`tab_width`, default 4; this also
//! touches tabs inside string literals, which snippets practically never hold), trailing
//! whitespace removed from every line, the common indentation removed (dedent), leading and
//! trailing blank lines dropped. Text fields (instructions, descriptions, functionality): all
//! whitespace runs, newlines included, collapsed to one space and the ends trimmed, since they
//! are pasted into a one-line slot of the prompt. Language labels: see [`super::lang`].

use super::lang::canonical_lang;
use super::record::ApiRecord;

pub const DEFAULT_TAB_WIDTH: usize = 4;

fn expand_tabs(line: &str, tab_width: usize) -> String {
    if !line.contains('\t') {
        return line.to_string();
    }
    let tab_width = tab_width.max(1);
    let mut out = String::with_capacity(line.len() + 8);
    let mut column = 0;
    for c in line.chars() {
        if c == '\t' {
            let spaces = tab_width - column % tab_width;
            out.extend(std::iter::repeat_n(' ', spaces));
            column += spaces;
        } else {
            out.push(c);
            column += 1;
        }
    }
    out
}

pub fn normalize_code(code: &str, tab_width: usize) -> String {
    let code = code
        .trim_start_matches('\u{feff}')
        .replace("\r\n", "\n")
        .replace('\r', "\n");
    let lines: Vec<String> = code
        .split('\n')
        .map(|line| expand_tabs(line, tab_width).trim_end().to_string())
        .collect();
    let indent = lines
        .iter()
        .filter(|line| !line.is_empty())
        .map(|line| line.len() - line.trim_start_matches(' ').len())
        .min()
        .unwrap_or(0);
    let first = lines.iter().position(|line| !line.is_empty());
    let last = lines.iter().rposition(|line| !line.is_empty());
    match (first, last) {
        (Some(first), Some(last)) => lines[first..=last]
            .iter()
            .map(|line| if line.is_empty() { "" } else { &line[indent..] })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

pub fn normalize_text(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The record with every field normalised.
pub fn normalize_record(mut record: ApiRecord, tab_width: usize) -> ApiRecord {
    record.api_name = normalize_text(&record.api_name);
    record.api_description = normalize_text(&record.api_description);
    record.lang = canonical_lang(&record.lang);
    record.path = record.path.trim().to_string();
    record.method = record
        .method
        .map(|m| m.trim().to_ascii_uppercase())
        .filter(|m| !m.is_empty());
    record.functionality = normalize_text(&record.functionality);
    record.description = normalize_text(&record.description);
    record.domain = record
        .domain
        .iter()
        .map(|d| normalize_text(d))
        .filter(|d| !d.is_empty())
        .collect();
    record.instruction = normalize_text(&record.instruction);
    record.instruction_test = normalize_text(&record.instruction_test);
    record.code = normalize_code(&record.code, tab_width);
    record.host = record
        .host
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty());
    record.base_url = record
        .base_url
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty());
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_is_dedented_and_cleaned() {
        let code = "\r\n    if x:\r\n    \tprint(1)   \r\n\r\n    done\t\n\n";
        assert_eq!(normalize_code(code, 4), "if x:\n    print(1)\n\ndone");
        assert_eq!(normalize_code("a\tb", 4), "a   b");
        assert_eq!(normalize_code(" \n\t\n", 4), "");
        assert_eq!(normalize_code("\u{feff}x\ry", 4), "x\ny");
    }

    #[test]
    fn text_whitespace_collapses() {
        assert_eq!(normalize_text("  List\r\n  all\tbooks  "), "List all books");
    }
}
