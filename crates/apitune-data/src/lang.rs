//! Language labels. API Pack spells them inconsistently (`cURL`, `Python`, `javascript xhr`, `Node`),
//! and `x-code-samples` use yet other names (`Shell`, `Node.js`, `C`). Every label is trimmed and
//! lower-cased, then mapped through a small alias table onto the ten API Pack languages.
//!
//! Decisions: `javascript` means browser XMLHttpRequest/fetch code and `node` means Node.js code,
//! as in API Pack's two files; `shell`/`bash`/`sh` count as `curl` (they are curl commands in
//! API Pack and in nearly every spec's samples); `c` counts as `libcurl`. Unknown labels are kept
//! (trimmed, lower-cased) so a `langs` filter can still select or drop them.

/// The ten languages of API Pack, in its file order.
pub const TARGET_LANGS: [&str; 10] = [
    "curl",
    "go",
    "java",
    "javascript",
    "libcurl",
    "node",
    "php",
    "python",
    "ruby",
    "swift",
];

/// Canonical form of a language label.
pub fn canonical_lang(label: &str) -> String {
    let lowered = label.trim().to_lowercase();
    let collapsed: String = lowered.split_whitespace().collect::<Vec<_>>().join(" ");
    let canonical = match collapsed.as_str() {
        "curl" | "shell" | "bash" | "sh" | "shell curl" | "curl shell" | "console" => "curl",
        "javascript" | "js" | "javascript xhr" | "xhr" | "javascript fetch"
        | "javascript jquery" | "jquery" | "browser" => "javascript",
        "node" | "nodejs" | "node.js" | "node request" | "node js" | "javascript node"
        | "node fetch" | "node axios" => "node",
        "python" | "python3" | "py" | "python http.client" | "python requests" => "python",
        "go" | "golang" => "go",
        "java" | "java okhttp" | "okhttp" | "java unirest" => "java",
        "ruby" | "rb" => "ruby",
        "php" | "php curl" => "php",
        "swift" => "swift",
        "libcurl" | "c" | "c libcurl" => "libcurl",
        _ => return collapsed,
    };
    canonical.to_string()
}

#[cfg(test)]
mod tests {
    use super::canonical_lang;

    #[test]
    fn labels_are_trimmed_lowercased_and_aliased() {
        assert_eq!(canonical_lang(" cURL "), "curl");
        assert_eq!(canonical_lang("Python"), "python");
        assert_eq!(canonical_lang("javascript  XHR"), "javascript");
        assert_eq!(canonical_lang("Node"), "node");
        assert_eq!(canonical_lang("Node.js"), "node");
        assert_eq!(canonical_lang("C"), "libcurl");
        assert_eq!(canonical_lang("Kotlin"), "kotlin");
    }
}
