//! What the tree-sitter readers share: a cached parser per grammar, and walks of the tree.

use std::cell::RefCell;

use tree_sitter::{Language, Node, Parser, Tree};

thread_local! {
    /// One parser per grammar per thread, as the syntax metric keeps them: corpora hold 100K
    /// snippets.
    static PARSERS: RefCell<Vec<(&'static str, Parser)>> = const { RefCell::new(Vec::new()) };
}

/// The tree of `code` in `language` (named `name` for the parser cache).
pub(super) fn parse(name: &'static str, language: impl Into<Language>, code: &str) -> Option<Tree> {
    PARSERS.with(|parsers| {
        let mut parsers = parsers.borrow_mut();
        let slot = match parsers.iter().position(|(n, _)| *n == name) {
            Some(slot) => slot,
            None => {
                let mut parser = Parser::new();
                parser.set_language(&language.into()).ok()?;
                parsers.push((name, parser));
                parsers.len() - 1
            }
        };
        parsers[slot].1.parse(code, None)
    })
}

/// The source text of `node`; empty where the range is not on character boundaries.
pub(super) fn text<'c>(node: Node, code: &'c str) -> &'c str {
    code.get(node.byte_range()).unwrap_or_default()
}

/// Every node under `root` (itself included), in document order, without recursion: garbage
/// input can nest deeply.
pub(super) fn descendants(root: Node) -> Vec<Node> {
    let mut nodes = Vec::new();
    let mut cursor = root.walk();
    loop {
        nodes.push(cursor.node());
        if cursor.goto_first_child() {
            continue;
        }
        loop {
            if cursor.node() == root {
                return nodes;
            }
            if cursor.goto_next_sibling() {
                break;
            }
            if !cursor.goto_parent() {
                return nodes;
            }
        }
    }
}

/// The named children of `node`, comments left out.
pub(super) fn named_children(node: Node) -> Vec<Node> {
    let mut cursor = node.walk();
    node.named_children(&mut cursor)
        .filter(|child| !child.kind().contains("comment"))
        .collect()
}
