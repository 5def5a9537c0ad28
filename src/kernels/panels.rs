//! A register-blocked f32 product on AVX-512 whose right-hand side is packed once, in
//! panels of [`PANEL_COLS`] columns, and reused by every call: rows of `a` times the
//! panels, each result row stored at its own offset. The tile product of
//! [`super::tiles`] stores its rows straight into `dx`; Winograd's products store one
//! row per tile, with the filter's transformed planes packed once per call instead of
//! once per GEMM.
//!
//! Each result is one dot product summed in a fixed order (runs of [`DEPTH`] inner
//! indices, each in registers, added in turn), whatever the rows' blocking.

use std::mem::MaybeUninit;

/// Rows of `a` per register block: two accumulators each, 24 in all.
const BLOCK_ROWS: usize = 12;
/// Result columns per panel: two AVX-512 registers of f32.
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
    pub blocks: Vec<Vec<f32>>,
    pub panels: Vec<Panel>,
}

/// Whether [`multiply`] runs on this CPU (AVX-512F).
pub(crate) fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("avx512f");
    #[allow(unreachable_code)]
    false
}

/// Storage the product writes f32 results into: initialised values, or room not yet
/// written (the product stores each value before it reads it back).
pub(crate) trait Room: Sized {}
impl Room for f32 {}
impl Room for MaybeUninit<f32> {}

/// `out[offset(i) + panel.offset + j] = sum_k a[i * depth + k] * b[k][j]` for every row
/// `i` of `a` (`a.len() / depth` rows) and every panel of `packed`. Returns false,
/// having written nothing, where the CPU lacks AVX-512F.
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
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU has AVX-512F, checked just above.
        unsafe { run(a, depth, packed, out, offset) };
        return true;
    }
    let _ = (a, depth, packed, out, offset);
    false
}

/// The rows of `a` in blocks of [`BLOCK_ROWS`], then smaller blocks for the rest.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn run<O: Room>(
    a: &[f32],
    depth: usize,
    packed: &Packed,
    out: &mut [O],
    offset: &dyn Fn(usize) -> usize,
) {
    let rows = a.len().checked_div(depth).unwrap_or(0);
    let mut first = 0;
    while first < rows {
        let count = [BLOCK_ROWS, 8, 4, 2, 1]
            .into_iter()
            .find(|&count| first + count <= rows)
            .unwrap_or(1);
        let block_a = &a[first * depth..][..count * depth];
        let mut starts = [0; BLOCK_ROWS];
        for (i, start) in starts.iter_mut().enumerate().take(count) {
            *start = offset(first + i);
        }
        match count {
            BLOCK_ROWS => strip::<BLOCK_ROWS, O>(block_a, depth, packed, out, &starts),
            8 => strip::<8, O>(block_a, depth, packed, out, &starts),
            4 => strip::<4, O>(block_a, depth, packed, out, &starts),
            2 => strip::<2, O>(block_a, depth, packed, out, &starts),
            _ => strip::<1, O>(block_a, depth, packed, out, &starts),
        }
        first += count;
    }
}

/// The results of `R` consecutive rows of `a` (their rows start at `starts` in `out`),
/// every panel in turn.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn strip<const R: usize, O: Room>(
    a: &[f32],
    depth: usize,
    packed: &Packed,
    out: &mut [O],
    starts: &[usize; BLOCK_ROWS],
) {
    let rows: [usize; R] = std::array::from_fn(|i| starts[i]);
    for (b, panel) in packed.blocks.iter().zip(&packed.panels) {
        for k0 in (0..depth).step_by(DEPTH) {
            let k1 = (k0 + DEPTH).min(depth);
            block::<R, O>(a, depth, (k0, k1), b, out, &rows, *panel);
        }
    }
}

/// `out[rows[i] + panel.offset + j] (+)= sum over k in k0..k1 of a[i][k] * b[k][j]` for
/// the `R` rows of `a` (row stride `depth`) and the panel's `width` columns: stored on
/// the first run of the inner index, added on later ones (which read only values the
/// first run stored).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn block<const R: usize, O: Room>(
    a: &[f32],
    depth: usize,
    (k0, k1): (usize, usize),
    b: &[f32],
    out: &mut [O],
    rows: &[usize; R],
    panel: Panel,
) {
    use std::arch::x86_64::*;
    assert!(k0 <= k1 && k1 <= depth && a.len() >= R * depth && b.len() >= k1 * PANEL_COLS);
    assert!(panel.width <= PANEL_COLS);
    for &row in rows {
        assert!(row + panel.offset + panel.width <= out.len());
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
        let at = rows[i] + panel.offset;
        // SAFETY: the asserts show that `out[at..at + width]` lies inside `out`, whose
        // elements are f32 or room for one (`Room`: the same layout); the masks enable
        // only those lanes (the first 16 in `low`, the rest, when there are more, in
        // `high`), and masked-off lanes are neither read nor written nor faulted on.
        // Loads (`k0 > 0`) read what this block's first run stored, so initialised f32.
        unsafe {
            let out = out.as_mut_ptr().add(at).cast::<f32>();
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
