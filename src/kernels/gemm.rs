//! A bounds-checked front for the `gemm` crate's matrix product.

use crate::element::Element;

/// A strided matrix inside a slice.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a, T> {
    pub data: &'a [T],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a, T: 'static> Mat<'a, T> {
    /// The same matrix of `f32`, when `T` is `f32`.
    fn into_f32(self) -> Option<Mat<'a, f32>> {
        super::f32s(self.data).map(|data| Mat {
            data,
            rows: self.rows,
            cols: self.cols,
            row_stride: self.row_stride,
            col_stride: self.col_stride,
        })
    }
}

/// A strided mutable matrix inside a slice.
pub(crate) struct MatMut<'a, T> {
    pub data: &'a mut [T],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

fn extent(rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * row_stride + (cols - 1) * col_stride + 1
    }
}

/// `dst = lhs * rhs` (or `dst += lhs * rhs` with `accumulate`), single-threaded: callers
/// parallelise over independent products so results never depend on the thread count.
///
/// Panics only on an internal shape bug (mismatched inner dimensions or a matrix that
/// reaches past its slice), never on user input: callers derive every size from a
/// validated [`crate::problem::Problem`].
pub(crate) fn gemm<T: Element>(
    mut dst: MatMut<'_, T>,
    accumulate: bool,
    lhs: Mat<'_, T>,
    rhs: Mat<'_, T>,
) {
    assert!(lhs.rows == dst.rows && rhs.cols == dst.cols && lhs.cols == rhs.rows);
    assert!(extent(dst.rows, dst.cols, dst.row_stride, dst.col_stride) <= dst.data.len());
    assert!(extent(lhs.rows, lhs.cols, lhs.row_stride, lhs.col_stride) <= lhs.data.len());
    assert!(extent(rhs.rows, rhs.cols, rhs.row_stride, rhs.col_stride) <= rhs.data.len());
    if dst.rows == 0 || dst.cols == 0 {
        return;
    }
    if narrow(&mut dst, accumulate, lhs, rhs) {
        return;
    }
    if lhs.cols == 0 {
        if !accumulate {
            for r in 0..dst.rows {
                for c in 0..dst.cols {
                    dst.data[r * dst.row_stride + c * dst.col_stride] = T::zero();
                }
            }
        }
        return;
    }
    // SAFETY: the asserts above show that every element the product reads or writes,
    // (rows-1)*row_stride + (cols-1)*col_stride at most, lies inside the borrowed slices;
    // `dst` is borrowed mutably, so it cannot alias `lhs` or `rhs`. Strides fit isize
    // because the extents fit in slices. `gemm` computes dst = alpha*dst + beta*lhs*rhs.
    unsafe {
        gemm::gemm(
            dst.rows,
            dst.cols,
            lhs.cols,
            dst.data.as_mut_ptr(),
            dst.col_stride as isize,
            dst.row_stride as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            if accumulate { T::one() } else { T::zero() },
            T::one(),
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Most result columns of [`narrow`]'s products: one AVX-512 register of f32.
const NARROW_COLS: usize = 16;

/// Inner indices summed in registers before [`narrow_f32`] adds them to the result.
const NARROW_DEPTH: usize = 128;

/// Rows of one block of [`narrow_f32`]: one accumulator register each.
const NARROW_ROWS: usize = 16;

/// f32 products with at most [`NARROW_COLS`] unit-stride result columns and unit-stride
/// `lhs` rows (Winograd's products for RGB outputs, im2col rows times thin filters),
/// which the `gemm` crate's micro-kernels cover with mostly idle lanes: each result row
/// is one register, and every inner index adds a broadcast `lhs` value times the `rhs`
/// row. Returns false, having written nothing, for other products (an empty inner
/// dimension; a strided `lhs`, such as the filter gradient's transposed columns, which
/// measured slower) or CPUs. Sums run in a fixed order.
fn narrow<T: Element>(
    dst: &mut MatMut<'_, T>,
    accumulate: bool,
    lhs: Mat<'_, T>,
    rhs: Mat<'_, T>,
) -> bool {
    #[cfg(target_arch = "x86_64")]
    if dst.cols <= NARROW_COLS
        && lhs.cols > 0
        && dst.col_stride == 1
        && rhs.col_stride == 1
        && lhs.col_stride == 1
        && super::simd::avx512()
    {
        let (rows, row_stride) = (dst.rows, dst.row_stride);
        if let (Some(out), Some(lhs), Some(rhs)) =
            (super::f32s_mut(dst.data), lhs.into_f32(), rhs.into_f32())
        {
            // SAFETY: the CPU has AVX-512F (checked above); `gemm` checked every extent.
            unsafe { narrow_f32((out, rows, row_stride), accumulate, lhs, rhs) };
            return true;
        }
    }
    let _ = (dst, accumulate, lhs, rhs);
    false
}

/// [`narrow`] for f32: blocks of [`NARROW_ROWS`] result rows, then the remaining rows.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn narrow_f32(
    dst: (&mut [f32], usize, usize),
    accumulate: bool,
    lhs: Mat<'_, f32>,
    rhs: Mat<'_, f32>,
) {
    let (out, rows, row_stride) = dst;
    let mut first = 0;
    while first + NARROW_ROWS <= rows {
        narrow_block::<NARROW_ROWS>(out, row_stride, first, accumulate, lhs, rhs);
        first += NARROW_ROWS;
    }
    for &block in &[8, 4, 2, 1] {
        if first + block <= rows {
            match block {
                8 => narrow_block::<8>(out, row_stride, first, accumulate, lhs, rhs),
                4 => narrow_block::<4>(out, row_stride, first, accumulate, lhs, rhs),
                2 => narrow_block::<2>(out, row_stride, first, accumulate, lhs, rhs),
                _ => narrow_block::<1>(out, row_stride, first, accumulate, lhs, rhs),
            }
            first += block;
        }
    }
}

/// Result rows `first..first + R` of a [`narrow`] product, accumulated in registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn narrow_block<const R: usize>(
    out: &mut [f32],
    row_stride: usize,
    first: usize,
    accumulate: bool,
    lhs: Mat<'_, f32>,
    rhs: Mat<'_, f32>,
) {
    use std::arch::x86_64::*;
    let cols = rhs.cols;
    let mask = ((1u32 << cols) - 1) as u16;
    // Blocks of the inner index, each summed in registers and then added to the result
    // (short chains of additions keep the rounding error near the `gemm` crate's).
    for k0 in (0..lhs.cols).step_by(NARROW_DEPTH) {
        let mut acc = [_mm512_setzero_ps(); R];
        for k in k0..(k0 + NARROW_DEPTH).min(lhs.cols) {
            // SAFETY: `gemm` checked that row `k` of `rhs` (its first `cols` values) lies
            // in `rhs.data`; the mask enables only those lanes, and masked-off lanes are
            // neither read nor faulted on.
            let b =
                unsafe { _mm512_maskz_loadu_ps(mask, rhs.data.as_ptr().add(k * rhs.row_stride)) };
            for (i, a) in acc.iter_mut().enumerate() {
                let at = (first + i) * lhs.row_stride + k * lhs.col_stride;
                *a = _mm512_fmadd_ps(_mm512_set1_ps(lhs.data[at]), b, *a);
            }
        }
        let add = accumulate || k0 > 0;
        for (i, a) in acc.iter().enumerate() {
            let row = &mut out[(first + i) * row_stride..][..cols];
            // SAFETY: `row` holds the `cols` values the mask enables (bounds-checked
            // slice); masked-off lanes are neither read nor written.
            unsafe {
                let sum = if add {
                    _mm512_add_ps(_mm512_maskz_loadu_ps(mask, row.as_ptr()), *a)
                } else {
                    *a
                };
                _mm512_mask_storeu_ps(row.as_mut_ptr(), mask, sum);
            }
        }
    }
}
