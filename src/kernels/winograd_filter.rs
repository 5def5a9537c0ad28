//! Winograd's minimal filtering for the filter gradient.
//!
//! Split by stride phase, `dw[ph + s*j] = sum_o x[s*(o + j) + ph - pad] dy[o]` is, for each
//! phase `ph`, a stride-1 correlation of the phase's subsampled input with `dy`, whose
//! `r = kernel / stride` results are the phase's taps. Cutting `o` into tiles of `m`
//! makes each tile an F(r, m) problem (`r` outputs, an `m`-tap "filter" `dy`, windows of
//! `alpha = r + m - 1` inputs): per tile and channel pair `alpha^2` products instead of
//! `r^2 m^2`. The products of all tiles add up in the transformed domain, so they are
//! `alpha^2` GEMMs per phase over (input channel) x (tiles) x (output channel), and the
//! output transform runs once at the end.
//!
//! NCHW data is read through a staging buffer per block of tiles: the rectangles of `x`
//! and `dy` the block's tiles touch, copied channels-last by blocked transposes.

use super::gemm::{gemm, Mat, MatMut};
use super::lines::Lines;
use super::simd::F32s;
use super::transpose;
use super::winograd::{sparse_rows, Transforms, MAX_ALPHA};
use crate::element::Element;
use crate::layout::DataFormat;
use crate::problem::Problem;
use rayon::prelude::*;

/// Largest tile of `dy` (per axis): F(2, 4) and F(3, 4) keep f32 errors small.
const MAX_DY_TILE: usize = 4;
/// Elements of transformed tiles one block of tiles holds (`x` and `dy` together).
const BLOCK_ELEMENTS: usize = 1 << 21;
/// Fewest tiles of a block (the GEMMs' inner size), whatever the channel counts.
const MIN_BLOCK_TILES: usize = 64;

/// The geometry the plan needs: taps per phase `r`, `dy` tile `m`, transforms F(r, m).
pub(crate) struct Form {
    tr: Transforms,
}

impl Form {
    /// Transformed elements of one tile: `dy`'s, and `x`'s for every phase.
    fn per_tile(&self, p: &Problem) -> usize {
        let phases = p.height.stride * p.width.stride;
        self.tr.alpha.pow(2) * (p.out_channels + phases * p.in_channels)
    }

    /// Tiles transformed and multiplied at once.
    fn block_tiles(&self, p: &Problem) -> usize {
        (BLOCK_ELEMENTS / self.per_tile(p).max(1)).max(MIN_BLOCK_TILES)
    }

    /// Elements of workspace: a block's transformed tiles, its NCHW staging and the
    /// summed products.
    pub(crate) fn workspace(&self, p: &Problem) -> usize {
        let phases = p.height.stride * p.width.stride;
        let products = phases * self.tr.alpha.pow(2) * p.in_channels * p.out_channels;
        let block = self.block_tiles(p);
        block
            .saturating_mul(self.per_tile(p))
            .saturating_add(self.staging(p, block))
            .saturating_add(products)
    }

    /// At most how many elements the NCHW staging of `tiles` tiles takes: per run of
    /// tiles along a tile row, `s * alpha` rows of `x` over the run's columns plus the
    /// windows' overhang, and `m` rows of `dy`.
    fn staging(&self, p: &Problem, tiles: usize) -> usize {
        let (s, m, alpha) = (p.height.stride, self.tr.r, self.tr.alpha);
        let runs = tiles.min(tiles.div_ceil(p.width.output.div_ceil(m).max(1)) + 1);
        let x_columns = s * m * tiles + runs * s * alpha;
        s * alpha * x_columns * p.in_channels + m * m * tiles * p.out_channels
    }

    /// Estimated time relative to the direct products: the `alpha^2` products per tile
    /// and channel pair, plus the transforms of `x` (per phase) and of `dy` (shared by
    /// the phases) weighted as four times slower than GEMM work.
    pub(crate) fn cost(&self, p: &Problem) -> f64 {
        let (r, m, alpha) = (self.tr.m as f64, self.tr.r as f64, self.tr.alpha as f64);
        let (cin, cout) = (p.in_channels as f64, p.out_channels as f64);
        let phases = (p.height.stride * p.width.stride) as f64;
        let direct = r * r * m * m * cin * cout;
        let transforms =
            2.0 * alpha.powi(3) * cin + (alpha * alpha * m + alpha * m * m) * cout / phases;
        (alpha * alpha * cin * cout + 4.0 * transforms) / direct
    }
}

/// The form of `p`'s filter gradient, where it has one: no groups or dilation, square
/// kernels and strides with the kernel a multiple of the stride and at least two taps
/// per phase, and enough channels for the GEMMs.
pub(crate) fn form(p: &Problem) -> Option<Form> {
    let (h, w) = (p.height, p.width);
    let square = h.kernel == w.kernel && h.stride == w.stride;
    let plain = p.groups == 1 && h.dilation == 1 && w.dilation == 1;
    if !square || !plain || h.kernel % h.stride != 0 {
        return None;
    }
    let r = h.kernel / h.stride;
    let m = MAX_DY_TILE.min((MAX_ALPHA + 1).checked_sub(r)?);
    if r < 2 || m < 2 || p.in_channels < 8 || p.out_channels < 8 {
        return None;
    }
    if h.output < m || w.output < m {
        return None;
    }
    Some(Form {
        tr: Transforms::new(r, m),
    })
}

/// `dw` (HWIO, zero-filled) from `x` and `dy` in `format`, for a problem with a [`form`].
pub(crate) fn gradient<T: Element>(
    form: &Form,
    p: &Problem,
    format: DataFormat,
    x: &[T],
    dy: &[T],
    dw: &mut [T],
) {
    let (h, w) = (p.height, p.width);
    let (cin, cout, s) = (p.in_channels, p.out_channels, h.stride);
    let (r, m, alpha) = (form.tr.m, form.tr.r, form.tr.alpha);
    let planes = alpha * alpha;
    let (tiles_h, tiles_w) = (h.output.div_ceil(m), w.output.div_ceil(m));
    let per_image = tiles_h * tiles_w;
    let block = form.block_tiles(p);
    let bt = sparse_rows::<T>(&form.tr.bt, alpha, alpha);
    let g = sparse_rows::<T>(&form.tr.g, alpha, m);
    // u[phase][plane][co][ci]: the products summed over every tile (this orientation of
    // the GEMMs' result runs ~4% faster than [ci][co]).
    let mut u = vec![T::zero(); s * s * planes * cin * cout];
    let mut dy_hat = Lines::default();
    let mut x_hat = Lines::default();
    let mut staging = Staging::default();
    let all_tiles = p.batch * per_image;
    // Tile `t` of the batch: image, tile row, tile column.
    let place = |t: usize| (t / per_image, t % per_image / tiles_w, t % tiles_w);
    for first in (0..all_tiles).step_by(block) {
        let tiles = block.min(all_tiles - first);
        if format == DataFormat::Nchw {
            staging.fill(form, p, (first, tiles), x, dy);
        }
        // Pixel `(ih, iw)` of image `n` of `x` (`dy`) as seen by block tile `tile`.
        let x_pixel = |tile: usize, n: usize, ih: usize, iw: usize| match format {
            DataFormat::Nhwc => &x[((n * h.input + ih) * w.input + iw) * cin..][..cin],
            DataFormat::Nchw => staging.x_pixel(tile, ih, iw, cin),
        };
        let dy_pixel = |tile: usize, n: usize, oh: usize, ow: usize| match format {
            DataFormat::Nhwc => &dy[((n * h.output + oh) * w.output + ow) * cout..][..cout],
            DataFormat::Nchw => staging.dy_pixel(tile, oh, ow, cout),
        };
        // dy_hat[plane][tile][co] = (G dy_tile G^T)[plane], dy zero past the output.
        // (Every element is written: the buffers are reused from block to block.)
        dy_hat.resize(planes * tiles * cout);
        x_hat.resize(s * s * planes * tiles * cin);
        let (dy_hat, x_hat): (&mut [T], &mut [T]) = (&mut dy_hat, &mut x_hat);
        transform_tiles(dy_hat, tiles, cout, (&g, false), m, |tile, a, b| {
            let (n, th, tw) = place(first + tile);
            let (oh, ow) = (th * m + a, tw * m + b);
            (oh < h.output && ow < w.output).then(|| dy_pixel(tile, n, oh, ow))
        });
        // x_hat[phase][plane][tile][ci] = (BT window BT^T)[plane] of the phase's input.
        for (phase, out) in x_hat.chunks_mut(planes * tiles * cin).enumerate() {
            let (ph, pw) = (phase / s, phase % s);
            transform_tiles(out, tiles, cin, (&bt, true), alpha, |tile, a, b| {
                let (n, th, tw) = place(first + tile);
                let ih = (s * (th * m + a) + ph).checked_sub(h.pad_before)?;
                let iw = (s * (tw * m + b) + pw).checked_sub(w.pad_before)?;
                (ih < h.input && iw < w.input).then(|| x_pixel(tile, n, ih, iw))
            });
        }
        // u[phase][plane] += x_hat[phase][plane]^T dy_hat[plane], one GEMM per pair.
        u.par_chunks_mut(cin * cout)
            .enumerate()
            .for_each(|(index, product)| {
                let plane = index % planes;
                let lhs = Mat {
                    data: &x_hat[index * tiles * cin..][..tiles * cin],
                    rows: cin,
                    cols: tiles,
                    row_stride: 1,
                    col_stride: cin,
                };
                let rhs = Mat {
                    data: &dy_hat[plane * tiles * cout..][..tiles * cout],
                    rows: tiles,
                    cols: cout,
                    row_stride: cout,
                    col_stride: 1,
                };
                let dst = MatMut {
                    data: product,
                    rows: cin,
                    cols: cout,
                    row_stride: 1,
                    col_stride: cin,
                };
                gemm(dst, true, lhs, rhs);
            });
    }
    // dw[ph + s*jh, pw + s*jw] = sum_(a, b) AT[jh][a] AT[jw][b] u[phase][(a, b)].
    let at = sparse_rows::<T>(&form.tr.at, r, alpha);
    let k = h.kernel;
    dw.par_chunks_mut(cin * cout)
        .enumerate()
        .for_each(|(tap, out)| {
            let (kh, kw) = (tap / k, tap % k);
            let (phase, jh, jw) = ((kh % s) * s + kw % s, kh / s, kw / s);
            // Summed as [co][ci], then transposed into the tap's [ci][co] block.
            let mut sum = vec![T::zero(); cin * cout];
            for &(a, ca) in &at[jh] {
                for &(b, cb) in &at[jw] {
                    let coef = ca * cb;
                    let plane = &u[(phase * planes + a * alpha + b) * cin * cout..][..cin * cout];
                    for (o, &v) in sum.iter_mut().zip(plane) {
                        *o += coef * v;
                    }
                }
            }
            out.copy_from_slice(&crate::layout::transpose(&sum, cout, cin));
        });
}

/// A rectangle of one image's pixels, staged channels-last: rows `row0..row0 + rows`,
/// columns `col0..col0 + cols`, from element `base` of a staging buffer.
#[derive(Debug, Clone, Copy, Default)]
struct Region {
    image: usize,
    row0: usize,
    rows: usize,
    col0: usize,
    cols: usize,
    base: usize,
}

impl Region {
    /// The part of rows `rows` and columns `cols` inside a `height x width` image.
    fn clipped(
        image: usize,
        rows: (usize, usize),
        cols: (usize, usize),
        (height, width): (usize, usize),
    ) -> Region {
        let (row0, col0) = (rows.0.min(height), cols.0.min(width));
        Region {
            image,
            row0,
            rows: rows.1.min(height).saturating_sub(row0),
            col0,
            cols: cols.1.min(width).saturating_sub(col0),
            base: 0,
        }
    }

    /// Where pixel `(row, col)` (inside the region) starts in the staging buffer.
    fn at(&self, (row, col): (usize, usize), channels: usize) -> usize {
        debug_assert!(row - self.row0 < self.rows && col - self.col0 < self.cols);
        self.base + ((row - self.row0) * self.cols + col - self.col0) * channels
    }

    /// Copies the region out of NCHW `planes` (`channels` planes of `height x width` per
    /// image) into `dst`, channels-last.
    fn stage<T: Element>(
        &self,
        planes: &[T],
        (channels, height, width): (usize, usize, usize),
        dst: &mut [T],
    ) {
        let plane = height * width;
        if self.cols == width {
            // Whole rows: one run of each plane.
            let start = (self.image * channels * height + self.row0) * width;
            let pixels = self.rows * width;
            transpose::strided(&planes[start..], plane, (channels, pixels), dst, channels);
            return;
        }
        for (row, out) in dst.chunks_mut((self.cols * channels).max(1)).enumerate() {
            let start = (self.image * channels * height + self.row0 + row) * width + self.col0;
            transpose::strided(
                &planes[start..],
                plane,
                (channels, self.cols),
                out,
                channels,
            );
        }
    }
}

/// The staged `x` and `dy` of one block of tiles of NCHW data: per run of tiles along a
/// tile row, the rectangles its windows read.
#[derive(Default)]
struct Staging<T> {
    x: Vec<T>,
    dy: Vec<T>,
    /// Per run: its `x` and `dy` regions.
    runs: Vec<(Region, Region)>,
    /// Per tile of the block: its run.
    run_of_tile: Vec<usize>,
}

impl<T: Element> Staging<T> {
    /// Stages tiles `first..first + tiles` of the batch.
    fn fill(
        &mut self,
        form: &Form,
        p: &Problem,
        (first, tiles): (usize, usize),
        x: &[T],
        dy: &[T],
    ) {
        let (h, w) = (p.height, p.width);
        let (s, m, alpha) = (h.stride, form.tr.r, form.tr.alpha);
        let tiles_w = w.output.div_ceil(m);
        let per_image = h.output.div_ceil(m) * tiles_w;
        self.runs.clear();
        self.run_of_tile.clear();
        let (mut x_len, mut dy_len) = (0, 0);
        let mut tile = first;
        while tile < first + tiles {
            let (n, th, tw) = (tile / per_image, tile % per_image / tiles_w, tile % tiles_w);
            let end = (first + tiles).min(tile - tw + tiles_w);
            let tw_end = tw + (end - tile);
            // Phase input rows s*(th*m + a) + ph - pad for a < alpha, ph < s; likewise
            // columns over the run's tiles.
            let window = |t: usize, t_end: usize, pad: usize| {
                let from = (s * m * t).saturating_sub(pad);
                (from, (s * (m * (t_end - 1) + alpha)).saturating_sub(pad))
            };
            let mut xr = Region::clipped(
                n,
                window(th, th + 1, h.pad_before),
                window(tw, tw_end, w.pad_before),
                (h.input, w.input),
            );
            let mut dyr = Region::clipped(
                n,
                (th * m, th * m + m),
                (tw * m, tw_end * m),
                (h.output, w.output),
            );
            (xr.base, dyr.base) = (x_len, dy_len);
            x_len += xr.rows * xr.cols * p.in_channels;
            dy_len += dyr.rows * dyr.cols * p.out_channels;
            self.run_of_tile
                .extend(std::iter::repeat_n(self.runs.len(), end - tile));
            self.runs.push((xr, dyr));
            tile = end;
        }
        grow(&mut self.x, x_len);
        grow(&mut self.dy, dy_len);
        // Each run's regions, staged in parallel into their own parts of the buffers.
        let mut jobs = Vec::with_capacity(self.runs.len());
        let (mut x_rest, mut dy_rest) = (&mut self.x[..x_len], &mut self.dy[..dy_len]);
        for (xr, dyr) in &self.runs {
            let (x_part, x_tail) = x_rest.split_at_mut(xr.rows * xr.cols * p.in_channels);
            let (dy_part, dy_tail) = dy_rest.split_at_mut(dyr.rows * dyr.cols * p.out_channels);
            (x_rest, dy_rest) = (x_tail, dy_tail);
            jobs.push((xr, x_part, dyr, dy_part));
        }
        jobs.into_par_iter().for_each(|(xr, x_part, dyr, dy_part)| {
            xr.stage(x, (p.in_channels, h.input, w.input), x_part);
            dyr.stage(dy, (p.out_channels, h.output, w.output), dy_part);
        });
    }

    /// Pixel `(ih, iw)` of `x` as block tile `tile` reads it.
    fn x_pixel(&self, tile: usize, ih: usize, iw: usize, channels: usize) -> &[T] {
        let region = self.runs[self.run_of_tile[tile]].0;
        &self.x[region.at((ih, iw), channels)..][..channels]
    }

    /// Pixel `(oh, ow)` of `dy` as block tile `tile` reads it.
    fn dy_pixel(&self, tile: usize, oh: usize, ow: usize, channels: usize) -> &[T] {
        let region = self.runs[self.run_of_tile[tile]].1;
        &self.dy[region.at((oh, ow), channels)..][..channels]
    }
}

/// Makes `buffer` at least `len` long.
fn grow<T: Element>(buffer: &mut Vec<T>, len: usize) {
    if buffer.len() < len {
        buffer.resize(len, T::zero());
    }
}

/// Tiles one task of [`transform_tiles`] transforms.
const TILES_PER_TASK: usize = 16;

/// `out[plane][tile][c] = (M t M^T)[plane]` for every tile `t` (`size x size` rows of
/// `channels` values, `rows(tile, a, b)`, zeros where it gives `None`) and the sparse
/// `alpha x size` matrix `M`; channels innermost, so the sums vectorise. With `is_bt`
/// (`M` is Winograd's `BT` on `alpha` points), f32 on AVX-512 runs the transforms with
/// constant coefficients in registers ([`super::winograd_fixed`]; F1 4.07 -> 3.65 ms).
fn transform_tiles<'a, T: Element>(
    out: &mut [T],
    tiles: usize,
    channels: usize,
    (matrix, is_bt): (&[Vec<(usize, T)>], bool),
    size: usize,
    rows: impl Fn(usize, usize, usize) -> Option<&'a [T]> + Sync,
) {
    let planes = matrix.len() * matrix.len();
    // columns[a]: the rows i with M[i][a] != 0, and M[i][a].
    let columns: Vec<Vec<(usize, T)>> = (0..size)
        .map(|a| {
            let column = matrix.iter().enumerate();
            column
                .flat_map(|(i, terms)| terms.iter().filter(|t| t.0 == a).map(move |t| (i, t.1)))
                .collect()
        })
        .collect();
    // Each task gets its run of tiles in every plane.
    let blocks = tiles.div_ceil(TILES_PER_TASK);
    let mut tasks: Vec<Vec<&mut [T]>> = (0..blocks).map(|_| Vec::with_capacity(planes)).collect();
    for plane in out.chunks_mut((tiles * channels).max(1)).take(planes) {
        for (task, run) in tasks
            .iter_mut()
            .zip(plane.chunks_mut(TILES_PER_TASK * channels))
        {
            task.push(run);
        }
    }
    let job = TransformJob {
        channels,
        matrix,
        columns: &columns,
        size,
        rows,
    };
    tasks.into_par_iter().enumerate().for_each_init(
        || vec![T::zero(); matrix.len() * size * channels],
        |half, (block, mut runs)| {
            if is_bt && job.run_fixed(block * TILES_PER_TASK, &mut runs) {
                return;
            }
            // The portable loops compiled for AVX-512 or AVX2 where the CPU has them.
            super::simd::vectorised(
                #[inline(always)]
                || job.run(block * TILES_PER_TASK, &mut runs, half),
            );
        },
    );
}

/// [`TransformJob::run_fixed`]'s arguments, run for one register type.
struct FixedTiles<'j, 'r, 's, 'm, T, F> {
    job: &'j TransformJob<'m, T, F>,
    first: usize,
    runs: &'r mut [&'s mut [T]],
}

impl<'a, T: Element, F: Fn(usize, usize, usize) -> Option<&'a [T]>> super::simd::Kernel
    for FixedTiles<'_, '_, '_, '_, T, F>
{
    type Output = bool;
    #[inline(always)]
    unsafe fn run<V: F32s>(self) -> bool {
        self.job.run_fixed_in::<V>(self.first, self.runs)
    }
}

/// What [`transform_tiles`] needs in each task.
struct TransformJob<'m, T, F> {
    channels: usize,
    matrix: &'m [Vec<(usize, T)>],
    columns: &'m [Vec<(usize, T)>],
    size: usize,
    rows: F,
}

impl<'a, T: Element, F: Fn(usize, usize, usize) -> Option<&'a [T]>> TransformJob<'_, T, F> {
    /// [`TransformJob::run`] for `BT` in f32 with constant coefficients, a register of
    /// channels at a time (AVX-512, or AVX2 with FMA). False, having written nothing,
    /// where `T` is not f32, there is no fixed transform for the tile size or the CPU has
    /// neither instruction set.
    fn run_fixed(&self, first: usize, runs: &mut [&mut [T]]) -> bool {
        let tiles = FixedTiles {
            job: self,
            first,
            runs,
        };
        super::simd::dispatch(tiles).unwrap_or(false)
    }

    /// [`Self::run_fixed`] in registers of `V`. The caller makes sure that the CPU has
    /// `V`'s instruction set.
    #[inline(always)]
    fn run_fixed_in<V: F32s>(&self, first: usize, runs: &mut [&mut [T]]) -> bool {
        match self.size {
            3 => self.run_fixed_tiles::<V, 3>(first, runs),
            4 => self.run_fixed_tiles::<V, 4>(first, runs),
            5 => self.run_fixed_tiles::<V, 5>(first, runs),
            6 => self.run_fixed_tiles::<V, 6>(first, runs),
            _ => false,
        }
    }

    #[inline(always)]
    fn run_fixed_tiles<V: F32s, const A: usize>(
        &self,
        first: usize,
        runs: &mut [&mut [T]],
    ) -> bool {
        use super::winograd_fixed::input_2d_in;
        let c = self.channels;
        let mut outs = Vec::with_capacity(A * A);
        for run in runs.iter_mut() {
            match super::f32s_mut(run) {
                Some(run) => outs.push(run),
                None => return false,
            }
        }
        if outs.len() != A * A || self.matrix.len() != A {
            return false;
        }
        let count = outs[0].len() / c.max(1);
        for t in 0..count {
            // The tile's rows, looked up once for all its channels.
            let mut tile: [[Option<&[f32]>; A]; A] = [[None; A]; A];
            for (a, line) in tile.iter_mut().enumerate() {
                for (b, row) in line.iter_mut().enumerate() {
                    *row = (self.rows)(first + t, a, b).and_then(super::f32s);
                }
            }
            for c0 in (0..c).step_by(V::LANES) {
                let len = (c - c0).min(V::LANES);
                // SAFETY: the caller makes sure that the CPU has `V`'s instruction set;
                // each load reads at most the `len` values of its row from `c0` on that
                // the row holds, each store writes at most the `len` values of its run
                // from `t * c + c0` on that the run holds (the slices, bounds-checked).
                unsafe {
                    let mut d = [[V::zero(); A]; A];
                    for (line, rows) in d.iter_mut().zip(&tile) {
                        for (value, row) in line.iter_mut().zip(rows) {
                            if let Some(row) = row {
                                let src = &row[c0..];
                                *value = V::load_part(len.min(src.len()), src.as_ptr());
                            }
                        }
                    }
                    for (i, line) in input_2d_in(&d).iter().enumerate() {
                        for (j, value) in line.iter().enumerate() {
                            let dst = &mut outs[i * A + j][t * c + c0..];
                            value.store_part(len.min(dst.len()), dst.as_mut_ptr());
                        }
                    }
                }
            }
        }
        true
    }

    /// Transforms tiles `first..` (as many as `runs[0]` holds) into `runs[plane]`.
    #[inline(always)]
    fn run(&self, first: usize, runs: &mut [&mut [T]], half: &mut [T]) {
        let (c, size, alpha) = (self.channels, self.size, self.matrix.len());
        let count = runs.first().map_or(0, |run| run.len() / c.max(1));
        for t in 0..count {
            // half[i][b] = sum_a M[i][a] t[a][b]
            half.fill(T::zero());
            for (a, terms) in self.columns.iter().enumerate() {
                for b in 0..size {
                    let Some(row) = (self.rows)(first + t, a, b) else {
                        continue;
                    };
                    for &(i, coef) in terms {
                        let dst = &mut half[(i * size + b) * c..][..c];
                        for (d, &v) in dst.iter_mut().zip(row) {
                            *d += coef * v;
                        }
                    }
                }
            }
            // out[i][j] = sum_b M[j][b] half[i][b]
            for i in 0..alpha {
                for (j, terms) in self.matrix.iter().enumerate() {
                    let dst = &mut runs[i * alpha + j][t * c..][..c];
                    let Some((&(b, coef), rest)) = terms.split_first() else {
                        dst.fill(T::zero());
                        continue;
                    };
                    for (d, &v) in dst.iter_mut().zip(&half[(i * size + b) * c..][..c]) {
                        *d = coef * v;
                    }
                    for &(b, coef) in rest {
                        let src = &half[(i * size + b) * c..][..c];
                        for (d, &v) in dst.iter_mut().zip(src) {
                            *d += coef * v;
                        }
                    }
                }
            }
        }
    }
}
