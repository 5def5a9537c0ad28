//! A register-blocked f32 product (AVX-512, or AVX2 with FMA) whose right-hand side is packed once, in
//! panels of [`PANEL_COLS`] columns, and reused by every call: rows of `a` times the
//! panels, each result row stored at its own offset. The tile product of
//! [`super::tiles`] stores its rows straight into `dx`; Winograd's products store one
//! row per tile, with the filter's transformed planes packed once per call instead of
//! once per GEMM.
//!
//! Each result is one dot product summed in a fixed order (runs of [`DEPTH`] inner
//! indices, each in registers, added in turn), whatever the rows' blocking.

use super::lines::Lines;
use super::simd::{self, F32s, Isa};
use std::mem::MaybeUninit;

/// Most rows of `a` per register block: two accumulators each, 24 in all on AVX-512 (12
/// on AVX2, whose blocks take 6 rows).
const BLOCK_ROWS: usize = 12;
/// Result columns per panel: two AVX-512 registers of f32 (four of AVX2, taken two at a
/// time).
pub(crate) const PANEL_COLS: usize = 32;
/// Inner indices summed in registers before the block is stored (or added to what an
/// earlier run stored).
const DEPTH: usize = 256;

/// Where a panel's columns land in a result row.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Panel {
    /// Offset of the panel's first column from the row's start.
    pub offset: usize,
    /// Columns that exist (a run's last panel may be narrower).
    pub width: usize,
}

/// A right-hand side in panels: panel `j` holds, for each inner index `k`, its
/// [`PANEL_COLS`] values (zeros past `width`).
pub(crate) struct Packed {
    pub blocks: Vec<Lines<f32>>,
    pub panels: Vec<Panel>,
}

/// Whether [`multiply`] runs on this CPU (AVX-512F, or AVX2 with FMA).
pub(crate) fn available() -> bool {
    simd::isa() >= Isa::Avx2
}

/// Storage the product writes f32 results into: initialised values, or room not yet
/// written (the product stores each value before it reads it back).
pub(crate) trait Room: Sized {}
impl Room for f32 {}
impl Room for MaybeUninit<f32> {}

/// `out[offset(i) + panel.offset + j] = sum_k a[i * depth + k] * b[k][j]` for every row
/// `i` of `a` (`a.len() / depth` rows) and every panel of `packed`. Returns false,
/// having written nothing, where the CPU has neither AVX-512F nor AVX2 with FMA.
///
/// Panics (an internal bug, never user input) where a row's results reach past `out`
/// or `a` holds fewer inner indices than the panels.
pub(crate) fn multiply<O: Room>(
    a: &[f32],
    depth: usize,
    packed: &Packed,
    out: &mut [O],
    offset: &dyn Fn(usize) -> usize,
) -> bool {
    let product = Product {
        a,
        depth,
        packed,
        out,
        offset,
    };
    simd::dispatch(product).is_ok()
}

/// [`multiply`]'s arguments, run for one register type.
struct Product<'p, O> {
    a: &'p [f32],
    depth: usize,
    packed: &'p Packed,
    out: &'p mut [O],
    offset: &'p dyn Fn(usize) -> usize,
}

/// Bytes of panels the AVX2 product runs every row of `a` through before the next ones
/// (AVX2-only chips have 256-512 KiB of L2 per core: U-Net's deep up-convolution, 512
/// KiB of panels, 3.37 -> 3.25 ms at one thread on Zen 3). AVX-512 chips, with at least
/// 1 MiB, take every panel at once.
const AVX2_GROUP_BYTES: usize = 128 << 10;

impl<O: Room> simd::Kernel for Product<'_, O> {
    type Output = ();

    /// The panels in groups (see [`AVX2_GROUP_BYTES`]; at least one panel each); for
    /// each group, the rows of `a` in blocks of 12 (AVX-512) or 6 (AVX2, 16 registers),
    /// then smaller blocks for the rest.
    #[inline(always)]
    unsafe fn run<V: F32s>(self) {
        let Product {
            a,
            depth,
            packed,
            out,
            offset,
        } = self;
        let (block_rows, group_bytes) = if V::REGISTERS >= 32 {
            (BLOCK_ROWS, usize::MAX)
        } else {
            (6, AVX2_GROUP_BYTES)
        };
        let rows = a.len().checked_div(depth).unwrap_or(0);
        let panel_bytes = depth * PANEL_COLS * std::mem::size_of::<f32>();
        let per_group = (group_bytes / panel_bytes.max(1)).max(1);
        let groups = packed
            .blocks
            .chunks(per_group)
            .zip(packed.panels.chunks(per_group));
        for group in groups {
            let mut first = 0;
            while first < rows {
                let count = [12, 8, 6, 4, 2, 1]
                    .into_iter()
                    .find(|&count| count <= block_rows && first + count <= rows)
                    .unwrap_or(1);
                let block_a = &a[first * depth..][..count * depth];
                let mut starts = [0; BLOCK_ROWS];
                for (i, start) in starts.iter_mut().enumerate().take(count) {
                    *start = offset(first + i);
                }
                match count {
                    12 => strip::<V, 12, O>(block_a, depth, group, out, &starts),
                    8 => strip::<V, 8, O>(block_a, depth, group, out, &starts),
                    6 => strip::<V, 6, O>(block_a, depth, group, out, &starts),
                    4 => strip::<V, 4, O>(block_a, depth, group, out, &starts),
                    2 => strip::<V, 2, O>(block_a, depth, group, out, &starts),
                    _ => strip::<V, 1, O>(block_a, depth, group, out, &starts),
                }
                first += count;
            }
        }
    }
}

/// The results of `R` consecutive rows of `a` (their rows start at `starts` in `out`),
/// every panel of the group in turn, each in strips of two registers of columns.
#[inline(always)]
fn strip<V: F32s, const R: usize, O: Room>(
    a: &[f32],
    depth: usize,
    (blocks, panels): (&[Lines<f32>], &[Panel]),
    out: &mut [O],
    starts: &[usize; BLOCK_ROWS],
) {
    let rows: [usize; R] = std::array::from_fn(|i| starts[i]);
    let strip_cols = 2 * V::LANES;
    for (b, panel) in blocks.iter().zip(panels) {
        for first in (0..panel.width).step_by(strip_cols) {
            let columns = Panel {
                offset: panel.offset + first,
                width: (panel.width - first).min(strip_cols),
            };
            for k0 in (0..depth).step_by(DEPTH) {
                let k1 = (k0 + DEPTH).min(depth);
                block::<V, R, O>(a, depth, (k0, k1), (b, first), out, &rows, columns);
            }
        }
    }
}

/// `out[rows[i] + columns.offset + j] (+)= sum over k in k0..k1 of a[i][k] *
/// b[k][first + j]` for the `R` rows of `a` (row stride `depth`) and the `columns.width
/// <= 2 * LANES` columns: stored on the first run of the inner index, added on later ones
/// (which read only values the first run stored). The caller makes sure that the CPU
/// has `V`'s instruction set.
#[inline(always)]
fn block<V: F32s, const R: usize, O: Room>(
    a: &[f32],
    depth: usize,
    (k0, k1): (usize, usize),
    (b, first): (&[f32], usize),
    out: &mut [O],
    rows: &[usize; R],
    columns: Panel,
) {
    let lanes = V::LANES;
    assert!(k0 <= k1 && k1 <= depth && a.len() >= R * depth && b.len() >= k1 * PANEL_COLS);
    assert!(columns.width <= 2 * lanes && first + 2 * lanes <= PANEL_COLS);
    for &row in rows {
        assert!(row + columns.offset + columns.width <= out.len());
    }
    let (low, high) = (
        columns.width.min(lanes),
        columns.width.saturating_sub(lanes),
    );
    // SAFETY: the caller makes sure that the CPU has `V`'s instruction set. The asserts
    // show that row `i < R` of `a` holds `depth >= k1` values (`a[i * depth + k]`, `k <
    // k1`, lies inside `a`) and that `b` holds `k1` rows of `PANEL_COLS` values, of which
    // the loop reads `first..first + 2 * LANES`; nothing else is read.
    let (mut low_sums, mut high_sums) = unsafe {
        let mut low_sums = [V::zero(); R];
        let mut high_sums = [V::zero(); R];
        let (a, b) = (a.as_ptr(), b.as_ptr().add(first));
        for k in k0..k1 {
            let low_b = V::load(b.add(k * PANEL_COLS));
            let high_b = V::load(b.add(k * PANEL_COLS + lanes));
            for i in 0..R {
                let value = V::splat(*a.add(i * depth + k));
                low_sums[i] = value.mul_add(low_b, low_sums[i]);
                high_sums[i] = value.mul_add(high_b, high_sums[i]);
            }
        }
        (low_sums, high_sums)
    };
    for i in 0..R {
        let at = rows[i] + columns.offset;
        // SAFETY: the asserts show that `out[at..at + width]` lies inside `out`, whose
        // elements are f32 or room for one (`Room`: the same layout); the masks enable
        // only those lanes (the first `low` of the first register, the `high` others of
        // the second), and the lanes past them are neither read nor written nor faulted
        // on.
        // Loads (`k0 > 0`) read what this block's first run stored, so initialised f32.
        unsafe {
            let out = out.as_mut_ptr().add(at).cast::<f32>();
            if k0 > 0 {
                low_sums[i] = low_sums[i].add(V::load_part(low, out));
                if high > 0 {
                    high_sums[i] = high_sums[i].add(V::load_part(high, out.add(lanes)));
                }
            }
            low_sums[i].store_part(low, out);
            if high > 0 {
                high_sums[i].store_part(high, out.add(lanes));
            }
        }
    }
}
