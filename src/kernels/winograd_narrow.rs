//! Winograd's minimal filtering for correlations with few result columns (at most
//! [`MAX_COLS`]), f32 on AVX-512, NHWC data: a DCGAN generator's RGB layer, whose
//! sub-pixel view has 4 stride phases x 3 channels = 12 columns.
//!
//! [`super::winograd`] vectorises its products over result columns, which fills 12 of a
//! register's 16 lanes here, and its transforms cost about as much as its products.
//! This engine vectorises the products and the output transform over 16 *tiles*
//! instead:
//! 1. the input transform runs on 16 channels at a time, for a group of 16 tiles, its
//!    transforms' coefficients constants in the code (one function per tile size);
//! 2. per point, each `16 tiles x 16 channels` block is transposed in registers to one
//!    register of tiles per channel;
//! 3. every result column is one register of 16 tiles: a sum over channels of those
//!    registers times the broadcast filter value, in registers;
//! 4. the output transform runs on those registers, the results are transposed back to
//!    one run per (tile, grid row, phase) and copied into the output rows.
//!
//! Lanes never mix: a tile's results do not depend on the other tiles of its group, and
//! each is a fixed sequence of operations, so results do not depend on how tiles are
//! grouped or split into tasks (nor on the thread count).

use super::lines::Lines;
use super::transpose;
use super::winograd::EDGE_WEIGHT;
use super::winograd::{correlate_edges, transform_filter, Scatter, Sliding, Tiling, Transforms};
use super::winograd::{MAX_ALPHA, MAX_TILE};
#[cfg(target_arch = "x86_64")]
use super::winograd_fixed::{input_2d, output_2d};
use rayon::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};

/// Most result columns (one register of broadcasts per channel and point).
pub(crate) const MAX_COLS: usize = 16;
/// Fewest input channels: below a register of channels the input transform is as slow
/// as the products.
pub(crate) const MIN_CHANNELS: usize = 16;
/// Most input channels: a thread's transformed inputs then take at most 36 points x
/// 4096 channels x 16 tiles (9 MiB).
pub(crate) const MAX_CHANNELS: usize = 4096;
/// Largest buffers (values) a thread keeps for the next call.
const KEPT_VALUES: usize = 1 << 18;
/// Tiles per group: the lanes of one register.
const GROUP: usize = 16;
/// Tasks a call is cut into at least, where it has the tile rows.
const MIN_TASKS: usize = 16;

/// Whether the engine takes the form at all: NHWC both ways, few result columns, enough
/// input channels, taps Winograd takes.
pub(crate) fn fits(s: &Sliding, sc: &Scatter) -> bool {
    !s.channels_first
        && !sc.channels_first
        && (1..=MAX_COLS).contains(&sc.cols())
        && (MIN_CHANNELS..=MAX_CHANNELS).contains(&s.in_channels)
        && (2..MAX_ALPHA).contains(&s.r)
        && s.grid_h > 0
        && s.grid_w > 0
}

/// The best tiling for this engine and its estimated cost relative to the direct
/// product count: products (full registers) plus the input transform and transposes,
/// about eight operations per transformed value, the output side, and the edges' direct
/// products.
pub(crate) fn best_tile(s: &Sliding, sc: &Scatter) -> Option<(Tiling, f64)> {
    let (k, n) = (s.in_channels as f64, sc.cols() as f64);
    let direct = (s.batch * s.grid_h * s.grid_w * s.r * s.r) as f64 * k * n;
    (2..=(MAX_ALPHA + 1 - s.r).min(MAX_TILE))
        .flat_map(|m| Tiling::candidates(s, m))
        .map(|tiling| {
            let m = tiling.m;
            let alpha = (m + s.r - 1) as f64;
            let tiles = (s.batch * tiling.tiles()) as f64;
            let tiles = (tiles / GROUP as f64).ceil() * GROUP as f64;
            let work = tiles * alpha * alpha * (k * n + 8.0 * k) + tiles * (m * m) as f64 * n * 8.0;
            let edges = (s.batch * tiling.edge_products(s, sc) * sc.channels) as f64 * k;
            (tiling, (work + EDGE_WEIGHT * edges) / direct)
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

/// How a call of the engine ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The engine does not apply (not f32, no AVX-512, a form [`fits`] rejects): nothing
    /// was written.
    Declined,
    /// Every output value was written.
    Done,
    /// The input (or the filter) holds a NaN or an infinity, which the transforms would
    /// spread to outputs it is not connected to: the output holds partial results, to be
    /// recomputed by another plan. (Found in the products: every input value reaches
    /// each transformed point's first column through a nonzero coefficient, and `x * 0`
    /// is NaN for infinite `x`. Sums that overflow are reported too.)
    NonFinite,
}

/// Computes the sliding correlation like [`super::winograd::correlate`], with `filter` as
/// `[r][r][in][cols]`, into a new vector: `out` is empty with room for the `len` values
/// of the scatter's output, which the engine fills without a zero-fill first. `out`
/// stays empty unless the outcome is [`Outcome::Done`].
pub(crate) fn correlate<T: 'static>(
    s: &Sliding,
    sc: &Scatter,
    tiling: Tiling,
    input: &[T],
    filter: &[T],
    (out, len): (&mut Vec<T>, usize),
) -> Outcome {
    #[cfg(target_arch = "x86_64")]
    if let (Some(input), Some(filter)) = (super::f32s(input), super::f32s(filter)) {
        let m = tiling.m;
        if fits(s, sc)
            && (2..=MAX_TILE).contains(&m)
            && m + s.r - 1 <= MAX_ALPHA
            && tiling.tiled_h <= s.grid_h
            && tiling.tiled_w <= s.grid_w
            && super::simd::avx512()
        {
            let mut outcome = Outcome::Declined;
            let engine = |out: &mut [std::mem::MaybeUninit<T>]| {
                if let Some(out) = super::uninit_f32s(out) {
                    // SAFETY: the view covers the room's values and borrows it mutably;
                    // the engine stores each value before reading it.
                    let out = unsafe {
                        std::slice::from_raw_parts_mut(out.as_mut_ptr().cast(), out.len())
                    };
                    outcome = correlate_f32(s, sc, tiling, input, filter, out);
                }
                outcome == Outcome::Done
            };
            let shape = [s.batch, sc.out_h, sc.out_w, sc.channels];
            // SAFETY: the engine stores all `len` values where it ends as `Done`. Every
            // output value `(oh, ow)` is result `((oh + shift_h) % stride_h, (ow +
            // shift_w) % stride_w)` of grid position `((oh + shift_h) / stride_h, (ow +
            // shift_w) / stride_w)`, inside the grid by the sub-pixel view's
            // construction. The tasks cover every tile of the tiled positions of every
            // image: tile row `th` owns the output rows of grid rows `m * th..m * th +
            // m`, and in each such row tile column `tw` writes output columns `stride_w *
            // m * tw - shift_w` up to the next tile's, cropped to the row, so the tiles
            // store the results of every tiled position (the tiles past an uncut grid's
            // edge land past the output). `correlate_edges` stores those of every
            // other position. (`correlate_f32` returns early only for an empty output.)
            unsafe { super::fill_new(out, (shape, len), engine) };
            return outcome;
        }
    }
    let _ = (s, sc, tiling, input, filter, out, len);
    Outcome::Declined
}

/// Tile rows per task: the fewest idle lanes in each task's last group, with at least
/// [`MIN_TASKS`] tasks where there are rows enough (ties: the larger band).
fn band(tiles_w: usize, tile_rows: usize) -> usize {
    let most = tile_rows.div_ceil(MIN_TASKS).max(1);
    (1..=most)
        .min_by_key(|&b| {
            let tiles = b * tiles_w;
            let idle = tiles.div_ceil(GROUP) * GROUP - tiles;
            (idle * 1000 / tiles.max(1), std::cmp::Reverse(b))
        })
        .unwrap_or(1)
}

/// Buffers one task reuses from group to group.
#[derive(Default)]
struct Scratch {
    /// Transformed inputs, `[point][block of 16 channels][tile][16]`.
    v: Lines<f32>,
    /// One pixel of zeros: the window pixels outside the input.
    zeros: Vec<f32>,
    /// Products, `[point][col][tile]`.
    products: Lines<f32>,
    /// Results, `[(grid row, phase, grid column, phase column)][tile]`.
    results: Lines<f32>,
    /// The same, `[tile][...]`.
    runs: Lines<f32>,
}

thread_local! {
    /// Each thread's buffers, kept from call to call where they are small (66 KiB for
    /// T5): made and zero-filled once rather than for every piece of work rayon hands a
    /// thread.
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
}

/// What every task shares.
struct Job<'a> {
    s: &'a Sliding,
    sc: &'a Scatter,
    input: &'a [f32],
    /// The transformed filter, `[point][in][cols]`, the input channels padded with zeros
    /// to whole blocks of 16 (whose transformed inputs are zeros too).
    u: Vec<f32>,
    tiles_h: usize,
    tiles_w: usize,
}

/// Tile rows `r0..r1` of the batch, and the output rows they own: slot `((row - r0) * m +
/// grid row in the tile) * stride_h + phase`.
type Task<'o> = (usize, usize, Vec<Option<&'o mut [f32]>>);

/// [`correlate`] in f32 with AVX-512 into `out`: tasks of whole tile rows, each in
/// groups of 16 tiles. Ends as [`Outcome::Done`] or [`Outcome::NonFinite`] (the tasks
/// then stop at their next group).
#[cfg(target_arch = "x86_64")]
fn correlate_f32(
    whole: &Sliding,
    sc: &Scatter,
    tiling: Tiling,
    input: &[f32],
    filter: &[f32],
    out: &mut [f32],
) -> Outcome {
    let (s, m) = (&tiling.tiled(whole), tiling.m);
    let tr = Transforms::new(m, s.r);
    let (k, cols) = (s.in_channels, sc.cols());
    if out.is_empty() {
        return Outcome::Done;
    }
    assert_eq!(input.len(), s.batch * s.in_h * s.in_w * k);
    let (tiles_h, tiles_w) = (s.grid_h.div_ceil(m), s.grid_w.div_ceil(m));
    let tile_rows = s.batch * tiles_h;
    let band = band(tiles_w, tile_rows);
    // The output's rows (NHWC: one slice each), handed to the tasks that write them.
    let mut rows: Vec<Option<&mut [f32]>> =
        out.chunks_mut(sc.out_w * sc.channels).map(Some).collect();
    let mut tasks: Vec<Task<'_>> = Vec::new();
    for b in 0..tile_rows.div_ceil(band) {
        let (r0, r1) = (b * band, ((b + 1) * band).min(tile_rows));
        let mut mine = Vec::with_capacity((r1 - r0) * m * sc.stride_h);
        for row in r0..r1 {
            let (image, th) = (row / tiles_h, row % tiles_h);
            for gh in th * m..th * m + m {
                for ph in 0..sc.stride_h {
                    let oh = (sc.stride_h * gh + ph).checked_sub(sc.shift_h);
                    let oh = oh.filter(|&oh| gh < s.grid_h && oh < sc.out_h);
                    mine.push(oh.and_then(|oh| rows[image * sc.out_h + oh].take()));
                }
            }
        }
        tasks.push((r0, r1, mine));
    }
    let job = Job {
        s,
        sc,
        input,
        u: pad_channels(transform_filter(&tr, s, cols, filter), (k, cols)),
        tiles_h,
        tiles_w,
    };
    let non_finite = AtomicBool::new(false);
    tasks.into_par_iter().for_each(|(r0, r1, mut mine)| {
        SCRATCH.with_borrow_mut(|scratch| {
            let tiles = (r1 - r0) * tiles_w;
            for g0 in (0..tiles).step_by(GROUP) {
                if non_finite.load(Ordering::Relaxed) {
                    return;
                }
                let group = (g0, GROUP.min(tiles - g0));
                macro_rules! sizes {
                    ($(($m:literal, $a:literal))*) => {
                        match (m, job.s.r + m - 1) {
                            // SAFETY: the CPU has AVX-512F, checked by `correlate`.
                            $(($m, $a) => unsafe {
                                job.group::<$m, $a>(scratch, r0, group, &mut mine)
                            },)*
                            _ => unreachable!("2 <= m <= MAX_TILE, alpha <= MAX_ALPHA"),
                        }
                    };
                }
                let finite = sizes!((2, 3)(2, 4)(2, 5)(2, 6)(3, 4)(3, 5)(3, 6)(4, 5)(4, 6));
                if !finite {
                    non_finite.store(true, Ordering::Relaxed);
                }
            }
            if scratch.v.capacity() > KEPT_VALUES {
                *scratch = Scratch::default();
            }
        })
    });
    if non_finite.into_inner() || !correlate_edges(whole, sc, tiling, input, filter, out) {
        Outcome::NonFinite
    } else {
        Outcome::Done
    }
}

/// `dst = src` for slices of equal length, by masked register loads and stores (no
/// library call for the short runs of a tile).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn copy(dst: &mut [f32], src: &[f32]) {
    use std::arch::x86_64::*;
    let n = dst.len().min(src.len());
    for start in (0..n).step_by(GROUP) {
        let mask = ((1u32 << (n - start).min(GROUP)) - 1) as u16;
        // SAFETY: the mask enables lanes `start..n` only, which both slices hold;
        // masked-off lanes are neither read nor written.
        unsafe {
            let v = _mm512_maskz_loadu_ps(mask, src.as_ptr().add(start));
            _mm512_mask_storeu_ps(dst.as_mut_ptr().add(start), mask, v);
        }
    }
}

/// `u` (`[point][k][cols]`) with each point's channels padded with zero rows to whole
/// blocks of 16.
fn pad_channels(u: Vec<f32>, (k, cols): (usize, usize)) -> Vec<f32> {
    let padded = k.div_ceil(GROUP) * GROUP;
    if padded == k {
        return u;
    }
    let mut out = vec![0.0; u.len() / k.max(1) * padded];
    for (point, values) in u.chunks(k * cols).enumerate() {
        out[point * padded * cols..][..k * cols].copy_from_slice(values);
    }
    out
}

/// `acc[c] += sum over the block's 16 channels j of channel j's register of tiles times
/// filter[j][c]`, the channels taken from the transpose's last round a pair (`j`,
/// `j + 8`) at a time and multiplied as they come: with all 16 live at once, 12
/// accumulators do not fit beside them and the compiler spills the channels through the
/// stack (16 stores and loads a block).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn multiply<const N: usize>(
    rounds: &[std::arch::x86_64::__m512; GROUP],
    filter: &[f32],
    acc: &mut [std::arch::x86_64::__m512; N],
) {
    use std::arch::x86_64::*;
    let filter = &filter[..GROUP * N];
    // Written out for each pair (a loop over `j` indexes `rounds` at run time, which
    // keeps it in memory).
    macro_rules! pairs {
        ($($j:literal)*) => {$(
            let (low, high) = transpose::last_round(rounds, $j);
            for (c, acc) in acc.iter_mut().enumerate() {
                *acc = _mm512_fmadd_ps(low, _mm512_set1_ps(filter[$j * N + c]), *acc);
            }
            for (c, acc) in acc.iter_mut().enumerate() {
                *acc = _mm512_fmadd_ps(high, _mm512_set1_ps(filter[($j + 8) * N + c]), *acc);
            }
        )*};
    }
    pairs!(0 1 2 3 4 5 6 7);
}

/// Per point, every result column of 16 tiles: `out[col][tile] = sum over channels of
/// v[tile][channel] * u[channel][col]`, `N` columns. `v` holds the point's blocks of 16
/// channels, `[block][tile][16]`; each is transposed in registers to one register of
/// tiles per channel, multiplied by the broadcast filter values, and summed in
/// registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn products<const N: usize>(v: &[f32], u: &[f32], k: usize, out: &mut [f32]) {
    use std::arch::x86_64::*;
    let blocks = k.div_ceil(GROUP);
    assert!(
        v.len() >= blocks * GROUP * GROUP
            && u.len() >= blocks * GROUP * N
            && out.len() >= N * GROUP
    );
    let mut acc = [_mm512_setzero_ps(); N];
    for block in 0..blocks {
        let mut rows = [_mm512_setzero_ps(); GROUP];
        for (g, row) in rows.iter_mut().enumerate() {
            // SAFETY: the assert above puts the block's 16 rows of 16 values in `v`.
            *row = unsafe { _mm512_loadu_ps(v.as_ptr().add((block * GROUP + g) * GROUP)) };
        }
        let rounds = transpose::three_rounds(rows);
        multiply(&rounds, &u[block * GROUP * N..][..GROUP * N], &mut acc);
    }
    for (c, acc) in acc.iter().enumerate() {
        // SAFETY: `out` holds `N * 16` values (the assert above), and `c < N`.
        unsafe { _mm512_storeu_ps(out.as_mut_ptr().add(c * GROUP), *acc) };
    }
}

impl Job<'_> {
    /// Tiles `g0..g0 + count` of the task starting at tile row `r0`, with F(M, r) on `A`
    /// points: their results, into the task's output rows `mine`. False, having written
    /// nothing, where a product is not finite (see [`Outcome::NonFinite`]).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn group<const M: usize, const A: usize>(
        &self,
        scratch: &mut Scratch,
        r0: usize,
        (g0, count): (usize, usize),
        mine: &mut [Option<&mut [f32]>],
    ) -> bool {
        use std::arch::x86_64::*;
        let (s, sc) = (self.s, self.sc);
        let (k, cols) = (s.in_channels, sc.cols());
        const { assert!(M >= 2 && A <= MAX_ALPHA) };
        let points = A * A;
        let zero = _mm512_setzero_ps();
        let q = M * M * cols;
        let blocks = k.div_ceil(GROUP);
        // Points a cache line more than their blocks apart: at a multiple of 4 KiB (k = 64)
        // the stores of one tile's points all fall in one L1 set.
        let point_stride = blocks * GROUP * GROUP + GROUP;
        scratch.v.resize(points * point_stride);
        scratch.products.resize(points * cols * GROUP);
        scratch.results.resize(q * GROUP);
        scratch.runs.resize(GROUP * q);
        // (Sliced once: a view made again at each access reloads its bounds.)
        let (v, sums): (&mut [f32], &mut [f32]) = (&mut scratch.v, &mut scratch.products);
        let (results, runs): (&mut [f32], &mut [f32]) = (&mut scratch.results, &mut scratch.runs);

        // Where each tile's window pixels start: in the input, or at a row of zeros
        // (outside the input, and the missing tiles of the last group).
        scratch.zeros.resize(k, 0.0);
        let mut windows = [[[scratch.zeros.as_ptr(); A]; A]; GROUP];
        // Tiles in order: (tile row of the task, tile column), counted on (no divisions
        // per tile); the image and tile row within it change with the row only.
        let (mut local_row, mut tw) = (g0 / self.tiles_w, g0 % self.tiles_w);
        let (mut image, mut th) = (
            (r0 + local_row) / self.tiles_h,
            (r0 + local_row) % self.tiles_h,
        );
        for window in windows.iter_mut().take(count) {
            let iw0 = s.origin_w + (tw * M) as isize;
            for (a, line) in window.iter_mut().enumerate() {
                let ih = s.origin_h + (th * M + a) as isize;
                if ih < 0 || ih as usize >= s.in_h {
                    continue;
                }
                let input_row =
                    &self.input[(image * s.in_h + ih as usize) * s.in_w * k..][..s.in_w * k];
                if iw0 >= 0 && iw0 as usize + A <= s.in_w {
                    // The whole window row inside the input: one bounds check.
                    let run = &input_row[iw0 as usize * k..][..A * k];
                    for (pixel, values) in line.iter_mut().zip(run.chunks_exact(k)) {
                        *pixel = values.as_ptr();
                    }
                    continue;
                }
                for (b, pixel) in line.iter_mut().enumerate() {
                    let iw = iw0 + b as isize;
                    if iw >= 0 && (iw as usize) < s.in_w {
                        *pixel = input_row[iw as usize * k..][..k].as_ptr();
                    }
                }
            }
            tw += 1;
            if tw == self.tiles_w {
                (tw, local_row) = (0, local_row + 1);
                th += 1;
                if th == self.tiles_h {
                    (th, image) = (0, image + 1);
                }
            }
        }

        // 1. Input transform, 16 channels of 16 tiles at a time.
        let v_start = v.as_mut_ptr();
        for (g, window) in windows.iter().enumerate() {
            for c0 in (0..k).step_by(GROUP) {
                let mask = ((1u32 << (k - c0).min(GROUP)) - 1) as u16;
                let mut d = [[zero; A]; A];
                for (line, starts) in d.iter_mut().zip(window) {
                    for (lane, &start) in line.iter_mut().zip(starts) {
                        // SAFETY: every window pointer starts `k` values (checked by the
                        // slicing above, or the zero row's length); the mask enables
                        // channels `c0..k` only.
                        *lane = unsafe { _mm512_maskz_loadu_ps(mask, start.add(c0)) };
                    }
                }
                for (xi, values) in input_2d(&d).iter().enumerate() {
                    for (nu, value) in values.iter().enumerate() {
                        let at = (xi * A + nu) * point_stride + (c0 + g) * GROUP;
                        // SAFETY: `v` holds `points` runs of `point_stride >= blocks * 256`
                        // values, and `(c0 + g) * 16 + 16 <= blocks * 256`.
                        unsafe { _mm512_storeu_ps(v_start.add(at), *value) };
                    }
                }
            }
        }

        // 2-3. Products, one register of tiles per column.
        for point in 0..points {
            let v = &v[point * point_stride..][..blocks * GROUP * GROUP];
            let u = &self.u[point * blocks * GROUP * cols..][..blocks * GROUP * cols];
            let out = &mut sums[point * cols * GROUP..][..cols * GROUP];
            macro_rules! columns {
                ($($n:literal)*) => {
                    match cols {
                        $($n => products::<$n>(v, u, k, out),)*
                        _ => unreachable!("at most MAX_COLS columns"),
                    }
                };
            }
            columns!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
        }
        // Every transformed input value reaches its point's first column: `x * 0` is NaN
        // there for any infinite or NaN `x`.
        let mut check = zero;
        for point in 0..points {
            let first = &sums[point * cols * GROUP..][..GROUP];
            // SAFETY: `first` holds 16 values.
            let value = unsafe { _mm512_loadu_ps(first.as_ptr()) };
            check = _mm512_fmadd_ps(value, zero, check);
        }
        if _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(check, check) != 0 {
            return false;
        }

        // 4. Output transform per column; results by (grid row, phase, grid column,
        // phase column), so that each (tile, grid row, phase) is one run.
        let phase_cols = sc.stride_w * sc.channels;
        for col in 0..cols {
            let (ph, rest) = (col / phase_cols, col % phase_cols);
            let mut point_products = [[zero; A]; A];
            for (xi, line) in point_products.iter_mut().enumerate() {
                for (nu, value) in line.iter_mut().enumerate() {
                    let at = ((xi * A + nu) * cols + col) * GROUP;
                    // SAFETY: `sums` holds `points * cols` registers of 16 values.
                    *value = unsafe { _mm512_loadu_ps(sums[at..][..GROUP].as_ptr()) };
                }
            }
            for (a, y) in output_2d::<M, A>(&point_products).iter().enumerate() {
                for (b, y) in y.iter().enumerate() {
                    let index = ((a * sc.stride_h + ph) * M + b) * phase_cols + rest;
                    let dst = &mut results[index * GROUP..][..GROUP];
                    // SAFETY: `dst` holds 16 values.
                    unsafe { _mm512_storeu_ps(dst.as_mut_ptr(), *y) };
                }
            }
        }
        // `runs[tile][index] = results[index][tile]`: q / 16 whole blocks (q = M * M *
        // stride_h * stride_w * channels), in registers, the last one masked (written
        // out: `transpose::strided`, which takes the same blocks here, made T5 2.4% slower).
        for i0 in (0..q).step_by(GROUP) {
            let height = GROUP.min(q - i0);
            let mut rows = [zero; GROUP];
            for (i, row) in rows.iter_mut().enumerate().take(height) {
                let src = &results[(i0 + i) * GROUP..][..GROUP];
                // SAFETY: `src` holds 16 values.
                *row = unsafe { _mm512_loadu_ps(src.as_ptr()) };
            }
            let mask = ((1u32 << height) - 1) as u16;
            for (tile, column) in transpose::registers(rows).iter().enumerate() {
                let dst = &mut runs[tile * q + i0..][..height];
                // SAFETY: the mask enables the first `height` lanes, which `dst` holds;
                // masked-off lanes are not written.
                unsafe { _mm512_mask_storeu_ps(dst.as_mut_ptr(), mask, *column) };
            }
        }

        // 5. Each (tile, grid row, phase) run into its output row, cropped to it.
        let run = M * phase_cols;
        let (mut local_row, mut tw) = (g0 / self.tiles_w, g0 % self.tiles_w);
        for g in 0..count {
            let gw0 = tw * M;
            let slots = local_row * M * sc.stride_h;
            tw += 1;
            if tw == self.tiles_w {
                (tw, local_row) = (0, local_row + 1);
            }
            // (Grid columns past `grid_w` land past the output: cropped with it.)
            let span = M * sc.stride_w;
            let first = sc.stride_w * gw0;
            let t0 = sc.shift_w.saturating_sub(first);
            let t1 = span.min((sc.out_w + sc.shift_w).saturating_sub(first));
            if t0 >= t1 {
                continue;
            }
            for a in 0..M {
                for ph in 0..sc.stride_h {
                    let slot = slots + a * sc.stride_h + ph;
                    let Some(row) = mine[slot].as_deref_mut() else {
                        continue;
                    };
                    let src = &runs[g * q + (a * sc.stride_h + ph) * run..][..run];
                    let c = sc.channels;
                    let dst = &mut row[(first + t0 - sc.shift_w) * c..][..(t1 - t0) * c];
                    copy(dst, &src[t0 * c..t1 * c]);
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::winograd::{ints, max_error, sliding_sums, test_views};
    use super::*;

    /// Every tiling the engine takes gives the sums of the definition to f32 rounding
    /// (on AVX-512 machines; elsewhere it declines, which is checked too).
    #[test]
    fn every_tiling_equals_the_sums() {
        let mut checked = 0;
        for (s, sc) in test_views(20, 3).into_iter().chain(test_views(17, 1)) {
            if sc.cols() > MAX_COLS {
                continue;
            }
            let input = ints(s.batch * s.in_h * s.in_w * s.in_channels, 3);
            let filter = ints(s.r * s.r * s.in_channels * sc.cols(), 4);
            let want = sliding_sums(&s, &sc, &input, &filter);
            let (input, filter): (Vec<f32>, Vec<f32>) = (
                input.iter().map(|&v| v as f32).collect(),
                filter.iter().map(|&v| v as f32).collect(),
            );
            for m in 2..=MAX_TILE.min(MAX_ALPHA + 1 - s.r) {
                for tiling in Tiling::candidates(&s, m) {
                    // Room holding NaNs, so that a value the engine leaves unwritten shows.
                    let mut out = vec![f32::NAN; want.len()];
                    out.clear();
                    let outcome =
                        correlate(&s, &sc, tiling, &input, &filter, (&mut out, want.len()));
                    if !super::super::simd::avx512() {
                        assert_eq!(outcome, Outcome::Declined);
                        continue;
                    }
                    assert_eq!(outcome, Outcome::Done, "{tiling:?}");
                    let scale = want.iter().fold(1.0f64, |a, b| a.max(b.abs()));
                    let error = max_error(out.iter().map(|&v| f64::from(v)), &want);
                    assert!(error <= 1e-5 * scale, "{tiling:?} {s:?} {sc:?}: {error}");
                    checked += 1;
                }
            }
        }
        assert!(
            checked >= 10 || !super::super::simd::avx512(),
            "only {checked} tilings"
        );
    }
}
