//! SVG pictures of an explanation: the small side (the transposed op's input), the
//! zero-stuffed and padded grid of the equivalent stride-1 convolution, the kernel, and
//! the big side (the output), each output cell colour-coded by the input cells that
//! stamp into it.

use super::{Explanation, MatrixView};
use crate::error::{ConvError, Result};
use crate::identities::equivalent_conv_padding;
use crate::problem::Direction;
use std::fmt::Write;

/// The colour of small-side cell `k` (golden-angle hues, so neighbours differ).
pub fn hue(k: usize) -> f64 {
    (k as f64 * 137.508) % 360.0
}

fn fill(k: usize) -> String {
    format!("hsl({:.0},70%,72%)", hue(k))
}

struct Canvas {
    body: String,
    x: f64,
    height: f64,
}

impl Canvas {
    fn text(&mut self, x: f64, y: f64, size: f64, text: &str) {
        let _ = writeln!(
            self.body,
            r#"<text x="{x:.1}" y="{y:.1}" font-size="{size}" font-family="sans-serif" text-anchor="middle">{}</text>"#,
            escape(text)
        );
    }

    fn rect(&mut self, x: f64, y: f64, w: f64, h: f64, fill: &str, stroke: &str) {
        let _ = writeln!(
            self.body,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{fill}" stroke="{stroke}"/>"#
        );
    }

    /// A grid panel; `cell(r, c)` gives the fills (stripes) and label of each cell.
    fn panel(
        &mut self,
        title: &str,
        rows: usize,
        cols: usize,
        size: f64,
        cell: impl Fn(usize, usize) -> (Vec<String>, String),
    ) {
        let top = 40.0;
        let width = (cols as f64 * size).max(120.0);
        self.text(self.x + width / 2.0, 24.0, 14.0, title);
        for r in 0..rows {
            for c in 0..cols {
                let (fills, label) = cell(r, c);
                let (x, y) = (self.x + c as f64 * size, top + r as f64 * size);
                if fills.is_empty() {
                    self.rect(x, y, size, size, "white", "#999");
                } else {
                    let w = size / fills.len() as f64;
                    for (i, f) in fills.iter().enumerate() {
                        self.rect(x + i as f64 * w, y, w, size, f, "none");
                    }
                    self.rect(x, y, size, size, "none", "#999");
                }
                if !label.is_empty() && size >= 14.0 {
                    self.text(
                        x + size / 2.0,
                        y + size / 2.0 + 4.0,
                        (size * 0.38).min(12.0),
                        &label,
                    );
                }
            }
        }
        self.height = self.height.max(top + rows as f64 * size + 20.0);
        self.x += width + 40.0;
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn label(v: Option<f64>) -> String {
    v.map(|v| format!("{}", (v * 1000.0).round() / 1000.0))
        .unwrap_or_default()
}

/// The pictures as one SVG document.
pub fn render(e: &Explanation) -> Result<String> {
    let Some(MatrixView { .. }) = e.matrix()? else {
        return Err(ConvError::TooLarge {
            arg: "--svg".into(),
            message: format!(
                "pictures are drawn for up to {} cells per channel",
                super::MAX_VIEW_CELLS
            ),
        });
    };
    let p = &e.problem;
    let (small_h, small_w) = (p.height.output, p.width.output);
    let (big_h, big_w) = (p.height.input, p.width.input);
    let size =
        (480.0 / big_h.max(big_w).max(small_h * p.height.stride).max(1) as f64).clamp(6.0, 32.0);
    let contributors = e.contributors()?;
    let values = if e.direction == Direction::BackwardData {
        e.data_plane()
    } else {
        None
    };
    let filter = e.filter_plane();
    let (small_name, big_name) = if e.direction == Direction::BackwardData {
        ("input", "output")
    } else {
        ("dy (gradient of y)", "dx (gradient of x)")
    };
    let mut c = Canvas {
        body: String::new(),
        x: 20.0,
        height: 0.0,
    };
    c.panel(
        &format!("{small_name} {small_h}x{small_w}"),
        small_h,
        small_w,
        size,
        |r, col| {
            let v = values.as_ref().map(|d| d[[r, col]]);
            (
                vec![fill(r * small_w + col)],
                v.map(|v| label(Some(v)))
                    .unwrap_or_else(|| format!("{r},{col}")),
            )
        },
    );
    // The equivalent stride-1 convolution's input: zero-stuffed, padded (negative crops).
    let pads = equivalent_conv_padding(p);
    let stuffed = |n: usize, s: usize| if n == 0 { 0 } else { (n - 1) * s + 1 };
    let len_h =
        (stuffed(small_h, p.height.stride) as i64 + pads[0][0] + pads[0][1]).max(0) as usize;
    let len_w = (stuffed(small_w, p.width.stride) as i64 + pads[1][0] + pads[1][1]).max(0) as usize;
    let small_at = |pos: usize, pad: i64, stride: usize, n: usize| -> Option<usize> {
        let off = pos as i64 - pad;
        (off >= 0 && off % stride as i64 == 0 && ((off / stride as i64) as usize) < n)
            .then(|| (off / stride as i64) as usize)
    };
    c.panel(
        &format!("zero-stuffed, padded {len_h}x{len_w}"),
        len_h,
        len_w,
        size,
        |r, col| match (
            small_at(r, pads[0][0], p.height.stride, small_h),
            small_at(col, pads[1][0], p.width.stride, small_w),
        ) {
            (Some(i), Some(j)) => (
                vec![fill(i * small_w + j)],
                values
                    .as_ref()
                    .map(|d| label(Some(d[[i, j]])))
                    .unwrap_or_default(),
            ),
            _ => (vec!["#f4f4f4".into()], "0".into()),
        },
    );
    let (kh, kw) = (p.height.kernel, p.width.kernel);
    c.panel(
        &format!("kernel {kh}x{kw}"),
        kh,
        kw,
        size.max(20.0),
        |r, col| {
            let text = match &filter {
                Some(f) => label(Some(f[[r, col]])),
                None => format!("w{r}{col}"),
            };
            (vec!["#fff7d6".into()], text)
        },
    );
    let result = e
        .result
        .as_ref()
        .map(|y| y.slice(ndarray::s![0, .., .., 0]).to_owned());
    c.panel(
        &format!("{big_name} {big_h}x{big_w}"),
        big_h,
        big_w,
        size,
        |r, col| {
            let from = &contributors[r * big_w + col];
            let text = match (&result, e.direction) {
                (Some(y), Direction::BackwardData) => label(Some(y[[r, col]])),
                _ => format!("{}", from.len()),
            };
            (from.iter().map(|&k| fill(k)).collect(), text)
        },
    );
    let note = "Colours: each output cell shows the input cells that stamp into it (its number: how many, or its value).";
    c.text(c.x / 2.0, c.height + 10.0, 12.0, note);
    Ok(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{:.0}\" height=\"{:.0}\" viewBox=\"0 0 {:.0} {:.0}\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n{}</svg>\n",
        c.x,
        c.height + 30.0,
        c.x,
        c.height + 30.0,
        c.body
    ))
}
