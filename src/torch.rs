//! PyTorch's signatures: `torch.nn.functional.conv2d` and `conv_transpose2d`.
//!
//! Layout NCHW; `conv2d` weights `[out, in / groups, kh, kw]` (OIHW), `conv_transpose2d`
//! weights `[in, out / groups, kh, kw]` (IOHW); optional `bias` `[out]`. Both weight
//! layouts are the forward convolution's OIHW filter, so they reach the kernels through the
//! same permutation to HWIO. Refusals follow PyTorch's (negative padding, non-positive
//! stride, `output_padding >= max(stride, dilation)`, output size <= 0, ...).
//!
//! ```
//! use convt::torch;
//! use ndarray::Array4;
//! // A DCGAN layer: kernel 4, stride 2, padding 1 doubles the size.
//! let x = Array4::<f32>::ones((1, 8, 5, 5));
//! let w = Array4::<f32>::ones((8, 3, 4, 4));
//! let opts = torch::TransposeOptions::new().stride(2).padding(1);
//! let y = torch::conv_transpose2d(x.view(), w.view(), None, &opts).unwrap();
//! assert_eq!(y.shape(), &[1, 3, 10, 10]);
//! ```

use crate::conv;
use crate::element::Element;
use crate::error::{ConvError, Result};
use crate::layout::DataFormat;
use crate::problem::{grouped_channels, Axis, AxisPadding, Problem, Taps, TransposedWindow};
use crate::tf::IntList;
use ndarray::{Array4, ArrayView1, ArrayView4};

/// `conv2d`'s `padding`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Padding {
    /// `'valid'`.
    Valid,
    /// `'same'` (stride 1 only): total `dilation * (kernel - 1)`, the odd pixel after.
    Same,
    /// An int or `(h, w)`: that many zeros on both sides.
    Zeros(Vec<i64>),
}

impl Padding {
    /// Parses `'valid'` or `'same'` (lower case, as PyTorch).
    pub fn parse(text: &str) -> Result<Padding> {
        match text {
            "valid" => Ok(Padding::Valid),
            "same" => Ok(Padding::Same),
            _ => Err(ConvError::UnknownValue {
                arg: "padding".into(),
                got: text.into(),
                legal: "'valid', 'same', an int, or a pair of ints".into(),
            }),
        }
    }
}

/// `conv2d(input, weight, bias, stride, padding, dilation, groups)` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `stride`: an int or `(h, w)`.
    pub stride: Vec<i64>,
    /// `padding`.
    pub padding: Padding,
    /// `dilation`: an int or `(h, w)`.
    pub dilation: Vec<i64>,
    /// `groups`.
    pub groups: i64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            stride: vec![1],
            padding: Padding::Zeros(vec![0]),
            dilation: vec![1],
            groups: 1,
        }
    }
}

impl Options {
    /// PyTorch's defaults: stride 1, padding 0, dilation 1, groups 1.
    pub fn new() -> Options {
        Options::default()
    }
    /// Sets `stride`.
    pub fn stride(mut self, v: impl Into<IntList>) -> Options {
        self.stride = v.into().0;
        self
    }
    /// Sets `padding`.
    pub fn padding(mut self, padding: Padding) -> Options {
        self.padding = padding;
        self
    }
    /// Sets `dilation`.
    pub fn dilation(mut self, v: impl Into<IntList>) -> Options {
        self.dilation = v.into().0;
        self
    }
    /// Sets `groups`.
    pub fn groups(mut self, groups: i64) -> Options {
        self.groups = groups;
        self
    }
}

/// `conv_transpose2d(input, weight, bias, stride, padding, output_padding, groups,
/// dilation)` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransposeOptions {
    /// `stride`.
    pub stride: Vec<i64>,
    /// `padding`: rows removed from each side of the full scatter.
    pub padding: Vec<i64>,
    /// `output_padding`: rows added at the end (bottom / right).
    pub output_padding: Vec<i64>,
    /// `groups`.
    pub groups: i64,
    /// `dilation`.
    pub dilation: Vec<i64>,
}

impl Default for TransposeOptions {
    fn default() -> TransposeOptions {
        TransposeOptions {
            stride: vec![1],
            padding: vec![0],
            output_padding: vec![0],
            groups: 1,
            dilation: vec![1],
        }
    }
}

impl TransposeOptions {
    /// PyTorch's defaults: stride 1, padding 0, output_padding 0, groups 1, dilation 1.
    pub fn new() -> TransposeOptions {
        TransposeOptions::default()
    }
    /// Sets `stride`.
    pub fn stride(mut self, v: impl Into<IntList>) -> TransposeOptions {
        self.stride = v.into().0;
        self
    }
    /// Sets `padding`.
    pub fn padding(mut self, v: impl Into<IntList>) -> TransposeOptions {
        self.padding = v.into().0;
        self
    }
    /// Sets `output_padding`.
    pub fn output_padding(mut self, v: impl Into<IntList>) -> TransposeOptions {
        self.output_padding = v.into().0;
        self
    }
    /// Sets `groups`.
    pub fn groups(mut self, groups: i64) -> TransposeOptions {
        self.groups = groups;
        self
    }
    /// Sets `dilation`.
    pub fn dilation(mut self, v: impl Into<IntList>) -> TransposeOptions {
        self.dilation = v.into().0;
        self
    }
}

/// An int or pair, as `(h, w)`.
pub(crate) fn pair(arg: &str, values: &[i64]) -> Result<[i64; 2]> {
    match values {
        [v] => Ok([*v, *v]),
        [h, w] => Ok([*h, *w]),
        _ => Err(ConvError::Length {
            arg: arg.into(),
            expected: "a single int or a list of 2 values (height, width)".into(),
            got: values.to_vec(),
        }),
    }
}

pub(crate) fn positive_pair(arg: &str, values: &[i64]) -> Result<[usize; 2]> {
    let p = pair(arg, values)?;
    if p.iter().any(|&v| v <= 0) {
        return Err(ConvError::NotPositive {
            arg: arg.into(),
            got: values.to_vec(),
        });
    }
    Ok(p.map(|v| v as usize))
}

pub(crate) fn non_negative_pair(arg: &str, values: &[i64]) -> Result<[usize; 2]> {
    let p = pair(arg, values)?;
    if p.iter().any(|&v| v < 0) {
        return Err(ConvError::Negative {
            arg: arg.into(),
            got: values.to_vec(),
        });
    }
    Ok(p.map(|v| v as usize))
}

pub(crate) fn nchw(arg: &str, shape: &[usize]) -> Result<[usize; 4]> {
    <[usize; 4]>::try_from(shape).map_err(|_| ConvError::Rank {
        arg: arg.into(),
        expected: "4-dimensional [batch, channels, height, width] (NCHW)".into(),
        shape: shape.to_vec(),
    })
}

pub(crate) fn weight_oihw(arg: &str, shape: &[usize], what: &str) -> Result<[usize; 4]> {
    let w = <[usize; 4]>::try_from(shape).map_err(|_| ConvError::Rank {
        arg: arg.into(),
        expected: format!("4-dimensional {what}"),
        shape: shape.to_vec(),
    })?;
    if w[2] == 0 || w[3] == 0 {
        return Err(ConvError::Shape {
            arg: arg.into(),
            message: format!(
                "kernel size must be >= 1, got kernel_height {} kernel_width {}",
                w[2], w[3]
            ),
        });
    }
    Ok(w)
}

pub(crate) fn check_bias(arg: &str, bias: Option<&[usize]>, channels: usize) -> Result<()> {
    match bias {
        Some(shape) if shape != [channels] => Err(ConvError::Shape {
            arg: arg.into(),
            message: format!("expected a 1-dimensional bias of {channels} elements (one per output channel), got shape {shape:?}"),
        }),
        _ => Ok(()),
    }
}

pub(crate) fn groups_of(arg: &str, groups: i64) -> Result<usize> {
    if groups <= 0 {
        return Err(ConvError::NotPositive {
            arg: arg.into(),
            got: vec![groups],
        });
    }
    Ok(groups as usize)
}

/// The forward problem of `conv2d` from shapes (input NCHW, weight OIHW, bias `[out]`).
pub fn conv2d_problem(
    input: &[usize],
    weight: &[usize],
    bias: Option<&[usize]>,
    opts: &Options,
) -> Result<Problem> {
    let x = nchw("input", input)?;
    let w = weight_oihw(
        "weight",
        weight,
        "[out_channels, in_channels / groups, kh, kw] (OIHW)",
    )?;
    let groups = groups_of("groups", opts.groups)?;
    let stride = positive_pair("stride", &opts.stride)?;
    let dilation = positive_pair("dilation", &opts.dilation)?;
    if w[0] == 0 || !w[0].is_multiple_of(groups) {
        return Err(ConvError::Channels {
            arg: "weight".into(),
            message: format!(
                "dimension 0 (out_channels) is {}; legal: a positive multiple of groups = {groups}",
                w[0]
            ),
        });
    }
    let in_channels = grouped_channels("weight", w[1], groups)?;
    if x[1] != in_channels {
        return Err(ConvError::Channels {
            arg: "input".into(),
            message: format!(
                "has {} channels; legal: weight dimension 1 x groups = {} x {groups} = {in_channels}",
                x[1], w[1],
            ),
        });
    }
    check_bias("bias", bias, w[0])?;
    let padding = match &opts.padding {
        Padding::Valid => [AxisPadding::Valid; 2],
        Padding::Same => {
            if stride != [1, 1] {
                return Err(ConvError::Argument {
                    arg: "padding".into(),
                    message: format!("'same' is not supported for strided convolutions (stride {stride:?}); legal: stride 1, or explicit padding"),
                });
            }
            [AxisPadding::SameUpper; 2]
        }
        Padding::Zeros(p) => non_negative_pair("padding", p)?.map(|p| AxisPadding::Explicit {
            before: p,
            after: p,
        }),
    };
    let h = Axis::forward(
        "height",
        x[2],
        Taps::new(w[2], stride[0], dilation[0]),
        padding[0],
    )?;
    let wd = Axis::forward(
        "width",
        x[3],
        Taps::new(w[3], stride[1], dilation[1]),
        padding[1],
    )?;
    Problem::new(x[0], x[1], w[0], groups, h, wd)
}

/// The forward problem whose input gradient `conv_transpose2d` computes (input NCHW,
/// weight IOHW, bias `[out]`).
pub fn conv_transpose2d_problem(
    input: &[usize],
    weight: &[usize],
    bias: Option<&[usize]>,
    opts: &TransposeOptions,
) -> Result<Problem> {
    let x = nchw("input", input)?;
    let w = weight_oihw(
        "weight",
        weight,
        "[in_channels, out_channels / groups, kh, kw] (IOHW)",
    )?;
    let groups = groups_of("groups", opts.groups)?;
    let stride = positive_pair("stride", &opts.stride)?;
    let dilation = positive_pair("dilation", &opts.dilation)?;
    let padding = non_negative_pair("padding", &opts.padding)?;
    let output_padding = non_negative_pair("output_padding", &opts.output_padding)?;
    if !w[0].is_multiple_of(groups) {
        return Err(ConvError::Channels {
            arg: "weight".into(),
            message: format!(
                "dimension 0 (in_channels) is {}; legal: a multiple of groups = {groups}",
                w[0]
            ),
        });
    }
    if x[1] != w[0] {
        return Err(ConvError::Channels {
            arg: "input".into(),
            message: format!(
                "has {} channels; legal: weight dimension 0 = {}",
                x[1], w[0]
            ),
        });
    }
    if w[1] == 0 {
        return Err(ConvError::Shape {
            arg: "weight".into(),
            message: format!("dimension 1 (out_channels / groups) is 0 in {w:?}; legal: >= 1"),
        });
    }
    if x[2] == 0 || x[3] == 0 {
        return Err(ConvError::Shape {
            arg: "input".into(),
            message: format!(
                "spatial size {:?} is empty; only a zero batch or zero channels may be empty",
                &x[2..]
            ),
        });
    }
    let out_channels = grouped_channels("weight", w[1], groups)?;
    check_bias("bias", bias, out_channels)?;
    let axis = |a: usize, name: &str| {
        let window = TransposedWindow::Torch {
            padding: padding[a],
            output_padding: output_padding[a],
        };
        Axis::transposed_window(
            name,
            x[2 + a],
            Taps::new(w[2 + a], stride[a], dilation[a]),
            window,
        )
    };
    let (h, wd) = (axis(0, "height")?, axis(1, "width")?);
    Problem::new(x[0], out_channels, x[1], groups, h, wd)
}

/// The forward filter (HWIO) of an OIHW weight, or of a transposed op's IOHW weight.
pub(crate) fn hwio<T>(weight: ArrayView4<'_, T>) -> ArrayView4<'_, T> {
    weight.permuted_axes([2, 3, 1, 0])
}

/// `torch.nn.functional.conv2d(input, weight, bias, stride, padding, dilation, groups)`.
pub fn conv2d<T: Element>(
    input: ArrayView4<T>,
    weight: ArrayView4<T>,
    bias: Option<ArrayView1<T>>,
    opts: &Options,
) -> Result<Array4<T>> {
    let p = conv2d_problem(
        input.shape(),
        weight.shape(),
        bias.as_ref().map(|b| b.shape()),
        opts,
    )?;
    let mut y = conv::forward_in(DataFormat::Nchw, &p, input, hwio(weight))?;
    if let Some(b) = bias {
        conv::add_bias(&mut y, b, DataFormat::Nchw);
    }
    Ok(y)
}

/// `torch.nn.functional.conv_transpose2d(input, weight, bias, stride, padding,
/// output_padding, groups, dilation)`.
pub fn conv_transpose2d<T: Element>(
    input: ArrayView4<T>,
    weight: ArrayView4<T>,
    bias: Option<ArrayView1<T>>,
    opts: &TransposeOptions,
) -> Result<Array4<T>> {
    let p = conv_transpose2d_problem(
        input.shape(),
        weight.shape(),
        bias.as_ref().map(|b| b.shape()),
        opts,
    )?;
    let mut y = conv::backward_data_in(DataFormat::Nchw, &p, input, hwio(weight))?;
    if let Some(b) = bias {
        conv::add_bias(&mut y, b, DataFormat::Nchw);
    }
    Ok(y)
}
