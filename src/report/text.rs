//! Markdown and CSV renderings of a [`Report`].

use super::metric::{MISSING, Metric};
use super::table::{
    BreakdownRow, Method, Report, Row, TrainingRow, Values, method_label, short_key,
};

/// A value with its delta against zero-shot, as the tables print it: `0.412 (+0.103)`.
pub fn value_cell(metric: Metric, method: Method, values: &Values, deltas: &Values) -> String {
    let value = values.get(&metric).copied().flatten();
    match (method, value, deltas.get(&metric)) {
        // A missing value has no delta worth a second dash.
        (Method::Lora, Some(_), Some(delta)) => {
            format!("{} ({})", metric.format(value), metric.format_delta(*delta))
        }
        _ => metric.format(value),
    }
}

pub fn samples_label(method: Method, samples: Option<u64>) -> String {
    match (method, samples) {
        (Method::ZeroShot, _) => "0".into(),
        (Method::Lora, Some(n)) => n.to_string(),
        (Method::Lora, None) => "all".into(),
    }
}

/// Header and cells of the main table, shared by every rendering.
pub fn main_table(report: &Report) -> (Vec<String>, Vec<Vec<String>>) {
    let mut header: Vec<String> = ["model", "method", "samples", "n"]
        .map(String::from)
        .to_vec();
    header.extend(report.metrics.iter().map(|m| m.name().to_string()));
    header.push("eval key".into());
    let cells = report.rows.iter().map(|r| main_row(report, r)).collect();
    (header, cells)
}

fn main_row(report: &Report, r: &Row) -> Vec<String> {
    let mut cells = vec![
        r.model.clone(),
        method_label(r.method, r.shots),
        samples_label(r.method, r.samples),
        r.n.to_string(),
    ];
    cells.extend(
        report
            .metrics
            .iter()
            .map(|&m| value_cell(m, r.method, &r.values, &r.deltas)),
    );
    cells.push(r.eval.short_key().to_string());
    cells
}

/// Header and cells of a breakdown table; `group` names its first column.
pub fn breakdown_table(
    report: &Report,
    group: &str,
    rows: &[BreakdownRow],
) -> (Vec<String>, Vec<Vec<String>>) {
    let mut header: Vec<String> = [group, "model", "method", "samples", "n"]
        .map(String::from)
        .to_vec();
    header.extend(
        report
            .metrics
            .iter()
            .filter(|m| **m != Metric::Perplexity)
            .map(|m| m.name().to_string()),
    );
    header.push("eval key".into());
    let cells = rows
        .iter()
        .map(|r| {
            let mut cells = leading_cells(r);
            cells.extend(
                report
                    .metrics
                    .iter()
                    .filter(|m| **m != Metric::Perplexity)
                    .map(|&m| value_cell(m, r.method, &r.values, &r.deltas)),
            );
            cells.push(r.eval.short_key().to_string());
            cells
        })
        .collect();
    (header, cells)
}

/// Group, model, method, samples and n of a breakdown row.
fn leading_cells(r: &BreakdownRow) -> Vec<String> {
    vec![
        r.group.clone(),
        r.model.clone(),
        method_label(r.method, r.shots),
        samples_label(r.method, r.samples),
        r.n.to_string(),
    ]
}

/// Header and cells of the interval table: each eval arm overall (`all`) and per level, with the
/// metrics that carry a 95% bootstrap interval as `value [low, high]`. `None` when no row has one
/// (results written before intervals existed).
pub fn interval_table(report: &Report) -> Option<(Vec<String>, Vec<Vec<String>>)> {
    let metrics: Vec<Metric> = report
        .metrics
        .iter()
        .copied()
        .filter(|m| {
            report.rows.iter().any(|r| r.intervals.contains_key(m))
                || report.levels.iter().any(|r| r.intervals.contains_key(m))
        })
        .collect();
    if metrics.is_empty() {
        return None;
    }
    let mut header: Vec<String> = ["level", "model", "method", "samples", "n", "APIs"]
        .map(String::from)
        .to_vec();
    header.extend(metrics.iter().map(|m| m.name().to_string()));
    // The overall rows, as breakdown rows of the group `all`, then the per-level rows.
    let overall: Vec<BreakdownRow> = report
        .rows
        .iter()
        .map(|r| BreakdownRow {
            group: "all".into(),
            model: r.model.clone(),
            method: r.method,
            shots: r.shots,
            samples: r.samples,
            eval: r.eval.clone(),
            n: r.n,
            values: r.values.clone(),
            deltas: r.deltas.clone(),
            intervals: r.intervals.clone(),
            apis: r.apis,
        })
        .collect();
    let cells = overall
        .iter()
        .chain(&report.levels)
        .map(|r| {
            let mut cells = leading_cells(r);
            cells.push(r.apis.map_or_else(|| MISSING.into(), |a| a.to_string()));
            cells.extend(metrics.iter().map(|&m| {
                let value = m.format(r.values.get(&m).copied().flatten());
                match r.intervals.get(&m) {
                    Some(i) => format!(
                        "{value} [{}, {}]",
                        m.format(Some(i.low)),
                        m.format(Some(i.high))
                    ),
                    None => value,
                }
            }));
            cells
        })
        .collect();
    Some((header, cells))
}

/// Header and cells of the training-runs table.
pub fn training_table(rows: &[TrainingRow]) -> (Vec<String>, Vec<Vec<String>>) {
    let header = [
        "arm",
        "model",
        "samples",
        "trainable params",
        "tokens seen",
        "seconds",
        "steps",
        "final loss",
        "train key",
    ]
    .map(String::from)
    .to_vec();
    let cells = rows
        .iter()
        .map(|t| {
            vec![
                t.train.arm.clone(),
                t.model.clone(),
                t.samples.map_or_else(|| "all".into(), |s| s.to_string()),
                t.trainable_params.to_string(),
                t.tokens_seen.to_string(),
                t.seconds
                    .map_or_else(|| MISSING.into(), |s| format!("{s:.1}")),
                t.steps.to_string(),
                t.final_loss
                    .map_or_else(|| MISSING.into(), |l| format!("{l:.4}")),
                short_key(&t.train.key).to_string(),
            ]
        })
        .collect();
    (header, cells)
}

/// A Markdown table padded to column width, so it also reads as plain text.
pub fn markdown_table(header: &[String], rows: &[Vec<String>]) -> String {
    let escape = |s: &str| s.replace('|', "\\|");
    let header: Vec<String> = header.iter().map(|h| escape(h)).collect();
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| escape(c)).collect())
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .chain([header[i].chars().count(), 3])
                .max()
                .unwrap_or(3)
        })
        .collect();
    let line = |cells: &[String]| {
        let padded: Vec<String> = widths
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let c = cells.get(i).map_or("", String::as_str);
                format!("{c}{}", " ".repeat(w - c.chars().count()))
            })
            .collect();
        format!("| {} |\n", padded.join(" | "))
    };
    let mut out = line(&header);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&format!("|-{}-|\n", rule.join("-|-")));
    for r in &rows {
        out.push_str(&line(r));
    }
    out
}

const INTERVALS_NOTE_MD: &str = "\n## 95% intervals\n\nBootstrap over APIs: each of 1,000 \
     resamples draws the level's APIs with replacement and keeps all their examples (examples of \
     one API are not independent), then recomputes the metric; the interval is the 2.5th to 97.5th \
     percentile. Two arms whose intervals overlap are not shown apart by this test set.\n\n";

/// `report.md`.
pub fn markdown(report: &Report) -> String {
    let mut out = format!("# {}\n\n{}\n\n", report.title, report.headline);
    out.push_str(
        "Values are fine-tuned (LoRA) or base-model (zero-shot) scores on the held-out levels; \
         the number in parentheses is LoRA minus the same model's zero-shot. `–` marks a metric \
         that does not apply. `eval key` is the start of the eval artifact's cache key \
         (`report.json` has the full key).\n\n",
    );
    out.push_str("## Results\n\n");
    let (h, c) = main_table(report);
    out.push_str(&markdown_table(&h, &c));
    out.push_str("\n## By API Pack level\n\n");
    let (h, c) = breakdown_table(report, "level", &report.levels);
    out.push_str(&markdown_table(&h, &c));
    out.push_str("\n## By language\n\n");
    let (h, c) = breakdown_table(report, "language", &report.per_lang);
    out.push_str(&markdown_table(&h, &c));
    if let Some((h, c)) = interval_table(report) {
        out.push_str(INTERVALS_NOTE_MD);
        out.push_str(&markdown_table(&h, &c));
    }
    if !report.training.is_empty() {
        out.push_str("\n## Training runs\n\n");
        let (h, c) = training_table(&report.training);
        out.push_str(&markdown_table(&h, &c));
    }
    out.push_str("\n## Plots\n\n");
    for m in &report.metrics {
        out.push_str(&format!(
            "- [{m} vs training samples](plots/ablation-{m}.svg)\n"
        ));
        if super::plots::has_level_curve(report, *m) {
            out.push_str(&format!(
                "- [{m} vs training samples, by level](plots/levels-{m}.svg)\n"
            ));
        }
    }
    out.push_str("- [training loss](plots/loss.svg)\n");
    out
}

/// `report.csv`: one line per main-table row, full-precision numbers, empty cells for missing ones.
pub fn csv(report: &Report) -> anyhow::Result<String> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = [
        "model",
        "method",
        "samples",
        "eval_arm",
        "eval_key",
        "baseline_arm",
        "baseline_key",
        "n",
    ]
    .map(String::from)
    .to_vec();
    for m in &report.metrics {
        header.push(m.name().into());
        header.push(format!("{m}_delta"));
    }
    w.write_record(&header)?;
    let number = |v: Option<f64>| v.map_or_else(String::new, |v| v.to_string());
    for r in &report.rows {
        let mut rec = vec![
            r.model.clone(),
            method_label(r.method, r.shots),
            r.samples.map_or_else(String::new, |s| s.to_string()),
            r.eval.arm.clone(),
            r.eval.key.clone(),
            r.baseline
                .as_ref()
                .map_or_else(String::new, |b| b.arm.clone()),
            r.baseline
                .as_ref()
                .map_or_else(String::new, |b| b.key.clone()),
            r.n.to_string(),
        ];
        for m in &report.metrics {
            rec.push(number(r.values.get(m).copied().flatten()));
            rec.push(number(r.deltas.get(m).copied().flatten()));
        }
        w.write_record(&rec)?;
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}
