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
    dst: MatMut<'_, T>,
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
