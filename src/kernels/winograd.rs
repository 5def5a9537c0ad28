//! Winograd's minimal filtering F(m x m, r x r) for stride-1, undilated correlations,
//! with the results scattered to an output grid (so one engine serves the forward
//! direction and, through the sub-pixel view, the transposed one).
//!
//! In one dimension, `y[i] = sum_k d[i + k] g[k]` for `m` outputs and `r` taps is
//! `y = AT [(BT d) . (G g)]` with `alpha = m + r - 1` multiplications instead of `m * r`.
//! The matrices come from the Toom-Cook interpolation of a polynomial product at the
//! points `0, 1, -1, 2, -2, 1/2, -1/2` and infinity; in two dimensions each tile costs
//! `alpha^2` products per (input, output) channel pair instead of `m^2 r^2`, and those
//! products are `alpha^2` independent GEMMs over channels. In f32 (AVX-512, or AVX2
//! with FMA) those run in [`super::panels`]' register-blocked product, the filter
//! transformed (on AVX-512 straight) into its packed panels once per call (the `gemm`
//! crate packs its right-hand side on every call, once per task and point: C1 0.93 -> 0.83 ms, T4 4.86 -> 4.63 ms), and the
//! input and output transforms run with constant coefficients in registers
//! ([`super::winograd_fixed`]) instead of the matrices' sparse rows through memory
//! (C1 0.84 -> 0.63 ms, T4 4.41 -> 3.63, C2 4.35 -> 3.53). A grid whose last tiles
//! would be mostly empty is cut to whole tiles ([`Tiling`]), the positions past them
//! computed directly ([`correlate_edges`]): DCGAN's k4 s2 grids have 2^n + 1 positions
//! (T4 7.5 -> 6.0-6.3 ms at one thread).

use super::gemm::{gemm, Mat, MatMut};
use super::lines::Lines;
use super::panels::{self, Packed, Panel, PANEL_COLS};
use super::simd::{self, F32s};
use super::stream;
use super::transpose;
use super::winograd_fixed::{input_2d_in, output_2d_in};
use super::{f32s, f32s_mut};
use crate::element::Element;
use rayon::prelude::*;

/// Interpolation points (infinity is always the last point).
pub(crate) const POINTS: [f64; 7] = [0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5];
/// Largest tile (`alpha = m + r - 1`) convt uses: beyond 6 points f32 loses accuracy.
pub(crate) const MAX_ALPHA: usize = 6;
/// Largest output tile `m`: the output transform's entries grow as 2^(m-1), and so do
/// the rounding errors (F(5, 2) loses twice the digits of F(4, 3)).
pub(crate) const MAX_TILE: usize = 4;
/// Bytes of transformed tiles and products one task holds at a time.
const TASK_BUDGET_BYTES: usize = 1 << 20;
/// Tiles a task gathers at least, where the image has them, so GEMMs are not too thin.
const MIN_TASK_TILES: usize = 24;
/// Tasks a call is cut into at least, where it has the tile rows, so threads get even
/// shares (7 tasks on 2 threads leave one idle for a seventh of the time: C1's 14 tile
/// rows in bands of one instead of two, 0.79 -> 0.73 ms at 2 threads).
const MIN_TASKS: usize = 16;

/// The three matrices of F(m, r), row-major, in f64.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Transforms {
    pub m: usize,
    pub r: usize,
    pub alpha: usize,
    /// `m x alpha`: products to outputs.
    pub at: Vec<f64>,
    /// `alpha x r`: filter to products.
    pub g: Vec<f64>,
    /// `alpha x alpha`: input tile to products.
    pub bt: Vec<f64>,
}

/// Coefficients of `prod (x - root)`, lowest power first.
fn poly_from_roots(roots: impl Iterator<Item = f64>) -> Vec<f64> {
    let mut c = vec![1.0];
    for root in roots {
        let mut next = vec![0.0; c.len() + 1];
        for (i, &v) in c.iter().enumerate() {
            next[i + 1] += v;
            next[i] -= root * v;
        }
        c = next;
    }
    c
}

impl Transforms {
    /// F(m, r); `m + r - 1 <= POINTS.len() + 1`.
    pub fn new(m: usize, r: usize) -> Transforms {
        let alpha = m + r - 1;
        assert!(m >= 1 && r >= 1 && alpha <= POINTS.len() + 1);
        let points = &POINTS[..alpha - 1];
        let finite = alpha - 1;
        let mut at = vec![0.0; m * alpha];
        let mut g = vec![0.0; alpha * r];
        let mut bt = vec![0.0; alpha * alpha];
        for (j, &a) in points.iter().enumerate() {
            for i in 0..m {
                at[i * alpha + j] = a.powi(i as i32);
            }
            // Row j of BT: the Lagrange basis polynomial of point j, times its denominator,
            // which moves to G.
            let others = || points.iter().enumerate().filter(|&(l, _)| l != j);
            let denominator: f64 = others().map(|(_, &b)| a - b).product();
            for (t, c) in poly_from_roots(others().map(|(_, &b)| b))
                .into_iter()
                .enumerate()
            {
                bt[j * alpha + t] = c;
            }
            for k in 0..r {
                g[j * r + k] = a.powi(k as i32) / denominator;
            }
        }
        at[(m - 1) * alpha + finite] = 1.0;
        g[finite * r + r - 1] = 1.0;
        for (t, c) in poly_from_roots(points.iter().copied())
            .into_iter()
            .enumerate()
        {
            bt[finite * alpha + t] = c;
        }
        Transforms {
            m,
            r,
            alpha,
            at,
            g,
            bt,
        }
    }
}

/// A stride-1 correlation of an NHWC (or, with `channels_first`, NCHW) `input`
/// (`in_channels` = the GEMMs' inner size) with an `r x r` filter
/// `[r][r][in_channels][cols]`, evaluated at every position of a `grid_h x grid_w` grid:
/// position `(gh, gw)` reads input rows `origin_h + gh + 0..r`, columns likewise; reads
/// outside the input are zeros.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sliding {
    pub batch: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub in_channels: usize,
    pub grid_h: usize,
    pub grid_w: usize,
    pub origin_h: isize,
    pub origin_w: isize,
    pub r: usize,
    /// The input is NCHW (channel planes) instead of NHWC.
    pub channels_first: bool,
}

impl Sliding {
    /// Where channel 0 of input pixel `(image, ih, iw)` lies, and the distance from one
    /// channel to the next.
    fn pixel(&self, image: usize, ih: usize, iw: usize) -> (usize, usize) {
        let plane = self.in_h * self.in_w;
        if self.channels_first {
            (
                image * self.in_channels * plane + ih * self.in_w + iw,
                plane,
            )
        } else {
            ((image * plane + ih * self.in_w + iw) * self.in_channels, 1)
        }
    }

    /// Copies `dst.len()` channels of the input pixel at `(start, step)` from
    /// [`Sliding::pixel`].
    fn gather<T: Copy>(input: &[T], (start, step): (usize, usize), dst: &mut [T]) {
        if step == 1 {
            dst.copy_from_slice(&input[start..][..dst.len()]);
        } else {
            for (i, d) in dst.iter_mut().enumerate() {
                *d = input[start + i * step];
            }
        }
    }

    /// Input row `ih` of `image` with its pixels' channels contiguous, written to `dst`
    /// (`in_w * in_channels`) by blocked transposes from the NCHW planes.
    fn row_channels_last<T: Copy + Default + 'static>(
        &self,
        input: &[T],
        (image, ih): (usize, usize),
        dst: &mut [T],
    ) {
        let plane = self.in_h * self.in_w;
        let start = image * self.in_channels * plane + ih * self.in_w;
        transpose::strided(
            &input[start..],
            plane,
            (self.in_channels, self.in_w),
            dst,
            self.in_channels,
        );
    }
}

/// One output row `(image, oh)` of a [`Scatter`]: the whole NHWC row, or (NCHW) one
/// `out_w` line per channel.
pub(crate) type Row<'o, T> = Vec<&'o mut [T]>;

/// Where a grid position's `stride_h * stride_w * channels` results go: result
/// `(ph, pw, c)` of grid position `(gh, gw)` is output
/// `[n, stride_h*gh + ph - shift_h, stride_w*gw + pw - shift_w, c]` when inside the
/// `out_h x out_w` output (NHWC with `channels` channels). The forward direction has
/// strides 1 and shifts 0; the transposed one scatters its stride phases. With
/// `channels_first` the output is NCHW instead.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Scatter {
    pub stride_h: usize,
    pub stride_w: usize,
    pub shift_h: usize,
    pub shift_w: usize,
    pub out_h: usize,
    pub out_w: usize,
    pub channels: usize,
    /// The output is NCHW (channel planes) instead of NHWC.
    pub channels_first: bool,
}

impl Scatter {
    /// Every output row of `out` (`(image, oh)` in order), each to be taken by the task
    /// that writes it. `out` must not be empty.
    pub fn rows<'o, T>(&self, out: &'o mut [T]) -> Vec<Option<Row<'o, T>>> {
        let line = self.out_w.max(1);
        if !self.channels_first {
            return out
                .chunks_mut(line * self.channels)
                .map(|row| Some(vec![row]))
                .collect();
        }
        let plane = line * self.out_h.max(1);
        let mut rows = Vec::new();
        for image in out.chunks_mut(plane * self.channels) {
            let mut lines: Vec<_> = image
                .chunks_mut(plane)
                .map(|p| p.chunks_mut(line))
                .collect();
            for _ in 0..self.out_h {
                rows.push(Some(lines.iter_mut().filter_map(Iterator::next).collect()));
            }
        }
        rows
    }

    /// Result columns of one grid position: `(ph, pw, c)`.
    pub fn cols(&self) -> usize {
        self.stride_h * self.stride_w * self.channels
    }

    /// The output row that grid row `gh` (of `grid_h`) and height phase `ph` of `image`
    /// land on, taken out of `rows` (every output row of the batch), when it exists.
    pub fn take_row<'o, T>(
        &self,
        rows: &mut [Option<Row<'o, T>>],
        image: usize,
        (gh, grid_h): (usize, usize),
        ph: usize,
    ) -> Option<Row<'o, T>> {
        let oh = (self.stride_h * gh + ph).checked_sub(self.shift_h)?;
        if gh >= grid_h || oh >= self.out_h {
            return None;
        }
        rows[image * self.out_h + oh].take()
    }

    /// Writes one grid column's results for one height phase, `values` = `(pw, c)`, into
    /// its NHWC output row, dropping what falls outside the output; with `streaming`, by
    /// [`stream::copy`] (the caller then calls [`stream::fence`]).
    pub fn write<T: Copy>(&self, row: &mut [&mut [T]], gw: usize, values: &[T], streaming: bool) {
        // The phases land on consecutive output columns: one copy of those inside.
        let c = self.channels;
        let first = self.stride_w * gw;
        let pw0 = self.shift_w.saturating_sub(first).min(self.stride_w);
        let pw1 = (self.out_w + self.shift_w)
            .saturating_sub(first)
            .min(self.stride_w);
        if pw0 >= pw1 {
            return;
        }
        let ow0 = first + pw0 - self.shift_w;
        let Some(row) = row.first_mut() else {
            return;
        };
        let dst = &mut row[ow0 * c..][..(pw1 - pw0) * c];
        let src = &values[pw0 * c..][..(pw1 - pw0) * c];
        if streaming {
            stream::copy(dst, src);
        } else {
            dst.copy_from_slice(src);
        }
    }

    /// Writes a whole grid row's results for one height phase, `values` = `(gw, pw, c)`
    /// for every grid column (`grid_w`), into its output row in either layout: the grid
    /// columns' phases are consecutive output columns from `-shift_w` on. NHWC rows take
    /// one copy, NCHW rows one line per channel by blocked transposes. With `streaming`
    /// (a staging buffer), the rows are written by [`stream::copy`] (the caller then calls
    /// [`stream::fence`]), NCHW lines transposed into the buffer first.
    pub fn write_row<T: Copy + Default + 'static>(
        &self,
        row: &mut [&mut [T]],
        grid_w: usize,
        values: &[T],
        streaming: Option<&mut Vec<T>>,
    ) {
        let c = self.channels;
        let count = (grid_w * self.stride_w)
            .saturating_sub(self.shift_w)
            .min(self.out_w);
        let src = &values[self.shift_w * c..];
        match (self.channels_first, streaming) {
            (true, Some(staging)) => {
                staging.resize(count * c, T::default());
                transpose::strided(src, c, (count, c), staging, count);
                for (line, values) in row.iter_mut().zip(staging.chunks(count.max(1))) {
                    stream::copy(&mut line[..count], values);
                }
            }
            (true, None) => transpose::into_lines(src, c, count, row, 0),
            (false, streaming) => {
                if let Some(row) = row.first_mut() {
                    let (dst, src) = (&mut row[..count * c], &src[..count * c]);
                    match streaming {
                        Some(_) => stream::copy(dst, src),
                        None => dst.copy_from_slice(src),
                    }
                }
            }
        }
    }
}

/// How a grid is cut into `m x m` tiles: tiles over its first `tiled_h x tiled_w`
/// positions, the rest (the last rows and columns of the grid) computed directly by
/// [`correlate_edges`]. Either the whole grid (its last tiles partly past it), or an
/// axis cut to whole tiles where the positions past them are cheaper direct: a
/// transposed convolution's grid often has one position more than a multiple of the
/// tile (DCGAN's k4 s2 layers: 17 and 33), whose phases and taps lie mostly outside
/// the output and the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tiling {
    pub m: usize,
    pub tiled_h: usize,
    pub tiled_w: usize,
}

impl Tiling {
    /// The tilings worth costing for tiles of `m`: the whole grid, and each axis cut to
    /// whole tiles (where that leaves at least one tile).
    pub fn candidates(s: &Sliding, m: usize) -> Vec<Tiling> {
        let cut = |grid: usize| {
            let whole = grid / m * m;
            if whole > 0 && whole < grid {
                vec![grid, whole]
            } else {
                vec![grid]
            }
        };
        let mut all = Vec::new();
        for &tiled_h in &cut(s.grid_h) {
            for &tiled_w in &cut(s.grid_w) {
                all.push(Tiling {
                    m,
                    tiled_h,
                    tiled_w,
                });
            }
        }
        all
    }

    /// The sliding correlation of the tiled positions only.
    pub fn tiled(&self, s: &Sliding) -> Sliding {
        Sliding {
            grid_h: self.tiled_h,
            grid_w: self.tiled_w,
            ..*s
        }
    }

    /// Tiles over the tiled positions.
    pub fn tiles(&self) -> usize {
        self.tiled_h.div_ceil(self.m) * self.tiled_w.div_ceil(self.m)
    }

    /// Products of the direct computation of the positions past the tiles (per image,
    /// in units of `in_channels x channels`).
    pub fn edge_products(&self, s: &Sliding, sc: &Scatter) -> usize {
        edges(s, sc, *self)
            .iter()
            .map(|e| e.positions() / s.batch.max(1) * e.taps() * e.phases())
            .sum()
    }
}

/// Direct products of the edges weigh this many tile products in the cost estimates:
/// small GEMMs on gathered windows.
pub(crate) const EDGE_WEIGHT: f64 = 2.0;

/// Estimated cost of F(m, r) on a problem relative to the plain product count, and the
/// best tiling: GEMM products plus the transforms (weighted as slower than GEMM work),
/// plus the direct products of the edges a tiling leaves.
pub(crate) fn best_tile(s: &Sliding, sc: &Scatter) -> Option<(Tiling, f64)> {
    let (k, n) = (s.in_channels as f64, sc.cols() as f64);
    let direct = (s.grid_h * s.grid_w * s.r * s.r) as f64 * k * n;
    (2..=(MAX_ALPHA + 1 - s.r).min(MAX_TILE))
        .flat_map(|m| Tiling::candidates(s, m))
        .map(|tiling| {
            let m = tiling.m;
            let alpha = (m + s.r - 1) as f64;
            let tiles = tiling.tiles() as f64;
            let mf = m as f64;
            let products = tiles * alpha * alpha * k * n;
            let transforms =
                tiles * (2.0 * alpha.powi(3) * k + (alpha * alpha * mf + alpha * mf * mf) * n);
            let edges = EDGE_WEIGHT * (tiling.edge_products(s, sc) * sc.channels) as f64 * k;
            (tiling, (products + 4.0 * transforms + edges) / direct)
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

/// The valid range of `j` in `0..r` where `origin + g + j` lies in `0..len`.
fn inside(origin: isize, g: usize, r: usize, len: usize) -> (usize, usize) {
    let at = origin + g as isize;
    let first = (-at).clamp(0, r as isize) as usize;
    let last = (len as isize - at).clamp(first as isize, r as isize) as usize;
    (first, last)
}

/// The phases `ph` in `0..stride` whose output `stride * g + ph - shift` lies in
/// `0..len`.
fn landing(stride: usize, shift: usize, g: usize, len: usize) -> (usize, usize) {
    let first = shift.saturating_sub(stride * g).min(stride);
    let last = (len + shift)
        .saturating_sub(stride * g)
        .clamp(first, stride);
    (first, last)
}

/// Grid positions computed directly, all with the same window taps and phases: the
/// taps `(jh, jw)` in the two ranges (the others read only padding at these positions,
/// or past the input on the edge's axis) and the phases `(ph, pw)` likewise (the
/// others land outside the output).
struct Edge {
    /// Grid rows `gh` and columns `gw` (ranges), of every image.
    rows: (usize, usize),
    cols: (usize, usize),
    batch: usize,
    taps_h: (usize, usize),
    taps_w: (usize, usize),
    phases_h: (usize, usize),
    phases_w: (usize, usize),
}

impl Edge {
    fn positions(&self) -> usize {
        self.batch * (self.rows.1 - self.rows.0) * (self.cols.1 - self.cols.0)
    }

    /// Position `index` (images, then rows, then columns): `(image, gh, gw)`.
    fn position(&self, index: usize) -> (usize, usize, usize) {
        let (h, w) = (self.rows.1 - self.rows.0, self.cols.1 - self.cols.0);
        (
            index / (h * w),
            self.rows.0 + index / w % h,
            self.cols.0 + index % w,
        )
    }

    fn taps(&self) -> usize {
        (self.taps_h.1 - self.taps_h.0) * (self.taps_w.1 - self.taps_w.0)
    }

    fn phases(&self) -> usize {
        (self.phases_h.1 - self.phases_h.0) * (self.phases_w.1 - self.phases_w.0)
    }
}

/// The positions a tiling leaves: each grid row past the tiled rows (every column),
/// then each grid column past the tiled columns (the tiled rows), with the taps and
/// phases along the edge's own axis that reach the input and the output. (Along the
/// other axis all taps and phases are kept; those outside read zeros or are dropped.)
fn edges(s: &Sliding, sc: &Scatter, tiling: Tiling) -> Vec<Edge> {
    let mut all = Vec::new();
    for gh in tiling.tiled_h..s.grid_h {
        all.push(Edge {
            rows: (gh, gh + 1),
            cols: (0, s.grid_w),
            batch: s.batch,
            taps_h: inside(s.origin_h, gh, s.r, s.in_h),
            taps_w: (0, s.r),
            phases_h: landing(sc.stride_h, sc.shift_h, gh, sc.out_h),
            phases_w: (0, sc.stride_w),
        });
    }
    for gw in tiling.tiled_w..s.grid_w {
        all.push(Edge {
            rows: (0, tiling.tiled_h),
            cols: (gw, gw + 1),
            batch: s.batch,
            taps_h: (0, s.r),
            taps_w: inside(s.origin_w, gw, s.r, s.in_w),
            phases_h: (0, sc.stride_h),
            phases_w: landing(sc.stride_w, sc.shift_w, gw, sc.out_w),
        });
    }
    // (Edges without taps inside the input still own outputs: zeros.)
    all.retain(|e| e.phases() > 0 && e.positions() > 0);
    all
}

/// Positions of an edge one product takes: a fixed count, so results do not depend on
/// the thread count.
const EDGE_CHUNK: usize = 64;

/// Computes, directly, the grid positions `tiling` leaves to its edges (filter
/// `[r][r][in_channels][cols]`), into `out` (NHWC or NCHW as `sc` says), storing every
/// output value they own without reading `out`: per edge, the products of the taps and
/// phases that remain ([`edge_by_lines`] in f32 with few result columns, else
/// [`edge_by_gemm`]), then their results scattered to the output. Returns false where a
/// result is not finite (NaN or infinite inputs, or overflow).
pub(crate) fn correlate_edges<T: Element>(
    s: &Sliding,
    sc: &Scatter,
    tiling: Tiling,
    input: &[T],
    filter: &[T],
    out: &mut [T],
) -> bool {
    let (k, cols, c) = (s.in_channels, sc.cols(), sc.channels);
    let mut finite = true;
    for edge in edges(s, sc, tiling) {
        let (jh, jw, ph, pw) = (edge.taps_h, edge.taps_w, edge.phases_h, edge.phases_w);
        let kdim = edge.taps() * k;
        let phase_cols = (pw.1 - pw.0) * c;
        let ncols = (ph.1 - ph.0) * phase_cols;
        // The filter's rows of these taps and columns of these phases.
        let mut compact = Vec::with_capacity(kdim * ncols);
        for a in jh.0..jh.1 {
            for b in jw.0..jw.1 {
                for i in 0..k {
                    let row = &filter[((a * s.r + b) * k + i) * cols..][..cols];
                    for p in ph.0..ph.1 {
                        let start = (p * sc.stride_w + pw.0) * c;
                        compact.extend_from_slice(&row[start..start + phase_cols]);
                    }
                }
            }
        }
        let positions = edge.positions();
        let mut results = vec![T::zero(); positions * ncols];
        if kdim > 0 && !edge_by_lines(s, &edge, input, (&compact, ncols), &mut results) {
            edge_by_gemm(s, &edge, input, (&compact, ncols), &mut results);
        }
        for (at, values) in results.chunks(ncols.max(1)).enumerate() {
            let (image, gh, gw) = edge.position(at);
            for p in ph.0..ph.1 {
                let Some(oh) = (sc.stride_h * gh + p).checked_sub(sc.shift_h) else {
                    continue;
                };
                for q in pw.0..pw.1 {
                    let Some(ow) = (sc.stride_w * gw + q).checked_sub(sc.shift_w) else {
                        continue;
                    };
                    if oh >= sc.out_h || ow >= sc.out_w {
                        continue;
                    }
                    let src = &values[(p - ph.0) * phase_cols + (q - pw.0) * c..][..c];
                    finite &= src.iter().all(|v| v.is_finite());
                    if sc.channels_first {
                        let plane = sc.out_h * sc.out_w;
                        let first = image * c * plane + oh * sc.out_w + ow;
                        for (i, &v) in src.iter().enumerate() {
                            out[first + i * plane] = v;
                        }
                    } else {
                        let first = ((image * sc.out_h + oh) * sc.out_w + ow) * c;
                        out[first..first + c].copy_from_slice(src);
                    }
                }
            }
        }
    }
    finite
}

/// An edge's products by small GEMMs on gathered windows, in fixed chunks of
/// [`EDGE_CHUNK`] positions (each thread reusing its windows): `results[position][col]`.
fn edge_by_gemm<T: Element>(
    s: &Sliding,
    edge: &Edge,
    input: &[T],
    (compact, ncols): (&[T], usize),
    results: &mut [T],
) {
    let (jh, jw, k) = (edge.taps_h, edge.taps_w, s.in_channels);
    let (kdim, positions) = (edge.taps() * k, edge.positions());
    results
        .par_chunks_mut(EDGE_CHUNK * ncols)
        .enumerate()
        .for_each_init(Vec::new, |windows, (index, result)| {
            let chunk = index * EDGE_CHUNK..(index * EDGE_CHUNK + EDGE_CHUNK).min(positions);
            windows.resize(chunk.len() * kdim, T::zero());
            for (window, at) in windows.chunks_mut(kdim).zip(chunk.clone()) {
                let (image, gh, gw) = edge.position(at);
                let mut taps = window.chunks_mut(k);
                for a in jh.0..jh.1 {
                    let ih = s.origin_h + (gh + a) as isize;
                    for b in jw.0..jw.1 {
                        let Some(tap) = taps.next() else {
                            return;
                        };
                        let iw = s.origin_w + (gw + b) as isize;
                        if ih < 0 || ih as usize >= s.in_h || iw < 0 || iw as usize >= s.in_w {
                            tap.fill(T::zero());
                            continue;
                        }
                        match s.pixel(image, ih as usize, iw as usize) {
                            (start, 1) => transpose::copy(tap, &input[start..], k),
                            at => Sliding::gather(input, at, tap),
                        }
                    }
                }
            }
            gemm(
                MatMut {
                    data: result,
                    rows: chunk.len(),
                    cols: ncols,
                    row_stride: ncols,
                    col_stride: 1,
                },
                false,
                Mat {
                    data: windows,
                    rows: chunk.len(),
                    cols: kdim,
                    row_stride: kdim,
                    col_stride: 1,
                },
                Mat {
                    data: compact,
                    rows: kdim,
                    cols: ncols,
                    row_stride: ncols,
                    col_stride: 1,
                },
            );
        });
}

/// An edge's products by lanes of positions along its line (its grid row or column),
/// in f32 with at most [`MAX_LINE_COLS`] result columns, where the CPU has a register
/// kernel: each edge tap's input line, channels apart, then per block of positions the
/// sum over taps and channels of the shifted line times the broadcast filter value.
/// Every lane works, where a GEMM over so few columns leaves most idle (T5's edges:
/// 6 columns). False, with `results` untouched, where it does not apply.
fn edge_by_lines<T: 'static>(
    s: &Sliding,
    edge: &Edge,
    input: &[T],
    (compact, ncols): (&[T], usize),
    results: &mut [T],
) -> bool {
    let (Some(input), Some(filter), Some(results)) =
        (f32s(input), f32s(compact), f32s_mut(results))
    else {
        return false;
    };
    let k = s.in_channels;
    if !(1..=MAX_LINE_COLS).contains(&ncols) || simd::isa() == simd::Isa::None {
        return false;
    }
    // Every edge is one grid row (a line along w) or one grid column (along h): its
    // positions, the edge's fixed grid index across the line, the taps both ways, and
    // the input's origin, length and pixel step along the line and its length across.
    let along_w = edge.rows.1 - edge.rows.0 == 1;
    let pixel = if s.channels_first { 1 } else { k };
    let (line, across, across_taps, line_taps) = if along_w {
        (edge.cols, edge.rows.0, edge.taps_h, edge.taps_w)
    } else {
        (edge.rows, edge.cols.0, edge.taps_w, edge.taps_h)
    };
    let (origin, len, step, across_origin, across_len) = if along_w {
        (s.origin_w, s.in_w, pixel, s.origin_h, s.in_h)
    } else {
        (s.origin_h, s.in_h, s.in_w * pixel, s.origin_w, s.in_w)
    };
    // Per tap of the compact filter (taps_h outer): its edge tap and its shift along
    // the line.
    let mut shifts = Vec::with_capacity(edge.taps());
    for a in edge.taps_h.0..edge.taps_h.1 {
        for b in edge.taps_w.0..edge.taps_w.1 {
            let (across_tap, line_tap) = if along_w { (a, b) } else { (b, a) };
            shifts.push((across_tap - across_taps.0, line_tap));
        }
    }
    // Line value `x` is input coordinate `start + x` (zero outside the input); the
    // lanes of the last block of positions read at most `line_taps.1` past it.
    let positions = line.1 - line.0;
    let x_len = positions.div_ceil(LANES) * LANES + line_taps.1;
    let start = origin + line.0 as isize;
    let x0 = (-start).clamp(0, x_len as isize) as usize;
    let x1 = (len as isize - start).clamp(x0 as isize, x_len as isize) as usize;
    results
        .par_chunks_mut(positions * ncols)
        .enumerate()
        .for_each_init(Vec::new, |lines: &mut Vec<f32>, (image, out)| {
            lines.clear();
            lines.resize((across_taps.1 - across_taps.0) * k * x_len, 0.0);
            for (tap, lines) in (across_taps.0..across_taps.1).zip(lines.chunks_mut(k * x_len)) {
                let fixed = across_origin + (across + tap) as isize;
                if fixed < 0 || fixed as usize >= across_len || x0 == x1 {
                    continue;
                }
                let (fixed, along) = (fixed as usize, (start + x0 as isize) as usize);
                let (ih, iw) = if along_w {
                    (fixed, along)
                } else {
                    (along, fixed)
                };
                let (first, channel_step) = s.pixel(image, ih, iw);
                let lines = &mut lines[x0..];
                if channel_step == 1 {
                    transpose::strided(&input[first..], step, (x1 - x0, k), lines, x_len);
                } else {
                    for (c, line) in lines.chunks_mut(x_len).enumerate() {
                        for (x, value) in line[..x1 - x0].iter_mut().enumerate() {
                            *value = input[first + c * channel_step + x * step];
                        }
                    }
                }
            }
            let kernel = LineProducts {
                lines,
                x_len,
                shifts: &shifts,
                k,
                filter,
                out,
            };
            if let Err(kernel) = simd::dispatch(kernel) {
                kernel.portable();
            }
        });
    true
}

/// Most result columns [`edge_by_lines`] takes (one register of accumulators each).
const MAX_LINE_COLS: usize = 16;

/// One line of an edge for [`edge_by_lines`]: `out[p][col] = sum over taps t and
/// channels c of lines[edge tap][c][p + shift] * filter[t][c][col]`.
struct LineProducts<'a> {
    /// `[edge tap][channel][x]`, `x_len` values per channel, zeros outside the input.
    lines: &'a [f32],
    x_len: usize,
    /// Per tap of `filter`: its edge tap and its shift along the line.
    shifts: &'a [(usize, usize)],
    k: usize,
    /// `[tap][channel][col]`.
    filter: &'a [f32],
    /// `[position][col]`.
    out: &'a mut [f32],
}

impl LineProducts<'_> {
    /// Result columns: the filter's values per (tap, channel).
    fn ncols(&self) -> usize {
        self.filter.len() / (self.shifts.len() * self.k).max(1)
    }

    /// The sums one at a time (CPUs without a register kernel).
    fn portable(self) {
        let ncols = self.ncols();
        for (p, out) in self.out.chunks_mut(ncols).enumerate() {
            out.fill(0.0);
            for (t, &(e, shift)) in self.shifts.iter().enumerate() {
                for c in 0..self.k {
                    let x = self.lines[(e * self.k + c) * self.x_len + p + shift];
                    let f = &self.filter[(t * self.k + c) * ncols..][..ncols];
                    for (o, &f) in out.iter_mut().zip(f) {
                        *o += x * f;
                    }
                }
            }
        }
    }

    /// The sums with `N` result columns, a register of positions each.
    #[inline(always)]
    unsafe fn columns<V: F32s, const N: usize>(self) {
        let positions = self.out.len() / N;
        let k = self.k;
        for p0 in (0..positions).step_by(V::LANES) {
            // SAFETY: the CPU has `V`'s instruction set (`Kernel::run`'s contract).
            let mut acc = [unsafe { V::zero() }; N];
            for (t, &(e, shift)) in self.shifts.iter().enumerate() {
                for c in 0..k {
                    let x = &self.lines[(e * k + c) * self.x_len + p0 + shift..][..V::LANES];
                    let f = &self.filter[(t * k + c) * N..][..N];
                    // SAFETY: as above; `x` holds `LANES` values (bounds-checked slice).
                    let x = unsafe { V::load(x.as_ptr()) };
                    for (acc, &f) in acc.iter_mut().zip(f) {
                        // SAFETY: as above.
                        *acc = x.mul_add(unsafe { V::splat(f) }, *acc);
                    }
                }
            }
            let width = (positions - p0).min(V::LANES);
            let mut lanes = [[0.0f32; LANES]; N];
            for (acc, lanes) in acc.iter().zip(&mut lanes) {
                // SAFETY: as above; `lanes` holds `LANES >= V::LANES` values.
                unsafe { acc.store(lanes.as_mut_ptr()) };
            }
            for (lane, out) in self.out[p0 * N..][..width * N]
                .chunks_exact_mut(N)
                .enumerate()
            {
                for (o, lanes) in out.iter_mut().zip(&lanes) {
                    *o = lanes[lane];
                }
            }
        }
    }
}

impl simd::Kernel for LineProducts<'_> {
    type Output = ();
    #[inline(always)]
    unsafe fn run<V: F32s>(self) {
        let ncols = self.ncols();
        macro_rules! columns {
            ($($n:literal)*) => {
                match ncols {
                    // SAFETY: the CPU has `V`'s instruction set (this method's contract).
                    $($n => unsafe { self.columns::<V, $n>() },)*
                    _ => self.portable(),
                }
            };
        }
        columns!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
    }
}

/// Nonzero coefficients of each row of a row-major `rows x cols` matrix, as `T`.
pub(crate) fn sparse_rows<T: Element>(
    matrix: &[f64],
    rows: usize,
    cols: usize,
) -> Vec<Vec<(usize, T)>> {
    (0..rows)
        .map(|i| {
            (0..cols)
                .filter(|&j| matrix[i * cols + j] != 0.0)
                .map(|j| (j, T::from(matrix[i * cols + j]).unwrap_or_else(T::zero)))
                .collect()
        })
        .collect()
}

/// Values a transform handles at once: one AVX-512 register of f32.
const LANES: usize = 16;
/// A vector of `LANES` values; loops over it compile to single SIMD instructions.
type Lane<T> = [T; LANES];

/// `sum coef * lanes[j]` over the terms `(j, coef)`.
#[inline(always)]
fn combine<T: Element>(
    lanes: &[Lane<T>],
    offset: usize,
    stride: usize,
    terms: &[(usize, T)],
) -> Lane<T> {
    let mut acc = [T::zero(); LANES];
    for &(j, c) in terms {
        let x = &lanes[offset + j * stride];
        for i in 0..LANES {
            acc[i] += c * x[i];
        }
    }
    acc
}

/// Copies `len <= LANES` values into a lane (a whole register when `len == LANES`).
#[inline(always)]
fn load<T: Element>(lane: &mut Lane<T>, src: &[T], len: usize) {
    if let Some(full) = src.first_chunk::<LANES>().filter(|_| len == LANES) {
        *lane = *full;
    } else {
        lane[..len].copy_from_slice(&src[..len]);
    }
}

/// Copies the first `len <= LANES` values of a lane out.
#[inline(always)]
fn store<T: Element>(dst: &mut [T], lane: &Lane<T>, len: usize) {
    if let Some(full) = dst.first_chunk_mut::<LANES>().filter(|_| len == LANES) {
        *full = *lane;
    } else {
        dst[..len].copy_from_slice(&lane[..len]);
    }
}

/// Buffers one task reuses from tile to tile.
#[derive(Default)]
struct Scratch<T> {
    /// Transformed inputs, `[point][tile][channel]`.
    v: Lines<T>,
    /// Products, `[point][tile][column]`.
    prod: Lines<T>,
    /// One tile's results, `[grid row][grid column][column]`.
    y: Lines<T>,
    /// NCHW input: the task's input rows with channels contiguous.
    input_rows: Vec<T>,
    /// NCHW output: the task's grid rows of results, `(gw, pw, c)` each.
    result_rows: Vec<T>,
}

/// Computes the sliding correlation and scatters it into `out` (`batch x out_h x out_w x
/// channels`), with tiles of `m x m` grid positions as `tiling` cuts the grid and its
/// edges directly. `filter` is `[r][r][in_channels][cols]`. The inputs are finite (the
/// transforms would spread a NaN or infinity to outputs it is not connected to).
pub(crate) fn correlate<T: Element>(
    s: &Sliding,
    scatter: &Scatter,
    tiling: Tiling,
    input: &[T],
    filter: &[T],
    out: &mut [T],
) {
    correlate_tiles(&tiling.tiled(s), scatter, tiling.m, input, filter, out);
    correlate_edges(s, scatter, tiling, input, filter, out);
}

/// [`correlate`]'s tiles: the whole grid of `s` in tiles of `m x m`.
fn correlate_tiles<T: Element>(
    s: &Sliding,
    scatter: &Scatter,
    m: usize,
    input: &[T],
    filter: &[T],
    out: &mut [T],
) {
    let tr = Transforms::new(m, s.r);
    let alpha = tr.alpha;
    let (k, n) = (s.in_channels, scatter.cols());
    if out.is_empty() || k == 0 || n == 0 || s.grid_h == 0 || s.grid_w == 0 {
        return;
    }
    let (tiles_h, tiles_w) = (s.grid_h.div_ceil(m), s.grid_w.div_ceil(m));
    // Tasks take `band` consecutive tile rows of the whole batch (they may span images).
    let tile_rows = s.batch * tiles_h;
    let band = MIN_TASK_TILES
        .div_ceil(tiles_w)
        .min(tile_rows.div_ceil(MIN_TASKS))
        .max(1);
    let tiles = band * tiles_w;
    // Columns per task: whole height phases, as many as the budget allows.
    let phase_cols = scatter.stride_w * scatter.channels;
    let budget_cols = TASK_BUDGET_BYTES / (alpha * alpha * tiles * std::mem::size_of::<T>());
    let phases_per_chunk = (budget_cols / phase_cols).clamp(1, scatter.stride_h);
    let chunks = scatter.stride_h.div_ceil(phases_per_chunk);
    let chunk_cols = phases_per_chunk * phase_cols;
    let u = match transform_filter_packed(&tr, s, n, filter, (chunks, chunk_cols)) {
        Some(packed) => Filter::Packed(packed),
        None => Filter::Plain(transform_filter(&tr, s, n, filter)),
    };

    // Hand each task the output rows it writes: (band, phase chunk) owns rows
    // stride_h*gh + ph - shift_h of each image for gh in the band's grid rows and ph in
    // the chunk; slots are (tile row, grid row in the tile, phase).
    let mut rows = scatter.rows(out);
    let mut tasks = Vec::new();
    for b in 0..tile_rows.div_ceil(band) {
        for c in 0..chunks {
            let (p0, p1) = (
                c * phases_per_chunk,
                ((c + 1) * phases_per_chunk).min(scatter.stride_h),
            );
            let (r0, r1) = (b * band, ((b + 1) * band).min(tile_rows));
            let mut mine = Vec::with_capacity((r1 - r0) * m * (p1 - p0));
            for row in r0..r1 {
                let (image, th) = (row / tiles_h, row % tiles_h);
                for gh in th * m..th * m + m {
                    for ph in p0..p1 {
                        mine.push(scatter.take_row(&mut rows, image, (gh, s.grid_h), ph));
                    }
                }
            }
            tasks.push((r0, r1, p0, p1, mine));
        }
    }
    let job = Job {
        s,
        scatter,
        tr: &tr,
        bt: sparse_rows(&tr.bt, alpha, alpha),
        at: sparse_rows(&tr.at, m, alpha),
        input,
        u,
        chunk_cols,
        tiles_h,
        tiles_w,
    };
    tasks
        .into_par_iter()
        .for_each_init(Scratch::default, |scratch, task| job.run(scratch, task));
}

/// [`transform_filter`] for the panel product, straight into its packed layout: the
/// planes (`in_channels x cols` each) `[chunk][plane]`, each chunk's `chunk_cols`
/// columns in panels. Where `T` is f32, the panel product runs (AVX-512F, or AVX2 with
/// FMA, which packs the portable transform's planes) and the chunks are wider than a
/// register (narrower products run in the `gemm` front's register kernel). Each panel's
/// columns are transformed for every point at once, one filter row at a time,
/// in two passes (across, then down), so the filter is read once (C1 0.62 -> 0.56 ms,
/// C2 3.4 -> 3.1, with the fixed transforms' loads inlined).
fn transform_filter_packed<T: 'static>(
    tr: &Transforms,
    s: &Sliding,
    cols: usize,
    filter: &[T],
    (chunks, chunk_cols): (usize, usize),
) -> Option<Vec<Packed>> {
    let filter = f32s(filter)?;
    let k = s.in_channels;
    if chunk_cols <= LANES || k == 0 || cols == 0 || tr.r > MAX_ALPHA - 1 || !panels::available() {
        return None;
    }
    let planes = tr.alpha * tr.alpha;
    if !simd::avx512() {
        // AVX2: the portable transform, then its planes' columns copied into panels.
        return Some(pack_planes(
            &transform_filter(tr, s, cols, filter),
            planes,
            (k, cols),
            (chunks, chunk_cols),
        ));
    }
    let g: Vec<f32> = tr.g.iter().map(|&v| v as f32).collect();
    // Every panel: (chunk, first column, width).
    let all: Vec<(usize, usize, usize)> = (0..chunks)
        .flat_map(|chunk| {
            let (c0, c1) = (chunk * chunk_cols, ((chunk + 1) * chunk_cols).min(cols));
            (c0..c1)
                .step_by(PANEL_COLS)
                .map(move |first| (chunk, first, (c1 - first).min(PANEL_COLS)))
        })
        .collect();
    let blocks: Vec<Vec<Lines<f32>>> = all
        .par_iter()
        .map(|&(_, first, width)| {
            let mut blocks: Vec<Lines<f32>> =
                (0..planes).map(|_| Lines::zeros(k * PANEL_COLS)).collect();
            // SAFETY: the CPU has AVX-512F (`simd::avx512`, checked above).
            #[cfg(target_arch = "x86_64")]
            unsafe {
                transform_panel(&g, tr, filter, (k, cols), (first, width), &mut blocks)
            };
            blocks
        })
        .collect();
    // Regrouped by (chunk, plane), each plane's panels in order (moved, not copied).
    let mut packed: Vec<Packed> = (0..chunks * planes)
        .map(|_| Packed {
            blocks: Vec::new(),
            panels: Vec::new(),
        })
        .collect();
    for (&(chunk, first, width), blocks) in all.iter().zip(blocks) {
        for (plane, block) in blocks.into_iter().enumerate() {
            let target = &mut packed[chunk * planes + plane];
            target.blocks.push(block);
            target.panels.push(Panel {
                offset: first - chunk * chunk_cols,
                width,
            });
        }
    }
    Some(packed)
}

/// The transformed planes `u` (`planes` of `k x cols`) packed for the panel product,
/// `[chunk][plane]`, each chunk's `chunk_cols` columns in panels (zeros past a panel's
/// width).
fn pack_planes(
    u: &[f32],
    planes: usize,
    (k, cols): (usize, usize),
    (chunks, chunk_cols): (usize, usize),
) -> Vec<Packed> {
    let mut packed = Vec::with_capacity(chunks * planes);
    for chunk in 0..chunks {
        let (c0, c1) = (chunk * chunk_cols, ((chunk + 1) * chunk_cols).min(cols));
        for plane in u.chunks(k * cols).take(planes) {
            let (mut blocks, mut panels) = (Vec::new(), Vec::new());
            for first in (c0..c1).step_by(PANEL_COLS) {
                let width = (c1 - first).min(PANEL_COLS);
                let mut block = Lines::zeros(k * PANEL_COLS);
                for (dst, src) in block.chunks_mut(PANEL_COLS).zip(plane.chunks(cols)) {
                    dst[..width].copy_from_slice(&src[first..first + width]);
                }
                blocks.push(block);
                let offset = first - c0;
                panels.push(Panel { offset, width });
            }
            packed.push(Packed { blocks, panels });
        }
    }
    packed
}

/// One panel (`width` columns from `first`) of every transformed plane, `blocks[xi *
/// alpha + nu]` (`k` rows of [`PANEL_COLS`] values, zeros past `width`): for each filter
/// row, `across[j_h][nu] = sum G[nu][j_w] filter[j_h][j_w]`, then `U[xi][nu] = sum
/// G[xi][j_h] across[j_h][nu]`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn transform_panel(
    g: &[f32],
    tr: &Transforms,
    filter: &[f32],
    (k, cols): (usize, usize),
    (first, width): (usize, usize),
    blocks: &mut [Lines<f32>],
) {
    use super::winograd_fixed::{load, store};
    let (alpha, r) = (tr.alpha, tr.r);
    let plane = k * cols;
    let zero = std::arch::x86_64::_mm512_setzero_ps();
    // A run of the panel's 32 columns: two registers.
    let mut taps = [[zero; 2]; (MAX_ALPHA - 1) * (MAX_ALPHA - 1)];
    // across[nu][j_h], so that each point's down pass reads one slice.
    let mut across = [[zero; 2]; MAX_ALPHA * (MAX_ALPHA - 1)];
    for row in 0..k {
        for (tap, run) in taps[..r * r].iter_mut().enumerate() {
            let src = &filter[tap * plane + row * cols + first..][..width];
            for (half, value) in run.iter_mut().enumerate() {
                let from = (half * LANES).min(width);
                *value = load(&src[from..], width - from);
            }
        }
        for jh in 0..r {
            for nu in 0..alpha {
                across[nu * r + jh] = weighted_sum(&taps[jh * r..][..r], &g[nu * r..][..r]);
            }
        }
        for xi in 0..alpha {
            for nu in 0..alpha {
                let sum = weighted_sum(&across[nu * r..][..r], &g[xi * r..][..r]);
                let dst = &mut blocks[xi * alpha + nu][row * PANEL_COLS..][..PANEL_COLS];
                let (low, high) = dst.split_at_mut(LANES);
                store(low, LANES, sum[0]);
                store(high, LANES, sum[1]);
            }
        }
    }
}

/// `sum weights[j] * runs[j]` over a panel's runs of 32 columns, zero weights skipped.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn weighted_sum(
    runs: &[[std::arch::x86_64::__m512; 2]],
    weights: &[f32],
) -> [std::arch::x86_64::__m512; 2] {
    use std::arch::x86_64::*;
    let mut sum = [_mm512_setzero_ps(); 2];
    for (run, &weight) in runs.iter().zip(weights) {
        if weight != 0.0 {
            let weight = _mm512_set1_ps(weight);
            for (sum, &v) in sum.iter_mut().zip(run) {
                *sum = _mm512_fmadd_ps(weight, v, *sum);
            }
        }
    }
    sum
}

/// `U[xi][nu][k][col] = sum G[xi][a] G[nu][b] filter[a][b][k][col]`.
pub(crate) fn transform_filter<T: Element>(
    tr: &Transforms,
    s: &Sliding,
    cols: usize,
    filter: &[T],
) -> Vec<T> {
    let (alpha, r) = (tr.alpha, tr.r);
    let plane = s.in_channels * cols;
    let g = sparse_rows::<T>(&tr.g, alpha, r);
    let mut u = vec![T::zero(); alpha * alpha * plane];
    u.par_chunks_mut(plane).enumerate().for_each(|(xn, dst)| {
        let (xi, nu) = (xn / alpha, xn % alpha);
        for &(a, ca) in &g[xi] {
            for &(b, cb) in &g[nu] {
                let c = ca * cb;
                let src = &filter[(a * r + b) * plane..][..plane];
                for (d, &v) in dst.iter_mut().zip(src) {
                    *d += c * v;
                }
            }
        }
    });
    u
}

/// One task: tile rows `r0..r1` of the batch, height phases `p0..p1`, and the output rows
/// it owns (tile row, grid row within the tile, phase).
type Task<'o, T> = (usize, usize, usize, usize, Vec<Option<Row<'o, T>>>);

/// The transformed filter `U[xi][nu][k][col]` as the products read it.
enum Filter<T> {
    /// f32 with the panel product and more than a register of columns: the planes
    /// packed for the panel product, `[chunk][plane]` (each chunk's columns on their
    /// own).
    Packed(Vec<Packed>),
    /// For the `gemm` front: the planes as they are.
    Plain(Vec<T>),
}

/// What every task of one [`correlate`] call shares.
struct Job<'a, T> {
    s: &'a Sliding,
    scatter: &'a Scatter,
    tr: &'a Transforms,
    bt: Vec<Vec<(usize, T)>>,
    at: Vec<Vec<(usize, T)>>,
    input: &'a [T],
    u: Filter<T>,
    /// Result columns of a whole chunk of height phases.
    chunk_cols: usize,
    tiles_h: usize,
    tiles_w: usize,
}

impl<T: Element> Job<'_, T> {
    fn run(&self, scratch: &mut Scratch<T>, task: Task<'_, T>) {
        // The portable loops compiled for AVX-512 or AVX2 where the CPU has them.
        simd::vectorised(
            #[inline(always)]
            || self.run_portable(scratch, task),
        );
    }

    /// One task: the tiles of tile rows `r0..r1` of the batch, result columns of height
    /// phases `p0..p1`.
    #[inline(always)]
    fn run_portable(&self, scratch: &mut Scratch<T>, task: Task<'_, T>) {
        let (r0, r1, p0, p1, mut rows) = task;
        let (s, sc, m, alpha) = (self.s, self.scatter, self.tr.m, self.tr.alpha);
        let (k, cols) = (s.in_channels, sc.cols());
        let tiles = (r1 - r0) * self.tiles_w;
        let planes = alpha * alpha;
        let zero = [T::zero(); LANES];

        // NCHW input: each tile row's `alpha` input rows, channels made contiguous, so the
        // transform below reads whole registers as from NHWC.
        let row_len = s.in_w * k;
        if s.channels_first {
            scratch
                .input_rows
                .resize((r1 - r0) * alpha * row_len, T::zero());
            for (index, dst) in scratch.input_rows.chunks_mut(row_len.max(1)).enumerate() {
                let (row, a) = (r0 + index / alpha, index % alpha);
                let ih = s.origin_h + ((row % self.tiles_h) * m + a) as isize;
                if ih >= 0 && (ih as usize) < s.in_h {
                    s.row_channels_last(self.input, (row / self.tiles_h, ih as usize), dst);
                }
            }
        }
        let input_rows = &scratch.input_rows;

        // f32 on AVX-512 or AVX2: the transforms with constant coefficients.
        let fixed = simd::isa() >= simd::Isa::Avx2 && f32s(self.input).is_some();

        // Input transform, LANES channels at a time: V[xi][nu][tile][k].
        scratch.v.resize(planes * tiles * k);
        let v: &mut [T] = &mut scratch.v;
        let mut d = [zero; MAX_ALPHA * MAX_ALPHA];
        let mut half = [zero; MAX_ALPHA * MAX_ALPHA];
        for tile in 0..tiles {
            let row = r0 + tile / self.tiles_w;
            let (image, th, tw) = (row / self.tiles_h, row % self.tiles_h, tile % self.tiles_w);
            for c0 in (0..k).step_by(LANES) {
                let len = LANES.min(k - c0);
                for a in 0..alpha {
                    let ih = s.origin_h + (th * m + a) as isize;
                    for bb in 0..alpha {
                        let iw = s.origin_w + (tw * m + bb) as isize;
                        let lane = &mut d[a * alpha + bb];
                        *lane = zero;
                        if ih >= 0 && (ih as usize) < s.in_h && iw >= 0 && (iw as usize) < s.in_w {
                            if s.channels_first {
                                let local = (tile / self.tiles_w * alpha + a) * row_len;
                                load(lane, &input_rows[local + iw as usize * k + c0..], len);
                            } else {
                                let (at, _) = s.pixel(image, ih as usize, iw as usize);
                                load(lane, &self.input[at + c0..], len);
                            }
                        }
                    }
                }
                #[cfg(target_arch = "x86_64")]
                if let (true, Some(d), Some(v)) = (fixed, f32s(d.as_flattened()), f32s_mut(v)) {
                    let at = (tile * k + c0, tiles * k, len);
                    if fixed_input(alpha, d, v, at) {
                        continue;
                    }
                }
                // half[xi][bb] = sum_a BT[xi][a] d[a][bb]; V[xi][nu] = sum_bb BT[nu][bb] half[xi][bb].
                for xi in 0..alpha {
                    for bb in 0..alpha {
                        half[xi * alpha + bb] = combine(&d, bb, alpha, &self.bt[xi]);
                    }
                }
                for xi in 0..alpha {
                    for nu in 0..alpha {
                        let lane = combine(&half, xi * alpha, 1, &self.bt[nu]);
                        store(
                            &mut v[((xi * alpha + nu) * tiles + tile) * k + c0..],
                            &lane,
                            len,
                        );
                    }
                }
            }
        }

        // Products: M[xi][nu][tile][col] for the chunk's columns.
        let (c0, c1) = (
            p0 * sc.stride_w * sc.channels,
            p1 * sc.stride_w * sc.channels,
        );
        let nc = c1 - c0;
        scratch.prod.resize(planes * tiles * nc);
        let prod: &mut [T] = &mut scratch.prod;
        match &self.u {
            Filter::Packed(packed) => {
                let (v, prod) = (f32s(v), f32s_mut(prod));
                let (Some(v), Some(prod)) = (v, prod) else {
                    unreachable!("the filter is packed for f32 only");
                };
                let chunk = c0 / self.chunk_cols;
                let offset = |tile: usize| tile * nc;
                for (plane, dst) in prod.chunks_mut(tiles * nc).enumerate() {
                    let a = &v[plane * tiles * k..][..tiles * k];
                    let packed = &packed[chunk * planes + plane];
                    let done = panels::multiply(a, k, packed, dst, &offset);
                    assert!(done, "the panel product runs only where it was packed");
                }
            }
            Filter::Plain(u) => {
                for (plane, dst) in prod.chunks_mut(tiles * nc).enumerate() {
                    gemm(
                        MatMut {
                            data: dst,
                            rows: tiles,
                            cols: nc,
                            row_stride: nc,
                            col_stride: 1,
                        },
                        false,
                        Mat {
                            data: &v[plane * tiles * k..][..tiles * k],
                            rows: tiles,
                            cols: k,
                            row_stride: k,
                            col_stride: 1,
                        },
                        Mat {
                            data: &u[plane * k * cols + c0..],
                            rows: k,
                            cols: nc,
                            row_stride: cols,
                            col_stride: 1,
                        },
                    );
                }
            }
        }

        // Output transform, LANES columns at a time, then the scatter (NCHW: into whole
        // grid rows first, written to the channels' lines at the end).
        scratch.y.resize(m * m * nc);
        let y: &mut [T] = &mut scratch.y;
        let mut gathered = [zero; MAX_ALPHA * MAX_ALPHA];
        let phase_rows = p1 - p0;
        let phase_cols = sc.stride_w * sc.channels;
        let grid_row_len = s.grid_w * phase_cols;
        if sc.channels_first {
            scratch
                .result_rows
                .resize(rows.len() * grid_row_len, T::zero());
        }
        let result_rows = &mut scratch.result_rows;
        for tile in 0..tiles {
            let (local_row, tw) = (tile / self.tiles_w, tile % self.tiles_w);
            for j0 in (0..nc).step_by(LANES) {
                let len = LANES.min(nc - j0);
                #[cfg(target_arch = "x86_64")]
                if let (true, Some(prod), Some(y)) = (fixed, f32s(prod), f32s_mut(y)) {
                    let at = (tile * nc + j0, tiles * nc, len);
                    if fixed_output((m, alpha), prod, at, &mut y[j0..], nc) {
                        continue;
                    }
                }
                for (plane, lane) in gathered[..planes].iter_mut().enumerate() {
                    load(lane, &prod[(plane * tiles + tile) * nc + j0..], len);
                }
                // half[a][nu] = sum_xi AT[a][xi] M[xi][nu]; y[a][bb] = sum_nu AT[bb][nu] half[a][nu].
                for a in 0..m {
                    for nu in 0..alpha {
                        half[a * alpha + nu] = combine(&gathered, nu, alpha, &self.at[a]);
                    }
                    for bb in 0..m {
                        let lane = combine(&half, a * alpha, 1, &self.at[bb]);
                        store(&mut y[(a * m + bb) * nc + j0..], &lane, len);
                    }
                }
            }
            for a in 0..m {
                for ph in p0..p1 {
                    let slot = (local_row * m + a) * phase_rows + ph - p0;
                    let Some(row) = rows[slot].as_mut() else {
                        continue;
                    };
                    for bb in 0..m {
                        let gw = tw * m + bb;
                        if gw >= s.grid_w {
                            break;
                        }
                        let src = &y[(a * m + bb) * nc + (ph - p0) * phase_cols..];
                        if sc.channels_first {
                            result_rows[slot * grid_row_len + gw * phase_cols..][..phase_cols]
                                .copy_from_slice(&src[..phase_cols]);
                        } else {
                            sc.write(row, gw, src, false);
                        }
                    }
                }
            }
        }
        if sc.channels_first {
            for (slot, row) in rows.iter_mut().enumerate() {
                if let Some(row) = row {
                    let values = &result_rows[slot * grid_row_len..][..grid_row_len];
                    sc.write_row(row, s.grid_w, values, None);
                }
            }
        }
    }
}

/// The input transform of one tile's `len <= 16` channels with constant coefficients
/// ([`super::winograd_fixed`]): `d` the tile's `alpha x alpha` input lanes (16 values
/// each, row-major), point `p` stored at `v[first + p * stride..][..len]`. False, having
/// written nothing, where `alpha` has no such transform or the CPU neither AVX-512F nor
/// AVX2 with FMA.
fn fixed_input(alpha: usize, d: &[f32], v: &mut [f32], at: (usize, usize, usize)) -> bool {
    simd::dispatch(FixedInput { alpha, d, v, at }).unwrap_or(false)
}

/// [`fixed_input`]'s arguments, run for one register type.
struct FixedInput<'a> {
    alpha: usize,
    d: &'a [f32],
    v: &'a mut [f32],
    at: (usize, usize, usize),
}

impl simd::Kernel for FixedInput<'_> {
    type Output = bool;
    #[inline(always)]
    unsafe fn run<V: F32s>(self) -> bool {
        let FixedInput { alpha, d, v, at } = self;
        match alpha {
            3 => fixed_input_tile::<V, 3>(d, v, at),
            4 => fixed_input_tile::<V, 4>(d, v, at),
            5 => fixed_input_tile::<V, 5>(d, v, at),
            6 => fixed_input_tile::<V, 6>(d, v, at),
            _ => return false,
        }
        true
    }
}

/// One tile of [`fixed_input`], its `LANES` channels `V::LANES` at a time.
#[inline(always)]
fn fixed_input_tile<V: F32s, const A: usize>(
    d: &[f32],
    v: &mut [f32],
    (first, stride, len): (usize, usize, usize),
) {
    assert!(d.len() >= A * A * LANES && len <= LANES);
    assert!(len == 0 || first + (A * A - 1) * stride + len <= v.len());
    for part in (0..len).step_by(V::LANES) {
        // SAFETY: the caller makes sure that the CPU has `V`'s instruction set. The
        // asserts put every lane `(a, b)`'s `LANES` values in `d`, of which the load reads
        // `V::LANES` from `part < LANES` on (`LANES` is a multiple of `V::LANES`), and
        // every point's `len` values in `v`, of which the store writes those from `part`
        // on, at most `len - part`.
        unsafe {
            let mut tile = [[V::zero(); A]; A];
            for (a, line) in tile.iter_mut().enumerate() {
                for (b, value) in line.iter_mut().enumerate() {
                    *value = V::load(d.as_ptr().add((a * A + b) * LANES + part));
                }
            }
            for (xi, row) in input_2d_in(&tile).iter().enumerate() {
                for (nu, value) in row.iter().enumerate() {
                    let at = first + (xi * A + nu) * stride + part;
                    value.store_part(len - part, v.as_mut_ptr().add(at));
                }
            }
        }
    }
}

/// The output transform of one tile's `len <= 16` columns with constant coefficients:
/// point `p`'s products at `prod[first + p * stride..][..len]`, result `(a, b)` stored
/// at `y[(a * m + b) * y_stride..][..len]`. False, having written nothing, where
/// F(m, r) on `alpha` points has no such transform or the CPU neither AVX-512F nor AVX2
/// with FMA.
fn fixed_output(
    shape: (usize, usize),
    prod: &[f32],
    at: (usize, usize, usize),
    y: &mut [f32],
    y_stride: usize,
) -> bool {
    let transform = FixedOutput {
        shape,
        prod,
        at,
        y,
        y_stride,
    };
    simd::dispatch(transform).unwrap_or(false)
}

/// [`fixed_output`]'s arguments, run for one register type.
struct FixedOutput<'a> {
    shape: (usize, usize),
    prod: &'a [f32],
    at: (usize, usize, usize),
    y: &'a mut [f32],
    y_stride: usize,
}

impl simd::Kernel for FixedOutput<'_> {
    type Output = bool;
    #[inline(always)]
    unsafe fn run<V: F32s>(self) -> bool {
        let FixedOutput {
            shape,
            prod,
            at,
            y,
            y_stride,
        } = self;
        match shape {
            (2, 3) => fixed_output_tile::<V, 2, 3>(prod, at, y, y_stride),
            (2, 4) => fixed_output_tile::<V, 2, 4>(prod, at, y, y_stride),
            (2, 5) => fixed_output_tile::<V, 2, 5>(prod, at, y, y_stride),
            (2, 6) => fixed_output_tile::<V, 2, 6>(prod, at, y, y_stride),
            (3, 4) => fixed_output_tile::<V, 3, 4>(prod, at, y, y_stride),
            (3, 5) => fixed_output_tile::<V, 3, 5>(prod, at, y, y_stride),
            (3, 6) => fixed_output_tile::<V, 3, 6>(prod, at, y, y_stride),
            (4, 5) => fixed_output_tile::<V, 4, 5>(prod, at, y, y_stride),
            (4, 6) => fixed_output_tile::<V, 4, 6>(prod, at, y, y_stride),
            _ => return false,
        }
        true
    }
}

/// One tile of [`fixed_output`], its `len` columns `V::LANES` at a time.
#[inline(always)]
fn fixed_output_tile<V: F32s, const M: usize, const A: usize>(
    prod: &[f32],
    (first, stride, len): (usize, usize, usize),
    y: &mut [f32],
    y_stride: usize,
) {
    assert!(len == 0 || first + (A * A - 1) * stride + len <= prod.len());
    assert!(len == 0 || (M * M - 1) * y_stride + len <= y.len());
    for part in (0..len).step_by(V::LANES) {
        let width = len - part;
        // SAFETY: the caller makes sure that the CPU has `V`'s instruction set. The
        // asserts put every point's `len` values in `prod` and every result's `len` values
        // in `y`; the loads and stores touch those from `part` on, at most `width`.
        unsafe {
            let mut products = [[V::zero(); A]; A];
            for (xi, line) in products.iter_mut().enumerate() {
                for (nu, value) in line.iter_mut().enumerate() {
                    let at = first + (xi * A + nu) * stride + part;
                    *value = V::load_part(width, prod.as_ptr().add(at));
                }
            }
            for (a, row) in output_2d_in::<V, M, A>(&products).iter().enumerate() {
                for (b, value) in row.iter().enumerate() {
                    let at = (a * M + b) * y_stride + part;
                    value.store_part(width, y.as_mut_ptr().add(at));
                }
            }
        }
    }
}

/// The same sliding correlation computed directly: the windows of every grid position
/// (im2col, `r * r * in_channels` wide) times the filter, one GEMM per (image, height
/// phase) with all of that phase's `stride_w * channels` columns, its rows scattered
/// straight from an L2-sized buffer. For large strides, where a phase's own GEMM would
/// be only `channels` wide. Here `filter` is stored by column: `[cols][r][r][in_channels]`.
pub(crate) fn correlate_direct<T: Element>(
    s: &Sliding,
    scatter: &Scatter,
    input: &[T],
    filter: &[T],
    out: &mut [T],
) {
    let (k, cols) = (s.in_channels, scatter.cols());
    let kdim = s.r * s.r * k;
    if out.is_empty() || kdim == 0 || cols == 0 || s.grid_h == 0 || s.grid_w == 0 {
        return;
    }
    // Windows: rows (image, gh, gw), columns (jh, jw, k), zeros outside the input.
    let positions = s.grid_h * s.grid_w;
    let mut windows = vec![T::zero(); s.batch * positions * kdim];
    windows
        .par_chunks_mut(kdim)
        .enumerate()
        .for_each(|(pos, window)| {
            let (image, gh, gw) = (pos / positions, pos / s.grid_w % s.grid_h, pos % s.grid_w);
            for jh in 0..s.r {
                let ih = s.origin_h + (gh + jh) as isize;
                if ih < 0 || ih as usize >= s.in_h {
                    continue;
                }
                for jw in 0..s.r {
                    let iw = s.origin_w + (gw + jw) as isize;
                    if iw < 0 || iw as usize >= s.in_w {
                        continue;
                    }
                    let at = s.pixel(image, ih as usize, iw as usize);
                    Sliding::gather(input, at, &mut window[(jh * s.r + jw) * k..][..k]);
                }
            }
        });
    // Outputs much larger than the caches are written around them.
    let streaming = std::mem::size_of_val(out) >= stream::STREAM_MIN_BYTES && stream::available();
    let mut rows = scatter.rows(out);
    let mut tasks = Vec::new();
    for image in 0..s.batch {
        for ph in 0..scatter.stride_h {
            let mine: Vec<_> = (0..s.grid_h)
                .map(|gh| scatter.take_row(&mut rows, image, (gh, s.grid_h), ph))
                .collect();
            tasks.push((image, ph, mine));
        }
    }
    let phase_cols = scatter.stride_w * scatter.channels;
    tasks.into_par_iter().for_each_init(
        || (Vec::<T>::new(), Vec::<T>::new()),
        |(result, staging), (image, ph, mut mine)| {
            // Grid rows of this phase that reach the output, as one contiguous range.
            let (Some(g0), Some(g1)) = (
                mine.iter().position(Option::is_some),
                mine.iter().rposition(Option::is_some),
            ) else {
                return;
            };
            let rows_used = (g1 + 1 - g0) * s.grid_w;
            // Reused from task to task: the GEMM overwrites what it uses.
            if result.len() < rows_used * phase_cols {
                result.resize(rows_used * phase_cols, T::zero());
            }
            gemm(
                MatMut {
                    data: &mut result[..rows_used * phase_cols],
                    rows: rows_used,
                    cols: phase_cols,
                    row_stride: phase_cols,
                    col_stride: 1,
                },
                false,
                Mat {
                    data: &windows[(image * positions + g0 * s.grid_w) * kdim..]
                        [..rows_used * kdim],
                    rows: rows_used,
                    cols: kdim,
                    row_stride: kdim,
                    col_stride: 1,
                },
                Mat {
                    data: &filter[ph * phase_cols * kdim..],
                    rows: kdim,
                    cols: phase_cols,
                    row_stride: 1,
                    col_stride: kdim,
                },
            );
            for (local, slot) in mine[g0..=g1].iter_mut().enumerate() {
                if let Some(row) = slot.as_mut() {
                    let values = &result[local * s.grid_w * phase_cols..][..s.grid_w * phase_cols];
                    scatter.write_row(row, s.grid_w, values, streaming.then_some(&mut *staging));
                }
            }
            if streaming {
                stream::fence();
            }
        },
    );
}

/// The sliding correlation summed from its definition, in f64, NHWC both ways: the
/// independent reference of the engines' tests.
#[cfg(test)]
pub(crate) fn sliding_sums(s: &Sliding, sc: &Scatter, input: &[f64], filter: &[f64]) -> Vec<f64> {
    let (k, cols, c) = (s.in_channels, sc.cols(), sc.channels);
    let mut out = vec![0.0; s.batch * sc.out_h * sc.out_w * c];
    for n in 0..s.batch {
        for gh in 0..s.grid_h {
            for gw in 0..s.grid_w {
                for col in 0..cols {
                    let (ph, pw, ch) = (col / (sc.stride_w * c), col / c % sc.stride_w, col % c);
                    let oh = (sc.stride_h * gh + ph) as isize - sc.shift_h as isize;
                    let ow = (sc.stride_w * gw + pw) as isize - sc.shift_w as isize;
                    if oh < 0 || ow < 0 || oh as usize >= sc.out_h || ow as usize >= sc.out_w {
                        continue;
                    }
                    let mut sum = 0.0;
                    for jh in 0..s.r {
                        for jw in 0..s.r {
                            let ih = s.origin_h + (gh + jh) as isize;
                            let iw = s.origin_w + (gw + jw) as isize;
                            if ih < 0 || iw < 0 || ih as usize >= s.in_h || iw as usize >= s.in_w {
                                continue;
                            }
                            let pixel = ((n * s.in_h + ih as usize) * s.in_w + iw as usize) * k;
                            for i in 0..k {
                                sum += input[pixel + i]
                                    * filter[((jh * s.r + jw) * k + i) * cols + col];
                            }
                        }
                    }
                    out[((n * sc.out_h + oh as usize) * sc.out_w + ow as usize) * c + ch] = sum;
                }
            }
        }
    }
    out
}

/// Sub-pixel views to test the engines on: `(sliding, scatter)` of transposed
/// convolutions whose grids are one position past a multiple of the tile (DCGAN's k4 s2
/// pad 1) or not, of stride 3 with a shift of 2, and a forward one; with `k` input
/// channels and `c` output channels.
#[cfg(test)]
pub(crate) fn test_views(k: usize, c: usize) -> Vec<(Sliding, Scatter)> {
    let view = |(in_h, in_w): (usize, usize), (grid_h, grid_w), (r, origin), stride, shift| {
        let sliding = Sliding {
            batch: 2,
            in_h,
            in_w,
            in_channels: k,
            grid_h,
            grid_w,
            origin_h: origin,
            origin_w: origin,
            r,
            channels_first: false,
        };
        let scatter = move |(out_h, out_w)| Scatter {
            stride_h: stride,
            stride_w: stride,
            shift_h: shift,
            shift_w: shift,
            out_h,
            out_w,
            channels: c,
            channels_first: false,
        };
        move |out| (sliding, scatter(out))
    };
    vec![
        // k4 s2 pad 1 on 8x12 dy (grid 9 x 13: 2 x 4 + 1, 3 x 4 + 1), 16x24 dx.
        view((8, 12), (9, 13), (2, -1), 2, 1)((16, 24)),
        // The same with an odd dx (the last phase of the last position dropped).
        view((7, 10), (8, 11), (2, -1), 2, 1)((13, 19)),
        // k6 s3 pad 2: r = 2, shift 2.
        view((5, 7), (6, 8), (2, -1), 3, 2)((15, 21)),
        // k11 s3 pad 4 on 5 dy pixels to 21: r = 4, the last grid position's taps all
        // past the input (its outputs are zeros).
        view((5, 5), (8, 8), (4, -2), 3, 1)((21, 21)),
        // A stride-1 3x3 correlation, padded by one.
        view((10, 9), (10, 9), (3, -1), 1, 0)((10, 9)),
    ]
}

/// Small integers in -4..=4 (exact in f64 through the transforms' halves and sixths to
/// 1e-9), a fixed sequence per seed: the engines' tests' inputs.
#[cfg(test)]
pub(crate) fn ints(len: usize, seed: u64) -> Vec<f64> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) % 9) as f64 - 4.0
        })
        .collect()
}

/// The largest difference between `got` and `want`, NaN where either holds one (which
/// `f64::max` would skip).
#[cfg(test)]
pub(crate) fn max_error(got: impl IntoIterator<Item = f64>, want: &[f64]) -> f64 {
    got.into_iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, |worst, e| {
            if e.is_nan() || worst.is_nan() {
                f64::NAN
            } else {
                worst.max(e)
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The NCHW form of NHWC values.
    fn planes(values: &[f64], (_, h, w, c): (usize, usize, usize, usize)) -> Vec<f64> {
        let mut out = vec![0.0; values.len()];
        for (at, &v) in values.iter().enumerate() {
            let (image, pixel, ch) = (at / (h * w * c), at / c % (h * w), at % c);
            out[(image * c + ch) * h * w + pixel] = v;
        }
        out
    }

    /// Every tiling of every tile size, the grid whole or cut to whole tiles with its
    /// edges computed directly, gives the sums of the definition, NHWC and NCHW.
    #[test]
    fn every_tiling_equals_the_sums() {
        let mut checked = 0;
        for (s, sc) in test_views(5, 3) {
            let input = ints(s.batch * s.in_h * s.in_w * s.in_channels, 1);
            let filter = ints(s.r * s.r * s.in_channels * sc.cols(), 2);
            let want = sliding_sums(&s, &sc, &input, &filter);
            let shape = (s.batch, sc.out_h, sc.out_w, sc.channels);
            let (s_nchw, sc_nchw) = (
                Sliding {
                    channels_first: true,
                    ..s
                },
                Scatter {
                    channels_first: true,
                    ..sc
                },
            );
            let input_nchw = planes(&input, (s.batch, s.in_h, s.in_w, s.in_channels));
            let want_nchw = planes(&want, shape);
            // In f32 too: the edges' register kernel (up to 16 columns).
            let single = |values: &[f64]| values.iter().map(|&v| v as f32).collect::<Vec<_>>();
            let (input32, input32_nchw, filter32) =
                (single(&input), single(&input_nchw), single(&filter));
            let scale = want.iter().fold(1.0f64, |a, b| a.max(b.abs()));
            for m in 2..=MAX_TILE.min(MAX_ALPHA + 1 - s.r) {
                for tiling in Tiling::candidates(&s, m) {
                    let mut out = vec![0.0; want.len()];
                    correlate(&s, &sc, tiling, &input, &filter, &mut out);
                    let error = max_error(out, &want);
                    assert!(error < 1e-9, "{tiling:?} {s:?} {sc:?}: {error}");
                    let mut out = vec![0.0; want.len()];
                    correlate(&s_nchw, &sc_nchw, tiling, &input_nchw, &filter, &mut out);
                    let error = max_error(out, &want_nchw);
                    assert!(error < 1e-9, "NCHW {tiling:?} {s:?} {sc:?}: {error}");
                    let mut out = vec![0.0f32; want.len()];
                    correlate(&s, &sc, tiling, &input32, &filter32, &mut out);
                    let error = max_error(out.iter().map(|&v| f64::from(v)), &want);
                    assert!(error < 1e-5 * scale, "f32 {tiling:?} {s:?} {sc:?}: {error}");
                    let mut out = vec![0.0f32; want.len()];
                    let (view, scatter) = (&s_nchw, &sc_nchw);
                    correlate(view, scatter, tiling, &input32_nchw, &filter32, &mut out);
                    let error = max_error(out.iter().map(|&v| f64::from(v)), &want_nchw);
                    assert!(
                        error < 1e-5 * scale,
                        "f32 NCHW {tiling:?} {s:?} {sc:?}: {error}"
                    );
                    checked +=
                        usize::from((tiling.tiled_h, tiling.tiled_w) != (s.grid_h, s.grid_w));
                }
            }
        }
        assert!(checked >= 10, "only {checked} cut tilings");
    }

    /// The edges' line products, in registers and one at a time, are their definition's
    /// sums (the registers' last block of positions partly filled).
    #[test]
    fn line_products_are_their_sums() {
        let (k, x_len, positions) = (5, 40, 21);
        let shifts = [(0, 0), (0, 1), (1, 0), (1, 2)];
        for ncols in [1, 6, 16] {
            let lines: Vec<f32> = ints(2 * k * x_len, 7).iter().map(|&v| v as f32).collect();
            let filter: Vec<f32> = ints(shifts.len() * k * ncols, 8)
                .iter()
                .map(|&v| v as f32)
                .collect();
            let mut want = vec![0.0f64; positions * ncols];
            for (p, want) in want.chunks_mut(ncols).enumerate() {
                for (t, &(e, shift)) in shifts.iter().enumerate() {
                    for c in 0..k {
                        let x = f64::from(lines[(e * k + c) * x_len + p + shift]);
                        for (col, w) in want.iter_mut().enumerate() {
                            *w += x * f64::from(filter[(t * k + c) * ncols + col]);
                        }
                    }
                }
            }
            let run = |registers: bool| {
                let mut out = vec![f32::NAN; positions * ncols];
                let kernel = LineProducts {
                    lines: &lines,
                    x_len,
                    shifts: &shifts,
                    k,
                    filter: &filter,
                    out: &mut out,
                };
                match registers {
                    true => {
                        if let Err(kernel) = simd::dispatch(kernel) {
                            kernel.portable();
                        }
                    }
                    false => kernel.portable(),
                }
                max_error(out.iter().map(|&v| f64::from(v)), &want)
            };
            assert_eq!(run(true), 0.0, "{ncols} columns in registers");
            assert_eq!(run(false), 0.0, "{ncols} columns one at a time");
        }
    }

    /// `AT [(BT d) . (G g)]` is the correlation of `d` with `g`, for every tile size used.
    #[test]
    fn transforms_compute_the_correlation() {
        let mut state = 12345u64;
        let mut next = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
            ((state >> 33) % 1000) as f64 / 100.0 - 5.0
        };
        for r in 1..=5 {
            for m in 1..=(MAX_ALPHA + 2 - r) {
                let t = Transforms::new(m, r);
                let d: Vec<f64> = (0..t.alpha).map(|_| next()).collect();
                let g: Vec<f64> = (0..r).map(|_| next()).collect();
                let bd: Vec<f64> = (0..t.alpha)
                    .map(|j| (0..t.alpha).map(|i| t.bt[j * t.alpha + i] * d[i]).sum())
                    .collect();
                let gg: Vec<f64> = (0..t.alpha)
                    .map(|j| (0..r).map(|i| t.g[j * r + i] * g[i]).sum())
                    .collect();
                for i in 0..m {
                    let got: f64 = (0..t.alpha)
                        .map(|j| t.at[i * t.alpha + j] * bd[j] * gg[j])
                        .sum();
                    let want: f64 = (0..r).map(|q| d[i + q] * g[q]).sum();
                    assert!(
                        (got - want).abs() < 1e-9 * (1.0 + want.abs()),
                        "F({m},{r}) output {i}: {got} vs {want}"
                    );
                }
            }
        }
    }
}
