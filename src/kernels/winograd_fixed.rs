//! Winograd's transforms with their coefficients as constants in the code, f32, one
//! register of lanes per value (generic over [`F32s`]: AVX-512 or AVX2; the `__m512`
//! forms serve the engines written with AVX-512 intrinsics): `BT` and `AT` of every tile size convt uses, computed at
//! compile time as [`Transforms::new`](super::winograd::Transforms::new) makes them, one function per matrix (zero terms
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
/// [`Transforms::new`](super::winograd::Transforms::new) makes it, computed at compile time: row `j` holds the coefficients
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

/// `AT` of Winograd's F(M, r) for `A` points, as [`Transforms::new`](super::winograd::Transforms::new) makes it, computed
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
#[cfg(test)]
const BT4: [[f32; 4]; 4] = input_matrix::<4>();
#[cfg(test)]
const BT5: [[f32; 5]; 5] = input_matrix::<5>();
#[cfg(test)]
const BT6: [[f32; 6]; 6] = input_matrix::<6>();
const AT23: [[f32; 3]; 2] = output_matrix::<2, 3>();
const AT24: [[f32; 4]; 2] = output_matrix::<2, 4>();
const AT25: [[f32; 5]; 2] = output_matrix::<2, 5>();
const AT26: [[f32; 6]; 2] = output_matrix::<2, 6>();
#[cfg(test)]
const AT34: [[f32; 4]; 3] = output_matrix::<3, 4>();
#[cfg(test)]
const AT35: [[f32; 5]; 3] = output_matrix::<3, 5>();
#[cfg(test)]
const AT36: [[f32; 6]; 3] = output_matrix::<3, 6>();
#[cfg(test)]
const AT45: [[f32; 5]; 4] = output_matrix::<4, 5>();
#[cfg(test)]
const AT46: [[f32; 6]; 4] = output_matrix::<4, 6>();

transforms! {
    bt3 = BT3 [0 1 2] [0 1 2];
    at23 = AT23 [0 1] [0 1 2];
    at24 = AT24 [0 1] [0 1 2 3];
    at25 = AT25 [0 1] [0 1 2 3 4];
    at26 = AT26 [0 1] [0 1 2 3 4 5];
}

/// `c * v + a`, `c` a constant.
#[inline(always)]
fn scaled_add<V: F32s>(c: f32, v: V, a: V) -> V {
    // SAFETY: a `V` exists (`v`), so the CPU has its instruction set.
    unsafe { V::splat(c) }.mul_add(v, a)
}

// The transforms of the other sizes, written out with the partial sums their rows
// share computed once (Lavin and Gray's forms): BT of 6 points in 12 operations
// instead of the rows' 22, of 5 in 9 instead of 16; AT of F(4, 3) in 10 instead of 15
// (C2 -4%, T5 -4% at one thread on Zen 4). The tests check each against its matrix.

/// `BT` of 4 points (0, 1, -1): `d2 - d0, d1 + d2, d2 - d1, d3 - d1`.
#[inline(always)]
fn bt4<V: F32s>(d: &[V], out: &mut [V]) {
    out[0] = d[2].sub(d[0]);
    out[1] = d[1].add(d[2]);
    out[2] = d[2].sub(d[1]);
    out[3] = d[3].sub(d[1]);
}

/// `BT` of 5 points (0, 1, -1, 2), with `a = d3 - d1` shared by every row.
#[inline(always)]
fn bt5<V: F32s>(d: &[V], out: &mut [V]) {
    let a = d[3].sub(d[1]);
    out[0] = scaled_add(2.0, d[0].sub(d[2]), a);
    out[1] = a.sub(d[1].add(d[2]));
    out[2] = scaled_add(3.0, d[1].sub(d[2]), a);
    out[3] = a;
    out[4] = scaled_add(-2.0, a, d[4].sub(d[2]));
}

/// `BT` of 6 points (0, 1, -1, 2, -2): rows 1-2 and 3-4 are sums and differences of
/// two shared terms each.
#[inline(always)]
fn bt6<V: F32s>(d: &[V], out: &mut [V]) {
    out[0] = scaled_add(4.0, d[0], scaled_add(-5.0, d[2], d[4]));
    let (t1, t2) = (scaled_add(-4.0, d[2], d[4]), scaled_add(-4.0, d[1], d[3]));
    out[1] = t1.add(t2);
    out[2] = t1.sub(t2);
    let (t3, t4) = (d[4].sub(d[2]), d[3].sub(d[1]));
    out[3] = scaled_add(2.0, t4, t3);
    out[4] = scaled_add(-2.0, t4, t3);
    out[5] = scaled_add(4.0, d[1], scaled_add(-5.0, d[3], d[5]));
}

/// `AT` of F(3, 2) (4 points), with `p1 + p2` shared.
#[inline(always)]
fn at34<V: F32s>(p: &[V], out: &mut [V]) {
    let s = p[1].add(p[2]);
    out[0] = p[0].add(s);
    out[1] = p[1].sub(p[2]);
    out[2] = s.add(p[3]);
}

/// `AT` of F(M, r) on 5 points (0, 1, -1, 2, infinity): row `i` sums `p1 + (-1)^i p2`
/// (shared as `p1 + p2` and `p1 - p2`) and `2^i p3`, row 0 adds `p0`, the last row
/// `p4`. F(3, 3) and F(4, 2).
#[inline(always)]
fn at5<V: F32s, const M: usize>(p: &[V], out: &mut [V]) {
    let (s, d) = (p[1].add(p[2]), p[1].sub(p[2]));
    out[0] = p[0].add(s).add(p[3]);
    for (i, out) in out.iter_mut().enumerate().take(M).skip(1) {
        let pair = if i % 2 == 0 { s } else { d };
        *out = scaled_add((1 << i) as f32, p[3], pair);
    }
    out[M - 1] = out[M - 1].add(p[4]);
}

/// `AT` of F(M, r) on 6 points (0, 1, -1, 2, -2, infinity): row `i` sums `p1 +
/// (-1)^i p2` and `2^i (p3 + (-1)^i p4)` (the sums and differences shared), row 0 adds
/// `p0`, the last row `p5`. F(3, 4) and F(4, 3).
#[inline(always)]
fn at6<V: F32s, const M: usize>(p: &[V], out: &mut [V]) {
    let (s12, d12) = (p[1].add(p[2]), p[1].sub(p[2]));
    let (s34, d34) = (p[3].add(p[4]), p[3].sub(p[4]));
    out[0] = p[0].add(s12).add(s34);
    for (i, out) in out.iter_mut().enumerate().take(M).skip(1) {
        let (low, high) = if i % 2 == 0 { (s12, s34) } else { (d12, d34) };
        *out = scaled_add((1 << i) as f32, high, low);
    }
    out[M - 1] = out[M - 1].add(p[5]);
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
        (3, 5) => at5::<V, 3>(x, out),
        (3, 6) => at6::<V, 3>(x, out),
        (4, 5) => at5::<V, 4>(x, out),
        _ => at6::<V, 4>(x, out),
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

    /// One f32 lane, for checking the transforms without a vector unit.
    #[derive(Clone, Copy, Debug)]
    struct Scalar(f32);

    impl F32s for Scalar {
        const LANES: usize = 1;
        const REGISTERS: usize = 16;
        unsafe fn zero() -> Self {
            Scalar(0.0)
        }
        unsafe fn splat(value: f32) -> Self {
            Scalar(value)
        }
        unsafe fn load(at: *const f32) -> Self {
            // SAFETY: the caller promises one readable value at `at`.
            Scalar(unsafe { *at })
        }
        unsafe fn load_part(width: usize, at: *const f32) -> Self {
            // SAFETY: as for `load`, where `width` is not zero.
            Scalar(if width == 0 { 0.0 } else { unsafe { *at } })
        }
        unsafe fn store(self, at: *mut f32) {
            // SAFETY: the caller promises one writable value at `at`.
            unsafe { *at = self.0 }
        }
        unsafe fn store_part(self, width: usize, at: *mut f32) {
            if width > 0 {
                // SAFETY: as for `store`.
                unsafe { *at = self.0 }
            }
        }
        fn mul_add(self, b: Self, c: Self) -> Self {
            Scalar(self.0.mul_add(b.0, c.0))
        }
        fn add(self, b: Self) -> Self {
            Scalar(self.0 + b.0)
        }
        fn sub(self, b: Self) -> Self {
            Scalar(self.0 - b.0)
        }
        fn mul(self, b: Self) -> Self {
            Scalar(self.0 * b.0)
        }
        fn sum(self) -> f32 {
            self.0
        }
    }

    /// Random values in -5..5 (a fixed sequence).
    fn values<const N: usize>(state: &mut u64) -> [f32; N] {
        std::array::from_fn(|_| {
            *state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((*state >> 40) % 10000) as f32 / 1000.0 - 5.0
        })
    }

    /// `matrix * x` in f64.
    fn times<const R: usize, const C: usize>(matrix: &[f64], x: &[f32; C]) -> [f64; R] {
        std::array::from_fn(|i| (0..C).map(|j| matrix[i * C + j] * x[j] as f64).sum())
    }

    /// Each transform of one line (the written-out ones included) is its matrix of
    /// [`Transforms::new`](super::winograd::Transforms::new) times the line, to f32 rounding.
    #[test]
    fn line_transforms_are_their_matrices() {
        /// Each value of `got` against `want` (the matrix times `x`).
        fn compare(what: &str, got: &[Scalar], want: &[f64], x: &[f32]) {
            let scale = 1.0 + x.iter().map(|v| v.abs() as f64).sum::<f64>() * 8.0;
            for (i, (got, want)) in got.iter().zip(want).enumerate() {
                let error = (got.0 as f64 - want).abs();
                assert!(error <= 1e-6 * scale, "{what} row {i}: {} vs {want}", got.0);
            }
        }
        fn input<const A: usize>(m: usize, r: usize, state: &mut u64) {
            let t = Transforms::new(m, r);
            for _ in 0..50 {
                let x = values::<A>(state);
                let mut out = [Scalar(0.0); A];
                input_1d(&x.map(Scalar), &mut out);
                compare(&format!("BT{A}"), &out, &times::<A, A>(&t.bt, &x), &x);
            }
        }
        fn output<const M: usize, const A: usize>(r: usize, state: &mut u64) {
            let t = Transforms::new(M, r);
            for _ in 0..50 {
                let x = values::<A>(state);
                let mut out = [Scalar(0.0); M];
                output_1d::<Scalar, M, A>(&x.map(Scalar), &mut out);
                compare(&format!("AT{M}{A}"), &out, &times::<M, A>(&t.at, &x), &x);
            }
        }
        let mut state = 7;
        input::<3>(2, 2, &mut state);
        input::<4>(3, 2, &mut state);
        input::<5>(4, 2, &mut state);
        input::<6>(4, 3, &mut state);
        output::<2, 3>(2, &mut state);
        output::<2, 4>(3, &mut state);
        output::<2, 5>(4, &mut state);
        output::<2, 6>(5, &mut state);
        output::<3, 4>(2, &mut state);
        output::<3, 5>(3, &mut state);
        output::<3, 6>(4, &mut state);
        output::<4, 5>(2, &mut state);
        output::<4, 6>(3, &mut state);
    }

    /// The compile-time transforms are those of [`Transforms::new`](super::winograd::Transforms::new).
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
