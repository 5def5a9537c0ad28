//! Direct convolution for few channels on one side: RGB (or grey) inputs, where im2col
//! gathers a few values per copy and the GEMM's inner size is tiny, and RGB outputs,
//! where the GEMM is a few columns wide. f32 on AVX-512 or AVX2 with FMA (one generic
//! kernel, register blockings per instruction set), NHWC data, one group; the caller
//! takes another plan for the rest.
//!
//! Each task is one output row, cut into blocks of pixels. For each block, the window
//! rows (`kernel_w * in_channels` values per pixel and kernel row) are located first:
//! straight in the input where they lie inside it, else copied with zeros for padding.
//! Then one register loop, with no calls, accumulates:
//! - *wide* form (at most [`WIDE_MAX_IN`] input channels): each pixel's results are
//!   registers across output channels; every window value is broadcast and multiplied by
//!   its filter row;
//! - *narrow* form (at most [`NARROW_MAX_OUT`] output channels): each (pixel, output
//!   channel) is a register of partial dot products along the window rows, summed
//!   horizontally at the end.
//!
//! Sums run in a fixed order per output, so results do not depend on the thread count.

use super::simd::{self, F32s, Isa};
use super::{input_pos, min_items, transpose};
use crate::layout::DataFormat;
use crate::problem::Problem;
use rayon::prelude::*;

/// Most input channels of the wide form.
pub(crate) const WIDE_MAX_IN: usize = 8;
/// Most output channels of the narrow form.
pub(crate) const NARROW_MAX_OUT: usize = 4;
/// Most registers of output channels per pixel of the wide form: 64 channels on
/// AVX-512 (32 registers), 16 on AVX2 (16 registers).
fn max_vectors<V: F32s>() -> usize {
    if V::REGISTERS >= 32 {
        4
    } else {
        2
    }
}

/// Whether the direct kernels take `p` (one group, few channels on one side).
pub(crate) fn applies(p: &Problem) -> bool {
    p.groups == 1
        && p.in_channels > 0
        && p.out_channels > 0
        && (p.in_channels <= WIDE_MAX_IN || p.out_channels <= NARROW_MAX_OUT)
}

/// Pixels per block below the whole blocks' size, largest first.
const SMALL_BLOCKS: [usize; 4] = [4, 3, 2, 1];

/// Output rows per task on NCHW data: the input rows a band reads are staged
/// channels-last once per task.
const NCHW_BAND_ROWS: usize = 8;

/// `y = conv(x, w)`, `x` and `y` in `format` (every value of `y` is written), HWIO `w`.
/// Returns false, having written nothing, where the kernels do not apply: not f32,
/// neither AVX-512 nor AVX2 with FMA, or a problem [`applies`] rejects.
pub(crate) fn forward<T: 'static>(
    p: &Problem,
    format: DataFormat,
    x: &[T],
    w: &[T],
    y: &mut [T],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if let (Some(x), Some(w), Some(y)) = (super::f32s(x), super::f32s(w), super::f32s_mut(y)) {
        if applies(p) && simd::isa() >= Isa::Avx2 {
            forward_f32(p, format, x, w, y);
            return true;
        }
    }
    let _ = (p, format, x, w, y);
    false
}

/// [`forward`] into a new vector: `y` is empty with room for the `len` values of the
/// output, which the loops fill without a zero-fill first. Returns false, leaving `y`
/// empty, where [`forward`] would.
pub(crate) fn forward_fresh<T: 'static>(
    p: &Problem,
    format: DataFormat,
    x: &[T],
    w: &[T],
    (y, len): (&mut Vec<T>, usize),
) -> bool {
    let loops = |room: &mut [std::mem::MaybeUninit<T>]| {
        // SAFETY: the view covers the room's values and borrows it mutably; the loops
        // store each value before reading it.
        let y = unsafe { std::slice::from_raw_parts_mut(room.as_mut_ptr().cast(), room.len()) };
        forward(p, format, x, w, y)
    };
    // SAFETY: `forward` stores all `len` values where it returns true: NHWC tasks are
    // whole output rows, cut into blocks that cover every pixel (`Job::blocks`), each
    // storing every output channel (the wide form's stores cover `0..cout` in runs of
    // 64 (16 on AVX2), the narrow form stores each channel); NCHW tasks compute every row of their
    // band the same way and transpose it whole into every channel's line.
    unsafe { super::fill_new(y, (p.output_shape(), len), loops) }
}

/// Pixels per block of the wide form for `vectors` registers per pixel: 24 accumulators
/// at most on AVX-512, 12 on AVX2 (with the filter registers and a broadcast beside them).
fn wide_pixels(isa: Isa, vectors: usize) -> usize {
    match isa {
        Isa::Avx512 => [16, 12, 8, 6][vectors.clamp(1, 4) - 1],
        _ => [12, 6][vectors.clamp(1, 2) - 1],
    }
}

/// Pixels per block of the narrow form for `channels` output channels: at most 20
/// accumulators on AVX-512 (12 on AVX2), so that each pixel's window values and every
/// filter register fit too.
fn narrow_pixels(isa: Isa, channels: usize) -> usize {
    let table = match isa {
        Isa::Avx512 => [16, 10, 6, 5],
        _ => [12, 6, 4, 2],
    };
    table[channels.clamp(1, NARROW_MAX_OUT) - 1]
}

#[cfg(target_arch = "x86_64")]
fn forward_f32(p: &Problem, format: DataFormat, x: &[f32], w: &[f32], y: &mut [f32]) {
    let (h, wd) = (p.height, p.width);
    let (cin, cout) = (p.in_channels, p.out_channels);
    let row_len = wd.output * cout;
    if y.is_empty() || row_len == 0 {
        return;
    }
    let window = wd.kernel * cin;
    let wide = cin <= WIDE_MAX_IN;
    // Wide form: the filter's rows of output channels padded with zeros to whole
    // registers, so that the loop loads whole registers. Narrow form: the filter as
    // `[out channel][kh][(kw, ci)]`, window rows as slices.
    let filter_stride = cout.next_multiple_of(16);
    let filter = if wide {
        let mut padded = vec![0.0; h.kernel * window * filter_stride];
        for (dst, src) in padded.chunks_mut(filter_stride).zip(w.chunks(cout)) {
            dst[..cout].copy_from_slice(src);
        }
        padded
    } else {
        crate::layout::transpose(w, h.kernel * window, cout)
    };
    let isa = simd::isa();
    let lanes = if isa == Isa::Avx512 { 16 } else { 8 };
    let pixels = if wide {
        wide_pixels(isa, cout.div_ceil(lanes))
    } else {
        narrow_pixels(isa, cout)
    };
    let job = Job {
        p,
        x,
        image_rows: h.input,
        first_row: 0,
        filter: &filter,
        filter_stride,
        window,
        pixels,
    };
    if format == DataFormat::Nhwc {
        let rows = y.len() / row_len;
        y.par_chunks_mut(row_len)
            .enumerate()
            .with_min_len(min_items(p, rows))
            .for_each_init(Scratch::default, |scratch, (row, y_row)| {
                job.row(scratch, (row / h.output, row % h.output), y_row);
            });
        return;
    }
    // NCHW: tasks of (image, band of output rows), each given its rows of every channel's
    // plane; a band's input rows are staged channels-last, and each output row is
    // computed channels-last and then transposed into the planes' lines. (Transposing a
    // whole band at once, streamed or not, was slower: its buffers leave the L2 cache.)
    let plane = h.output * wd.output;
    let mut tasks = Vec::new();
    for (n, image) in y.chunks_mut(plane * cout).enumerate() {
        let mut bands: Vec<_> = image
            .chunks_mut(plane)
            .map(|p| p.chunks_mut(NCHW_BAND_ROWS * wd.output))
            .collect();
        for band in 0..h.output.div_ceil(NCHW_BAND_ROWS) {
            let lines: Vec<&mut [f32]> = bands.iter_mut().filter_map(Iterator::next).collect();
            tasks.push((n, band, lines));
        }
    }
    let count = tasks.len();
    let (in_plane, in_row) = (h.input * wd.input, wd.input * cin);
    tasks
        .into_par_iter()
        .with_min_len(min_items(p, count))
        .for_each_init(
            || (Scratch::default(), Vec::new(), Vec::new()),
            |(scratch, staged, out), (n, band, mut lines)| {
                let oh_lo = band * NCHW_BAND_ROWS;
                let oh_hi = (oh_lo + NCHW_BAND_ROWS).min(h.output);
                let reach = ((h.kernel - 1) * h.dilation) as isize;
                let lo = input_pos(oh_lo, 0, h.stride, h.dilation, h.pad_before).max(0) as usize;
                let hi = (input_pos(oh_hi - 1, 0, h.stride, h.dilation, h.pad_before) + reach + 1)
                    .clamp(0, h.input as isize) as usize;
                staged.resize(hi.saturating_sub(lo) * in_row, 0.0);
                for (ih, dst) in (lo..hi).zip(staged.chunks_mut(in_row.max(1))) {
                    let src = &x[n * cin * in_plane + ih * wd.input..];
                    transpose::strided(src, in_plane, (cin, wd.input), dst, cin);
                }
                let band_job = Job {
                    x: staged,
                    image_rows: 0,
                    first_row: lo,
                    ..job
                };
                out.resize(row_len, 0.0);
                for oh in oh_lo..oh_hi {
                    band_job.row(scratch, (0, oh), out);
                    let offset = (oh - oh_lo) * wd.output;
                    transpose::into_lines(out, cout, wd.output, &mut lines, offset);
                }
            },
        );
}

/// Where one kernel row's window rows of a block lie: pixel `r`'s row is
/// `source[first + r * step..][..window]`, the source being the input or the block's
/// buffer.
#[derive(Debug, Clone, Copy)]
struct Rows {
    in_buffer: bool,
    first: usize,
    step: usize,
}

/// A task's buffers, reused from block to block.
#[derive(Default)]
struct Scratch {
    /// Per kernel row, where the block's window rows lie (`None`: the row is padding).
    rows: Vec<Option<Rows>>,
    /// Window rows copied with zeros for padding.
    buffer: Vec<f32>,
    /// Pixels (window rows per kernel row) of the block located last.
    pixels: usize,
    /// `(image, output row, pixels, first input column)` of the block located last,
    /// where its windows lie inside the input (every row read in place): the next such
    /// block of the row only moves its rows along.
    in_place: Option<(usize, usize, usize, isize)>,
}

/// What every task shares.
#[derive(Clone, Copy)]
struct Job<'a> {
    p: &'a Problem,
    /// The input, NHWC: input row `ih` of image `n` is line `n * image_rows + ih -
    /// first_row` (a band's staged rows on NCHW data, else the whole input).
    x: &'a [f32],
    image_rows: usize,
    first_row: usize,
    /// HWIO with rows of `filter_stride` values (wide form) or `[out channel][kh][(kw,
    /// ci)]` (narrow form).
    filter: &'a [f32],
    /// Values per filter row of the wide form: the output channels, then zeros to a
    /// multiple of 16.
    filter_stride: usize,
    /// `kernel_w * in_channels`: one window row.
    window: usize,
    /// Pixels per block.
    pixels: usize,
}

impl Job<'_> {
    /// Output row `oh` of image `n`, `y_row` (`output_w * out_channels`), block by block.
    fn row(&self, scratch: &mut Scratch, (n, oh): (usize, usize), y_row: &mut [f32]) {
        let (cout, pixels) = (self.p.out_channels, self.pixels);
        for (ow0, count) in self.blocks(pixels) {
            // Whole blocks; the rest (pixels at the edges, a row's last few) in smaller
            // blocks of `SMALL_BLOCKS` pixels, so that no block computes pixels it does
            // not have (those have registers for fewer accumulators, never more).
            let mut ow = ow0;
            while ow < ow0 + count {
                let left = ow0 + count - ow;
                let size = std::iter::once(pixels)
                    .chain(SMALL_BLOCKS)
                    .find(|&size| size <= pixels && size <= left)
                    .unwrap_or(1);
                let count = size;
                self.locate(scratch, (n, oh), (ow, size, size));
                let out = &mut y_row[ow * cout..][..count * cout];
                let block = Block {
                    job: self,
                    scratch,
                    count,
                    out,
                };
                // `forward` checked the instruction set, so the block runs.
                let ran = simd::dispatch(block).is_ok();
                debug_assert!(ran);
                ow += size;
            }
        }
    }

    /// `(first pixel, count)` of the blocks of at most `size` pixels an output row is
    /// cut into. Blocks never straddle the edges: pixels whose windows reach padding
    /// come in blocks of their own (copied with zeros), so that the others are read in
    /// place.
    fn blocks(&self, size: usize) -> impl Iterator<Item = (usize, usize)> {
        let wd = self.p.width;
        let inside = move |ow: usize| {
            let first = input_pos(ow, 0, wd.stride, wd.dilation, wd.pad_before);
            let last = first + ((wd.kernel - 1) * wd.dilation) as isize;
            first >= 0 && (last as usize) < wd.input
        };
        let lo = (0..wd.output).find(|&ow| inside(ow)).unwrap_or(wd.output);
        let hi = (lo..wd.output).find(|&ow| !inside(ow)).unwrap_or(wd.output);
        [(0, lo), (lo, hi), (hi, wd.output)]
            .into_iter()
            .flat_map(move |(a, b)| {
                (a..b)
                    .step_by(size)
                    .map(move |ow0| (ow0, size.min(b - ow0)))
            })
    }

    /// Fills `scratch.rows` for the block of pixels `ow0..ow0 + count` of output row
    /// `oh` of image `n`, `pixels >= count` window rows per kernel row (those past
    /// `count` read zeros).
    fn locate(
        &self,
        scratch: &mut Scratch,
        (n, oh): (usize, usize),
        (ow0, count, pixels): (usize, usize, usize),
    ) {
        let (h, wd, cin, len) = (self.p.height, self.p.width, self.p.in_channels, self.window);
        let first = input_pos(ow0, 0, wd.stride, wd.dilation, wd.pad_before);
        let last = input_pos(ow0 + pixels - 1, 0, wd.stride, wd.dilation, wd.pad_before)
            + ((wd.kernel - 1) * wd.dilation) as isize;
        let in_place = wd.dilation == 1 && first >= 0 && (last as usize) < wd.input;
        let key = (n, oh, pixels);
        if let Some((n0, oh0, pixels0, first0)) = scratch.in_place {
            if in_place && key == (n0, oh0, pixels0) {
                // The same kernel rows, read in place `first - first0` columns on.
                for rows in scratch.rows.iter_mut().flatten() {
                    rows.first = rows
                        .first
                        .wrapping_add_signed((first - first0) * cin as isize);
                }
                scratch.in_place = Some((n, oh, pixels, first));
                return;
            }
        }
        scratch.in_place = in_place.then_some((n, oh, pixels, first));
        scratch.pixels = pixels;
        scratch.rows.clear();
        let mut used = 0;
        for kh in 0..h.kernel {
            let ih = input_pos(oh, kh, h.stride, h.dilation, h.pad_before);
            if ih < 0 || ih as usize >= h.input {
                scratch.rows.push(None);
                continue;
            }
            let line = (n * self.image_rows + ih as usize - self.first_row) * wd.input;
            if in_place {
                scratch.rows.push(Some(Rows {
                    in_buffer: false,
                    first: (line + first as usize) * cin,
                    step: wd.stride * cin,
                }));
                continue;
            }
            if scratch.buffer.len() < used + pixels * len {
                scratch.buffer.resize(used + pixels * len, 0.0);
            }
            let block = &mut scratch.buffer[used..used + pixels * len];
            block.fill(0.0);
            for (r, slot) in block.chunks_mut(len).enumerate().take(count) {
                for kw in 0..wd.kernel {
                    let iw = input_pos(ow0 + r, kw, wd.stride, wd.dilation, wd.pad_before);
                    if iw >= 0 && (iw as usize) < wd.input {
                        let src = &self.x[(line + iw as usize) * cin..][..cin];
                        slot[kw * cin..][..cin].copy_from_slice(src);
                    }
                }
            }
            scratch.rows.push(Some(Rows {
                in_buffer: true,
                first: used,
                step: len,
            }));
            used += pixels * len;
        }
    }

    /// The values a kernel row's window rows are read from, checked to hold the block's
    /// `pixels` rows of `window` values.
    #[inline(always)]
    fn source<'s>(&'s self, scratch: &'s Scratch, rows: Rows) -> &'s [f32] {
        let data = if rows.in_buffer {
            &scratch.buffer[..]
        } else {
            self.x
        };
        let span = (scratch.pixels.max(1) - 1) * rows.step + self.window;
        assert!(rows.first + span <= data.len());
        data
    }

    /// Every output channel of the block's first `count` pixels, into `out`, in the wide
    /// or the narrow form. The caller makes sure that the CPU has `V`'s instruction set.
    #[inline(always)]
    fn block<V: F32s>(&self, scratch: &Scratch, count: usize, out: &mut [f32]) {
        if self.p.in_channels <= WIDE_MAX_IN {
            self.wide::<V>(scratch, count, out);
        } else {
            self.narrow::<V>(scratch, count, out);
        }
    }

    /// Wide form: every output channel of the block's first `count` pixels, into `out`.
    #[inline(always)]
    fn wide<V: F32s>(&self, scratch: &Scratch, count: usize, out: &mut [f32]) {
        let cout = self.p.out_channels;
        let max = max_vectors::<V>();
        // Past 64 output channels (16 on AVX2), blocks of 6 pixels take that many
        // channels at a time.
        for co0 in (0..cout).step_by(max * V::LANES) {
            let vectors = (cout - co0).div_ceil(V::LANES).min(max);
            // Small blocks (at the edges, a row's last pixels), then the whole blocks of
            // `wide_pixels` (AVX2 takes 12 or 6 pixels, at most two registers each).
            let avx2 = V::REGISTERS < 32;
            match (scratch.pixels, vectors) {
                (1, 1) => self.wide_block::<V, 1, 1>(scratch, count, co0, out),
                (1, 2) => self.wide_block::<V, 1, 2>(scratch, count, co0, out),
                (1, 3) => self.wide_block::<V, 1, 3>(scratch, count, co0, out),
                (1, _) => self.wide_block::<V, 1, 4>(scratch, count, co0, out),
                (2, 1) => self.wide_block::<V, 2, 1>(scratch, count, co0, out),
                (2, 2) => self.wide_block::<V, 2, 2>(scratch, count, co0, out),
                (2, 3) => self.wide_block::<V, 2, 3>(scratch, count, co0, out),
                (2, _) => self.wide_block::<V, 2, 4>(scratch, count, co0, out),
                (3, 1) => self.wide_block::<V, 3, 1>(scratch, count, co0, out),
                (3, 2) => self.wide_block::<V, 3, 2>(scratch, count, co0, out),
                (3, 3) => self.wide_block::<V, 3, 3>(scratch, count, co0, out),
                (3, _) => self.wide_block::<V, 3, 4>(scratch, count, co0, out),
                (4, 1) => self.wide_block::<V, 4, 1>(scratch, count, co0, out),
                (4, 2) => self.wide_block::<V, 4, 2>(scratch, count, co0, out),
                (4, 3) => self.wide_block::<V, 4, 3>(scratch, count, co0, out),
                (4, _) => self.wide_block::<V, 4, 4>(scratch, count, co0, out),
                (16, _) => self.wide_block::<V, 16, 1>(scratch, count, co0, out),
                (12, _) if avx2 => self.wide_block::<V, 12, 1>(scratch, count, co0, out),
                (12, _) => self.wide_block::<V, 12, 2>(scratch, count, co0, out),
                (8, _) => self.wide_block::<V, 8, 3>(scratch, count, co0, out),
                (_, 1) => self.wide_block::<V, 6, 1>(scratch, count, co0, out),
                (_, 2) => self.wide_block::<V, 6, 2>(scratch, count, co0, out),
                (_, 3) => self.wide_block::<V, 6, 3>(scratch, count, co0, out),
                _ => self.wide_block::<V, 6, 4>(scratch, count, co0, out),
            }
        }
    }

    /// Output channels `co0..co0 + LANES * N` (fewer at the end) of `R` pixels.
    #[inline(always)]
    fn wide_block<V: F32s, const R: usize, const N: usize>(
        &self,
        scratch: &Scratch,
        count: usize,
        co0: usize,
        out: &mut [f32],
    ) {
        let (cout, len, lanes) = (self.p.out_channels, self.window, V::LANES);
        let stride = self.filter_stride;
        // Lanes of each register that hold output channels.
        let widths: [usize; N] =
            std::array::from_fn(|v| (cout - co0).saturating_sub(v * lanes).min(lanes));
        assert!(co0 < cout && out.len() >= count * cout && co0 + N * lanes <= stride);
        // SAFETY: the caller makes sure that the CPU has `V`'s instruction set.
        let mut acc = [[unsafe { V::zero() }; N]; R];
        for (kh, rows) in scratch.rows.iter().enumerate() {
            let Some(rows) = *rows else {
                continue;
            };
            let data = self.source(scratch, rows);
            // The kernel row's filter rows, from output channel `co0` on: `len` rows of
            // `stride` values, the last `N * LANES` long.
            let filter = &self.filter[kh * len * stride + co0..][..(len - 1) * stride + N * lanes];
            // SAFETY: the caller makes sure that the CPU has `V`'s instruction set. Row
            // `j < len` of `filter` holds the `N * LANES` values the registers load
            // (the slice above); `source` checked that every pixel's `len` values lie in
            // `data`.
            unsafe {
                let (filter, data) = (filter.as_ptr(), data.as_ptr().add(rows.first));
                for j in 0..len {
                    let mut b = [V::zero(); N];
                    for (v, b) in b.iter_mut().enumerate() {
                        *b = V::load(filter.add(j * stride + v * lanes));
                    }
                    for (r, acc) in acc.iter_mut().enumerate() {
                        let a = V::splat(*data.add(r * rows.step + j));
                        for (acc, b) in acc.iter_mut().zip(&b) {
                            *acc = a.mul_add(*b, *acc);
                        }
                    }
                }
            }
        }
        for (r, acc) in acc.iter().enumerate().take(count) {
            let pixel = &mut out[r * cout + co0..];
            for v in 0..N {
                // SAFETY: the CPU has `V`'s instruction set (as above); register `v`
                // stores its `widths[v]` output channels below `cout`, which `pixel`
                // holds (asserted above: `r < count`).
                unsafe { acc[v].store_part(widths[v], pixel.as_mut_ptr().add(v * lanes)) };
            }
        }
    }

    /// Narrow form: every output channel of the block's first `count` pixels, into `out`.
    #[inline(always)]
    fn narrow<V: F32s>(&self, scratch: &Scratch, count: usize, out: &mut [f32]) {
        // Small blocks (at the edges, a row's last pixels), then the whole blocks of
        // `narrow_pixels` (on AVX2 those of 3 and 4 channels are small ones).
        let avx2 = V::REGISTERS < 32;
        match (scratch.pixels, self.p.out_channels) {
            (1, 1) => self.narrow_block::<V, 1, 1>(scratch, count, out),
            (1, 2) => self.narrow_block::<V, 1, 2>(scratch, count, out),
            (1, 3) => self.narrow_block::<V, 1, 3>(scratch, count, out),
            (1, _) => self.narrow_block::<V, 1, 4>(scratch, count, out),
            (2, 1) => self.narrow_block::<V, 2, 1>(scratch, count, out),
            (2, 2) => self.narrow_block::<V, 2, 2>(scratch, count, out),
            (2, 3) => self.narrow_block::<V, 2, 3>(scratch, count, out),
            (2, _) => self.narrow_block::<V, 2, 4>(scratch, count, out),
            (3, 1) => self.narrow_block::<V, 3, 1>(scratch, count, out),
            (3, 2) => self.narrow_block::<V, 3, 2>(scratch, count, out),
            (3, 3) => self.narrow_block::<V, 3, 3>(scratch, count, out),
            (3, _) => self.narrow_block::<V, 3, 4>(scratch, count, out),
            (4, 1) => self.narrow_block::<V, 4, 1>(scratch, count, out),
            (4, 2) => self.narrow_block::<V, 4, 2>(scratch, count, out),
            (4, 3) => self.narrow_block::<V, 4, 3>(scratch, count, out),
            (4, _) => self.narrow_block::<V, 4, 4>(scratch, count, out),
            (_, 1) if avx2 => self.narrow_block::<V, 12, 1>(scratch, count, out),
            (_, 2) if avx2 => self.narrow_block::<V, 6, 2>(scratch, count, out),
            (_, 1) => self.narrow_block::<V, 16, 1>(scratch, count, out),
            (_, 2) => self.narrow_block::<V, 10, 2>(scratch, count, out),
            (_, 3) => self.narrow_block::<V, 6, 3>(scratch, count, out),
            _ => self.narrow_block::<V, 5, 4>(scratch, count, out),
        }
    }

    /// All `C` output channels of `R` pixels.
    #[inline(always)]
    fn narrow_block<V: F32s, const R: usize, const C: usize>(
        &self,
        scratch: &Scratch,
        count: usize,
        out: &mut [f32],
    ) {
        let (len, lanes) = (self.window, V::LANES);
        let taps = self.p.height.kernel * len;
        // Output channel c's kernel row kh is `filter[c * taps + kh * len..][..len]`.
        assert!(self.filter.len() >= C * taps);
        // SAFETY: the caller makes sure that the CPU has `V`'s instruction set.
        let mut acc = [[unsafe { V::zero() }; C]; R];
        for (kh, rows) in scratch.rows.iter().enumerate() {
            let Some(rows) = *rows else {
                continue;
            };
            let data = self.source(scratch, rows);
            // Whole registers, then the rest of the window row.
            for j0 in (0..len - len % lanes).step_by(lanes) {
                self.narrow_chunk::<V, R, C, true>(data, (rows, kh, j0), &mut acc);
            }
            if len % lanes > 0 {
                let j0 = len - len % lanes;
                self.narrow_chunk::<V, R, C, false>(data, (rows, kh, j0), &mut acc);
            }
        }
        for (r, acc) in acc.iter().enumerate().take(count) {
            for c in 0..C {
                out[r * C + c] = acc[c].sum();
            }
        }
    }

    /// Values `j0..j0 + LANES` of kernel row `kh`'s window rows (`WHOLE`: all inside the
    /// row; else the row's last `len - j0` values) times each output channel's filter,
    /// into `acc`. The caller makes sure that the CPU has `V`'s instruction set.
    #[inline(always)]
    fn narrow_chunk<V: F32s, const R: usize, const C: usize, const WHOLE: bool>(
        &self,
        data: &[f32],
        (rows, kh, j0): (Rows, usize, usize),
        acc: &mut [[V; C]; R],
    ) {
        let (len, lanes) = (self.window, V::LANES);
        let taps = self.p.height.kernel * len;
        let width = len - j0;
        assert!(self.filter.len() >= C * taps && j0 < len && (!WHOLE || j0 + lanes <= len));
        // SAFETY: the caller makes sure that the CPU has `V`'s instruction set. The assert
        // above puts values `j0..len` of each kernel row in `filter`, and `source` checked
        // that every pixel's `len` values lie in `data`; the loads read `LANES` values
        // from `j0` on where `WHOLE` (which fit, asserted), else the `width` values left.
        unsafe {
            let load = |at: *const f32| {
                if WHOLE {
                    V::load(at)
                } else {
                    V::load_part(width, at)
                }
            };
            let mut b = [V::zero(); C];
            for (c, b) in b.iter_mut().enumerate() {
                *b = load(self.filter.as_ptr().add(c * taps + kh * len + j0));
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                let a = load(data.as_ptr().add(rows.first + r * rows.step + j0));
                for (acc, b) in acc.iter_mut().zip(&b) {
                    *acc = a.mul_add(*b, *acc);
                }
            }
        }
    }
}

/// Output pixels per block of the filter gradient: their window rows are located once,
/// and each group of the gradient's rows sums them in registers.
const FILTER_PIXELS: usize = 64;

/// `dw = sum over pixels of window(x) * dy` (HWIO `dw`, zero-filled), NHWC `x` and `dy`.
/// Returns false, having written nothing, where the kernels do not apply: not f32,
/// neither AVX-512 nor AVX2 with FMA, NCHW data, or a problem [`applies`] rejects.
pub(crate) fn backward_filter<T: crate::element::Element>(
    p: &Problem,
    format: DataFormat,
    x: &[T],
    dy: &[T],
    dw: &mut [T],
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if let (Some(x), Some(dy), Some(dw)) = (super::f32s(x), super::f32s(dy), super::f32s_mut(dw)) {
        if format == DataFormat::Nhwc && applies(p) && simd::isa() >= Isa::Avx2 {
            backward_filter_f32(p, x, dy, dw);
            return true;
        }
    }
    let _ = (p, format, x, dy, dw);
    false
}

#[cfg(target_arch = "x86_64")]
fn backward_filter_f32(p: &Problem, x: &[f32], dy: &[f32], dw: &mut [f32]) {
    let (h, wd) = (p.height, p.width);
    let (cin, cout) = (p.in_channels, p.out_channels);
    let window = wd.kernel * cin;
    let wide = cin <= WIDE_MAX_IN;
    let job = Job {
        p,
        x,
        image_rows: h.input,
        first_row: 0,
        filter: &[],
        filter_stride: 0,
        window,
        pixels: FILTER_PIXELS,
    };
    // Items are output rows, summed in fixed partials (independent of the thread count).
    let items: Vec<(usize, usize)> = (0..p.batch)
        .flat_map(|n| (0..h.output).map(move |oh| (n, oh)))
        .collect();
    // The narrow form sums into `[out channel][kh][(kw, ci)]`, transposed at the end.
    let mut transposed = vec![0.0f32; if wide { 0 } else { dw.len() }];
    let target: &mut [f32] = if wide { dw } else { &mut transposed };
    super::sum_in_partials(target, &items, |&(n, oh), part, scratch: &mut Scratch| {
        for (ow0, count) in job.blocks(FILTER_PIXELS) {
            job.locate(scratch, (n, oh), (ow0, count, count));
            let dy = &dy[((n * h.output + oh) * wd.output + ow0) * cout..][..count * cout];
            let block = FilterBlock {
                job: &job,
                scratch,
                dy,
                part: &mut *part,
            };
            // `backward_filter` checked the instruction set, so the block runs.
            let ran = simd::dispatch(block).is_ok();
            debug_assert!(ran);
            // Kernel rows wholly in the padding are skipped above; im2col (TensorFlow,
            // PyTorch) multiplies their zeros, so a NaN or infinity in `dy` reaches them
            // too: add `0 * dy` where that is not zero.
            let taps = h.kernel * window;
            if !scratch.rows.iter().any(Option::is_none) || super::all_finite(dy) {
                continue;
            }
            for c in 0..cout {
                let zero: f32 = dy.iter().skip(c).step_by(cout).map(|v| v * 0.0).sum();
                if zero.is_finite() {
                    continue;
                }
                let padded = scratch.rows.iter().enumerate().filter(|(_, r)| r.is_none());
                for row in padded.flat_map(|(kh, _)| kh * window..(kh + 1) * window) {
                    let at = if wide { row * cout + c } else { c * taps + row };
                    part[at] += zero;
                }
            }
        }
    });
    if !wide {
        let taps = h.kernel * window;
        for (row, values) in dw.chunks_mut(cout).enumerate() {
            for (c, v) in values.iter_mut().enumerate() {
                *v = transposed[c * taps + row];
            }
        }
    }
}

/// One block of the forward loops ([`Job::block`]): its first `count` pixels into `out`.
struct Block<'b> {
    job: &'b Job<'b>,
    scratch: &'b Scratch,
    count: usize,
    out: &'b mut [f32],
}

impl simd::Kernel for Block<'_> {
    type Output = ();
    #[inline(always)]
    unsafe fn run<V: F32s>(self) {
        self.job.block::<V>(self.scratch, self.count, self.out);
    }
}

/// One block of the filter gradient ([`Job::filter_block`]): its `dy` rows into `part`.
struct FilterBlock<'b> {
    job: &'b Job<'b>,
    scratch: &'b Scratch,
    dy: &'b [f32],
    part: &'b mut [f32],
}

impl simd::Kernel for FilterBlock<'_> {
    type Output = ();
    #[inline(always)]
    unsafe fn run<V: F32s>(self) {
        self.job.filter_block::<V>(self.scratch, self.dy, self.part);
    }
}

impl Job<'_> {
    /// One block's share of the filter gradient, in the wide or the narrow form. The
    /// caller makes sure that the CPU has `V`'s instruction set.
    #[inline(always)]
    fn filter_block<V: F32s>(&self, scratch: &Scratch, dy: &[f32], part: &mut [f32]) {
        if self.p.in_channels <= WIDE_MAX_IN {
            self.wide_filter::<V>(scratch, dy, part);
        } else {
            self.narrow_filter::<V>(scratch, dy, part);
        }
    }

    /// Wide form of the filter gradient: every (kh, kw, ci) row of `part` (HWIO) gains
    /// the block's window values times its `dy` rows (`count * out_channels`).
    #[inline(always)]
    fn wide_filter<V: F32s>(&self, scratch: &Scratch, dy: &[f32], part: &mut [f32]) {
        let (cout, len) = (self.p.out_channels, self.window);
        let max = max_vectors::<V>();
        for (kh, rows) in scratch.rows.iter().enumerate() {
            let Some(rows) = *rows else {
                continue;
            };
            let data = self.source(scratch, rows);
            for co0 in (0..cout).step_by(max * V::LANES) {
                let vectors = (cout - co0).div_ceil(V::LANES).min(max);
                let mut j = 0;
                while j < len {
                    let at = (rows, kh * len + j, co0);
                    let step = match (len - j, vectors) {
                        (6.., 1) => self.wide_filter_rows::<V, 6, 1>(data, at, dy, part),
                        (6.., 2) => self.wide_filter_rows::<V, 6, 2>(data, at, dy, part),
                        (6.., 3) => self.wide_filter_rows::<V, 6, 3>(data, at, dy, part),
                        (6.., _) => self.wide_filter_rows::<V, 6, 4>(data, at, dy, part),
                        (3.., 1) => self.wide_filter_rows::<V, 3, 1>(data, at, dy, part),
                        (3.., 2) => self.wide_filter_rows::<V, 3, 2>(data, at, dy, part),
                        (3.., 3) => self.wide_filter_rows::<V, 3, 3>(data, at, dy, part),
                        (3.., _) => self.wide_filter_rows::<V, 3, 4>(data, at, dy, part),
                        (_, 1) => self.wide_filter_rows::<V, 1, 1>(data, at, dy, part),
                        (_, 2) => self.wide_filter_rows::<V, 1, 2>(data, at, dy, part),
                        (_, 3) => self.wide_filter_rows::<V, 1, 3>(data, at, dy, part),
                        (_, _) => self.wide_filter_rows::<V, 1, 4>(data, at, dy, part),
                    };
                    j += step;
                }
            }
        }
    }

    /// `G` rows of the wide form's gradient from row `row` on (window value `row % len`
    /// of kernel row `row / len`), output channels `co0..co0 + LANES * N`: the block's
    /// pixels summed in registers, then added to `part`. Returns `G`.
    #[inline(always)]
    fn wide_filter_rows<V: F32s, const G: usize, const N: usize>(
        &self,
        data: &[f32],
        (rows, row, co0): (Rows, usize, usize),
        dy: &[f32],
        part: &mut [f32],
    ) -> usize {
        let (cout, len, lanes) = (self.p.out_channels, self.window, V::LANES);
        let j = row % len;
        let widths: [usize; N] = std::array::from_fn(|v| (cout - co0).saturating_sub(v * lanes));
        let acc = if cout - co0 >= N * lanes {
            self.wide_filter_sums::<V, G, N, true>(data, (rows, j, co0), dy, widths)
        } else {
            self.wide_filter_sums::<V, G, N, false>(data, (rows, j, co0), dy, widths)
        };
        for (g, acc) in acc.iter().enumerate() {
            let sums = &mut part[(row + g) * cout + co0..];
            for (v, acc) in acc.iter().enumerate() {
                // SAFETY: the CPU has `V`'s instruction set (as above); register `v`
                // adds to the `widths[v]` output channels below `cout` from its first (or
                // `LANES`), which `sums` holds.
                unsafe {
                    let at = sums.as_mut_ptr().add(v * lanes);
                    acc.add(V::load_part(widths[v], at))
                        .store_part(widths[v], at);
                }
            }
        }
        G
    }

    /// The sums of [`Self::wide_filter_rows`] over the block's pixels: window values
    /// `j..j + G` times the `dy` channels `co0..`, `widths[v]` of them in register `v`
    /// (`WHOLE`: `LANES` in each). The caller makes sure that the CPU has `V`'s
    /// instruction set.
    #[inline(always)]
    fn wide_filter_sums<V: F32s, const G: usize, const N: usize, const WHOLE: bool>(
        &self,
        data: &[f32],
        (rows, j, co0): (Rows, usize, usize),
        dy: &[f32],
        widths: [usize; N],
    ) -> [[V; N]; G] {
        let (cout, len, lanes) = (self.p.out_channels, self.window, V::LANES);
        let pixels = dy.len() / cout;
        assert!(j + G <= len && pixels <= self.pixels && co0 < cout);
        assert!(!WHOLE || co0 + N * lanes <= cout);
        // SAFETY: the caller makes sure that the CPU has `V`'s instruction set.
        let mut acc = [[unsafe { V::zero() }; N]; G];
        for q in 0..pixels {
            let pixel = &dy[q * cout + co0..];
            let at = rows.first + q * rows.step + j;
            // SAFETY: the caller makes sure that the CPU has `V`'s instruction set.
            // Register `v` loads `LANES` values where `WHOLE` (inside `pixel`, asserted),
            // else the `widths[v]` output channels below `cout` from its first, which
            // `pixel` holds. `source` checked that the block's `len`-value window rows lie
            // in `data`, and `j + g < len` (asserted above).
            unsafe {
                let mut b = [V::zero(); N];
                for v in 0..N {
                    let from = pixel.as_ptr().add(v * lanes);
                    b[v] = if WHOLE {
                        V::load(from)
                    } else {
                        V::load_part(widths[v], from)
                    };
                }
                for (g, acc) in acc.iter_mut().enumerate() {
                    let a = V::splat(*data.get_unchecked(at + g));
                    for (acc, b) in acc.iter_mut().zip(&b) {
                        *acc = a.mul_add(*b, *acc);
                    }
                }
            }
        }
        acc
    }

    /// Narrow form of the filter gradient: `part` is `[out channel][kh][(kw, ci)]`; each
    /// output channel's kernel rows gain the block's window rows times its `dy` values.
    #[inline(always)]
    fn narrow_filter<V: F32s>(&self, scratch: &Scratch, dy: &[f32], part: &mut [f32]) {
        let chunks = self.window.div_ceil(V::LANES);
        for (kh, rows) in scratch.rows.iter().enumerate() {
            let Some(rows) = *rows else {
                continue;
            };
            let data = self.source(scratch, rows);
            let mut chunk = 0;
            while chunk < chunks {
                let at = (rows, kh, chunk);
                let left = chunks - chunk;
                if V::REGISTERS < 32 {
                    // At most 12 accumulators beside the `dy` registers and a load.
                    chunk += match (left, self.p.out_channels) {
                        (8.., 1) => self.narrow_filter_chunks::<V, 8, 1>(data, at, dy, part),
                        (4.., 1) => self.narrow_filter_chunks::<V, 4, 1>(data, at, dy, part),
                        (6.., 2) => self.narrow_filter_chunks::<V, 6, 2>(data, at, dy, part),
                        (3.., 2) => self.narrow_filter_chunks::<V, 3, 2>(data, at, dy, part),
                        (4.., 3) => self.narrow_filter_chunks::<V, 4, 3>(data, at, dy, part),
                        (2.., 3) => self.narrow_filter_chunks::<V, 2, 3>(data, at, dy, part),
                        (2.., 4) => self.narrow_filter_chunks::<V, 2, 4>(data, at, dy, part),
                        (_, 1) => self.narrow_filter_chunks::<V, 1, 1>(data, at, dy, part),
                        (_, 2) => self.narrow_filter_chunks::<V, 1, 2>(data, at, dy, part),
                        (_, 3) => self.narrow_filter_chunks::<V, 1, 3>(data, at, dy, part),
                        (_, _) => self.narrow_filter_chunks::<V, 1, 4>(data, at, dy, part),
                    };
                    continue;
                }
                let step = match (left, self.p.out_channels) {
                    (8.., 1) => self.narrow_filter_chunks::<V, 8, 1>(data, at, dy, part),
                    (8.., 2) => self.narrow_filter_chunks::<V, 8, 2>(data, at, dy, part),
                    (8.., 3) => self.narrow_filter_chunks::<V, 8, 3>(data, at, dy, part),
                    (8.., _) => self.narrow_filter_chunks::<V, 6, 4>(data, at, dy, part),
                    (4.., 1) => self.narrow_filter_chunks::<V, 4, 1>(data, at, dy, part),
                    (4.., 2) => self.narrow_filter_chunks::<V, 4, 2>(data, at, dy, part),
                    (4.., 3) => self.narrow_filter_chunks::<V, 4, 3>(data, at, dy, part),
                    (4.., _) => self.narrow_filter_chunks::<V, 4, 4>(data, at, dy, part),
                    (_, 1) => self.narrow_filter_chunks::<V, 1, 1>(data, at, dy, part),
                    (_, 2) => self.narrow_filter_chunks::<V, 1, 2>(data, at, dy, part),
                    (_, 3) => self.narrow_filter_chunks::<V, 1, 3>(data, at, dy, part),
                    (_, _) => self.narrow_filter_chunks::<V, 1, 4>(data, at, dy, part),
                };
                chunk += step;
            }
        }
    }

    /// `G` chunks of `LANES` window values from `chunk` on, of kernel row `kh`, for all
    /// `C` output channels: the block's pixels summed in registers, then added to `part`.
    /// Returns `G`.
    #[inline(always)]
    fn narrow_filter_chunks<V: F32s, const G: usize, const C: usize>(
        &self,
        data: &[f32],
        (rows, kh, chunk): (Rows, usize, usize),
        dy: &[f32],
        part: &mut [f32],
    ) -> usize {
        let (len, lanes) = (self.window, V::LANES);
        let taps = self.p.height.kernel * len;
        let widths: [usize; G] = std::array::from_fn(|g| len.saturating_sub((chunk + g) * lanes));
        assert!(part.len() >= C * taps);
        let acc = if len >= (chunk + G) * lanes {
            self.narrow_filter_sums::<V, G, C, true>(data, (rows, chunk), dy, widths)
        } else {
            self.narrow_filter_sums::<V, G, C, false>(data, (rows, chunk), dy, widths)
        };
        for (g, acc) in acc.iter().enumerate() {
            for (c, acc) in acc.iter().enumerate() {
                let at = c * taps + kh * len + (chunk + g) * lanes;
                // SAFETY: the CPU has `V`'s instruction set (as above); `part` holds `C *
                // taps` values (asserted above), and chunk `g` adds to its `widths[g]`
                // values of this kernel row below `len` (or `LANES`) only.
                unsafe {
                    let sums = part.as_mut_ptr().add(at);
                    acc.add(V::load_part(widths[g], sums))
                        .store_part(widths[g], sums);
                }
            }
        }
        G
    }

    /// The sums of [`Self::narrow_filter_chunks`] over the block's pixels: chunk `g`'s
    /// `widths[g]` window values (`WHOLE`: `LANES` each) times each output channel's
    /// `dy`. The caller makes sure that the CPU has `V`'s instruction set.
    #[inline(always)]
    fn narrow_filter_sums<V: F32s, const G: usize, const C: usize, const WHOLE: bool>(
        &self,
        data: &[f32],
        (rows, chunk): (Rows, usize),
        dy: &[f32],
        widths: [usize; G],
    ) -> [[V; C]; G] {
        let (len, lanes) = (self.window, V::LANES);
        let pixels = dy.len() / C;
        assert!(pixels <= self.pixels && (!WHOLE || (chunk + G) * lanes <= len));
        // SAFETY: the caller makes sure that the CPU has `V`'s instruction set.
        let mut acc = [[unsafe { V::zero() }; C]; G];
        for q in 0..pixels {
            let at = rows.first + q * rows.step + chunk * lanes;
            // SAFETY: the caller makes sure that the CPU has `V`'s instruction set.
            // `source` checked that the block's `len`-value window rows lie in `data`;
            // chunk `g` loads `LANES` values where `WHOLE` (below `len`, asserted), else its
            // `widths[g]` values below `len` only.
            unsafe {
                let mut b = [V::zero(); C];
                for (c, b) in b.iter_mut().enumerate() {
                    *b = V::splat(dy[q * C + c]);
                }
                for (g, acc) in acc.iter_mut().enumerate() {
                    let from = data.as_ptr().add(at + g * lanes);
                    let a = if WHOLE {
                        V::load(from)
                    } else {
                        V::load_part(widths[g], from)
                    };
                    for (acc, b) in acc.iter_mut().zip(&b) {
                        *acc = a.mul_add(*b, *acc);
                    }
                }
            }
        }
        acc
    }
}
