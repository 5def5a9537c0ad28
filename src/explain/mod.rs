//! What a given call does, for a person: the forward convolution it belongs to, the size
//! arithmetic per axis with the caller's numbers, the legal output sizes, the equivalent
//! stride-1 convolution, the call in other frameworks, the matrix view and the scatter
//! view. Rendered as text ([`Explanation::text`]), SVG ([`svg`]) and an interactive HTML
//! page ([`html`]).
//!
//! Everything shown is read from the [`Problem`] the call builds, and the matrix and
//! scatter views come from the reference loops applied to one-hot inputs, so what convt
//! explains is what it computes.
//!
//! ```
//! use convt::call::{Arg, Args};
//! use convt::explain::explain;
//! use serde_json::json;
//! let mut args = Args::new();
//! for (name, v) in [("input_shape", json!([1, 3, 3, 1])), ("filters_shape", json!([2, 2, 1, 1])),
//!                   ("output_shape", json!([1, 6, 6, 1])), ("strides", json!(2)), ("padding", json!("SAME"))] {
//!     args.insert(name, Arg::Json(v));
//! }
//! let e = explain("tf.nn.conv2d_transpose", &args).unwrap();
//! assert!(e.text().contains("legal output sizes for input 3: 5, 6"));
//! ```

pub mod html;
pub mod svg;

use crate::call::{self, Arg, Args, Tensor};
use crate::error::{ConvError, Result};
use crate::identities::equivalent_conv_padding;
use crate::problem::{legal_transposed_sizes, Axis, AxisPadding, Direction, Problem, Taps};
use crate::reference;
use crate::translate::{self, Canonical, Translation};
use ndarray::Array4;
use serde_json::Value;
use std::fmt::Write;

/// Largest number of input or output cells (per channel) for which the matrix and
/// scatter views are built.
pub const MAX_VIEW_CELLS: usize = 1024;

/// One call, understood.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// The op as the caller named it.
    pub op: String,
    /// The forward problem behind it.
    pub problem: Problem,
    /// Which direction the call computes.
    pub direction: Direction,
    /// The padding rule of the transposed direction per axis (for the legal sizes).
    pub padding: [AxisPadding; 2],
    /// The call's arrays in canonical layouts, when arrays were given.
    pub arrays: Option<Canonical>,
    /// The call's result in canonical layout (NHWC), when arrays were given.
    pub result: Option<Array4<f64>>,
    /// The same call in each framework.
    pub translations: Vec<Translation>,
}

/// One cell of the small side stamping into the big side: `taps[j] = (kh, kw, row, col)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Stamp {
    /// Row of the small-side cell (the transposed op's input, the forward op's output).
    pub row: usize,
    /// Column of the small-side cell.
    pub col: usize,
    /// The big-side cells it reaches and through which tap.
    pub taps: Vec<(usize, usize, usize, usize)>,
}

/// The matrix `C` of the forward convolution on one channel: `C[out_cell][in_cell]` is
/// the kernel tap `(kh, kw)` that connects them, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixView {
    /// `O_h * O_w` rows, `I_h * I_w` columns.
    pub taps: Vec<Vec<Option<(usize, usize)>>>,
}

fn to_f64(t: &Tensor) -> ndarray::ArrayD<f64> {
    match t {
        Tensor::F32(a) => a.mapv(f64::from),
        Tensor::F64(a) => a.clone(),
    }
}

/// The padding mode of the call, as the legal-size rule needs it.
fn call_padding(op: &str, args: &Args, p: &Problem) -> [AxisPadding; 2] {
    let text = |name: &str| match args.get(name) {
        Some(Arg::Json(Value::String(s))) => Some(s.clone()),
        _ => None,
    };
    let same = match op {
        o if o.starts_with("tf.") => {
            (text("padding").as_deref() == Some("SAME")).then_some(AxisPadding::SameUpper)
        }
        "onnx.ConvTranspose" | "onnx.Conv" => match text("auto_pad").as_deref() {
            Some("SAME_UPPER") => Some(AxisPadding::SameUpper),
            Some("SAME_LOWER") => Some(AxisPadding::SameLower),
            _ => None,
        },
        _ => (text("padding").as_deref() == Some("same")).then_some(AxisPadding::SameUpper),
    };
    p.axes().map(|a| {
        same.unwrap_or(AxisPadding::Explicit {
            before: a.pad_before,
            after: a.pad_after.max(0) as usize,
        })
    })
}

/// Understands `op(args)`; array arguments may be shapes (`input_shape=[...]`).
pub fn explain(op: &str, args: &Args) -> Result<Explanation> {
    let (problem, direction) = call::problem(op, args)?;
    let has_arrays = args
        .names()
        .any(|n| matches!(args.get(n), Some(Arg::Tensor(_))));
    let (arrays, result) = if has_arrays {
        let y = call::run(op, args)?;
        let layout = translate::output_layout(op, args)?;
        let perm: &[usize] = if layout == translate::Layout::Nchw {
            &[0, 2, 3, 1]
        } else {
            &[0, 1, 2, 3]
        };
        let y = to_f64(&y)
            .permuted_axes(ndarray::IxDyn(perm))
            .as_standard_layout()
            .into_owned();
        let y = y
            .into_dimensionality::<ndarray::Ix4>()
            .map_err(|e| ConvError::Shape {
                arg: "output".into(),
                message: e.to_string(),
            })?;
        (Some(translate::canonical(op, args)?), Some(y))
    } else {
        (None, None)
    };
    Ok(Explanation {
        op: op.to_string(),
        padding: call_padding(op, args, &problem),
        problem,
        direction,
        arrays,
        result,
        translations: translate::translate(op, args)?,
    })
}

/// For a refused call: the rule that failed, and the legal alternatives where convt can
/// find them (every legal `output_shape` of a TensorFlow transposed call).
pub fn refusal(op: &str, args: &Args, error: &ConvError) -> String {
    let mut out = format!("This call is refused.\n  rule: {error}\n");
    if let ConvError::IllegalOutputSize { arg, .. } = error {
        let legal = legal_shapes(op, args, arg, 0);
        if !legal.is_empty() {
            let shapes: Vec<String> = legal
                .iter()
                .map(|s| format!("{s:?}").replace(' ', ""))
                .collect();
            let _ = writeln!(
                out,
                "  legal `{arg}` values for this call: {}",
                shapes.join(", ")
            );
        }
    }
    out
}

/// Every value of the shape argument `arg` that makes the call legal (small strides only).
fn legal_shapes(op: &str, args: &Args, arg: &str, depth: usize) -> Vec<Vec<i64>> {
    let Some(Arg::Json(v)) = args.get(arg) else {
        return vec![];
    };
    let Ok(sizes) = call::int_list(arg, v) else {
        return vec![];
    };
    match call::problem(op, args) {
        Ok(_) => vec![sizes],
        Err(ConvError::IllegalOutputSize { axis, legal, .. }) if depth < 2 && legal.len() <= 8 => {
            let nchw =
                matches!(args.get("data_format"), Some(Arg::Json(Value::String(s))) if s == "NCHW");
            let index = match (sizes.len(), axis.as_str(), nchw) {
                (2, "height", _) => 0,
                (2, _, _) => 1,
                (_, "height", false) => 1,
                (_, _, false) => 2,
                (_, "height", true) => 2,
                _ => 3,
            };
            let mut all = vec![];
            for size in legal {
                let mut candidate = sizes.clone();
                candidate[index] = size as i64;
                let mut next = args.clone();
                next.insert(arg, Arg::Json(serde_json::json!(candidate)));
                all.extend(legal_shapes(op, &next, arg, depth + 1));
            }
            all
        }
        Err(_) => vec![],
    }
}

impl Explanation {
    fn one_channel(&self) -> Result<Problem> {
        Problem::new(1, 1, 1, 1, self.problem.height, self.problem.width)
    }

    /// True when the matrix and scatter views are small enough to build.
    pub fn small(&self) -> bool {
        view_size_ok(&self.problem)
    }

    /// The forward convolution's matrix on one channel (see [`matrix_of`]).
    pub fn matrix(&self) -> Result<Option<MatrixView>> {
        if !self.small() {
            return Ok(None);
        }
        matrix_of(&self.one_channel()?).map(Some)
    }

    /// The scatter view: for every small-side cell, the big-side cells it stamps.
    pub fn stamps(&self) -> Result<Vec<Stamp>> {
        let Some(m) = self.matrix()? else {
            return Ok(vec![]);
        };
        let (iw, ow) = (self.problem.width.input, self.problem.width.output);
        Ok(m.taps
            .iter()
            .enumerate()
            .map(|(out, row)| Stamp {
                row: out / ow.max(1),
                col: out % ow.max(1),
                taps: row
                    .iter()
                    .enumerate()
                    .filter_map(|(cell, t)| t.map(|(h, w)| (h, w, cell / iw, cell % iw)))
                    .collect(),
            })
            .collect())
    }

    /// The text explanation.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = self.write_text(&mut out);
        out
    }

    fn write_text(&self, out: &mut String) -> std::fmt::Result {
        let p = &self.problem;
        let [n, ih, iw, ci] = p.input_shape();
        let [_, oh, ow, co] = p.output_shape();
        let fw = p.filter_shape();
        let strides = format!("[{}, {}]", p.height.stride, p.width.stride);
        let dilations = format!("[{}, {}]", p.height.dilation, p.width.dilation);
        let pads = format!(
            "[[{}, {}], [{}, {}]]",
            p.height.pad_before, p.height.pad_after, p.width.pad_before, p.width.pad_after
        );
        let forward = format!(
            "conv2d(x [{n}, {ih}, {iw}, {ci}], filters {fw:?} (HWIO), strides {strides}, dilations {dilations}, padding {pads}, groups {}) -> y [{n}, {oh}, {ow}, {co}]",
            p.groups
        );
        match self.direction {
            Direction::BackwardData => {
                writeln!(
                    out,
                    "{}: input [{n}, {oh}, {ow}, {co}] (NHWC) -> output [{n}, {ih}, {iw}, {ci}]",
                    self.op
                )?;
                writeln!(
                    out,
                    "  is the input gradient (the transpose) of the forward convolution"
                )?;
                writeln!(out, "    {forward}")?;
                writeln!(
                    out,
                    "  Each of its {} input values stamps a copy of the {}x{} kernel, scaled by the value, into the output, {} apart: learned upsampling by {}x{}.",
                    oh * ow * co,
                    p.height.kernel,
                    p.width.kernel,
                    strides,
                    p.height.stride,
                    p.width.stride
                )?;
            }
            Direction::Forward => {
                writeln!(out, "{}: the forward convolution", self.op)?;
                writeln!(out, "    {forward}")?;
                writeln!(out, "  Its input gradient is conv2d_transpose(dy [{n}, {oh}, {ow}, {co}], filters, output_shape=[{n}, {ih}, {iw}, {ci}], ...) with the same parameters.")?;
            }
            Direction::BackwardFilter => {
                writeln!(
                    out,
                    "{}: the filter gradient of the forward convolution",
                    self.op
                )?;
                writeln!(out, "    {forward}")?;
                writeln!(out, "  dw[kh, kw, ci, co] = sum over n, oh, ow of x[n, oh*s - pad + kh*d, ow*s - pad + kw*d, ci] * dy[n, oh, ow, co]: a correlation of x with dy, the forward stride acting as dy's dilation.")?;
            }
        }
        writeln!(
            out,
            "\nSize arithmetic, per axis (effective kernel ek = (kernel - 1) * dilation + 1):"
        )?;
        for (a, name, padding) in [
            (&p.height, "height", self.padding[0]),
            (&p.width, "width", self.padding[1]),
        ] {
            self.write_axis(out, a, name, padding)?;
        }
        if self.direction == Direction::BackwardData {
            let eq = equivalent_conv_padding(p);
            let stuffed = |a: &Axis| {
                if a.output == 0 {
                    0
                } else {
                    (a.output - 1) * a.stride + 1
                }
            };
            writeln!(
                out,
                "\nThe same result as a stride-1 conv2d (the \"fractional stride\" view):"
            )?;
            writeln!(
                out,
                "  1. zero-stuff the input: stride - 1 = {}x{} zeros between neighbours: {}x{} -> {}x{}",
                p.height.stride - 1,
                p.width.stride - 1,
                oh,
                ow,
                stuffed(&p.height),
                stuffed(&p.width)
            )?;
            writeln!(
                out,
                "  2. pad it with {:?} (height, width; before = ek - 1 - pad_before, after = ek - 1 - pad_after + skipped rows; negative crops)",
                eq
            )?;
            writeln!(out, "  3. rotate the filter 180 degrees and swap its in/out channels ({:?} -> [{}, {}, {}, {}] per group)", fw, fw[0], fw[1], fw[3] / p.groups, fw[2] * p.groups)?;
            writeln!(
                out,
                "  4. conv2d with strides [1, 1], dilations {dilations}, VALID -> {}x{}",
                ih, iw
            )?;
        }
        if !self.translations.is_empty() {
            writeln!(out, "\nThe same call in each framework:")?;
            for t in &self.translations {
                let status = if t.note.is_some() {
                    " (not a single call)"
                } else {
                    ""
                };
                writeln!(out, "  {}{status}:", t.op)?;
                for line in t.python().lines() {
                    writeln!(out, "    {line}")?;
                }
                if let Some(note) = &t.note {
                    writeln!(out, "    note: {note}")?;
                }
            }
        }
        if let Some(m) = self.matrix().ok().flatten() {
            if p.height.input * p.width.input <= 64 && p.height.output * p.width.output <= 64 {
                self.write_matrix(out, &m)?;
            }
            self.write_scatter(out)?;
        } else {
            writeln!(out, "\n(matrix and scatter views are shown for up to {MAX_VIEW_CELLS} cells per channel)")?;
        }
        if let Some(y) = &self.result {
            if y.shape()[1] <= 24 && y.shape()[2] <= 24 {
                writeln!(out, "\nResult, batch 0, channel 0:")?;
                out.push_str(&grid(&y.slice(ndarray::s![0, .., .., 0]).to_owned()));
            }
        }
        Ok(())
    }

    fn write_axis(
        &self,
        out: &mut String,
        a: &Axis,
        name: &str,
        padding: AxisPadding,
    ) -> std::fmt::Result {
        let ek = a.effective_kernel();
        let (i, o) = (a.input, a.output);
        writeln!(
            out,
            "  {name}: kernel {} stride {} dilation {} -> ek {ek}",
            a.kernel, a.stride, a.dilation
        )?;
        let total = a.pad_before as i64 + a.pad_after;
        let why = match padding {
            AxisPadding::SameUpper => format!(
                "SAME: output = ceil({i} / {}) = {o}; total padding max(({o} - 1) * {} + {ek} - {i}, 0) = {total}: {} before, {} after{}",
                a.stride,
                a.stride,
                a.pad_before,
                a.pad_after,
                if total % 2 == 1 { " (the odd pixel goes after, as in TensorFlow; PyTorch's symmetric padding cannot express this)" } else { "" }
            ),
            AxisPadding::SameLower => format!("SAME_LOWER: total padding {total}: {} before, {} after (the odd pixel goes before)", a.pad_before, a.pad_after),
            _ => format!("padding {} before, {} after", a.pad_before, a.pad_after),
        };
        writeln!(out, "    {why}")?;
        writeln!(
            out,
            "    forward: output = floor(({i} + {} + {} - {ek}) / {}) + 1 = {o}",
            a.pad_before, a.pad_after, a.stride
        )?;
        if self.direction == Direction::BackwardData {
            let full = if o == 0 { 0 } else { (o - 1) * a.stride + ek };
            writeln!(
                out,
                "    transposed: full scatter ({o} - 1) * {} + {ek} = {full}; the output keeps positions [{}, {}){}",
                a.stride,
                a.pad_before,
                a.pad_before + i,
                if (a.pad_before + i) as i64 > full as i64 { " (past the scatter: zeros)" } else { "" }
            )?;
        }
        if self.direction != Direction::BackwardFilter {
            let back = if self.direction == Direction::Forward {
                "the transposed call back from "
            } else {
                ""
            };
            match legal_transposed_sizes(o, Taps::new(a.kernel, a.stride, a.dilation), padding) {
                Ok(Some(r)) => {
                    let sizes: Vec<String> = r.clone().take(16).map(|v| v.to_string()).collect();
                    let why = if r.end() > r.start() {
                        format!("   (stride {}: the forward rule maps each of them to {o}, so output_shape must say which)", a.stride)
                    } else {
                        String::new()
                    };
                    writeln!(
                        out,
                        "    legal output sizes for {back}input {o}: {}{why}",
                        sizes.join(", ")
                    )?;
                }
                _ => writeln!(out, "    no output size maps back to {o} with this padding")?,
            }
        }
        Ok(())
    }

    fn write_matrix(&self, out: &mut String, m: &MatrixView) -> std::fmt::Result {
        let values = self.filter_plane();
        let label = |t: &Option<(usize, usize)>| match (t, &values) {
            (None, _) => ".".to_string(),
            (Some((h, w)), Some(v)) => format!("{}", v[[*h, *w]]),
            (Some((h, w)), None) => format!("w{h}{w}"),
        };
        let rows: Vec<Vec<String>> = m
            .taps
            .iter()
            .map(|r| r.iter().map(label).collect())
            .collect();
        let width = rows.iter().flatten().map(String::len).max().unwrap_or(1);
        let (ni, no) = (rows.first().map_or(0, Vec::len), rows.len());
        writeln!(out, "\nMatrix view (one channel): the forward conv2d is y = C x with C {no} x {ni} (rows: output cells, columns: input cells, row-major):")?;
        for r in &rows {
            let cells: Vec<String> = r.iter().map(|c| format!("{c:>width$}")).collect();
            writeln!(out, "    {}", cells.join(" "))?;
        }
        let what = if self.direction == Direction::Forward {
            "the gradient with respect to x, conv2d_transpose"
        } else {
            "this transposed convolution, dx = C^T dy"
        };
        writeln!(out, "  C^T ({ni} x {no}) is {what}:")?;
        for c in 0..ni {
            let cells: Vec<String> = rows.iter().map(|r| format!("{:>width$}", r[c])).collect();
            writeln!(out, "    {}", cells.join(" "))?;
        }
        Ok(())
    }

    fn filter_plane(&self) -> Option<ndarray::Array2<f64>> {
        let f = self.arrays.as_ref()?.filter.as_ref()?;
        let f = to_f64(f);
        Some(f.slice(ndarray::s![.., .., 0, 0]).to_owned())
    }

    fn data_plane(&self) -> Option<ndarray::Array2<f64>> {
        let d = to_f64(&self.arrays.as_ref()?.data);
        Some(d.slice(ndarray::s![0, .., .., 0]).to_owned())
    }

    fn write_scatter(&self, out: &mut String) -> std::fmt::Result {
        let Ok(stamps) = self.stamps() else {
            return Ok(());
        };
        let (small, big) = match self.direction {
            Direction::BackwardData => ("input", "output"),
            _ => ("y (its gradient dy)", "x"),
        };
        writeln!(out, "\nScatter view: each {small} cell stamps the kernel into {big} cells (batch 0, channel 0):")?;
        let values = if self.direction == Direction::BackwardData {
            self.data_plane()
        } else {
            None
        };
        let filt = self.filter_plane();
        let mut shown = 0;
        for s in &stamps {
            let v = values.as_ref().map(|d| d[[s.row, s.col]]);
            if v == Some(0.0) {
                continue;
            }
            if shown == 12 {
                writeln!(out, "    ... ({} cells in all)", stamps.len())?;
                break;
            }
            shown += 1;
            let (rows, cols) = span(&s.taps);
            let head = match v {
                Some(v) => format!("{small}[{},{}] = {v}", s.row, s.col),
                None => format!("{small}[{},{}]", s.row, s.col),
            };
            let stamp = match (v, &filt) {
                (Some(v), Some(f)) => {
                    let rows: Vec<String> = f
                        .rows()
                        .into_iter()
                        .map(|r| {
                            r.iter()
                                .map(|w| (w * v).to_string())
                                .collect::<Vec<_>>()
                                .join(" ")
                        })
                        .collect();
                    format!(": {v} x kernel = [{}]", rows.join("; "))
                }
                _ => String::new(),
            };
            let reach = if s.taps.is_empty() {
                "reaches nothing (every tap lands in the padding)".to_string()
            } else {
                format!(
                    "lands on {big} rows {rows}, columns {cols} ({} of {} taps)",
                    s.taps.len(),
                    self.problem.height.kernel * self.problem.width.kernel
                )
            };
            writeln!(out, "    {head}{stamp} {reach}")?;
        }
        Ok(())
    }
}

/// The matrix of a one-channel problem, built by applying the reference to one-hot
/// inputs with a filter whose taps are numbered: entry `[out][in]` is the tap connecting
/// them.
pub fn matrix_of(p: &Problem) -> Result<MatrixView> {
    if !view_size_ok(p) {
        return Err(ConvError::TooLarge {
            arg: "view".into(),
            message: format!("the matrix and scatter views are built for up to {MAX_VIEW_CELLS} input, output and kernel cells per channel"),
        });
    }
    let kw = p.width.kernel;
    let codes = Array4::from_shape_fn(p.filter_shape(), |(h, w, _, _)| (h * kw + w + 1) as f64);
    let (ih, iw) = (p.height.input, p.width.input);
    let mut taps = vec![vec![None; ih * iw]; p.height.output * p.width.output];
    for cell in 0..ih * iw {
        let mut x = Array4::<f64>::zeros(p.input_shape());
        x[[0, cell / iw, cell % iw, 0]] = 1.0;
        let y = reference::forward(p, x.view(), codes.view())?;
        for (out, &v) in y.iter().enumerate() {
            if v != 0.0 {
                let code = v as usize - 1;
                taps[out][cell] = Some((code / kw, code % kw));
            }
        }
    }
    Ok(MatrixView { taps })
}

/// Input, output and kernel cells per channel all within [`MAX_VIEW_CELLS`] (found by
/// fuzzing: a kernel 10^16 taps wide on a small image).
fn view_size_ok(p: &Problem) -> bool {
    let cells = |a: usize, b: usize| a.checked_mul(b).is_some_and(|n| n <= MAX_VIEW_CELLS);
    cells(p.height.input, p.width.input)
        && cells(p.height.output, p.width.output)
        && cells(p.height.kernel, p.width.kernel)
}

fn span(taps: &[(usize, usize, usize, usize)]) -> (String, String) {
    let range = |v: Vec<usize>| match (v.iter().min(), v.iter().max()) {
        (Some(a), Some(b)) if a == b => format!("{a}"),
        (Some(a), Some(b)) => format!("{a}..{b}"),
        _ => "-".into(),
    };
    (
        range(taps.iter().map(|t| t.2).collect()),
        range(taps.iter().map(|t| t.3).collect()),
    )
}

impl Explanation {
    /// For every big-side cell (row-major), the small-side cells (row-major indices) that
    /// stamp into it.
    pub fn contributors(&self) -> Result<Vec<Vec<usize>>> {
        let p = &self.problem;
        let mut by_cell = vec![vec![]; p.height.input * p.width.input];
        for (k, s) in self.stamps()?.iter().enumerate() {
            for &(_, _, r, c) in &s.taps {
                by_cell[r * p.width.input + c].push(k);
            }
        }
        Ok(by_cell)
    }
}

/// A right-aligned text grid of a 2-D array.
pub fn grid(a: &ndarray::Array2<f64>) -> String {
    let cells: Vec<Vec<String>> = a
        .rows()
        .into_iter()
        .map(|r| r.iter().map(|v| v.to_string()).collect())
        .collect();
    let width = cells.iter().flatten().map(String::len).max().unwrap_or(1);
    let mut out = String::new();
    for r in cells {
        let row: Vec<String> = r.iter().map(|c| format!("{c:>width$}")).collect();
        out.push_str(&format!("    {}\n", row.join(" ")));
    }
    out
}
