//! One register type per x86-64 instruction set the register kernels are written for:
//! [`Avx512`] (16 f32 lanes, 32 registers) and [`Avx2`] (8 lanes with FMA, 16 registers).
//! A kernel is written once, generic over [`F32s`] and `#[inline(always)]`, and entered
//! through a `#[target_feature]` function per instruction set, where every method below
//! inlines into single instructions. [`isa`] says which instruction set this CPU runs,
//! capped by the `CONVT_MAX_ISA` environment variable (`avx512`, `avx2` or `none`), so
//! that one machine can test every path.
//!
//! Values of these types are made only by the unsafe constructors ([`F32s::zero`],
//! [`F32s::splat`] and the loads), whose callers promise that the CPU has the
//! instruction set; the arithmetic on such values is then safe.

use std::sync::OnceLock;

/// The instruction sets the register kernels are written for, in increasing order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Isa {
    /// No register kernels: the portable plans and the `gemm` crate only.
    None,
    /// AVX2 with FMA (Intel Haswell and later, AMD Zen 1-3).
    Avx2,
    /// AVX-512F (Intel Skylake-SP and later server chips, AMD Zen 4 and 5).
    Avx512,
}

/// The best instruction set this CPU has, capped by `CONVT_MAX_ISA` (read once).
pub(crate) fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        let cap = match std::env::var("CONVT_MAX_ISA").as_deref() {
            Ok("none") => Isa::None,
            Ok("avx2") => Isa::Avx2,
            _ => Isa::Avx512,
        };
        detected().min(cap)
    })
}

fn detected() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return Isa::Avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Isa::Avx2;
        }
    }
    Isa::None
}

/// Whether the AVX-512 kernels run (see [`isa`]).
pub(crate) fn avx512() -> bool {
    isa() == Isa::Avx512
}

/// Runs `f` compiled for the best instruction set [`isa`] allows (AVX-512F with FMA, or
/// AVX2 with FMA), so that portable loops inlined into `f` vectorise with those
/// registers; else as it is (baseline x86-64: SSE2). Results do not change: Rust
/// contracts no multiply-add of its own, so the same operations run in each. Mark `f`
/// `#[inline(always)]`: a closure left to itself is compiled as a function of its own,
/// for baseline x86-64 (Winograd's portable loops were, 6-20% of a call).
#[inline(always)]
pub(crate) fn vectorised<R>(f: impl FnOnce() -> R) -> R {
    dispatch(Portable(f)).unwrap_or_else(|Portable(f)| f())
}

/// A closure of portable code as a [`Kernel`]: it runs as it is, compiled inside
/// [`dispatch`]'s function for the instruction set.
struct Portable<F>(F);

impl<R, F: FnOnce() -> R> Kernel for Portable<F> {
    type Output = R;
    #[inline(always)]
    unsafe fn run<V: F32s>(self) -> R {
        (self.0)()
    }
}

/// A computation written once over the register type, entered by [`dispatch`].
pub(crate) trait Kernel {
    /// What the computation returns.
    type Output;
    /// Runs with registers of `V`. Implementations are `#[inline(always)]`, so that they
    /// compile inside [`dispatch`]'s function for `V`'s instruction set.
    ///
    /// # Safety
    /// The CPU has `V`'s instruction set.
    unsafe fn run<V: F32s>(self) -> Self::Output;
}

/// Runs `kernel` with the registers of the best instruction set [`isa`] allows; the
/// kernel back, not run, where the CPU has neither AVX-512F nor AVX2 with FMA.
#[inline(always)]
pub(crate) fn dispatch<K: Kernel>(kernel: K) -> Result<K::Output, K> {
    #[cfg(target_arch = "x86_64")]
    match isa() {
        // SAFETY (both calls): the CPU has the instruction set (`isa`).
        Isa::Avx512 => return Ok(unsafe { kernel_avx512(kernel) }),
        Isa::Avx2 => return Ok(unsafe { kernel_avx2(kernel) }),
        Isa::None => {}
    }
    Err(kernel)
}

/// Runs `kernel` with [`Avx512`] registers, compiled with AVX-512F (and the AVX2 and
/// FMA it implies).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
fn kernel_avx512<K: Kernel>(kernel: K) -> K::Output {
    // SAFETY: the CPU has AVX-512F (this function's feature).
    unsafe { kernel.run::<Avx512>() }
}

/// Runs `kernel` with [`Avx2`] registers, compiled with AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn kernel_avx2<K: Kernel>(kernel: K) -> K::Output {
    // SAFETY: the CPU has AVX2 and FMA (this function's features).
    unsafe { kernel.run::<Avx2>() }
}

/// A register of f32 lanes.
///
/// # Safety (of the unsafe methods)
/// The CPU has the type's instruction set; the loads and stores touch only the first
/// `width` lanes (or all [`F32s::LANES`]), which must lie inside one allocation.
pub(crate) trait F32s: Copy {
    /// f32 values per register.
    const LANES: usize;
    /// Vector registers of the instruction set.
    const REGISTERS: usize;
    /// All lanes zero.
    unsafe fn zero() -> Self;
    /// All lanes `value`.
    unsafe fn splat(value: f32) -> Self;
    /// `LANES` values from `at`.
    unsafe fn load(at: *const f32) -> Self;
    /// The first `min(width, LANES)` values from `at`, zeros in the other lanes; the
    /// values past them are neither read nor faulted on.
    unsafe fn load_part(width: usize, at: *const f32) -> Self;
    /// All `LANES` values to `at`.
    unsafe fn store(self, at: *mut f32);
    /// The first `min(width, LANES)` lanes to `at`; the values past them are neither
    /// written nor faulted on.
    unsafe fn store_part(self, width: usize, at: *mut f32);
    /// `self * b + c`, rounded once.
    fn mul_add(self, b: Self, c: Self) -> Self;
    /// `self + b`.
    fn add(self, b: Self) -> Self;
    /// `self - b`.
    fn sub(self, b: Self) -> Self;
    /// `self * b`.
    fn mul(self, b: Self) -> Self;
    /// The lanes' sum (a fixed order of additions).
    fn sum(self) -> f32;
}

/// 16 f32 lanes of AVX-512F.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
#[repr(transparent)]
pub(crate) struct Avx512(std::arch::x86_64::__m512);

#[cfg(target_arch = "x86_64")]
impl Avx512 {
    /// The register as this type, for code written with the intrinsics.
    ///
    /// # Safety
    /// The CPU has AVX-512F.
    #[inline(always)]
    pub(crate) unsafe fn from_raw(value: std::arch::x86_64::__m512) -> Self {
        Self(value)
    }

    /// The register itself.
    #[inline(always)]
    pub(crate) fn raw(self) -> std::arch::x86_64::__m512 {
        self.0
    }
}

/// The mask of AVX-512's first `width` lanes (all 16 past that).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn avx512_mask(width: usize) -> u16 {
    ((1u32 << width.min(16)) - 1) as u16
}

#[cfg(target_arch = "x86_64")]
impl F32s for Avx512 {
    const LANES: usize = 16;
    const REGISTERS: usize = 32;
    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: the caller promises AVX-512F.
        Self(unsafe { std::arch::x86_64::_mm512_setzero_ps() })
    }
    #[inline(always)]
    unsafe fn splat(value: f32) -> Self {
        // SAFETY: the caller promises AVX-512F.
        Self(unsafe { std::arch::x86_64::_mm512_set1_ps(value) })
    }
    #[inline(always)]
    unsafe fn load(at: *const f32) -> Self {
        // SAFETY: the caller promises AVX-512F and 16 readable values at `at`.
        Self(unsafe { std::arch::x86_64::_mm512_loadu_ps(at) })
    }
    #[inline(always)]
    unsafe fn load_part(width: usize, at: *const f32) -> Self {
        // SAFETY: the caller promises AVX-512F and `width` readable values (or 16); the
        // masked-off lanes are neither read nor faulted on.
        Self(unsafe { std::arch::x86_64::_mm512_maskz_loadu_ps(avx512_mask(width), at) })
    }
    #[inline(always)]
    unsafe fn store(self, at: *mut f32) {
        // SAFETY: the caller promises AVX-512F and 16 writable values at `at`.
        unsafe { std::arch::x86_64::_mm512_storeu_ps(at, self.0) }
    }
    #[inline(always)]
    unsafe fn store_part(self, width: usize, at: *mut f32) {
        // SAFETY: the caller promises AVX-512F and `width` writable values (or 16); the
        // masked-off lanes are neither written nor faulted on.
        unsafe { std::arch::x86_64::_mm512_mask_storeu_ps(at, avx512_mask(width), self.0) }
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        // SAFETY: an `Avx512` exists only where the CPU has AVX-512F (its constructors'
        // contract).
        Self(unsafe { std::arch::x86_64::_mm512_fmadd_ps(self.0, b.0, c.0) })
    }
    #[inline(always)]
    fn add(self, b: Self) -> Self {
        // SAFETY: as in `mul_add`.
        Self(unsafe { std::arch::x86_64::_mm512_add_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn sub(self, b: Self) -> Self {
        // SAFETY: as in `mul_add`.
        Self(unsafe { std::arch::x86_64::_mm512_sub_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn mul(self, b: Self) -> Self {
        // SAFETY: as in `mul_add`.
        Self(unsafe { std::arch::x86_64::_mm512_mul_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn sum(self) -> f32 {
        // SAFETY: as in `mul_add`.
        unsafe { std::arch::x86_64::_mm512_reduce_add_ps(self.0) }
    }
}

/// 8 f32 lanes of AVX2 with FMA.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(crate) struct Avx2(std::arch::x86_64::__m256);

/// AVX2's masked loads' mask of the first `width < 8` lanes (the sign bit of each
/// 32-bit lane). The caller promises AVX2.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn avx2_mask(width: usize) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    // SAFETY: the caller promises AVX2.
    unsafe {
        _mm256_cmpgt_epi32(
            _mm256_set1_epi32(width as i32),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        )
    }
}

#[cfg(target_arch = "x86_64")]
impl F32s for Avx2 {
    const LANES: usize = 8;
    const REGISTERS: usize = 16;
    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: the caller promises AVX2.
        Self(unsafe { std::arch::x86_64::_mm256_setzero_ps() })
    }
    #[inline(always)]
    unsafe fn splat(value: f32) -> Self {
        // SAFETY: the caller promises AVX2.
        Self(unsafe { std::arch::x86_64::_mm256_set1_ps(value) })
    }
    #[inline(always)]
    unsafe fn load(at: *const f32) -> Self {
        // SAFETY: the caller promises AVX2 and 8 readable values at `at`.
        Self(unsafe { std::arch::x86_64::_mm256_loadu_ps(at) })
    }
    #[inline(always)]
    unsafe fn load_part(width: usize, at: *const f32) -> Self {
        // SAFETY: the caller promises AVX2 and `width` readable values (or 8); the masked
        // load reads and faults on the enabled lanes only.
        unsafe {
            if width >= 8 {
                Self::load(at)
            } else {
                Self(std::arch::x86_64::_mm256_maskload_ps(at, avx2_mask(width)))
            }
        }
    }
    #[inline(always)]
    unsafe fn store(self, at: *mut f32) {
        // SAFETY: the caller promises AVX2 and 8 writable values at `at`.
        unsafe { std::arch::x86_64::_mm256_storeu_ps(at, self.0) }
    }
    #[inline(always)]
    unsafe fn store_part(self, width: usize, at: *mut f32) {
        // SAFETY: the caller promises AVX2 and `width` writable values (or 8). A partial
        // register goes through a buffer and a copy of its first `width` values (AMD's
        // masked stores are microcoded, a dozen cycles and more each).
        unsafe {
            if width >= 8 {
                self.store(at)
            } else {
                let mut lanes = [0.0f32; 8];
                self.store(lanes.as_mut_ptr());
                std::ptr::copy_nonoverlapping(lanes.as_ptr(), at, width);
            }
        }
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        // SAFETY: an `Avx2` exists only where the CPU has AVX2 and FMA (its
        // constructors' contract).
        Self(unsafe { std::arch::x86_64::_mm256_fmadd_ps(self.0, b.0, c.0) })
    }
    #[inline(always)]
    fn add(self, b: Self) -> Self {
        // SAFETY: as in `mul_add`.
        Self(unsafe { std::arch::x86_64::_mm256_add_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn sub(self, b: Self) -> Self {
        // SAFETY: as in `mul_add`.
        Self(unsafe { std::arch::x86_64::_mm256_sub_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn mul(self, b: Self) -> Self {
        // SAFETY: as in `mul_add`.
        Self(unsafe { std::arch::x86_64::_mm256_mul_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn sum(self) -> f32 {
        use std::arch::x86_64::*;
        // SAFETY: as in `mul_add`; pairs of halves are added, then pairs of lanes.
        unsafe {
            let halves = _mm_add_ps(
                _mm256_castps256_ps128(self.0),
                _mm256_extractf128_ps(self.0, 1),
            );
            let pairs = _mm_add_ps(halves, _mm_movehl_ps(halves, halves));
            _mm_cvtss_f32(_mm_add_ss(pairs, _mm_shuffle_ps(pairs, pairs, 1)))
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// Every width's partial load reads exactly its lanes (zeros after them) and its
    /// partial store writes exactly them; the sum adds every lane: checked against plain
    /// loops for each instruction set this CPU has.
    fn check<V: F32s>() {
        let values: Vec<f32> = (0..V::LANES).map(|i| i as f32 + 0.5).collect();
        for width in 0..=V::LANES + 1 {
            let mut out = vec![-1.0f32; V::LANES];
            // SAFETY: the caller checked the instruction set; `values` and `out` hold
            // `LANES` values, as many as any width touches.
            unsafe { V::load_part(width, values.as_ptr()).store(out.as_mut_ptr()) };
            for (i, &v) in out.iter().enumerate() {
                assert_eq!(
                    v,
                    if i < width { values[i] } else { 0.0 },
                    "load {width} lane {i}"
                );
            }
            let mut out = vec![-1.0f32; V::LANES];
            // SAFETY: as above.
            unsafe { V::load(values.as_ptr()).store_part(width, out.as_mut_ptr()) };
            for (i, &v) in out.iter().enumerate() {
                assert_eq!(
                    v,
                    if i < width { values[i] } else { -1.0 },
                    "store {width} lane {i}"
                );
            }
        }
        // SAFETY: as above.
        let (sum, fused) = unsafe {
            let v = V::load(values.as_ptr());
            (
                v.sum(),
                v.mul_add(V::splat(2.0), V::splat(1.0)).add(V::zero()).sum(),
            )
        };
        let expected: f32 = values.iter().sum();
        assert_eq!(sum, expected);
        assert_eq!(fused, values.iter().map(|v| 2.0 * v + 1.0).sum::<f32>());
    }

    #[test]
    fn registers_load_store_and_sum_lanes_exactly() {
        if detected() >= Isa::Avx2 {
            check::<Avx2>();
        }
        if detected() == Isa::Avx512 {
            check::<Avx512>();
        }
    }
}
