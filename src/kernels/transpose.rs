//! Transposes of 16 x 16 blocks, for moving data between channel planes (NCHW) and
//! channel-minor pixels (NHWC) inside a kernel's task: f32 between memory and AVX-512
//! registers (masked loads and stores at the edges), other types and CPUs element by
//! element through a block buffer.

#[cfg(target_arch = "x86_64")]
use super::lines::lead;

/// Rows and columns of a block.
const BLOCK: usize = 16;

/// A block of values, row-major.
type Block<T> = [[T; BLOCK]; BLOCK];

/// Transposes a block in place, element by element (the f32 paths use [`registers`]).
#[inline]
fn block<T: Copy>(b: &mut Block<T>) {
    let copy = *b;
    for (i, row) in b.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = copy[j][i];
        }
    }
}

/// The 16 x 16 f32 transpose of 16 registers (rows) in four rounds of shuffles: 32-bit
/// pairs, 64-bit pairs, then 128-bit lanes twice ([`three_rounds`], then
/// [`last_round`] for each pair of results).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) fn registers(
    r: [std::arch::x86_64::__m512; BLOCK],
) -> [std::arch::x86_64::__m512; BLOCK] {
    let t = three_rounds(r);
    let mut columns = t;
    for i in 0..BLOCK / 2 {
        (columns[i], columns[i + 8]) = last_round(&t, i);
    }
    columns
}

/// The first three rounds of [`registers`]: what [`last_round`] takes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) fn three_rounds(
    mut r: [std::arch::x86_64::__m512; BLOCK],
) -> [std::arch::x86_64::__m512; BLOCK] {
    use std::arch::x86_64::*;
    let mut t = [_mm512_setzero_ps(); BLOCK];
    for i in (0..BLOCK).step_by(2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for i in (0..BLOCK).step_by(4) {
        let pd = |a: __m512, c: __m512, high: bool| {
            let (a, c) = (_mm512_castps_pd(a), _mm512_castps_pd(c));
            _mm512_castpd_ps(if high {
                _mm512_unpackhi_pd(a, c)
            } else {
                _mm512_unpacklo_pd(a, c)
            })
        };
        r[i] = pd(t[i], t[i + 2], false);
        r[i + 1] = pd(t[i], t[i + 2], true);
        r[i + 2] = pd(t[i + 1], t[i + 3], false);
        r[i + 3] = pd(t[i + 1], t[i + 3], true);
    }
    for half in [0, 8] {
        for i in 0..4 {
            t[half + i] = _mm512_shuffle_f32x4::<0x88>(r[half + i], r[half + i + 4]);
            t[half + i + 4] = _mm512_shuffle_f32x4::<0xdd>(r[half + i], r[half + i + 4]);
        }
    }
    t
}

/// Columns `i` and `i + 8` (`i < 8`) of the transpose, from [`three_rounds`]' result:
/// taken a pair at a time, the columns need not all be live at once (a kernel that
/// multiplies each as it comes keeps its accumulators in registers too).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) fn last_round(
    t: &[std::arch::x86_64::__m512; BLOCK],
    i: usize,
) -> (std::arch::x86_64::__m512, std::arch::x86_64::__m512) {
    use std::arch::x86_64::*;
    (
        _mm512_shuffle_f32x4::<0x88>(t[i], t[i + 8]),
        _mm512_shuffle_f32x4::<0xdd>(t[i], t[i + 8]),
    )
}

/// `dst[..len] = src[..len]` by fixed-size (inlined) copies of 16, 8, 4, 2 and 1 values,
/// instead of a call to `memcpy` for a few bytes (short rows of images and blocks).
#[inline(always)]
pub(crate) fn copy<T: Copy>(dst: &mut [T], src: &[T], len: usize) {
    #[inline(always)]
    fn piece<T: Copy, const N: usize>(dst: &mut [T], src: &[T], at: &mut usize, len: usize) {
        while len - *at >= N {
            if let (Some(d), Some(s)) = (
                dst[*at..].first_chunk_mut::<N>(),
                src[*at..].first_chunk::<N>(),
            ) {
                *d = *s;
                *at += N;
            } else {
                return;
            }
        }
    }
    let mut at = 0;
    piece::<T, BLOCK>(dst, src, &mut at, len);
    piece::<T, 8>(dst, src, &mut at, len);
    piece::<T, 4>(dst, src, &mut at, len);
    piece::<T, 2>(dst, src, &mut at, len);
    piece::<T, 1>(dst, src, &mut at, len);
}

/// Loads a block row: the whole 16 values where `src` has them (the block's unused
/// columns then hold values that are never stored), else `len`.
#[inline(always)]
fn load<T: Copy>(row: &mut [T; BLOCK], src: &[T], len: usize) {
    match src.first_chunk::<BLOCK>() {
        Some(s) => *row = *s,
        None => copy(row, src, len),
    }
}

/// `dst[j * dst_stride + i] = src[i * src_stride + j]` for `i < rows`, `j < cols`.
pub(crate) fn strided<T: Copy + Default + 'static>(
    src: &[T],
    src_stride: usize,
    (rows, cols): (usize, usize),
    dst: &mut [T],
    dst_stride: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if is_f32::<T>() && super::simd::avx512() {
        // SAFETY: `T` is `f32` (the same `TypeId`), so both slices hold `f32` values and
        // keep their lengths; the CPU has AVX-512F, checked just above.
        unsafe {
            let src = std::slice::from_raw_parts(src.as_ptr().cast::<f32>(), src.len());
            let dst = std::slice::from_raw_parts_mut(dst.as_mut_ptr().cast::<f32>(), dst.len());
            strided_f32(src, src_stride, (rows, cols), dst, dst_stride);
        }
        return;
    }
    strided_portable(src, src_stride, (rows, cols), dst, dst_stride);
}

/// Whether `T` is `f32`.
fn is_f32<T: 'static>() -> bool {
    std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
}

/// `(start, size)` of the blocks `0..len` is cut into: a first block of `lead` (when
/// nonzero), then blocks of 16. With `lead` from [`lead`], every later block starts on a
/// cache line: loads and stores of 16 values that straddle lines cost two line accesses
/// each, and the strided rows of a block share few cache sets.
#[cfg(target_arch = "x86_64")]
fn blocks(len: usize, lead: usize) -> impl Iterator<Item = (usize, usize)> {
    let first = lead.min(len);
    let head = (first > 0).then_some((0, first));
    let rest = (first..len).step_by(BLOCK);
    head.into_iter()
        .chain(rest.map(move |start| (start, BLOCK.min(len - start))))
}

/// [`strided`] for f32: every block straight between memory and registers, full blocks
/// by plain loads and stores on cache lines (blocks aligned to the first source row and
/// destination column), partial ones by masked loads and stores.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn strided_f32(
    src: &[f32],
    src_stride: usize,
    (rows, cols): (usize, usize),
    dst: &mut [f32],
    dst_stride: usize,
) {
    for (i0, height) in blocks(rows, lead(dst.as_ptr())) {
        for (j0, width) in blocks(cols, lead(src.as_ptr())) {
            let mut r = [zero(); BLOCK];
            if height == BLOCK && width == BLOCK {
                for (i, v) in r.iter_mut().enumerate() {
                    *v = load_full(&src[(i0 + i) * src_stride + j0..]);
                }
                for (j, v) in registers(r).iter().enumerate() {
                    store_full(&mut dst[(j0 + j) * dst_stride + i0..], *v);
                }
                continue;
            }
            for (i, v) in r.iter_mut().enumerate().take(height) {
                *v = load_lanes(&src[(i0 + i) * src_stride + j0..][..width]);
            }
            for (j, v) in registers(r).iter().enumerate().take(width) {
                store_lanes(&mut dst[(j0 + j) * dst_stride + i0..][..height], *v);
            }
        }
    }
}

/// A register of zeros.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn zero() -> std::arch::x86_64::__m512 {
    std::arch::x86_64::_mm512_setzero_ps()
}

/// The first `values.len() <= 16` lanes of a register from `values`, the rest zero.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn load_lanes(values: &[f32]) -> std::arch::x86_64::__m512 {
    let mask = ((1u32 << values.len().min(BLOCK)) - 1) as u16;
    // SAFETY: the mask enables the first `values.len()` lanes only, which `values` holds;
    // masked-off lanes are neither read nor faulted on.
    unsafe { std::arch::x86_64::_mm512_maskz_loadu_ps(mask, values.as_ptr()) }
}

/// A register from the first 16 of `values`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn load_full(values: &[f32]) -> std::arch::x86_64::__m512 {
    let values = &values[..BLOCK];
    // SAFETY: `values` holds the 16 values read (the slice above is bounds-checked).
    unsafe { std::arch::x86_64::_mm512_loadu_ps(values.as_ptr()) }
}

/// Stores a register into the first 16 of `values`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn store_full(values: &mut [f32], v: std::arch::x86_64::__m512) {
    let values = &mut values[..BLOCK];
    // SAFETY: `values` holds the 16 values written (the slice above is bounds-checked).
    unsafe { std::arch::x86_64::_mm512_storeu_ps(values.as_mut_ptr(), v) }
}

/// Stores the first `values.len() <= 16` lanes of a register into `values`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
fn store_lanes(values: &mut [f32], v: std::arch::x86_64::__m512) {
    let mask = ((1u32 << values.len().min(BLOCK)) - 1) as u16;
    // SAFETY: the mask enables the first `values.len()` lanes only, which `values` holds;
    // masked-off lanes are not written.
    unsafe { std::arch::x86_64::_mm512_mask_storeu_ps(values.as_mut_ptr(), mask, v) }
}

/// [`strided`] through a block buffer, for any element type.
fn strided_portable<T: Copy + Default + 'static>(
    src: &[T],
    src_stride: usize,
    (rows, cols): (usize, usize),
    dst: &mut [T],
    dst_stride: usize,
) {
    let mut b = [[T::default(); BLOCK]; BLOCK];
    for i0 in (0..rows).step_by(BLOCK) {
        let height = BLOCK.min(rows - i0);
        for j0 in (0..cols).step_by(BLOCK) {
            let width = BLOCK.min(cols - j0);
            for (i, row) in b.iter_mut().enumerate().take(height) {
                load(row, &src[(i0 + i) * src_stride + j0..], width);
            }
            block(&mut b);
            for (j, row) in b.iter().enumerate().take(width) {
                copy(&mut dst[(j0 + j) * dst_stride + i0..], row, height);
            }
        }
    }
}

/// `lines[j][offset + i] = src[i * src_stride + j]` for `i < count` and every line `j`:
/// pixel-major values (channels contiguous) into one line per channel.
pub(crate) fn into_lines<T: Copy + Default + 'static>(
    src: &[T],
    src_stride: usize,
    count: usize,
    lines: &mut [&mut [T]],
    offset: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if is_f32::<T>() && super::simd::avx512() {
        // SAFETY: `T` is `f32` (the same `TypeId`), so `src` and every line hold `f32`
        // values, and `&mut [f32]` has the layout of `&mut [T]`; the CPU has AVX-512F,
        // checked just above.
        unsafe {
            let src = std::slice::from_raw_parts(src.as_ptr().cast::<f32>(), src.len());
            let lines = &mut *(lines as *mut [&mut [T]] as *mut [&mut [f32]]);
            into_lines_f32(src, src_stride, count, lines, offset);
        }
        return;
    }
    into_lines_portable(src, src_stride, count, lines, offset);
}

/// [`into_lines`] for f32: every block straight between memory and registers, full
/// blocks by plain loads and stores on cache lines where the source rows and the first
/// line allow, partial ones by masked loads and stores.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn into_lines_f32(
    src: &[f32],
    src_stride: usize,
    count: usize,
    lines: &mut [&mut [f32]],
    offset: usize,
) {
    let Some(first_line) = lines.first() else {
        return;
    };
    let row_lead = lead(first_line[offset..].as_ptr());
    for (i0, height) in blocks(count, row_lead) {
        for (j0, width) in blocks(lines.len(), lead(src.as_ptr())) {
            let group = &mut lines[j0..j0 + width];
            let mut r = [zero(); BLOCK];
            if height == BLOCK && width == BLOCK {
                for (i, v) in r.iter_mut().enumerate() {
                    *v = load_full(&src[(i0 + i) * src_stride + j0..]);
                }
                for (line, v) in group.iter_mut().zip(registers(r)) {
                    store_full(&mut line[offset + i0..], v);
                }
                continue;
            }
            for (i, v) in r.iter_mut().enumerate().take(height) {
                *v = load_lanes(&src[(i0 + i) * src_stride + j0..][..width]);
            }
            for (line, v) in group.iter_mut().zip(registers(r)) {
                store_lanes(&mut line[offset + i0..][..height], v);
            }
        }
    }
}

/// [`into_lines`] through a block buffer, for any element type.
fn into_lines_portable<T: Copy + Default + 'static>(
    src: &[T],
    src_stride: usize,
    count: usize,
    lines: &mut [&mut [T]],
    offset: usize,
) {
    let mut b = [[T::default(); BLOCK]; BLOCK];
    for i0 in (0..count).step_by(BLOCK) {
        let height = BLOCK.min(count - i0);
        for (j0, group) in lines.chunks_mut(BLOCK).enumerate() {
            let (j0, width) = (j0 * BLOCK, group.len());
            for (i, row) in b.iter_mut().enumerate().take(height) {
                load(row, &src[(i0 + i) * src_stride + j0..], width);
            }
            block(&mut b);
            for (line, row) in group.iter_mut().zip(&b) {
                copy(&mut line[offset + i0..], row, height);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check<T: Copy + Default + PartialEq + std::fmt::Debug + 'static>(
        value: impl Fn(usize) -> T,
    ) {
        // Shapes with partial blocks, and slices starting off cache lines (the f32 path
        // aligns its blocks to them).
        for ((rows, cols), shift) in [(1, 1), (16, 16), (17, 5), (3, 40), (33, 47), (48, 64)]
            .into_iter()
            .flat_map(|shape| [(shape, 0), (shape, 5)])
        {
            let (src_stride, dst_stride) = (cols + 3, rows + 2);
            let src_values: Vec<T> = (0..shift + rows * src_stride).map(&value).collect();
            let src = &src_values[shift..];
            // The dispatching entry points (AVX-512 for f32 where the CPU has it) and the
            // portable ones.
            for portable in [false, true] {
                let mut dst_values = vec![T::default(); shift + cols * dst_stride];
                let dst = &mut dst_values[shift..];
                if portable {
                    strided_portable(src, src_stride, (rows, cols), dst, dst_stride);
                } else {
                    strided(src, src_stride, (rows, cols), dst, dst_stride);
                }
                for i in 0..rows {
                    for j in 0..cols {
                        let (got, want) = (dst[j * dst_stride + i], src[i * src_stride + j]);
                        assert_eq!(got, want, "{rows}x{cols}");
                    }
                }
                let mut lines: Vec<Vec<T>> = vec![vec![T::default(); rows + 5]; cols];
                let mut views: Vec<&mut [T]> = lines.iter_mut().map(Vec::as_mut_slice).collect();
                if portable {
                    into_lines_portable(src, src_stride, rows, &mut views, 5);
                } else {
                    into_lines(src, src_stride, rows, &mut views, 5);
                }
                for (j, line) in lines.iter().enumerate() {
                    assert!(line[..5].iter().all(|v| *v == T::default()));
                    for i in 0..rows {
                        let want = src[i * src_stride + j];
                        assert_eq!(line[5 + i], want, "{rows}x{cols} line {j}");
                    }
                }
            }
        }
    }

    /// Both element types (f32 takes the AVX-512 path where the CPU has it) against the
    /// definition, on sizes with partial blocks.
    #[test]
    fn transposes_match_the_definition() {
        check(|i| i as f32 + 1.0);
        check(|i| i as f64 - 7.5);
    }
}
