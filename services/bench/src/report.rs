//! The report: one row per figure, each beside the limit it is set against and the target the
//! issue sets, printed as a table (plain or Markdown) and written as JSON.

use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;

/// One figure of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Short id (`L1`, `T2`, …), stable across runs for comparing reports.
    pub id: String,
    pub measure: String,
    /// The figure as printed.
    pub value: String,
    /// The figure as a number, in `unit`.
    pub number: Option<f64>,
    pub unit: String,
    /// The figure as a share of the limit it is set against, e.g. "74% of L2".
    pub vs_limit: Option<String>,
    /// The same share as a fraction.
    pub ratio: Option<f64>,
    pub target: Option<String>,
    /// Whether the target is met (`None`: no target, or not measurable in this run).
    pub met: Option<bool>,
    pub note: String,
}

impl Row {
    /// A row with a figure and nothing else yet.
    pub fn new(id: &str, measure: impl Into<String>, number: Option<f64>, value: String, unit: &str) -> Self {
        Self {
            id: id.to_owned(),
            measure: measure.into(),
            value,
            number,
            unit: unit.to_owned(),
            vs_limit: None,
            ratio: None,
            target: None,
            met: None,
            note: String::new(),
        }
    }

    /// Sets the figure against limit `limit_id` whose value is `limit`.
    pub fn against(mut self, limit_id: &str, limit: f64) -> Self {
        if let (Some(n), true) = (self.number, limit > 0.0) {
            self.ratio = Some(n / limit);
            self.vs_limit = Some(format!("{:.0}% of {limit_id}", n * 100.0 / limit));
        }
        self
    }

    pub fn target(mut self, target: &str, met: Option<bool>) -> Self {
        self.target = Some(target.to_owned());
        self.met = met;
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }
}

/// A rate, e.g. `12,345 /s`.
pub fn rate(v: f64) -> String {
    format!("{} /s", thousands(v.round() as u64))
}

/// A latency triple, e.g. `p50 1.2 · p95 3.4 · p99 5.6 ms`.
pub fn percentiles(s: &crate::stats::Summary) -> String {
    format!("p50 {:.2} · p95 {:.2} · p99 {:.2} ms", s.p50_ms, s.p95_ms, s.p99_ms)
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Memory in MiB.
pub fn mib(kib: u64) -> String {
    format!("{:.0} MiB", kib as f64 / 1024.0)
}

fn met(m: Option<bool>) -> &'static str {
    match m {
        Some(true) => "yes",
        Some(false) => "NO",
        None => "",
    }
}

/// The rows as an aligned plain-text table.
pub fn plain(rows: &[Row]) -> String {
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.id.clone(),
                r.measure.clone(),
                r.value.clone(),
                r.vs_limit.clone().unwrap_or_default(),
                r.target.as_ref().map(|t| format!("{t} {}", met(r.met))).unwrap_or_default(),
                r.note.clone(),
            ]
        })
        .collect();
    let header = ["#", "measure", "value", "vs limit", "target", "note"].map(str::to_owned);
    let mut widths = [0usize; 6];
    for row in std::iter::once(&header).chain(cells.iter()) {
        for (w, c) in widths.iter_mut().zip(row.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    // The note column is not padded: it is last and may be long.
    let line = |row: &[String; 6]| {
        let mut s = String::new();
        for (i, c) in row.iter().enumerate() {
            if i == 5 {
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&" ".repeat(widths[i] - c.chars().count() + 2));
            }
        }
        s.trim_end().to_owned()
    };
    let mut out = line(&header);
    out.push('\n');
    out.push_str(&"-".repeat(widths.iter().take(5).sum::<usize>() + 10 + 4));
    out.push('\n');
    for row in &cells {
        out.push_str(&line(row));
        out.push('\n');
    }
    out
}

/// The rows as a Markdown table.
pub fn markdown(rows: &[Row]) -> String {
    let esc = |s: &str| s.replace('|', "\\|");
    let mut out = String::from("| # | measure | value | vs limit | target | met | note |\n");
    out.push_str("|---|---|---|---|---|---|---|\n");
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            r.id,
            esc(&r.measure),
            esc(&r.value),
            r.vs_limit.as_deref().unwrap_or(""),
            esc(r.target.as_deref().unwrap_or("")),
            met(r.met),
            esc(&r.note),
        ));
    }
    out
}

/// Writes `report` as pretty JSON to `path`, creating its directory.
///
/// # Errors
/// The file cannot be written.
pub fn write_json(path: &Path, report: &serde_json::Value) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, serde_json::to_vec_pretty(report)?).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn ratio_against_a_limit() {
        let row = Row::new("T2", "x", Some(700.0), rate(700.0), "/s").against("L2", 1000.0);
        assert_eq!(row.vs_limit.as_deref(), Some("70% of L2"));
        assert_eq!(row.ratio, Some(0.7));
        let no_limit = Row::new("T2", "x", Some(700.0), rate(700.0), "/s").against("L2", 0.0);
        assert_eq!(no_limit.ratio, None);
    }

    #[test]
    fn markdown_escapes_pipes() {
        let table = markdown(&[Row::new("X", "a|b", None, "-".to_owned(), "")]);
        assert!(table.contains("a\\|b"));
    }
}
