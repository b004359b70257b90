//! `report.html`: one self-contained page (inline CSS, inline SVG, no scripts, nothing fetched).

use std::fmt::Write;

use super::metric::{MISSING, Metric};
use super::svg::escape;
use super::table::{BreakdownRow, Method, Report, Values, method_label};
use super::text::{interval_table, samples_label, training_table};

const STYLE: &str = r#"
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; margin: 2em auto; max-width: 1400px; padding: 0 1.5em; }
h1 { font-size: 1.6em; margin-bottom: .2em; }
h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
.headline { color: #555; margin-top: 0; }
.note { color: #666; font-size: .9em; max-width: 60em; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: .3em .6em; border-bottom: 1px solid #eee; text-align: right; white-space: nowrap; }
th { background: #f6f6f6; position: sticky; top: 0; font-weight: 600; }
td.text, th.text { text-align: left; }
tr.zero-shot td { background: #fafafa; }
tr.group-start td { border-top: 2px solid #ccc; }
.delta { font-size: .85em; margin-left: .35em; }
.better { color: #1a7f37; }
.worse { color: #c62828; }
.same, .missing { color: #999; }
code, .key { font-family: ui-monospace, "SF Mono", Menlo, Consolas, monospace; font-size: .9em; color: #555; }
.plots { display: flex; flex-wrap: wrap; gap: 1em; }
.plots figure { margin: 0; border: 1px solid #eee; flex: 0 1 660px; }
.plots svg { display: block; width: 100%; height: auto; }
th.metric { white-space: normal; min-width: 5.5em; vertical-align: bottom; }
footer { margin-top: 3em; color: #888; font-size: .85em; }
"#;

fn cell(metric: Metric, method: Method, values: &Values, deltas: &Values) -> String {
    let value = values.get(&metric).copied().flatten();
    let mut out = match value {
        Some(_) => escape(&metric.format(value)),
        None => format!(r#"<span class="missing">{MISSING}</span>"#),
    };
    if method == Method::Lora
        && value.is_some()
        && let Some(delta) = deltas.get(&metric)
    {
        let class = match delta {
            None => "missing",
            Some(d) if metric.format_delta(Some(*d)).starts_with('±') => "same",
            Some(d) if (*d > 0.0) == metric.higher_is_better() => "better",
            Some(_) => "worse",
        };
        let _ = write!(
            out,
            r#"<span class="delta {class}">({})</span>"#,
            escape(&metric.format_delta(*delta))
        );
    }
    out
}

fn th(text: &str, class: &str) -> String {
    format!(r#"<th class="{class}">{}</th>"#, escape(text))
}

fn metric_header(metric: Metric) -> String {
    let arrow = if metric.higher_is_better() {
        "↑"
    } else {
        "↓"
    };
    // Break long names after underscores so the table fits a screen.
    let name = escape(metric.name()).replace('_', "_<wbr>");
    format!(r#"<th class="metric" title="{arrow} is better">{name}&nbsp;{arrow}</th>"#)
}

fn main_table(report: &Report) -> String {
    let mut s = String::from(r#"<div class="scroll"><table class="results"><thead><tr>"#);
    for h in ["model", "method", "samples"] {
        s.push_str(&th(h, "text"));
    }
    s.push_str(&th("n", ""));
    for &m in &report.metrics {
        s.push_str(&metric_header(m));
    }
    s.push_str(&th("eval arm", "text"));
    s.push_str(&th("key", "text"));
    s.push_str("</tr></thead><tbody>");
    let mut previous_model: Option<&str> = None;
    for r in &report.rows {
        let mut classes = vec![if r.method == Method::ZeroShot {
            "zero-shot"
        } else {
            "lora"
        }];
        if previous_model.is_some_and(|p| p != r.model) {
            classes.push("group-start");
        }
        previous_model = Some(&r.model);
        let _ = write!(
            s,
            r#"<tr class="{}" data-eval-key="{}"><td class="text">{}</td><td class="text">{}</td><td class="text">{}</td><td>{}</td>"#,
            classes.join(" "),
            escape(&r.eval.key),
            escape(&r.model),
            escape(&method_label(r.method, r.shots)),
            escape(&samples_label(r.method, r.samples)),
            r.n
        );
        for &m in &report.metrics {
            let _ = write!(s, "<td>{}</td>", cell(m, r.method, &r.values, &r.deltas));
        }
        let _ = write!(
            s,
            r#"<td class="text"><code>{}</code></td><td class="text"><span class="key" title="{}">{}</span></td></tr>"#,
            escape(&r.eval.arm),
            escape(&r.eval.key),
            escape(r.eval.short_key())
        );
    }
    s.push_str("</tbody></table></div>");
    s
}

fn breakdown_table(report: &Report, group: &str, rows: &[BreakdownRow]) -> String {
    let metrics: Vec<Metric> = report
        .metrics
        .iter()
        .copied()
        .filter(|m| *m != Metric::Perplexity)
        .collect();
    let mut s = String::from(r#"<div class="scroll"><table class="breakdown"><thead><tr>"#);
    for h in [group, "model", "method", "samples"] {
        s.push_str(&th(h, "text"));
    }
    s.push_str(&th("n", ""));
    for &m in &metrics {
        s.push_str(&metric_header(m));
    }
    s.push_str(&th("key", "text"));
    s.push_str("</tr></thead><tbody>");
    let mut previous_group: Option<&str> = None;
    for r in rows {
        let mut classes = vec![if r.method == Method::ZeroShot {
            "zero-shot"
        } else {
            "lora"
        }];
        let first_of_group = previous_group != Some(r.group.as_str());
        if first_of_group && previous_group.is_some() {
            classes.push("group-start");
        }
        previous_group = Some(&r.group);
        let group_cell = if first_of_group {
            format!("<strong>{}</strong>", escape(&r.group))
        } else {
            String::new()
        };
        let _ = write!(
            s,
            r#"<tr class="{}" data-eval-key="{}"><td class="text">{group_cell}</td><td class="text">{}</td><td class="text">{}</td><td class="text">{}</td><td>{}</td>"#,
            classes.join(" "),
            escape(&r.eval.key),
            escape(&r.model),
            escape(&method_label(r.method, r.shots)),
            escape(&samples_label(r.method, r.samples)),
            r.n
        );
        for &m in &metrics {
            let _ = write!(s, "<td>{}</td>", cell(m, r.method, &r.values, &r.deltas));
        }
        let _ = write!(
            s,
            r#"<td class="text"><span class="key" title="{} ({})">{}</span></td></tr>"#,
            escape(&r.eval.arm),
            escape(&r.eval.key),
            escape(r.eval.short_key())
        );
    }
    s.push_str("</tbody></table></div>");
    s
}

fn simple_table(header: &[String], rows: &[Vec<String>]) -> String {
    let mut s = String::from(r#"<div class="scroll"><table><thead><tr>"#);
    for (i, h) in header.iter().enumerate() {
        s.push_str(&th(h, if i < 3 { "text" } else { "" }));
    }
    s.push_str("</tr></thead><tbody>");
    for r in rows {
        s.push_str("<tr>");
        for (i, c) in r.iter().enumerate() {
            let _ = write!(
                s,
                r#"<td class="{}">{}</td>"#,
                if i < 3 || i + 1 == r.len() {
                    "text"
                } else {
                    ""
                },
                escape(c)
            );
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table></div>");
    s
}

/// Strips an XML declaration so the chart can sit inside HTML.
fn inline_svg(svg: &str) -> &str {
    match svg.strip_prefix("<?xml") {
        Some(rest) => rest
            .split_once("?>")
            .map_or(svg, |(_, body)| body.trim_start()),
        None => svg,
    }
}

/// The page. `charts` are (caption, SVG text) pairs, shown in order.
pub fn page(report: &Report, charts: &[(String, String)]) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title><style>{STYLE}</style></head><body><h1>{title}</h1><p class="headline">{headline}</p>"#,
        title = escape(&report.title),
        headline = escape(&report.headline)
    );
    s.push_str(
        r#"<p class="note">Scores on the held-out API Pack levels. A LoRA row's number in parentheses is its score minus the zero-shot score of the same model (green: better, red: worse; ↑/↓ in the header says which direction is better). – marks a metric that does not apply to any scored example. Each row names the eval arm that produced it and the start of its cache key (hover for the full key; <code>report.json</code> has it too).</p>"#,
    );
    s.push_str("<h2>Results</h2>");
    s.push_str(&main_table(report));
    s.push_str("<h2>Plots</h2><div class=\"plots\">");
    for (caption, svg) in charts {
        let _ = write!(
            s,
            r#"<figure title="{}">{}</figure>"#,
            escape(caption),
            inline_svg(svg)
        );
    }
    s.push_str("</div>");
    s.push_str("<h2>By API Pack level</h2>");
    s.push_str(&breakdown_table(report, "level", &report.levels));
    s.push_str("<h2>By language</h2>");
    s.push_str(&breakdown_table(report, "language", &report.per_lang));
    if let Some((h, c)) = interval_table(report) {
        s.push_str("<h2>95% intervals</h2>");
        s.push_str(r#"<p class="note">Bootstrap over APIs: each of 1,000 resamples draws the level's APIs with replacement and keeps all their examples (examples of one API are not independent), then recomputes the metric; the interval is the 2.5th to 97.5th percentile. Two arms whose intervals overlap are not shown apart by this test set.</p>"#);
        s.push_str(&simple_table(&h, &c));
    }
    if !report.training.is_empty() {
        s.push_str("<h2>Training runs</h2>");
        let (h, c) = training_table(&report.training);
        s.push_str(&simple_table(&h, &c));
    }
    s.push_str("<footer>Generated by apitune from cached stage artifacts. Machine-readable: report.json, report.csv.</footer></body></html>\n");
    s
}
