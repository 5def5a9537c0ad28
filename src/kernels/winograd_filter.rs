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

use super::gemm::{gemm, Mat, MatMut};
use super::winograd::{sparse_rows, Transforms, MAX_ALPHA};
use crate::element::Element;
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

    /// Elements of workspace: a block's transformed tiles and the summed products.
    pub(crate) fn workspace(&self, p: &Problem) -> usize {
        let phases = p.height.stride * p.width.stride;
        let products = phases * self.tr.alpha.pow(2) * p.in_channels * p.out_channels;
        self.block_tiles(p)
            .saturating_mul(self.per_tile(p))
            .saturating_add(products)
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

/// `dw` (HWIO, zero-filled) from `x` and `dy`, for a problem with a [`form`].
pub(crate) fn gradient<T: Element>(form: &Form, p: &Problem, x: &[T], dy: &[T], dw: &mut [T]) {
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
    let mut dy_hat = Vec::new();
    let mut x_hat = Vec::new();
    let all_tiles = p.batch * per_image;
    // Tile `t` of the batch: image, tile row, tile column.
    let place = |t: usize| (t / per_image, t % per_image / tiles_w, t % tiles_w);
    for first in (0..all_tiles).step_by(block) {
        let tiles = block.min(all_tiles - first);
        // dy_hat[plane][tile][co] = (G dy_tile G^T)[plane], dy zero past the output.
        // (Every element is written: buffers grow once and are reused from block to block.)
        grow(&mut dy_hat, planes * tiles * cout);
        grow(&mut x_hat, s * s * planes * tiles * cin);
        let dy_hat = &mut dy_hat[..planes * tiles * cout];
        let x_hat = &mut x_hat[..s * s * planes * tiles * cin];
        transform_tiles(dy_hat, tiles, cout, &g, m, |tile, a, b| {
            let (n, th, tw) = place(first + tile);
            let (oh, ow) = (th * m + a, tw * m + b);
            (oh < h.output && ow < w.output)
                .then(|| &dy[((n * h.output + oh) * w.output + ow) * cout..][..cout])
        });
        // x_hat[phase][plane][tile][ci] = (BT window BT^T)[plane] of the phase's input.
        for (phase, out) in x_hat.chunks_mut(planes * tiles * cin).enumerate() {
            let (ph, pw) = (phase / s, phase % s);
            transform_tiles(out, tiles, cin, &bt, alpha, |tile, a, b| {
                let (n, th, tw) = place(first + tile);
                let ih = (s * (th * m + a) + ph).checked_sub(h.pad_before)?;
                let iw = (s * (tw * m + b) + pw).checked_sub(w.pad_before)?;
                (ih < h.input && iw < w.input)
                    .then(|| &x[((n * h.input + ih) * w.input + iw) * cin..][..cin])
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
/// `alpha x size` matrix `M`; channels innermost, so the sums vectorise.
fn transform_tiles<'a, T: Element>(
    out: &mut [T],
    tiles: usize,
    channels: usize,
    matrix: &[Vec<(usize, T)>],
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
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F, checked just above; `run_wide` is the
                // portable `run` compiled with it (no intrinsics).
                unsafe { job.run_wide(block * TILES_PER_TASK, &mut runs, half) };
                return;
            }
            job.run(block * TILES_PER_TASK, &mut runs, half);
        },
    );
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
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    fn run_wide(&self, first: usize, runs: &mut [&mut [T]], half: &mut [T]) {
        self.run(first, runs, half);
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
