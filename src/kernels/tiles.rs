//! Transposed convolutions whose kernel equals their stride, with no padding (U-Net's
//! 2x2 stride-2 up-convolutions): each `dy` pixel's product with the filter is its own
//! tile of `dx` (`kernel_h` runs of `kernel_w * in_channels` values) and no two tiles
//! meet. One register-blocked product ([`super::panels`]), rows `dy`'s pixels and
//! columns the filter's `(kh, kw, channel)`, stores every tile straight into `dx`: no
//! column buffer, no gather, each value of `dx` written once.
//!
//! f32 on AVX-512 or AVX2 with FMA, NHWC data, one group; the caller takes another plan for the rest.
//! Each value is one dot product summed in a fixed order, so results do not depend on
//! how the rows are split between threads.

use super::lines::Lines;
use super::panels::{Packed, Panel, PANEL_COLS};
use super::transpose;
use crate::problem::{Axis, Problem};
use rayon::prelude::*;
use std::mem::MaybeUninit;

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
/// product does not apply (not f32, neither AVX-512 nor AVX2, a problem [`applies`] rejects) or where
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
        if applies(p) && super::panels::available() {
            let product = |dx: &mut [std::mem::MaybeUninit<T>]| {
                super::uninit_f32s(dx).is_some_and(|dx| backward_data_f32(p, dy, w, dx))
            };
            // SAFETY: the product, where it returns true, stores all `len` values.
            // [`applies`] makes the tiles cover `dx` exactly: each dy line's tiles are
            // `stride_h` whole dx lines (`input_h = output_h * stride_h`), each pixel's
            // run `kernel_w * in_channels` values from `w * stride_w * in_channels`
            // (`input_w = output_w * stride_w`), the tasks cover every dy pixel in blocks,
            // and every block stores every panel's `width` columns of the run. (The
            // product returns early only where a size is zero, so `len` is zero.)
            return unsafe { super::fill_new(dx, (p.input_shape(), len), product) };
        }
    }
    let _ = (p, dy, w, dx, len);
    false
}

/// The filter as the product's right-hand side, in panels: panel `(kh, first)` holds,
/// for each `dy` channel `o`, the `PANEL_COLS` values `w[kh, j, o]` for `j` in
/// `first..first + PANEL_COLS` (`j = kw * in_channels + i`), zeros past the run's end.
fn pack_filter(p: &Problem, w: &[f32]) -> Packed {
    let (cin, cout) = (p.in_channels, p.out_channels);
    let run = p.width.kernel * cin;
    let panels_per_run = run.div_ceil(PANEL_COLS);
    let panel_of = |index: usize| {
        let (kh, first) = (index / panels_per_run, index % panels_per_run * PANEL_COLS);
        (kh, first, (run - first).min(PANEL_COLS))
    };
    let blocks = (0..p.height.kernel * panels_per_run)
        .into_par_iter()
        .map(|index| {
            let (kh, first, width) = panel_of(index);
            // The run's `width` filter rows (`cout` values each) transposed into the
            // panel's columns; columns past the run's end stay zero.
            let mut panel = Lines::zeros(cout * PANEL_COLS);
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
    Packed { blocks, panels }
}

/// The tile product into `dx`; false where the CPU lacks AVX-512F and AVX2 (then `dx` may be
/// partly written).
#[cfg(target_arch = "x86_64")]
fn backward_data_f32(p: &Problem, dy: &[f32], w: &[f32], dx: &mut [MaybeUninit<f32>]) -> bool {
    let (h, wd) = (p.height, p.width);
    let (cin, cout) = (p.in_channels, p.out_channels);
    let packed = pack_filter(p, w);
    // dx values of one dy line's tiles: `stride_h` full dx lines.
    let line = h.stride * wd.input * cin;
    let lines = p.batch * h.output;
    if line == 0 || lines == 0 || wd.output == 0 {
        return true;
    }
    let per_task = lines.div_ceil(4 * rayon::current_num_threads()).max(1);
    let offset = |r: usize| r / wd.output * line + r % wd.output * wd.stride * cin;
    dx.par_chunks_mut(per_task * line)
        .enumerate()
        .all(|(task, dx_task)| {
            let pixels = dx_task.len() / line * wd.output;
            let dy_task = &dy[task * per_task * wd.output * cout..][..pixels * cout];
            super::panels::multiply(dy_task, cout, &packed, dx_task, &offset)
        })
}
