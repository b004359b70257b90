//! A linear pre-scan of YAML text for how deeply it nests, so that a pathologically deep spec is
//! rejected before the YAML parser spends super-linear time on it.
//!
//! The depth counted is the open flow collections (`[`, `{` outside quoted scalars and comments)
//! plus the open block levels: an indentation stack, and the compact forms that nest on one line
//! (`- - x`, `? ? x`, `- key: x`). Block scalars (`|`, `>`) and quoted scalars are skipped. The
//! count is an estimate that errs high by a level or two (a scalar counts as a level, a plain
//! scalar continued on a deeper-indented line counts once more), which the limit allows for: it is
//! twice the YAML parser's own recursion limit (128), so whatever the parser would accept passes.

/// Nesting beyond this is rejected before parsing.
pub const MAX_YAML_NESTING: usize = 256;

/// The first line (1-based) on which the nesting of YAML `text` exceeds `limit`, if any.
pub fn yaml_too_deep(text: &[u8], limit: usize) -> Option<u64> {
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
    let mut scanner = Scanner {
        limit,
        ..Scanner::default()
    };
    for (index, line) in text.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        scanner.line(line);
        if scanner.exceeded {
            return Some(index as u64 + 1);
        }
    }
    None
}

#[derive(Default)]
struct Scanner {
    limit: usize,
    /// The open block levels: column, and whether it is a sequence (a sequence may sit at the
    /// column of the mapping key it is the value of). Columns never decrease.
    block: Vec<(usize, bool)>,
    /// Open flow collections.
    flow: usize,
    /// Inside a quoted scalar (its quote byte) that continues on the next line.
    quote: Option<u8>,
    /// Inside a block scalar: lines indented at least this much (and blank lines) are its text.
    block_scalar_indent: Option<usize>,
    /// Whether a node may start where the previous line ended (inside a flow collection, after
    /// `[`, `{`, `,` or `: `).
    node_next: bool,
    exceeded: bool,
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Whether `line[pos]` is an indicator (`-`, `?`, `:`) followed by a blank or the end of line.
fn indicator_at(line: &[u8], pos: usize) -> bool {
    line.get(pos + 1).is_none_or(|&b| is_blank(b))
}

impl Scanner {
    fn check(&mut self) {
        if self.block.len() + self.flow > self.limit {
            self.exceeded = true;
        }
    }

    /// Opens a block level at `column` unless one at or right of it is open already.
    fn open_block(&mut self, column: usize, sequence: bool) {
        if self.block.last().is_none_or(|&(top, _)| top < column) {
            self.block.push((column, sequence));
            self.check();
        }
    }

    /// The block levels for a line whose first node starts at column `indent`.
    fn enter_line(&mut self, indent: usize, entry: bool) {
        while self.block.last().is_some_and(|&(top, _)| top > indent) {
            self.block.pop();
        }
        if entry {
            // `- ` right under `key:`, at its column: a sequence inside the mapping.
            if self.block.last() != Some(&(indent, true)) {
                self.block.push((indent, true));
                self.check();
            }
        } else {
            // Anything else at a sequence's column ends that sequence.
            while self.block.last() == Some(&(indent, true)) {
                self.block.pop();
            }
            self.open_block(indent, false);
        }
    }

    fn line(&mut self, line: &[u8]) {
        if let Some(quote) = self.quote {
            if let Some(end) = self.skip_quoted(line, 0, quote) {
                self.scan(line, end, false, 0);
            }
            return;
        }
        let indent = line.iter().take_while(|&&b| b == b' ').count();
        let document_marker = (line.starts_with(b"---") || line.starts_with(b"..."))
            && line.get(3).is_none_or(|&b| is_blank(b));
        if let Some(min) = self.block_scalar_indent {
            let blank = line.iter().all(|&b| is_blank(b));
            if !document_marker && (blank || indent >= min) {
                return;
            }
            self.block_scalar_indent = None;
        }
        if document_marker {
            *self = Scanner {
                limit: self.limit,
                ..Scanner::default()
            };
            self.scan(line, 3, true, 0);
            return;
        }
        if self.flow > 0 {
            self.scan(line, 0, self.node_next, 0);
            return;
        }
        let rest = &line[indent..];
        if rest.iter().all(|&b| is_blank(b))
            || rest.starts_with(b"#")
            || (indent == 0 && rest.starts_with(b"%"))
        {
            return;
        }
        self.enter_line(indent, rest[0] == b'-' && indicator_at(rest, 0));
        self.scan(line, indent, true, indent);
    }

    /// Scans `line` from `pos`; `at_node` when a node may start there, `owner` the column of the
    /// node (key or entry) whose value comes next.
    fn scan(&mut self, line: &[u8], mut pos: usize, mut at_node: bool, mut owner: usize) {
        self.node_next = false;
        while pos < line.len() && !self.exceeded {
            let b = line[pos];
            if is_blank(b) {
                pos += 1;
                continue;
            }
            if b == b'#' && (pos == 0 || is_blank(line[pos - 1])) {
                break; // a comment
            }
            match b {
                b'[' | b'{' if at_node || self.flow > 0 => {
                    self.flow += 1;
                    self.check();
                    at_node = true;
                }
                b']' | b'}' if self.flow > 0 => {
                    self.flow -= 1;
                    at_node = false;
                }
                b',' if self.flow > 0 => at_node = true,
                b'"' | b'\'' if at_node => {
                    owner = pos;
                    match self.skip_quoted(line, pos + 1, b) {
                        Some(end) => pos = end,
                        None => return,
                    }
                    at_node = false;
                    continue;
                }
                b'&' | b'!' if at_node => {
                    // An anchor or tag: the node follows it.
                    while pos < line.len()
                        && !is_blank(line[pos])
                        && !(self.flow > 0 && b",[]{}".contains(&line[pos]))
                    {
                        pos += 1;
                    }
                    continue;
                }
                b'-' | b'?' | b':' if at_node && self.flow == 0 && indicator_at(line, pos) => {
                    // A block entry, explicit key or value: what follows nests one level deeper.
                    self.open_block(pos, b == b'-');
                    owner = pos;
                }
                b'|' | b'>' if at_node && self.flow == 0 => {
                    self.block_scalar_indent = Some(owner + 1);
                    return;
                }
                b':' if self.flow == 0 && indicator_at(line, pos) => {
                    // A mapping key ends: its value may follow on this line.
                    self.open_block(owner, false);
                    at_node = true;
                }
                b':' if self.flow > 0 => {
                    at_node = line
                        .get(pos + 1)
                        .is_none_or(|&next| is_blank(next) || b",[]{}\"'".contains(&next));
                }
                _ => {
                    if at_node {
                        owner = pos;
                    }
                    at_node = false;
                }
            }
            pos += 1;
        }
        self.node_next = at_node;
    }

    /// Skips a quoted scalar's text from `pos` (after its opening `quote`): the position after the
    /// closing quote, or `None` when the scalar continues on the next line.
    fn skip_quoted(&mut self, line: &[u8], mut pos: usize, quote: u8) -> Option<usize> {
        while pos < line.len() {
            match line[pos] {
                b'\\' if quote == b'"' => pos += 2,
                b'\'' if quote == b'\'' && line.get(pos + 1) == Some(&b'\'') => pos += 2,
                b if b == quote => {
                    self.quote = None;
                    return Some(pos + 1);
                }
                _ => pos += 1,
            }
        }
        self.quote = Some(quote);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_ok(text: &str, limit: usize) -> bool {
        yaml_too_deep(text.as_bytes(), limit).is_none()
    }

    #[test]
    fn counts_flow_and_block_nesting() {
        assert!(depth_ok("a: [[[1]]]\n", 5));
        assert!(!depth_ok("a: [[[1]]]\n", 3));
        assert!(depth_ok("- - - x\n", 4));
        assert!(!depth_ok("- - - x\n", 2));
        assert!(!depth_ok("a:\n  b:\n    c:\n      d: 1\n", 3));
        assert!(!depth_ok("? ? ? ? x\n", 3));
        assert_eq!(yaml_too_deep(b"a: 1\nb:\n  c: [[[\n  1]]]\n", 3), Some(3));
    }

    #[test]
    fn quoted_block_scalar_and_comment_text_does_not_count() {
        let text = "a: '[[[[ '' {{{{'\nb: \"[[[[ \\\" {{{{\n  [[[[\"\nc: |\n  - - - - - [[[[\n      - - - - {{{{\n\n d: 1 # [[[[ - - - -\ne: see [docs](x) and {this}\nf: [a, \"]]]\", 'x'']]']\n";
        assert_eq!(yaml_too_deep(text.as_bytes(), 3), None);
    }

    #[test]
    fn quoted_scalars_on_later_lines_of_a_flow_collection_do_not_count() {
        let text =
            "[\n  {\n    \"[-\": {\n      \"[\": null, # [[[[\n      '[[': null\n    }\n  }\n]\n";
        assert_eq!(yaml_too_deep(text.as_bytes(), 4), None);
        assert_eq!(yaml_too_deep(text.as_bytes(), 3), Some(3));
    }

    #[test]
    fn closing_brackets_return_to_block_context() {
        let text = "a: [1, 2]\nb:\n  - {x: 1}\n  - y\nc: 1\n";
        assert_eq!(yaml_too_deep(text.as_bytes(), 3), None);
        assert_eq!(yaml_too_deep(text.as_bytes(), 2), Some(3));
    }
}
