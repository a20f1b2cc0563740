//! The reports as people read them: a terminal table, Markdown for a job summary, the
//! generated sizes page, and a hand-made SVG bar chart of where each image's bytes are.

use std::fmt::Write;

use super::analysis::Report;
use super::{Baseline, Diff, Outcome};
use crate::docker::human_bytes;

/// Rows shown of each list; the JSON and the baseline keep more.
const SHOWN: usize = 15;
const INSTRUCTION_WIDTH: usize = 70;

fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        format!("{}...", text.chars().take(width - 3).collect::<String>())
    }
}

fn signed(before: u64, after: u64) -> String {
    if after >= before { format!("+{}", human_bytes(after - before)) } else { format!("-{}", human_bytes(before - after)) }
}

fn heading(report: &Report) -> String {
    let id = report.id.trim_start_matches("sha256:");
    match &report.target {
        Some(target) => format!("{} (target {target}, {})", report.image, &id[..id.len().min(12)]),
        None => format!("{} ({})", report.image, &id[..id.len().min(12)]),
    }
}

fn budget_line(used: u64, budget: Option<u64>) -> String {
    match budget {
        Some(budget) if used > budget => format!("OVER its budget of {} by {}", human_bytes(budget), human_bytes(used - budget)),
        Some(budget) => format!("within its budget of {} ({} to spare)", human_bytes(budget), human_bytes(budget - used)),
        None => "no budget set".to_string(),
    }
}

pub fn human(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    for outcome in outcomes {
        let r = &outcome.report;
        let _ = writeln!(out, "{}", heading(r));
        let _ = writeln!(
            out,
            "  total {} ({} B; docker image inspect: {} B), {} compressed; {}",
            human_bytes(r.total_bytes),
            r.total_bytes,
            outcome.inspect_bytes,
            human_bytes(r.compressed_bytes),
            budget_line(r.total_bytes, outcome.size_budget)
        );
        let _ = writeln!(
            out,
            "  waste {} in {} files; {}",
            human_bytes(r.waste_bytes),
            r.waste_files,
            budget_line(r.waste_bytes, outcome.waste_budget)
        );
        let _ = writeln!(out, "\n  {:>3}  {:>10}  {:>10}  {:>7}  instruction", "#", "size", "gzip", "files");
        for (i, layer) in r.layers.iter().enumerate() {
            let _ = writeln!(
                out,
                "  {:>3}  {:>10}  {:>10}  {:>7}  {}",
                i + 1,
                human_bytes(layer.bytes),
                human_bytes(layer.compressed_bytes),
                layer.files,
                cut(&layer.instruction, INSTRUCTION_WIDTH)
            );
        }
        let _ = writeln!(out, "\n  where the bytes are");
        for group in r.groups.iter().take(SHOWN) {
            let _ = writeln!(out, "  {:>10}  {}", human_bytes(group.bytes), group.path);
        }
        let _ = writeln!(out, "\n  largest files");
        for file in r.largest_files.iter().take(10) {
            let _ = writeln!(out, "  {:>10}  {}", human_bytes(file.bytes), file.path);
        }
        if !r.waste.is_empty() {
            let _ = writeln!(out, "\n  waste (lower-layer copies a later layer deletes or overwrites)");
            for w in r.waste.iter().take(SHOWN) {
                let _ = writeln!(out, "  {:>10}  {}  (layer {}, {} by layer {})", human_bytes(w.bytes), w.path, w.layer, w.how, w.by_layer);
            }
        }
        if !r.offenders.is_empty() {
            let _ = writeln!(out, "\n  known offenders");
            for o in r.offenders.iter().take(SHOWN) {
                let _ = writeln!(out, "  {:>10}  {:<17}  {}", human_bytes(o.bytes), o.kind, o.path);
            }
        }
        if let Some(diff) = &outcome.diff {
            out.push_str(&human_diff(diff));
        }
        let _ = writeln!(out, "  read in {:.1} s\n", outcome.seconds);
    }
    out
}

fn human_diff(diff: &Diff) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n  compared with {}: total {} -> {} ({}), compressed {} -> {} ({})",
        diff.against,
        human_bytes(diff.total_before),
        human_bytes(diff.total_after),
        signed(diff.total_before, diff.total_after),
        human_bytes(diff.compressed_before),
        human_bytes(diff.compressed_after),
        signed(diff.compressed_before, diff.compressed_after)
    );
    for layer in diff.layers.iter().filter(|l| !l.same) {
        let show = |b: Option<u64>| b.map_or("-".to_string(), human_bytes);
        let change = signed(layer.before.unwrap_or(0), layer.after.unwrap_or(0));
        let _ = writeln!(
            out,
            "  layer {:>2}  {:>10} -> {:>10} ({change})  {}",
            layer.layer,
            show(layer.before),
            show(layer.after),
            cut(&layer.instruction, 50)
        );
    }
    for path in diff.paths.iter().take(SHOWN) {
        let what = match (path.before, path.after) {
            (0, _) => "added",
            (_, 0) => "removed",
            _ => "changed",
        };
        let _ = writeln!(out, "  {what:<8} {:>11}  {}", signed(path.before, path.after), path.path);
    }
    out
}

/// Markdown cells cannot hold a `|` or a line break.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// One image as Markdown: shared by the job summary and the generated page.
fn markdown_report(out: &mut String, r: &Report, chart: Option<&str>) {
    let _ = writeln!(
        out,
        "**{}** uncompressed, **{}** compressed (gzip, what a registry transfer moves); \
         waste **{}** in {} files. Image `{}`.\n",
        human_bytes(r.total_bytes),
        human_bytes(r.compressed_bytes),
        human_bytes(r.waste_bytes),
        r.waste_files,
        cell(&r.image)
    );
    if let Some(chart) = chart {
        let _ = writeln!(out, "![where the bytes of {} are]({chart})\n", cell(&r.image));
    }
    let _ = writeln!(out, "| # | size | gzip | files | instruction |\n|--:|--:|--:|--:|---|");
    for (i, l) in r.layers.iter().enumerate() {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | `{}` |",
            i + 1,
            human_bytes(l.bytes),
            human_bytes(l.compressed_bytes),
            l.files,
            cell(&cut(&l.instruction, 100)).replace('`', "'")
        );
    }
    let _ = writeln!(out, "\n| where the bytes are | size |\n|---|--:|");
    for g in r.groups.iter().take(SHOWN) {
        let _ = writeln!(out, "| `{}` | {} |", cell(&g.path), human_bytes(g.bytes));
    }
    if !r.waste.is_empty() {
        let _ = writeln!(out, "\n| waste | size | in layer | how |\n|---|--:|--:|---|");
        for w in r.waste.iter().take(SHOWN) {
            let _ = writeln!(out, "| `{}` | {} | {} | {} by layer {} |", cell(&w.path), human_bytes(w.bytes), w.layer, w.how, w.by_layer);
        }
    }
    if !r.offenders.is_empty() {
        let _ = writeln!(out, "\n| known offender | path | size |\n|---|---|--:|");
        for o in r.offenders.iter().take(SHOWN) {
            let _ = writeln!(out, "| {} | `{}` | {} |", o.kind, cell(&o.path), human_bytes(o.bytes));
        }
    }
    out.push('\n');
}

/// For a GitHub job summary: the budgets first, then each report and its comparison.
pub fn summary_markdown(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    for outcome in outcomes {
        let r = &outcome.report;
        let _ = writeln!(out, "### Image size: {}\n", cell(r.target.as_deref().unwrap_or(&r.image)));
        let mark = if outcome.over_budget.is_empty() { "within budget" } else { "**over budget**" };
        let _ = writeln!(out, "Size {}; waste {}. {mark}\n", budget_line(r.total_bytes, outcome.size_budget), budget_line(r.waste_bytes, outcome.waste_budget));
        for over in &outcome.over_budget {
            let _ = writeln!(out, "- {}", cell(over));
        }
        markdown_report(&mut out, r, None);
        if let Some(diff) = &outcome.diff {
            let _ = writeln!(
                out,
                "Compared with `{}`: {} -> {} ({}).\n",
                cell(&diff.against),
                human_bytes(diff.total_before),
                human_bytes(diff.total_after),
                signed(diff.total_before, diff.total_after)
            );
            if !diff.paths.is_empty() {
                let _ = writeln!(out, "| path | before | after | change |\n|---|--:|--:|--:|");
                for p in diff.paths.iter().take(SHOWN) {
                    let _ = writeln!(out, "| `{}` | {} | {} | {} |", cell(&p.path), human_bytes(p.before), human_bytes(p.after), signed(p.before, p.after));
                }
                out.push('\n');
            }
        }
    }
    out
}

pub fn chart_file(target: &str) -> String {
    format!("image-sizes-{target}.svg")
}

/// The generated page: every recorded target, its chart and its tables.
pub fn page(baseline: &Baseline) -> String {
    let mut out = String::from(
        "# Image sizes\n\n<!-- Generated by `cargo xtask size --write TARGET`; edits here are overwritten. -->\n\n\
         What each image weighs, layer by layer, and where its bytes are. Sizes are decimal \
         (1 GB = 1000^3 bytes), as Docker prints them. Waste is bytes of a lower layer that \
         a later layer deletes or overwrites: they ship, but no container sees them. The \
         numbers come from `image-sizes.json` beside this page.\n\n\
         | target | uncompressed | compressed | layers | waste |\n|---|--:|--:|--:|--:|\n",
    );
    for (name, r) in &baseline.targets {
        let _ = writeln!(
            out,
            "| [{name}](#{name}) | {} | {} | {} | {} |",
            human_bytes(r.total_bytes),
            human_bytes(r.compressed_bytes),
            r.layers.len(),
            human_bytes(r.waste_bytes)
        );
    }
    out.push('\n');
    for (name, r) in &baseline.targets {
        let _ = writeln!(out, "## {name}\n");
        markdown_report(&mut out, r, Some(&chart_file(name)));
    }
    out
}

/// Escapes text for SVG.
fn xml(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A horizontal bar per group of paths, scaled to the whole image, the rest in one bar.
pub fn chart(name: &str, r: &Report) -> String {
    const ROWS: usize = 14;
    const WIDTH: u64 = 900;
    const LABEL: u64 = 430;
    const ROW: u64 = 24;
    let shown: Vec<_> = r.groups.iter().take(ROWS).collect();
    let rest = r.total_bytes.saturating_sub(shown.iter().map(|g| g.bytes).sum());
    let mut rows: Vec<(String, u64, &str)> = shown
        .iter()
        .map(|g| {
            let colour = if g.path.contains("/nvidia/") {
                "#76b900"
            } else if g.path.contains("/site-packages") {
                "#3572a5"
            } else {
                "#8a8a8a"
            };
            // The venv prefix is the same on every row; the package name is what matters.
            let label = match g.path.find("/site-packages/") {
                Some(at) => format!("site-packages/{}", &g.path[at + "/site-packages/".len()..]),
                None => g.path.clone(),
            };
            (label, g.bytes, colour)
        })
        .collect();
    rows.push(("everything else".to_string(), rest, "#c8c8c8"));
    let top = 56;
    let height = top + ROW * rows.len() as u64 + 16;
    let scale = rows.iter().map(|r| r.1).max().unwrap_or(1).max(1) as f64;
    let bar_room = (WIDTH - LABEL - 140) as f64;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" \
         font-family=\"sans-serif\" font-size=\"13\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n\
         <text x=\"10\" y=\"22\" font-size=\"16\" font-weight=\"bold\">{}: where {} go</text>\n\
         <text x=\"10\" y=\"42\" fill=\"#555555\">{} compressed; waste {}; image {}</text>\n",
        xml(name),
        human_bytes(r.total_bytes),
        human_bytes(r.compressed_bytes),
        human_bytes(r.waste_bytes),
        xml(&r.image)
    );
    for (i, (label, bytes, colour)) in rows.iter().enumerate() {
        let y = top + ROW * i as u64;
        let width = ((*bytes as f64 / scale) * bar_room).round().max(1.0);
        let percent = if r.total_bytes == 0 { 0.0 } else { *bytes as f64 * 100.0 / r.total_bytes as f64 };
        let _ = writeln!(
            svg,
            "<text x=\"{x}\" y=\"{ty}\" text-anchor=\"end\">{label}</text>\
             <rect x=\"{bx}\" y=\"{y}\" width=\"{width}\" height=\"{h}\" fill=\"{colour}\"/>\
             <text x=\"{sx}\" y=\"{ty}\">{size} ({percent:.1}%)</text>",
            x = LABEL - 8,
            ty = y + 15,
            label = xml(&cut(label, 60)),
            bx = LABEL,
            h = ROW - 6,
            sx = LABEL as f64 + width + 6.0,
            size = human_bytes(*bytes),
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::super::analysis::PathBytes;
    use super::*;

    fn report() -> Report {
        Report {
            target: Some("one".into()),
            image: "repo:1".into(),
            id: "sha256:0123456789abcdef".into(),
            total_bytes: 3_000_000,
            compressed_bytes: 1_000_000,
            layers: vec![],
            groups: vec![
                PathBytes { path: "/opt/venv/lib/python3.11/site-packages/torch".into(), bytes: 2_000_000 },
                PathBytes { path: "/usr/<lib>".into(), bytes: 500_000 },
            ],
            largest_files: vec![],
            waste_bytes: 0,
            waste_files: 0,
            waste: vec![],
            offenders: vec![],
        }
    }

    #[test]
    fn the_chart_is_well_formed_and_labelled() {
        let svg = chart("one", &report());
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains(">site-packages/torch</text>"), "{svg}");
        assert!(svg.contains("/usr/&lt;lib&gt;"), "{svg}");
        // The rest of the image is one bar: 3 MB - 2 MB - 0.5 MB.
        assert!(svg.contains(">500.00 kB (16.7%)</text>"), "{svg}");
        assert_eq!(svg.matches("<rect").count(), 1 + 3);
    }

    #[test]
    fn the_page_links_each_chart() {
        let mut baseline = Baseline::default();
        baseline.targets.insert("one".into(), report());
        let page = page(&baseline);
        assert!(page.contains("| [one](#one) | 3.00 MB | 1.00 MB | 0 | 0 B |"), "{page}");
        assert!(page.contains("](image-sizes-one.svg)"), "{page}");
    }
}
