//! The side-by-side table and chart: rows of (operation, actlog, SQLite,
//! ratio, target, met?) rendered as Markdown, a hand-written SVG bar chart of
//! the ratios, and the splice that puts generated text between marker
//! comments in `benches/README.md`.
//!
//! Every ratio is an *advantage*: how many times better actlog is than
//! SQLite on that row (throughput ÷ throughput, time ÷ time the other way
//! round, bytes ÷ bytes the other way round), so > 1 always means actlog
//! wins and every target reads "≥ N×".

use std::fmt::Write as _;

/// One line of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// What was measured, with its unit.
    pub operation: String,
    /// actlog's figure, formatted.
    pub actlog: String,
    /// SQLite's figure, formatted.
    pub sqlite: String,
    /// How many times better actlog is (> 1: actlog wins); `None` when the
    /// row has no comparable pair.
    pub advantage: Option<f64>,
    /// The advantage the issue asks for, if it sets a target for this row.
    pub target: Option<f64>,
}

impl Row {
    /// Whether the target is met (`None` without a target or a ratio).
    pub fn met(&self) -> Option<bool> {
        Some(self.advantage? >= self.target?)
    }
}

/// `1234567.8` → `1,234,568`; small values keep up to 3 significant digits.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    if v.abs() >= 100.0 {
        let s = format!("{:.0}", v.round());
        let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        format!("{sign}{out}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A ratio as `12×`, `3.4×`, `0.52×`.
pub fn times(v: f64) -> String {
    if v >= 100.0 {
        format!("{}×", num(v))
    } else if v >= 10.0 {
        format!("{v:.0}×")
    } else if v >= 1.0 {
        format!("{v:.1}×")
    } else if v >= 0.01 {
        format!("{v:.2}×")
    } else {
        format!("{v:.3}×")
    }
}

/// The Markdown table of `rows`.
pub fn markdown(rows: &[Row]) -> String {
    let mut s = String::from(
        "| operation | actlog | SQLite | actlog advantage | target | met? |\n\
         |---|---:|---:|---:|---:|---|\n",
    );
    for r in rows {
        let adv = r.advantage.map_or_else(|| "—".into(), times);
        let target = r
            .target
            .map_or_else(|| "—".into(), |t| format!("≥ {}", times(t)));
        let met = match r.met() {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "—",
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {adv} | {target} | {met} |",
            r.operation, r.actlog, r.sqlite
        );
    }
    s
}

/// The chart's label of an operation: its text up to the first ` (` or
/// `, p50` (the details stay in the table).
fn chart_label(operation: &str) -> &str {
    let cut = [" (", ", p50"]
        .iter()
        .filter_map(|m| operation.find(m))
        .min()
        .unwrap_or(operation.len());
    &operation[..cut]
}

fn escape_xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('`', "")
}

/// A horizontal bar chart (log scale) of every row with a ratio: the bar
/// runs from 1× to the advantage (green when its target is met, red when
/// missed, grey without a target); a black tick marks the target.
pub fn svg(rows: &[Row], title: &str) -> String {
    let rows: Vec<&Row> = rows.iter().filter(|r| r.advantage.is_some()).collect();
    let (label_w, plot_w, row_h, top, bottom) = (430.0, 520.0, 20.0, 46.0, 40.0);
    let width = label_w + plot_w + 30.0;
    let height = top + bottom + row_h * rows.len() as f64;
    let values = rows
        .iter()
        .flat_map(|r| [r.advantage, r.target])
        .flatten()
        .filter(|v| *v > 0.0);
    let (lo, hi) = values.fold((1.0f64, 1.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo_e, hi_e) = (lo.log10().floor().min(-1.0), hi.log10().ceil().max(1.0));
    let x = |v: f64| label_w + (v.max(1e-9).log10() - lo_e) / (hi_e - lo_e) * plot_w;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        s,
        r#"<rect width="100%" height="100%" fill="white"/><text x="10" y="18" font-size="14" font-weight="bold">{}</text>"#,
        escape_xml(title)
    );
    let _ = writeln!(
        s,
        r#"<text x="10" y="34" fill="dimgray">actlog advantage over SQLite (log scale; right of 1× = actlog better). Green: target met; red: missed; grey: no target. Black tick: target.</text>"#
    );
    let plot_bottom = top + row_h * rows.len() as f64;
    let mut e = lo_e as i32;
    while e <= hi_e as i32 {
        let v = 10f64.powi(e);
        let xv = x(v);
        let stroke = if e == 0 { "#000" } else { "#ccc" };
        let _ = writeln!(
            s,
            r#"<line x1="{xv:.1}" y1="{top}" x2="{xv:.1}" y2="{plot_bottom}" stroke="{stroke}"/><text x="{xv:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            plot_bottom + 14.0,
            escape_xml(&times(v))
        );
        e += 1;
    }
    for (i, r) in rows.iter().enumerate() {
        let y = top + row_h * i as f64;
        let adv = r.advantage.unwrap_or(1.0);
        let colour = match r.met() {
            Some(true) => "#2e9e44",
            Some(false) => "#d33f3f",
            None => "#9a9a9a",
        };
        let (x0, x1) = (x(1.0).min(x(adv)), x(1.0).max(x(adv)));
        let label: String = chart_label(&r.operation).chars().take(72).collect();
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text><rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{colour}"/><text x="{:.1}" y="{:.1}" fill="dimgray">{}</text>"#,
            label_w - 6.0,
            y + row_h * 0.68,
            escape_xml(&label),
            y + 3.0,
            (x1 - x0).max(1.0),
            row_h - 6.0,
            x1 + 4.0,
            y + row_h * 0.68,
            escape_xml(&times(adv))
        );
        if let Some(t) = r.target {
            let xt = x(t);
            let _ = writeln!(
                s,
                r#"<line x1="{xt:.1}" y1="{:.1}" x2="{xt:.1}" y2="{:.1}" stroke="black" stroke-width="2"/>"#,
                y + 1.0,
                y + row_h - 1.0
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

/// Replaces the text between `<!-- {key}:begin -->` and `<!-- {key}:end -->`
/// in `doc` with `body`; appends a new marked block at the end when the
/// markers are missing.
pub fn splice(doc: &str, key: &str, body: &str) -> String {
    let begin = format!("<!-- {key}:begin -->");
    let end = format!("<!-- {key}:end -->");
    match (doc.find(&begin), doc.find(&end)) {
        (Some(b), Some(e)) if b < e => format!("{}{begin}\n{body}{}", &doc[..b], &doc[e..]),
        _ => format!(
            "{}\n{begin}\n{body}{end}\n",
            doc.trim_end_matches('\n').to_string() + "\n"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(adv: Option<f64>, target: Option<f64>) -> Row {
        Row {
            operation: "op <x> (details)".into(),
            actlog: "1".into(),
            sqlite: "2".into(),
            advantage: adv,
            target,
        }
    }

    #[test]
    fn formats_numbers_and_ratios() {
        assert_eq!(num(1_234_567.8), "1,234,568");
        assert_eq!(num(999.4), "999");
        assert_eq!(num(12.34), "12.3");
        assert_eq!(num(0.1234), "0.12");
        assert_eq!(times(2500.0), "2,500×");
        assert_eq!(times(12.4), "12×");
        assert_eq!(times(0.5), "0.50×");
        assert_eq!(times(0.001), "0.001×");
    }

    #[test]
    fn table_marks_met_and_missed_targets() {
        let t = markdown(&[
            row(Some(20.0), Some(10.0)),
            row(Some(2.0), Some(10.0)),
            row(None, None),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[2].ends_with("| 20× | ≥ 10× | yes |"), "{}", lines[2]);
        assert!(
            lines[3].ends_with("| 2.0× | ≥ 10× | **no** |"),
            "{}",
            lines[3]
        );
        assert!(lines[4].ends_with("| — | — | — |"), "{}", lines[4]);
    }

    #[test]
    fn chart_has_one_bar_per_ratio_and_escapes_labels() {
        let s = svg(
            &[
                row(Some(20.0), Some(10.0)),
                row(Some(0.5), None),
                row(None, None),
            ],
            "t",
        );
        assert_eq!(s.matches("<rect x=").count(), 2);
        assert!(s.contains("op &lt;x&gt;"));
        assert!(s.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn chart_labels_drop_the_details() {
        assert_eq!(chart_label("`q`, p50 / p99 (SQLite plan: x)"), "`q`");
        assert_eq!(chart_label("retention (500 records)"), "retention");
        assert_eq!(chart_label("plain"), "plain");
    }

    #[test]
    fn splice_replaces_between_markers_or_appends() {
        let doc = "a\n<!-- k:begin -->\nold\n<!-- k:end -->\nb\n";
        assert_eq!(
            splice(doc, "k", "new\n"),
            "a\n<!-- k:begin -->\nnew\n<!-- k:end -->\nb\n"
        );
        assert_eq!(
            splice("a\n", "k", "x\n"),
            "a\n\n<!-- k:begin -->\nx\n<!-- k:end -->\n"
        );
    }
}
