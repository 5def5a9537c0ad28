//! Transposed convolutions whose kernel equals their stride, with no padding (U-Net's
//! 2x2 stride-2 up-convolutions): each `dy` pixel's product with the filter is its own
//! tile of `dx` (`kernel_h` runs of `kernel_w * in_channels` values) and no two tiles
//! meet. One register-blocked product, rows `dy`'s pixels and columns the filter's
//! `(kh, kw, channel)`, stores every tile straight into `dx`: no column buffer, no
//! gather, each value of `dx` written once.
//!
//! f32 on AVX-512, NHWC data, one group; the caller takes another plan for the rest.
//! Each value is one dot product summed in a fixed order, so results do not depend on
//! how the rows are split between threads.

use super::transpose;
use crate::problem::{Axis, Problem};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// `dy` pixels per register block: two accumulators each, 24 in all.
const BLOCK_ROWS: usize = 12;
/// Result columns per register block: two AVX-512 registers of f32.
const PANEL_COLS: usize = 32;
/// Inner indices (`dy` channels) summed in registers before the block is stored (or
/// added to what an earlier run stored).
const DEPTH: usize = 256;

/// Whether the tile product computes `p`: one group, and on both axes a kernel equal to
/// the stride, no dilation or padding, and an input exactly `stride` times the output;
/// and a kernel row's run of `kernel_w * in_channels` values fills at least one register
/// (narrower runs leave most lanes idle, and other plans do better).
pub(crate) fn applies(p: &Problem) -> bool {
    let tiles = |a: &Axis| {
        a.dilation == 1
            && a.kernel == a.stride
            && a.pad_before == 0
            && a.input == a.output * a.stride
    };
    p.groups == 1
        && p.in_channels > 0
        && p.out_channels > 0
        && p.width.kernel * p.in_channels >= PANEL_COLS / 2
        && tiles(&p.height)
        && tiles(&p.width)
}

/// `dx = conv^T(dy, w)` on NHWC data, HWIO `w`, into `dx`, an empty vector with room for
/// the `len` values of the problem's input, which the product stores without a zero-fill
/// first (the tiles cover `dx` exactly). Returns false, leaving `dx` empty, where the
/// product does not apply (not f32, no AVX-512, a problem [`applies`] rejects) or where
/// `len` is not the input's size or `dx` has no room for it.
pub(crate) fn backward_data_fresh<T: 'static>(
    p: &Problem,
    dy: &[T],
    w: &[T],
    dx: &mut Vec<T>,
    len: usize,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if let (Some(dy), Some(w)) = (super::f32s(dy), super::f32s(w)) {
        if applies(p) && std::arch::is_x86_feature_detected!("avx512f") {
            let product = |dx: &mut [std::mem::MaybeUninit<T>]| {
                super::uninit_f32s(dx).is_some_and(|dx| {
                    backward_data_f32(p, dy, w, dx);
                    true
                })
            };
            // SAFETY: the product stores all `len` values. [`applies`] makes the tiles
            // cover `dx` exactly: each dy line's tiles are `stride_h` whole dx lines
            // (`input_h = output_h * stride_h`), each pixel's run `kernel_w *
            // in_channels` values from `w * stride_w * in_channels` (`input_w = output_w *
            // stride_w`), the tasks cover every dy pixel in blocks, and every block stores
            // every panel's `width` columns of the run. (The product returns early only
            // where a size is zero, so `len` is zero.)
            return unsafe { super::fill_new(dx, (p.input_shape(), len), product) };
        }
    }
    let _ = (p, dy, w, dx, len);
    false
}

/// One panel of the product's right-hand side: `PANEL_COLS` columns of kernel row `kh`
/// starting at `first` in its run of `kernel_w * in_channels` values.
#[derive(Clone, Copy)]
struct Panel {
    /// Offset of the panel's first column in a tile's first `dx` value.
    offset: usize,
    /// Columns that exist (the run's last panel may be narrower).
    width: usize,
}

/// The filter as the product's right-hand side, in panels: panel `(kh, first)` holds,
/// for each `dy` channel `o`, the `PANEL_COLS` values `w[kh, j, o]` for `j` in
/// `first..first + PANEL_COLS` (`j = kw * in_channels + i`), zeros past the run's end.
fn pack_filter(p: &Problem, w: &[f32]) -> (Vec<Vec<f32>>, Vec<Panel>) {
    let (cin, cout) = (p.in_channels, p.out_channels);
    let run = p.width.kernel * cin;
    let panels_per_run = run.div_ceil(PANEL_COLS);
    let panel_of = |index: usize| {
        let (kh, first) = (index / panels_per_run, index % panels_per_run * PANEL_COLS);
        (kh, first, (run - first).min(PANEL_COLS))
    };
    let packed = (0..p.height.kernel * panels_per_run)
        .into_par_iter()
        .map(|index| {
            let (kh, first, width) = panel_of(index);
            // The run's `width` filter rows (`cout` values each) transposed into the
            // panel's columns; columns past the run's end stay zero.
            let mut panel = vec![0.0; cout * PANEL_COLS];
            let rows = &w[(kh * run + first) * cout..][..width * cout];
            transpose::strided(rows, cout, (width, cout), &mut panel, PANEL_COLS);
            panel
        })
        .collect();
    let panels = (0..p.height.kernel * panels_per_run)
        .map(|index| {
            let (kh, first, width) = panel_of(index);
            let offset = kh * p.width.input * cin + first;
            Panel { offset, width }
        })
        .collect();
    (packed, panels)
}

#[cfg(target_arch = "x86_64")]
fn backward_data_f32(p: &Problem, dy: &[f32], w: &[f32], dx: &mut [MaybeUninit<f32>]) {
    let (h, wd) = (p.height, p.width);
    let (cin, cout) = (p.in_channels, p.out_channels);
    let (packed, panels) = pack_filter(p, w);
    // dx values of one dy line's tiles: `stride_h` full dx lines.
    let line = h.stride * wd.input * cin;
    let lines = p.batch * h.output;
    if line == 0 || lines == 0 || wd.output == 0 {
        return;
    }
    let per_task = lines.div_ceil(4 * rayon::current_num_threads()).max(1);
    let offset = |r: usize| r / wd.output * line + r % wd.output * wd.stride * cin;
    dx.par_chunks_mut(per_task * line)
        .enumerate()
        .for_each(|(task, dx_task)| {
            let pixels = dx_task.len() / line * wd.output;
            let dy_task = &dy[task * per_task * wd.output * cout..][..pixels * cout];
            // SAFETY: the CPU has AVX-512F, checked by `backward_data_fresh`.
            unsafe { run_task(dy_task, cout, (&packed, &panels), dx_task, &offset) };
        });
}

/// The tiles of one task's `dy` pixels (`a`, `depth` channels each; pixel `r`'s tile
/// starts at `offset(r)` in the task's `dx`), in blocks of [`BLOCK_ROWS`] pixels, then
/// smaller blocks for the rest.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn run_task(
    a: &[f32],
    depth: usize,
    (packed, panels): (&[Vec<f32>], &[Panel]),
    dx: &mut [MaybeUninit<f32>],
    offset: &dyn Fn(usize) -> usize,
) {
    let pixels = a.len() / depth;
    let mut first = 0;
    while first < pixels {
        let rows = [BLOCK_ROWS, 8, 4, 2, 1]
            .into_iter()
            .find(|&rows| first + rows <= pixels)
            .unwrap_or(1);
        let block_a = &a[first * depth..][..rows * depth];
        let mut starts = [0; BLOCK_ROWS];
        for (i, start) in starts.iter_mut().enumerate() {
            *start = offset(first + i);
        }
        let starts = &starts[..rows];
        match rows {
            BLOCK_ROWS => strip::<BLOCK_ROWS>(block_a, depth, packed, panels, dx, starts),
            8 => strip::<8>(block_a, depth, packed, panels, dx, starts),
            4 => strip::<4>(block_a, depth, packed, panels, dx, starts),
            2 => strip::<2>(block_a, depth, packed, panels, dx, starts),
            _ => strip::<1>(block_a, depth, packed, panels, dx, starts),
        }
        first += rows;
    }
}

/// The tiles of `R` consecutive `dy` pixels (`a`: their `depth` channels each; their
/// tiles start at `starts` in `dx`), every panel in turn.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn strip<const R: usize>(
    a: &[f32],
    depth: usize,
    packed: &[Vec<f32>],
    panels: &[Panel],
    dx: &mut [MaybeUninit<f32>],
    starts: &[usize],
) {
    let tiles: [usize; R] = std::array::from_fn(|i| starts[i]);
    for (b, panel) in packed.iter().zip(panels) {
        for k0 in (0..depth).step_by(DEPTH) {
            let k1 = (k0 + DEPTH).min(depth);
            block::<R>(a, depth, (k0, k1), b, dx, &tiles, *panel);
        }
    }
}

/// `dx[tiles[i] + panel.offset + j] (+)= sum over k in k0..k1 of a[i][k] * b[k][j]` for
/// the `R` rows of `a` (row stride `depth`) and the panel's `width` columns: stored on
/// the first run of the inner index, added on later ones (which read only values the
/// first run stored).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn block<const R: usize>(
    a: &[f32],
    depth: usize,
    (k0, k1): (usize, usize),
    b: &[f32],
    dx: &mut [MaybeUninit<f32>],
    tiles: &[usize; R],
    panel: Panel,
) {
    use std::arch::x86_64::*;
    assert!(k0 <= k1 && k1 <= depth && a.len() >= R * depth && b.len() >= k1 * PANEL_COLS);
    assert!(panel.width <= PANEL_COLS);
    for &tile in tiles {
        assert!(tile + panel.offset + panel.width <= dx.len());
    }
    let low = ((1u64 << panel.width.min(16)) - 1) as u16;
    let high = ((1u64 << panel.width.saturating_sub(16)) - 1) as u16;
    let mut low_sums = [_mm512_setzero_ps(); R];
    let mut high_sums = [_mm512_setzero_ps(); R];
    // SAFETY: the asserts show that row `i < R` of `a` holds `depth >= k1` values
    // (`a[i * depth + k]`, `k < k1`, lies inside `a`) and that `b` holds `k1` rows of
    // `PANEL_COLS` values; the loop reads nothing else.
    unsafe {
        let (a, b) = (a.as_ptr(), b.as_ptr());
        for k in k0..k1 {
            let low_b = _mm512_loadu_ps(b.add(k * PANEL_COLS));
            let high_b = _mm512_loadu_ps(b.add(k * PANEL_COLS + 16));
            for i in 0..R {
                let value = _mm512_set1_ps(*a.add(i * depth + k));
                low_sums[i] = _mm512_fmadd_ps(value, low_b, low_sums[i]);
                high_sums[i] = _mm512_fmadd_ps(value, high_b, high_sums[i]);
            }
        }
    }
    for i in 0..R {
        let at = tiles[i] + panel.offset;
        // SAFETY: the asserts show that `dx[at..at + width]` lies inside `dx`; the masks
        // enable only those lanes (the first 16 in `low`, the rest, when there are more,
        // in `high`), and masked-off lanes are neither read nor written nor faulted on.
        // Loads (`k0 > 0`) read what this block's first run stored, so initialised f32.
        unsafe {
            let out = dx.as_mut_ptr().add(at).cast::<f32>();
            if k0 > 0 {
                low_sums[i] = _mm512_add_ps(low_sums[i], _mm512_maskz_loadu_ps(low, out));
            }
            _mm512_mask_storeu_ps(out, low, low_sums[i]);
            if panel.width > 16 {
                let out = out.add(16);
                if k0 > 0 {
                    high_sums[i] = _mm512_add_ps(high_sums[i], _mm512_maskz_loadu_ps(high, out));
                }
                _mm512_mask_storeu_ps(out, high, high_sums[i]);
            }
        }
    }
}
