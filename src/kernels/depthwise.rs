//! Direct kernels for depthwise convolutions (one input channel per group, `m >= 1`
//! output channels each: MobileNet's 3x3 layers, depthwise upsampling), where im2col
//! would run one GEMM of a single column block per group. Plain loops over the taps,
//! vectorised over channels; NCHW data runs the same loops by tasks of (image, 64 input
//! channels) copied channels-last and back by blocked transposes, except the filter
//! gradient, which sums along the lines. Every output element is summed by one task in
//! the fixed tap order `(kh, kw)`, so results do not depend on the thread count.

use super::{
    element_strides, image_blocks, input_pos, min_items, sum_in_partials, tap_range, transpose,
};
use crate::element::Element;
use crate::layout::DataFormat;
use crate::problem::Problem;
use rayon::prelude::*;

/// Whether `p` is depthwise: one input channel per group, more than one group.
pub(crate) fn applies(p: &Problem) -> bool {
    p.in_per_group() == 1 && p.groups > 1
}

/// `y = conv(x, w)` for a depthwise problem, `x` and `y` in `format`, `w` HWIO
/// (`[kh][kw][1][out channels]`); `y` zero-filled.
pub(crate) fn forward<T: Element>(p: &Problem, format: DataFormat, x: &[T], w: &[T], y: &mut [T]) {
    let (h, wd) = (p.height, p.width);
    let (cin, cout, og) = (p.in_channels, p.out_channels, p.out_per_group());
    if y.is_empty() || cout == 0 {
        return;
    }
    if format == DataFormat::Nchw {
        let x = Planes::new(x, 1, h.input * wd.input);
        let y = Planes::new(y, og, h.output * wd.output);
        return by_channel_blocks(p, w, x, y, |sub, x_block, w_block, y_block| {
            forward(sub, DataFormat::Nhwc, x_block, w_block, y_block)
        });
    }
    let line = wd.output.max(1);
    let rows = p.batch * h.output;
    y.par_chunks_mut(line * cout)
        .enumerate()
        .with_min_len(min_items(p, rows))
        .for_each(|(row, y_row)| {
            vectorised(
                #[inline(always)]
                || {
                    let (n, oh) = (row / h.output, row % h.output);
                    // The input rows this output row reads, by height tap.
                    let x_rows: Vec<(usize, &[T])> = (0..h.kernel)
                        .filter_map(|kh| {
                            let ih = input_pos(oh, kh, h.stride, h.dilation, h.pad_before);
                            let ih = usize::try_from(ih).ok().filter(|&ih| ih < h.input)?;
                            Some((kh, &x[(n * h.input + ih) * wd.input * cin..]))
                        })
                        .collect();
                    for (ow, out) in y_row.chunks_mut(cout).enumerate() {
                        // The width taps that land inside the input, a range.
                        let start = ow * wd.stride;
                        let kw_lo = wd.pad_before.saturating_sub(start).div_ceil(wd.dilation);
                        let kw_hi = (wd.input + wd.pad_before)
                            .checked_sub(start + 1)
                            .map_or(0, |top| top / wd.dilation + 1)
                            .min(wd.kernel);
                        let iw = |kw: usize| start + kw * wd.dilation - wd.pad_before;
                        if og > 1 {
                            for &(kh, x_row) in &x_rows {
                                for kw in kw_lo..kw_hi {
                                    let taps = &w[(kh * wd.kernel + kw) * cout..][..cout];
                                    multiply_add(out, &x_row[iw(kw) * cin..][..cin], taps, og);
                                }
                            }
                            continue;
                        }
                        // Blocks of 64 and 16 channels, every tap summed in registers
                        // (four independent sums per 64), the last few one by one.
                        let taps = TapWindow {
                            x_rows: &x_rows,
                            kw: kw_lo..kw_hi,
                            first_iw: (start + kw_lo * wd.dilation).wrapping_sub(wd.pad_before),
                            dilation: wd.dilation,
                            kernel_w: wd.kernel,
                            w,
                            cin,
                            cout,
                        };
                        let mut c0 = 0;
                        while c0 + 64 <= cout {
                            taps.sum::<64>(c0, &mut out[c0..c0 + 64]);
                            c0 += 64;
                        }
                        while c0 + LANES <= cout {
                            taps.sum::<LANES>(c0, &mut out[c0..c0 + LANES]);
                            c0 += LANES;
                        }
                        while c0 < cout {
                            taps.sum::<1>(c0, &mut out[c0..c0 + 1]);
                            c0 += 1;
                        }
                    }
                },
            )
        });
}

/// Input channels one NCHW task of [`by_channel_blocks`] takes: 64, a whole block of the
/// NHWC loops' registers.
const NCHW_BLOCK: usize = 64;

/// One NCHW array of [`by_channel_blocks`]: `channels` planes of `plane` values per image,
/// `per_input` of them per input channel of the problem (1 for the input's side, the
/// channel multiplier for the output's).
struct Planes<A> {
    values: A,
    per_input: usize,
    plane: usize,
}

impl<A> Planes<A> {
    fn new(values: A, per_input: usize, plane: usize) -> Planes<A> {
        Planes {
            values,
            per_input,
            plane,
        }
    }
}

/// Runs a depthwise problem on NCHW data by tasks of (image, block of input channels):
/// each task copies its planes of `source` channels-last into a buffer by blocked
/// transposes, lets `run(sub, source_block, filter_block, result_block)` compute the
/// block as a one-image NHWC problem `sub` of its channels (with the block's columns of
/// the HWIO filter `w`, cut once per block), and transposes the result into its planes
/// of `result`. Each block is [`NCHW_BLOCK`] input channels, the channel multiplier's
/// planes of the output side with them.
fn by_channel_blocks<T: Element>(
    p: &Problem,
    w: &[T],
    source: Planes<&[T]>,
    result: Planes<&mut [T]>,
    run: impl Fn(&Problem, &[T], &[T], &mut [T]) + Sync,
) {
    let (og, block) = (p.out_per_group(), NCHW_BLOCK.min(p.in_channels).max(1));
    let (per_in, plane) = (result.per_input, result.plane);
    if result.values.is_empty() || plane == 0 || per_in == 0 {
        return;
    }
    // Each block's filter columns `c0 * og..(c0 + channels) * og`, every tap.
    let filters: Vec<Vec<T>> = (0..p.in_channels)
        .step_by(block)
        .map(|c0| {
            let columns = c0 * og..(c0 + block).min(p.in_channels) * og;
            w.chunks(p.out_channels.max(1))
                .flat_map(|tap| tap[columns.clone()].iter().copied())
                .collect()
        })
        .collect();
    let image = p.in_channels * per_in * plane;
    let tasks = image_blocks(result.values, image, block * per_in * plane);
    let count = tasks.len();
    tasks
        .into_par_iter()
        .with_min_len(min_items(p, count))
        .for_each_init(
            || (Vec::new(), Vec::new()),
            |(source_block, result_block), (n, b, out)| {
                let channels = out.len() / (per_in * plane);
                let sub = Problem {
                    batch: 1,
                    in_channels: channels,
                    out_channels: channels * og,
                    groups: channels,
                    ..*p
                };
                // (The source block is overwritten whole; the result starts from zeros.)
                let rows = source.per_input * channels;
                source_block.resize(source.plane * rows, T::zero());
                let first = (n * p.in_channels + b * block) * source.per_input * source.plane;
                let planes = &source.values[first..];
                transpose::strided(
                    planes,
                    source.plane,
                    (rows, source.plane),
                    source_block,
                    rows,
                );
                result_block.clear();
                result_block.resize(out.len(), T::zero());
                let source_block = &source_block[..source.plane * rows];
                run(&sub, source_block, &filters[b], result_block);
                let cols = per_in * channels;
                transpose::strided(result_block, cols, (plane, cols), out, plane);
            },
        );
}

/// Runs `f` compiled for AVX-512 or AVX2, with FMA, where the CPU has them (the loops
/// above are portable Rust; inlined there, they vectorise with the wide registers).
#[inline(always)]
fn vectorised<R>(f: impl FnOnce() -> R) -> R {
    super::simd::vectorised(f)
}

/// Channels one register of f32 holds.
const LANES: usize = 16;

/// The taps of one output pixel of a depthwise forward problem (multiplier 1, NHWC): the
/// input rows by height tap, and the width taps `kw` that land inside them.
struct TapWindow<'a, T> {
    x_rows: &'a [(usize, &'a [T])],
    kw: std::ops::Range<usize>,
    /// Input column of the first width tap.
    first_iw: usize,
    dilation: usize,
    kernel_w: usize,
    w: &'a [T],
    cin: usize,
    cout: usize,
}

impl<T: Element> TapWindow<'_, T> {
    /// `out = sum over the taps of x[.., c0 + i] * w[tap, c0 + i]` for `i < N`, in tap
    /// order, `N` sums kept in registers.
    #[inline(always)]
    fn sum<const N: usize>(&self, c0: usize, out: &mut [T]) {
        let mut acc = [T::zero(); N];
        for &(kh, x_row) in self.x_rows {
            for (step, kw) in self.kw.clone().enumerate() {
                let iw = self.first_iw + step * self.dilation;
                let pixel = x_row[iw * self.cin + c0..].first_chunk::<N>();
                let taps = self.w[(kh * self.kernel_w + kw) * self.cout + c0..].first_chunk::<N>();
                if let (Some(a), Some(b)) = (pixel, taps) {
                    for i in 0..N {
                        acc[i] += a[i] * b[i];
                    }
                }
            }
        }
        out.copy_from_slice(&acc);
    }
}

/// `lanes[i % 16] += a[i] * b[i]` for `i < a.len()`: whole registers of products, then
/// the remainder.
#[inline(always)]
fn lanes_dot<T: Element>(lanes: &mut [T; 16], a: &[T], b: &[T]) {
    let whole = a.len() / 16 * 16;
    for (a, b) in a[..whole].chunks_exact(16).zip(b.chunks_exact(16)) {
        if let (Some(a), Some(b)) = (a.first_chunk::<16>(), b.first_chunk::<16>()) {
            for i in 0..16 {
                lanes[i] += a[i] * b[i];
            }
        }
    }
    for (i, (&a, &b)) in a[whole..].iter().zip(&b[whole..]).enumerate() {
        lanes[i] += a * b;
    }
}

/// `out[co] += input[co / m] * taps[co]` for a pixel's `m`-fold channel multiplier.
#[inline(always)]
fn multiply_add<T: Element>(out: &mut [T], input: &[T], taps: &[T], m: usize) {
    if m == 1 {
        for ((o, &v), &t) in out.iter_mut().zip(input).zip(taps) {
            *o += v * t;
        }
    } else {
        for (co, (o, &t)) in out.iter_mut().zip(taps).enumerate() {
            *o += input[co / m] * t;
        }
    }
}

/// `dx = conv^T(dy, w)` for a depthwise problem, in `format`; `dx` zero-filled. Each dx
/// element gathers the taps that reach it, in `(kh, kw)` order, and the multiplier's
/// channels in order.
pub(crate) fn backward_data<T: Element>(
    p: &Problem,
    format: DataFormat,
    dy: &[T],
    w: &[T],
    dx: &mut [T],
) {
    let (h, wd) = (p.height, p.width);
    let (cin, cout, og) = (p.in_channels, p.out_channels, p.out_per_group());
    if dx.is_empty() || dy.is_empty() || cin == 0 {
        return;
    }
    // The output position `o` that tap `k` of an axis reaches input position `i` from.
    let source = |a: crate::problem::Axis, i: usize, k: usize| {
        let at = (i + a.pad_before).checked_sub(k * a.dilation)?;
        (at % a.stride == 0 && at / a.stride < a.output).then_some(at / a.stride)
    };
    if format == DataFormat::Nchw {
        let dy = Planes::new(dy, og, h.output * wd.output);
        let dx = Planes::new(dx, 1, h.input * wd.input);
        return by_channel_blocks(p, w, dy, dx, |sub, dy_block, w_block, dx_block| {
            backward_data(sub, DataFormat::Nhwc, dy_block, w_block, dx_block)
        });
    }
    let line = wd.input.max(1);
    let rows = p.batch * h.input;
    dx.par_chunks_mut(line * cin)
        .enumerate()
        .with_min_len(min_items(p, rows))
        .for_each(|(row, dx_row)| {
            vectorised(
                #[inline(always)]
                || {
                    let (n, ih) = (row / h.input, row % h.input);
                    for kh in 0..h.kernel {
                        let Some(oh) = source(h, ih, kh) else {
                            continue;
                        };
                        let dy_row = &dy[(n * h.output + oh) * wd.output * cout..];
                        for kw in 0..wd.kernel {
                            let taps = &w[(kh * wd.kernel + kw) * cout..][..cout];
                            for (iw, out) in dx_row.chunks_mut(cin).enumerate() {
                                let Some(ow) = source(wd, iw, kw) else {
                                    continue;
                                };
                                let grads = &dy_row[ow * cout..][..cout];
                                if og == 1 {
                                    for ((o, &g), &t) in out.iter_mut().zip(grads).zip(taps) {
                                        *o += g * t;
                                    }
                                } else {
                                    for (ci, o) in out.iter_mut().enumerate() {
                                        for j in ci * og..(ci + 1) * og {
                                            *o += grads[j] * taps[j];
                                        }
                                    }
                                }
                            }
                        }
                    }
                },
            )
        });
}

/// `dw` (HWIO, zero-filled) for a depthwise problem from `x` and `dy` in `format`: per
/// image, every tap's products summed over the output positions, images added in fixed
/// partial sums ([`sum_in_partials`]).
pub(crate) fn backward_filter<T: Element>(
    p: &Problem,
    format: DataFormat,
    x: &[T],
    dy: &[T],
    dw: &mut [T],
) {
    let (h, wd) = (p.height, p.width);
    let (cout, og) = (p.out_channels, p.out_per_group());
    if dw.is_empty() || p.batch == 0 {
        return;
    }
    let [x_n, x_h, x_w, x_c] = element_strides(format, p.input_shape());
    let [dy_n, dy_h, dy_w, dy_c] = element_strides(format, p.output_shape());
    let images: Vec<usize> = (0..p.batch).collect();
    sum_in_partials(dw, &images, |&n, part, _: &mut ()| {
        vectorised(
            #[inline(always)]
            || {
                for kh in 0..h.kernel {
                    let (oh_lo, oh_hi) = tap_range(h, kh);
                    for kw in 0..wd.kernel {
                        let (ow_lo, ow_hi) = tap_range(wd, kw);
                        if oh_lo >= oh_hi || ow_lo >= ow_hi {
                            continue;
                        }
                        let taps = &mut part[(kh * wd.kernel + kw) * cout..][..cout];
                        match format {
                            // Pixel by pixel, every channel at once.
                            DataFormat::Nhwc => {
                                for oh in oh_lo..oh_hi {
                                    let ih = oh * h.stride + kh * h.dilation - h.pad_before;
                                    for ow in ow_lo..ow_hi {
                                        let iw = ow * wd.stride + kw * wd.dilation - wd.pad_before;
                                        let pixel = &x[n * x_n + ih * x_h + iw * x_w..][..x_w];
                                        let grads = &dy[n * dy_n + oh * dy_h + ow * dy_w..][..cout];
                                        multiply_add(taps, pixel, grads, og);
                                    }
                                }
                            }
                            // Channel by channel, along the lines in 16 running sums.
                            DataFormat::Nchw => {
                                for (co, tap) in taps.iter_mut().enumerate() {
                                    let mut lanes = [T::zero(); 16];
                                    for oh in oh_lo..oh_hi {
                                        let ih = oh * h.stride + kh * h.dilation - h.pad_before;
                                        let iw0 =
                                            ow_lo * wd.stride + kw * wd.dilation - wd.pad_before;
                                        let x_line = &x[n * x_n + co / og * x_c + ih * x_h + iw0..];
                                        let dy_line =
                                            &dy[n * dy_n + co * dy_c + oh * dy_h..][ow_lo..ow_hi];
                                        if wd.stride == 1 {
                                            lanes_dot(&mut lanes, dy_line, x_line);
                                        } else {
                                            let inputs = x_line.iter().step_by(wd.stride);
                                            for (i, (&g, &v)) in
                                                dy_line.iter().zip(inputs).enumerate()
                                            {
                                                lanes[i % 16] += g * v;
                                            }
                                        }
                                    }
                                    *tap += lanes.iter().fold(T::zero(), |a, &b| a + b);
                                }
                            }
                        }
                    }
                }
            },
        )
    });
}
