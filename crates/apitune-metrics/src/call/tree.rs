//! What the tree-sitter readers share: a cached parser per grammar, and walks of the tree.

use std::cell::RefCell;

use tree_sitter::{Language, Node, Parser, Tree};

use super::{Bindings, MAX_DEPTH};

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

/// What [`resolve`] sees through in a grammar: the node kinds of names (followed to the value
/// bound to them) and of groups (parentheses, `await`: followed to their first named child).
pub(super) struct Transparent {
    pub names: &'static [&'static str],
    pub groups: &'static [&'static str],
}

/// The expression `node` stands for, through names and groups as `kinds` says; at most
/// [`MAX_DEPTH`] steps, which also ends cycles.
pub(super) fn resolve<'t>(
    mut node: Node<'t>,
    code: &str,
    bindings: &Bindings<Node<'t>>,
    Transparent { names, groups }: &Transparent,
) -> Node<'t> {
    for _ in 0..MAX_DEPTH {
        let next = if names.contains(&node.kind()) {
            bindings.lookup(text(node, code), node.start_byte())
        } else if groups.contains(&node.kind()) {
            named_children(node).first().copied()
        } else {
            None
        };
        match next {
            Some(inner) => node = inner,
            None => return node,
        }
    }
    node
}

/// The value of a binary concatenation with `operator` (`+`, PHP's `.`) of which at least one
/// operand is a string, as `operand` reads each; any other operand is kept as `placeholder` of
/// its text (`{expr}`, JavaScript's `${expr}`).
pub(super) fn concatenation<'t>(
    node: Node<'t>,
    code: &str,
    operator: &str,
    operand: impl Fn(Node<'t>) -> Option<String>,
    placeholder: fn(&str) -> String,
) -> Option<String> {
    if text(node.child_by_field_name("operator")?, code) != operator {
        return None;
    }
    let left = node.child_by_field_name("left")?;
    let right = node.child_by_field_name("right")?;
    let (l, r) = (operand(left), operand(right));
    if l.is_none() && r.is_none() {
        return None;
    }
    let part = |value: Option<String>, node| value.unwrap_or_else(|| placeholder(text(node, code)));
    Some(part(l, left) + &part(r, right))
}

/// `{expr}`: an operand a reader cannot evaluate, kept as written.
pub(super) fn braced(expr: &str) -> String {
    format!("{{{expr}}}")
}

/// The named children of a call's `arguments` field.
pub(super) fn arguments(call: Node) -> Vec<Node> {
    call.child_by_field_name("arguments")
        .map(named_children)
        .unwrap_or_default()
}
