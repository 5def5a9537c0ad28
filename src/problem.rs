//! The forward convolution problem that all four ops share, and every size rule.
//!
//! A [`Problem`] is one forward convolution `y = conv(x, w)`: batch, channels, groups and,
//! per spatial axis, an [`Axis`] `(input, kernel, stride, dilation, pad_before,
//! pad_after, output)`. `conv2d` computes `y` from `x`; `conv2d_backprop_input` and
//! `conv2d_transpose` compute `dx` from `dy` (the transposed direction); and
//! `conv2d_backprop_filter` computes `dw`. Nothing else in convt does shape arithmetic:
//! the framework fronts translate their conventions into calls of the constructors here.
//!
//! Per axis, with `ek = (kernel - 1) * dilation + 1` (the effective kernel):
//!
//! ```text
//! output = floor((input + pad_before + pad_after - ek) / stride) + 1,
//!          requires input + pad_before + pad_after >= ek
//! ```

use crate::error::{ConvError, Result};
use std::ops::RangeInclusive;

/// How one spatial axis is padded, before the sizes are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AxisPadding {
    /// No padding (TF `VALID`, ONNX `VALID`, PyTorch `'valid'`).
    Valid,
    /// `output = ceil(input / stride)`, total padding split with the odd pixel *after*
    /// (TF `SAME`, ONNX `SAME_UPPER`, PyTorch `'same'` at stride 1).
    SameUpper,
    /// As [`AxisPadding::SameUpper`] but the odd pixel goes *before* (ONNX `SAME_LOWER`).
    SameLower,
    /// Explicit zero padding before and after.
    Explicit {
        /// Zeros before the first input element.
        before: usize,
        /// Zeros after the last input element.
        after: usize,
    },
}

/// How a kernel slides along one axis: taps, stride, dilation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taps {
    /// Kernel taps (>= 1).
    pub kernel: usize,
    /// Stride (>= 1).
    pub stride: usize,
    /// Dilation (>= 1).
    pub dilation: usize,
}

impl Taps {
    /// Kernel size, stride and dilation.
    pub fn new(kernel: usize, stride: usize, dilation: usize) -> Taps {
        Taps {
            kernel,
            stride,
            dilation,
        }
    }

    /// Checks all three are >= 1 and returns the effective kernel `(kernel-1)*dilation+1`.
    fn check(&self, axis: &str) -> Result<usize> {
        check_positive("kernel size", axis, self.kernel)?;
        check_positive("strides", axis, self.stride)?;
        check_positive("dilations", axis, self.dilation)?;
        effective_kernel(self.kernel, self.dilation)
    }
}

/// One spatial axis of a forward convolution, fully resolved.
///
/// `input` is the forward input's size (the transposed op's *output*), `output` the
/// forward output's size (the transposed op's *input*). `pad_after` may be negative for
/// transposed calls whose window reaches past the full scatter (the extra outputs are
/// zeros); kernels only read `pad_before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Axis {
    /// Forward input size.
    pub input: usize,
    /// Forward output size.
    pub output: usize,
    /// Kernel taps.
    pub kernel: usize,
    /// Stride (>= 1).
    pub stride: usize,
    /// Dilation (>= 1).
    pub dilation: usize,
    /// Zeros (virtually) before the input.
    pub pad_before: usize,
    /// Zeros (virtually) after the input; negative when trailing forward outputs would
    /// need more than the input (transposed windows only).
    pub pad_after: i64,
}

/// The channels of `groups` groups of `per_group` channels each (a weight dimension
/// times the groups), or a [`ConvError::TooLarge`] naming `arg` where the product
/// overflows.
pub(crate) fn grouped_channels(arg: &str, per_group: usize, groups: usize) -> Result<usize> {
    per_group.checked_mul(groups).ok_or_else(|| {
        too_large(
            arg,
            &format!("{per_group} channels per group x {groups} groups"),
        )
    })
}

fn too_large(arg: &str, what: &str) -> ConvError {
    ConvError::TooLarge {
        arg: arg.into(),
        message: format!("{what} overflows the address space"),
    }
}

fn check_positive(arg: &str, axis: &str, value: usize) -> Result<()> {
    if value == 0 {
        let arg = if axis.is_empty() {
            arg.to_string()
        } else {
            format!("{arg} ({axis})")
        };
        return Err(ConvError::NotPositive { arg, got: vec![0] });
    }
    Ok(())
}

/// The effective (dilated) kernel extent `(kernel - 1) * dilation + 1`.
pub fn effective_kernel(kernel: usize, dilation: usize) -> Result<usize> {
    kernel
        .checked_sub(1)
        .and_then(|k| k.checked_mul(dilation))
        .and_then(|k| k.checked_add(1))
        .ok_or_else(|| too_large("filter", "effective kernel size (kernel-1)*dilation+1"))
}

/// The forward rule: the outputs of a kernel of `effective_kernel` positions sliding at
/// `stride` over `padded` positions (input plus padding), 0 where it does not fit.
fn forward_size(padded: i128, effective_kernel: usize, stride: usize) -> i128 {
    let ek = effective_kernel as i128;
    if padded >= ek {
        (padded - ek) / stride as i128 + 1
    } else {
        0
    }
}

/// The furthest window position an axis may reach (its input plus padding, or its
/// outputs times the stride plus the kernel's extent): every position then fits the
/// kernels' signed index arithmetic, with room to spare.
pub const MAX_EXTENT: usize = 1 << 62;

impl Axis {
    /// Effective kernel extent `(kernel - 1) * dilation + 1`.
    pub fn effective_kernel(&self) -> usize {
        (self.kernel - 1) * self.dilation + 1
    }

    /// Checks that the axis is one the size rules make (as [`Axis::forward`] and the
    /// transposed constructors do): kernel, stride and dilation at least 1, `output` the
    /// forward rule's size for `input` and the padding, and no window position past
    /// [`MAX_EXTENT`]. `axis` names the axis in the error.
    ///
    /// ```
    /// use convt::problem::{Axis, AxisPadding, Taps};
    /// let mut a = Axis::forward("height", 7, Taps::new(3, 2, 1), AxisPadding::Valid).unwrap();
    /// assert!(a.check("height").is_ok());
    /// a.output = 4; // VALID gives (7 - 3) / 2 + 1 = 3
    /// assert!(a.check("height").unwrap_err().to_string().contains("gives 3"));
    /// ```
    pub fn check(&self, axis: &str) -> Result<()> {
        let ek = Taps::new(self.kernel, self.stride, self.dilation).check(axis)?;
        let before = self.input as i128 + self.pad_before as i128;
        let padded = before + self.pad_after as i128;
        if before.max(padded) > MAX_EXTENT as i128 {
            return Err(ConvError::TooLarge {
                arg: axis.into(),
                message: format!(
                    "input {} with padding ({}, {}) reaches past 2^62 window positions",
                    self.input, self.pad_before, self.pad_after
                ),
            });
        }
        let expected = forward_size(padded, ek, self.stride);
        if self.output > 0 && expected != self.output as i128 {
            return Err(ConvError::Argument {
                arg: axis.into(),
                message: format!(
                    "output size {} does not follow from input {}, padding ({}, {}), kernel {}, stride {}, dilation {}: the forward rule gives {expected}",
                    self.output, self.input, self.pad_before, self.pad_after, self.kernel, self.stride, self.dilation
                ),
            });
        }
        Ok(())
    }

    /// The forward rule: resolve padding and compute the output size for `input`.
    ///
    /// `axis` names the axis in messages (`height` / `width`).
    ///
    /// ```
    /// use convt::problem::{Axis, AxisPadding, Taps};
    /// // TF SAME, input 7, kernel 4, stride 1: total padding 3, the odd pixel after.
    /// let a = Axis::forward("height", 7, Taps::new(4, 1, 1), AxisPadding::SameUpper).unwrap();
    /// assert_eq!((a.pad_before, a.pad_after, a.output), (1, 2, 7));
    /// ```
    pub fn forward(axis: &str, input: usize, taps: Taps, padding: AxisPadding) -> Result<Axis> {
        let ek = taps.check(axis)?;
        let Taps {
            kernel,
            stride,
            dilation,
        } = taps;
        let (pad_before, pad_after, output) = match padding {
            AxisPadding::SameUpper | AxisPadding::SameLower => {
                let output = input.div_ceil(stride);
                let total = if output == 0 {
                    0
                } else {
                    // (output-1)*stride <= input-1, so this cannot overflow past input+ek.
                    ((output - 1) * stride)
                        .checked_add(ek)
                        .ok_or_else(|| too_large("padding", "SAME padding"))?
                        .saturating_sub(input)
                };
                let before = if padding == AxisPadding::SameUpper {
                    total / 2
                } else {
                    total - total / 2
                };
                (before, total - before, output)
            }
            AxisPadding::Valid | AxisPadding::Explicit { .. } => {
                let (before, after) = match padding {
                    AxisPadding::Explicit { before, after } => (before, after),
                    _ => (0, 0),
                };
                let padded = input
                    .checked_add(before)
                    .and_then(|p| p.checked_add(after))
                    .ok_or_else(|| too_large("padding", "padded input size"))?;
                if padded < ek {
                    return Err(ConvError::KernelTooLarge {
                        axis: axis.into(),
                        padded_input: padded as i64,
                        effective_kernel: ek as i64,
                    });
                }
                (
                    before,
                    after,
                    forward_size(padded as i128, ek, stride) as usize,
                )
            }
        };
        let pad_after = i64::try_from(pad_after).map_err(|_| too_large("padding", "padding"))?;
        Ok(Axis {
            input,
            output,
            kernel,
            stride,
            dilation,
            pad_before,
            pad_after,
        })
    }

    /// The TensorFlow transposed rule: the caller asks for forward input size `input`
    /// (`output_shape` / `input_sizes`) given the forward output size `output` (the
    /// size of `dy`). Legal when the forward rule maps `input` to `output`; otherwise
    /// the error lists [`legal_transposed_sizes`].
    pub fn transposed(
        arg: &str,
        axis: &str,
        input: usize,
        output: usize,
        taps: Taps,
        padding: AxisPadding,
    ) -> Result<Axis> {
        let illegal = || -> Result<ConvError> {
            Ok(ConvError::IllegalOutputSize {
                arg: arg.into(),
                axis: axis.into(),
                got: input as i64,
                legal: legal_transposed_sizes(output, taps, padding)?
                    .map(|r| {
                        let (a, b) = (*r.start(), *r.end());
                        if b - a < 64 {
                            (a..=b).collect()
                        } else {
                            vec![a, b]
                        }
                    })
                    .unwrap_or_default(),
            })
        };
        match Axis::forward(axis, input, taps, padding) {
            Ok(a) if a.output == output => Ok(a),
            Ok(_) | Err(ConvError::KernelTooLarge { .. }) => Err(illegal()?),
            Err(e) => Err(e),
        }
    }

    /// The window model of PyTorch and ONNX transposed convolutions: scatter the
    /// `output` (= transposed input) elements at stride spacing into the full length
    /// `(output - 1) * stride + ek`, then keep `input` elements starting at `pad_before`.
    /// `formula` describes the size computation in the caller's words for the error.
    pub fn window(
        axis: &str,
        output: usize,
        taps: Taps,
        pad_before: usize,
        input: i64,
        formula: &str,
    ) -> Result<Axis> {
        Axis::window_explained(axis, output, taps, pad_before, input, || formula.into())
    }

    /// [`Axis::window`] with the formula written only for the error (legal calls format
    /// nothing).
    fn window_explained(
        axis: &str,
        output: usize,
        taps: Taps,
        pad_before: usize,
        input: i64,
        formula: impl FnOnce() -> String,
    ) -> Result<Axis> {
        let ek = taps.check(axis)?;
        let Taps {
            kernel,
            stride,
            dilation,
        } = taps;
        if input <= 0 {
            return Err(ConvError::OutputTooSmall {
                axis: axis.into(),
                size: input,
                formula: formula(),
            });
        }
        let full = full_length(output, stride, ek)?;
        let pad_after = full as i128 - pad_before as i128 - input as i128;
        Ok(Axis {
            input: usize::try_from(input).map_err(|_| too_large("output", "output size"))?,
            output,
            kernel,
            stride,
            dilation,
            pad_before,
            pad_after: i64::try_from(pad_after)
                .map_err(|_| too_large("padding", "padding after"))?,
        })
    }
}

/// How PyTorch and ONNX choose the window of a transposed convolution's full scatter
/// (`SEMANTICS_DETAIL.md` section 3.1): where it starts (`pad_before`) and how long it
/// is (the output size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransposedWindow {
    /// PyTorch `conv_transpose2d(padding=p, output_padding=op)`:
    /// `output = (I-1)*s - 2p + d*(k-1) + op + 1`, with `0 <= op < max(s, d)`.
    Torch {
        /// `padding`.
        padding: usize,
        /// `output_padding`.
        output_padding: usize,
    },
    /// ONNX `ConvTranspose` with explicit `pads`: `output = s*(I-1) + op + ek - begin - end`.
    OnnxPads {
        /// Pad at the beginning.
        begin: usize,
        /// Pad at the end.
        end: usize,
        /// `output_padding` (`< stride`, as ONNX Runtime requires).
        output_padding: usize,
    },
    /// ONNX `ConvTranspose` with `output_shape` (any `auto_pad`): total `T = F + op - output`;
    /// `SAME_UPPER` starts at `floor(T/2)`, the others at `ceil(T/2)`, clamped at 0 as ONNX
    /// Runtime does; ONNX Runtime accepts `1 <= output <= F + s - 1`.
    OnnxOutputShape {
        /// The requested output size.
        output: i64,
        /// `auto_pad == SAME_UPPER`.
        upper: bool,
        /// `output_padding`.
        output_padding: usize,
    },
    /// ONNX `ConvTranspose` with `auto_pad` `SAME_UPPER` / `SAME_LOWER` and no
    /// `output_shape`: target `I * s`, total padding clamped at 0 (ONNX Runtime).
    OnnxSame {
        /// `SAME_UPPER` (else `SAME_LOWER`).
        upper: bool,
        /// `output_padding`.
        output_padding: usize,
    },
}

impl Axis {
    /// A PyTorch or ONNX transposed convolution on one axis whose input (`dy`) has size
    /// `output` (the forward output), per the framework's window rule.
    pub fn transposed_window(
        axis: &str,
        output: usize,
        taps: Taps,
        window: TransposedWindow,
    ) -> Result<Axis> {
        // Wide, saturating arithmetic: no stride or padding can overflow it; sizes that
        // do not fit are refused by `Axis::window`.
        let ek = taps.check(axis)? as i128;
        let (i, s, d) = (output as i128, taps.stride as i128, taps.dilation as i128);
        let full = full_length(output, taps.stride, ek as usize)? as i128;
        let op_bound = |op: usize, bound: i128, words: &dyn Fn() -> String| -> Result<i128> {
            if op as i128 >= bound {
                return Err(ConvError::OutputPadding {
                    arg: "output_padding".into(),
                    got: vec![i64::try_from(op).unwrap_or(i64::MAX)],
                    bound: format!("{bound} ({}) on the {axis} axis", words()),
                });
            }
            Ok(op as i128)
        };
        let stride_words = || format!("stride {s}");
        let (pad_before, size) = match window {
            TransposedWindow::Torch {
                padding,
                output_padding,
            } => {
                let op = op_bound(output_padding, s.max(d), &|| {
                    format!("max(stride {s}, dilation {d})")
                })?;
                let p = padding as i128;
                let k1 = taps.kernel as i128 - 1;
                let size = (i - 1)
                    .saturating_mul(s)
                    .saturating_sub(p.saturating_mul(2))
                    .saturating_add(d.saturating_mul(k1))
                    .saturating_add(op + 1);
                (p, size)
            }
            TransposedWindow::OnnxPads {
                begin,
                end,
                output_padding,
            } => {
                let op = op_bound(output_padding, s, &stride_words)?;
                (begin as i128, full + op - begin as i128 - end as i128)
            }
            TransposedWindow::OnnxOutputShape {
                output,
                upper,
                output_padding,
            } => {
                let op = op_bound(output_padding, s, &stride_words)?;
                let largest = full + s - 1;
                let requested = output as i128;
                if requested < 1 || requested > largest {
                    let last = usize::try_from(largest).unwrap_or(usize::MAX);
                    return Err(ConvError::IllegalOutputSize {
                        arg: "output_shape".into(),
                        axis: axis.into(),
                        got: output,
                        legal: if last < 64 {
                            (1..=last).collect()
                        } else {
                            vec![1, last]
                        },
                    });
                }
                let total = full + op - requested;
                let before = if upper {
                    total.div_euclid(2)
                } else {
                    total - total.div_euclid(2)
                };
                (before.max(0), requested)
            }
            TransposedWindow::OnnxSame {
                upper,
                output_padding,
            } => {
                let op = op_bound(output_padding, s, &stride_words)?;
                let total = (full + op - i.saturating_mul(s)).max(0);
                let before = if upper { total / 2 } else { total - total / 2 };
                (before, full + op - total)
            }
        };
        // The size computation in the framework's words, for the error only.
        let formula = || {
            match window {
            TransposedWindow::Torch {
                padding,
                output_padding,
            } => {
                let k1 = taps.kernel as i128 - 1;
                format!("(input-1)*stride - 2*padding + dilation*(kernel-1) + output_padding + 1 = ({i}-1)*{s} - 2*{padding} + {d}*{k1} + {output_padding} + 1")
            }
            TransposedWindow::OnnxPads {
                begin,
                end,
                output_padding,
            } => format!("stride*(input-1) + output_padding + effective_kernel - pads_begin - pads_end = {s}*({i}-1) + {output_padding} + {ek} - {begin} - {end}"),
            _ => String::new(),
        }
        };
        let too_large = || too_large("output", "transposed output size");
        let pad_before = usize::try_from(pad_before).map_err(|_| too_large())?;
        let size = if size <= 0 {
            i64::try_from(size).unwrap_or(i64::MIN)
        } else {
            i64::try_from(size).map_err(|_| too_large())?
        };
        Axis::window_explained(axis, output, taps, pad_before, size, formula)
    }
}

/// Length of the full scatter of a transposed convolution: `(n - 1) * stride + ek`
/// (0 when `n == 0`).
pub fn full_length(n: usize, stride: usize, effective_kernel: usize) -> Result<usize> {
    if n == 0 {
        return Ok(0);
    }
    (n - 1)
        .checked_mul(stride)
        .and_then(|v| v.checked_add(effective_kernel))
        .ok_or_else(|| too_large("output", "transposed output size"))
}

/// Every forward input size the forward rule maps to `output`: the legal output sizes of
/// a TensorFlow-style transposed convolution whose input (`dy`) has size `output`.
///
/// For stride 1 there is at most one; for stride `s > 1` up to `s` (the forward stride
/// skips up to `s - 1` trailing rows). `None` when no size is legal.
///
/// ```
/// use convt::problem::{legal_transposed_sizes, AxisPadding, Taps};
/// // The seed's example: 3 -> 6 with kernel 2, stride 2, SAME accepts 5 or 6.
/// let legal = legal_transposed_sizes(3, Taps::new(2, 2, 1), AxisPadding::SameUpper).unwrap();
/// assert_eq!(legal, Some(5..=6));
/// ```
pub fn legal_transposed_sizes(
    output: usize,
    taps: Taps,
    padding: AxisPadding,
) -> Result<Option<RangeInclusive<usize>>> {
    let ek = taps.check("")?;
    let stride = taps.stride;
    // The forward output is non-decreasing in the input size, so the legal set is an
    // interval; find its first element in closed form, then confirm both ends with the
    // forward rule itself.
    let first = match padding {
        AxisPadding::SameUpper | AxisPadding::SameLower => {
            if output == 0 {
                0
            } else {
                (output - 1) * stride + 1
            }
        }
        AxisPadding::Valid | AxisPadding::Explicit { .. } => {
            let (b, a) = match padding {
                AxisPadding::Explicit { before, after } => (before, after),
                _ => (0, 0),
            };
            if output == 0 {
                return Ok(None);
            }
            let Some(full) = (output - 1)
                .checked_mul(stride)
                .and_then(|v| v.checked_add(ek))
            else {
                return Ok(None);
            };
            full.saturating_sub(b.saturating_add(a))
        }
    };
    // The forward output size, `None` where the forward rule refuses the input size.
    let forward_output = |input: usize| {
        Axis::forward("", input, taps, padding)
            .ok()
            .map(|a| a.output)
    };
    let reaches = |input: usize| forward_output(input).is_some_and(|o| o >= output);
    // Explicit padding larger than the kernel can make small inputs impossible (the clamp
    // at 0 above): the first legal size is the smallest within `stride` of the guess whose
    // forward output reaches `output`. Binary searches, so huge strides cost O(log stride).
    let (mut lo, mut hi) = (first, first.saturating_add(stride));
    if !reaches(hi) {
        return Ok(None);
    }
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if reaches(mid) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let first = lo;
    if forward_output(first) != Some(output) {
        return Ok(None);
    }
    // The last: the largest size within `stride - 1` of the first that still maps to `output`.
    let (mut lo, mut hi) = (first, first.saturating_add(stride - 1));
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if forward_output(mid) == Some(output) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Ok(Some(first..=lo))
}

/// Which of the three linear maps of a [`Problem`] is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// `y = conv(x, w)`.
    Forward,
    /// `dx = conv^T(dy, w)` (backprop-input, transposed convolution).
    BackwardData,
    /// `dw` from `x` and `dy` (backprop-filter).
    BackwardFilter,
}

/// One forward convolution, validated: every entry point of convt builds one.
///
/// Canonical layouts (what kernels and [`crate::reference`] use): input and output
/// `[batch, height, width, channels]` (NHWC), filter `[kh, kw, in_channels / groups,
/// out_channels]` (HWIO).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Problem {
    /// Batch size.
    pub batch: usize,
    /// Forward input channels.
    pub in_channels: usize,
    /// Forward output channels.
    pub out_channels: usize,
    /// Channel groups (1 = ordinary convolution; `in_channels` = depthwise).
    pub groups: usize,
    /// Height axis.
    pub height: Axis,
    /// Width axis.
    pub width: Axis,
}

fn product(arg: &str, dims: &[usize]) -> Result<usize> {
    // The product of the non-zero lengths must stay addressable even when another length
    // is 0 (an array's strides are computed from it), and so must the byte count of an
    // f64 buffer.
    let mut nonzero: usize = 1;
    for &d in dims {
        nonzero = nonzero
            .checked_mul(d.max(1))
            .filter(|&n| n <= (isize::MAX as usize) / 8)
            .ok_or_else(|| too_large(arg, &format!("shape {dims:?}")))?;
    }
    Ok(if dims.contains(&0) { 0 } else { nonzero })
}

impl Problem {
    /// Builds and validates a problem from its axes.
    ///
    /// `groups` must be >= 1 and divide both channel counts; every tensor's element
    /// count must fit in memory's address space.
    pub fn new(
        batch: usize,
        in_channels: usize,
        out_channels: usize,
        groups: usize,
        height: Axis,
        width: Axis,
    ) -> Result<Problem> {
        let p = Problem {
            batch,
            in_channels,
            out_channels,
            groups,
            height,
            width,
        };
        p.check()?;
        Ok(p)
    }

    /// Checks the problem as [`Problem::new`] does (a problem's fields are public, so
    /// one built or changed by hand may break the rules): groups at least 1 and dividing
    /// both channel counts, both axes as [`Axis::check`] wants them, and every tensor's
    /// element count addressable. Every computing entry point checks its problem.
    pub fn check(&self) -> Result<()> {
        let Problem {
            in_channels,
            out_channels,
            groups,
            height,
            width,
            ..
        } = *self;
        if groups == 0 {
            return Err(ConvError::NotPositive {
                arg: "groups".into(),
                got: vec![0],
            });
        }
        if !in_channels.is_multiple_of(groups) {
            return Err(ConvError::Channels {
                arg: "groups".into(),
                message: format!(
                    "input channels {in_channels} are not divisible by groups {groups}"
                ),
            });
        }
        if !out_channels.is_multiple_of(groups) {
            return Err(ConvError::Channels {
                arg: "groups".into(),
                message: format!(
                    "output channels {out_channels} are not divisible by groups {groups}"
                ),
            });
        }
        height.check("height")?;
        width.check("width")?;
        product("input", &self.input_shape())?;
        product("output", &self.output_shape())?;
        product("filter", &self.filter_shape())?;
        Ok(())
    }

    /// Forward input shape, NHWC.
    pub fn input_shape(&self) -> [usize; 4] {
        [
            self.batch,
            self.height.input,
            self.width.input,
            self.in_channels,
        ]
    }

    /// Forward output shape, NHWC.
    pub fn output_shape(&self) -> [usize; 4] {
        [
            self.batch,
            self.height.output,
            self.width.output,
            self.out_channels,
        ]
    }

    /// Filter shape, HWIO: `[kh, kw, in_channels / groups, out_channels]`.
    pub fn filter_shape(&self) -> [usize; 4] {
        [
            self.height.kernel,
            self.width.kernel,
            self.in_channels / self.groups,
            self.out_channels,
        ]
    }

    /// Input channels per group.
    pub fn in_per_group(&self) -> usize {
        self.in_channels / self.groups
    }

    /// Output channels per group.
    pub fn out_per_group(&self) -> usize {
        self.out_channels / self.groups
    }

    /// Multiply-adds of useful work times two (the same for all three directions):
    /// `2 * N * OH * OW * Cout * KH * KW * Cin/groups`.
    pub fn flops(&self) -> f64 {
        2.0 * self.batch as f64
            * self.height.output as f64
            * self.width.output as f64
            * self.out_channels as f64
            * self.height.kernel as f64
            * self.width.kernel as f64
            * self.in_per_group() as f64
    }

    /// The two axes, height first.
    pub fn axes(&self) -> [Axis; 2] {
        [self.height, self.width]
    }
}

/// Element count of a shape, checked against overflow (argument `arg` in the error).
pub fn element_count(arg: &str, dims: &[usize]) -> Result<usize> {
    product(arg, dims)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Legal sizes, by brute force over the forward rule.
    fn brute(o: usize, k: usize, s: usize, d: usize, p: AxisPadding) -> Vec<usize> {
        (0..80)
            .filter(|&i| {
                Axis::forward("h", i, Taps::new(k, s, d), p)
                    .map(|a| a.output == o)
                    .unwrap_or(false)
            })
            .collect()
    }

    #[test]
    fn legal_sizes_match_brute_force() {
        for o in 0..6 {
            for k in 1..5 {
                for s in 1..4 {
                    for d in 1..3 {
                        for p in [
                            AxisPadding::Valid,
                            AxisPadding::SameUpper,
                            AxisPadding::Explicit {
                                before: 1,
                                after: 2,
                            },
                            AxisPadding::Explicit {
                                before: 7,
                                after: 0,
                            },
                        ] {
                            let got: Vec<usize> = legal_transposed_sizes(o, Taps::new(k, s, d), p)
                                .unwrap()
                                .map(|r| r.collect())
                                .unwrap_or_default();
                            assert_eq!(got, brute(o, k, s, d, p), "o={o} k={k} s={s} d={d} {p:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn semantics_examples() {
        // SEMANTICS_DETAIL 3.2: I=3,K=3,s=2 SAME {5,6}, VALID {7,8}; I=3,K=1,s=3 VALID {7,8,9};
        // I=2,K=5,s=3 VALID {8,9,10}.
        let l = |o, k, s, p| {
            legal_transposed_sizes(o, Taps::new(k, s, 1), p)
                .unwrap()
                .unwrap()
        };
        assert_eq!(l(3, 3, 2, AxisPadding::SameUpper), 5..=6);
        assert_eq!(l(3, 3, 2, AxisPadding::Valid), 7..=8);
        assert_eq!(l(3, 1, 3, AxisPadding::Valid), 7..=9);
        assert_eq!(l(2, 5, 3, AxisPadding::Valid), 8..=10);
        // TF SAME I=224 K=7 s=2: pads (2,3), O=112.
        let a = Axis::forward("h", 224, Taps::new(7, 2, 1), AxisPadding::SameUpper).unwrap();
        assert_eq!((a.pad_before, a.pad_after, a.output), (2, 3, 112));
        let a = Axis::forward("h", 7, Taps::new(4, 1, 1), AxisPadding::SameLower).unwrap();
        assert_eq!((a.pad_before, a.pad_after), (2, 1));
        // Kernel larger than the input is fine with SAME.
        let a = Axis::forward("h", 2, Taps::new(5, 1, 1), AxisPadding::SameUpper).unwrap();
        assert_eq!((a.pad_before, a.pad_after, a.output), (2, 2, 2));
        assert!(Axis::forward("h", 2, Taps::new(3, 1, 1), AxisPadding::Valid).is_err());
        assert_eq!(
            Axis::forward("h", 0, Taps::new(3, 2, 1), AxisPadding::SameUpper)
                .unwrap()
                .output,
            0
        );
    }

    #[test]
    fn huge_sizes_are_errors_not_panics() {
        assert!(Axis::forward(
            "h",
            usize::MAX,
            Taps::new(3, 1, usize::MAX),
            AxisPadding::Valid
        )
        .is_err());
        let pad = AxisPadding::Explicit {
            before: usize::MAX,
            after: 1,
        };
        assert!(Axis::forward("h", usize::MAX, Taps::new(1, 1, 1), pad).is_err());
        let a = Axis::forward("h", 1 << 31, Taps::new(1, 1, 1), AxisPadding::Valid).unwrap();
        assert!(Problem::new(1 << 31, 1 << 31, 1, 1, a, a).is_err());
        // Found by fuzzing: legal sizes for a huge stride are found without scanning it.
        let pad = AxisPadding::Explicit {
            before: 5,
            after: 0,
        };
        let legal = legal_transposed_sizes(3, Taps::new(1, 1 << 40, 1), pad)
            .unwrap()
            .unwrap();
        assert_eq!(
            (*legal.start(), *legal.end()),
            ((2 << 40) - 4, (3 << 40) - 5)
        );
        // Found by fuzzing: an empty batch does not make a huge height addressable.
        let huge =
            Axis::forward("h", usize::MAX / 4, Taps::new(1, 1, 1), AxisPadding::Valid).unwrap();
        let one = Axis::forward("w", 1, Taps::new(1, 1, 1), AxisPadding::Valid).unwrap();
        assert!(Problem::new(0, 1, 1, 1, huge, one).is_err());
    }
}
