//! Hand-written SVG plots: no plotting dependency, files any browser (and GitHub) renders.

use std::fmt::Write;

const WIDTH: f64 = 820.0;
const HEIGHT: f64 = 440.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 24.0;
const TOP: f64 = 64.0;
const BOTTOM: f64 = 64.0;

/// A line of (x, y) points.
pub struct Series<'a> {
    pub name: &'a str,
    pub color: &'a str,
    pub points: &'a [(f64, f64)],
}

/// Counts over shared bucket edges.
pub struct Bars<'a> {
    pub name: &'a str,
    pub color: &'a str,
    pub counts: &'a [u64],
}

/// A labelled reference value: a horizontal line on a line chart, a vertical one on a histogram.
pub struct Marker<'a> {
    pub value: f64,
    pub label: String,
    pub color: &'a str,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A step of 1, 2 or 5 × 10ⁿ giving about `ticks` ticks over `range`.
fn nice_step(range: f64, ticks: f64) -> f64 {
    let raw = (range / ticks).max(f64::MIN_POSITIVE);
    let magnitude = 10f64.powf(raw.log10().floor());
    let norm = raw / magnitude;
    let step = if norm < 1.5 {
        1.0
    } else if norm < 3.0 {
        2.0
    } else if norm < 7.0 {
        5.0
    } else {
        10.0
    };
    step * magnitude
}

fn tick_label(v: f64) -> String {
    if v.abs() >= 10_000.0 {
        format!("{}k", tick_label(v / 1000.0))
    } else if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').to_owned()
    }
}

fn frame(svg: &mut String, title: &str, x_label: &str, y_label: &str) {
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="24" text-anchor="middle" font-size="16" font-weight="bold">{}</text>
<text x="{}" y="{}" text-anchor="middle">{}</text>
<text transform="translate(18 {}) rotate(-90)" text-anchor="middle">{}</text>
"##,
        WIDTH / 2.0,
        escape(title),
        LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
        HEIGHT - 16.0,
        escape(x_label),
        TOP + (HEIGHT - TOP - BOTTOM) / 2.0,
        escape(y_label),
    );
}

fn legend(svg: &mut String, entries: &[(&str, &str)]) {
    let mut x = LEFT;
    for (name, color) in entries {
        let _ = writeln!(
            svg,
            r#"<rect x="{x}" y="{}" width="14" height="10" fill="{color}"/><text x="{}" y="{}">{}</text>"#,
            TOP - 19.0,
            x + 20.0,
            TOP - 10.0,
            escape(name)
        );
        x += 40.0 + 7.0 * name.chars().count() as f64;
    }
}

/// Lines over a linear x and y axis from 0, with horizontal reference lines.
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series<'_>],
    markers: &[Marker<'_>],
) -> String {
    let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let points = series.iter().flat_map(|s| s.points.iter());
    let x_max = points.clone().map(|p| p.0).fold(1.0, f64::max);
    let y_max = points
        .map(|p| p.1)
        .chain(markers.iter().map(|m| m.value))
        .fold(1.0, f64::max)
        * 1.1;
    let x = |v: f64| LEFT + v / x_max * plot_w;
    let y = |v: f64| TOP + plot_h - v / y_max * plot_h;
    let mut svg = String::new();
    frame(&mut svg, title, x_label, y_label);
    let step = nice_step(y_max, 6.0);
    let mut v = 0.0;
    while v <= y_max {
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" x2="{0}" y1="{1}" y2="{1}" stroke="#e0e0e0"/><text x="{2}" y="{3}" text-anchor="end">{4}</text>"##,
            LEFT + plot_w,
            y(v),
            LEFT - 6.0,
            y(v) + 4.0,
            tick_label(v)
        );
        v += step;
    }
    let step = nice_step(x_max, 8.0);
    let mut v = 0.0;
    while v <= x_max + 1e-9 {
        let _ = writeln!(
            svg,
            r##"<line x1="{0}" x2="{0}" y1="{1}" y2="{2}" stroke="#999"/><text x="{0}" y="{3}" text-anchor="middle">{4}</text>"##,
            x(v),
            TOP + plot_h,
            TOP + plot_h + 5.0,
            TOP + plot_h + 20.0,
            tick_label(v)
        );
        v += step;
    }
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>"##
    );
    for m in markers {
        let _ = writeln!(
            svg,
            r#"<line x1="{LEFT}" x2="{0}" y1="{1}" y2="{1}" stroke="{2}" stroke-dasharray="6 4" stroke-width="1.5"/><text x="{3}" y="{4}" fill="{2}">{5}</text>"#,
            LEFT + plot_w,
            y(m.value),
            m.color,
            LEFT + 6.0,
            y(m.value) - 5.0,
            escape(&m.label)
        );
    }
    for s in series {
        let path: Vec<String> = s
            .points
            .iter()
            .map(|&(px, py)| format!("{:.1},{:.1}", x(px), y(py)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>"#,
            path.join(" "),
            s.color
        );
    }
    legend(
        &mut svg,
        &series.iter().map(|s| (s.name, s.color)).collect::<Vec<_>>(),
    );
    svg.push_str("</svg>\n");
    svg
}

/// Histograms over shared bucket `edges` (ms) on a log x axis, as a share of each series'
/// samples, with vertical reference lines.
pub fn histogram(
    title: &str,
    x_label: &str,
    edges: &[f64],
    bars: &[Bars<'_>],
    markers: &[Marker<'_>],
) -> String {
    let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let used = |b: &Bars<'_>| {
        let first = b.counts.iter().position(|&c| c > 0);
        let last = b.counts.iter().rposition(|&c| c > 0);
        first.zip(last)
    };
    let (first, last) = bars
        .iter()
        .filter_map(used)
        .fold((usize::MAX, 0), |(f, l), (a, b)| (f.min(a), l.max(b)));
    let (first, last) = if first == usize::MAX {
        (0, edges.len().saturating_sub(2))
    } else {
        (first, last)
    };
    let lo = edges[first].log10().floor();
    let hi = edges[(last + 1).min(edges.len() - 1)].log10().ceil().max(
        markers
            .iter()
            .map(|m| m.value.log10().ceil())
            .fold(lo + 1.0, f64::max),
    );
    let x = |ms: f64| LEFT + (ms.max(1e-9).log10() - lo) / (hi - lo) * plot_w;
    let shares: Vec<Vec<f64>> = bars
        .iter()
        .map(|b| {
            let total = b.counts.iter().sum::<u64>().max(1) as f64;
            b.counts.iter().map(|&c| c as f64 / total * 100.0).collect()
        })
        .collect();
    let y_max = shares.iter().flatten().copied().fold(1.0, f64::max) * 1.1;
    let y = |v: f64| TOP + plot_h - v / y_max * plot_h;
    let mut svg = String::new();
    frame(&mut svg, title, x_label, "share of commands (%)");
    let step = nice_step(y_max, 6.0);
    let mut v = 0.0;
    while v <= y_max {
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" x2="{0}" y1="{1}" y2="{1}" stroke="#e0e0e0"/><text x="{2}" y="{3}" text-anchor="end">{4}</text>"##,
            LEFT + plot_w,
            y(v),
            LEFT - 6.0,
            y(v) + 4.0,
            tick_label(v)
        );
        v += step;
    }
    let mut decade = lo;
    while decade <= hi + 1e-9 {
        let ms = 10f64.powf(decade);
        let _ = writeln!(
            svg,
            r##"<line x1="{0}" x2="{0}" y1="{TOP}" y2="{1}" stroke="#e0e0e0"/><text x="{0}" y="{2}" text-anchor="middle">{3}</text>"##,
            x(ms),
            TOP + plot_h + 5.0,
            TOP + plot_h + 20.0,
            tick_label(ms)
        );
        decade += 1.0;
    }
    for (b, share) in bars.iter().zip(&shares) {
        for (i, &s) in share.iter().enumerate() {
            if s <= 0.0 || i + 1 >= edges.len() {
                continue;
            }
            let (x0, x1) = (x(edges[i]), x(edges[i + 1]));
            let _ = writeln!(
                svg,
                r#"<rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}" fill-opacity="0.55"/>"#,
                y(s),
                (x1 - x0 - 0.5).max(0.5),
                TOP + plot_h - y(s),
                b.color
            );
        }
    }
    let _ = writeln!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>"##
    );
    for (i, m) in markers.iter().enumerate() {
        // Labels near the right edge go to the left of their line.
        let (label_x, anchor) = if x(m.value) > LEFT + plot_w - 180.0 {
            (x(m.value) - 4.0, "end")
        } else {
            (x(m.value) + 4.0, "start")
        };
        let _ = writeln!(
            svg,
            r#"<line x1="{0:.1}" x2="{0:.1}" y1="{TOP}" y2="{1}" stroke="{2}" stroke-dasharray="6 4" stroke-width="1.5"/><text x="{3:.1}" y="{4}" fill="{2}" text-anchor="{5}">{6}</text>"#,
            x(m.value),
            TOP + plot_h,
            m.color,
            label_x,
            TOP + 20.0 + i as f64 * 16.0,
            anchor,
            escape(&m.label)
        );
    }
    legend(
        &mut svg,
        &bars.iter().map(|b| (b.name, b.color)).collect::<Vec<_>>(),
    );
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_round() {
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9 * b;
        assert!(close(nice_step(100.0, 5.0), 20.0));
        assert!(close(nice_step(2750.0, 6.0), 500.0));
        assert!(close(nice_step(1.0, 10.0), 0.1));
    }

    #[test]
    fn charts_are_well_formed() {
        let line = line_chart(
            "t <1>",
            "x",
            "y",
            &[Series {
                name: "a & b",
                color: "#000",
                points: &[(0.5, 10.0), (1.0, 12.0)],
            }],
            &[Marker {
                value: 20.0,
                label: "goal".into(),
                color: "#0a0",
            }],
        );
        assert!(line.starts_with("<svg") && line.ends_with("</svg>\n"));
        assert!(line.contains("t &lt;1&gt;") && line.contains("a &amp; b"));
        let edges = [0.1, 1.0, 10.0, 100.0];
        let hist = histogram(
            "h",
            "ms",
            &edges,
            &[Bars {
                name: "n",
                color: "#f00",
                counts: &[0, 5, 1],
            }],
            &[],
        );
        assert_eq!(hist.matches("fill-opacity").count(), 2);
        let empty = histogram("h", "ms", &edges, &[], &[]);
        assert!(empty.ends_with("</svg>\n"));
    }
}
