//! The report's charts: each metric against training samples (one line per model, its zero-shot
//! score dashed), and the training loss of every lora-train run.

use super::metric::Metric;
use super::svg::{Chart, HLine, Series, XScale, color};
use super::table::{Method, Report, TrainInput};

/// A curve's name: the model, and its retrieved examples per prompt when it has some.
fn line_name(model: &str, shots: usize) -> String {
    match shots {
        0 => model.to_string(),
        k => format!("{model} + {k}-shot"),
    }
}

/// `plots/ablation-<metric>.svg`.
pub fn ablation(report: &Report, metric: Metric) -> String {
    let mut series = Vec::new();
    let mut hlines = Vec::new();
    let mut unplaced = 0;
    // One line per model and prompt (plain, or with k retrieved examples).
    let mut lines: Vec<(&str, usize)> = report
        .rows
        .iter()
        .map(|r| (r.model.as_str(), r.shots))
        .collect();
    lines.sort();
    lines.dedup();
    for (i, &(model, shots)) in lines.iter().enumerate() {
        let model = &line_name(model, shots);
        let rows = report
            .rows
            .iter()
            .filter(|r| line_name(&r.model, r.shots) == *model);
        let mut points: Vec<(f64, f64)> = Vec::new();
        let mut band = Vec::new();
        let mut baseline = None;
        for r in rows {
            let Some(value) = r.values.get(&metric).copied().flatten() else {
                continue;
            };
            match (r.method, r.samples) {
                (Method::ZeroShot, _) => baseline = baseline.or(Some(value)),
                (Method::Lora, Some(samples)) if samples > 0 => {
                    points.push((samples as f64, value));
                    if let Some(i) = r.intervals.get(&metric) {
                        band.push((samples as f64, i.low, i.high));
                    }
                }
                (Method::Lora, _) => unplaced += 1,
            }
        }
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        band.sort_by(|a, b| a.0.total_cmp(&b.0));
        if !points.is_empty() {
            series.push(Series {
                name: model.clone(),
                color: color(i),
                points,
                dots: true,
                band,
                tooltip: None,
            });
        }
        if let Some(y) = baseline {
            hlines.push(HLine {
                name: model.clone(),
                color: color(i),
                y,
            });
        }
    }
    let mut notes = Vec::new();
    if series.is_empty() && hlines.is_empty() {
        notes.push(format!("no arm measured {metric}"));
    } else if series.is_empty() {
        notes.push("no fine-tuned arm with a sample count".to_string());
    }
    if unplaced > 0 {
        notes.push(format!(
            "{unplaced} LoRA arm(s) trained on the whole pool are not plotted"
        ));
    }
    Chart {
        title: format!("{metric} vs training samples"),
        x_label: "training samples (log scale)".into(),
        y_label: metric.name().into(),
        x_scale: XScale::Log10,
        series,
        hlines,
        note: (!notes.is_empty()).then(|| notes.join("; ")),
    }
    .render()
}

/// `plots/levels-<metric>.svg`: one line per held-out level (per model and level when the report
/// has several models), its 95% interval as a band, and each level's zero-shot score dashed.
/// `None` when no LoRA arm with a sample count has per-level scores.
pub fn levels(report: &Report, metric: Metric) -> Option<String> {
    if !has_level_curve(report, metric) {
        return None;
    }
    let mut groups: Vec<(String, &str)> = report
        .levels
        .iter()
        .map(|r| (line_name(&r.model, r.shots), r.group.as_str()))
        .collect();
    groups.sort();
    groups.dedup();
    let several_models = groups.iter().any(|(m, _)| *m != groups[0].0);
    let mut series = Vec::new();
    let mut hlines = Vec::new();
    for (i, (model, level)) in groups.into_iter().enumerate() {
        let name = if several_models {
            format!("{model} · {level}")
        } else {
            level.to_string()
        };
        let rows = report
            .levels
            .iter()
            .filter(|r| line_name(&r.model, r.shots) == model && r.group == level);
        let mut points = Vec::new();
        let mut band = Vec::new();
        for r in rows {
            let Some(value) = r.values.get(&metric).copied().flatten() else {
                continue;
            };
            match (r.method, r.samples) {
                (Method::ZeroShot, _) if !hlines.iter().any(|h: &HLine| h.name == name) => hlines
                    .push(HLine {
                        name: name.clone(),
                        color: color(i),
                        y: value,
                    }),
                (Method::Lora, Some(samples)) if samples > 0 => {
                    points.push((samples as f64, value));
                    if let Some(iv) = r.intervals.get(&metric) {
                        band.push((samples as f64, iv.low, iv.high));
                    }
                }
                _ => {}
            }
        }
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        band.sort_by(|a, b| a.0.total_cmp(&b.0));
        if !points.is_empty() {
            series.push(Series {
                name,
                color: color(i),
                points,
                dots: true,
                band,
                tooltip: None,
            });
        }
    }
    Some(
        Chart {
            title: format!("{metric} vs training samples, by held-out level"),
            x_label: "training samples (log scale)".into(),
            y_label: metric.name().into(),
            x_scale: XScale::Log10,
            series,
            hlines,
            note: Some("bands: 95% bootstrap interval over APIs; dashed: zero-shot".into()),
        }
        .render(),
    )
}

/// Whether some LoRA arm with a sample count has a per-level value of `metric`, so that
/// `plots/levels-<metric>.svg` is drawn.
pub fn has_level_curve(report: &Report, metric: Metric) -> bool {
    report.levels.iter().any(|r| {
        r.method == Method::Lora
            && r.samples.is_some_and(|s| s > 0)
            && r.values.get(&metric).copied().flatten().is_some()
    })
}

/// `plots/loss.svg`.
pub fn loss(trains: &[TrainInput]) -> String {
    let series: Vec<Series> = super::table::sorted_trains(trains)
        .into_iter()
        .enumerate()
        .map(|(i, t)| Series {
            // Arm names are too long for a legend; model and samples tell the runs apart.
            name: format!(
                "{} · {}",
                t.summary.model,
                t.summary.samples.map_or("all".into(), |s| s.to_string())
            ),
            color: color(i),
            points: t.steps.iter().map(|s| (s.step as f64, s.loss)).collect(),
            dots: false,
            band: Vec::new(),
            tooltip: Some(t.arm.clone()),
        })
        .collect();
    let note = if trains.is_empty() {
        Some("no lora-train input: add the training stage to the report's `needs`".to_string())
    } else {
        None
    };
    Chart {
        title: "training loss".into(),
        x_label: "step".into(),
        y_label: "loss".into(),
        x_scale: XScale::Linear,
        series,
        hlines: Vec::new(),
        note,
    }
    .render()
}
