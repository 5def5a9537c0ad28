//! The seed's constructions: "all four ops are just `conv2d`".
//!
//! - [`rot180`], [`swap_in_out`]: the filter transforms of the input-gradient identity;
//! - [`zero_stuff`]: insert `stride - 1` zeros between elements (the "fractional stride");
//! - [`pad`], [`full_padding`]: zero padding (negative amounts crop), FULL padding;
//! - [`nhwc_to_hwio`], [`swap_batch_channels`]: reading a data tensor as a filter and
//!   exchanging the batch and channel roles, for the filter-gradient identity;
//! - [`backprop_input_via_conv2d`] and [`backprop_filter_via_conv2d`]: the two
//!   identities of `SEMANTICS.md` section 1 built from those pieces and a stride-1
//!   `conv2d`, which the tests compare with the direct ops.
//!
//! ```
//! use convt::identities::{rot180, zero_stuff};
//! use ndarray::array;
//! let w = array![[1.0, 2.0], [3.0, 4.0]].into_shape_with_order((2, 2, 1, 1)).unwrap();
//! let r = rot180(w.view()).into_shape_with_order((2, 2)).unwrap();
//! assert_eq!(r, array![[4.0, 3.0], [2.0, 1.0]]);
//! let x = array![[1.0, 2.0]].into_shape_with_order((1, 1, 2, 1)).unwrap();
//! let z = zero_stuff(x.view(), [1, 3]).into_shape_with_order((1, 4)).unwrap();
//! assert_eq!(z, array![[1.0, 0.0, 0.0, 2.0]]);
//! ```

use crate::element::Element;
use crate::error::{ConvError, Result};
use crate::problem::Problem;
use crate::tf;
use ndarray::{s, Array4, ArrayView4};

/// Rotates every 2-D kernel slice of an HWIO filter by 180 degrees (flips both spatial
/// axes).
pub fn rot180<T: Element>(filter: ArrayView4<T>) -> Array4<T> {
    filter
        .slice(s![..;-1, ..;-1, .., ..])
        .as_standard_layout()
        .into_owned()
}

/// Swaps the in and out channel axes of a filter: HWIO <-> HWOI (permutation
/// `[0, 1, 3, 2]`), e.g. `[7, 7, 1, 32] -> [7, 7, 32, 1]`.
pub fn swap_in_out<T: Element>(filter: ArrayView4<T>) -> Array4<T> {
    filter
        .permuted_axes([0, 1, 3, 2])
        .as_standard_layout()
        .into_owned()
}

/// The rotated, in/out-swapped filter of a grouped convolution: for group `g`,
/// `out[kh, kw, m, g*Cg + c] = w[KH-1-kh, KW-1-kw, c, g*Og + m]`. With one group this is
/// `swap_in_out(rot180(w))`.
pub fn rot180_swap_grouped<T: Element>(filter: ArrayView4<T>, groups: usize) -> Result<Array4<T>> {
    let [kh, kw, cg, cout] = [
        filter.shape()[0],
        filter.shape()[1],
        filter.shape()[2],
        filter.shape()[3],
    ];
    if groups == 0 || cout % groups != 0 {
        return Err(ConvError::Channels {
            arg: "groups".into(),
            message: format!("{groups} does not divide the filter's {cout} output channels"),
        });
    }
    let og = cout / groups;
    Ok(Array4::from_shape_fn(
        (kh, kw, og, cg * groups),
        |(h, w, m, c)| {
            let g = c / cg.max(1);
            filter[[kh - 1 - h, kw - 1 - w, c % cg.max(1), g * og + m]]
        },
    ))
}

/// Inserts `stride - 1` zeros between neighbouring elements of the height and width axes
/// of an NHWC tensor: size `n` becomes `(n - 1) * stride + 1`.
pub fn zero_stuff<T: Element>(x: ArrayView4<T>, strides: [usize; 2]) -> Array4<T> {
    let [n, h, w, c] = [x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]];
    let stuffed = |len: usize, s: usize| {
        if len == 0 {
            0
        } else {
            (len - 1) * s.max(1) + 1
        }
    };
    let mut out = Array4::zeros((n, stuffed(h, strides[0]), stuffed(w, strides[1]), c));
    out.slice_mut(s![.., ..;strides[0].max(1) as isize, ..;strides[1].max(1) as isize, ..])
        .assign(&x);
    out
}

/// Pads the height and width axes of an NHWC tensor with zeros: `pads[axis] = [before,
/// after]`; a negative amount crops instead.
pub fn pad<T: Element>(x: ArrayView4<T>, pads: [[i64; 2]; 2]) -> Result<Array4<T>> {
    let shape = x.shape().to_vec();
    let new_len = |axis: usize| -> Result<usize> {
        let len = shape[axis + 1] as i64 + pads[axis][0] + pads[axis][1];
        usize::try_from(len).map_err(|_| ConvError::Shape {
            arg: "pads".into(),
            message: format!(
                "cropping {:?} removes more than the {} elements of the axis",
                pads[axis],
                shape[axis + 1]
            ),
        })
    };
    let (h, w) = (new_len(0)?, new_len(1)?);
    let mut out = Array4::zeros((shape[0], h, w, shape[3]));
    // Source range kept and where it goes, per axis.
    let span = |axis: usize, out_len: usize| {
        let before = pads[axis][0];
        let src_start = ((-before).max(0) as usize).min(shape[axis + 1]);
        let dst_start = before.max(0) as usize;
        let len = (shape[axis + 1] - src_start.min(shape[axis + 1]))
            .min(out_len.saturating_sub(dst_start));
        (src_start, dst_start, len)
    };
    let (sh, dh, lh) = span(0, h);
    let (sw, dw, lw) = span(1, w);
    out.slice_mut(s![.., dh..dh + lh, dw..dw + lw, ..])
        .assign(&x.slice(s![.., sh..sh + lh, sw..sw + lw, ..]));
    Ok(out)
}

/// FULL padding for a kernel: `effective_kernel - 1` zeros on both sides of each axis,
/// so that the kernel is applied wherever it overlaps the input at all.
pub fn full_padding(kernel: [usize; 2], dilation: [usize; 2]) -> [[i64; 2]; 2] {
    [0, 1].map(|a| {
        let e = (kernel[a].max(1) - 1) * dilation[a] + 1;
        [e as i64 - 1, e as i64 - 1]
    })
}

/// Reads an NHWC data tensor as an HWIO filter: `[N, H, W, C] -> [H, W, N, C]`.
pub fn nhwc_to_hwio<T: Element>(x: ArrayView4<T>) -> Array4<T> {
    x.permuted_axes([1, 2, 0, 3])
        .as_standard_layout()
        .into_owned()
}

/// Reads an HWIO filter as an NHWC tensor: `[H, W, I, O] -> [I, H, W, O]`.
pub fn hwio_to_nhwc<T: Element>(w: ArrayView4<T>) -> Array4<T> {
    w.permuted_axes([2, 0, 1, 3])
        .as_standard_layout()
        .into_owned()
}

/// Exchanges the batch and channel axes of an NHWC tensor: `[N, H, W, C] -> [C, H, W, N]`.
pub fn swap_batch_channels<T: Element>(x: ArrayView4<T>) -> Array4<T> {
    x.permuted_axes([3, 1, 2, 0])
        .as_standard_layout()
        .into_owned()
}

/// `conv2d_backprop_input` as a plain stride-1 `conv2d`: zero-stuff `dy` by the stride,
/// pad it with `ek - 1 - pad_before` zeros before and `ek - 1 - pad_after + a` after
/// (`a` = the rows the forward stride skipped; negative amounts crop), and correlate with
/// the rotated, in/out-swapped filter at the forward dilation. `dy` NHWC, `filter` HWIO.
pub fn backprop_input_via_conv2d<T: Element>(
    p: &Problem,
    dy: ArrayView4<T>,
    filter: ArrayView4<T>,
) -> Result<Array4<T>> {
    let pads = equivalent_conv_padding(p);
    let stuffed = zero_stuff(dy, [p.height.stride, p.width.stride]);
    let padded = pad(stuffed.view(), pads)?;
    let rotated = rot180_swap_grouped(filter, p.groups)?;
    let opts = tf::Options::new(tf::Padding::Valid)
        .dilations([p.height.dilation as i64, p.width.dilation as i64]);
    tf::conv2d(padded.view(), rotated.view(), &opts)
}

/// The padding `[[before, after]; 2]` (height, width) of the zero-stuffed `dy` in the
/// stride-1 convolution equivalent to the input gradient: `ek - 1 - pad_before` before and
/// `ek - 1 - pad_after + a` after, where `a = (input + pads - ek) mod stride` are the rows
/// the forward stride skipped. Negative amounts crop.
pub fn equivalent_conv_padding(p: &Problem) -> [[i64; 2]; 2] {
    p.axes().map(|axis| {
        let ek = axis.effective_kernel() as i64;
        let padded = axis.input as i64 + axis.pad_before as i64 + axis.pad_after;
        let skipped = (padded - ek).rem_euclid(axis.stride as i64);
        [
            ek - 1 - axis.pad_before as i64,
            ek - 1 - axis.pad_after + skipped,
        ]
    })
}

/// `conv2d_backprop_filter` as a plain `conv2d` (one group): exchange batch and channels
/// of `x`, read `dy` as a filter, and convolve with the forward *dilation* as the stride
/// and the forward *stride* as the dilation; keep the first `kernel` outputs per axis.
pub fn backprop_filter_via_conv2d<T: Element>(
    p: &Problem,
    x: ArrayView4<T>,
    dy: ArrayView4<T>,
) -> Result<Array4<T>> {
    if p.groups != 1 {
        return Err(ConvError::Argument {
            arg: "groups".into(),
            message: format!(
                "the filter-gradient identity is written for one group, got {}",
                p.groups
            ),
        });
    }
    let mut pads = [[0i64; 2]; 2];
    for (a, axis) in p.axes().iter().enumerate() {
        pads[a] = [axis.pad_before as i64, axis.pad_after];
    }
    let padded = pad(x, pads)?;
    let xt = swap_batch_channels(padded.view());
    let dy_filter = nhwc_to_hwio(dy);
    let opts = tf::Options::new(tf::Padding::Valid)
        .strides([p.height.dilation as i64, p.width.dilation as i64])
        .dilations([p.height.stride as i64, p.width.stride as i64]);
    let out = tf::conv2d(xt.view(), dy_filter.view(), &opts)?;
    let kept = out.slice(s![.., ..p.height.kernel, ..p.width.kernel, ..]);
    Ok(kept
        .permuted_axes([1, 2, 0, 3])
        .as_standard_layout()
        .into_owned())
}
