//! Winograd's transforms with their coefficients as constants in the code, f32, one
//! register of lanes per value (generic over [`F32s`]: AVX-512 or AVX2; the `__m512`
//! forms serve the engines written with AVX-512 intrinsics): `BT` and `AT` of every tile size convt uses, computed at
//! compile time as [`Transforms::new`] makes them, one function per matrix (zero terms
//! vanish, unit ones are plain adds), and the two-dimensional transforms of one tile
//! built from them. The narrow engine runs its transforms with them, and the
//! column-vectorised engine its f32 ones.

#[cfg(target_arch = "x86_64")]
use super::simd::Avx512;
use super::simd::F32s;
#[cfg(test)]
use super::winograd::Transforms;
use super::winograd::{MAX_ALPHA, POINTS};

/// `BT` of Winograd's F(m, r) for `A = m + r - 1` points (it depends on `A` only), as
/// [`Transforms::new`] makes it, computed at compile time: row `j` holds the coefficients
/// of the product of `x - p` over the finite points `p` other than point `j` (every
/// finite point for the last row, the point at infinity).
const fn input_matrix<const A: usize>() -> [[f32; A]; A] {
    let mut bt = [[0.0; A]; A];
    let mut j = 0;
    while j < A {
        let mut c = [0.0f64; MAX_ALPHA + 1];
        c[0] = 1.0;
        let mut len = 1;
        let mut l = 0;
        while l < A - 1 {
            if l != j {
                // c *= (x - root), highest power first so each step reads the old value.
                let root = POINTS[l];
                let mut i = len;
                while i > 0 {
                    c[i] = c[i - 1] - root * c[i];
                    i -= 1;
                }
                c[0] = -root * c[0];
                len += 1;
            }
            l += 1;
        }
        let mut t = 0;
        while t < A {
            bt[j][t] = c[t] as f32;
            t += 1;
        }
        j += 1;
    }
    bt
}

/// `AT` of Winograd's F(M, r) for `A` points, as [`Transforms::new`] makes it, computed
/// at compile time: powers of the finite points, and 1 for infinity in the last row.
const fn output_matrix<const M: usize, const A: usize>() -> [[f32; A]; M] {
    let mut at = [[0.0; A]; M];
    let mut j = 0;
    while j < A - 1 {
        let mut power = 1.0f64;
        let mut i = 0;
        while i < M {
            at[i][j] = power as f32;
            power *= POINTS[j];
            i += 1;
        }
        j += 1;
    }
    at[M - 1][A - 1] = 1.0;
    at
}

/// Adds the term `c * v` to a sum (`None`: no term yet), with `c` a constant: zero
/// terms vanish and unit ones are plain adds once the call is inlined.
#[inline(always)]
fn term<V: F32s>(acc: Option<V>, c: f32, v: V) -> Option<V> {
    if c == 0.0 {
        return acc;
    }
    // SAFETY: a `V` exists (`v`), so the CPU has its instruction set.
    let weight = unsafe { V::splat(c) };
    Some(match acc {
        None if c == 1.0 => v,
        None => weight.mul(v),
        Some(a) if c == 1.0 => a.add(v),
        Some(a) if c == -1.0 => a.sub(v),
        Some(a) => weight.mul_add(v, a),
    })
}

/// One row of a constant matrix times `x`, by literal indices (so that the coefficients
/// are constants in the code). Every row has a nonzero term.
macro_rules! row_times {
    ($matrix:ident, $i:literal, $x:ident, [$($j:literal)*]) => {{
        let mut acc = None;
        $( acc = term(acc, $matrix[$i][$j], $x[$j]); )*
        acc.expect("every row of BT and AT has a nonzero coefficient")
    }};
}

/// Functions `out = matrix * x` for the constant matrices of the tile sizes used.
macro_rules! transforms {
    ($($name:ident = $matrix:ident [$($i:literal)*] $js:tt;)*) => {$(
        #[inline(always)]
        fn $name<V: F32s>(x: &[V], out: &mut [V]) {
            $( out[$i] = row_times!($matrix, $i, x, $js); )*
        }
    )*};
}

const BT3: [[f32; 3]; 3] = input_matrix::<3>();
const BT4: [[f32; 4]; 4] = input_matrix::<4>();
const BT5: [[f32; 5]; 5] = input_matrix::<5>();
const BT6: [[f32; 6]; 6] = input_matrix::<6>();
const AT23: [[f32; 3]; 2] = output_matrix::<2, 3>();
const AT24: [[f32; 4]; 2] = output_matrix::<2, 4>();
const AT25: [[f32; 5]; 2] = output_matrix::<2, 5>();
const AT26: [[f32; 6]; 2] = output_matrix::<2, 6>();
const AT34: [[f32; 4]; 3] = output_matrix::<3, 4>();
const AT35: [[f32; 5]; 3] = output_matrix::<3, 5>();
const AT36: [[f32; 6]; 3] = output_matrix::<3, 6>();
const AT45: [[f32; 5]; 4] = output_matrix::<4, 5>();
const AT46: [[f32; 6]; 4] = output_matrix::<4, 6>();

transforms! {
    bt3 = BT3 [0 1 2] [0 1 2];
    bt4 = BT4 [0 1 2 3] [0 1 2 3];
    bt5 = BT5 [0 1 2 3 4] [0 1 2 3 4];
    bt6 = BT6 [0 1 2 3 4 5] [0 1 2 3 4 5];
    at23 = AT23 [0 1] [0 1 2];
    at24 = AT24 [0 1] [0 1 2 3];
    at25 = AT25 [0 1] [0 1 2 3 4];
    at26 = AT26 [0 1] [0 1 2 3 4 5];
    at34 = AT34 [0 1 2] [0 1 2 3];
    at35 = AT35 [0 1 2] [0 1 2 3 4];
    at36 = AT36 [0 1 2] [0 1 2 3 4 5];
    at45 = AT45 [0 1 2 3] [0 1 2 3 4];
    at46 = AT46 [0 1 2 3] [0 1 2 3 4 5];
}

/// `out = BT x` for `A` points.
#[inline(always)]
pub(crate) fn input_1d<V: F32s, const A: usize>(x: &[V; A], out: &mut [V; A]) {
    match A {
        3 => bt3(x, out),
        4 => bt4(x, out),
        5 => bt5(x, out),
        _ => bt6(x, out),
    }
}

/// `out = AT x` for F(M, r) on `A` points.
#[inline(always)]
pub(crate) fn output_1d<V: F32s, const M: usize, const A: usize>(x: &[V; A], out: &mut [V; M]) {
    match (M, A) {
        (2, 3) => at23(x, out),
        (2, 4) => at24(x, out),
        (2, 5) => at25(x, out),
        (2, 6) => at26(x, out),
        (3, 4) => at34(x, out),
        (3, 5) => at35(x, out),
        (3, 6) => at36(x, out),
        (4, 5) => at45(x, out),
        _ => at46(x, out),
    }
}

/// The first `len` values of `src` (at most 16, at most `src.len()`) as a register,
/// zeros in the other lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) fn load(src: &[f32], len: usize) -> std::arch::x86_64::__m512 {
    let len = len.min(16).min(src.len());
    let mask = ((1u32 << len) - 1) as u16;
    // SAFETY: the mask enables the first `len` lanes, which `src` holds; masked-off lanes
    // are neither read nor faulted on.
    unsafe { std::arch::x86_64::_mm512_maskz_loadu_ps(mask, src.as_ptr()) }
}

/// Stores the first `len` lanes of `value` (at most 16, at most `dst.len()`) into `dst`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) fn store(dst: &mut [f32], len: usize, value: std::arch::x86_64::__m512) {
    let len = len.min(16).min(dst.len());
    let mask = ((1u32 << len) - 1) as u16;
    // SAFETY: the mask enables the first `len` lanes, which `dst` holds; masked-off lanes
    // are neither written nor faulted on.
    unsafe { std::arch::x86_64::_mm512_mask_storeu_ps(dst.as_mut_ptr(), mask, value) }
}

/// `V = BT d B` of one tile for `A` points: `d[a][b]` in, `V[xi][nu]` out.
#[inline(always)]
pub(crate) fn input_2d_in<V: F32s, const A: usize>(d: &[[V; A]; A]) -> [[V; A]; A] {
    // half[xi][b] = sum_a BT[xi][a] d[a][b]; V[xi][nu] = sum_b BT[nu][b] half[xi][b].
    // (Plain loops, no closures: a closure is a function of its own, which may not be
    // inlined and is then compiled without the caller's instruction set.)
    let mut half = *d;
    for b in 0..A {
        let mut column = d[0];
        for a in 0..A {
            column[a] = d[a][b];
        }
        let mut out = column;
        input_1d(&column, &mut out);
        for xi in 0..A {
            half[xi][b] = out[xi];
        }
    }
    let mut v = half;
    for (half, v) in half.iter().zip(&mut v) {
        input_1d(half, v);
    }
    v
}

/// `Y = AT P A` of one tile, F(M, r) on `A` points: the products `p[xi][nu]` in, the
/// results `Y[a][b]` out.
#[inline(always)]
pub(crate) fn output_2d_in<V: F32s, const M: usize, const A: usize>(
    p: &[[V; A]; A],
) -> [[V; M]; M] {
    // half[a][nu] = sum_xi AT[a][xi] P[xi][nu]; Y[a][b] = sum_nu AT[b][nu] half[a][nu].
    let mut half = [p[0]; M];
    for nu in 0..A {
        let mut column = p[0];
        for xi in 0..A {
            column[xi] = p[xi][nu];
        }
        let mut out = [column[0]; M];
        output_1d(&column, &mut out);
        for a in 0..M {
            half[a][nu] = out[a];
        }
    }
    let mut y = [[p[0][0]; M]; M];
    for (half, y) in half.iter().zip(&mut y) {
        output_1d(half, y);
    }
    y
}

/// [`input_2d_in`] on AVX-512 registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) fn input_2d<const A: usize>(
    d: &[[std::arch::x86_64::__m512; A]; A],
) -> [[std::arch::x86_64::__m512; A]; A] {
    // SAFETY: the CPU has AVX-512F (this function's feature).
    raw(&input_2d_in(&unsafe { typed(d) }))
}

/// [`output_2d_in`] on AVX-512 registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) fn output_2d<const M: usize, const A: usize>(
    p: &[[std::arch::x86_64::__m512; A]; A],
) -> [[std::arch::x86_64::__m512; M]; M] {
    // SAFETY: the CPU has AVX-512F (this function's feature).
    raw(&output_2d_in::<Avx512, M, A>(&unsafe { typed(p) }))
}

/// A tile of AVX-512 registers as [`Avx512`] values, by plain loops (array `map`'s
/// closures may not be inlined, and then run as calls built without AVX-512).
///
/// # Safety
/// The CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn typed<const R: usize, const C: usize>(
    tile: &[[std::arch::x86_64::__m512; C]; R],
) -> [[Avx512; C]; R] {
    // SAFETY: the caller promises AVX-512F.
    let mut out = [[unsafe { Avx512::from_raw(tile[0][0]) }; C]; R];
    for (out, line) in out.iter_mut().zip(tile) {
        for (out, &value) in out.iter_mut().zip(line) {
            // SAFETY: as above.
            *out = unsafe { Avx512::from_raw(value) };
        }
    }
    out
}

/// The registers of a tile of [`Avx512`] values (see [`typed`]).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn raw<const R: usize, const C: usize>(
    tile: &[[Avx512; C]; R],
) -> [[std::arch::x86_64::__m512; C]; R] {
    let mut out = [[tile[0][0].raw(); C]; R];
    for (out, line) in out.iter_mut().zip(tile) {
        for (out, value) in out.iter_mut().zip(line) {
            *out = value.raw();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The compile-time transforms are those of [`Transforms::new`].
    #[test]
    fn matrices_match_the_transforms() {
        fn check<const R: usize, const C: usize>(matrix: &[[f32; C]; R], want: &[f64], what: &str) {
            assert_eq!(want.len(), R * C, "{what}");
            for (i, row) in matrix.iter().enumerate() {
                for (j, &v) in row.iter().enumerate() {
                    assert_eq!(v as f64, want[i * C + j], "{what} [{i}][{j}]");
                }
            }
        }
        check(&BT3, &Transforms::new(2, 2).bt, "BT3");
        check(&BT4, &Transforms::new(3, 2).bt, "BT4");
        check(&BT5, &Transforms::new(4, 2).bt, "BT5");
        check(&BT6, &Transforms::new(4, 3).bt, "BT6");
        check(&AT23, &Transforms::new(2, 2).at, "AT23");
        check(&AT24, &Transforms::new(2, 3).at, "AT24");
        check(&AT25, &Transforms::new(2, 4).at, "AT25");
        check(&AT26, &Transforms::new(2, 5).at, "AT26");
        check(&AT34, &Transforms::new(3, 2).at, "AT34");
        check(&AT35, &Transforms::new(3, 3).at, "AT35");
        check(&AT36, &Transforms::new(3, 4).at, "AT36");
        check(&AT45, &Transforms::new(4, 2).at, "AT45");
        check(&AT46, &Transforms::new(4, 3).at, "AT46");
    }
}
