//! Fast kernels for the three directions of a [`Problem`], on data in NHWC or NCHW
//! (filters HWIO): they know index arithmetic and memory layouts, not frameworks. NCHW
//! data runs as it lies in every plan but the transposed direction's stride phases:
//! tiles, columns and windows are gathered from the channel planes (the Winograd filter
//! gradient stages each block's rectangles), and results reach each channel's lines by
//! blocked transposes inside the tasks, never by a whole-tensor copy.
//!
//! - forward: im2col of a tile of output pixels + GEMM per group (a 1x1, stride-1,
//!   unpadded convolution is one plain GEMM straight from the input), or Winograd's
//!   minimal filtering for stride-1 square kernels with enough channels;
//! - backward data (transposed convolution): the stride-phase decomposition. The output
//!   positions with the same `(position + pad) mod stride` receive contributions from the
//!   same kernel taps only, so each phase is a stride-1 correlation with a sub-kernel:
//!   no multiplications by inserted zeros, and every output element is written once.
//!   Where the phases' taps overlap, all phases at once are a stride-1 correlation of
//!   `dy` (the sub-pixel view), which Winograd's algorithm computes with fewer products
//!   (where the view has at most 16 columns, a DCGAN generator's RGB layer, by an engine
//!   of our own whose products are vectorised over tiles, NHWC only; a grid one position
//!   past a multiple of the tile, as k4 s2 layers have, is cut to whole tiles and its
//!   last row and column computed directly). Where the kernel
//!   equals the stride (no padding), each `dy` pixel's product with the filter is a tile
//!   of `dx` of its own, stored straight into `dx` by a register-blocked product of our
//!   own (NHWC only);
//! - backward filter: `im2col(x)^T * dy` over fixed blocks of pixels, with partial sums
//!   added in a fixed order, so the result does not depend on the thread count; or, for
//!   kernels that are a multiple of the stride, Winograd's algorithm per stride phase
//!   with `dy`'s tiles in the role of the filter;
//! - depthwise problems (one input channel per group), in all three directions: direct
//!   loops over the taps, vectorised over channels or along lines.
//! - few channels on one side (RGB inputs or outputs), forward and stride-1 transposed:
//!   direct loops over each output pixel's window with the results in registers (f32),
//!   where im2col would copy a few values at a time or the GEMM would be a few
//!   columns wide. Other products at most 16 columns wide run in a register kernel of
//!   our own rather than the `gemm` crate's, and so do the tile product and Winograd's
//!   f32 products, whose right-hand sides are packed once per call.
//!
//! The register kernels of our own are written once over `simd::F32s` and run on
//! AVX-512 or on AVX2 with FMA (each with its own register blockings), and so are the
//! constant-coefficient Winograd transforms of the column-vectorised engine and of the
//! filter gradient; what is AVX-512 only (the narrow Winograd engine, the in-register
//! transposes, streaming stores) leaves AVX2 machines to the portable loops, which are compiled for the best of the two where they are hot. `CONVT_MAX_ISA=avx2` (or `none`) caps the
//! instruction set, so that one machine can test every path.
//!
//! Work is split into tasks whose boundaries depend only on the problem, never on the
//! number of threads (the tile product's tasks do depend on it, but there each value is
//! one dot product whatever the split), so results are bitwise identical for any rayon
//! pool size.

mod depthwise;
mod few_channels;
mod gemm;
pub(crate) mod lines;
mod panels;
mod simd;
mod stream;
mod tiles;
pub(crate) mod transpose;
mod winograd;
mod winograd_filter;
mod winograd_fixed;
mod winograd_narrow;

use crate::element::Element;
use crate::layout::DataFormat;
use crate::problem::Problem;
use gemm::{gemm, Mat, MatMut};
use rayon::prelude::*;

/// Bytes of im2col buffer one task gathers at a time.
const COL_BUDGET_BYTES: usize = 256 * 1024;
/// Bytes of im2col buffer one filter-gradient block gathers (the products' inner size).
const FILTER_COL_BUDGET_BYTES: usize = 2 << 20;
/// Upper bound on the partial filter-gradient buffers of [`backward_filter_with`].
const PARTIAL_BUDGET_BYTES: usize = 8 << 20;
/// Most partial sums of [`backward_filter_with`].
const MAX_PARTIALS: usize = 16;

/// Least work of one rayon task, in FLOPs (about a microsecond).
const MIN_TASK_FLOPS: f64 = 131072.0;

/// Items per rayon task so that each holds at least [`MIN_TASK_FLOPS`]: a small problem
/// then runs on the calling thread (rayon only leaves it to split work), which keeps the
/// latency of tiny calls at a microsecond. Scheduling only: results do not change.
fn min_items(p: &Problem, items: usize) -> usize {
    let per_item = p.flops() / items.max(1) as f64;
    ((MIN_TASK_FLOPS / per_item.max(1.0)).ceil() as usize).clamp(1, items.max(1))
}

fn tile_rows<T>(row_len: usize) -> usize {
    (COL_BUDGET_BYTES / (row_len.max(1) * std::mem::size_of::<T>())).clamp(8, 2048)
}

/// `values` as f32, when `T` is `f32` (the kernels written with f32 intrinsics).
fn f32s<T: 'static>(values: &[T]) -> Option<&[f32]> {
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()).then(|| {
        // SAFETY: `T` is `f32` (the same `TypeId`), so the slice holds `f32` values.
        unsafe { std::slice::from_raw_parts(values.as_ptr().cast::<f32>(), values.len()) }
    })
}

/// `values` as mutable f32, when `T` is `f32`.
fn f32s_mut<T: 'static>(values: &mut [T]) -> Option<&mut [f32]> {
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()).then(|| {
        // SAFETY: `T` is `f32` (the same `TypeId`), so the slice holds `f32` values; the
        // result borrows `values` mutably, so it is the only view while it lives.
        unsafe { std::slice::from_raw_parts_mut(values.as_mut_ptr().cast::<f32>(), values.len()) }
    })
}

/// `values` (room not yet written) as f32 room, when `T` is `f32`.
fn uninit_f32s<T: 'static>(
    values: &mut [std::mem::MaybeUninit<T>],
) -> Option<&mut [std::mem::MaybeUninit<f32>]> {
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()).then(|| {
        // SAFETY: `T` is `f32` (the same `TypeId`), so the slice holds `MaybeUninit<f32>`;
        // the result borrows `values` mutably, so it is the only view while it lives.
        unsafe { std::slice::from_raw_parts_mut(values.as_mut_ptr().cast(), values.len()) }
    })
}

/// Fills `out`, an empty vector with room for the `len` values of `shape`, by `fill` on
/// that room, with no zero-fill first: the one entry of the kernels that store every
/// value of their output. Returns false, leaving `out` empty, where the room does not
/// match the shape or `fill` declines (returns false).
///
/// # Safety
/// `fill` returns true only having written every value of the room.
unsafe fn fill_new<T>(
    out: &mut Vec<T>,
    (shape, len): ([usize; 4], usize),
    fill: impl FnOnce(&mut [std::mem::MaybeUninit<T>]) -> bool,
) -> bool {
    let size = shape.iter().try_fold(1, |n: usize, &d| n.checked_mul(d));
    if !(out.is_empty() && out.capacity() >= len && size == Some(len)) {
        return false;
    }
    if !fill(&mut out.spare_capacity_mut()[..len]) {
        return false;
    }
    // SAFETY: `fill` wrote all `len` values (this function's contract).
    unsafe { out.set_len(len) };
    true
}

/// `(image, block, values)` for every block of `block` values (the last one of an
/// image shorter) of every image of `image` values in `values`: the tasks of plans that
/// split each image's output into fixed runs.
fn image_blocks<T>(values: &mut [T], image: usize, block: usize) -> Vec<(usize, usize, &mut [T])> {
    values
        .chunks_mut(image.max(1))
        .enumerate()
        .flat_map(|(n, image)| {
            let blocks = image.chunks_mut(block.max(1)).enumerate();
            blocks.map(move |(b, values)| (n, b, values))
        })
        .collect()
}

/// Signed input position read by output index `o` and tap `k`.
#[inline]
fn input_pos(o: usize, k: usize, stride: usize, dilation: usize, pad: usize) -> isize {
    (o * stride + k * dilation) as isize - pad as isize
}

/// Writes rows `[first, first + rows)` of the im2col matrix of group `g` into `col`:
/// row = output pixel `(n, oh, ow)`, columns `(kh, kw, ci)`, zeros for padding.
fn gather_forward<T: Element>(
    p: &Problem,
    first: usize,
    rows: usize,
    g: usize,
    x: &[T],
    col: &mut [T],
) {
    let (h, w) = (p.height, p.width);
    let cin = p.in_channels;
    let cg = p.in_per_group();
    let kdim = h.kernel * w.kernel * cg;
    for r in 0..rows {
        let pixel = first + r;
        let ow = pixel % w.output;
        let oh = (pixel / w.output) % h.output;
        let n = pixel / (w.output * h.output);
        let row = &mut col[r * kdim..(r + 1) * kdim];
        for kh in 0..h.kernel {
            let ih = input_pos(oh, kh, h.stride, h.dilation, h.pad_before);
            let seg = &mut row[kh * w.kernel * cg..(kh + 1) * w.kernel * cg];
            if ih < 0 || ih as usize >= h.input {
                seg.fill(T::zero());
                continue;
            }
            let line = (n * h.input + ih as usize) * w.input;
            let first = input_pos(ow, 0, w.stride, w.dilation, w.pad_before);
            let last = first + ((w.kernel - 1) * w.dilation) as isize;
            if p.groups == 1 && w.dilation == 1 && first >= 0 && (last as usize) < w.input {
                // The whole window row is one run of the input: one copy.
                let src = (line + first as usize) * cin;
                transpose::copy(seg, &x[src..], seg.len());
                continue;
            }
            for kw in 0..w.kernel {
                let iw = input_pos(ow, kw, w.stride, w.dilation, w.pad_before);
                let dst = &mut seg[kw * cg..(kw + 1) * cg];
                if iw < 0 || iw as usize >= w.input {
                    dst.fill(T::zero());
                } else {
                    let src = (line + iw as usize) * cin + g * cg;
                    transpose::copy(dst, &x[src..], cg);
                }
            }
        }
    }
}

/// How [`crate::conv::forward`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardPlan {
    /// im2col of tiles of output pixels, then a GEMM per group.
    Im2col,
    /// Winograd's minimal filtering (stride 1, no dilation, one group, square kernels up
    /// to 5x5): fewer multiplications, at the cost of a few more rounding errors
    /// (relative error around 1e-6 in f32 instead of 1e-7). Other problems fall back to
    /// [`ForwardPlan::Im2col`].
    Winograd,
    /// Depthwise problems (one input channel per group): plain loops over the taps,
    /// vectorised over channels. Other problems fall back to [`ForwardPlan::choose`]'s.
    Depthwise,
    /// One group with few input channels (at most 8: RGB images) or few output channels
    /// (at most 4: RGB outputs): direct loops over each output pixel's window, f32 on
    /// AVX-512 or AVX2 with FMA (NCHW data by bands of rows staged channels-last). Other
    /// calls fall back to [`ForwardPlan::Im2col`].
    FewChannels,
}

/// Winograd is chosen when its estimated cost (products plus transforms) is below this
/// fraction of the direct product count.
const WINOGRAD_COST_LIMIT: f64 = 0.75;
/// The narrow Winograd engine is chosen when its estimated cost is below this fraction
/// of the direct product count.
const NARROW_WINOGRAD_COST_LIMIT: f64 = 0.85;
/// Fewest channels on either side of the GEMMs for Winograd to pay for its transforms.
const WINOGRAD_MIN_CHANNELS: usize = 8;

/// Elements of plan workspace (transformed or sub-pixel filters, windows) allowed beyond
/// the larger of the problem's arrays: 16 MiB of f32.
const WORKSPACE_EXTRA_ELEMENTS: usize = 1 << 22;

/// Whether `elements` of workspace keep to the memory rule: at most the larger of the
/// problem's arrays plus [`WORKSPACE_EXTRA_ELEMENTS`].
fn fits_workspace(p: &Problem, elements: usize) -> bool {
    let len = |shape: [usize; 4]| shape.iter().product::<usize>();
    let arrays = len(p.input_shape()).max(len(p.output_shape()));
    elements <= arrays.saturating_add(WORKSPACE_EXTRA_ELEMENTS)
}

/// A problem in Winograd's form: the sliding correlation, where it scatters, the
/// tiling and the estimated cost relative to direct products. `None` for taps Winograd does
/// not take, and when the transformed filter would not fit the memory rule
/// (max(input, output) + 16 MiB of workspace).
fn winograd_form(
    (s, sc): (winograd::Sliding, winograd::Scatter),
    p: &Problem,
) -> Option<(winograd::Sliding, winograd::Scatter, winograd::Tiling, f64)> {
    if !(2..winograd::MAX_ALPHA).contains(&s.r) {
        return None;
    }
    let (tiling, cost) = winograd::best_tile(&s, &sc)?;
    transformed_filter_fits(&s, &sc, tiling.m, p).then_some((s, sc, tiling, cost))
}

/// Whether Winograd's transformed filter for tiles of `m` (`(m + r - 1)^2` points of
/// `in_channels x cols`) keeps to the memory rule.
fn transformed_filter_fits(
    s: &winograd::Sliding,
    sc: &winograd::Scatter,
    m: usize,
    p: &Problem,
) -> bool {
    let alpha = m + s.r - 1;
    let filter = (alpha * alpha)
        .saturating_mul(s.in_channels)
        .saturating_mul(sc.cols());
    fits_workspace(p, filter)
}

/// Whether the direct sub-pixel plan's windows and filter fit the memory rule.
fn sub_pixel_fits((s, sc): &(winograd::Sliding, winograd::Scatter), p: &Problem) -> bool {
    let kdim = s.r * s.r * s.in_channels;
    let windows = (s.batch * s.grid_h * s.grid_w).saturating_mul(kdim);
    fits_workspace(p, windows.saturating_add(kdim.saturating_mul(sc.cols())))
}

/// Whether every value is finite. Winograd's transforms mix a tile's inputs, so a NaN or
/// infinity would reach outputs it is not connected to (and Inf - Inf makes NaN), and the
/// sub-pixel plan multiplies padding and zero taps (0 * Inf = NaN); such calls take the
/// plans that skip those products, which propagate exactly as the frameworks do.
fn all_finite<T: Element>(values: &[T]) -> bool {
    // Large arrays in parallel pieces (a serial scan of DCGAN's filter-gradient inputs
    // held one thread of two idle for 2% of the call).
    const PIECE: usize = 1 << 16;
    if values.len() > PIECE {
        return values.par_chunks(PIECE).all(all_finite);
    }
    // v * 0 is 0 for finite v and NaN otherwise; lanes of partial sums vectorise.
    let mut lanes = [T::zero(); 16];
    let mut chunks = values.chunks_exact(16);
    for chunk in &mut chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += v * T::zero();
        }
    }
    lanes
        .iter()
        .chain(chunks.remainder())
        .all(|v| v.is_finite())
}

/// The narrow Winograd engine's form of a problem (products vectorised over tiles): its
/// tiling and estimated cost relative to the direct products, where the form (taken
/// as NHWC) fits the engine and the transformed filter keeps to the memory rule. The
/// engine itself further needs f32, NHWC data and AVX-512.
fn narrow_winograd_form(
    (s, sc): (winograd::Sliding, winograd::Scatter),
    p: &Problem,
) -> Option<(winograd::Tiling, f64)> {
    let nhwc = winograd::Sliding {
        channels_first: false,
        ..s
    };
    let nhwc_scatter = winograd::Scatter {
        channels_first: false,
        ..sc
    };
    if !winograd_narrow::fits(&nhwc, &nhwc_scatter) {
        return None;
    }
    let (tiling, cost) = winograd_narrow::best_tile(&s, &sc)?;
    transformed_filter_fits(&s, &sc, tiling.m, p).then_some((tiling, cost))
}

/// Whether the narrow Winograd engine is worth its transforms on a problem.
fn narrow_winograd_pays(form: Option<(winograd::Tiling, f64)>) -> bool {
    form.is_some_and(|(_, cost)| cost < NARROW_WINOGRAD_COST_LIMIT)
}

/// Whether Winograd is worth its transforms on this form.
fn winograd_pays(form: &(winograd::Sliding, winograd::Scatter, winograd::Tiling, f64)) -> bool {
    let (s, sc, _, cost) = form;
    s.in_channels >= WINOGRAD_MIN_CHANNELS
        && sc.cols() >= WINOGRAD_MIN_CHANNELS
        && *cost < WINOGRAD_COST_LIMIT
}

impl ForwardPlan {
    /// The plan [`crate::conv::forward`] uses for `p`.
    pub fn choose(p: &Problem) -> ForwardPlan {
        if depthwise::applies(p) {
            return ForwardPlan::Depthwise;
        }
        if few_channels::applies(p) {
            return ForwardPlan::FewChannels;
        }
        match forward_sliding(p).and_then(|f| winograd_form(f, p)) {
            Some(form) if winograd_pays(&form) => ForwardPlan::Winograd,
            _ => ForwardPlan::Im2col,
        }
    }
}

/// The forward direction as a sliding correlation, when Winograd applies to it.
fn forward_sliding(p: &Problem) -> Option<(winograd::Sliding, winograd::Scatter)> {
    let (h, w) = (p.height, p.width);
    let r = h.kernel;
    let fits = p.groups == 1
        && (h.stride, w.stride, h.dilation, w.dilation) == (1, 1, 1, 1)
        && w.kernel == r
        && (2..winograd::MAX_ALPHA).contains(&r);
    fits.then_some((
        winograd::Sliding {
            batch: p.batch,
            in_h: h.input,
            in_w: w.input,
            in_channels: p.in_channels,
            grid_h: h.output,
            grid_w: w.output,
            origin_h: -(h.pad_before as isize),
            origin_w: -(w.pad_before as isize),
            r,
            channels_first: false,
        },
        winograd::Scatter {
            stride_h: 1,
            stride_w: 1,
            shift_h: 0,
            shift_w: 0,
            out_h: h.output,
            out_w: w.output,
            channels: p.out_channels,
            channels_first: false,
        },
    ))
}

/// The transposed direction in the sub-pixel view (one group, no dilation, the same tap
/// count `r` on both axes; Winograd further needs `r` >= 2): output
/// position `ih + pad = stride*q + phase` receives `dy[q - j] * w[phase + stride*j]`, so
/// each `q` is a stride-1 correlation of `dy` with an `r x r` filter (`r = ceil(k /
/// stride)`) whose columns are every (height phase, width phase, input channel).
fn transposed_sliding(p: &Problem) -> Option<(winograd::Sliding, winograd::Scatter)> {
    let (h, w) = (p.height, p.width);
    let r = h.kernel.div_ceil(h.stride);
    let fits = p.groups == 1
        && (h.dilation, w.dilation) == (1, 1)
        && w.kernel.div_ceil(w.stride) == r
        && r >= 1
        && h.input > 0
        && w.input > 0;
    let grid = |a: crate::problem::Axis| {
        (a.input - 1 + a.pad_before) / a.stride - a.pad_before / a.stride + 1
    };
    let origin = |a: crate::problem::Axis| (a.pad_before / a.stride) as isize - (r - 1) as isize;
    fits.then_some((
        winograd::Sliding {
            batch: p.batch,
            in_h: h.output,
            in_w: w.output,
            in_channels: p.out_channels,
            grid_h: grid(h),
            grid_w: grid(w),
            origin_h: origin(h),
            origin_w: origin(w),
            r,
            channels_first: false,
        },
        winograd::Scatter {
            stride_h: h.stride,
            stride_w: w.stride,
            shift_h: h.pad_before % h.stride,
            shift_w: w.pad_before % w.stride,
            out_h: h.input,
            out_w: w.input,
            channels: p.in_channels,
            channels_first: false,
        },
    ))
}

/// A sliding form on data in `format` (the forms are built for NHWC).
fn in_format(
    (mut s, mut sc): (winograd::Sliding, winograd::Scatter),
    format: DataFormat,
) -> (winograd::Sliding, winograd::Scatter) {
    s.channels_first = format == DataFormat::Nchw;
    sc.channels_first = format == DataFormat::Nchw;
    (s, sc)
}

/// [`forward_with`] for plans that store every value of `y` (the few-channel loops):
/// they fill `y`, an empty vector with room for the `len` values of the problem's
/// output, without a zero-fill first. Returns false, leaving `y` empty, for the other
/// plans and for calls this one declines; the caller then zero-fills `y` and calls
/// [`forward_with`].
#[must_use]
pub fn forward_fresh<T: Element>(
    plan: ForwardPlan,
    format: DataFormat,
    p: &Problem,
    (x, w): (&[T], &[T]),
    y: &mut Vec<T>,
    len: usize,
) -> bool {
    // (A non-finite filter takes im2col: see `forward_with`.)
    plan == ForwardPlan::FewChannels
        && all_finite(w)
        && few_channels::forward_fresh(p, format, x, w, (y, len))
}

/// `y = conv(x, w)` with a given plan, `x` and `y` in `format` as they lie (the filter
/// HWIO): every plan has a form for both layouts.
pub fn forward_with<T: Element>(
    plan: ForwardPlan,
    format: DataFormat,
    p: &Problem,
    x: &[T],
    w: &[T],
    y: &mut [T],
) {
    if plan == ForwardPlan::Depthwise && depthwise::applies(p) {
        depthwise::forward(p, format, x, w, y);
        return;
    }
    // The few-channel loops skip kernel rows wholly in the padding, which im2col
    // multiplies (0 * Inf = NaN): a non-finite filter takes im2col.
    if plan == ForwardPlan::FewChannels
        && all_finite(w)
        && few_channels::forward(p, format, x, w, y)
    {
        return;
    }
    if plan == ForwardPlan::Winograd && all_finite(x) && all_finite(w) {
        let form = forward_sliding(p)
            .map(|f| in_format(f, format))
            .and_then(|f| winograd_form(f, p));
        if let Some((s, sc, tiling, _)) = form {
            winograd::correlate(&s, &sc, tiling, x, w, y);
            return;
        }
    }
    match format {
        DataFormat::Nhwc => forward_im2col(p, x, w, y),
        DataFormat::Nchw => forward_im2col_nchw(p, x, w, y),
    }
}

fn forward_im2col<T: Element>(p: &Problem, x: &[T], w: &[T], y: &mut [T]) {
    let (h, wd) = (p.height, p.width);
    let (cin, cout, cg, og) = (
        p.in_channels,
        p.out_channels,
        p.in_per_group(),
        p.out_per_group(),
    );
    let kdim = h.kernel * wd.kernel * cg;
    if y.is_empty() || kdim == 0 {
        return;
    }
    let pointwise = h.kernel == 1
        && wd.kernel == 1
        && h.stride == 1
        && wd.stride == 1
        && h.pad_before == 0
        && wd.pad_before == 0
        && h.input == h.output
        && wd.input == wd.output;
    let tile = tile_rows::<T>(kdim);
    let tiles = y.len().div_ceil(tile * cout);
    y.par_chunks_mut(tile * cout)
        .enumerate()
        .with_min_len(min_items(p, tiles))
        .for_each(|(t, ytile)| {
            let first = t * tile;
            let rows = ytile.len() / cout;
            let mut col = vec![T::zero(); if pointwise { 0 } else { rows * kdim }];
            for g in 0..p.groups {
                let lhs = if pointwise {
                    Mat {
                        data: &x[first * cin + g * cg..],
                        rows,
                        cols: cg,
                        row_stride: cin,
                        col_stride: 1,
                    }
                } else {
                    gather_forward(p, first, rows, g, x, &mut col);
                    Mat {
                        data: &col,
                        rows,
                        cols: kdim,
                        row_stride: kdim,
                        col_stride: 1,
                    }
                };
                let rhs = Mat {
                    data: &w[g * og..],
                    rows: kdim,
                    cols: og,
                    row_stride: cout,
                    col_stride: 1,
                };
                let dst = MatMut {
                    data: &mut ytile[g * og..],
                    rows,
                    cols: og,
                    row_stride: cout,
                    col_stride: 1,
                };
                gemm(dst, false, lhs, rhs);
            }
        });
}

/// Most output pixels one task of [`forward_im2col_nchw`] computes (a block of every
/// output channel's row); fewer where the columns would pass [`NCHW_COL_BUDGET_BYTES`].
const NCHW_PIXEL_BLOCK: usize = 256;
/// Bytes of columns one task of [`forward_im2col_nchw`] gathers at most (but 16 pixels).
const NCHW_COL_BUDGET_BYTES: usize = 1 << 20;

/// [`ForwardPlan::Im2col`] on NCHW data (`x` `[N][Cin][IH][IW]`, `y` `[N][Cout][OH][OW]`,
/// filter HWIO), with no layout copies: per image, group and block of output pixels,
/// `y_block = W^T col`, where `col` (rows `(kh, kw, ci)`, columns the block's pixels) is
/// gathered from `x`'s planes, or is `x` itself for a pointwise convolution.
fn forward_im2col_nchw<T: Element>(p: &Problem, x: &[T], w: &[T], y: &mut [T]) {
    let (h, wd) = (p.height, p.width);
    let (cin, cout, cg, og) = (
        p.in_channels,
        p.out_channels,
        p.in_per_group(),
        p.out_per_group(),
    );
    let (pixels, plane) = (h.output * wd.output, h.input * wd.input);
    let taps = h.kernel * wd.kernel;
    let kdim = taps * cg;
    if y.is_empty() || pixels == 0 || kdim == 0 {
        return;
    }
    let pointwise = taps == 1
        && h.stride == 1
        && wd.stride == 1
        && h.pad_before == 0
        && wd.pad_before == 0
        && h.input == h.output
        && wd.input == wd.output;
    // Tasks (image, pixel block), each handed its block of every output channel's row.
    let block =
        (NCHW_COL_BUDGET_BYTES / (kdim * std::mem::size_of::<T>())).clamp(16, NCHW_PIXEL_BLOCK);
    let blocks = pixels.div_ceil(block);
    let mut tasks: Vec<(usize, usize, Vec<&mut [T]>)> = Vec::new();
    for (n, image) in y.chunks_mut(cout * pixels).enumerate() {
        let mut rows: Vec<_> = image
            .chunks_mut(pixels)
            .map(|row| row.chunks_mut(block))
            .collect();
        for b in 0..blocks {
            let parts = rows.iter_mut().filter_map(Iterator::next).collect();
            tasks.push((n, b * block, parts));
        }
    }
    tasks
        .into_par_iter()
        .with_min_len(min_items(p, p.batch * blocks))
        .for_each_init(
            || (Vec::new(), Vec::new()),
            |(col, out), (n, first, mut parts)| {
                let count = parts.first().map_or(0, |part| part.len());
                out.resize(og * count, T::zero());
                for g in 0..p.groups {
                    let image = &x[(n * cin + g * cg) * plane..][..cg * plane];
                    let rhs = if pointwise {
                        Mat {
                            data: &image[first..],
                            rows: cg,
                            cols: count,
                            row_stride: plane,
                            col_stride: 1,
                        }
                    } else {
                        gather_nchw(p, image, first, count, col);
                        Mat {
                            data: col,
                            rows: kdim,
                            cols: count,
                            row_stride: count,
                            col_stride: 1,
                        }
                    };
                    // W_g^T: rows the group's output channels, columns (kh, kw, ci).
                    let lhs = Mat {
                        data: &w[g * og..],
                        rows: og,
                        cols: kdim,
                        row_stride: 1,
                        col_stride: cout,
                    };
                    let dst = MatMut {
                        data: &mut out[..og * count],
                        rows: og,
                        cols: count,
                        row_stride: count,
                        col_stride: 1,
                    };
                    gemm(dst, false, lhs, rhs);
                    for (m, part) in parts[g * og..(g + 1) * og].iter_mut().enumerate() {
                        part.copy_from_slice(&out[m * count..][..count]);
                    }
                }
            },
        );
}

/// The im2col columns of output pixels `first..first + count` of one image (pixels
/// numbered row-major over the output), from `image` (the group's `Cg` NCHW input
/// planes): `col` becomes `[(kh, kw, ci)][count]`, zeros where a tap reads padding.
fn gather_nchw<T: Element>(p: &Problem, image: &[T], first: usize, count: usize, col: &mut Vec<T>) {
    let (h, wd) = (p.height, p.width);
    let (cg, plane) = (p.in_per_group(), h.input * wd.input);
    let taps = h.kernel * wd.kernel;
    col.clear();
    col.resize(taps * cg * count, T::zero());
    for tap in 0..taps {
        let (kh, kw) = (tap / wd.kernel, tap % wd.kernel);
        let (oh_lo, oh_hi) = tap_range(h, kh);
        let (ow_lo, ow_hi) = tap_range(wd, kw);
        for ci in 0..cg {
            let source = &image[ci * plane..][..plane];
            let row = &mut col[(tap * cg + ci) * count..][..count];
            // The block's pixels, output row by output row: each row's valid columns read
            // one input row at the stride.
            let mut j = 0;
            while j < count {
                let (oh, ow0) = ((first + j) / wd.output, (first + j) % wd.output);
                let ow1 = (ow0 + count - j).min(wd.output);
                let (a, b) = (ow0.max(ow_lo), ow1.min(ow_hi));
                if (oh_lo..oh_hi).contains(&oh) && a < b {
                    let ih = oh * h.stride + kh * h.dilation - h.pad_before;
                    let iw = a * wd.stride + kw * wd.dilation - wd.pad_before;
                    let line = &source[ih * wd.input + iw..(ih + 1) * wd.input];
                    let dst = &mut row[j + a - ow0..j + b - ow0];
                    if wd.stride == 1 {
                        transpose::copy(dst, line, dst.len());
                    } else {
                        for (d, &v) in dst.iter_mut().zip(line.iter().step_by(wd.stride)) {
                            *d = v;
                        }
                    }
                }
                j += ow1 - ow0;
            }
        }
    }
}

/// The kernel taps of one stride phase, and the sub-filter they form.
struct Phase<T> {
    /// Height taps `kh` with `kh * dilation_h = phase_h (mod stride_h)`, increasing.
    h_taps: Vec<usize>,
    /// Width taps likewise.
    w_taps: Vec<usize>,
    /// Sub-filter rows `(j_h, j_w, m)` (tap indices into the lists above, output channel
    /// of the group), columns `ci`: `w[h_taps[j_h], w_taps[j_w], ci, g*Og + m]`.
    filter: Vec<T>,
}

fn taps(kernel: usize, dilation: usize, stride: usize, phase: usize) -> Vec<usize> {
    (0..kernel)
        .filter(|k| (k * dilation) % stride == phase)
        .collect()
}

/// Packs the sub-filters of every (group, height phase, width phase).
fn pack_phases<T: Element>(p: &Problem, w: &[T]) -> Vec<Phase<T>> {
    let (h, wd) = (p.height, p.width);
    let (cout, cg, og) = (p.out_channels, p.in_per_group(), p.out_per_group());
    let mut phases = Vec::with_capacity(p.groups * h.stride * wd.stride);
    for g in 0..p.groups {
        for rh in 0..h.stride {
            for rw in 0..wd.stride {
                let h_taps = taps(h.kernel, h.dilation, h.stride, rh);
                let w_taps = taps(wd.kernel, wd.dilation, wd.stride, rw);
                let mut filter = Vec::with_capacity(h_taps.len() * w_taps.len() * og * cg);
                for &kh in &h_taps {
                    for &kw in &w_taps {
                        for m in 0..og {
                            for ci in 0..cg {
                                filter
                                    .push(w[((kh * wd.kernel + kw) * cg + ci) * cout + g * og + m]);
                            }
                        }
                    }
                }
                phases.push(Phase {
                    h_taps,
                    w_taps,
                    filter,
                });
            }
        }
    }
    phases
}

/// How [`crate::conv::backward_data`] computes: by stride phases, or by a GEMM into a column buffer
/// followed by a gather (for narrow outputs, where the phases' GEMMs would be only a few
/// columns wide, and for kernels that do not overlap themselves, such as U-Net's k2 s2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataPlan {
    /// Stride-phase decomposition: a GEMM per (output line, width phase, group).
    Phases,
    /// `Z = dy * W^T` per image (all kernel taps at once), then each output gathers its
    /// taps from `Z`.
    Col2im,
    /// Stride phases with one GEMM per (image, group, phase) over all its output lines at
    /// once, for large strides where a phase holds only a few cells per line; results go
    /// through a buffer the size of the output.
    PhaseMajor,
    /// The sub-pixel view (every stride phase at once, as a stride-1 correlation of `dy`
    /// with `ceil(k / stride)`-tap filters) computed with Winograd's minimal filtering:
    /// its products vectorised over result columns, or, for at most 16 columns (stride
    /// phases x output channels: a DCGAN generator's RGB layer) in f32 NHWC on AVX-512,
    /// over tiles. Problems it does not fit (dilation, groups, unequal tap counts) fall
    /// back to [`DataPlan::choose`]'s other plans.
    Winograd,
    /// The sub-pixel view computed directly: one GEMM per (image, height phase) over the
    /// windows of `dy`, with every width phase's columns at once. For large strides.
    /// Problems it does not fit (dilation, groups) fall back like [`DataPlan::Winograd`].
    SubPixel,
    /// Plain loops over `dy` and the kernel taps, scattering into `dx`, on the calling
    /// thread, with no packing or buffers: for tiny problems, where latency is setup.
    Direct,
    /// Depthwise problems (one input channel per group): each dx element gathers its
    /// taps directly, vectorised over channels. Other problems fall back like
    /// [`DataPlan::Winograd`].
    Depthwise,
    /// Stride 1, one group, few channels on one side: the transposed convolution is a
    /// forward one of `dy` with the filter rotated by 180 degrees and its channel axes
    /// swapped, computed by [`ForwardPlan::FewChannels`]'s direct loops (f32).
    /// Other calls fall back like [`DataPlan::Winograd`].
    FewChannels,
    /// Kernel equal to the stride, no padding, one group (U-Net's up-convolutions): each
    /// `dy` pixel's product with the filter is a tile of `dx` of its own, stored straight
    /// into `dx` by one register-blocked product (f32, NHWC). Other calls fall back like
    /// [`DataPlan::Winograd`].
    Tiles,
}

/// Problems below this many FLOPs take [`DataPlan::Direct`].
const DIRECT_MAX_FLOPS: f64 = 16384.0;

/// Largest column buffer (elements per image) of the [`DataPlan::Col2im`] plan.
const COL2IM_MAX_ELEMENTS: usize = 1 << 20;

impl DataPlan {
    /// The plan [`crate::conv::backward_data`] uses for `p`.
    pub fn choose(p: &Problem) -> DataPlan {
        if p.flops() < DIRECT_MAX_FLOPS {
            return DataPlan::Direct;
        }
        if depthwise::applies(p) {
            return DataPlan::Depthwise;
        }
        if rotated_problem(p).is_some_and(|q| few_channels::applies(&q)) {
            return DataPlan::FewChannels;
        }
        if tiles::applies(p) {
            return DataPlan::Tiles;
        }
        if narrow_winograd_pays(transposed_sliding(p).and_then(|f| narrow_winograd_form(f, p))) {
            return DataPlan::Winograd;
        }
        match transposed_sliding(p).and_then(|f| winograd_form(f, p)) {
            Some(form) if winograd_pays(&form) => DataPlan::Winograd,
            _ => DataPlan::choose_direct(p),
        }
    }

    /// The plan for `p` among those that compute products one by one.
    fn choose_direct(p: &Problem) -> DataPlan {
        let z =
            p.height.output * p.width.output * p.height.kernel * p.width.kernel * p.in_per_group();
        let (h, w) = (p.height, p.width);
        let no_overlap = p.height.effective_kernel() <= p.height.stride
            && p.width.effective_kernel() <= p.width.stride;
        let phase_cells = h.input.div_ceil(h.stride) * w.input.div_ceil(w.stride);
        let phase_taps =
            h.kernel.div_ceil(h.stride) * w.kernel.div_ceil(w.stride) * p.out_per_group();
        // A stride beyond the input leaves at most two dy positions per axis, so the column
        // buffer is tiny, while the phase plans would pack one sub-filter per phase
        // (stride_h * stride_w of them, found by fuzzing).
        let stride_beyond_input = h.stride > h.input || w.stride > w.input;
        // Grouped problems with few channels per group: the phase plans' products are a
        // few rows each, while the column plan's GEMM covers every tap at once (ResNeXt's
        // 32 groups of 8 at 28x28, 3x3: 2.0 vs 3.5 ms; 4 groups of 16, k4 s2: 3.7 vs 5.0).
        let grouped_narrow = p.groups > 1 && p.in_per_group() <= 16;
        if stride_beyond_input
            || (((p.in_per_group() < 16 || no_overlap) && p.out_per_group() >= 16)
                || grouped_narrow)
                && z <= COL2IM_MAX_ELEMENTS
        {
            DataPlan::Col2im
        } else if w.input / w.stride < 32 && w.stride >= 4 {
            match transposed_sliding(p) {
                Some(form) if sub_pixel_fits(&form, p) => DataPlan::SubPixel,
                _ if phase_cells * phase_taps <= COL2IM_MAX_ELEMENTS => DataPlan::PhaseMajor,
                _ => DataPlan::Phases,
            }
        } else {
            DataPlan::Phases
        }
    }
}

/// `dx = conv^T(dy, w)`, the input gradient / transposed convolution, with a given plan,
/// `dy` and `dx` in `format` as they lie (the filter HWIO). `dx` must be zero-filled, of
/// length `N*IH*IW*Cin`. On NCHW data, [`DataPlan::Phases`] and [`DataPlan::PhaseMajor`]
/// run as the column plan, which has an NCHW form. Returns false, having written nothing,
/// where the plan the call comes to (after the fallbacks for non-finite values and
/// memory) has no form for NCHW data: these three beyond the column plan's NCHW buffer
/// limit. NHWC calls always run.
#[must_use]
pub fn backward_data_with<T: Element>(
    plan: DataPlan,
    format: DataFormat,
    p: &Problem,
    dy: &[T],
    w: &[T],
    dx: &mut [T],
) -> bool {
    let plan = match plan {
        DataPlan::Winograd => {
            // The narrow engine fills new vectors only (`backward_data_fresh`, which
            // callers try first). Problems chosen for it that reach here (NCHW, f64, no
            // AVX-512, non-finite values): the column-vectorised engine only where that
            // pays.
            let sliding = transposed_sliding(p).map(|f| in_format(f, format));
            let narrow = sliding.and_then(|f| narrow_winograd_form(f, p));
            let form = sliding
                .and_then(|f| winograd_form(f, p))
                .filter(|form| !narrow_winograd_pays(narrow) || winograd_pays(form))
                .filter(|_| all_finite(dy) && all_finite(w));
            if let Some((s, sc, tiling, _)) = form {
                let filter = sub_pixel_filter(p, s.r, w);
                winograd::correlate(&s, &sc, tiling, dy, &filter, dx);
                return true;
            }
            DataPlan::choose_direct(p)
        }
        DataPlan::SubPixel => {
            let form = transposed_sliding(p)
                .map(|f| in_format(f, format))
                .filter(|f| sub_pixel_fits(f, p) && all_finite(dy) && all_finite(w));
            if let Some((s, sc)) = form {
                let filter = sub_pixel_columns(p, s.r, w);
                winograd::correlate_direct(&s, &sc, dy, &filter, dx);
                return true;
            }
            DataPlan::choose_direct(p)
        }
        DataPlan::Depthwise if depthwise::applies(p) => {
            depthwise::backward_data(p, format, dy, w, dx);
            return true;
        }
        DataPlan::Depthwise => DataPlan::choose_direct(p),
        // The tile product fills new vectors only (`backward_data_fresh`, which callers
        // try first): calls that reach here (f64, NCHW, other problems) fall back.
        DataPlan::Tiles => DataPlan::choose_direct(p),
        DataPlan::FewChannels => {
            // A non-finite filter times the rotated problem's padding would make NaN
            // where the frameworks drop those taps.
            let q = rotated_problem(p).filter(|q| few_channels::applies(q) && all_finite(w));
            if let Some(q) = q {
                if few_channels::forward(&q, format, dy, &rotated_filter(p, w), dx) {
                    return true;
                }
            }
            DataPlan::choose_direct(p)
        }
        direct => direct,
    };
    match (format, plan) {
        (_, DataPlan::Direct) => backward_data_direct(p, format, dy, w, dx),
        // The stride-phase plans have no NCHW form: the column plan's, where it fits, is
        // faster than they are through NHWC's layout copies (grouped and dilated layers:
        // 4-43% less time; 6% more on 2 groups of 128 channels, k4 s2).
        (DataFormat::Nchw, DataPlan::Col2im | DataPlan::Phases | DataPlan::PhaseMajor)
            if col2im_nchw_fits(p) =>
        {
            backward_data_col2im_nchw(p, dy, w, dx)
        }
        (DataFormat::Nchw, _) => return false,
        (_, DataPlan::Col2im) => backward_data_col2im(p, dy, w, dx),
        (_, DataPlan::PhaseMajor) => backward_data_phase_major(p, dy, w, dx),
        (
            _,
            DataPlan::Phases
            | DataPlan::Winograd
            | DataPlan::SubPixel
            | DataPlan::Depthwise
            | DataPlan::FewChannels
            | DataPlan::Tiles,
        ) => backward_data_phases(p, dy, w, dx),
    }
    true
}

/// [`backward_data_with`] for plans that store every value of `dx` (the tile product,
/// the narrow Winograd engine, the few-channel loops): they fill `dx`, an empty vector with room for the `len`
/// values of the problem's input, without a zero-fill first. Returns false, leaving `dx` empty, for the other plans and for calls
/// this one declines; the caller then zero-fills `dx` and calls [`backward_data_with`].
#[must_use]
pub fn backward_data_fresh<T: Element>(
    plan: DataPlan,
    format: DataFormat,
    p: &Problem,
    (dy, w): (&[T], &[T]),
    dx: &mut Vec<T>,
    len: usize,
) -> bool {
    match plan {
        DataPlan::Tiles => {
            format == DataFormat::Nhwc && tiles::backward_data_fresh(p, dy, w, dx, len)
        }
        DataPlan::Winograd => {
            let Some((s, sc, tiling)) = narrow_winograd_call(p, format, w) else {
                return false;
            };
            let filter = sub_pixel_filter(p, s.r, w);
            match winograd_narrow::correlate(&s, &sc, tiling, dy, &filter, (dx, len)) {
                winograd_narrow::Outcome::Done => true,
                winograd_narrow::Outcome::Declined => false,
                winograd_narrow::Outcome::NonFinite => {
                    // NaN or infinity in `dy`: a direct plan, on a zero-filled `dx`.
                    dx.resize(len, T::zero());
                    let done = backward_data_with(DataPlan::choose_direct(p), format, p, dy, w, dx);
                    if !done {
                        dx.clear();
                    }
                    done
                }
            }
        }
        DataPlan::FewChannels => {
            // (A non-finite filter takes another plan: see `backward_data_with`.)
            let q = rotated_problem(p).filter(|q| few_channels::applies(q) && all_finite(w));
            q.is_some_and(|q| {
                few_channels::forward_fresh(&q, format, dy, &rotated_filter(p, w), (dx, len))
            })
        }
        _ => false,
    }
}

/// The narrow Winograd engine's form of a call (sliding correlation, scatter, tiling), where the engine can take it: the form fits (NHWC, few columns) and the filter
/// is finite (the transforms would spread a NaN or infinity to outputs it is not
/// connected to; the engine finds those of `dy` itself). The engine further needs f32
/// and AVX-512.
fn narrow_winograd_call<T: Element>(
    p: &Problem,
    format: DataFormat,
    w: &[T],
) -> Option<(winograd::Sliding, winograd::Scatter, winograd::Tiling)> {
    let (s, sc) = in_format(transposed_sliding(p)?, format);
    let (tiling, _) = narrow_winograd_form((s, sc), p)?;
    (winograd_narrow::fits(&s, &sc) && all_finite(w)).then_some((s, sc, tiling))
}

/// A stride-1, one-group transposed problem as the forward problem it equals: `dy` is
/// the input, `dx` the output, and the padding before is what the rotated kernel reaches
/// past `dy`'s edge, `(k - 1) * dilation - pad_before` (`None` where that is negative).
fn rotated_problem(p: &Problem) -> Option<Problem> {
    let rotate = |a: crate::problem::Axis| {
        let reach = (a.kernel - 1) * a.dilation;
        let pad_before = reach.checked_sub(a.pad_before)?;
        (a.stride == 1).then_some(crate::problem::Axis {
            input: a.output,
            output: a.input,
            kernel: a.kernel,
            stride: 1,
            dilation: a.dilation,
            pad_before,
            pad_after: (a.input + reach) as i64 - (a.output + pad_before) as i64,
        })
    };
    (p.groups == 1).then_some(())?;
    Some(Problem {
        batch: p.batch,
        in_channels: p.out_channels,
        out_channels: p.in_channels,
        groups: 1,
        height: rotate(p.height)?,
        width: rotate(p.width)?,
    })
}

/// The filter of [`rotated_problem`], HWIO: `w'[kh][kw][o][i] = w[KH-1-kh][KW-1-kw][i][o]`.
fn rotated_filter<T: Element>(p: &Problem, w: &[T]) -> Vec<T> {
    let (kh, kw) = (p.height.kernel, p.width.kernel);
    let (cin, cout) = (p.in_channels, p.out_channels);
    let mut rotated = Vec::with_capacity(w.len());
    for tap in (0..kh * kw).rev() {
        let block = &w[tap * cin * cout..][..cin * cout];
        for o in 0..cout {
            rotated.extend((0..cin).map(|i| block[i * cout + o]));
        }
    }
    rotated
}

/// The sub-pixel filter `[j_h][j_w][out channel][(phase_h, phase_w, in channel)]`:
/// `w[phase_h + stride_h * (r - 1 - j_h), phase_w + ..., in, out]`, zero past the kernel.
fn sub_pixel_filter<T: Element>(p: &Problem, r: usize, w: &[T]) -> Vec<T> {
    let (h, wd) = (p.height, p.width);
    let (cin, cout) = (p.in_channels, p.out_channels);
    let cols = h.stride * wd.stride * cin;
    let mut filter = vec![T::zero(); r * r * cout * cols];
    if cols == 0 || cout == 0 {
        return filter;
    }
    // One block of rows per (j_h, j_w), filled a tap (kh, kw) at a time.
    filter
        .par_chunks_mut(cout * cols)
        .enumerate()
        .for_each(|(index, block)| {
            let (jh, jw) = (index / r, index % r);
            for ph in 0..h.stride {
                let kh = ph + h.stride * (r - 1 - jh);
                for pw in 0..wd.stride {
                    let kw = pw + wd.stride * (r - 1 - jw);
                    if kh >= h.kernel || kw >= wd.kernel {
                        continue;
                    }
                    // w[kh, kw] is a small cin x cout matrix: transpose it into the
                    // block's rows, cin values at a time.
                    let tap = &w[(kh * wd.kernel + kw) * cin * cout..][..cin * cout];
                    let col = (ph * wd.stride + pw) * cin;
                    for co in 0..cout {
                        let dst = &mut block[co * cols + col..][..cin];
                        for (ci, d) in dst.iter_mut().enumerate() {
                            *d = tap[ci * cout + co];
                        }
                    }
                }
            }
        });
    filter
}

/// [`sub_pixel_filter`] stored by column, `[(phase_h, phase_w, in channel)][j_h][j_w][out
/// channel]`: each column's taps are runs of `w`'s contiguous output channels, so this
/// is a copy rather than a transpose (FCN-32s' 1.8M-element filter: 9% of the call's
/// profile as rows, 3% as columns).
fn sub_pixel_columns<T: Element>(p: &Problem, r: usize, w: &[T]) -> Vec<T> {
    let (h, wd) = (p.height, p.width);
    let (cin, cout) = (p.in_channels, p.out_channels);
    let kdim = r * r * cout;
    let mut filter = vec![T::zero(); h.stride * wd.stride * cin * kdim];
    if kdim == 0 || cin == 0 {
        return filter;
    }
    // One block of columns per (phase_h, phase_w), a column per input channel.
    filter
        .par_chunks_mut(cin * kdim)
        .enumerate()
        .for_each(|(phase, block)| {
            let (ph, pw) = (phase / wd.stride, phase % wd.stride);
            for jh in 0..r {
                let kh = ph + h.stride * (r - 1 - jh);
                for jw in 0..r {
                    let kw = pw + wd.stride * (r - 1 - jw);
                    if kh >= h.kernel || kw >= wd.kernel {
                        continue;
                    }
                    let tap = &w[(kh * wd.kernel + kw) * cin * cout..][..cin * cout];
                    for (column, values) in block.chunks_mut(kdim).zip(tap.chunks(cout)) {
                        column[(jh * r + jw) * cout..][..cout].copy_from_slice(values);
                    }
                }
            }
        });
    filter
}

/// First position `i >= 0` with `(i + pad) mod stride == phase`, and how many there are
/// below `len`.
fn phase_positions(len: usize, pad: usize, stride: usize, phase: usize) -> (usize, usize) {
    let first = (phase + stride - pad % stride) % stride;
    (
        first,
        if first < len {
            (len - first).div_ceil(stride)
        } else {
            0
        },
    )
}

/// Fills one row of a stride phase's column matrix: for the output position whose width
/// coordinate plus padding is `wpos`, each height tap `(jh, oh)` in `heights` and each width
/// tap of `w_taps`, copies `dy[n, oh, ow, group g]` to slot `(jh, jw)`; slots whose `ow`
/// falls outside `dy` keep their zeros.
#[allow(clippy::too_many_arguments)]
fn fill_phase_row<T: Element>(
    p: &Problem,
    dy: &[T],
    n: usize,
    g: usize,
    heights: &[(usize, usize)],
    wpos: usize,
    w_taps: &[usize],
    row: &mut [T],
) {
    let (h, wd) = (p.height, p.width);
    let (cout, og) = (p.out_channels, p.out_per_group());
    for &(jh, oh) in heights {
        for (jw, &kw) in w_taps.iter().enumerate() {
            let Some(off) = wpos.checked_sub(kw * wd.dilation) else {
                continue;
            };
            let ow = off / wd.stride;
            if ow >= wd.output {
                continue;
            }
            let src = ((n * h.output + oh) * wd.output + ow) * cout + g * og;
            row[(jh * w_taps.len() + jw) * og..][..og].copy_from_slice(&dy[src..src + og]);
        }
    }
}

fn backward_data_phase_major<T: Element>(p: &Problem, dy: &[T], w: &[T], dx: &mut [T]) {
    let (h, wd) = (p.height, p.width);
    let (cin, cg, og) = (p.in_channels, p.in_per_group(), p.out_per_group());
    if dx.is_empty() || cg == 0 || og == 0 || dy.is_empty() {
        return;
    }
    let phases = pack_phases(p, w);
    // One result buffer per (image, group, height phase, width phase), rows (u, t).
    let tasks: Vec<(usize, usize, usize, usize)> = (0..p.batch)
        .flat_map(|n| {
            (0..p.groups).flat_map(move |g| {
                (0..h.stride).flat_map(move |rh| (0..wd.stride).map(move |rw| (n, g, rh, rw)))
            })
        })
        .collect();
    let results: Vec<Vec<T>> = tasks
        .par_iter()
        .with_min_len(min_items(p, tasks.len()))
        .map(|&(n, g, rh, rw)| {
            let phase = &phases[(g * h.stride + rh) * wd.stride + rw];
            let (ih0, rows_h) = phase_positions(h.input, h.pad_before, h.stride, rh);
            let (iw0, rows_w) = phase_positions(wd.input, wd.pad_before, wd.stride, rw);
            let (nh, nw) = (phase.h_taps.len(), phase.w_taps.len());
            let kdim = nh * nw * og;
            let rows = rows_h * rows_w;
            let mut out = vec![T::zero(); rows * cg];
            if kdim == 0 || rows == 0 {
                return out;
            }
            let mut col = vec![T::zero(); rows * kdim];
            for u in 0..rows_h {
                let hpos = ih0 + u * h.stride + h.pad_before;
                let heights: Vec<(usize, usize)> = phase
                    .h_taps
                    .iter()
                    .enumerate()
                    .filter_map(|(jh, &kh)| {
                        let oh = hpos.checked_sub(kh * h.dilation)? / h.stride;
                        (oh < h.output).then_some((jh, oh))
                    })
                    .collect();
                for t in 0..rows_w {
                    let wpos = iw0 + t * wd.stride + wd.pad_before;
                    let row = &mut col[(u * rows_w + t) * kdim..][..kdim];
                    fill_phase_row(p, dy, n, g, &heights, wpos, &phase.w_taps, row);
                }
            }
            let lhs = Mat {
                data: &col,
                rows,
                cols: kdim,
                row_stride: kdim,
                col_stride: 1,
            };
            let rhs = Mat {
                data: &phase.filter,
                rows: kdim,
                cols: cg,
                row_stride: cg,
                col_stride: 1,
            };
            gemm(
                MatMut {
                    data: &mut out,
                    rows,
                    cols: cg,
                    row_stride: cg,
                    col_stride: 1,
                },
                false,
                lhs,
                rhs,
            );
            out
        })
        .collect();
    // Every output position belongs to exactly one phase: copy the results in.
    dx.par_chunks_mut(wd.input * cin)
        .enumerate()
        .with_min_len(min_items(p, p.batch * h.input))
        .for_each(|(line, dx_line)| {
            let (n, ih) = (line / h.input, line % h.input);
            let rh = (ih + h.pad_before) % h.stride;
            let u = (ih - phase_positions(h.input, h.pad_before, h.stride, rh).0) / h.stride;
            for g in 0..p.groups {
                for rw in 0..wd.stride {
                    let (iw0, rows_w) = phase_positions(wd.input, wd.pad_before, wd.stride, rw);
                    let result = &results[((n * p.groups + g) * h.stride + rh) * wd.stride + rw];
                    for t in 0..rows_w {
                        let src = &result[(u * rows_w + t) * cg..][..cg];
                        dx_line[(iw0 + t * wd.stride) * cin + g * cg..][..cg].copy_from_slice(src);
                    }
                }
            }
        });
}

fn backward_data_col2im<T: Element>(p: &Problem, dy: &[T], w: &[T], dx: &mut [T]) {
    let (h, wd) = (p.height, p.width);
    let (cin, cout, cg, og) = (
        p.in_channels,
        p.out_channels,
        p.in_per_group(),
        p.out_per_group(),
    );
    if dx.is_empty() || cg == 0 || og == 0 || dy.is_empty() || h.input == 0 || wd.input == 0 {
        return;
    }
    let pixels = h.output * wd.output;
    let zdim = h.kernel * wd.kernel * cg;
    // Without groups, the filter as W^T (`[out channel][(kh, kw, ci)]`, row-major): the
    // GEMM's fastest right-hand layout (7% on U-Net's 1024x256x512 product).
    let filter_t = (p.groups == 1).then(|| crate::layout::transpose(w, zdim, cout));
    // Bands of output rows: when taps do not overlap (effective kernel <= stride) every
    // dy row feeds one band only, so bands cost nothing extra; otherwise one band per
    // image. The band size depends on the problem only, never on the thread count.
    // Each band's GEMM gets at least 512 rows (dy pixels) where the image has them.
    let band_rows = h
        .output
        .div_ceil(8)
        .max(512usize.div_ceil(wd.output.max(1)))
        .max(1);
    let band = if h.effective_kernel() <= h.stride {
        (h.stride * band_rows).min(h.input)
    } else {
        h.input
    };
    // Z offsets `ow * zdim + kw * cg` of the width taps landing on each output column.
    let mut width_taps = Vec::new();
    let mut tap_starts = vec![0];
    for iw in 0..wd.input {
        let wpos = iw + wd.pad_before;
        for kw in 0..wd.kernel {
            let Some(off) = wpos.checked_sub(kw * wd.dilation) else {
                break;
            };
            if off % wd.stride == 0 && off / wd.stride < wd.output {
                width_taps.push(off / wd.stride * zdim + kw * cg);
            }
        }
        tap_starts.push(width_taps.len());
    }
    // One task per (image, band), so that each thread's scratch is made (and zero-filled)
    // once per call rather than once per image.
    let tasks = image_blocks(dx, h.input * wd.input * cin, band * wd.input * cin);
    let count = tasks.len();
    tasks
        .into_par_iter()
        .with_min_len(min_items(p, count))
        .for_each_init(Vec::new, |z, (n, b, dx_band)| {
            let dy_image = &dy[n * pixels * cout..(n + 1) * pixels * cout];
            let ih_lo = b * band;
            let ih_hi = ih_lo + dx_band.len() / (wd.input * cin);
            // dy rows whose taps reach the band.
            let reach = (ih_lo + h.pad_before).saturating_sub((h.kernel - 1) * h.dilation);
            let oh_lo = reach.div_ceil(h.stride);
            let oh_hi = ((ih_hi - 1 + h.pad_before) / h.stride + 1).min(h.output);
            if oh_lo >= oh_hi {
                return;
            }
            let rows = (oh_hi - oh_lo) * wd.output;
            // Scratch reused from band to band: the GEMM overwrites what it uses.
            if z.len() < rows * zdim {
                z.resize(rows * zdim, T::zero());
            }
            let z = &mut z[..rows * zdim];
            for g in 0..p.groups {
                // Z[(oh, ow), (kh, kw, ci)] = sum_m dy[n, oh, ow, g*Og + m] * w[kh, kw, ci, g*Og + m].
                let lhs = Mat {
                    data: &dy_image[oh_lo * wd.output * cout + g * og..],
                    rows,
                    cols: og,
                    row_stride: cout,
                    col_stride: 1,
                };
                let rhs = match &filter_t {
                    Some(filter_t) => Mat {
                        data: filter_t,
                        rows: og,
                        cols: zdim,
                        row_stride: zdim,
                        col_stride: 1,
                    },
                    None => Mat {
                        data: &w[g * og..],
                        rows: og,
                        cols: zdim,
                        row_stride: 1,
                        col_stride: cout,
                    },
                };
                gemm(
                    MatMut {
                        data: &mut *z,
                        rows,
                        cols: zdim,
                        row_stride: zdim,
                        col_stride: 1,
                    },
                    false,
                    lhs,
                    rhs,
                );
                // Each output position gathers the taps that land on it, in a fixed
                // order (kh, then kw). Width taps depend on the column only:
                // offsets `ow * zdim + kw * cg` into a Z row block.
                let mut bases = Vec::with_capacity(h.kernel);
                for ih in ih_lo..ih_hi {
                    let hpos = ih + h.pad_before;
                    bases.clear();
                    for kh in 0..h.kernel {
                        let Some(off) = hpos.checked_sub(kh * h.dilation) else {
                            break;
                        };
                        if off % h.stride == 0 && off / h.stride < oh_hi {
                            bases.push(
                                (off / h.stride - oh_lo) * wd.output * zdim + kh * wd.kernel * cg,
                            );
                        }
                    }
                    let line = &mut dx_band[(ih - ih_lo) * wd.input * cin..];
                    let line = &mut line[..wd.input * cin];
                    let row = LineTaps {
                        z,
                        bases: &bases,
                        width_taps: &width_taps,
                        tap_starts: &tap_starts,
                    };
                    if gather_row(&mut line[g * cg..], cin, cg, &row) {
                        continue;
                    }
                    for iw in 0..wd.input {
                        let out = &mut line[iw * cin + g * cg..][..cg];
                        let taps = &width_taps[tap_starts[iw]..tap_starts[iw + 1]];
                        gather_taps(out, z, &bases, taps);
                    }
                }
            }
        });
}

/// Elements of the column buffer of one task of [`backward_data_col2im_nchw`].
const NCHW_COLUMN_ELEMENTS: usize = 1 << 18;

/// Whether [`backward_data_col2im_nchw`] takes `p`: one input channel's columns (every
/// tap of every `dy` pixel) fit the column plan's buffer limit.
fn col2im_nchw_fits(p: &Problem) -> bool {
    let taps = p.height.kernel * p.width.kernel;
    taps.saturating_mul(p.height.output * p.width.output) <= COL2IM_MAX_ELEMENTS
}

/// [`DataPlan::Col2im`] on NCHW data (`dy` `[N][Cout][OH][OW]`, `dx` `[N][Cin][IH][IW]`,
/// zero-filled; filter HWIO), with no layout copies: per image and block of input
/// channels, `Z = W_block^T dy` (rows `(ci, kh, kw)`, columns `dy`'s pixels: an NCHW image
/// is the GEMM's right-hand matrix as it lies), then each row of `Z` is added into its
/// channel of `dx` at its tap's offset, taps in order. For problems [`col2im_nchw_fits`].
fn backward_data_col2im_nchw<T: Element>(p: &Problem, dy: &[T], w: &[T], dx: &mut [T]) {
    let (h, wd) = (p.height, p.width);
    let (cout, cg, og) = (p.out_channels, p.in_per_group(), p.out_per_group());
    let (pixels, plane) = (h.output * wd.output, h.input * wd.input);
    let taps = h.kernel * wd.kernel;
    if dx.is_empty() || dy.is_empty() || cg == 0 || og == 0 || plane == 0 {
        return;
    }
    // Channels per task: the largest divisor of Cg whose columns fit the budget, so that
    // tasks never straddle groups and each owns a contiguous block of dx.
    let per_channel = (taps * pixels).max(1);
    let block = (1..=cg)
        .rev()
        .find(|b| cg % b == 0 && b * per_channel <= NCHW_COLUMN_ELEMENTS)
        .unwrap_or(1);
    let blocks_per_image = p.in_channels / block;
    let disjoint = h.effective_kernel() <= h.stride && wd.effective_kernel() <= wd.stride;
    // Width taps 2 at stride 2 tiling each dx line exactly: lines are pairs of Z rows.
    let pairs = disjoint
        && (wd.kernel, wd.stride, wd.dilation, wd.pad_before) == (2, 2, 1, 0)
        && wd.input == 2 * wd.output;
    dx.par_chunks_mut(block * plane)
        .enumerate()
        .with_min_len(min_items(p, p.batch * blocks_per_image))
        .for_each_init(
            || (Vec::new(), Vec::new()),
            |(packed, z), (index, dx_block)| {
                let (n, first) = (index / blocks_per_image, index % blocks_per_image * block);
                let (g, ci0) = (first / cg, first % cg);
                // A[(ci, tap)][m] = w[tap, ci0 + ci, g*Og + m].
                packed.clear();
                for ci in 0..block {
                    for tap in 0..taps {
                        let row = &w[(tap * cg + ci0 + ci) * cout + g * og..][..og];
                        packed.extend_from_slice(row);
                    }
                }
                let rows = block * taps;
                z.resize(rows * pixels, T::zero());
                gemm(
                    MatMut {
                        data: &mut z[..rows * pixels],
                        rows,
                        cols: pixels,
                        row_stride: pixels,
                        col_stride: 1,
                    },
                    false,
                    Mat {
                        data: packed,
                        rows,
                        cols: og,
                        row_stride: og,
                        col_stride: 1,
                    },
                    Mat {
                        data: &dy[(n * cout + g * og) * pixels..][..og * pixels],
                        rows: og,
                        cols: pixels,
                        row_stride: pixels,
                        col_stride: 1,
                    },
                );
                for (ci, dx_plane) in dx_block.chunks_mut(plane).enumerate() {
                    if pairs {
                        // U-Net's k2 s2: each dx line interleaves two width taps' rows.
                        for kh in 0..h.kernel {
                            let (oh_lo, oh_hi) = tap_range(h, kh);
                            let columns = &z[(ci * taps + kh * 2) * pixels..][..2 * pixels];
                            let (even, odd) = columns.split_at(pixels);
                            for oh in oh_lo..oh_hi {
                                let ih = oh * h.stride + kh * h.dilation - h.pad_before;
                                let line = &mut dx_plane[ih * wd.input..][..wd.input];
                                let row = oh * wd.output..(oh + 1) * wd.output;
                                let values = even[row.clone()].iter().zip(&odd[row]);
                                for (pair, (&a, &b)) in line.chunks_exact_mut(2).zip(values) {
                                    pair[0] = a;
                                    pair[1] = b;
                                }
                            }
                        }
                        continue;
                    }
                    for tap in 0..taps {
                        let (kh, kw) = (tap / wd.kernel, tap % wd.kernel);
                        let column = &z[(ci * taps + tap) * pixels..][..pixels];
                        let (oh_lo, oh_hi) = tap_range(h, kh);
                        let (ow_lo, ow_hi) = tap_range(wd, kw);
                        if ow_lo >= ow_hi {
                            continue;
                        }
                        for oh in oh_lo..oh_hi {
                            let ih = oh * h.stride + kh * h.dilation - h.pad_before;
                            let line = &mut dx_plane[ih * wd.input..][..wd.input];
                            let iw0 = ow_lo * wd.stride + kw * wd.dilation - wd.pad_before;
                            let targets = line[iw0..].iter_mut().step_by(wd.stride);
                            let values = &column[oh * wd.output + ow_lo..oh * wd.output + ow_hi];
                            if disjoint {
                                // One tap per element: copy into the zeros.
                                targets.zip(values).for_each(|(d, &v)| *d = v);
                            } else {
                                targets.zip(values).for_each(|(d, &v)| *d += v);
                            }
                        }
                    }
                }
            },
        );
}

/// The outputs `o` whose tap `k` lands inside the input: `0 <= o*stride + k*dilation -
/// pad < input`, as a range.
fn tap_range(a: crate::problem::Axis, k: usize) -> (usize, usize) {
    let offset = k * a.dilation;
    let lo = a.pad_before.saturating_sub(offset).div_ceil(a.stride);
    let hi = (a.input + a.pad_before)
        .checked_sub(offset + 1)
        .map_or(0, |top| top / a.stride + 1)
        .min(a.output);
    (lo, hi.max(lo))
}

/// [`DataPlan::Direct`]: every `dy` element times every tap it reaches, added in order.
fn backward_data_direct<T: Element>(
    p: &Problem,
    format: DataFormat,
    dy: &[T],
    w: &[T],
    dx: &mut [T],
) {
    let (h, wd) = (p.height, p.width);
    let (cout, cg, og) = (p.out_channels, p.in_per_group(), p.out_per_group());
    let [dy_n, dy_h, dy_w, dy_c] = element_strides(format, p.output_shape());
    let [dx_n, dx_h, dx_w, dx_c] = element_strides(format, p.input_shape());
    for n in 0..p.batch {
        for oh in 0..h.output {
            for ow in 0..wd.output {
                let pixel = n * dy_n + oh * dy_h + ow * dy_w;
                for kh in 0..h.kernel {
                    let ih = input_pos(oh, kh, h.stride, h.dilation, h.pad_before);
                    if ih < 0 || ih as usize >= h.input {
                        continue;
                    }
                    for kw in 0..wd.kernel {
                        let iw = input_pos(ow, kw, wd.stride, wd.dilation, wd.pad_before);
                        if iw < 0 || iw as usize >= wd.input {
                            continue;
                        }
                        let out = n * dx_n + ih as usize * dx_h + iw as usize * dx_w;
                        let taps = (kh * wd.kernel + kw) * cg * cout;
                        for co in 0..cout {
                            let (g, v) = (co / og, dy[pixel + co * dy_c]);
                            for ci in 0..cg {
                                dx[out + (g * cg + ci) * dx_c] += v * w[taps + ci * cout + co];
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Element strides (image, row, column, channel) of a batch of `[n, h, w, c]` (NHWC
/// order) stored in `format`.
fn element_strides(format: DataFormat, [_, h, w, c]: [usize; 4]) -> [usize; 4] {
    match format {
        DataFormat::Nhwc => [h * w * c, w * c, c, 1],
        DataFormat::Nchw => [c * h * w, w, 1, h * w],
    }
}

/// Where the pixels of one dx line find their taps in `Z`: the line's height offsets
/// `bases`, and pixel `iw`'s width offsets `width_taps[tap_starts[iw]..tap_starts[iw + 1]]`.
#[derive(Clone, Copy)]
struct LineTaps<'a, T> {
    z: &'a [T],
    bases: &'a [usize],
    width_taps: &'a [usize],
    tap_starts: &'a [usize],
}

/// [`gather_taps`] for every pixel of a dx line (pixels `stride` apart, `len` channels
/// each, the first at `line[0]`), where `len` is at most 4: one loop compiled per channel
/// count, so the few values of each pixel stay in registers (DCGAN's 3-channel output
/// line). False, having written nothing, for more channels.
fn gather_row<T: Element>(
    line: &mut [T],
    stride: usize,
    len: usize,
    row: &LineTaps<'_, T>,
) -> bool {
    fn fixed<T: Element, const N: usize>(line: &mut [T], stride: usize, row: &LineTaps<'_, T>) {
        let LineTaps {
            z,
            bases,
            width_taps,
            tap_starts,
        } = *row;
        for (pixel, ends) in line.chunks_mut(stride).zip(tap_starts.windows(2)) {
            let Some(out) = pixel.first_chunk_mut::<N>() else {
                return;
            };
            let mut acc = *out;
            let mut add = |at: usize| {
                if let Some(src) = z[at..].first_chunk::<N>() {
                    for i in 0..N {
                        acc[i] += src[i];
                    }
                }
            };
            let taps = &width_taps[ends[0]..ends[1]];
            if let (&[b0, b1], &[t0, t1]) = (bases, taps) {
                // Two taps each way (kernel 4, stride 2: DCGAN), unrolled.
                [b0 + t0, b0 + t1, b1 + t0, b1 + t1]
                    .into_iter()
                    .for_each(add);
            } else {
                for &base in bases {
                    for &tap in taps {
                        add(base + tap);
                    }
                }
            }
            *out = acc;
        }
    }
    match len {
        1 => fixed::<T, 1>(line, stride, row),
        2 => fixed::<T, 2>(line, stride, row),
        3 => fixed::<T, 3>(line, stride, row),
        4 => fixed::<T, 4>(line, stride, row),
        _ => return false,
    }
    true
}

/// `out += z[base + tap ..][..out.len()]` for every height base and width tap, in that
/// order (outputs of more than 4 channels per group; [`gather_row`] takes the others).
#[inline(always)]
fn gather_taps<T: Element>(out: &mut [T], z: &[T], bases: &[usize], taps: &[usize]) {
    let n = out.len();
    // One contribution (taps that do not overlap): `out` is zero, so a copy, which
    // need not read `out` first (T2 2.81 -> 2.64 ms at 1 thread).
    if let ([base], [tap]) = (bases, taps) {
        out.copy_from_slice(&z[base + tap..][..n]);
        return;
    }
    for &base in bases {
        for &tap in taps {
            for (o, &v) in out.iter_mut().zip(&z[base + tap..][..n]) {
                *o += v;
            }
        }
    }
}

fn backward_data_phases<T: Element>(p: &Problem, dy: &[T], w: &[T], dx: &mut [T]) {
    let (h, wd) = (p.height, p.width);
    let (cin, cg, og) = (p.in_channels, p.in_per_group(), p.out_per_group());
    if dx.is_empty() || cg == 0 || og == 0 || dy.is_empty() {
        return;
    }
    let phases = pack_phases(p, w);
    dx.par_chunks_mut(wd.input * cin)
        .enumerate()
        .with_min_len(min_items(p, p.batch * h.input))
        .for_each(|(line, dx_line)| {
            let n = line / h.input;
            let hpos = line % h.input + h.pad_before;
            let rh = hpos % h.stride;
            let mut col: Vec<T> = Vec::new();
            for g in 0..p.groups {
                for rw in 0..wd.stride {
                    let phase = &phases[(g * h.stride + rh) * wd.stride + rw];
                    // Height taps that land inside dy for this line: oh = (hpos - kh*d)/s
                    // decreases with kh, so they form a contiguous range [ja, jb).
                    let oh_of = |kh: usize| -> Option<usize> {
                        let off = hpos.checked_sub(kh * h.dilation)?;
                        let oh = off / h.stride;
                        (oh < h.output).then_some(oh)
                    };
                    let ja = phase.h_taps.iter().position(|&kh| oh_of(kh).is_some());
                    let Some(ja) = ja else { continue };
                    let jb = ja
                        + phase.h_taps[ja..]
                            .iter()
                            .take_while(|&&kh| oh_of(kh).is_some())
                            .count();
                    // Width positions of this phase: iw = iw0 + t * stride.
                    let (iw0, rows) = phase_positions(wd.input, wd.pad_before, wd.stride, rw);
                    let nw = phase.w_taps.len();
                    let kdim = (jb - ja) * nw * og;
                    if rows == 0 || kdim == 0 {
                        continue;
                    }
                    let heights: Vec<(usize, usize)> = phase.h_taps[ja..jb]
                        .iter()
                        .enumerate()
                        .map(|(jh, &kh)| (jh, (hpos - kh * h.dilation) / h.stride))
                        .collect();
                    col.clear();
                    col.resize(rows * kdim, T::zero());
                    for t in 0..rows {
                        let wpos = iw0 + t * wd.stride + wd.pad_before;
                        let row = &mut col[t * kdim..(t + 1) * kdim];
                        fill_phase_row(p, dy, n, g, &heights, wpos, &phase.w_taps, row);
                    }
                    let lhs = Mat {
                        data: &col,
                        rows,
                        cols: kdim,
                        row_stride: kdim,
                        col_stride: 1,
                    };
                    let rhs = Mat {
                        data: &phase.filter[ja * nw * og * cg..],
                        rows: kdim,
                        cols: cg,
                        row_stride: cg,
                        col_stride: 1,
                    };
                    let dst = MatMut {
                        data: &mut dx_line[iw0 * cin + g * cg..],
                        rows,
                        cols: cg,
                        row_stride: wd.stride * cin,
                        col_stride: 1,
                    };
                    gemm(dst, false, lhs, rhs);
                }
            }
        });
}

/// How [`crate::conv::backward_filter`] computes a problem's filter gradient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterPlan {
    /// `im2col(x)^T * dy` over fixed blocks of pixels, partial sums added in order.
    Im2col,
    /// Per stride phase, Winograd's F(r, m) over tiles of `dy` (`r` = taps per phase):
    /// `(r + m - 1)^2` products per tile and channel pair instead of `r^2 m^2`. Problems
    /// it does not fit (groups, dilation, unequal axes, a kernel not a multiple of the
    /// stride, under 8 channels) and calls with NaN or infinity take [`FilterPlan::Im2col`].
    Winograd,
    /// Depthwise problems (one input channel per group): every tap's products summed
    /// directly, per image, images added in fixed partial sums. Other problems take
    /// [`FilterPlan::Im2col`].
    Depthwise,
    /// One group with few input or output channels, as [`ForwardPlan::FewChannels`]:
    /// each block of pixels' window values times their `dy` rows, summed in registers
    /// (f32, AVX-512, NHWC data). Other calls take [`FilterPlan::Im2col`].
    FewChannels,
}

impl FilterPlan {
    /// The plan [`crate::conv::backward_filter`] uses for `p`.
    pub fn choose(p: &Problem) -> FilterPlan {
        if depthwise::applies(p) {
            return FilterPlan::Depthwise;
        }
        if few_channels::applies(p) {
            return FilterPlan::FewChannels;
        }
        match filter_form(p) {
            Some(form) if form.cost(p) < 0.75 => FilterPlan::Winograd,
            _ => FilterPlan::Im2col,
        }
    }
}

/// The filter gradient's Winograd form, where it has one within the memory rule.
fn filter_form(p: &Problem) -> Option<winograd_filter::Form> {
    winograd_filter::form(p).filter(|form| fits_workspace(p, form.workspace(p)))
}

/// `dw` (HWIO) from `x` and `dy` in `format` with a given plan. `dw` must be
/// zero-filled, of length `KH*KW*Cg*Cout`.
pub fn backward_filter_with<T: Element>(
    plan: FilterPlan,
    format: DataFormat,
    p: &Problem,
    x: &[T],
    dy: &[T],
    dw: &mut [T],
) {
    if plan == FilterPlan::Depthwise && depthwise::applies(p) {
        return depthwise::backward_filter(p, format, x, dy, dw);
    }
    if plan == FilterPlan::FewChannels && few_channels::backward_filter(p, format, x, dy, dw) {
        return;
    }
    let form = (plan == FilterPlan::Winograd)
        .then(|| filter_form(p))
        .flatten()
        .filter(|_| all_finite(x) && all_finite(dy));
    match (form, format) {
        (Some(form), _) => winograd_filter::gradient(&form, p, format, x, dy, dw),
        (None, DataFormat::Nhwc) => backward_filter_im2col(p, x, dy, dw),
        (None, DataFormat::Nchw) => backward_filter_im2col_nchw(p, x, dy, dw),
    }
}

/// Pixels of one im2col block of the filter gradient: each GEMM accumulates this many
/// pixels into its partial sum at once.
fn filter_block<T>(p: &Problem) -> usize {
    let kdim = p.height.kernel * p.width.kernel * p.in_per_group();
    (FILTER_COL_BUDGET_BYTES / (kdim.max(1) * std::mem::size_of::<T>())).clamp(64, 4096)
}

/// `dw = sum over items`: the items split into at most [`MAX_PARTIALS`] contiguous runs
/// (fewer where the partial sums would pass [`PARTIAL_BUDGET_BYTES`]), each run added
/// in order into its own zeroed partial sum by `add(item, partial, scratch)`, then the
/// partials added into `dw` in order: the result does not depend on the thread count.
fn sum_in_partials<T: Element, I: Sync, S: Default>(
    dw: &mut [T],
    items: &[I],
    add: impl Fn(&I, &mut [T], &mut S) + Sync,
) {
    let partials = items
        .len()
        .min(MAX_PARTIALS)
        .min((PARTIAL_BUDGET_BYTES / std::mem::size_of_val(dw).max(1)).max(1));
    let sums: Vec<Vec<T>> = (0..partials)
        .into_par_iter()
        .map(|s| {
            let (mut part, mut scratch) = (vec![T::zero(); dw.len()], S::default());
            for item in &items[s * items.len() / partials..(s + 1) * items.len() / partials] {
                add(item, &mut part, &mut scratch);
            }
            part
        })
        .collect();
    for part in &sums {
        for (d, &v) in dw.iter_mut().zip(part) {
            *d += v;
        }
    }
}

/// [`FilterPlan::Im2col`] on NCHW data: per (image, block of output pixels), columns
/// gathered from the input planes times `dy`'s channel rows (as the GEMM's transposed
/// right-hand side).
fn backward_filter_im2col_nchw<T: Element>(p: &Problem, x: &[T], dy: &[T], dw: &mut [T]) {
    let (h, wd) = (p.height, p.width);
    let (cin, cout, cg, og) = (
        p.in_channels,
        p.out_channels,
        p.in_per_group(),
        p.out_per_group(),
    );
    let kdim = h.kernel * wd.kernel * cg;
    let (pixels, plane) = (h.output * wd.output, h.input * wd.input);
    if dw.is_empty() || pixels == 0 {
        return;
    }
    let block = filter_block::<T>(p);
    let items: Vec<(usize, usize)> = (0..p.batch)
        .flat_map(|n| (0..pixels).step_by(block).map(move |first| (n, first)))
        .collect();
    sum_in_partials(dw, &items, |&(n, first), part, col: &mut Vec<T>| {
        let count = block.min(pixels - first);
        for g in 0..p.groups {
            let image = &x[(n * cin + g * cg) * plane..][..cg * plane];
            gather_nchw(p, image, first, count, col);
            let lhs = Mat {
                data: col,
                rows: kdim,
                cols: count,
                row_stride: count,
                col_stride: 1,
            };
            let rhs = Mat {
                data: &dy[(n * cout + g * og) * pixels + first..],
                rows: count,
                cols: og,
                row_stride: 1,
                col_stride: pixels,
            };
            let dst = MatMut {
                data: &mut part[g * og..],
                rows: kdim,
                cols: og,
                row_stride: cout,
                col_stride: 1,
            };
            gemm(dst, true, lhs, rhs);
        }
    });
}

/// [`FilterPlan::Im2col`]: blocks of output pixels across the batch, columns gathered
/// from NHWC pixels.
fn backward_filter_im2col<T: Element>(p: &Problem, x: &[T], dy: &[T], dw: &mut [T]) {
    let (h, wd) = (p.height, p.width);
    let (cout, cg, og) = (p.out_channels, p.in_per_group(), p.out_per_group());
    let kdim = h.kernel * wd.kernel * cg;
    let pixels = p.batch * h.output * wd.output;
    if dw.is_empty() || pixels == 0 {
        return;
    }
    let block = filter_block::<T>(p);
    let firsts: Vec<usize> = (0..pixels).step_by(block).collect();
    sum_in_partials(dw, &firsts, |&first, part, col: &mut Vec<T>| {
        let rows = block.min(pixels - first);
        col.resize(rows * kdim, T::zero());
        for g in 0..p.groups {
            gather_forward(p, first, rows, g, x, &mut col[..rows * kdim]);
            let lhs = Mat {
                data: col,
                rows: kdim,
                cols: rows,
                row_stride: 1,
                col_stride: kdim,
            };
            let rhs = Mat {
                data: &dy[first * cout + g * og..],
                rows,
                cols: og,
                row_stride: cout,
                col_stride: 1,
            };
            let dst = MatMut {
                data: &mut part[g * og..],
                rows: kdim,
                cols: og,
                row_stride: cout,
                col_stride: 1,
            };
            gemm(dst, true, lhs, rhs);
        }
    });
}

/// `c = a * b` for row-major `a` (`m x k`) and `b` (`k x n`), one thread: the product the
/// benchmarks measure the machine's peak with.
pub(crate) fn matmul<T: Element>(c: &mut [T], a: &[T], b: &[T], m: usize, k: usize, n: usize) {
    let lhs = Mat {
        data: a,
        rows: m,
        cols: k,
        row_stride: k,
        col_stride: 1,
    };
    let rhs = Mat {
        data: b,
        rows: k,
        cols: n,
        row_stride: n,
        col_stride: 1,
    };
    gemm(
        MatMut {
            data: c,
            rows: m,
            cols: n,
            row_stride: n,
            col_stride: 1,
        },
        false,
        lhs,
        rhs,
    );
}

#[cfg(test)]
mod tests {
    use super::all_finite;

    /// The finiteness scan finds a NaN or an infinity wherever it lies: in the first or
    /// last parallel piece, in the vectorised lanes or in the remainder.
    #[test]
    fn all_finite_finds_every_non_finite_value() {
        for len in [0usize, 5, 16, 1000, (1 << 16) + 1, 3 << 17] {
            let values: Vec<f32> = (0..len).map(|i| i as f32 - 7.5).collect();
            assert!(all_finite(&values), "{len}");
            for at in [0, len / 2, len.saturating_sub(1)] {
                for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                    let mut values = values.clone();
                    if let Some(v) = values.get_mut(at) {
                        *v = bad;
                        assert!(!all_finite(&values), "{bad} at {at} of {len}");
                    }
                }
            }
        }
    }
}
