//! ONNX's `Conv` and `ConvTranspose` (opset 11+), as ONNX Runtime runs them.
//!
//! Layout NCHW; `Conv` weight `W` `[M, C / group, kh, kw]`, `ConvTranspose` weight
//! `[C, M / group, kh, kw]`, optional bias `B` `[M]`. Attributes keep their ONNX names.
//!
//! Where the ONNX spec text, ONNX's shape inference, its reference evaluator and ONNX
//! Runtime disagree (`SEMANTICS_DETAIL.md` section 3.4), convt follows ONNX Runtime, the
//! runtime exported models run on:
//!
//! | case | spec / shape inference | reference evaluator | ONNX Runtime = convt |
//! |---|---|---|---|
//! | `ConvTranspose` SAME_*, `output_padding > 0` | `I*s + op` | `I*s` | `I*s` |
//! | `ConvTranspose` SAME_*, effective kernel < stride | `F` | `I*s`, extra zero at the start (UPPER) | `F` (total padding clamped at 0) |
//! | `ConvTranspose` NOTSET + `output_shape` < `F` | given | error | pads derived, odd one at the start |
//! | `ConvTranspose` `output_shape` range | any | `>= F` only | `1 ..= F + s - 1` |
//! | `ConvTranspose` `output_padding` | `< stride or dilation` | error if `>= s` | `< stride` |
//! | `ConvTranspose` `group > 1` | correct | wrong (reshape error) | correct |
//! | `Conv` SAME_* with dilation > 1 | defined | defined | refused |
//!
//! Each row has a test in `tests/onnx.rs` against fixtures produced by ONNX Runtime.
//!
//! ```
//! use convt::onnx;
//! use ndarray::Array4;
//! let x = Array4::<f32>::ones((1, 2, 3, 3));
//! let w = Array4::<f32>::ones((2, 1, 3, 3));
//! let attrs = onnx::Attributes { auto_pad: onnx::AutoPad::SameUpper, strides: Some(vec![2, 2]), ..Default::default() };
//! let y = onnx::conv_transpose(x.view(), w.view(), None, &attrs).unwrap();
//! assert_eq!(y.shape(), &[1, 1, 6, 6]);
//! ```

use crate::conv;
use crate::element::Element;
use crate::error::{ConvError, Result};
use crate::layout::DataFormat;
use crate::problem::{grouped_channels, Axis, AxisPadding, Problem, Taps, TransposedWindow};
use crate::torch::{check_bias, groups_of, hwio, nchw, weight_oihw};
use ndarray::{Array4, ArrayView1, ArrayView4};

/// The `auto_pad` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AutoPad {
    /// `NOTSET`: use `pads`.
    #[default]
    NotSet,
    /// `SAME_UPPER`: the odd padding pixel at the end.
    SameUpper,
    /// `SAME_LOWER`: the odd padding pixel at the beginning.
    SameLower,
    /// `VALID`: no padding.
    Valid,
}

impl AutoPad {
    /// Parses the attribute's string value.
    pub fn parse(text: &str) -> Result<AutoPad> {
        match text {
            "NOTSET" => Ok(AutoPad::NotSet),
            "SAME_UPPER" => Ok(AutoPad::SameUpper),
            "SAME_LOWER" => Ok(AutoPad::SameLower),
            "VALID" => Ok(AutoPad::Valid),
            _ => Err(ConvError::UnknownValue {
                arg: "auto_pad".into(),
                got: text.into(),
                legal: "NOTSET, SAME_UPPER, SAME_LOWER, VALID".into(),
            }),
        }
    }
}

/// The attributes of `Conv` and `ConvTranspose` (`None` = absent, the ONNX default).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attributes {
    /// `auto_pad`.
    pub auto_pad: AutoPad,
    /// `pads` `[h_begin, w_begin, h_end, w_end]`.
    pub pads: Option<Vec<i64>>,
    /// `strides` `[h, w]`.
    pub strides: Option<Vec<i64>>,
    /// `dilations` `[h, w]`.
    pub dilations: Option<Vec<i64>>,
    /// `group` (default 1).
    pub group: Option<i64>,
    /// `kernel_shape` `[kh, kw]`; must match `W` when given.
    pub kernel_shape: Option<Vec<i64>>,
    /// `ConvTranspose` only: `output_padding` `[h, w]`.
    pub output_padding: Option<Vec<i64>>,
    /// `ConvTranspose` only: `output_shape` `[h, w]`.
    pub output_shape: Option<Vec<i64>>,
}

fn spatial(arg: &str, values: &Option<Vec<i64>>, default: i64) -> Result<[i64; 2]> {
    match values.as_deref() {
        None => Ok([default; 2]),
        Some([h, w]) => Ok([*h, *w]),
        Some(v) => Err(ConvError::Length {
            arg: arg.into(),
            expected: "2 values (one per spatial axis: height, width)".into(),
            got: v.to_vec(),
        }),
    }
}

fn positive(arg: &str, values: &Option<Vec<i64>>) -> Result<[usize; 2]> {
    let v = spatial(arg, values, 1)?;
    if v.iter().any(|&x| x <= 0) {
        return Err(ConvError::NotPositive {
            arg: arg.into(),
            got: v.to_vec(),
        });
    }
    Ok(v.map(|x| x as usize))
}

impl Attributes {
    /// `pads` as `[[h_begin, h_end], [w_begin, w_end]]`, checked.
    fn pads(&self) -> Result<[[usize; 2]; 2]> {
        let Some(p) = &self.pads else {
            return Ok([[0, 0]; 2]);
        };
        if p.len() != 4 {
            return Err(ConvError::Length {
                arg: "pads".into(),
                expected: "4 values [h_begin, w_begin, h_end, w_end]".into(),
                got: p.clone(),
            });
        }
        if p.iter().any(|&v| v < 0) {
            return Err(ConvError::Negative {
                arg: "pads".into(),
                got: p.clone(),
            });
        }
        if self.auto_pad != AutoPad::NotSet && p.iter().any(|&v| v != 0) {
            return Err(ConvError::Argument {
                arg: "pads".into(),
                message: format!("cannot be used together with auto_pad {:?}; legal: auto_pad NOTSET with pads, or auto_pad without pads", self.auto_pad),
            });
        }
        Ok([
            [p[0] as usize, p[2] as usize],
            [p[1] as usize, p[3] as usize],
        ])
    }

    fn check_kernel_shape(&self, w: &[usize; 4]) -> Result<()> {
        if let Some(k) = &self.kernel_shape {
            if k.len() != 2 || k[0] != w[2] as i64 || k[1] != w[3] as i64 {
                return Err(ConvError::Shape {
                    arg: "kernel_shape".into(),
                    message: format!(
                        "{k:?} does not match W's spatial dimensions; legal: [{}, {}]",
                        w[2], w[3]
                    ),
                });
            }
        }
        Ok(())
    }
}

/// What `Conv` and `ConvTranspose` check alike: ranks, `kernel_shape`, `group`,
/// `strides`, `dilations`.
struct Checked {
    x: [usize; 4],
    w: [usize; 4],
    group: usize,
    strides: [usize; 2],
    dilations: [usize; 2],
}

impl Attributes {
    fn check(&self, x: &[usize], w: &[usize], weight_layout: &str) -> Result<Checked> {
        let x = nchw("X", x)?;
        let w = weight_oihw("W", w, weight_layout)?;
        self.check_kernel_shape(&w)?;
        Ok(Checked {
            x,
            w,
            group: groups_of("group", self.group.unwrap_or(1))?,
            strides: positive("strides", &self.strides)?,
            dilations: positive("dilations", &self.dilations)?,
        })
    }
}

/// The forward problem of `Conv` from shapes (X NCHW, W `[M, C/group, kh, kw]`, B `[M]`).
pub fn conv_problem(
    x: &[usize],
    w: &[usize],
    b: Option<&[usize]>,
    attrs: &Attributes,
) -> Result<Problem> {
    let Checked {
        x,
        w,
        group,
        strides,
        dilations,
    } = attrs.check(x, w, "[M, C / group, kh, kw]")?;
    if !w[0].is_multiple_of(group) {
        return Err(ConvError::Channels {
            arg: "W".into(),
            message: format!(
                "output channels M = {} are not divisible by group {group}",
                w[0]
            ),
        });
    }
    let in_channels = grouped_channels("W", w[1], group)?;
    if x[1] != in_channels {
        return Err(ConvError::Channels {
            arg: "X".into(),
            message: format!(
                "has C = {} channels; legal: W dimension 1 x group = {} x {group} = {in_channels}",
                x[1], w[1],
            ),
        });
    }
    check_bias("B", b, w[0])?;
    let pads = attrs.pads()?;
    let same = matches!(attrs.auto_pad, AutoPad::SameUpper | AutoPad::SameLower);
    if same && dilations != [1, 1] {
        return Err(ConvError::Argument {
            arg: "dilations".into(),
            message: format!("{dilations:?} with auto_pad {:?}: ONNX Runtime refuses dilation with SAME_UPPER / SAME_LOWER; legal: dilations [1, 1], or explicit pads", attrs.auto_pad),
        });
    }
    let padding = |a: usize| match attrs.auto_pad {
        AutoPad::NotSet => AxisPadding::Explicit {
            before: pads[a][0],
            after: pads[a][1],
        },
        AutoPad::SameUpper => AxisPadding::SameUpper,
        AutoPad::SameLower => AxisPadding::SameLower,
        AutoPad::Valid => AxisPadding::Valid,
    };
    let h = Axis::forward(
        "height",
        x[2],
        Taps::new(w[2], strides[0], dilations[0]),
        padding(0),
    )?;
    let wd = Axis::forward(
        "width",
        x[3],
        Taps::new(w[3], strides[1], dilations[1]),
        padding(1),
    )?;
    Problem::new(x[0], x[1], w[0], group, h, wd)
}

/// The forward problem whose input gradient `ConvTranspose` computes (X NCHW, W
/// `[C, M/group, kh, kw]`, B `[M]`).
pub fn conv_transpose_problem(
    x: &[usize],
    w: &[usize],
    b: Option<&[usize]>,
    attrs: &Attributes,
) -> Result<Problem> {
    let Checked {
        x,
        w,
        group,
        strides,
        dilations,
    } = attrs.check(x, w, "[C, M / group, kh, kw]")?;
    let output_padding = spatial("output_padding", &attrs.output_padding, 0)?;
    if output_padding.iter().any(|&v| v < 0) {
        return Err(ConvError::Negative {
            arg: "output_padding".into(),
            got: output_padding.to_vec(),
        });
    }
    if x[1] != w[0] {
        return Err(ConvError::Channels {
            arg: "X".into(),
            message: format!("has C = {} channels; legal: W dimension 0 = {}", x[1], w[0]),
        });
    }
    if !w[0].is_multiple_of(group) {
        return Err(ConvError::Channels {
            arg: "W".into(),
            message: format!(
                "dimension 0 (C = {}) is not divisible by group {group}",
                w[0]
            ),
        });
    }
    let out_channels = grouped_channels("W", w[1], group)?;
    check_bias("B", b, out_channels)?;
    let pads = attrs.pads()?;
    let output_shape = match &attrs.output_shape {
        None => None,
        Some(v) if v.len() == 2 => Some([v[0], v[1]]),
        Some(v) => {
            return Err(ConvError::Length {
                arg: "output_shape".into(),
                expected: "2 values (the spatial output size [height, width]; ONNX Runtime refuses N and C in it)".into(),
                got: v.clone(),
            })
        }
    };
    let axis = |a: usize, name: &str| {
        let op = output_padding[a] as usize;
        let window = match (output_shape, attrs.auto_pad) {
            (Some(o), auto_pad) => TransposedWindow::OnnxOutputShape {
                output: o[a],
                upper: auto_pad == AutoPad::SameUpper,
                output_padding: op,
            },
            (None, AutoPad::SameUpper) => TransposedWindow::OnnxSame {
                upper: true,
                output_padding: op,
            },
            (None, AutoPad::SameLower) => TransposedWindow::OnnxSame {
                upper: false,
                output_padding: op,
            },
            (None, AutoPad::Valid) => TransposedWindow::OnnxPads {
                begin: 0,
                end: 0,
                output_padding: op,
            },
            (None, AutoPad::NotSet) => TransposedWindow::OnnxPads {
                begin: pads[a][0],
                end: pads[a][1],
                output_padding: op,
            },
        };
        Axis::transposed_window(
            name,
            x[2 + a],
            Taps::new(w[2 + a], strides[a], dilations[a]),
            window,
        )
    };
    let (h, wd) = (axis(0, "height")?, axis(1, "width")?);
    Problem::new(x[0], out_channels, x[1], group, h, wd)
}

/// ONNX `Conv(X, W, B)`.
pub fn conv<T: Element>(
    x: ArrayView4<T>,
    w: ArrayView4<T>,
    b: Option<ArrayView1<T>>,
    attrs: &Attributes,
) -> Result<Array4<T>> {
    let p = conv_problem(x.shape(), w.shape(), b.as_ref().map(|b| b.shape()), attrs)?;
    let mut y = conv::forward_in(DataFormat::Nchw, &p, x, hwio(w))?;
    if let Some(b) = b {
        conv::add_bias(&mut y, b, DataFormat::Nchw);
    }
    Ok(y)
}

/// ONNX `ConvTranspose(X, W, B)`.
pub fn conv_transpose<T: Element>(
    x: ArrayView4<T>,
    w: ArrayView4<T>,
    b: Option<ArrayView1<T>>,
    attrs: &Attributes,
) -> Result<Array4<T>> {
    let p = conv_transpose_problem(x.shape(), w.shape(), b.as_ref().map(|b| b.shape()), attrs)?;
    let mut y = conv::backward_data_in(DataFormat::Nchw, &p, x, hwio(w))?;
    if let Some(b) = b {
        conv::add_bias(&mut y, b, DataFormat::Nchw);
    }
    Ok(y)
}
