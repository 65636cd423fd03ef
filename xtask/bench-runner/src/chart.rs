//! `ratios.svg`: ops/s ratio and client CPU/op ratio (ours/theirs) per workload and
//! concurrency, with lines at 1.0 and at the targets 1.10 (ops/s) and 0.70 (CPU/op).
//! Hand-written SVG; no plotting dependency.

use std::fmt::Write as _;

use crate::report::Row;

const GROUP_W: f64 = 54.0;
const BAR_W: f64 = 20.0;
const LEFT: f64 = 60.0;
const TOP: f64 = 50.0;
const PLOT_H: f64 = 300.0;
const BOTTOM: f64 = 150.0;
const OPS_COLOR: &str = "#4e79a7";
const CPU_COLOR: &str = "#f28e2b";

pub(crate) fn svg(rows: &[Row]) -> String {
    let rows: Vec<&Row> = rows
        .iter()
        .filter(|r| r.ops_ratio().is_finite() || r.cpu_ratio().is_finite())
        .collect();
    let max = rows
        .iter()
        .flat_map(|r| [r.ops_ratio(), r.cpu_ratio()])
        .filter(|v| v.is_finite())
        .fold(1.5f64, f64::max)
        .min(4.0);
    let y_max = (max * 1.1 * 4.0).ceil() / 4.0;
    let width = LEFT + GROUP_W * rows.len().max(1) as f64 + 180.0;
    let height = TOP + PLOT_H + BOTTOM;
    let y = |v: f64| TOP + PLOT_H - (v.min(y_max) / y_max) * PLOT_H;
    let right = LEFT + GROUP_W * rows.len().max(1) as f64;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="20" font-size="14" font-weight="bold">etcd3: ours / theirs (crates.io etcd-client 0.21.1), medians</text>"#
    );
    // Legend.
    for (i, (color, text)) in [
        (OPS_COLOR, "ops/s ratio (higher is better)"),
        (CPU_COLOR, "client CPU/op ratio (lower is better)"),
    ]
    .into_iter()
    .enumerate()
    {
        let lx = LEFT + i as f64 * 230.0;
        let _ = writeln!(
            s,
            r#"<rect x="{lx}" y="30" width="12" height="12" fill="{color}"/><text x="{:.0}" y="40">{text}</text>"#,
            lx + 16.0
        );
    }
    // Axis and grid.
    let mut tick = 0.0;
    while tick <= y_max + 1e-9 {
        let ty = y(tick);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{ty:.1}" x2="{right:.1}" y2="{ty:.1}" stroke="#e5e5e5"/><text x="{:.0}" y="{:.1}" text-anchor="end">{tick:.2}</text>"##,
            LEFT - 6.0,
            ty + 4.0
        );
        tick += 0.25;
    }
    let _ = writeln!(
        s,
        r##"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{:.1}" stroke="#333"/>"##,
        TOP + PLOT_H
    );
    // Bars.
    for (i, row) in rows.iter().enumerate() {
        let gx = LEFT + i as f64 * GROUP_W + (GROUP_W - 2.0 * BAR_W) / 2.0;
        for (j, (v, color)) in [(row.ops_ratio(), OPS_COLOR), (row.cpu_ratio(), CPU_COLOR)]
            .into_iter()
            .enumerate()
        {
            if !v.is_finite() {
                continue;
            }
            let bx = gx + j as f64 * BAR_W;
            let (top, h) = (y(v), TOP + PLOT_H - y(v));
            let _ = writeln!(
                s,
                r#"<rect x="{bx:.1}" y="{top:.1}" width="{:.1}" height="{h:.1}" fill="{color}"><title>{}: {v:.2}</title></rect><text x="{:.1}" y="{:.1}" font-size="9" text-anchor="middle">{v:.2}</text>"#,
                BAR_W - 2.0,
                row.label(),
                bx + BAR_W / 2.0 - 1.0,
                top - 3.0
            );
        }
        let lx = LEFT + (i as f64 + 0.5) * GROUP_W;
        let ly = TOP + PLOT_H + 12.0;
        let _ = writeln!(
            s,
            r#"<text x="{lx:.1}" y="{ly:.1}" text-anchor="end" transform="rotate(-45 {lx:.1} {ly:.1})">{}</text>"#,
            row.label()
        );
    }
    // Reference lines.
    for (v, color, dash, text) in [
        (1.0, "#333", "", "1.0 (parity)"),
        (
            1.10,
            "#2a9d3a",
            r#" stroke-dasharray="6 4""#,
            "1.10 ops/s target",
        ),
        (
            0.70,
            "#c0392b",
            r#" stroke-dasharray="6 4""#,
            "0.70 CPU/op target",
        ),
    ] {
        let ly = y(v);
        let _ = writeln!(
            s,
            r#"<line x1="{LEFT}" y1="{ly:.1}" x2="{right:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="1.5"{dash}/><text x="{:.1}" y="{:.1}" fill="{color}">{text}</text>"#,
            right + 6.0,
            ly + 4.0
        );
    }
    s.push_str("</svg>\n");
    s
}
