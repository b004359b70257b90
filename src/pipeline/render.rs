//! The DAG of arms as text: an indented listing, Graphviz dot, or a Mermaid flowchart.

use super::Dag;

/// Arms in run order, each with its depth (longest path from a source) and inputs.
pub fn ascii(dag: &Dag) -> String {
    let mut depth = vec![0usize; dag.arms.len()];
    for &id in &dag.order {
        depth[id] = dag.arms[id]
            .inputs
            .iter()
            .map(|i| depth[*i] + 1)
            .max()
            .unwrap_or(0);
    }
    let mut out = String::new();
    for &id in &dag.order {
        let arm = &dag.arms[id];
        let indent = "  ".repeat(depth[id]);
        let from = if arm.inputs.is_empty() {
            String::new()
        } else {
            let names: Vec<&str> = arm
                .inputs
                .iter()
                .map(|i| dag.arms[*i].name.as_str())
                .collect();
            format!("  <- {}", names.join(", "))
        };
        out.push_str(&format!(
            "{indent}{} ({}){from}\n",
            arm.name,
            arm.kind.kind()
        ));
    }
    out
}

fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

pub fn dot(dag: &Dag) -> String {
    let mut out = String::from("digraph apitune {\n  rankdir=LR;\n  node [shape=box];\n");
    for &id in &dag.order {
        let arm = &dag.arms[id];
        out.push_str(&format!(
            "  {} [label={}];\n",
            quoted(&arm.name),
            quoted(&format!("{}\\n{}", arm.name, arm.kind.kind()))
        ));
    }
    for &id in &dag.order {
        for input in &dag.arms[id].inputs {
            out.push_str(&format!(
                "  {} -> {};\n",
                quoted(&dag.arms[*input].name),
                quoted(&dag.arms[id].name)
            ));
        }
    }
    out.push_str("}\n");
    out
}

pub fn mermaid(dag: &Dag) -> String {
    let mut out = String::from("flowchart LR\n");
    let label = |s: &str| s.replace('"', "#quot;");
    for &id in &dag.order {
        let arm = &dag.arms[id];
        out.push_str(&format!(
            "  a{id}[\"{}<br/>{}\"]\n",
            label(&arm.name),
            arm.kind.kind()
        ));
    }
    for &id in &dag.order {
        for input in &dag.arms[id].inputs {
            out.push_str(&format!("  a{input} --> a{id}\n"));
        }
    }
    out
}
