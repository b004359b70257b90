//! The report's charts: each metric against training samples (one line per model, its zero-shot
//! score dashed), and the training loss of every lora-train run.

use super::metric::Metric;
use super::svg::{Chart, HLine, Series, XScale, color};
use super::table::{Method, Report, TrainInput};

/// `plots/ablation-<metric>.svg`.
pub fn ablation(report: &Report, metric: Metric) -> String {
    let mut series = Vec::new();
    let mut hlines = Vec::new();
    let mut unplaced = 0;
    for (i, model) in report.models.iter().enumerate() {
        let rows = report.rows.iter().filter(|r| &r.model == model);
        let mut points: Vec<(f64, f64)> = Vec::new();
        let mut baseline = None;
        for r in rows {
            let Some(value) = r.values.get(&metric).copied().flatten() else {
                continue;
            };
            match (r.method, r.samples) {
                (Method::ZeroShot, _) => baseline = baseline.or(Some(value)),
                (Method::Lora, Some(samples)) if samples > 0 => {
                    points.push((samples as f64, value))
                }
                (Method::Lora, _) => unplaced += 1,
            }
        }
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        if !points.is_empty() {
            series.push(Series {
                name: model.clone(),
                color: color(i),
                points,
                dots: true,
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
