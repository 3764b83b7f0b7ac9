//! Small hand-written SVG charts: grouped bars and lines. Plain SVG 1.1 with
//! inline styles, so the files render the same on GitHub and in a browser.

use std::fmt::Write;

const W: f64 = 720.0;
const H: f64 = 360.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 46.0;
const BOTTOM: f64 = 70.0;
/// Series colours (colour-blind friendly).
const COLOURS: [&str; 6] = [
    "#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00",
];

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A "nice" axis maximum and tick step for data up to `max`.
fn nice_axis(max: f64) -> (f64, f64) {
    if max <= 0.0 || !max.is_finite() {
        return (1.0, 0.2);
    }
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    ((max / step).ceil() * step, step)
}

fn fmt_num(v: f64) -> String {
    if v == 0.0 {
        "0".to_owned()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn header(out: &mut String, title: &str, subtitle: Option<&str>) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" text-anchor="middle" font-size="15" font-weight="bold">{}</text>
"#,
        W / 2.0,
        esc(title)
    );
    if let Some(s) = subtitle {
        let _ = writeln!(
            out,
            r##"<text x="{}" y="38" text-anchor="middle" fill="#555">{}</text>"##,
            W / 2.0,
            esc(s)
        );
    }
}

fn y_axis(out: &mut String, ymax: f64, step: f64, unit: &str) {
    let plot_h = H - TOP - BOTTOM;
    let mut v = 0.0;
    while v <= ymax + step / 2.0 {
        let y = H - BOTTOM - v / ymax * plot_h;
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            fmt_num(v)
        );
        v += step;
    }
    let _ = writeln!(
        out,
        r#"<text transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
        TOP + plot_h / 2.0,
        esc(unit)
    );
    let _ = writeln!(
        out,
        r##"<line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#333"/>"##,
        H - BOTTOM,
        W - RIGHT,
        H - BOTTOM
    );
}

fn legend(out: &mut String, names: &[&str]) {
    let mut x = LEFT;
    let y = H - 14.0;
    for (i, name) in names.iter().enumerate() {
        let _ = writeln!(
            out,
            r#"<rect x="{x:.1}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            y - 10.0,
            COLOURS[i % COLOURS.len()],
            x + 16.0,
            y,
            esc(name)
        );
        x += 24.0 + 7.0 * name.len() as f64;
    }
}

/// Grouped bar chart: one group per category, one bar per series.
#[derive(Clone, Debug, Default)]
pub struct BarChart {
    /// Title line.
    pub title: String,
    /// Second line (machine, date, …).
    pub subtitle: Option<String>,
    /// Y axis label.
    pub unit: String,
    /// Group labels.
    pub categories: Vec<String>,
    /// `(series name, one value per category)`; NaN leaves a gap.
    pub series: Vec<(String, Vec<f64>)>,
}

impl BarChart {
    /// The chart as an SVG document.
    pub fn render(&self) -> String {
        let mut out = String::new();
        header(&mut out, &self.title, self.subtitle.as_deref());
        let max = self
            .series
            .iter()
            .flat_map(|(_, v)| v.iter().copied())
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max);
        let (ymax, step) = nice_axis(max * 1.08);
        y_axis(&mut out, ymax, step, &self.unit);
        let plot_w = W - LEFT - RIGHT;
        let plot_h = H - TOP - BOTTOM;
        let groups = self.categories.len().max(1) as f64;
        let group_w = plot_w / groups;
        let n = self.series.len().max(1) as f64;
        let bar_w = (group_w * 0.8 / n).min(60.0);
        for (g, cat) in self.categories.iter().enumerate() {
            let gx = LEFT + g as f64 * group_w;
            let start = gx + (group_w - bar_w * n) / 2.0;
            for (s, (_, values)) in self.series.iter().enumerate() {
                let v = values.get(g).copied().unwrap_or(f64::NAN);
                if !v.is_finite() {
                    continue;
                }
                let h = v / ymax * plot_h;
                let x = start + s as f64 * bar_w;
                let _ = writeln!(
                    out,
                    r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{}"/><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">{}</text>"#,
                    H - BOTTOM - h,
                    bar_w - 2.0,
                    COLOURS[s % COLOURS.len()],
                    x + bar_w / 2.0 - 1.0,
                    H - BOTTOM - h - 3.0,
                    fmt_num(v)
                );
            }
            let _ = writeln!(
                out,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                gx + group_w / 2.0,
                H - BOTTOM + 16.0,
                esc(cat)
            );
        }
        let names: Vec<&str> = self.series.iter().map(|(n, _)| n.as_str()).collect();
        legend(&mut out, &names);
        out.push_str("</svg>\n");
        out
    }
}

/// Line chart over a linear or logarithmic x axis.
#[derive(Clone, Debug, Default)]
pub struct LineChart {
    /// Title line.
    pub title: String,
    /// Second line.
    pub subtitle: Option<String>,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// Logarithmic x axis (all x must be > 0).
    pub log_x: bool,
    /// Fixed top of the y axis (e.g. 1 for a CDF); `None` fits the data.
    pub y_max: Option<f64>,
    /// `(series name, points)`.
    pub series: Vec<(String, Vec<(f64, f64)>)>,
}

impl LineChart {
    /// The chart as an SVG document.
    pub fn render(&self) -> String {
        let mut out = String::new();
        header(&mut out, &self.title, self.subtitle.as_deref());
        let pts = || self.series.iter().flat_map(|(_, p)| p.iter().copied());
        let ymax_data = pts()
            .map(|p| p.1)
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max);
        let (ymax, step) = match self.y_max {
            Some(m) if m > 0.0 => (m, m / 5.0),
            _ => nice_axis(ymax_data * 1.05),
        };
        y_axis(&mut out, ymax, step, &self.y_label);
        let tx = |x: f64| if self.log_x { x.max(1e-12).log10() } else { x };
        let xs: Vec<f64> = pts().map(|p| tx(p.0)).filter(|v| v.is_finite()).collect();
        let (mut xmin, mut xmax) = xs
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        if xs.is_empty() {
            (xmin, xmax) = (0.0, 1.0);
        }
        if self.log_x {
            xmin = xmin.floor();
            xmax = xmax.ceil().max(xmin + 1.0);
        } else {
            let (nmax, _) = nice_axis(xmax);
            xmax = nmax;
            xmin = xmin.min(0.0);
        }
        let plot_w = W - LEFT - RIGHT;
        let plot_h = H - TOP - BOTTOM;
        let px = |x: f64| LEFT + (tx(x) - xmin) / (xmax - xmin) * plot_w;
        let py = |y: f64| H - BOTTOM - y / ymax * plot_h;
        // X ticks.
        if self.log_x {
            let mut e = xmin;
            while e <= xmax + 1e-9 {
                let x = LEFT + (e - xmin) / (xmax - xmin) * plot_w;
                let _ = writeln!(
                    out,
                    r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#333"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                    H - BOTTOM,
                    H - BOTTOM + 4.0,
                    H - BOTTOM + 16.0,
                    fmt_num(10f64.powf(e))
                );
                e += 1.0;
            }
        } else {
            let (_, step) = nice_axis(xmax);
            let mut v = 0.0;
            while v <= xmax + step / 2.0 {
                let x = LEFT + (v - xmin) / (xmax - xmin) * plot_w;
                let _ = writeln!(
                    out,
                    r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{:.1}" stroke="#333"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                    H - BOTTOM,
                    H - BOTTOM + 4.0,
                    H - BOTTOM + 16.0,
                    fmt_num(v)
                );
                v += step;
            }
        }
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            LEFT + plot_w / 2.0,
            H - BOTTOM + 34.0,
            esc(&self.x_label)
        );
        for (i, (_, points)) in self.series.iter().enumerate() {
            let path: Vec<String> = points
                .iter()
                .filter(|p| p.0.is_finite() && p.1.is_finite())
                .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
                .collect();
            if path.is_empty() {
                continue;
            }
            let _ = writeln!(
                out,
                r#"<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>"#,
                COLOURS[i % COLOURS.len()],
                path.join(" ")
            );
        }
        let names: Vec<&str> = self.series.iter().map(|(n, _)| n.as_str()).collect();
        legend(&mut out, &names);
        out.push_str("</svg>\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_well_formed() {
        let bars = BarChart {
            title: "a < b".into(),
            subtitle: Some("s".into()),
            unit: "Mpps".into(),
            categories: vec!["x".into(), "y".into()],
            series: vec![
                ("one".into(), vec![1.0, f64::NAN]),
                ("two".into(), vec![2.5, 3.0]),
            ],
        }
        .render();
        assert!(bars.starts_with("<svg") && bars.ends_with("</svg>\n"));
        assert!(bars.contains("a &lt; b"));
        assert_eq!(bars.matches("<rect").count(), 1 + 3 + 2);
        let lines = LineChart {
            title: "t".into(),
            log_x: true,
            series: vec![("s".into(), vec![(10.0, 1.0), (1000.0, 2.0)])],
            ..Default::default()
        }
        .render();
        assert!(lines.contains("<polyline"));
        assert_eq!(nice_axis(7.3), (8.0, 2.0));
    }
}
